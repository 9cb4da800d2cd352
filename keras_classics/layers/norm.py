"""The normalization choice every builder accepts: ``norm="batch" | "group" | "layer" | "instance" | None``.

All four learn a per-channel scale and shift (2·C trainable parameters), so switching the norm
leaves a model's trainable parameter count unchanged; only BatchNormalization also keeps moving
statistics (non-trainable). Group/layer/instance norm are Keras' ``GroupNormalization`` with
``groups`` = 32 (or the largest divisor of C below it), 1 (all channels: layer norm over H, W, C,
as in Wu & He 2018, Fig. 2) and C (one channel per group: instance norm; Keras 3 has no
InstanceNormalization layer).
"""
import math

import keras

NORMS = ("batch", "group", "layer", "instance", None)
# Layer-name suffix per norm: ``conv1`` + ``_bn`` keeps keras.applications' names for "batch".
SUFFIX = {"batch": "bn", "group": "gn", "layer": "ln", "instance": "in"}
GROUPS = 32


def check_norm(norm, model_name="model"):
    """Raise a ValueError naming ``model_name`` unless ``norm`` is one of :data:`NORMS`."""
    if norm not in NORMS:
        raise ValueError(
            f"{model_name}: unknown norm {norm!r}; allowed: "
            + ", ".join(repr(n) for n in NORMS)
        )


def normalize(x, norm, name, epsilon=1.001e-5, momentum=0.9, exact_name=False):
    """Apply the chosen normalization to ``x`` (channels last); ``norm=None`` returns ``x``.

    The layer is named ``f"{name}_{suffix}"`` (``conv1_bn``, ``conv1_gn``, ...), or ``name``
    itself with ``exact_name=True``. BatchNormalization's moving averages use momentum 0.9
    (PyTorch's 0.1): Keras' 0.99 leaves inference statistics far behind in short runs.
    """
    check_norm(norm)
    if norm is None:
        return x
    layer_name = name if exact_name else f"{name}_{SUFFIX[norm]}"
    if norm == "batch":
        return keras.layers.BatchNormalization(
            axis=-1, epsilon=epsilon, momentum=momentum, name=layer_name
        )(x)
    channels = x.shape[-1]
    groups = {"group": math.gcd(channels, GROUPS), "layer": 1, "instance": channels}[norm]
    return keras.layers.GroupNormalization(
        groups=groups, axis=-1, epsilon=epsilon, name=layer_name
    )(x)


def padded_conv(x, filters, kernel_size, name, strides=1, padding="same", pad_name=None,
                **conv_kwargs):
    """A Conv2D whose ``padding`` is "same", "valid" or an int: an explicit symmetric
    ZeroPadding2D (``pad_name``, default ``{name}_pad``) then a valid convolution, as
    Caffe/PyTorch pad (Keras' "same" pads asymmetrically under stride 2)."""
    if isinstance(padding, int):
        if padding:
            x = keras.layers.ZeroPadding2D(padding, name=pad_name or f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                               name=name, **conv_kwargs)(x)


def conv_norm_act(
    x,
    filters,
    kernel_size,
    name,
    strides=1,
    padding="same",
    groups=1,
    norm=None,
    use_bias=True,
    activation="relu",
    epsilon=1.001e-5,
):
    """Conv2D → norm → activation, the unit AlexNet, VGG and GoogLeNet are made of.

    ``padding`` is ``"same"``, ``"valid"`` or an int (:func:`padded_conv`). With
    ``norm=None`` the activation is fused into the Conv2D, exactly as keras.applications' VGG
    builds it, so layer lists and weight order match.
    """
    if norm is None:
        return padded_conv(x, filters, kernel_size, name, strides, padding, groups=groups,
                           activation=activation, use_bias=True)
    x = padded_conv(x, filters, kernel_size, name, strides, padding, groups=groups,
                    use_bias=use_bias)
    x = normalize(x, norm, name, epsilon=epsilon)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_relu")(x)
    return x
