"""Train a zoo model on one device, all GPUs of a host, or several hosts (tf.distribute).

    keras-classics train resnet18                                  # digits, offline
    keras-classics train alexnet --dataset imagenette/160px-v2 --preset alexnet --image-size 227
    keras-classics train resnet50 --dataset cifar10 --strategy mirrored --precision auto
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' keras-classics train resnet50 ...

Rerunning the same command continues from --output/checkpoints/; a rerun with other settings
is refused (naming them) unless --overwrite. Exit codes: 0 done, 2 bad arguments (nothing
written), 3 the loss diverged (NaN), 130 interrupted (progress saved).
"""
import argparse
import json
import sys

from keras_classics import training
from keras_classics.cli import (add_precision_arguments, non_negative_int,
                                positive_float, positive_int, warn_if_gpus_unused)


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("model", help="registry name, e.g. resnet18")
    p.add_argument("--dataset", default="digits",
                   help="digits (embedded), a tensorflow-datasets name, or a folder of class "
                        "subfolders")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, help="global batch (split across replicas)")
    p.add_argument("--preset", help=f"{', '.join(training.PRESETS)} (default: digits on the "
                                    "embedded digits, 8 epochs at batch 64; else resnet, "
                                    "90 epochs at batch 256)")
    p.add_argument("--strategy", default="auto", choices=training.STRATEGIES)
    p.add_argument("--cpu-replicas", type=positive_int,
                   help="split the CPU into N logical devices (MirroredStrategy without GPUs)")
    add_precision_arguments(p)
    p.add_argument("--jit", action="store_true", help="XLA-compile the training step")
    p.add_argument("--output", default="runs/train")
    p.add_argument("--image-size", type=positive_int)
    p.add_argument("--lr", type=positive_float, help="override the preset's (scaled) learning rate")
    p.add_argument("--warmup-epochs", type=float,
                   help="override the preset's linear warm-up (epochs, 0 to --epochs)")
    p.add_argument("--augment", help="comma-separated: crop, flip, pca ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=non_negative_int, default=20,
                   help="steps between checkpoints: within an epoch, and at an epoch's end "
                        "once this many steps have passed since the last (0: every epoch's "
                        "end only)")
    p.add_argument("--steps-per-execution", type=positive_int, default=10,
                   help="training steps per tf.function call (as in model.fit)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard a previous run in --output instead of resuming it")
    p.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism")
    p.add_argument("--data-dir", help="tensorflow-datasets data directory")
    p.add_argument("--weights", help="start from weights: imagenet (needs 1000 classes) or a "
                                      "weights file for this model")
    p.add_argument("--preprocessing", choices=("torch", "caffe", "tf"),
                   help="input preprocessing (default: that of --weights imagenet, else torch)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder argument, e.g. --set aux_logits=true --set norm='\"group\"' "
                        "(values are JSON; bare words are strings)")
    args = p.parse_args(argv)
    warn_if_gpus_unused()
    model_kwargs = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set needs KEY=VALUE, got {item!r}")
        try:
            model_kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            model_kwargs[key] = value
    if args.weights:
        model_kwargs["weights"] = args.weights
    augment = None if args.augment is None else tuple(a for a in args.augment.split(",") if a)
    try:
        result = training.train(
            args.model, args.dataset, epochs=args.epochs, batch_size=args.batch_size,
            preset=args.preset, strategy=args.strategy, precision=args.precision,
            jit=args.jit, output=args.output, image_size=args.image_size, seed=args.seed,
            lr=args.lr, checkpoint_every=args.checkpoint_every, cpu_replicas=args.cpu_replicas,
            data_dir=args.data_dir, augment=augment, deterministic=args.deterministic,
            model_kwargs=model_kwargs, preprocessing=args.preprocessing,
            overwrite=args.overwrite, steps_per_execution=args.steps_per_execution,
            warmup_epochs=args.warmup_epochs)
    except (ValueError, TypeError) as err:
        p.error(str(err))
    except training.TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as err:
        print(f"\n{err}", file=sys.stderr)
        return 130
    print(json.dumps(result.summary, indent=1))
    return 0

