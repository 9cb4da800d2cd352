"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) and ZFNet (Zeiler & Fergus, ECCV 2014).

Both are five convolutions and three fully connected layers; a variant is a table of ops:
``("conv", name, filters, kernel, stride, padding, grouped)``, ``("lrn", name)``,
``("pool", name, padding)`` (all max pools are 3×3 stride 2, "overlapping pooling").
"""
import keras

from ..layers import LocalResponseNormalization, conv_norm_act
from ._common import (check_args, fc_classifier, finalize, min_input_size, model_input,
                      pool_features)
from ._zoo import register
from ..weights import register_weights, torchvision_weights

__all__ = ["AlexNet", "AlexNetOWT", "ZFNet"]  # the public builders

ALEXNET = ("Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional "
           "Neural Networks, NIPS 2012")
ALEXNET_OWT = ("Krizhevsky, One weird trick for parallelizing convolutional neural networks, "
               "arXiv:1404.5997, 2014")
ZFNET = "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014"

# Pretrained weights: torchvision's, for the "one weird trick" topology only.
register_weights(torchvision_weights("alexnet_owt", "alexnet-owt-7be5be79.pth", "alexnet", 56.522),
                 variant_of={"alexnet": "alexnet_owt", "zfnet": None})


def alexnet_ops():
    """The paper's network (Fig. 2, section 3.5): conv→ReLU→LRN→pool in layers 1 and 2.
    ``grouped`` convs (2, 4, 5) see only their own GPU's half of the previous layer."""
    return [
        ("conv", "conv1", 96, 11, 4, "valid", False), ("lrn", "norm1"), ("pool", "pool1", "valid"),
        ("conv", "conv2", 256, 5, 1, "same", True), ("lrn", "norm2"), ("pool", "pool2", "valid"),
        ("conv", "conv3", 384, 3, 1, "same", False),
        ("conv", "conv4", 384, 3, 1, "same", True),
        ("conv", "conv5", 256, 3, 1, "same", True), ("pool", "pool5", "valid"),
    ]


def alexnet_owt_ops():
    """torchvision's AlexNet: the single-tower "one weird trick" net (Krizhevsky 2014,
    arXiv:1404.5997), 64-192-384-256-256 filters, no LRN."""
    return [
        ("conv", "conv1", 64, 11, 4, 2, False), ("pool", "pool1", "valid"),
        ("conv", "conv2", 192, 5, 1, "same", False), ("pool", "pool2", "valid"),
        ("conv", "conv3", 384, 3, 1, "same", False),
        ("conv", "conv4", 256, 3, 1, "same", False),
        ("conv", "conv5", 256, 3, 1, "same", False), ("pool", "pool5", "valid"),
    ]


def zfnet_ops(conv1_kernel=7, conv1_stride=2, widths=(384, 384, 256)):
    """ZFNet (Fig. 3 of the paper): 7×7/2 conv1 (padded by 1: 224→110), stride-2 conv2, pooling
    then contrast normalization. ``conv1_kernel=11, conv1_stride=4`` is AlexNet's conv1 and
    ``widths=(512, 1024, 512)`` the wider conv3–5 of the paper's best single model."""
    if len(widths) != 3:
        raise ValueError(f"zfnet: widths must be the three conv3-5 widths, got {widths!r}")
    c3, c4, c5 = widths
    return [
        ("conv", "conv1", 96, conv1_kernel, conv1_stride, 1, False),
        ("pool", "pool1", "same"), ("lrn", "norm1"),
        ("conv", "conv2", 256, 5, 2, "valid", False),
        ("pool", "pool2", "same"), ("lrn", "norm2"),
        ("conv", "conv3", c3, 3, 1, "same", False),
        ("conv", "conv4", c4, 3, 1, "same", False),
        ("conv", "conv5", c5, 3, 1, "same", False), ("pool", "pool5", "valid"),
    ]


def ops_min_size(ops):
    """Smallest input for which the op table keeps every feature map at least 1×1."""
    return min_input_size([(op[3], op[4], op[5]) if op[0] == "conv" else (3, 2, op[2])
                           for op in ops if op[0] != "lrn"])


