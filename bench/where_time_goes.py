"""Where the inference time goes: every layer of a model timed on its own (tf.function, its
real input shapes, median of --repeats), summed by layer type, in fp32 and in
mixed_bfloat16, side by side. The totals approximate the whole model (no fusion across
layers), enough to see which layer types the bf16 path speeds up and which it does not.

    python bench/where_time_goes.py [--model resnet50] [--batch 32] [--size 224]
"""
import argparse
import collections
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_classics as kc  # noqa: E402


def layer_times(model, batch, repeats):
    """{layer type: seconds} summed over the layers of ``model`` (inputs at their real shapes)."""
    totals = collections.Counter()
    rng = np.random.default_rng(0)
    for layer in model.layers[1:]:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        xs = [tf.constant(rng.normal(size=(batch, *t.shape[1:])), t.dtype) for t in inputs]
        fn = tf.function(lambda *a, layer=layer: layer(a if len(a) > 1 else a[0]))
        fn(*xs)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn(*xs)
            np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
            times.append(time.perf_counter() - t)
        totals[type(layer).__name__] += statistics.median(times)
    return totals


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    shape = (args.size, args.size, 3)
    fp32 = kc.fuse_batchnorm(kc.get_model(args.model, input_shape=shape))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bf16 = kc.fuse_batchnorm(kc.get_model(args.model, input_shape=shape))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    a, b = layer_times(fp32, args.batch, args.repeats), layer_times(bf16, args.batch,
                                                                   args.repeats)
    ta, tb = sum(a.values()), sum(b.values())
    print(f"{args.model} (BN folded), batch {args.batch} at {args.size}x{args.size}, layers "
          f"timed one by one, median of {args.repeats}")
    print("| layer type | fp32 ms | share | bf16 ms | share | speed-up |")
    print("|---|---|---|---|---|---|")
    for kind in sorted(a, key=a.get, reverse=True):
        print(f"| {kind} | {a[kind] * 1e3:.0f} | {a[kind] / ta:.0%} | {b[kind] * 1e3:.0f} | "
              f"{b[kind] / tb:.0%} | {a[kind] / b[kind]:.2f}x |")
    print(f"| total | {ta * 1e3:.0f} | | {tb * 1e3:.0f} | | {ta / tb:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
