"""Normalization layers (the lecture's first part): batch, group, layer or instance norm in
the same network (ResNet-20 for CIFAR)."""
from .base import RecipeHyperModel


class HyperModel(RecipeHyperModel):
    def space(self, hp):
        norm = hp.Choice("norm", ["batch", "group", "layer", "instance"])
        return "resnet20_cifar", {"norm": norm}, {}
