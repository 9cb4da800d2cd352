"""The ResNet family from one builder and spec tables (the layout of timm's ``resnet.py`` and
keras.applications' ``ResNet(stack_fn, preact, use_bias)``).

- ResNet v1: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
- Pre-activation (v2): He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016.
- Wide ResNet: Zagoruyko & Komodakis, BMVC 2016.
- ResNeXt: Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017.
- SE-ResNet/SE-ResNeXt: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.

A variant is one :func:`~keras_classics.models._common.variant` line at the end (ImageNet,
224×224) or a registered name pattern (CIFAR, 32×32).
Layer names are keras.applications' (stem ``conv1_conv``, stages ``conv2``..``conv5``, blocks
``conv{stage}_block{i}``, ``post_bn``, ``avg_pool``, ``predictions``).
"""
import keras

from ..layers import basic_block, bottleneck_block, normalize
from ._common import (check_args, finalize, gap_classifier, model_input, pool_features,
                      stem_7x7, variant)
from ._zoo import register_pattern
from ..weights import keras_weights, register_weights, timm_weights, torchvision_weights

__all__ = ["ResNet", "CifarResNet", "WideResNet", "ResNet18", "ResNet34", "ResNet50",
           "ResNet101", "ResNet152", "ResNet50V1_5", "ResNet101V1_5", "ResNet152V1_5", "ResNet50V2",
           "ResNet101V2", "ResNet152V2", "WideResNet50_2", "WideResNet101_2", "ResNeXt50_32x4d",
           "ResNeXt101_32x8d", "ResNeXt101_64x4d", "SEResNet50", "SEResNet101", "SEResNet152",
           "SEResNeXt50_32x4d", "SEResNeXt101_32x4d", "PreActResNet164",
           "PreActResNet1001"]  # the public builders

# depth -> (block, blocks per stage): Table 1 of the ResNet paper.
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}

RESNET = "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016"
PREACT = "He, Zhang, Ren & Sun, Identity Mappings in Deep Residual Networks, ECCV 2016"
WRN = "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016"
RESNEXT = ("Xie, Girshick, Dollar, Tu & He, Aggregated Residual Transformations for Deep "
           "Neural Networks, CVPR 2017")
SENET = "Hu, Shen & Sun, Squeeze-and-Excitation Networks, CVPR 2018"

# Pretrained weights. Keras' published files (keras.applications' md5s): ResNet v1 from the
# authors' Caffe models ("caffe" preprocessing), ResNetV2 trained by Keras ("tf"; Keras
# measured their top-1 at 299x299). torchvision's IMAGENET1K_V1 checkpoints for v1.5, Wide
# ResNet and ResNeXt; timm's "legacy" SENet checkpoints (the SENet authors' Caffe weights,
# ported by Cadene: RGB, ImageNet mean/std).
_KR = "resnet/{}_weights_tf_dim_ordering_tf_kernels"
register_weights(
    keras_weights("resnet50", _KR.format("resnet50"), "2cb95161c43110f7111970584f804107",
                  "4d473c1dd8becc155b73f8504c6f6626", "caffe", 74.928),
    keras_weights("resnet101", _KR.format("resnet101"), "f1aeb4b969a6efcfb50fad2f0c20cfc5",
                  "88cf7a10940856eca736dc7b7e228a21", "caffe", 76.420),
    keras_weights("resnet152", _KR.format("resnet152"), "100835be76be38e30d865e96f2aaae62",
                  "ee4c566cf9a93f14d82f913c2dc6dd0c", "caffe", 76.604),
    keras_weights("resnet50_v2", _KR.format("resnet50v2"), "3ef43a0b657b3be2300d5770ece849e0",
                  "fac2f116257151a9d068a22e544a4917", "tf", 75.960, input_size=299),
    keras_weights("resnet101_v2", _KR.format("resnet101v2"),
                  "6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5", "tf",
                  77.234, input_size=299),
    keras_weights("resnet152_v2", _KR.format("resnet152v2"),
                  "a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33", "tf",
                  78.032, input_size=299),
    torchvision_weights("resnet18", "resnet18-f37072fd.pth", "resnet", 69.758),
    torchvision_weights("resnet34", "resnet34-b627a593.pth", "resnet", 73.314),
    torchvision_weights("resnet50_v1_5", "resnet50-0676ba61.pth", "resnet", 76.130),
    torchvision_weights("resnet101_v1_5", "resnet101-63fe2227.pth", "resnet", 77.374),
    torchvision_weights("resnet152_v1_5", "resnet152-394f9c45.pth", "resnet", 78.312),
    torchvision_weights("wide_resnet50_2", "wide_resnet50_2-95faca4d.pth", "resnet", 78.468),
    torchvision_weights("wide_resnet101_2", "wide_resnet101_2-32ee1156.pth", "resnet", 78.848),
    torchvision_weights("resnext50_32x4d", "resnext50_32x4d-7cdf4587.pth", "resnet", 77.618),
    torchvision_weights("resnext101_32x8d", "resnext101_32x8d-8ba56ff5.pth", "resnet", 79.312),
    torchvision_weights("resnext101_64x4d", "resnext101_64x4d-173b62eb.pth", "resnet", 83.246),
    timm_weights("se_resnet50", "v0.1-cadene/se_resnet50-ce0d4300.pth", "senet"),
    timm_weights("se_resnet101", "v0.1-cadene/se_resnet101-7e38fcc6.pth", "senet"),
    timm_weights("se_resnet152", "v0.1-cadene/se_resnet152-d17c99b7.pth", "senet"),
    timm_weights("se_resnext50_32x4d", "v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
                 "senet"),
    timm_weights("se_resnext101_32x4d",
                 "v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth", "senet"))


