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

from keras_classics import backend

NORMS = ("batch", "group", "layer", "instance", None)
# Layer-name suffix per norm: ``conv1`` + ``_bn`` keeps keras.applications' names for "batch".
SUFFIX = {"batch": "bn", "group": "gn", "layer": "ln", "instance": "in"}
GROUPS = 32


@keras.saving.register_keras_serializable("keras_classics")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization (Ioffe & Szegedy 2015), trained through TensorFlow's fused
    kernel.

    Keras 3 trains it as ``moments`` + ``batch_normalization`` in float32: a cast of the input
    under mixed precision, a mean, a squared difference, a second mean, the affine map and a
    cast back, and as many steps again in the gradient (TensorFlow's ``Tile``, ``Mul``,
    ``Sum``...). Under the TensorFlow backend, in training on a 4-D channels-last input, this
    runs ``FusedBatchNormV3`` and its gradient instead (one kernel each way, statistics in
    float32 for bfloat16/float16 inputs); the moving statistics get Keras' update (biased batch
    variance, ``momentum``). Everything else — inference, other backends, masks, renorm,
    synchronized statistics — is Keras' own code. Same weights, config and name as Keras'
    layer; ``fused=False`` turns the fused kernel off (``bench/train_vs_torch.py`` compares
    both)."""

    counted_as = "BatchNormalization"  # keras_classics.analysis counts and labels it as one

    def __init__(self, *args, fused=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fused = fused

    def _fusable(self, inputs, training, mask):
        return (self.fused and training and self.trainable and mask is None
                and not self.renorm and not self.synchronized
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and list(self._reduction_axes) == [0, 1, 2]
                and keras.backend.standardize_dtype(inputs.dtype) in (
                    "float32", "float16", "bfloat16"))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = (inputs.shape[-1],)
        gamma = (keras.ops.cast(self.gamma, "float32") if self.scale
                 else keras.ops.ones(channels, "float32"))
        beta = (keras.ops.cast(self.beta, "float32") if self.center
                else keras.ops.zeros(channels, "float32"))
        y, mean, variance = backend.fused_batch_norm(inputs, gamma, beta, self.epsilon)
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        return keras.ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}


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
        return BatchNormalization(
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
