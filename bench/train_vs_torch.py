"""Training steps, ours against PyTorch's, on the same CPU: ResNet-50 and ZFNet, float32 and
mixed bfloat16, SGD with momentum, the same batch every step (no input pipeline in the
timing). Interleaved rounds in one process; reports images/s and the paired ratio of each of
ours to PyTorch's bfloat16 autocast, with its spread.

Ours is the step ``keras_classics.training.train`` runs (``StepLoop``: forward, loss, backward
and the update in one ``tf.function``), in ``float32``, ``mixed_bfloat16`` and
``mixed_bfloat16`` with the per-replica step XLA-compiled (``--jit``), and ("keras BN") with
batch norm trained by Keras' own code instead of TensorFlow's fused kernel
(``keras_classics.layers.BatchNormalization``). PyTorch's is
torchvision's ResNet-50 (v1.5) and a ZFNet written here to the same layer table as ours, both
channels-last, in float32 and under ``torch.autocast("cpu", torch.bfloat16)``.

    python bench/train_vs_torch.py                # 128x128, batch 32, 5 rounds of 2 steps
    python bench/train_vs_torch.py --quick        # 32x32 (ZFNet 64x64), batch 4, 1 round
    python bench/train_vs_torch.py --steps "ours fp32" "ours fp32 keras BN" "torch fp32" \
        --reference "torch fp32" --out bench/results/train_fp32   # a CPU without bf16

Writes OUT/train_vs_torch.md and OUT/train_vs_torch.json; OUT defaults to bench/results and
to runs/bench-quick for --quick (a smoke test never replaces the committed results).
"""
import argparse
import gc
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # why: keras_classics.cli.ONEDNN
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_classics as kc  # noqa: E402
from keras_classics import provenance  # noqa: E402
from keras_classics.training import StepLoop  # noqa: E402
from keras_classics.training.precision import precision as policy_scope  # noqa: E402
from timing import fuse_batch_norm, interleaved, speedup, write_report  # noqa: E402

tf.get_logger().setLevel("ERROR")
CLASSES = 1000
# step: (policy, jit, BatchNormalization through TensorFlow's fused kernel)
OURS = {"ours fp32": ("float32", False, True),
        "ours fp32 keras BN": ("float32", False, False),
        "ours mixed_bf16": ("mixed_bfloat16", False, True),
        "ours mixed_bf16 keras BN": ("mixed_bfloat16", False, False),
        "ours mixed_bf16 jit": ("mixed_bfloat16", True, True)}
THEIRS = ("torch fp32", "torch bf16 autocast")
REFERENCE = "torch bf16 autocast"


def ours_step(name, size, batch, policy, jit, fused, x, y, steps):
    """``steps`` training steps of our loop on one constant batch; ``fused=False``: Keras'
    own batch-norm training code (``keras_classics.layers.BatchNormalization.fused``)."""
    keras.utils.set_random_seed(0)
    with policy_scope(policy):
        net = kc.get_model(name, classes=CLASSES, input_shape=(size, size, 3))
    fuse_batch_norm(net, fused)
    loop = StepLoop(tf.distribute.get_strategy(), net, keras.optimizers.SGD(0.01, momentum=0.9),
                    batch, jit=jit)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    iterator = iter(data)
    return lambda: loop.train(iterator, steps)


def torch_steps(name, x, y, steps, wanted=THEIRS):
    """PyTorch's training step in float32 and under bfloat16 autocast (those of ``wanted``,
    ``bench/torch_train.py``); ``({}, {})`` without torch (the test extra installs it)."""
    try:
        import torch_train
        torch_train.torch_and_models()
    except ImportError:
        return {}, {}
    fns, params = {}, {}
    for key, autocast in (("torch fp32", False), ("torch bf16 autocast", True)):
        if key not in wanted:
            continue
        step, model = torch_train.training(name, x, y, autocast, CLASSES)
        params[key] = sum(p.numel() for p in model.parameters())
        fns[key] = lambda step=step: step(steps)
    return fns, params


