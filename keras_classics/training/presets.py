"""Training presets from the papers, the optimizer they name, and their learning-rate schedule
as Keras schedules driven by ``optimizer.iterations`` (so a restored optimizer resumes it)."""
import dataclasses

import keras
import tensorflow as tf

from .precision import LossScaleOptimizer


@dataclasses.dataclass(frozen=True)
class Preset:
    """A training preset: defaults the user can override. ``lr`` is for ``batch_size``; other
    batch sizes scale it linearly (Goyal et al. 2017)."""

    name: str
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 256
    schedule: str = "cosine"  # cosine | step | plateau | constant
    epochs: int = 90
    augment: tuple = ("crop", "flip")
    aux_weight: float = 0.3  # GoogLeNet's auxiliary losses (section 6 of the paper)
    patience: int = 2  # plateau: epochs without validation improvement before lr /= 10
    warmup_epochs: float = 0.0


PRESETS = {
    # Krizhevsky et al. 2012, section 5 (and the lecture): SGD momentum 0.9, lr 1e-2 divided
    # by 10 when validation accuracy plateaus, weight decay 5e-4, batch 128, crops and flips
    # (add "pca" to augment for the colour lighting). Dropout 0.5 lives in the model.
    "alexnet": Preset("alexnet", "sgd", 1e-2, 0.9, 5e-4, 128, "plateau", 90, ("crop", "flip")),
    # He et al. 2016, section 3.4: SGD 0.1 (batch 256), momentum 0.9, weight decay 1e-4, BN.
    "resnet": Preset("resnet", "sgd", 0.1, 0.9, 1e-4, 256, "cosine", 90, ("crop", "flip"),
                     warmup_epochs=1),
    "resnet_step": Preset("resnet_step", "sgd", 0.1, 0.9, 1e-4, 256, "step", 90,
                          ("crop", "flip"), warmup_epochs=1),
    # ResNet's preset sized for the embedded digits (1,078 training images): batch 64 (its
    # lr 0.1 scaled linearly to 0.025), 8 epochs; the default of train() on the digits.
    "digits": Preset("digits", "sgd", 0.025, 0.9, 1e-4, 64, "cosine", 8, ("crop",),
                     warmup_epochs=1),
    # Not from a paper: Adam for small datasets and quick experiments.
    "adam": Preset("adam", "adam", 1e-3, 0.0, 0.0, 64, "cosine", 30, ("crop",)),
}
SCHEDULES = ("cosine", "step", "plateau", "constant")
AUGMENTATIONS = ("crop", "flip", "pca")


def get_preset(name, **overrides):
    """``PRESETS[name]`` with ``overrides`` (None keeps the preset's value), checked."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(Preset)}
    bad = set(overrides) - fields
    if bad:
        raise ValueError(f"unknown preset fields {sorted(bad)}; allowed: {sorted(fields)}")
    rec = dataclasses.replace(PRESETS[name], **{k: v for k, v in overrides.items()
                                                if v is not None})
    for field in ("epochs", "batch_size"):
        value = getattr(rec, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be a positive int, got {value!r}")
    if isinstance(rec.warmup_epochs, bool) or not isinstance(rec.warmup_epochs, (int, float)) \
            or not 0 <= rec.warmup_epochs <= rec.epochs:
        raise ValueError(f"warmup_epochs must be a number from 0 to epochs ({rec.epochs}), got "
                         f"{rec.warmup_epochs!r}")
    unknown = set(rec.augment) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)}; allowed: "
                         f"{', '.join(AUGMENTATIONS)}")
    if rec.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {rec.schedule!r}; allowed: {', '.join(SCHEDULES)}")
    return dataclasses.replace(rec, augment=tuple(rec.augment))


@keras.saving.register_keras_serializable("keras_classics")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over ``steps`` steps to ``target`` (Goyal et al. 2017: step ``s`` gets
    ``target * (s + 1) / steps``), then ``after(step - offset)``. Keras' own
    ``CosineDecay(warmup_steps=...)`` starts its ramp at ``initial_learning_rate`` (a wasted
    step at 0) and ``PiecewiseConstantDecay`` has no warm-up."""

    def __init__(self, after, steps, target, offset=0):
        self.after, self.steps, self.target, self.offset = after, steps, target, offset

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.target * (step + 1.0) / float(self.steps)
        rest = tf.cast(self.after(tf.maximum(step - self.offset, 0.0)), tf.float32)
        return tf.where(step < self.steps, warm, rest)

    def get_config(self):
        return {"after": keras.saving.serialize_keras_object(self.after), "steps": self.steps,
                "target": self.target, "offset": self.offset}

    @classmethod
    def from_config(cls, config):
        config["after"] = keras.saving.deserialize_keras_object(config["after"])
        return cls(**config)


def schedule(preset, base_lr, steps_per_epoch, epochs):
    """The preset's learning rate: a Keras schedule of the global step, or a float for
    "plateau" (changed between epochs by :func:`plateau_update`) and "constant"."""
    total = epochs * steps_per_epoch
    warm = int(round(preset.warmup_epochs * steps_per_epoch))
    if preset.schedule == "cosine":  # from the end of the warm-up to the end of training
        cosine = keras.optimizers.schedules.CosineDecay(base_lr, max(1, total - warm))
        return Warmup(cosine, warm, base_lr, offset=warm) if warm else cosine
    if preset.schedule == "step":  # divide by 10 at 50% and 75% of training
        # PiecewiseConstantDecay keeps a value up to and including its boundary
        step = keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(0.5 * total) - 1, int(0.75 * total) - 1],
            [base_lr, base_lr * 0.1, base_lr * 0.01])
        return Warmup(step, warm, base_lr) if warm else step
    return float(base_lr)


def plateau_update(preset, state, val_acc):
    """AlexNet's rule: divide the learning rate by 10 after ``patience`` epochs without a
    better validation accuracy. Updates ``state`` ("lr", "best", "wait")."""
    if val_acc > state["best"] + 1e-4:
        state["best"], state["wait"] = val_acc, 0
    else:
        state["wait"] += 1
        if state["wait"] >= preset.patience:
            state["lr"], state["wait"] = state["lr"] * 0.1, 0


def make_optimizer(preset, learning_rate, loss_scale=False):
    """The preset's optimizer (weight decay on kernels only), wrapped in a loss-scaling
    optimizer (:class:`precision.LossScaleOptimizer`) for float16."""
    if preset.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate, momentum=preset.momentum,
                                   weight_decay=preset.weight_decay or None)
    elif preset.optimizer == "adam":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=preset.weight_decay) \
            if preset.weight_decay else keras.optimizers.Adam(learning_rate)
    else:
        raise ValueError(f"unknown optimizer {preset.optimizer!r}; allowed: sgd, adam")
    if preset.weight_decay:  # decay the kernels, not biases or normalization parameters
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "expand_bias",
                                                 "reduce_bias"])
    return LossScaleOptimizer(opt) if loss_scale else opt