def build(model_name, ops, *, default_size, groups=1, lrn=True, fc=(4096, 4096), dropout=0.5,
          norm=None, include_top=True, weights=None, input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax", name=None,
          weights_key=None):
    """Build a five-conv/three-FC net from an op table (see the module docstring)."""
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    if groups not in (1, 2):
        raise ValueError(f"{model_name}: groups must be 1 (one tower) or 2 (the paper's two "
                         f"GPUs), got {groups!r}")
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=default_size, min_size=ops_min_size(ops),
                            include_top=include_top, weights=weights, fixed_head=True)
    for op in ops:
        if op[0] == "conv":
            _, lname, filters, kernel, stride, padding, grouped = op
            x = conv_norm_act(x, filters, kernel, lname, strides=stride, padding=padding,
                              groups=groups if grouped else 1, norm=norm)
        elif op[0] == "lrn":
            if lrn:
                x = LocalResponseNormalization(name=op[1])(x)
        else:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="valid" if op[2] == "valid"
                                          else "same", name=op[1])(x)
    if include_top:
        x = fc_classifier(x, fc, dropout, classes, classifier_activation, first=6)
    else:
        x = pool_features(x, pooling)
    return finalize(inputs, x, name or model_name, weights, weights_key, include_top)


def AlexNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax", name="alexnet", groups=2, lrn=True,
            dropout=0.5, norm=None, weights_key="alexnet"):
    """AlexNet as in the 2012 paper: 96-256-384-384-256 convs, LRN (n=5, k=2, α=1e-4, β=0.75)
    after conv1/conv2, overlapping 3×3/2 max pools, two 4096 FCs with dropout 0.5.

    Input 227×227 (the paper says 224; only 227 gives its 55×55 conv1 output). ``groups=2``
    reproduces the two-GPU split of conv2, conv4 and conv5 (60,965,224 parameters);
    ``groups=1`` is the single tower the lecture draws (62,378,344). The lecture (Caffe's
    reference net) pools before LRN; we follow the paper (LRN, then pool): same parameters.
    ``norm`` adds a normalization after every conv (not in the paper).
    """
    return build("alexnet", alexnet_ops(), default_size=227, groups=groups, lrn=lrn,
                 dropout=dropout, norm=norm, include_top=include_top, weights=weights,
                 input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                 classes=classes, classifier_activation=classifier_activation, name=name,
                 weights_key=weights_key)


def AlexNetOWT(include_top=True, weights=None, input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax",
               name="alexnet_owt", dropout=0.5, norm=None, weights_key="alexnet_owt"):
    """torchvision's ``alexnet``: the "one weird trick" single-tower variant (64-192-384-256-256,
    no LRN, 224×224 input), 61,100,840 parameters. Its adaptive 6×6 average pool is the identity
    at 224×224 and is left out."""
    return build("alexnet_owt", alexnet_owt_ops(), default_size=224, lrn=False, dropout=dropout,
                 norm=norm, include_top=include_top, weights=weights, input_tensor=input_tensor,
                 input_shape=input_shape, pooling=pooling, classes=classes,
                 classifier_activation=classifier_activation, name=name,
                 weights_key=weights_key)


def ZFNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name="zfnet", conv1_kernel=7,
          conv1_stride=2, widths=(384, 384, 256), lrn=True, dropout=0.5, norm=None,
          weights_key="zfnet"):
    """ZFNet (Zeiler & Fergus 2014): AlexNet with a 7×7/2 conv1, stride-2 conv2 and one tower.

    The arguments are the paper's hyperparameter changes, so a tuner can sweep them:
    ``conv1_kernel``/``conv1_stride`` (7/2 vs AlexNet's 11/4) and ``widths`` of conv3–5
    (384/384/256 vs 512/1024/512). Feature maps at 224×224: 110→55→26→13→13→13→6, as in the
    paper's Fig. 3. Its "contrast normalization" is our LRN layer with AlexNet's constants.
    """
    return build("zfnet", zfnet_ops(conv1_kernel, conv1_stride, tuple(widths)),
                 default_size=224, lrn=lrn, dropout=dropout, norm=norm, include_top=include_top,
                 weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                 pooling=pooling, classes=classes, classifier_activation=classifier_activation,
                 name=name, weights_key=weights_key)


register("alexnet", AlexNet, ALEXNET, default_size=227, min_size=ops_min_size(alexnet_ops()))
register("alexnet_owt", AlexNetOWT, ALEXNET_OWT, min_size=ops_min_size(alexnet_owt_ops()))
register("zfnet", ZFNet, ZFNET, min_size=ops_min_size(zfnet_ops()))
