"""Which tf.distribute strategy, which worker this process is, and which precision."""
import contextlib
import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
PUBLIC_NAMES = {"_DefaultDistributionStrategy": "default",
                "MirroredStrategy": "MirroredStrategy",
                "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}


def make_strategy(kind="auto", cpu_replicas=None):
    """``auto``: MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy when more
    than one GPU is visible, else the default strategy. ``cpu_replicas=N`` splits the CPU into
    N logical devices for a CPU-only MirroredStrategy (a stand-in for several GPUs)."""
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; allowed: {', '.join(STRATEGIES)}")
    if cpu_replicas:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            pass  # already initialized (a second run in the same process): keep what exists
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "auto":
        kind = "multiworker" if os.environ.get("TF_CONFIG") else \
            "mirrored" if len(gpus) > 1 or cpu_replicas else "default"
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def strategy_name(strategy):
    return PUBLIC_NAMES.get(type(strategy).__name__, type(strategy).__name__)


def worker_role():
    """(task type, task id, is chief) from TF_CONFIG."""
    cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cfg.get("task", {})
    kind, index = task.get("type"), task.get("index", 0)
    return kind, index, kind in (None, "chief") or (kind == "worker" and index == 0 and
                                                    "chief" not in cfg.get("cluster", {}))


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def fast_precision(cpuinfo="/proc/cpuinfo"):
    """The fastest policy this machine trains in: "mixed_float16" on a GPU of compute
    capability 7.0 or more (tensor cores), "mixed_bfloat16" on a CPU with bfloat16
    instructions (AVX512_BF16 or AMX; oneDNN runs bf16 matmuls and convolutions on them:
    ZFNet trains 1.7-1.9x faster than in float32 here), else "float32" (bfloat16 emulated
    in AVX-512F or AVX2 is slower than float32)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0))
        return "mixed_float16" if tuple(capability) >= (7, 0) else "float32"
    try:
        with open(cpuinfo) as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:  # no /proc (macOS, Windows): nothing to tell, keep float32
        return "float32"
    return "mixed_bfloat16" if flags & set(BF16_CPU_FLAGS) else "float32"


@contextlib.contextmanager
def precision(mixed):
    """Set Keras' global policy for the block: mixed_float16 on a GPU, mixed_bfloat16 on a
    CPU, float32 without ``mixed``; ``mixed="auto"`` mixes where it is faster
    (:func:`fast_precision`). Yields the policy's name."""
    old = keras.mixed_precision.global_policy()
    if mixed == "auto":
        mixed = fast_precision() != "float32"
    if mixed:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
    try:
        yield keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy(old)
