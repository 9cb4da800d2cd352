"""Benchmark: inference throughput of the exported, BN-folded SavedModel against the unfused
Keras model, at batch 1 and batch 32, measured side by side in one run (interleaved, median
of --repeats). Reports images/s and the ratio SavedModel / Keras.

    python bench/export_throughput.py [--model resnet50] [--size 224] [--repeats 5]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_classics as kc  # noqa: E402


def timed(fn, x, repeats):
    fn(x)  # warm-up (tracing)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    model = kc.get_model(args.model, input_shape=(args.size, args.size, 3))
    keras_fn = tf.function(lambda x: model(x, training=False))
    with tempfile.TemporaryDirectory() as d:
        path = kc.export_saved_model(model, d)
        served = tf.saved_model.load(path).signatures["predict_images"]
        serve_fn = lambda x: served(images=x)  # noqa: E731
        print(f"{args.model} at {args.size}x{args.size}, {os.cpu_count()} CPU cores, "
              f"median of {args.repeats}")
        print("| batch | Keras (unfused) img/s | SavedModel (folded) img/s | ratio |")
        print("|---|---|---|---|")
        for batch in (1, 32):
            x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, args.size,
                                                                      args.size, 3)),
                            tf.float32)
            k_times, s_times = [], []
            for _ in range(args.repeats):  # interleaved
                k_times += timed(keras_fn, x, 1)
                s_times += timed(serve_fn, x, 1)
            k = batch / statistics.median(k_times)
            s = batch / statistics.median(s_times)
            print(f"| {batch} | {k:.1f} | {s:.1f} | {s / k:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
