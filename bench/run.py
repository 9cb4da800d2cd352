"""Benchmarks in one run: keras_classics against keras.applications (same architectures, same
weights), the inference variants (folded BN, bf16, XLA, exported SavedModels), and the
hardware limit (the best of a GEMM/convolution sweep). Interleaved rounds, paired ratios
(median and range over the rounds), the targets checked, and oneDNN's profile of the bf16
path, so a missed target says where the time goes.

    python bench/run.py                    # VGG16, ResNet50, DenseNet121 at 224x224
    python bench/run.py --quick            # small inputs, one round: a smoke test (CI)
    python bench/run.py --models resnet50 --out bench/results
    python bench/run.py --render bench/results/results.json   # the tables again, no measuring

Writes OUT/results.md (tables) and OUT/results.json (every number, with the command, machine
and date). OUT defaults to bench/results for a full run and to runs/bench-quick for --quick,
so a smoke test never replaces the committed results.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # why: keras_classics.cli.ONEDNN
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_classics as kc  # noqa: E402
from keras_classics import provenance  # noqa: E402
from timing import KERAS_APPS, interleaved, peak, speedup  # noqa: E402
import where_time_goes as w  # noqa: E402

tf.get_logger().setLevel("ERROR")  # many tf.functions by design: no retracing warnings

TARGET_OURS, TARGET_FAST, TARGET_AGREE = 1.0, 2.5, 0.99


def fast_dtype():
    """The reduced-precision policy of the fast path: float16 on a GPU, bfloat16 on a CPU."""
    return "float16" if tf.config.list_physical_devices("GPU") else "bfloat16"


# what the rows call the fast path's dtype (a results.json keeps its own in settings)
LABELS = {"float16": "fp16", "bfloat16": "bf16"}
LOW = LABELS[fast_dtype()]


def inference_fn(model, x, jit=False):
    f = tf.function(lambda t: model(t, training=False), jit_compile=jit or None,
                    autograph=False)
    return lambda: np.asarray(f(x))


def train_fn(model, x, y):
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    # built before tracing: slot variables created inside the tf.function made TensorFlow
    # trace it twice (ResNet-50 at 64x64: tracing 17.3 s -> 7.3 s)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, training=True), tf.float32))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return lambda: float(step())


def saved_model_fn(model, directory, x, dtype=None):
    path = kc.export_saved_model(model, directory, dtype=dtype)
    served = tf.saved_model.load(path).signatures["predict_images"]
    return lambda: served(images=x)["scores"].numpy()


def torch_fns(x):
    """What a user would pick instead: torchvision's ResNet-50 on the same batch, channels-last
    under ``torch.inference_mode``, in fp32, in bfloat16, and in bfloat16 traced and frozen
    with ``torch.jit`` (oneDNN's fused kernels). Needs torch and torchvision (the test
    extra); {} without them."""
    try:
        import torch

        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests"))
        from torch_models import torchvision_models  # torchvision's models on the CPU torch
        models = torchvision_models()
    except ImportError:
        return {}
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    images = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).contiguous(
        memory_format=torch.channels_last)
    images16 = images.to(torch.bfloat16)
    fp32 = models.resnet50().eval().to(memory_format=torch.channels_last)
    bf16 = models.resnet50().eval().to(torch.bfloat16, memory_format=torch.channels_last)
    with torch.inference_mode():
        frozen = torch.jit.freeze(torch.jit.trace(bf16, images16))

    def run(model, inputs):
        def call():
            with torch.inference_mode():
                return model(inputs).float().numpy()
        return call
    return {"torch_fp32": run(fp32, images),
            "torch_bf16": run(bf16, images16),
            "torch_bf16_jit": run(frozen, images16)}


class JaxChild:
    """``ours`` under Keras' JAX backend, in a process of its own (bench/jax_child.py): jit-
    compiled inference in float32 and bf16-folded at each of ``batches``. ``fn(key)`` runs one
    of its calls from here, so the JAX rows are timed in the same interleaved rounds as
    TensorFlow's. Without JAX installed (the test extra has it), it has no functions."""

    def __init__(self, name, ours, size, batches):
        self.proc, self.keys = None, []
        try:
            import jax  # noqa: F401
        except ImportError:
            return
        self.dir = tempfile.TemporaryDirectory()
        weights = os.path.join(self.dir.name, "ours.weights.h5")
        ours.save_weights(weights)
        child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_child.py")
        self.proc = subprocess.Popen(
            [sys.executable, child, name, str(size), weights, ",".join(map(str, batches))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "KERAS_BACKEND": "jax"})
        ready = self.proc.stdout.readline().split()
        if ready[:1] != ["ready"]:
            raise RuntimeError(f"bench/jax_child.py failed (exit {self.proc.wait()})")
        self.keys = ready[1:]

    def fn(self, key):
        def call():
            self.proc.stdin.write(key + "\n")
            self.proc.stdin.flush()
            if self.proc.stdout.readline().strip() != "ok":
                raise RuntimeError(f"bench/jax_child.py failed on {key}")
        return call

    def fns(self, batch):
        """{"jax_fp32": ..., "jax_bf16_folded": ...} at ``batch``."""
        suffix = f"_b{batch}"
        return {k[:-len(suffix)]: self.fn(k) for k in self.keys if k.endswith(suffix)}

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.dir.cleanup()


