"""Training on tf.distribute: one loop for one device, all GPUs of a host, or many hosts.

:func:`train` is the entry point; its parts are ``presets`` (the papers' optimizers and
schedules), ``strategy``, ``precision``, ``loop`` (the steps), ``checkpoints`` (lock, run
settings, TensorFlow checkpoints) and ``outputs``. With the data order a pure function of (seed,
epoch), a run killed at any moment and rerun ends with the weights an uninterrupted run has.
"""
from ..backend import require_tensorflow

require_tensorflow("keras_classics.training (the tf.distribute loop)")

from .checkpoints import CorruptCheckpoint, RunMismatch  # noqa: E402
from .loop import StepLoop, total_loss
from .outputs import saved_preprocessing
from .presets import (PRESETS, SCHEDULES, Preset, Warmup, get_preset, make_optimizer,
                      plateau_update, schedule)
from .runner import TrainingDiverged, TrainResult, train
from .precision import (PRECISIONS, LossScaleOptimizer, check_precision, fast_precision,
                        precision, resolve_precision)
from .strategy import STRATEGIES, make_strategy, worker_role

__all__ = ["CorruptCheckpoint", "LossScaleOptimizer", "PRECISIONS", "PRESETS", "Preset",
           "RunMismatch", "SCHEDULES", "STRATEGIES", "StepLoop", "TrainResult",
           "TrainingDiverged", "Warmup", "check_precision", "fast_precision", "get_preset",
           "make_optimizer",
           "make_strategy", "plateau_update", "precision", "resolve_precision",
           "saved_preprocessing", "schedule", "total_loss", "train", "worker_role"]
