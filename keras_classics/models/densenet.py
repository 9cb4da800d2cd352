"""DenseNet (Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional
Networks", CVPR 2017): ImageNet DenseNet-BC from Table 1 and the CIFAR DenseNet-BC.

Layer names are keras.applications' (``conv1_conv``, ``conv2_block1_0_bn``, ``pool2_conv``,
``bn``, ``avg_pool``, ``predictions``), so Keras' DenseNet121/169/201 weights load unchanged.
"""
import keras

from ..layers import dense_block, normalize, transition_block
from ._common import (check_args, finalize, gap_classifier, model_input, pool_features,
                      stem_7x7, variant)
from ._zoo import register_pattern
from ..weights import keras_weights, register_weights, torchvision_weights

__all__ = ["DenseNet", "DenseNetBC", "DenseNet121", "DenseNet161", "DenseNet169",
           "DenseNet201", "DenseNet264"]  # the public builders

PAPER = ("Huang, Liu, van der Maaten & Weinberger, Densely Connected Convolutional Networks, "
         "CVPR 2017")

# depth -> (growth rate k, layers per dense block, initial features): Table 1 and section 4.
SPECS = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
    264: (32, (6, 12, 64, 48), 64),
}

# Pretrained weights: Keras' published files for 121/169/201 (ported from the authors' Torch
# models: "torch" preprocessing), torchvision's checkpoint for 161.
register_weights(
    keras_weights("densenet121", "densenet/densenet121_weights_tf_dim_ordering_tf_kernels",
                  "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738",
                  "torch", 74.972),
    keras_weights("densenet169", "densenet/densenet169_weights_tf_dim_ordering_tf_kernels",
                  "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b",
                  "torch", 76.176),
    keras_weights("densenet201", "densenet/densenet201_weights_tf_dim_ordering_tf_kernels",
                  "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1",
                  "torch", 77.320),
    torchvision_weights("densenet161", "densenet161-8d451a50.pth", "densenet", 77.138))


def _body(x, blocks, growth_rate, compression, norm, epsilon, bottleneck=True, dropout=0.0):
    """Dense blocks ``conv2``, ``conv3``, ... with transitions ``pool2``, ``pool3``, ... between,
    then the final norm (keras.applications' ``bn``) and ReLU."""
    for i, n in enumerate(blocks):
        x = dense_block(x, n, growth_rate, name=f"conv{i + 2}", bottleneck=bottleneck,
                        norm=norm, epsilon=epsilon, dropout=dropout)
        if i < len(blocks) - 1:
            x = transition_block(x, name=f"pool{i + 2}", compression=compression, norm=norm,
                                 epsilon=epsilon, dropout=dropout)
    x = normalize(x, norm, "bn" if norm == "batch" else "final", epsilon=epsilon,
                  exact_name=norm == "batch")
    return keras.layers.Activation("relu", name="relu")(x)


def DenseNet(depth=121, include_top=True, weights=None, input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name=None,
             growth_rate=None, blocks=None, init_features=None, compression=0.5,
             norm="batch", epsilon=1.001e-5, weights_key=None):
    """ImageNet DenseNet-BC: 7×7/2 conv, 3×3/2 max pool, four dense blocks (bottleneck
    layers of 4k channels) and compression-0.5 transitions. ``depth`` picks a row of
    :data:`SPECS` (121, 161, 169, 201, 264); ``growth_rate``, ``blocks``, ``init_features``
    override it. DenseNet-161 (k=48, 96 initial features) is from the authors' release.
    ``weights="imagenet"`` loads the weights of the registered variant ``weights_key``, which
    the named builders pass (``DenseNet121`` ...).
    """
    model_name = name or f"densenet{depth}"
    if depth not in SPECS and None in (growth_rate, blocks, init_features):
        raise ValueError(f"{model_name}: depth must be one of {sorted(SPECS)} (or give "
                         f"growth_rate, blocks and init_features), got {depth!r}")
    k, nblocks, init = SPECS.get(depth, (None, None, None))
    k, nblocks, init = growth_rate or k, tuple(blocks or nblocks), init_features or init
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=224, min_size=32, include_top=include_top,
                            weights=weights)
    x = stem_7x7(x, init, norm, epsilon, pool_name="pool1")
    x = _body(x, nblocks, k, compression, norm, epsilon)
    x = gap_classifier(x, classes, classifier_activation) if include_top else \
        pool_features(x, pooling)
    return finalize(inputs, x, model_name, weights, weights_key, include_top)


def DenseNetBC(depth=100, growth_rate=12, include_top=True, weights=None, input_tensor=None,
               input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
               name=None, compression=0.5, bottleneck=True, dropout=0.0, norm="batch",
               epsilon=1e-5, weights_key=None):
    """CIFAR DenseNet-BC (L=``depth``, k=``growth_rate``): a 3×3 conv to 2k channels, three
    dense blocks of (L-4)/6 bottleneck layers at 32, 16 and 8 pixels, compression 0.5.
    L=100, k=12 has 0.8 M parameters; L=250, k=24 15.3 M; L=190, k=40 25.6 M (Table 2).
    ``bottleneck=False, compression=1`` is the plain DenseNet (depth = 3n+4)."""
    model_name = name or f"densenet_bc_{depth}_{growth_rate}"
    per = 6 if bottleneck else 3
    if not isinstance(depth, int) or depth < per + 4 or (depth - 4) % per:
        raise ValueError(f"{model_name}: depth must be {per}n+4 (n >= 1), e.g. 100, 190, 250; "
                         f"got {depth!r}")
    if not isinstance(growth_rate, int) or growth_rate < 1:
        raise ValueError(f"{model_name}: growth_rate must be a positive int, got {growth_rate!r}")
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=32, min_size=4, include_top=include_top,
                            weights=weights)
    n = (depth - 4) // per
    x = keras.layers.Conv2D(2 * growth_rate if bottleneck else 16, 3, padding="same",
                            use_bias=norm is None, name="conv1_conv")(x)
    x = _body(x, (n, n, n), growth_rate, compression, norm, epsilon, bottleneck=bottleneck,
              dropout=dropout)
    x = gap_classifier(x, classes, classifier_activation) if include_top else \
        pool_features(x, pooling)
    return finalize(inputs, x, model_name, weights, weights_key, include_top)


def _what(depth):
    k, blocks, init = SPECS[depth]
    return f"DenseNet-{depth}: growth rate {k}, blocks {blocks}, {init} initial features"


DenseNet121 = variant("DenseNet121", DenseNet, "densenet121", _what(121), PAPER, depth=121)
DenseNet161 = variant("DenseNet161", DenseNet, "densenet161", _what(161), PAPER, depth=161)
DenseNet169 = variant("DenseNet169", DenseNet, "densenet169", _what(169), PAPER, depth=169)
DenseNet201 = variant("DenseNet201", DenseNet, "densenet201", _what(201), PAPER, depth=201)
DenseNet264 = variant("DenseNet264", DenseNet, "densenet264", _what(264), PAPER, depth=264)
register_pattern(r"densenet_bc_(\d+)_(\d+)", ("densenet_bc_100_12", "densenet_bc_190_40",
                                               "densenet_bc_250_24"),
                 DenseNetBC, PAPER,
                 lambda m: {"depth": int(m.group(1)), "growth_rate": int(m.group(2))},
                 "DenseNet-BC L={0}, k={1} for CIFAR")
