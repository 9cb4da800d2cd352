"""What every recipe shares: build from the registry, train with keras_classics.training,
once per seed."""
import os
import shutil

import keras_tuner as kt
import numpy as np

from keras_classics import model_info, profile, training


class RecipeHyperModel(kt.HyperModel):
    """Subclasses define ``space(hp) -> (registry name, builder kwargs, training overrides)``
    and the defaults below; ``label(values)`` names a trial in tables and plots."""

    preset = "resnet"  # the keras_classics.training preset the trials train with
    image_size = 32
    epochs = 3
    batch_size = 64
    warmup_epochs = None  # None: the training preset's
    seeds = 2  # each configuration trains once per seed: 0, 1, ...
    # training.PRECISIONS: float32 | mixed_float16 | mixed_bfloat16 | auto (mixed where the
    # machine has fast 16-bit math: training.fast_precision). float32 by default: the
    # CIFAR-sized nets of most studies train no faster in mixed bfloat16 on a CPU (239 vs 217
    # images/s for ResNet-20 here)
    precision = "float32"
    max_trials = 4
    budget_params = None  # skip configurations with more trainable parameters
    min_image_size = 4  # the smallest input every configuration of the space admits
    default_tuner = "random"
    # steps between a trial's checkpoints (training's default: 20). A trial is a short run,
    # often of a big net: a ZFNet checkpoint (weights and Adam state, 0.3-0.44 GB) took 1.1-2 s
    # to write here, and saving every 20 steps was a tenth of the main job (46 of 477 s). A
    # killed search resumes the running trial's seed from its last checkpoint, at most this
    # many steps back (ZFNet: 33 steps an epoch)
    checkpoint_every = 100

    def __init__(self, data, image_size=None, epochs=None, batch_size=None, strategy="default",
                 budget_params=None, verbose=0, seeds=None, precision=None):
        super().__init__(name=type(self).__module__.split(".")[-1])
        self.data = data
        self.image_size = image_size or self.image_size
        if self.image_size < self.min_image_size:
            raise ValueError(f"{self.name}: every configuration of this search needs inputs "
                             f"of at least {self.min_image_size}x{self.min_image_size}, got "
                             f"--image-size {self.image_size}")
        for arg, value in (("epochs", epochs), ("batch_size", batch_size), ("seeds", seeds)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{self.name}: {arg} must be a positive int, got {value!r}")
        self.epochs = epochs or self.epochs
        self.batch_size = batch_size or self.batch_size
        self.seeds = seeds or self.seeds
        self.precision = training.check_precision(precision or self.precision, self.name)
        self.strategy = strategy
        self.budget_params = budget_params or self.budget_params
        self.verbose = verbose

    def space(self, hp):
        raise NotImplementedError

    @staticmethod
    def label(values):
        return ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/"))

    @staticmethod
    def columns(values):
        """Extra leaderboard columns derived from a configuration's values."""
        return {}

    def make(self, hp, classes=None, input_shape=None):
        name, kwargs, _ = self.space(hp)
        shape = input_shape or (self.image_size, self.image_size, 3)
        info = model_info(name)
        if shape[0] < info.min_size:
            raise ValueError(f"{info.name} needs inputs of at least {info.min_size}, the "
                             f"recipe uses {shape[0]}: pass a larger --image-size")
        return info.build(classes=classes or self.data.num_classes, input_shape=shape,
                          **kwargs)

    def build(self, hp):
        model = self.make(hp)
        params = sum(int(w.numpy().size) for w in model.trainable_weights)
        if self.budget_params and params > self.budget_params:
            raise kt.errors.FailedTrialError(
                f"{model.name}: {params:,} parameters, over the budget of "
                f"{self.budget_params:,}: skipped")
        return model

    def fit(self, hp, model, *args, trial_dir=None, epochs=None, initial_epoch=0,
            callbacks=None, **kwargs):
        """Train the configuration ``hp`` once per seed with keras_classics' loop (each seed
        its own initialization, shuffling and augmentation; ``trial_dir/seed{i}``) and return
        the mean and spread over seeds. Honours keras-tuner's ``epochs``, ``initial_epoch`` and
        ``callbacks``: a Hyperband trial resumed from ``model``'s weights (the checkpoint
        keras-tuner's ``SaveBestEpoch`` wrote: the best epoch of the parent's seeds) starts
        every seed from them."""
        resumed = model.get_weights() if initial_epoch else None
        runs = []
        for seed in range(self.seeds):
            output = os.path.join(trial_dir or "trial", f"seed{seed}")
            runs.append(self.train_seed(hp, seed, output, epochs=epochs,
                                        initial_epoch=initial_epoch, callbacks=callbacks,
                                        weights=resumed).summary)
            # a finished run keeps model.keras, history and summary; its checkpoints (model
            # and optimizer state, 0.6 GB for a ZFNet) only served resuming it
            shutil.rmtree(os.path.join(output, "checkpoints"), ignore_errors=True)
        return aggregate(runs)

    def train_seed(self, hp, seed, output, epochs=None, initial_epoch=0, callbacks=None,
                   weights=None, overwrite=False):
        """Train configuration ``hp`` once, with ``seed``, into ``output`` (starting from
        ``weights`` if given); returns the :class:`keras_classics.training.TrainResult`."""
        _, _, overrides = self.space(hp)
        epochs = epochs or self.epochs
        # the preset's warm-up, but at most half of a shorter run (a 1-epoch smoke test)
        warmup = None if self.warmup_epochs is None else min(self.warmup_epochs, epochs / 2)

        def build(classes, shape):
            net = self.make(hp, classes, shape)
            if weights is not None:
                net.set_weights(weights)
            return net

        return training.train(
            data=self.data, build_model=build, epochs=epochs,
            initial_epoch=initial_epoch, callbacks=callbacks, batch_size=self.batch_size,
            image_size=self.image_size, preset=overrides.pop("preset", self.preset),
            strategy=self.strategy, seed=seed, warmup_epochs=warmup,
            precision=self.precision, checkpoint_every=self.checkpoint_every,
            output=output, verbose=self.verbose, overwrite=overwrite, **overrides)

    def measure(self, hp):
        """(trainable parameters, multiply-adds per image) of ``hp``'s model."""
        prof = profile(self.make(hp))
        return prof.trainable_params, prof.macs


def aggregate(summaries):
    """keras-tuner metrics of one configuration from its seeds' training summaries: mean and
    sample standard deviation (0 for one seed) of the best validation and the final test
    accuracy, each seed's values (``val_accuracy_seed0``, ...), the total time, and how much
    the validation accuracy still rose in the last epoch (mean over seeds)."""
    metrics = {"seeds": len(summaries),
               "seconds": float(sum(s["wall_time_s"] for s in summaries))}
    for key, field in (("val_accuracy", "best_val_accuracy"), ("test_accuracy", "test_accuracy")):
        values = np.array([s[field] for s in summaries], dtype=float)
        metrics[key] = float(values.mean())
        metrics[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        metrics.update({f"{key}_seed{i}": float(v) for i, v in enumerate(values)})
    rises = [s["last_epoch_rise"] for s in summaries if s.get("last_epoch_rise") is not None]
    if rises:  # a run of one epoch has none
        metrics["last_epoch_rise"] = float(np.mean(rises))
    return metrics
