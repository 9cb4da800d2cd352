"""keras_classics' training loop against ``model.fit``: the same ResNet-18, data pipeline,
batch and optimizer, timed in interleaved rounds in one process; reports images/s of each and
the paired ratio (ours / fit). Our loop runs under every tf.distribute strategy (fit fails
under MultiWorkerMirroredStrategy); this measures what that costs on one device.

    python bench/loop_vs_fit.py                 # digits 32x32, batch 64, 7 rounds
    python bench/loop_vs_fit.py --quick         # one round of 10 steps: a smoke test

Writes OUT/loop_vs_fit.md and OUT/loop_vs_fit.json.
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
import tensorflow as tf  # noqa: E402

import keras_classics as kc  # noqa: E402
from keras_classics import datasets, provenance  # noqa: E402
from keras_classics.training import StepLoop  # noqa: E402
from timing import interleaved, speedup, write_report  # noqa: E402

tf.get_logger().setLevel("ERROR")


def contenders(size, batch, repeat, executions, steps=None):
    """{name: one pass over the same cached, batched digits (``repeat`` epochs, or its first
    ``steps`` batches)}."""
    d = datasets.digits(size)
    ds = d.pipeline("train", batch, drop_remainder=True).repeat(repeat)
    steps = min(steps or d.num_train // batch * repeat, d.num_train // batch * repeat)
    ds = ds.take(steps)
    fns = {}

    def build():
        keras.utils.set_random_seed(0)
        return kc.get_model("resnet18", classes=10, input_shape=(size, size, 3))

    fit_model = build()
    fit_model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
    fns["model.fit"] = lambda: fit_model.fit(ds, epochs=1, verbose=0)
    for n in executions:
        net = build()
        loop = StepLoop(tf.distribute.get_strategy(), net,
                        keras.optimizers.SGD(0.01, momentum=0.9), batch)

        def ours(loop=loop, n=n):
            it, done = iter(ds), 0
            while done < steps:
                k = min(n, steps - done)
                loop.train(it, k)
                done += k
        fns[f"ours, {n} steps per call"] = ours
    return fns, steps * batch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="one round of 10 steps (the warm-up pass traces): a smoke test")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", help="default: bench/results; runs/bench-quick with --quick")
    p.add_argument("--render", metavar="JSON",
                   help="no measuring: print a loop_vs_fit.json's table (Markdown)")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)))
        return 0
    args.out = args.out or ("runs/bench-quick" if args.quick else "bench/results")
    size, batch, repeat, rounds = (32, 64, 1, 1) if args.quick else (32, 64, 4, args.rounds)
    fns, images = contenders(size, batch, repeat, (1, 10), steps=10 if args.quick else None)
    # As timeit does: Python's garbage collector runs between timed calls, not inside them
    # (a collection of the process's Keras objects costs seconds and lands on whichever
    # contender happens to trigger it).
    gc.disable()
    try:
        times = interleaved(fns, rounds, before=gc.collect)
    finally:
        gc.enable()
    rows = []
    for name in fns:
        ratio = speedup(times, name, "model.fit")
        rows.append({"loop": name, "images_per_second": images / statistics.median(times[name]),
                     "ratio_to_fit": ratio[0], "ratio_low": ratio[1], "ratio_high": ratio[2]})
    report = {"run": provenance.run_record(),
              "settings": {"model": "resnet18", "data": "digits", "size": size, "batch": batch,
                           "images_per_round": images, "rounds": rounds,
                           "tensorflow": tf.__version__, "keras": keras.__version__},
              "rows": rows}
    text = markdown(report)
    write_report(args.out, "loop_vs_fit", report, text)
    print(text)
    return 0


def markdown(report):
    """The table, headed by command, machine and date."""
    s = report["settings"]
    lines = [provenance.heading(report.get("run")), "",
             f"ResNet-18 training, digits {s['size']}x{s['size']}, batch {s['batch']}, "
             f"{s['images_per_round']} images per round, {s['rounds']} interleaved rounds "
             "(ratio: paired, median [quartiles])", "",
             "| loop | images/s | ours / fit |", "|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['loop']} | {r['images_per_second']:.0f} | {r['ratio_to_fit']:.2f} "
                     f"[{r['ratio_low']:.2f}, {r['ratio_high']:.2f}] |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