def keras_twin(name, ours):
    """keras.applications' model of the same architecture, with ``ours``' weights."""
    twin = KERAS_APPS[name](weights=None, input_shape=ours.input_shape[1:])
    twin.set_weights(ours.get_weights())
    return twin


def bench_model(name, size, batch, train_batch, rounds, peaks):
    shape = (size, size, 3)
    macs = kc.profile(name, input_shape=shape).macs
    ours = kc.get_model(name, input_shape=shape)
    theirs = keras_twin(name, ours)
    # the A/A control: a second keras.applications model, same weights: how far apart two
    # identical models time on this machine (variable placement, allocator, noise)
    copy = keras_twin(name, ours)
    rng = np.random.default_rng(0)
    xs = {b: tf.constant(rng.uniform(0, 255, (b, *shape)), tf.float32)
          for b in (1, batch, train_batch)}
    y = tf.constant(rng.integers(0, 1000, train_batch))
    fast = kc.fuse_batchnorm(ours, dtype=fast_dtype())
    # ResNet-50 under JAX too, so a user can see which backend to pick
    jax = JaxChild(name, ours, size, (1, batch)) if name == "resnet50" else None
    # batch 1 is short: five calls per round
    b1 = interleaved({"ours": inference_fn(ours, xs[1]), "keras": inference_fn(theirs, xs[1]),
                      "keras_copy": inference_fn(copy, xs[1]),
                      "fast_folded": inference_fn(fast, xs[1]),
                      **(jax.fns(1) if jax else {})}, rounds, calls=5)
    with tempfile.TemporaryDirectory() as d:
        fns = {"ours": inference_fn(ours, xs[batch]), "keras": inference_fn(theirs, xs[batch]),
               "keras_copy": inference_fn(copy, xs[batch]),
               "folded": inference_fn(kc.fuse_batchnorm(ours), xs[batch]),
               "xla": inference_fn(ours, xs[batch], jit=True),
               "saved_model": saved_model_fn(ours, os.path.join(d, "fp32"), xs[batch]),
               "fast_folded": inference_fn(fast, xs[batch]),
               "fast_saved_model": saved_model_fn(ours, os.path.join(d, "fast"), xs[batch],
                                                  fast_dtype())}
        if name == "resnet50":
            fns.update(torch_fns(xs[batch]))
        if jax:
            fns.update(jax.fns(batch))
        b32 = interleaved(fns, rounds)
        if jax:
            jax.close()
        agree = float(np.mean(np.argmax(fns["fast_folded"](), -1) ==
                              np.argmax(fns["ours"](), -1)))
    train = interleaved({"ours": train_fn(ours, xs[train_batch], y),
                         "keras": train_fn(theirs, xs[train_batch], y),
                         "keras_copy": train_fn(copy, xs[train_batch], y)}, rounds)
    med = {k: statistics.median(v) for k, v in b32.items()}
    keras_t = med["keras"]
    ratios = {
        "ours/keras inference b1": speedup(b1, "ours", "keras"),
        f"ours/keras inference b{batch}": speedup(b32, "ours", "keras"),
        "ours/keras training": speedup(train, "ours", "keras"),
        "A/A keras copy/keras inference b1": speedup(b1, "keras_copy", "keras"),
        f"A/A keras copy/keras inference b{batch}": speedup(b32, "keras_copy", "keras"),
        "A/A keras copy/keras training": speedup(train, "keras_copy", "keras"),
        "folded/fp32": speedup(b32, "folded", "ours"),
        "xla/fp32": speedup(b32, "xla", "ours"),
        "saved_model/fp32": speedup(b32, "saved_model", "ours"),
        f"{LOW} folded/fp32": speedup(b32, "fast_folded", "ours"),
        f"{LOW} folded/keras fp32": speedup(b32, "fast_folded", "keras"),
        f"{LOW} SavedModel/keras fp32": speedup(b32, "fast_saved_model", "keras"),
        # the best any 16-bit implementation could do: every multiply-add at its peak
        f"{LOW} at peak/keras fp32 (bound)": (keras_t / (2 * macs * batch / peaks[LOW]),) * 3,
    }
    if "jax_fp32" in b32:  # TensorFlow (ours) against JAX, same model and weights
        for b, times in (("b1", b1), (f"b{batch}", b32)):
            ratios[f"ours fp32/jax fp32 {b}"] = speedup(times, "ours", "jax_fp32")
            ratios[f"{LOW} folded/jax {LOW} folded {b}"] = speedup(times, "fast_folded",
                                                                   "jax_bf16_folded")
    torch_keys = [k for k in b32 if k.startswith("torch_")]
    if torch_keys:  # our fast path against each PyTorch path, and against the best of them
        for k in torch_keys:
            ratios[f"{LOW} folded/{k.replace('_', ' ', 1)}"] = speedup(b32, "fast_folded", k)
        best = min(torch_keys, key=lambda k: med[k])
        ratios[f"{LOW} folded/best torch"] = speedup(b32, "fast_folded", best)
    achieved = {"achieved/peak fp32 (ours)": 2 * macs * batch / med["ours"] / peaks["fp32"],
                f"achieved/peak {LOW} ({LOW} folded)":
                    2 * macs * batch / med["fast_folded"] / peaks[LOW]}
    return {"gmacs": macs / 1e9,
            "latency_b1_ms": {k: statistics.median(v) * 1e3 for k, v in b1.items()},
            "throughput_img_s": {k: batch / v for k, v in med.items()},
            "train_img_s": {k: train_batch / statistics.median(v) for k, v in train.items()},
            "ratios": ratios, "achieved_over_peak": achieved,
            "best_torch": best if torch_keys else None,
            "bf16_top1_agreement_random_weights": agree}  # untrained: near ties; see digits


