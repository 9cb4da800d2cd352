"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015): the configurations of the paper's Table 1 as rows of one table.

Layer names and weight order are keras.applications' (``block1_conv1`` ... ``fc1``, ``fc2``,
``predictions``), so Keras' VGG16/VGG19 weights load unchanged. We add the paper's dropout 0.5
after fc1 and fc2 (keras.applications omits it; it has no weights).
"""
import keras

from ..layers import LocalResponseNormalization, conv_norm_act
from ._common import check_args, fc_classifier, finalize, model_input, pool_features, variant
from ..weights import keras_weights, register_weights, torchvision_weights

__all__ = ["VGG", "VGG11", "VGG13", "VGG16", "VGG19"]  # the public builders

PAPER = ("Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
         "Recognition, ICLR 2015")

# One list per block (each block ends in a 2×2/2 max pool); an int is a conv3 with that many
# channels, ``(1, n)`` a conv1 (config C), "LRN" the A-LRN normalization.
CONFIGS = {
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "A-LRN": [[64, "LRN"], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "C": [[64, 64], [128, 128], [256, 256, (1, 256)], [512, 512, (1, 512)],
          [512, 512, (1, 512)]],
    "D": [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    "E": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}

# Pretrained weights: Keras' published files for VGG16/19 (Caffe preprocessing: the original
# VGG Caffe models), torchvision's IMAGENET1K_V1 checkpoints for the rest.
register_weights(
    keras_weights("vgg16", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels",
                  "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc",
                  "caffe", 71.268),
    keras_weights("vgg19", "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels",
                  "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6",
                  "caffe", 71.256),
    torchvision_weights("vgg11", "vgg11-8a719046.pth", "vgg", 69.02),
    torchvision_weights("vgg11_bn", "vgg11_bn-6002323d.pth", "vgg", 70.37),
    torchvision_weights("vgg13", "vgg13-19584684.pth", "vgg", 69.928),
    torchvision_weights("vgg13_bn", "vgg13_bn-abd245e5.pth", "vgg", 71.586),
    torchvision_weights("vgg16_bn", "vgg16_bn-6c64b313.pth", "vgg", 73.36),
    torchvision_weights("vgg19_bn", "vgg19_bn-c79401a0.pth", "vgg", 74.218),
    variant_of={"vgg16_c": None, "vgg11_lrn": None})


def VGG(config="D", include_top=True, weights=None, input_tensor=None, input_shape=None,
        pooling=None, classes=1000, classifier_activation="softmax", name=None,
        batch_norm=False, norm=None, dropout=0.5, weights_key=None):
    """VGG configuration ``config`` (A, A-LRN, B, C, D, E) of Table 1.

    ``batch_norm=True`` (or ``norm="batch"``) puts a BatchNormalization between every conv and
    its ReLU, as torchvision's ``vgg*_bn``; the convs keep their biases, as there. The A-LRN
    normalization is the AlexNet LRN (the paper used its constants: n=5, k=2, α=1e-4, β=0.75).
    ``weights="imagenet"`` loads the weights of the registered variant ``weights_key``, which
    the named builders pass (``VGG16``, ``get_model("vgg16_bn")``).
    """
    if config not in CONFIGS:
        raise ValueError(f"vgg: unknown config {config!r}; allowed: {', '.join(CONFIGS)}")
    if batch_norm:
        if norm not in (None, "batch"):
            raise ValueError(f"vgg: batch_norm=True conflicts with norm={norm!r}")
        norm = "batch"
    model_name = name or "vgg_" + config.lower().replace("-", "_")
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=224, min_size=32, include_top=include_top,
                            weights=weights, fixed_head=True)
    for b, block in enumerate(CONFIGS[config], start=1):
        i = 0
        for item in block:
            if item == "LRN":
                x = LocalResponseNormalization(name=f"block{b}_lrn")(x)
                continue
            i += 1
            kernel, filters = item if isinstance(item, tuple) else (3, item)
            x = conv_norm_act(x, filters, kernel, f"block{b}_conv{i}", norm=norm)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
    if include_top:
        x = fc_classifier(x, (4096, 4096), dropout, classes, classifier_activation)
    else:
        x = pool_features(x, pooling)
    return finalize(inputs, x, model_name, weights, weights_key, include_top)


def _bn(depth, config):
    """torchvision's ``vgg{depth}_bn``: BatchNormalization after every conv."""
    return variant(f"VGG{depth}BN", VGG, f"vgg{depth}_bn",
                   f"VGG-{depth} with BatchNormalization after every conv (torchvision)", PAPER,
                   config=config, norm="batch")


def _plain(depth, config):
    """VGG-``depth`` (registered with its ``_bn`` variant, which ``batch_norm=True`` or
    ``norm="batch"`` builds)."""
    _bn(depth, config)
    return variant(f"VGG{depth}", VGG, f"vgg{depth}",
                   f"VGG-{depth}: configuration {config} of Table 1", PAPER, config=config,
                   alias=(f"vgg{depth}_bn", {"batch_norm": True, "norm": "batch"}))


VGG11, VGG13, VGG16, VGG19 = _plain(11, "A"), _plain(13, "B"), _plain(16, "D"), _plain(19, "E")
variant("VGG11LRN", VGG, "vgg11_lrn", "VGG configuration A-LRN: A with LRN after the first conv",
        PAPER, config="A-LRN")
variant("VGG16C", VGG, "vgg16_c", "VGG configuration C: 16 layers, a 1x1 conv ends blocks 3-5",
        PAPER, config="C")
