"""Every registered model at its standard configuration against the published parameter count.

Counts are *trainable* parameters (torchvision's ``num_params`` and the papers exclude BN moving
statistics). Sources: ../shared/REFERENCE.md (torchvision, keras.applications, the papers).
"""
import numpy as np
import pytest

import keras_classics as kc
from conftest import standard_model, standard_models, trainable_count

# Exact figures where the topology is the same as the reference.
TORCHVISION = {  # torchvision weights' _meta["num_params"]
    "alexnet_owt": 61_100_840,
    "vgg11": 132_863_336, "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848, "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544, "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240, "vgg19_bn": 143_678_248,
    "googlenet_bn": 6_624_904,
    "resnet18": 11_689_512, "resnet34": 21_797_672,
    "resnet50_v1_5": 25_557_032, "resnet101_v1_5": 44_549_160, "resnet152_v1_5": 60_192_808,
    "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480,
    "densenet201": 20_013_928,
}
KERAS_TOTAL = {  # keras.applications count_params(), BN statistics included
    "vgg16": 138_357_544, "vgg19": 143_667_240,
    "resnet50": 25_636_712, "resnet101": 44_707_176, "resnet152": 60_419_944,
    "resnet50_v2": 25_613_800, "resnet101_v2": 44_675_560, "resnet152_v2": 60_380_648,
    "densenet121": 8_062_504, "densenet169": 14_307_880, "densenet201": 20_242_984,
}
# SE blocks: per stage output C, C*C/16 + C/16 + C/16*C + C (two FCs with biases, r = 16),
# added to the (SE-less) reference counts above: timm's seresnet50 / seresnext50_32x4d.
SE_R50 = sum(n * (c * c // 8 + c // 16 + c) for n, c in ((3, 256), (4, 512), (6, 1024), (3, 2048)))
DERIVED = {
    "se_resnet50": TORCHVISION["resnet50_v1_5"] + SE_R50,  # 28,088,024 = timm seresnet50
    "se_resnext50_32x4d": TORCHVISION["resnext50_32x4d"] + SE_R50,  # 27,559,896 = timm
    # The AlexNet paper's layers (Fig. 2), counted by hand: conv2/4/5 see half their input.
    "alexnet": ((11 * 11 * 3 + 1) * 96 + (5 * 5 * 48 + 1) * 256 + (3 * 3 * 256 + 1) * 384
                + (3 * 3 * 192 + 1) * 384 + (3 * 3 * 192 + 1) * 256 + (6 * 6 * 256 + 1) * 4096
                + (4096 + 1) * 4096 + (4096 + 1) * 1000),
    # ZFNet (Fig. 3 of the paper): one tower, 6x6x256 into fc6.
    "zfnet": ((7 * 7 * 3 + 1) * 96 + (5 * 5 * 96 + 1) * 256 + (3 * 3 * 256 + 1) * 384
              + (3 * 3 * 384 + 1) * 384 + (3 * 3 * 384 + 1) * 256 + (6 * 6 * 256 + 1) * 4096
              + (4096 + 1) * 4096 + (4096 + 1) * 1000),
}
# Papers' rounded figures, in millions, with the number of decimals printed.
PAPERS = {
    "vgg11_lrn": (133, 0), "vgg16_c": (134, 0),  # VGG Table 2 (A-LRN, C)
    "preact_resnet164": (1.7, 1), "preact_resnet1001": (10.3, 1),  # Identity Mappings
    "wrn_28_10": (36.5, 1), "wrn_40_4": (8.9, 1), "wrn_16_8": (11.0, 1),  # WRN Table 1
    "densenet_bc_100_12": (0.8, 1), "densenet_bc_250_24": (15.3, 1),  # DenseNet Table 2
    "densenet_bc_190_40": (25.6, 1),
    "se_resnet101": (49.3, 1), "se_resnet152": (66.8, 1),  # ResNet-101/152 + SE, timm's
    "se_resnext101_32x4d": (49.0, 1),  # timm seresnext101_32x4d 48.96 M
    "resnet20_cifar": (0.27, 2),  # ResNet paper Table 6
}


def test_every_registered_model_has_a_reference():
    covered = set(TORCHVISION) | set(KERAS_TOTAL) | set(DERIVED) | set(PAPERS)
    # googlenet and densenet264 have no exact published count: tested below.
    missing = set(kc.list_models()) - covered - {"googlenet", "densenet264", "plain20_cifar",
                                                 "resnet56_cifar", "resnet50",
                                                 "resnet101", "resnet152", "resnet50_v2",
                                                 "resnet101_v2", "resnet152_v2"}
    assert not missing


@pytest.mark.parametrize("name", standard_models(sorted(TORCHVISION)))
def test_matches_torchvision(name):
    assert trainable_count(standard_model(name)) == TORCHVISION[name]


@pytest.mark.parametrize("name", standard_models(sorted(KERAS_TOTAL)))
def test_matches_keras_applications_total(name):
    assert standard_model(name).count_params() == KERAS_TOTAL[name]


@pytest.mark.parametrize("name", standard_models(sorted(DERIVED)))
def test_matches_derived_count(name):
    assert trainable_count(standard_model(name)) == DERIVED[name]


@pytest.mark.parametrize("name", standard_models(sorted(PAPERS)))
def test_matches_paper_rounded(name):
    millions, decimals = PAPERS[name]
    assert round(trainable_count(standard_model(name)) / 1e6, decimals) == millions


@pytest.mark.parametrize("name,millions", standard_models([
    ("resnet20_cifar", 0.27), ("resnet56_cifar", 0.85), ("plain20_cifar", 0.27)]))
def test_cifar_resnets_against_table_6(name, millions):
    """The paper's CIFAR nets use parameter-free (zero-padding) shortcuts, option A; ours
    project with a 1x1 conv + BN (2,752 parameters). Without them the counts are the paper's."""
    model = standard_model(name)
    projection = sum(layer.count_params() for layer in model.layers
                     if layer.name.endswith(("_0_conv", "_0_bn")) and layer.trainable)
    bn_stats = sum(int(np.prod(w.shape)) for layer in model.layers
                   if layer.name.endswith("_0_bn") for w in layer.non_trainable_weights)
    assert round((trainable_count(model) - projection + bn_stats) / 1e6, 2) == millions


# GoogLeNet's Table 1, one row per Inception module: input channels, #1x1, #3x3 reduce, #3x3,
# #5x5 reduce, #5x5, pool proj.
GOOGLENET_TABLE = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
                   (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
                   (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
                   (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
                   (832, 384, 192, 384, 48, 128, 128)]


@pytest.mark.xdist_group("standard_googlenet")
def test_googlenet_is_its_paper_table_exactly():
    """Table 1's params column sums to 6.8 M (it rounds, omits biases and lists conv1 as 2.7K
    where 7*7*3*64 = 9.4K); the table's layers, with biases, give the exact count (6,998,552)."""
    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    want = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192) + 1024 * 1000 + 1000
    for cin, c1, r3, c3, r5, c5, proj in GOOGLENET_TABLE:
        want += conv(1, cin, c1) + conv(1, cin, r3) + conv(3, r3, c3) + conv(1, cin, r5) + \
            conv(5, r5, c5) + conv(1, cin, proj)
    assert trainable_count(standard_model("googlenet")) == want


# DenseNet-264's Table 1 blocks (6, 12, 64, 48) give 2*130 + 5 = 265 weight layers: the
# paper's name is one off; we build its table, not its name.
@pytest.mark.parametrize("name,depth", standard_models([
    ("densenet121", 121), ("densenet264", 265), ("densenet_bc_100_12", 100), ("resnet50", 50),
    ("resnet152_v2", 152), ("resnet34", 34), ("preact_resnet164", 164), ("vgg19", 19),
    ("vgg16_c", 16), ("vgg11_lrn", 11)]))
def test_depth_is_the_number_of_weight_layers(name, depth):
    """The papers' depth counts convs and FCs on the main path (not 1x1 projections)."""
    model = standard_model(name)
    layers = [layer for layer in model.layers
              if layer.__class__.__name__ in ("Conv2D", "Dense")
              and not layer.name.endswith("_0_conv")]
    assert len(layers) == depth
