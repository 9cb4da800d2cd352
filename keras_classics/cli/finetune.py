"""Transfer learning in one command: a backbone, a dataset, a regime.

    keras-classics finetune resnet50 --weights imagenet --dataset imagenette/160px-v2 --image-size 160
    keras-classics finetune runs/train/model.keras --dataset path/to/class_folders --regime small
    keras-classics finetune --experiment          # digits 0-4 -> 5-9, regimes vs scratch

Regimes: small (new head on a frozen backbone), medium (+ the top two stages), large (all
layers), auto (by examples per class: <50 small, <500 medium, else large). Outputs as
keras-classics train's, one folder per phase, plus summary.json; --export writes a SavedModel.
"""
import argparse
import json
import os

from keras_classics import datasets, training, transfer
from keras_classics.cli import (add_precision_arguments, print_rendered,
                                positive_float, positive_int, warn_if_gpus_unused)


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", help="registry name or a .keras classifier")
    p.add_argument("--weights", help="imagenet or a weights file (registry names)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--preprocessing", choices=("torch", "caffe", "tf"),
                   help="default: that of the backbone's weights (--weights imagenet), or the "
                        "one a .keras backbone was trained with, else torch")
    p.add_argument("--regime", default="auto", choices=transfer.REGIMES)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--head-epochs", type=positive_int)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--lr-factor", type=positive_float, default=100.0)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--image-size", type=positive_int)
    p.add_argument("--per-class", type=positive_int, help="keep at most this many training examples "
                                                  "per class (array datasets such as digits)")
    p.add_argument("--strategy", default="default", choices=training.STRATEGIES)
    add_precision_arguments(p)
    p.add_argument("--output", default="runs/finetune")
    p.add_argument("--overwrite", action="store_true",
                   help="discard previous runs in --output instead of resuming them")
    p.add_argument("--export", help="write the fine-tuned model as a SavedModel here")
    p.add_argument("--experiment", action="store_true",
                   help="run the digits 0-4 -> 5-9 comparison of the regimes")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="--experiment: runs to average over, each with its own pretraining "
                        "on 0-4 and its own draw of the few 5-9 labels (default 3)")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="no training: print an --experiment's results.json as the docs' "
                        "Markdown table (command, machine, date)")
    args = p.parse_args(argv)
    if args.render:
        return print_rendered(p, args.render, transfer.markdown)
    warn_if_gpus_unused()
    try:
        if args.experiment:
            result = transfer.digits_experiment(per_class=args.per_class or 10,
                                                output=args.output, seeds=args.seeds)
            print(f"digits 0-4 -> 5-9, {result['per_class']} labels per class, "
                  f"{result['seeds']} seeds (test accuracy on the held-out 5-9 images: mean "
                  "± std over the seeds, then each seed's):")
            for row in result["rows"]:
                spread = f" ± {row['std']:.3f}   " + " ".join(
                    f"{a:.3f}" for a in row["per_seed"]) if len(row["per_seed"]) > 1 else ""
                print(f"  {row['setting']:20s} {row['test_accuracy']:.3f}{spread}")
            print(f"wrote {os.path.join(args.output, 'results.json')}")
            return 0
        if not args.model:
            p.error("give a MODEL (registry name or .keras file) or --experiment")
        data = None
        if args.per_class:
            size = args.image_size or 32
            full = datasets.load(args.dataset, size)
            if not isinstance(full.train, (tuple, datasets.Files)):
                p.error("--per-class works with the digits and folder datasets")
            data = datasets.subset(full, list(range(full.num_classes)), args.per_class,
                                   relabel=False)
        summary = transfer.fine_tune(
            args.model, dataset=args.dataset, weights=args.weights, regime=args.regime,
            epochs=args.epochs, head_epochs=args.head_epochs, lr=args.lr,
            lr_factor=args.lr_factor, batch_size=args.batch_size, image_size=args.image_size,
            output=args.output, strategy=args.strategy, data=data, verbose=1,
            preprocessing=args.preprocessing, overwrite=args.overwrite,
            precision=args.precision)
    except ValueError as err:
        p.error(str(err))
    model = summary.pop("model_object")
    model.save(os.path.join(args.output, "model.keras"))
    if args.export:
        from keras_classics import export_saved_model

        # the classes' names (a folder dataset's folder names) served as labels
        summary["export"] = export_saved_model(model, args.export,
                                               labels=summary["class_names"])
    from keras_classics.training.outputs import atomic_write

    atomic_write(os.path.join(args.output, "summary.json"),
                 json.dumps(summary, indent=1, default=float))
    print(json.dumps(summary, indent=1, default=float))
    return 0

