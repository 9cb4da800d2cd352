"""Benchmarks in one process and one run: keras_classics against keras.applications (same
architectures), the inference variants (folded BN, bf16, XLA, exported SavedModel), and the
hardware limit (a large fp32 and bf16 matmul). Interleaved repeats, medians, ratios.

    python bench/run.py                    # VGG16, ResNet50, DenseNet121 at 224x224
    python bench/run.py --quick            # small inputs, one repeat: a smoke test (CI)
    python bench/run.py --models resnet50 --out bench/results

Writes OUT/results.md (a table of ratios) and OUT/results.json.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_classics as kc  # noqa: E402

KERAS_APPS = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50,
              "densenet121": keras.applications.DenseNet121}


def median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak(dtype, n, repeats):
    """Achieved FLOP/s of an n×n matmul: the machine's practical limit for this dtype."""
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda: tf.linalg.matmul(a, a))
    t = median_time(lambda: f().numpy(), repeats)
    return 2 * n ** 3 / t


def inference_fn(model, x, jit=False):
    f = tf.function(lambda t: model(t, training=False), jit_compile=jit or None)
    return lambda: np.asarray(f(x))


def train_fn(model, x, y):
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, training=True), tf.float32))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return lambda: float(step())


def bench_model(name, size, batch, train_batch, repeats, peaks):
    rows = {}
    macs = kc.profile(name, input_shape=(size, size, 3)).macs
    ours = kc.get_model(name, input_shape=(size, size, 3))
    theirs = KERAS_APPS[name](weights=None, input_shape=(size, size, 3))
    theirs.set_weights(ours.get_weights())
    rng = np.random.default_rng(0)
    xs = {b: tf.constant(rng.normal(size=(b, size, size, 3)), tf.float32)
          for b in (1, batch, train_batch)}
    y = tf.constant(rng.integers(0, 1000, train_batch))
    fns = {
        ("ours", "b1"): inference_fn(ours, xs[1]),
        ("keras", "b1"): inference_fn(theirs, xs[1]),
        ("ours", f"b{batch}"): inference_fn(ours, xs[batch]),
        ("keras", f"b{batch}"): inference_fn(theirs, xs[batch]),
        ("ours", "train"): train_fn(ours, xs[train_batch], y),
        ("keras", "train"): train_fn(theirs, xs[train_batch], y),
    }
    fused = kc.fuse_batchnorm(ours)
    fns[("folded", f"b{batch}")] = inference_fn(fused, xs[batch])
    fns[("xla", f"b{batch}")] = inference_fn(ours, xs[batch], jit=True)
    with tempfile.TemporaryDirectory() as d:
        path = kc.export_saved_model(ours, d)
        served = tf.saved_model.load(path).signatures["predict_images"]
        fns[("saved_model", f"b{batch}")] = lambda: served(images=xs[batch])["scores"].numpy()
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
        try:
            bf16 = kc.get_model(name, input_shape=(size, size, 3))
            bf16.set_weights(ours.get_weights())
            bf16_folded = kc.fuse_batchnorm(bf16)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        fns[("bf16_folded", f"b{batch}")] = inference_fn(bf16_folded, xs[batch])
        times = {k: [] for k in fns}
        for f in fns.values():
            f()  # warm-up and tracing, once each
        for _ in range(repeats):  # interleaved
            for k, f in fns.items():
                times[k].append(median_time(f, 1, warmup=0))
        # top-1 agreement between the bf16 folded path and fp32 on the same inputs
        agree = float(np.mean(np.argmax(fns[("bf16_folded", f"b{batch}")](), -1) ==
                              np.argmax(fns[("ours", f"b{batch}")](), -1)))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows["latency_b1_ms"] = {"ours": med[("ours", "b1")] * 1e3,
                             "keras": med[("keras", "b1")] * 1e3}
    thr = {who: batch / med[(who, f"b{batch}")] for who in
           ("ours", "keras", "folded", "xla", "saved_model", "bf16_folded")}
    rows["throughput_img_s"] = thr
    rows["train_img_s"] = {who: train_batch / med[(who, "train")] for who in ("ours", "keras")}
    rows["ratios"] = {
        "ours/keras inference b1": med[("keras", "b1")] / med[("ours", "b1")],
        f"ours/keras inference b{batch}": thr["ours"] / thr["keras"],
        "ours/keras training": rows["train_img_s"]["ours"] / rows["train_img_s"]["keras"],
        "folded/fp32": thr["folded"] / thr["ours"],
        "xla/fp32": thr["xla"] / thr["ours"],
        "saved_model/fp32": thr["saved_model"] / thr["ours"],
        "bf16 folded/fp32": thr["bf16_folded"] / thr["ours"],
        "bf16 folded/keras fp32": thr["bf16_folded"] / thr["keras"],
        "achieved/peak fp32": 2 * macs * thr["ours"] / peaks["fp32"],
        "achieved/peak bf16 (bf16 folded)": 2 * macs * thr["bf16_folded"] / peaks["bf16"],
    }
    rows["bf16_top1_agreement_random_weights"] = agree  # untrained: near ties, see digits
    rows["gmacs"] = macs / 1e9
    return rows


