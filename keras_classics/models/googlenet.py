"""GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015): Table 1 as a table."""
import keras

from ..layers.pooling import ceil_pool_size
from ..layers import (CeilMaxPooling2D, LocalResponseNormalization, conv_norm_act,
                      inception_v1_module)
from ._common import (check_args, classifier, finalize, gap_classifier, model_input,
                      pool_features, variant)
from ._zoo import register
from ..weights import register_weights, torchvision_weights

__all__ = ["GoogLeNet"]  # the public builders

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015"

# (name, (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj)) or a 3×3/2 max pool name.
INCEPTIONS = [
    ("inception_3a", (64, 96, 128, 16, 32, 32)),
    ("inception_3b", (128, 128, 192, 32, 96, 64)),
    "pool3",
    ("inception_4a", (192, 96, 208, 16, 48, 64)),
    ("inception_4b", (160, 112, 224, 24, 64, 64)),
    ("inception_4c", (128, 128, 256, 24, 64, 64)),
    ("inception_4d", (112, 144, 288, 32, 64, 64)),
    ("inception_4e", (256, 160, 320, 32, 128, 128)),
    "pool4",
    ("inception_5a", (256, 160, 320, 32, 128, 128)),
    ("inception_5b", (384, 192, 384, 48, 128, 128)),
]
AUX_AFTER = {"inception_4a": "aux1", "inception_4d": "aux2"}

# Pretrained weights: torchvision's checkpoint, for its own topology (``googlenet_bn``). It was
# ported from TensorFlow: torchvision's ``transform_input`` maps its inputs to [-1, 1], which
# is Keras' "tf" preprocessing.
register_weights(
    torchvision_weights("googlenet_bn", "googlenet-1378be20.pth", "googlenet", 69.778,
                        preprocessing="tf"),
    variant_of={"googlenet": "googlenet_bn"})


def _aux_head_map(size):
    """The map size at inception 4a (conv1 7×7/2 pad 3, three 3×3/2 ceil-mode pools)."""
    size = (size - 1) // 2 + 1
    for _ in range(3):
        size = ceil_pool_size(size, 3, 2)
    return size


def _aux_min_size():
    """The smallest input whose 4a map fits the aux heads' 5×5 pool (79 with ceil pooling)."""
    return next(s for s in range(32, 512) if _aux_head_map(s) >= 5)


def _aux_head(x, name, classes, classifier_activation, norm, use_bias, epsilon):
    """Auxiliary classifier (section 5): 5×5/3 average pool, 1×1 conv 128, FC 1024, dropout 0.7."""
    x = keras.layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv_norm_act(x, 128, 1, f"{name}_conv", norm=norm, use_bias=use_bias, epsilon=epsilon)
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = keras.layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return classifier(x, classes, classifier_activation, name=f"{name}_predictions")


def GoogLeNet(include_top=True, weights=None, input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name="googlenet",
              aux_logits=False, lrn=True, norm=None, five_kernel=5, dropout=0.4,
              use_bias=None, epsilon=1e-3, last_pool=3, weights_key="googlenet"):
    """GoogLeNet as in the paper: 7×7/2 stem with LRN, nine Inception modules, global average
    pool, dropout 0.4 and a single FC (no hidden FC layers).

    ``aux_logits=True`` (needs ``include_top``) adds the two auxiliary classifiers on 4a and 4d
    as extra outputs ``[main, aux1, aux2]``, to be weighted 0.3 in training. The paper's 7×7
    average pool is a global average pool here (identical at 224×224, and any size works).
    torchvision's ``googlenet`` is ``norm="batch", lrn=False, five_kernel=3, dropout=0.2,
    last_pool=2`` (its max pool before 5a is 2×2/2, not the paper's 3×3/2; registered as
    ``googlenet_bn``, the topology of its ImageNet weights). Convs have biases unless followed
    by a norm. ``weights_key`` names the registered variant whose ImageNet weights
    ``weights="imagenet"`` means (``googlenet_bn`` passes its own).
    """
    model_name = name
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    if aux_logits and not include_top:
        raise ValueError(f"{model_name}: aux_logits=True needs include_top=True")
    if five_kernel not in (3, 5):
        raise ValueError(f"{model_name}: five_kernel must be 5 (paper) or 3 (torchvision), "
                         f"got {five_kernel!r}")
    use_bias = norm is None if use_bias is None else use_bias
    # 32× downsampling; the aux heads' valid 5×5/3 pool needs a 5×5 map at 4a (1/16 scale).
    min_size = _aux_min_size() if aux_logits else 32
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=224, min_size=min_size, include_top=include_top,
                            weights=weights, fixed_head=aux_logits)

    def conv(t, filters, kernel, lname, **kw):
        return conv_norm_act(t, filters, kernel, lname, norm=norm, use_bias=use_bias,
                             epsilon=epsilon, **kw)

    def maxpool(t, lname, size=3):  # Caffe's (and torchvision's) ceil-mode pooling
        return CeilMaxPooling2D(size, strides=2, name=lname)(t)

    x = conv(x, 64, 7, "conv1_7x7_s2", strides=2, padding=3)
    x = maxpool(x, "pool1_3x3_s2")
    if lrn:
        x = LocalResponseNormalization(name="pool1_norm1")(x)
    x = conv(x, 64, 1, "conv2_3x3_reduce")
    x = conv(x, 192, 3, "conv2_3x3")
    if lrn:
        x = LocalResponseNormalization(name="conv2_norm2")(x)
    x = maxpool(x, "pool2_3x3_s2")
    aux = []
    for row in INCEPTIONS:
        if isinstance(row, str):
            x = maxpool(x, f"{row}_3x3_s2", last_pool if row == "pool4" else 3)
            continue
        block_name, filters = row
        x = inception_v1_module(x, filters, block_name, norm=norm, use_bias=use_bias,
                                five_kernel=five_kernel, epsilon=epsilon)
        if aux_logits and block_name in AUX_AFTER:
            aux.append(_aux_head(x, AUX_AFTER[block_name], classes, classifier_activation,
                                 norm, use_bias, epsilon))
    if include_top:
        x = gap_classifier(x, classes, classifier_activation, dropout=dropout)
        outputs = [x, *aux] if aux_logits else x
    else:
        outputs = pool_features(x, pooling)
    return finalize(inputs, outputs, model_name, weights, weights_key, include_top)


register("googlenet", GoogLeNet, PAPER)
variant("GoogLeNetBN", GoogLeNet, "googlenet_bn",
        "torchvision's GoogLeNet: BN after every conv, 3x3 in the '5x5' branch, no LRN, 2x2 pool "
        "before 5a", PAPER, norm="batch", lrn=False, five_kernel=3, dropout=0.2, last_pool=2)
