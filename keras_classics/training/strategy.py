"""Which tf.distribute strategy, and which worker this process is."""
import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
PUBLIC_NAMES = {"_DefaultDistributionStrategy": "default",
                "MirroredStrategy": "MirroredStrategy",
                "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}


def make_strategy(kind="auto", cpu_replicas=None):
    """``auto``: MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy when more
    than one GPU is visible, else the default strategy. ``cpu_replicas=N`` splits the CPU into
    N logical devices for a CPU-only MirroredStrategy (a stand-in for several GPUs); it is
    refused when GPUs are visible rather than silently ignored."""
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; allowed: {', '.join(STRATEGIES)}")
    gpus = tf.config.list_physical_devices("GPU")
    if cpu_replicas and gpus:
        raise ValueError(f"--cpu-replicas splits the CPU into replicas, but {len(gpus)} GPU(s) "
                         "are visible: drop --cpu-replicas to train on the GPUs, or hide them "
                         "(CUDA_VISIBLE_DEVICES=) to train on CPU replicas")
    if cpu_replicas:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            pass  # already initialized (a second run in the same process): keep what exists
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
