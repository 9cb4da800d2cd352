"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015): the configurations of the paper's Table 1 as rows of one table.

Layer names and weight order are keras.applications' (``block1_conv1`` ... ``fc1``, ``fc2``,
``predictions``), so Keras' VGG16/VGG19 weights load unchanged. We add the paper's dropout 0.5
after fc1 and fc2 (keras.applications omits it; it has no weights).
"""
import keras

from ..layers import LocalResponseNormalization, conv_norm_act
from ._common import check_args, classifier, finalize, model_input, pool_features
from ..weights import keras_weights, register_weights, torchvision_weights

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
DEPTH_TO_CONFIG = {11: "A", 13: "B", 16: "D", 19: "E"}

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
        batch_norm=False, norm=None, dropout=0.5):
    """VGG configuration ``config`` (A, A-LRN, B, C, D, E) of Table 1.

    ``batch_norm=True`` (or ``norm="batch"``) puts a BatchNormalization between every conv and
    its ReLU, as torchvision's ``vgg*_bn``; the convs keep their biases, as there. The A-LRN
    normalization is the AlexNet LRN (the paper used its constants: n=5, k=2, α=1e-4, β=0.75).
    """
    if config not in CONFIGS:
        raise ValueError(f"vgg: unknown config {config!r}; allowed: {', '.join(CONFIGS)}")
    if batch_norm:
        if norm not in (None, "batch"):
            raise ValueError(f"vgg: batch_norm=True conflicts with norm={norm!r}")
        norm = "batch"
    model_name = name or "vgg_" + config.lower().replace("-", "_")
    weights_key = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19",
                   "A-LRN": "vgg11_lrn", "C": "vgg16_c"}[config] + ("_bn" if norm else "")
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
        x = keras.layers.Flatten(name="flatten")(x)
        for i in (1, 2):
            x = keras.layers.Dense(4096, activation="relu", name=f"fc{i}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = classifier(x, classes, classifier_activation)
    else:
        x = pool_features(x, pooling)
    return finalize(inputs, x, model_name, weights, weights_key, include_top)


def _depth_builder(depth):
    config = DEPTH_TO_CONFIG[depth]

    def builder(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None,
                batch_norm=False, norm=None, dropout=0.5):
        default = f"vgg{depth}" + ("_bn" if batch_norm or norm == "batch" else "")
        return VGG(config, include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                   classes=classes, classifier_activation=classifier_activation,
                   name=name or default, batch_norm=batch_norm, norm=norm, dropout=dropout)

    builder.__name__ = builder.__qualname__ = f"VGG{depth}"
    builder.__doc__ = f"VGG-{depth}: configuration {config} of Table 1 (see :func:`VGG`)."
    return builder


VGG11, VGG13, VGG16, VGG19 = (_depth_builder(d) for d in (11, 13, 16, 19))