def frozen_weights_run(name, size, batch, rounds):
    """keras fp32 against the bf16 folded path in a separate inference-only process with
    TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 (oneDNN then reorders each weight once, not per call;
    only valid where weights never change, e.g. TF Serving). Returns the paired ratio."""
    code = ("import sys, json; sys.path.insert(0, %r); import run; "
            "print(json.dumps(run._frozen_child(%r, %d, %d, %d)))"
            % (os.path.dirname(os.path.abspath(__file__)), name, size, batch, rounds))
    env = {**os.environ, "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"frozen-weights run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _frozen_child(name, size, batch, rounds):
    shape = (size, size, 3)
    ours = kc.get_model(name, input_shape=shape)
    theirs = keras_twin(name, ours)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, *shape)), tf.float32)
    t = interleaved({"keras": inference_fn(theirs, x),
                     "fast_folded": inference_fn(kc.fuse_batchnorm(ours, dtype=fast_dtype()),
                                                 x)}, rounds)
    return speedup(t, "fast_folded", "keras")


def digits_agreement(epochs):
    """Top-1 agreement between fp32 and the folded bf16 path of a model trained here, on the
    held-out digits test images (real data): the accuracy cost of the fast path."""
    from keras_classics import datasets, training

    with tempfile.TemporaryDirectory() as d:
        run = training.train("resnet18", epochs=epochs, batch_size=64, output=d, verbose=0)
    fp32, summary = run.model, run.summary
    fast = kc.fuse_batchnorm(fp32, dtype=fast_dtype())
    xs = np.concatenate([x.numpy() for x, _ in datasets.digits(32).pipeline("test", 64)])
    a = np.argmax(fp32.predict(xs, verbose=0), -1)
    b = np.argmax(fast.predict(xs, verbose=0), -1)
    return {"images": len(xs), "agreement": float(np.mean(a == b)),
            "fp32_test_accuracy": summary["test_accuracy"]}


