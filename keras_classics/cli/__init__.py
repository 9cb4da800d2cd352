"""Argument types shared by the tools: counts and sizes are checked by argparse, so a bad
value is a usage error (exit 2) before anything is read or written."""
import argparse
import os
import sys


# Every tool (and bench/, tests/conftest.py) sets TF_ENABLE_ONEDNN_OPTS=1 before importing
# TensorFlow, unless it is set already. TensorFlow turns oneDNN's kernels on by itself only on
# CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere (AVX2-only CPUs such as many AMD EPYCs) its own
# convolution gradients are slow on small feature maps: a 3x3 convolution's backward pass on a
# 1x1 map took 500 ms instead of 46 ms, and ResNet-18 trained at 28 images/s instead of 135 on
# the digits at 32x32 (model.fit, batch 64, 2 AMD EPYC cores). Library users set it themselves,
# before TensorFlow is imported.
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"


def _int_at_least(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value
    parse.__name__ = "int"
    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "zero or more")


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def add_precision_arguments(parser, default="float32", help_default=None):
    """``--precision`` (training.PRECISIONS) and ``--mixed-precision`` (= ``auto``)."""
    from ..training.precision import PRECISIONS  # the training commands only: TensorFlow

    parser.add_argument("--precision", choices=PRECISIONS, default=default,
                        help="Keras dtype policy; auto: mixed_float16 on GPUs with tensor "
                             "cores, mixed_bfloat16 on CPUs with bfloat16 instructions, else "
                             f"float32 (default: {help_default or default})")
    parser.add_argument("--mixed-precision", dest="precision", action="store_const",
                        const="auto", help="the same as --precision auto")


def warn_if_gpus_unused(driver="/proc/driver/nvidia/version"):
    """The tools quieten TensorFlow's log (TF_CPP_MIN_LOG_LEVEL), which also hides "Cannot
    dlopen some GPU libraries": with an NVIDIA driver installed and no GPU visible to
    TensorFlow (and none hidden on purpose with CUDA_VISIBLE_DEVICES), say so on stderr.
    Returns the warning, or None."""
    import tensorflow as tf

    if not os.path.exists(driver) or os.environ.get("CUDA_VISIBLE_DEVICES") is not None \
            or tf.config.list_physical_devices("GPU"):
        return None
    message = ("warning: this machine has an NVIDIA driver but TensorFlow sees no GPU, so this "
               "runs on the CPU. Install the GPU build (pip install -e '.[gpu]', Linux only) "
               "and run with TF_CPP_MIN_LOG_LEVEL=0 to see which CUDA library failed to load")
    print(message, file=sys.stderr)
    return message


def first_line(err, limit=400):
    """An exception's message on one line: Keras and TensorFlow append tracebacks and whole
    model configs to theirs."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def print_rendered(parser, path, markdown):
    """``--render PATH``: print ``markdown(results)`` of a results JSON file the command
    wrote; an unreadable or foreign file is a usage error (exit 2)."""
    import json

    try:
        with open(path) as f:
            print(markdown(json.load(f)))
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"cannot render {path}: {err!r}")
    return 0