def _stages(x, block, blocks, filters, strides, stride_last=False, **block_kwargs):
    """Stages ``conv2``, ``conv3``, ...; ``stride_last`` is Keras' ResNetV2 layout (the stride
    in the last block of a stage, a projection only in the first)."""
    for stage, (n, f, s) in enumerate(zip(blocks, filters, strides), start=2):
        for i in range(n):
            if stride_last:
                stride, shortcut = (s if i == n - 1 else 1), i == 0
            else:
                stride, shortcut = (s if i == 0 else 1), None
            x = block(x, f, name=f"conv{stage}_block{i + 1}", stride=stride,
                      conv_shortcut=shortcut, **block_kwargs)
    return x


def ResNet(depth=50, include_top=True, weights=None, input_tensor=None, input_shape=None,
           pooling=None, classes=1000, classifier_activation="softmax", name=None, preact=False,
           groups=1, base_width=64, se_ratio=None, stride_in="3x3", use_bias=False,
           norm="batch", epsilon=1.001e-5, stem_pool="pad", weights_key=None):
    """An ImageNet ResNet of ``depth`` 18, 34, 50, 101, 152 or 200 (Table 1 of the paper).

    ``preact`` gives the pre-activation network in keras.applications' ResNetV2 layout;
    ``groups``/``base_width`` make ResNeXt and Wide ResNet bottlenecks; ``se_ratio`` adds an SE
    block before each addition; ``stride_in`` and ``use_bias`` choose between the paper/Keras
    layout ("1x1", biases) and torchvision's v1.5 ("3x3", no biases); see
    :func:`keras_classics.layers.bottleneck_block`. ``stem_pool="pad"`` pads the 3×3/2 stem
    max pool by one pixel (Keras, torchvision); ``"ceil"`` pools without padding, rounding up
    (Caffe, the SENet models): at even sizes the same map as Keras "same" pooling, at odd
    sizes one row and column more (:class:`~keras_classics.layers.CeilMaxPooling2D`).
    ``weights_key`` names the registered variant whose ImageNet weights ``weights="imagenet"``
    loads; the named builders (``ResNet50`` ...) pass their name.
    """
    model_name = name or f"resnet{depth}"
    if depth not in DEPTHS:
        raise ValueError(f"{model_name}: depth must be one of {sorted(DEPTHS)}, got {depth!r}")
    kind, blocks = DEPTHS[depth]
    if kind == "basic" and (groups != 1 or base_width != 64):
        raise ValueError(f"{model_name}: groups/base_width need a bottleneck depth "
                         f"(50, 101, 152, 200), got depth {depth}")
    if stem_pool not in ("pad", "ceil"):
        raise ValueError(f"{model_name}: stem_pool must be 'pad' or 'ceil', got {stem_pool!r}")
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=224, min_size=32, include_top=include_top,
                            weights=weights)
    # "ceil": the SENet Caffe models' pool, no padding, output size rounded up
    x = stem_7x7(x, 64, norm, epsilon, use_bias=use_bias, act=not preact, pool=stem_pool)
    kwargs = dict(preact=preact, se_ratio=se_ratio, norm=norm, use_bias=use_bias,
                  epsilon=epsilon)
    if kind == "bottleneck":
        kwargs.update(groups=groups, base_width=base_width, stride_in=stride_in)
    strides = (2, 2, 2, 1) if preact else (1, 2, 2, 2)
    x = _stages(x, BLOCKS[kind], blocks, (64, 128, 256, 512), strides, stride_last=preact,
                **kwargs)
    if preact:
        x = normalize(x, norm, "post", epsilon=epsilon)
        x = keras.layers.Activation("relu", name="post_relu")(x)
    x = gap_classifier(x, classes, classifier_activation) if include_top else \
        pool_features(x, pooling)
    return finalize(inputs, x, model_name, weights, weights_key, include_top)


