"""An exported SavedModel served with and without ``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1``: what a
TF Serving user should set. With it, oneDNN reorders each weight into its blocked layout once
instead of on every call (valid only where weights never change: a served model).

Two server processes load the same SavedModels (ResNet-50, float32 and bfloat16 folded, from
``keras-classics export``) and run ``predict_images`` when told; this process times each call
(batch 1 and 4) in interleaved rounds and reports the paired ratio frozen/not frozen.

    python bench/frozen_serving.py                 # ResNet-50 at 224, 7 rounds
    python bench/frozen_serving.py --quick         # 64x64, 1 round: a smoke test

Writes OUT/frozen_serving.md and .json (OUT: bench/results, runs/bench-quick with --quick).
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

BATCHES = (1, 4)


def serve(paths, size):
    """The server: load each SavedModel, then run ``predict_images`` on each request."""
    import numpy as np
    import tensorflow as tf

    models = {k: tf.saved_model.load(p).signatures["predict_images"] for k, p in paths.items()}
    x = {b: tf.constant(np.random.default_rng(0).uniform(0, 255, (b, size, size, 3)),
                        tf.float32) for b in BATCHES}
    print("ready", os.environ.get("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"), flush=True)
    for line in sys.stdin:
        key, batch = line.split()
        models[key](images=x[int(batch)])["scores"].numpy()
        print("ok", flush=True)


class Server:
    def __init__(self, paths, size, frozen):
        env = {**os.environ, "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1" if frozen else "0"}
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", json.dumps(paths),
             "--size", str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env)
        ready = self.proc.stdout.readline().split()  # the setting as the server sees it
        if ready[:1] != ["ready"]:
            raise RuntimeError(f"server failed to start (exit {self.proc.wait()})")
        self.setting = ready[1]

    def fn(self, key, batch):
        def call():
            self.proc.stdin.write(f"{key} {batch}\n")
            self.proc.stdin.flush()
            if self.proc.stdout.readline().strip() != "ok":
                raise RuntimeError(f"server failed on {key} {batch}")
        return call

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out")
    p.add_argument("--render", metavar="JSON")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args(argv)
    if args.serve:
        return serve(json.loads(args.serve), args.size)
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)))
        return 0
    import keras_classics as kc
    from keras_classics import provenance
    from timing import interleaved, speedup, write_report

    args.out = args.out or ("runs/bench-quick" if args.quick else "bench/results")
    size, rounds = (64, 1) if args.quick else (args.size, args.rounds)
    model = kc.get_model("resnet50", input_shape=(size, size, 3))
    with tempfile.TemporaryDirectory() as d:
        paths = {"fp32": kc.export_saved_model(model, os.path.join(d, "fp32")),
                 "bf16": kc.export_saved_model(model, os.path.join(d, "bf16"),
                                               dtype="bfloat16")}
        servers = {frozen: Server(paths, size, frozen) for frozen in (False, True)}
        try:
            fns = {f"{key} b{b} {'frozen' if frozen else 'default'}": s.fn(key, b)
                   for frozen, s in servers.items() for key in paths for b in BATCHES}
            times = interleaved(fns, rounds, calls=3)
            seen = {("frozen" if frozen else "default"): s.setting
                    for frozen, s in servers.items()}
        finally:
            for s in servers.values():
                s.close()
    rows = []
    for key in paths:
        for b in BATCHES:
            fast, slow = f"{key} b{b} frozen", f"{key} b{b} default"
            ratio = speedup(times, fast, slow)
            rows.append({"model": key, "batch": b,
                         "default_ms": statistics.median(times[slow]) * 1e3,
                         "frozen_ms": statistics.median(times[fast]) * 1e3,
                         "ratio": ratio[0], "ratio_low": ratio[1], "ratio_high": ratio[2]})
    report = {"run": provenance.run_record(),
              "settings": {"size": size, "rounds": rounds, "quick": args.quick,
                           "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS in the servers": seen},
              "rows": rows}
    text = markdown(report)
    write_report(args.out, "frozen_serving", report, text)
    print(text)
    return 0


def markdown(report):
    from keras_classics import provenance

    s = report["settings"]
    lines = [provenance.heading(report.get("run")), "",
             f"ResNet-50 SavedModel (`predict_images`), {s['size']}x{s['size']}, each call "
             f"timed from the client of a server process, {s['rounds']} interleaved rounds; "
             "ratio: default time over frozen time, paired, median [quartiles]", "",
             "| export | batch | default ms | `TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1` ms | "
             "speed-up |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['default_ms']:.1f} | "
                     f"{r['frozen_ms']:.1f} | {r['ratio']:.2f} [{r['ratio_low']:.2f}, "
                     f"{r['ratio_high']:.2f}] |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
