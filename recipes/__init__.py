"""keras-tuner recipes: one HyperModel per study, built on the zoo's builders and trained by
``keras_classics.training`` (so every trial can run under a tf.distribute strategy).

``get(name)`` returns the recipe class; ``RECIPES`` lists them. Installed as
``keras_classics.recipes`` (the folder stays at the top of the repository).
"""
import importlib

RECIPES = ("zfnet", "wide_resnet", "vgg", "resnet", "densenet", "norm", "se")


def get(name):
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPES)}")
    return importlib.import_module(f".{name}", __name__).HyperModel
