"""Residual blocks: He et al. 2016 (ResNet, v1), He et al. 2016b ("Identity Mappings", pre-activation),
Zagoruyko & Komodakis 2016 (Wide ResNet), Xie et al. 2017 (ResNeXt), Hu et al. 2018 (SE).

One function per block shape (basic 3×3-3×3, bottleneck 1×1-3×3-1×1), each with a ``preact``
form; ResNeXt is ``groups``, Wide ResNet is ``base_width``, SENet is ``se_ratio``. Layer names are
keras.applications' (``conv2_block1_0_conv`` shortcut, ``_1_``/``_2_``/``_3_`` convs, ``_add``,
``_out``, ``_preact_bn``), so Keras' ResNet/ResNetV2 weights load into models built from them.

``use_bias``: in post-activation blocks it applies to every conv (Keras' ResNet50 has biases
before its BNs; the paper and torchvision have none). In pre-activation blocks it applies to the
convs that feed the addition (shortcut and last conv), the only ones not followed by a norm,
which is exactly Keras' ResNet50V2. With ``norm=None`` every conv has a bias.
"""
import keras

from .norm import normalize, padded_conv
from .se import SqueezeExcite


def _conv(x, filters, kernel_size, name, strides=1, groups=1, use_bias=False):
    """Conv with torch/Caffe symmetric padding: explicit ``{block}_pad`` when strided, else
    "same" (``name`` is ``{block}_conv``)."""
    padding = kernel_size // 2 if strides > 1 and kernel_size > 1 else "same"
    return padded_conv(x, filters, kernel_size, name, strides, padding,
                       pad_name=f"{name.rsplit('_', 1)[0]}_pad", groups=groups,
                       use_bias=use_bias)


def _norm_act(x, norm, name, epsilon, act=True):
    x = normalize(x, norm, name, epsilon=epsilon)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x) if act else x


def _shortcut(x, preact, out_channels, stride, conv_shortcut, name, use_bias, norm, epsilon):
    """Identity, 1×1 projection (option B of the ResNet paper) or, for a strided identity in
    Keras' ResNetV2, a 1×1 max pool that subsamples."""
    if conv_shortcut is None:
        conv_shortcut = stride != 1 or x.shape[-1] != out_channels
    if conv_shortcut:
        s = keras.layers.Conv2D(out_channels, 1, strides=stride, use_bias=use_bias,
                                name=f"{name}_0_conv")(preact if preact is not None else x)
        return s if preact is not None else normalize(s, norm, f"{name}_0", epsilon=epsilon)
    if stride > 1:
        return keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    return x


def _merge(x, shortcut, name, se_ratio, post_relu):
    if se_ratio:
        x = SqueezeExcite(se_ratio, name=f"{name}_se")(x)
    if shortcut is None:  # a plain block (the ResNet paper's degradation experiment)
        return keras.layers.Activation("relu", name=f"{name}_out")(x) if post_relu else x
    x = keras.layers.Add(name=f"{name}_add" if post_relu else f"{name}_out")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x) if post_relu else x


def basic_block(x, filters, name, stride=1, conv_shortcut=None, preact=False, se_ratio=None,
                dropout=0.0, norm="batch", use_bias=False, epsilon=1.001e-5, residual=True):
    """Two 3×3 convs (ResNet-18/34; with ``preact``, the Wide-ResNet block, where ``dropout``
    sits between the convs as in WRN). ``conv_shortcut=None`` projects only when the shape
    changes. ``residual=False`` drops the shortcut: the ResNet paper's "plain" block."""
    use_bias = use_bias or norm is None
    if preact:
        pre = _norm_act(x, norm, f"{name}_preact", epsilon)
        shortcut = _shortcut(x, pre, filters, stride, conv_shortcut, name, use_bias, norm,
                             epsilon) if residual else None
        y = _conv(pre, filters, 3, f"{name}_1_conv", stride, use_bias=norm is None)
        y = _norm_act(y, norm, f"{name}_1", epsilon)
        if dropout:
            y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
        y = _conv(y, filters, 3, f"{name}_2_conv", use_bias=use_bias)
        return _merge(y, shortcut, name, se_ratio, post_relu=False)
    shortcut = _shortcut(x, None, filters, stride, conv_shortcut, name, use_bias, norm,
                         epsilon) if residual else None
    y = _conv(x, filters, 3, f"{name}_1_conv", stride, use_bias=use_bias)
    y = _norm_act(y, norm, f"{name}_1", epsilon)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = _conv(y, filters, 3, f"{name}_2_conv", use_bias=use_bias)
    y = _norm_act(y, norm, f"{name}_2", epsilon, act=False)
    return _merge(y, shortcut, name, se_ratio, post_relu=True)


def bottleneck_block(x, filters, name, stride=1, conv_shortcut=None, preact=False, groups=1,
                     base_width=64, expansion=4, stride_in="3x3", se_ratio=None, norm="batch",
                     use_bias=False, epsilon=1.001e-5):
    """1×1 reduce, 3×3 (grouped for ResNeXt), 1×1 expand to ``expansion·filters`` channels.

    The inner width is ``int(filters · base_width / 64) · groups`` (torchvision/timm's rule):
    ResNet ``base_width=64, groups=1``; ResNeXt-50 32×4d ``groups=32, base_width=4``;
    Wide-ResNet-50-2 ``base_width=128``. ``stride_in="1x1"`` strides the first 1×1 as the ResNet
    paper and Keras do; ``"3x3"`` strides the 3×3 ("ResNet v1.5", fb.resnet.torch, torchvision,
    ResNeXt): same parameters, more multiply-adds, slightly better accuracy.
    """
    if stride_in not in ("1x1", "3x3"):
        raise ValueError(f"bottleneck_block {name}: stride_in must be '1x1' or '3x3', "
                         f"got {stride_in!r}")
    width = int(filters * base_width / 64) * groups
    out = filters * expansion
    s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
    if preact:
        pre = _norm_act(x, norm, f"{name}_preact", epsilon)
        shortcut = _shortcut(x, pre, out, stride, conv_shortcut, name, use_bias or norm is None,
                             norm, epsilon)
        y = _conv(pre, width, 1, f"{name}_1_conv", s1, use_bias=norm is None)
        y = _norm_act(y, norm, f"{name}_1", epsilon)
        y = padded_conv(y, width, 3, f"{name}_2_conv", s3, 1, pad_name=f"{name}_2_pad",
                        groups=groups, use_bias=norm is None)  # padded always, as ResNetV2
        y = _norm_act(y, norm, f"{name}_2", epsilon)
        y = _conv(y, out, 1, f"{name}_3_conv", use_bias=use_bias or norm is None)
        return _merge(y, shortcut, name, se_ratio, post_relu=False)
    use_bias = use_bias or norm is None
    shortcut = _shortcut(x, None, out, stride, conv_shortcut, name, use_bias, norm, epsilon)
    y = _conv(x, width, 1, f"{name}_1_conv", s1, use_bias=use_bias)
    y = _norm_act(y, norm, f"{name}_1", epsilon)
    y = _conv(y, width, 3, f"{name}_2_conv", s3, groups, use_bias=use_bias)
    y = _norm_act(y, norm, f"{name}_2", epsilon)
    y = _conv(y, out, 1, f"{name}_3_conv", use_bias=use_bias)
    y = _norm_act(y, norm, f"{name}_3", epsilon, act=False)
    return _merge(y, shortcut, name, se_ratio, post_relu=True)
