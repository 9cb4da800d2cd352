"""ZFNet (Zeiler & Fergus 2014): what it changed over AlexNet, as a search.

conv1 11×11 stride 4 (AlexNet) vs 7×7 stride 2 (ZFNet); conv3–5 widths 384/384/256 vs
512/1024/512 (the paper's best single model); then learning rate and dropout. The grid's
first four points are the four architectures (at lr 5e-4, dropout 0.5); ``--max-trials 16``
adds the learning rates and dropouts. Default input 112×112: the smallest the 11×11/4
variant admits is 105.

Training departs from the paper's (SGD 1e-2, plateau schedule, 90 epochs) to converge on the
digits in minutes: Adam at 5e-4 for batch 32 (the "adam" training preset's 1e-3 at 64,
scaled), two warm-up epochs (at most half of a shorter ``--epochs``) then cosine decay to
epoch 5, mixed precision where the machine has it. Without BatchNorm these nets are fragile
early on: here a 0.3-epoch warm-up or a learning rate of 7e-4 left the 11×11/4 net at
0.72-0.88 validation accuracy after 5 epochs, two warm-up epochs at 0.96.
"""
from .base import RecipeHyperModel

CONV1 = {"7x7/2": (7, 2), "11x11/4": (11, 4)}
WIDTHS = {"384-384-256": (384, 384, 256), "512-1024-512": (512, 1024, 512)}


class HyperModel(RecipeHyperModel):
    preset = "adam"
    image_size = 112
    epochs = 5
    batch_size = 32
    warmup_epochs = 2
    precision = "auto"  # ZFNet at 112x112: 1.7x the images/s of float32 in mixed bfloat16 here
    min_image_size = 105  # the 11x11/4 conv1 variant

    default_tuner = "grid"  # the first four grid points are the four architectures

    def space(self, hp):
        # GridSearch varies the last-declared choice fastest: architectures first
        lr = hp.Choice("lr", [5e-4, 1e-3])
        dropout = hp.Choice("dropout", [0.5, 0.3])
        conv1 = hp.Choice("conv1", list(CONV1))
        widths = hp.Choice("conv3_5", list(WIDTHS))
        kernel, stride = CONV1[conv1]
        return "zfnet", dict(conv1_kernel=kernel, conv1_stride=stride, widths=WIDTHS[widths],
                             dropout=dropout), {"lr": lr}

    @staticmethod
    def label(values):
        extra = [f"lr {values['lr']:g}" if values.get("lr", 5e-4) != 5e-4 else "",
                 f"dropout {values['dropout']:g}" if values.get("dropout", 0.5) != 0.5 else ""]
        return ", ".join([f"conv1 {values['conv1']}", f"conv3-5 {values['conv3_5']}",
                          *filter(None, extra)])
