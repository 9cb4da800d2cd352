"""What the benchmarks share: the keras.applications twins of the benchmarked models,
interleaved rounds, paired ratios, the machine's peak rate. Benchmarks report ratios measured side by side in one run; nothing here asserts a
speed."""
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

# the models benchmarked against their keras.applications twin
KERAS_APPS = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50,
              "densenet121": keras.applications.DenseNet121}


def interleaved(fns, rounds, calls=1, before=None):
    """Time every ``fns[key]()`` ``calls`` times per round, the keys taking turns in each of
    ``rounds`` rounds (so drift in the machine hits all alike), in reversed order every
    other round (so no key always runs right after the same neighbour). Each is called once
    first (tracing, warm-up). ``before()``, if given, runs untimed before every timed call.
    Returns ``{key: [seconds per call, one per round]}`` (the median of the round's calls)."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for r in range(rounds):
        for k, f in list(fns.items())[::-1 if r % 2 else 1]:
            per_call = []
            for _ in range(calls):
                if before:
                    before()
                t = time.perf_counter()
                f()
                per_call.append(time.perf_counter() - t)
            times[k].append(statistics.median(per_call))
    return times


def write_report(out, stem, report, text):
    """``OUT/STEM.md`` (the rendered ``text``) and ``OUT/STEM.json`` (the ``report``), each
    written whole or not at all."""
    import json
    import os

    from keras_classics.training.outputs import atomic_write

    os.makedirs(out, exist_ok=True)
    atomic_write(os.path.join(out, f"{stem}.md"), text + "\n")
    atomic_write(os.path.join(out, f"{stem}.json"), json.dumps(report, indent=1))


def fuse_batch_norm(model, fused):
    """Train ``model``'s batch norms through TensorFlow's fused kernel (``fused``) or through
    Keras' own code (``keras_classics.layers.BatchNormalization.fused``)."""
    from keras_classics.layers import BatchNormalization

    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            layer.fused = fused


def speedup(times, fast, slow):
    """``slow``'s time over ``fast``'s, per round (paired): ``(median, low, high)``, low and
    high the quartiles (with fewer than 4 rounds: the extremes)."""
    r = [s / f for f, s in zip(times[fast], times[slow])]
    if len(r) < 4:
        return statistics.median(r), min(r), max(r)
    q1, q2, q3 = statistics.quantiles(r, n=4, method="inclusive")
    return q2, q1, q3


# GEMM-like kernels for the peak: square matmuls and the convolution shapes oneDNN runs
# fastest (a single matmul underestimates what its convolution kernels reach).
PEAK_KERNELS = [("matmul", 2048), ("matmul", 4096), ("conv3x3", (56, 64)),
                ("conv3x3", (28, 128)), ("conv3x3", (14, 256)), ("conv1x1", (14, 1024))]


def _kernel(kind, shape, dtype):
    rng = np.random.default_rng(0)
    if kind == "matmul":
        a = tf.cast(rng.normal(size=(shape, shape)), dtype)
        return tf.function(lambda: tf.linalg.matmul(a, a)), 2 * shape ** 3
    hw, c = shape
    k = 3 if kind == "conv3x3" else 1
    x = tf.cast(rng.normal(size=(32, hw, hw, c)), dtype)
    w = tf.cast(rng.normal(size=(k, k, c, c)), dtype)
    return tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")), 2 * 32 * hw * hw * c * c * k * k


def peak(dtype, rounds=10, quick=False):
    """The machine's practical peak FLOP/s for ``dtype``: the best of ``PEAK_KERNELS`` (each
    the fastest of ``rounds`` calls). Returns ``(flops_per_second, kernel description)``."""
    best = (0.0, "")
    # quick: one 1024 matmul (a 256 one is mostly call overhead: ResNet-50 ran at 2.1x its
    # "peak" on an AMD EPYC)
    for kind, shape in [("matmul", 1024)] if quick else PEAK_KERNELS:
        fn, flops = _kernel(kind, shape, dtype)
        fn()
        t = min(_once(fn) for _ in range(rounds))
        best = max(best, (flops / t, f"{kind} {shape}"))
    return best


def _once(fn):
    """Seconds for one ``fn()``, waited for through a single element of its result (copying
    the whole result to the host would count a GPU's transfer as compute)."""
    t = time.perf_counter()
    fn()[0, 0].numpy()
    return time.perf_counter() - t