def CifarResNet(depth, include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=10, classifier_activation="softmax", name=None,
                block="bottleneck", width=1, dropout=0.0, norm="batch", epsilon=1e-5,
                version="preact", residual=True, se_ratio=None, weights_key=None):
    """CIFAR ResNets: a 3×3 conv to 16 channels, three stages at 32, 16 and 8 pixels.

    ``version="preact"`` ("Identity Mappings"): ``block="bottleneck"`` is ResNet-164/1001,
    depth = 9n+2, stage outputs 64/128/256; ``block="basic"`` is Wide ResNet WRN-depth-width,
    depth = 6n+4, stage widths 16k/32k/64k, ``dropout`` between the convs (WRN's 0.3 is
    opt-in). ``version="v1"`` is the ResNet paper's CIFAR net (section 4.2, basic blocks,
    depth 6n+2, post-activation); ``residual=False`` removes every shortcut: its "plain"
    net. We project with a 1×1 conv where the paper pads the identity with zeros (option A).
    ``se_ratio`` adds SE blocks. No conv biases.
    """
    if version not in ("preact", "v1"):
        raise ValueError(f"cifar resnet: version must be 'preact' or 'v1', got {version!r}")
    if version == "v1":
        model_name = name or f"{'resnet' if residual else 'plain'}{depth}_cifar"
        per_block, offset, block = 6, 2, "basic"
    else:
        model_name = name or (f"preact_resnet{depth}" if block == "bottleneck"
                              else f"wrn_{depth}_{width}")
        per_block, offset = {"bottleneck": (9, 2), "basic": (6, 4)}.get(block, (None, None))
        if per_block is None:
            raise ValueError(f"{model_name}: block must be 'bottleneck' or 'basic', "
                             f"got {block!r}")
    if not isinstance(depth, int) or depth < per_block + offset or \
            (depth - offset) % per_block:
        example = {(9, 2): 164, (6, 4): 28, (6, 2): 20}[(per_block, offset)]
        raise ValueError(f"{model_name}: depth must be {per_block}n+{offset} (n >= 1) for "
                         f"{block} blocks, e.g. {example}; got {depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"{model_name}: width must be a positive int, got {width!r}")
    n = (depth - offset) // per_block
    check_args(model_name, include_top=include_top, weights=weights, pooling=pooling,
               classes=classes, norm=norm, weights_key=weights_key)
    inputs, x = model_input(model_name, input_tensor=input_tensor, input_shape=input_shape,
                            default_size=32, min_size=4, include_top=include_top,
                            weights=weights)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=norm is None,
                            name="conv1_conv")(x)
    preact = version == "preact"
    if not preact:
        x = normalize(x, norm, "conv1", epsilon=epsilon)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
    kwargs = dict(preact=preact, norm=norm, epsilon=epsilon, se_ratio=se_ratio)
    if block == "basic":
        kwargs.update(dropout=dropout, residual=residual)
        filters = (16 * width, 32 * width, 64 * width)
    else:
        filters = (16, 32, 64)
    x = _stages(x, BLOCKS[block], (n, n, n), filters, (1, 2, 2), **kwargs)
    if preact:
        x = normalize(x, norm, "post", epsilon=epsilon)
        x = keras.layers.Activation("relu", name="post_relu")(x)
    x = gap_classifier(x, classes, classifier_activation) if include_top else \
        pool_features(x, pooling)
    return finalize(inputs, x, model_name, weights, weights_key, include_top)


