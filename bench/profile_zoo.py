"""Benchmark: how long profiling the whole zoo takes (the target is under a minute on a 2-core
CPU). ``profile(name)`` builds each model's shapes only (``ModelInfo.build_shapes``: no
variable initializer runs) and propagates symbolic shapes; nothing runs on data. Reports, in
this one run, the shapes-only build, the full build users get from ``get_model`` (the two
alternating per model) and the profile walk, separately.

    python bench/profile_zoo.py                    # every registered model
    python bench/profile_zoo.py --models resnet18  # some
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # why: keras_classics.cli.ONEDNN

import keras  # noqa: E402

import keras_classics as kc  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=kc.list_models(), metavar="NAME",
                   help="registered names (default: all)")
    names = p.parse_args(argv).models
    shapes_s = full_s = profile_s = 0.0
    for i, name in enumerate(names):
        info = kc.model_info(name)
        for kind in (("shapes", "full") if i % 2 else ("full", "shapes")):
            t0 = time.perf_counter()
            model = info.build_shapes() if kind == "shapes" else info.build()
            t1 = time.perf_counter()
            if kind == "shapes":
                shapes_s += t1 - t0
                kc.profile(model)
                profile_s += time.perf_counter() - t1
            else:
                full_s += t1 - t0
            del model
            keras.backend.clear_session()
    total = shapes_s + profile_s
    print(f"{len(names)} models: build {shapes_s:.1f} s (shapes only; full build "
          f"{full_s:.1f} s, {full_s / shapes_s:.2f}x) + profile {profile_s:.1f} s = "
          f"{total:.1f} s")
    print("target (whole zoo under 60 s):",
          "met" if total < 60 else f"missed by {total - 60:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
