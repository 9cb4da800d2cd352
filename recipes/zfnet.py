"""ZFNet (Zeiler & Fergus 2014): what it changed over AlexNet, as a search.

conv1 11×11 stride 4 (AlexNet) vs 7×7 stride 2 (ZFNet); conv3–5 widths 384/384/256 vs
512/1024/512 (the paper's best single model); plus learning rate and dropout. Default input
112×112: the smallest the 11×11/4 variant admits is 105.
"""
from .base import RecipeHyperModel

CONV1 = {"7x7/2": (7, 2), "11x11/4": (11, 4)}
WIDTHS = {"384-384-256": (384, 384, 256), "512-1024-512": (512, 1024, 512)}


class HyperModel(RecipeHyperModel):
    recipe = "alexnet"
    image_size = 112
    batch_size = 32
    min_image_size = 105  # the 11x11/4 conv1 variant

    default_tuner = "grid"  # the first four grid points are the four architectures

    def space(self, hp):
        lr = hp.Choice("lr", [1e-2, 3e-3])
        dropout = hp.Choice("dropout", [0.5, 0.3])
        conv1 = hp.Choice("conv1", list(CONV1))
        widths = hp.Choice("conv3_5", list(WIDTHS))
        kernel, stride = CONV1[conv1]
        return "zfnet", dict(conv1_kernel=kernel, conv1_stride=stride, widths=WIDTHS[widths],
                             dropout=dropout), {"lr": lr}

    @staticmethod
    def label(values):
        return f"conv1 {values['conv1']}, conv3-5 {values['conv3_5']}"
