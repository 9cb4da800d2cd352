"""Benchmark: how long profiling the whole zoo takes (the target is under a minute on a 2-core
CPU). Profiling builds each model and propagates symbolic shapes; nothing runs on data.
Reports build time and profile time separately, measured in this one run.

    python bench/profile_zoo.py
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # why: keras_classics.cli.ONEDNN

import keras  # noqa: E402

import keras_classics as kc  # noqa: E402


def main():
    names = kc.list_models()
    build_s = profile_s = 0.0
    for name in names:
        t0 = time.perf_counter()
        model = kc.get_model(name)
        t1 = time.perf_counter()
        kc.profile(model)
        t2 = time.perf_counter()
        build_s, profile_s = build_s + t1 - t0, profile_s + t2 - t1
        keras.backend.clear_session()
    total = build_s + profile_s
    print(f"{len(names)} models: build {build_s:.1f} s + profile {profile_s:.1f} s = "
          f"{total:.1f} s; profiling alone is {profile_s / build_s:.2f}x the build time")
    print("target (whole zoo under 60 s):",
          "met" if total < 60 else f"missed by {total - 60:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
