"""ResNet (He et al. 2016, section 4.2): depth, and plain against residual, on the paper's
CIFAR nets (6n+2 layers): the degradation experiment."""
from .base import RecipeHyperModel


class HyperModel(RecipeHyperModel):
    max_trials = 6

    def space(self, hp):
        depth = hp.Choice("depth", [8, 20, 32, 56])
        kind = hp.Choice("shortcuts", ["residual", "plain"])
        return f"{'resnet' if kind == 'residual' else 'plain'}{depth}_cifar", {}, {}

    @staticmethod
    def label(values):
        return f"{values['shortcuts']}-{values['depth']}"