def WideResNet(depth=28, width=10, include_top=True, weights=None, input_tensor=None,
               input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
               name=None, dropout=0.0, norm="batch", weights_key=None):
    """CIFAR Wide ResNet WRN-``depth``-``width`` (Zagoruyko & Komodakis 2016), e.g. WRN-28-10
    (36.5 M parameters). See :func:`CifarResNet`."""
    return CifarResNet(depth, include_top=include_top, weights=weights,
                       input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                       classes=classes, classifier_activation=classifier_activation,
                       name=name or f"wrn_{depth}_{width}", block="basic", width=width,
                       dropout=dropout, norm=norm, weights_key=weights_key)


# The ImageNet variants: builder name, registered name, what it is, paper, ResNet() arguments.
_V1_KERAS = "conv biases before every BN and the stride in the first 1x1 (keras.applications)"
_V15 = "no conv biases, stride in the 3x3 (torchvision's \"v1.5\")"
_SE = "as the SENet paper's Caffe models"
ResNet18 = variant("ResNet18", ResNet, "resnet18", "ResNet-18, no conv biases", RESNET,
                   depth=18, use_bias=False)
ResNet34 = variant("ResNet34", ResNet, "resnet34", "ResNet-34, no conv biases", RESNET,
                   depth=34, use_bias=False)
ResNet50 = variant("ResNet50", ResNet, "resnet50", "ResNet-50 as in the paper, " + _V1_KERAS,
                   RESNET, depth=50, use_bias=True, stride_in="1x1")
ResNet101 = variant("ResNet101", ResNet, "resnet101",
                    "ResNet-101 as in the paper, " + _V1_KERAS, RESNET, depth=101,
                    use_bias=True, stride_in="1x1")
ResNet152 = variant("ResNet152", ResNet, "resnet152",
                    "ResNet-152 as in the paper, " + _V1_KERAS, RESNET, depth=152,
                    use_bias=True, stride_in="1x1")
ResNet50V1_5 = variant("ResNet50V1_5", ResNet, "resnet50_v1_5", "ResNet-50, " + _V15, RESNET,
                       depth=50)
ResNet101V1_5 = variant("ResNet101V1_5", ResNet, "resnet101_v1_5", "ResNet-101, " + _V15,
                        RESNET, depth=101)
ResNet152V1_5 = variant("ResNet152V1_5", ResNet, "resnet152_v1_5", "ResNet-152, " + _V15,
                        RESNET, depth=152)
ResNet50V2 = variant("ResNet50V2", ResNet, "resnet50_v2",
                     "pre-activation ResNet-50 as keras.applications' ResNet50V2", PREACT,
                     depth=50, preact=True, use_bias=True)
ResNet101V2 = variant("ResNet101V2", ResNet, "resnet101_v2",
                      "pre-activation ResNet-101 as keras.applications' ResNet101V2", PREACT,
                      depth=101, preact=True, use_bias=True)
ResNet152V2 = variant("ResNet152V2", ResNet, "resnet152_v2",
                      "pre-activation ResNet-152 as keras.applications' ResNet152V2", PREACT,
                      depth=152, preact=True, use_bias=True)
WideResNet50_2 = variant("WideResNet50_2", ResNet, "wide_resnet50_2",
                         "Wide ResNet-50-2: bottleneck width doubled, " + _V15, WRN, depth=50,
                         base_width=128)