def fmt(r):
    return f"{r[0]:.2f}" if r[1] == r[2] else f"{r[0]:.2f} ({r[1]:.2f}–{r[2]:.2f})"


def noise_band(control):
    """How far from 1.0 the A/A control (two identical models) strays: the larger of its
    median's and its quartiles' distance from 1."""
    median, low, high = control
    return max(abs(1 - median), 1 - low, high - 1, 0.0)


def verdict(ratio, target, control=None):
    """met (median at or above the target); within noise (short of it, but by no more than
    the A/A ``control`` strays from 1, or with an interquartile range overlapping the
    control's); or missed (by how much)."""
    median, _, high = ratio if isinstance(ratio, (tuple, list)) else (ratio,) * 3
    if median >= target:
        return "met"
    short = 1 - median / target
    if control is not None:
        band = noise_band(control)
        if short <= band or high >= control[1] * target:
            return (f"within noise ({short:.1%} below; identical models: "
                    f"{fmt(control)})")
    return f"**missed by {short:.1%}**"


def targets(report):
    """[(target, measured, verdict)] for the issue's targets on this machine."""
    rows, low = [], LABELS[report["settings"]["fast_dtype"]]
    for name, m in report["models"].items():
        for k in ("inference b1", f"inference b{report['settings']['batch']}", "training"):
            ratio = m["ratios"][f"ours/keras {k}"]
            control = m["ratios"][f"A/A keras copy/keras {k}"]
            rows.append((f"{name} ours/keras {k} ≥ {TARGET_OURS}", fmt(ratio),
                         verdict(ratio, TARGET_OURS, control)))
    if "resnet50" in report["models"]:
        r = report["models"]["resnet50"]["ratios"]
        for k in (f"{low} folded/keras fp32", f"{low} SavedModel/keras fp32"):
            rows.append((f"resnet50 {k} ≥ {TARGET_FAST}", fmt(r[k]), verdict(r[k], TARGET_FAST)))
        if "frozen_weights" in report:
            f = report["frozen_weights"]
            rows.append((f"resnet50 {low} folded/keras fp32, frozen-weights process ≥ "
                         f"{TARGET_FAST}", fmt(f), verdict(f, TARGET_FAST)))
    a = report["bf16_digits"]["agreement"]
    rows.append((f"{low} vs fp32 top-1 agreement on held-out digits ≥ {TARGET_AGREE:.0%}",
                 f"{a:.2%}", verdict(a, TARGET_AGREE)))
    return rows


