"""ResNet (He et al. 2016, section 4.2): depth, and plain against residual, on the paper's
CIFAR nets (6n+2 layers): the degradation experiment of its Fig. 6. The paper's claim: the
56-layer plain net has a higher training and test error than the 20-layer one, while with
shortcuts the deeper net is the better one. The grid's first four points are 20 and 56
layers, plain and residual; ``--max-trials 10`` adds 32, 44 and 8.
"""
from .base import RecipeHyperModel


class HyperModel(RecipeHyperModel):
    max_trials = 4
    default_tuner = "grid"
    epochs = 6  # ResNet-20 settles at 0.99 validation accuracy on the digits

    def space(self, hp):
        depth = hp.Choice("depth", [20, 56, 32, 44, 8])
        kind = hp.Choice("shortcuts", ["residual", "plain"])  # varies fastest in the grid
        return f"{'resnet' if kind == 'residual' else 'plain'}{depth}_cifar", {}, {}

    @staticmethod
    def label(values):
        return f"{values['shortcuts']}-{values['depth']}"