WideResNet101_2 = variant("WideResNet101_2", ResNet, "wide_resnet101_2",
                          "Wide ResNet-101-2: bottleneck width doubled, " + _V15, WRN,
                          depth=101, base_width=128)
ResNeXt50_32x4d = variant("ResNeXt50_32x4d", ResNet, "resnext50_32x4d",
                          "ResNeXt-50 (32x4d), " + _V15 + " as in the ResNeXt paper", RESNEXT,
                          depth=50, groups=32, base_width=4)
ResNeXt101_32x8d = variant("ResNeXt101_32x8d", ResNet, "resnext101_32x8d",
                           "ResNeXt-101 (32x8d), " + _V15, RESNEXT, depth=101, groups=32,
                           base_width=8)
ResNeXt101_64x4d = variant("ResNeXt101_64x4d", ResNet, "resnext101_64x4d",
                           "ResNeXt-101 (64x4d), " + _V15, RESNEXT, depth=101, groups=64,
                           base_width=4)
SEResNet50 = variant("SEResNet50", ResNet, "se_resnet50",
                     "SE-ResNet-50 (r=16) " + _SE + ": stride in the first 1x1, ceil-mode stem "
                     "pool", SENET, depth=50, se_ratio=16, stride_in="1x1", stem_pool="ceil")
SEResNet101 = variant("SEResNet101", ResNet, "se_resnet101", "SE-ResNet-101 (r=16) " + _SE,
                      SENET, depth=101, se_ratio=16, stride_in="1x1", stem_pool="ceil")
SEResNet152 = variant("SEResNet152", ResNet, "se_resnet152", "SE-ResNet-152 (r=16) " + _SE,
                      SENET, depth=152, se_ratio=16, stride_in="1x1", stem_pool="ceil")
SEResNeXt50_32x4d = variant("SEResNeXt50_32x4d", ResNet, "se_resnext50_32x4d",
                            "SE-ResNeXt-50 (32x4d, r=16) " + _SE, SENET, depth=50, groups=32,
                            base_width=4, se_ratio=16, stem_pool="ceil")
SEResNeXt101_32x4d = variant("SEResNeXt101_32x4d", ResNet, "se_resnext101_32x4d",
                             "SE-ResNeXt-101 (32x4d, r=16) " + _SE, SENET, depth=101,
                             groups=32, base_width=4, se_ratio=16, stem_pool="ceil")

# The CIFAR nets: two named builders and three name patterns with any valid numbers.
_CIFAR = dict(classes=10, dataset="cifar", default_size=32, min_size=4)
PreActResNet164 = variant("PreActResNet164", CifarResNet, "preact_resnet164",
                          "Pre-activation ResNet-164 for CIFAR (1.7 M parameters)", PREACT,
                          depth=164, **_CIFAR)
PreActResNet1001 = variant("PreActResNet1001", CifarResNet, "preact_resnet1001",
                           "Pre-activation ResNet-1001 for CIFAR (10.2 M parameters)", PREACT,
                           depth=1001, **_CIFAR)
register_pattern(r"preact_resnet(\d+)", ("preact_resnet164", "preact_resnet1001"),
                 CifarResNet, PREACT, lambda m: {"depth": int(m.group(1))},
                 "Pre-activation ResNet-{0} for CIFAR (bottleneck blocks)")
register_pattern(r"(resnet|plain)(\d+)_cifar", ("plain20_cifar", "resnet20_cifar",
                                                "resnet56_cifar"),
                 CifarResNet, RESNET,
                 lambda m: {"depth": int(m.group(2)), "block": "basic", "version": "v1",
                            "residual": m.group(1) == "resnet"},
                 "ResNet paper CIFAR {0} net, {1} layers")
register_pattern(r"wrn_(\d+)_(\d+)", ("wrn_16_8", "wrn_28_10", "wrn_40_4"), WideResNet, WRN,
                 lambda m: {"depth": int(m.group(1)), "width": int(m.group(2))},
                 "Wide ResNet WRN-{0}-{1} for CIFAR")