def markdown(report):
    s, models = report["settings"], list(report["models"])
    peaks, low = report["peak_gflops"], LABELS[report["settings"]["fast_dtype"]]
    lines = [provenance.heading(report.get("run")), "",
             f"Platform {report['machine']['platform']}. Input {s['size']}x{s['size']}, batch {s['batch']} "
             f"(training {s['train_batch']}), {s['rounds']} interleaved rounds: paired ratio "
             f"medians (interquartile range over rounds). Peak (best of a GEMM/convolution "
             f"sweep): fp32 {peaks['fp32']:.0f} GFLOP/s ({report['peak_kernel']['fp32']}), {low} "
             f"{peaks[low]:.0f} GFLOP/s ({report['peak_kernel'][low]}).", "",
             "| ratio | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    keys = list(dict.fromkeys(k for m in models for k in report["models"][m]["ratios"]))
    for k in keys:  # the PyTorch rows are ResNet-50's only
        lines.append(f"| {k} | " + " | ".join(
            fmt(report["models"][m]["ratios"][k]) if k in report["models"][m]["ratios"]
            else "–" for m in models) + " |")
    for k in report["models"][models[0]]["achieved_over_peak"]:
        lines.append(f"| {k} | " + " | ".join(
            f"{report['models'][m]['achieved_over_peak'][k]:.2f}" for m in models) + " |")
    lines.append(f"| throughput ours fp32 / {low} folded (img/s) | " + " | ".join(
        f"{report['models'][m]['throughput_img_s']['ours']:.1f} / "
        f"{report['models'][m]['throughput_img_s']['fast_folded']:.1f}" for m in models) + " |")
    a = report["bf16_digits"]
    lines += ["", f"{low} folded vs fp32 top-1 agreement, ResNet-18 trained on the digits here "
                  f"(fp32 test accuracy {a['fp32_test_accuracy']:.3f}), on {a['images']} "
                  f"held-out images: {a['agreement']:.4f}", "",
              "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {v} | {ok} |" for t, v, ok in targets(report)]
    if report.get("profile"):
        lines += ["", f"Where the time goes (oneDNN's own times, bench/where_time_goes.py; "
                      f"{report['profile_model']}, batch {s['batch']}, mean of "
                      f"{report['profile_raw'][0]['calls']} calls):", "",
                  report["profile"]]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(KERAS_APPS), choices=list(KERAS_APPS))
    p.add_argument("--quick", action="store_true", help="64x64, batch 4, one round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", help="default: bench/results; runs/bench-quick with --quick")
    p.add_argument("--render", metavar="JSON",
                   help="no measuring: print a results.json's tables (Markdown); with --out, "
                        "also write OUT/results.md")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            report = json.load(f)
        if args.out:
            return write(report, args.out)
        print(markdown(report))
        return 0
    args.out = args.out or ("runs/bench-quick" if args.quick else "bench/results")
    size, batch, train_batch, rounds = (64, 4, 4, 1) if args.quick else \
        (224, 32, 16, args.rounds)
    print("peak rates ...", file=sys.stderr, flush=True)
    peaks = {k: peak(dt, quick=args.quick) for k, dt in (("fp32", tf.float32),
                                                          (LOW, fast_dtype()))}
    gpus = len(tf.config.list_physical_devices("GPU"))
    run = provenance.run_record()
    report = {"run": run, "machine": run["machine"],
              "settings": {"size": size, "batch": batch, "train_batch": train_batch,
                           "rounds": rounds, "fast_dtype": fast_dtype()},
              "peak_gflops": {k: v[0] / 1e9 for k, v in peaks.items()},
              "peak_kernel": {k: v[1] for k, v in peaks.items()}, "models": {}}
    peaks = {k: v[0] for k, v in peaks.items()}
    for name in args.models:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        report["models"][name] = bench_model(name, size, batch, train_batch, rounds, peaks)
    if "resnet50" in args.models and not gpus:
        print("bf16 path in an inference-only process ...", file=sys.stderr, flush=True)
        report["frozen_weights"] = frozen_weights_run("resnet50", size, batch, rounds)
        print("profile ...", file=sys.stderr, flush=True)
        profiles = [w.profile("resnet50", v, batch, size) for v in ("keras", "bf16_folded")]
        report["profile_model"] = "resnet50"
        report["profile_raw"] = profiles
        report["profile"] = w.table(profiles, {"keras": peaks["fp32"] / 1e9,
                                               "bf16_folded": peaks[LOW] / 1e9})
    print("bf16 agreement on digits ...", file=sys.stderr, flush=True)
    report["bf16_digits"] = digits_agreement(1 if args.quick else 8)
    return write(report, args.out)


def write(report, out):
    """OUT/results.md and OUT/results.json, each whole or not at all."""
    os.makedirs(out, exist_ok=True)
    text = markdown(report)
    for fname, content in (("results.md", text + "\n"),
                           ("results.json", json.dumps(report, indent=1))):
        path = os.path.join(out, fname)
        with open(path + ".tmp", "w") as f:  # whole files only: write, then rename
            f.write(content)
        os.replace(path + ".tmp", path)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
