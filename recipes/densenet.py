"""DenseNet (Huang et al. 2017): growth rate, compression and the bottleneck, on CIFAR-style
DenseNets of depth 40 (BC: 6n+4; without bottleneck: 3n+4)."""
from .base import RecipeHyperModel


class HyperModel(RecipeHyperModel):
    max_trials = 6

    def space(self, hp):
        growth = hp.Choice("growth_rate", [6, 12, 24])
        compression = hp.Choice("compression", [0.5, 1.0])
        bottleneck = hp.Boolean("bottleneck", default=True)
        depth = 40
        return f"densenet_bc_{depth}_{growth}", dict(compression=compression,
                                                   bottleneck=bottleneck), {}
