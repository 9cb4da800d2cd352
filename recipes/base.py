"""What every recipe shares: build from the registry, train with keras_classics.training."""
import os

import keras_tuner as kt

from keras_classics import model_info, profile, training


class RecipeHyperModel(kt.HyperModel):
    """Subclasses define ``space(hp) -> (registry name, builder kwargs, training overrides)``
    and the defaults below; ``label(values)`` names a trial in tables and plots."""

    recipe = "resnet"  # keras_classics.training recipe
    image_size = 32
    epochs = 3
    batch_size = 64
    max_trials = 4
    budget_params = None  # skip configurations with more trainable parameters
    min_image_size = 4  # the smallest input every configuration of the space admits
    default_tuner = "random"

    def __init__(self, data, image_size=None, epochs=None, batch_size=None, strategy="default",
                 budget_params=None, verbose=0):
        super().__init__(name=type(self).__module__.split(".")[-1])
        self.data = data
        self.image_size = image_size or self.image_size
        if self.image_size < self.min_image_size:
            raise ValueError(f"{self.name}: every configuration of this search needs inputs "
                             f"of at least {self.min_image_size}x{self.min_image_size}, got "
                             f"--image-size {self.image_size}")
        for arg, value in (("epochs", epochs), ("batch_size", batch_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{self.name}: {arg} must be a positive int, got {value!r}")
        self.epochs = epochs or self.epochs
        self.batch_size = batch_size or self.batch_size
        self.strategy = strategy
        self.budget_params = budget_params or self.budget_params
        self.verbose = verbose

    def space(self, hp):
        raise NotImplementedError

    @staticmethod
    def label(values):
        return ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/"))

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
        """Train ``model`` — the one keras-tuner built, carrying the weights Hyperband resumes
        from — with keras_classics' loop (built again under the strategy, same weights),
        honouring keras-tuner's ``epochs``, ``initial_epoch`` and ``callbacks`` (its
        ``SaveBestEpoch`` writes the checkpoint a resumed Hyperband trial loads)."""
        _, _, overrides = self.space(hp)
        weights = model.get_weights()

        def build(classes, shape):
            net = self.make(hp, classes, shape)
            net.set_weights(weights)
            return net

        result = training.train(
            data=self.data, build_model=build, epochs=epochs or self.epochs,
            initial_epoch=initial_epoch, callbacks=callbacks, batch_size=self.batch_size,
            image_size=self.image_size, recipe=overrides.pop("recipe", self.recipe),
            strategy=self.strategy, output=os.path.join(trial_dir or "trial", "train"),
            verbose=self.verbose, **overrides)
        return {"val_accuracy": result.summary["best_val_accuracy"],
                "seconds": result.summary["wall_time_s"]}

    def measure(self, hp):
        """(trainable parameters, multiply-adds per image) of ``hp``'s model."""
        prof = profile(self.make(hp))
        return prof.trainable_params, prof.macs
