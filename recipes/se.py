"""Squeeze-and-Excitation (Hu et al. 2018): the reduction ratio r (0 = no SE) in ResNet-20."""
from .base import RecipeHyperModel


class HyperModel(RecipeHyperModel):
    def space(self, hp):
        ratio = hp.Choice("se_ratio", [0, 4, 8, 16])
        return "resnet20_cifar", {"se_ratio": ratio or None}, {}