def digits_agreement(epochs):
    """Top-1 agreement between fp32 and the folded bf16 path of a model trained here, on the
    held-out digits test images (real data): the accuracy cost of the fast path."""
    from keras_classics import data, training

    with tempfile.TemporaryDirectory() as d:
        summary = training.train("resnet18", epochs=epochs, batch_size=64, output=d,
                                 verbose=0)
    fp32 = summary["model_object"]
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bf16 = kc.get_model("resnet18", input_shape=(32, 32, 3), classes=10)
        bf16.set_weights(fp32.get_weights())
        bf16 = kc.fuse_batchnorm(bf16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    xs = np.concatenate([x.numpy() for x, _ in data.digits(32).pipeline("test", 64)])
    a = np.argmax(fp32.predict(xs, verbose=0), -1)
    b = np.argmax(np.asarray(bf16.predict(xs, verbose=0), "float32"), -1)
    return {"images": len(xs), "agreement": float(np.mean(a == b)),
            "fp32_test_accuracy": summary["test_accuracy"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(KERAS_APPS), choices=list(KERAS_APPS))
    p.add_argument("--quick", action="store_true", help="64x64, batch 4, one repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    size, batch, train_batch, repeats, n = (64, 4, 4, 1, 512) if args.quick else \
        (224, 32, 16, args.repeats, 4096)
    peaks = {"fp32": peak(tf.float32, n, max(repeats, 2)),
             "bf16": peak(tf.bfloat16, n, max(repeats, 2))}
    report = {"machine": {"cpu_cores": os.cpu_count(), "platform": platform.platform(),
                          "gpus": len(tf.config.list_physical_devices("GPU")),
                          "tensorflow": tf.__version__, "keras": keras.__version__},
              "settings": {"size": size, "batch": batch, "train_batch": train_batch,
                           "repeats": repeats},
              "peak_gflops": {k: v / 1e9 for k, v in peaks.items()}, "models": {}}
    for name in args.models:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        report["models"][name] = bench_model(name, size, batch, train_batch, repeats, peaks)
    print("bf16 agreement on digits ...", file=sys.stderr, flush=True)
    report["bf16_digits"] = digits_agreement(1 if args.quick else 8)
    os.makedirs(args.out, exist_ok=True)
    lines = [f"Machine: {report['machine']['cpu_cores']} cores, "
             f"{report['machine']['platform']}, TF {tf.__version__}; input {size}x{size}, "
             f"batch {batch} (training {train_batch}), median of {repeats}; peak matmul "
             f"fp32 {report['peak_gflops']['fp32']:.0f} GFLOP/s, bf16 "
             f"{report['peak_gflops']['bf16']:.0f} GFLOP/s", "",
             "| ratio | " + " | ".join(args.models) + " |",
             "|---|" + "---|" * len(args.models)]
    keys = list(next(iter(report["models"].values()))["ratios"])
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{report['models'][m]['ratios'][k]:.2f}"
                                              for m in args.models) + " |")
    agree = report["bf16_digits"]
    lines += ["", f"bf16 (folded) vs fp32 top-1 agreement, ResNet-18 trained on the digits here "
                  f"(fp32 test accuracy {agree['fp32_test_accuracy']:.3f}), on "
                  f"{agree['images']} held-out images: {agree['agreement']:.4f}"]
    text = "\n".join(lines)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
