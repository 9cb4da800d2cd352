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


@contextlib.contextmanager
def precision(mixed):
    """Set Keras' global policy for the block: mixed_float16 on a GPU, mixed_bfloat16 on a
    CPU, float32 without ``mixed``; yields the policy's name."""
    old = keras.mixed_precision.global_policy()
    if mixed:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
    try:
        yield keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy(old)
