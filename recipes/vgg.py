"""VGG (Simonyan & Zisserman 2015): the depth study over Table 1's configurations A–E.
BatchNorm is on (the paper instead initialised deeper nets from A), so every depth trains
from scratch in a few epochs."""
from .base import RecipeHyperModel


class HyperModel(RecipeHyperModel):
    max_trials = 6
    min_image_size = 32

    def space(self, hp):
        config = hp.Choice("config", ["A", "A-LRN", "B", "C", "D", "E"])
        name = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_c",
                "D": "vgg16", "E": "vgg19"}[config]
        return name, {"batch_norm": True}, {}

    @staticmethod
    def label(values):
        return f"config {values['config']}"