def measure(name, size, batch, rounds, steps, steps_wanted, reference):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-2, 2, (batch, size, size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, CLASSES, batch), tf.int32)
    fns = {k: ours_step(name, size, batch, *OURS[k], x, y, steps)
           for k in OURS if k in steps_wanted}
    theirs, params = torch_steps(name, x, y, steps, steps_wanted)
    fns.update(theirs)
    gc.disable()  # as timeit: the collector runs between timed calls, not inside them
    try:
        times = interleaved(fns, rounds, before=gc.collect)
    finally:
        gc.enable()
    rows = []
    for key in fns:
        ratio = speedup(times, key, reference) if reference in fns else (None,) * 3
        rows.append({"model": name, "step": key,
                     "images_per_second": batch * steps / statistics.median(times[key]),
                     "ratio": ratio[0], "ratio_low": ratio[1], "ratio_high": ratio[2]})
    net = kc.get_model(name, classes=CLASSES, input_shape=(size, size, 3))
    trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)  # torch's count
    return rows, {"ours": trainable, **params}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "zfnet"],
                   choices=["resnet50", "zfnet"])
    p.add_argument("--quick", action="store_true", help="small inputs, batch 4, one round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", nargs="+", default=[*OURS, *THEIRS], choices=[*OURS, *THEIRS],
                   metavar="STEP", help="the rows to time (default: all); one of: "
                   + ", ".join(map(repr, [*OURS, *THEIRS])))
    p.add_argument("--reference", default=REFERENCE, choices=THEIRS,
                   help=f"the ratios' denominator (default {REFERENCE!r})")
    p.add_argument("--out", help="default: bench/results; runs/bench-quick with --quick")
    p.add_argument("--render", metavar="JSON",
                   help="no measuring: print a train_vs_torch.json's table (Markdown)")
    args = p.parse_args(argv)
    if args.reference not in args.steps and not args.render:
        p.error(f"--reference {args.reference!r} is not among the --steps timed")
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)))
        return 0
    args.out = args.out or ("runs/bench-quick" if args.quick else "bench/results")
    batch, rounds, steps = (4, 1, 1) if args.quick else (args.batch, args.rounds, 2)
    rows, params = [], {}
    for name in args.models:
        size = (64 if name == "zfnet" else 32) if args.quick else args.size
        r, params[name] = measure(name, size, batch, rounds, steps, args.steps,
                                  args.reference)
        rows += r
    report = {"run": provenance.run_record(),
              "settings": {"size": None if args.quick else args.size, "batch": batch,
                           "steps_per_call": steps, "rounds": rounds, "classes": CLASSES,
                           "quick": args.quick, "reference": args.reference,
                           "tensorflow": tf.__version__,
                           "keras": keras.__version__},
              "params": params, "rows": rows}
    text = markdown(report)
    write_report(args.out, "train_vs_torch", report, text)
    print(text)
    return 0


def markdown(report):
    """The table, headed by command, machine and date."""
    s = report["settings"]
    size = "quick sizes" if s["quick"] else f"{s['size']}x{s['size']}"
    reference = s.get("reference", REFERENCE)
    lines = [provenance.heading(report.get("run")), "",
             f"Training steps, {size}, batch {s['batch']}, {s['classes']} classes, SGD "
             f"momentum, {s['steps_per_call']} steps per timed call, {s['rounds']} interleaved "
             f"rounds (ratio: {reference}'s time over the row's, paired, median [quartiles]; "
             f"above 1 is faster than {reference}). \"keras BN\": batch norm trained by "
             "Keras' own code instead of TensorFlow's fused kernel", "",
             f"| model | step | images/s | vs {reference} |", "|---|---|---|---|"]
    for r in report["rows"]:
        value = r.get("ratio", r.get("ratio_to_torch_bf16"))
        ratio = "" if value is None else (
            f"{value:.2f} [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]")
        lines.append(f"| {r['model']} | {r['step']} | {r['images_per_second']:.1f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
