"""Local response normalization (Krizhevsky, Sutskever & Hinton 2012, section 3.3)."""
import functools
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_classics")
class LocalResponseNormalization(keras.layers.Layer):
    """``b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2) ** beta`` across channels.

    Arguments follow the AlexNet paper: window ``size`` n (odd), ``k``, ``alpha``, ``beta``;
    the paper's values are n=5, k=2, α=1e-4, β=0.75. Caffe and PyTorch (``nn.LocalResponseNorm``)
    divide their α by n, so their ``alpha=5e-4`` is the paper's 1e-4 at n=5: build such a layer
    with :meth:`from_caffe`. Computed in float32 (and cast back), so it is safe under mixed
    precision. On every backend with ``keras.ops`` (:func:`lrn`); on TensorFlow with its own
    kernel ``tf.nn.local_response_normalization`` in inference (exported SavedModels need no
    XLA to serve) and XLA-compiled in training (the gradient of TensorFlow's kernel is slow on
    CPUs, see :func:`_tf_lrn`).
    """

    def __init__(self, size=5, k=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(
                f"LocalResponseNormalization: size must be a positive odd int, got {size!r}"
            )
        self.size, self.k, self.alpha, self.beta = size, float(k), float(alpha), float(beta)

    @classmethod
    def from_caffe(cls, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        """Build from Caffe/PyTorch arguments, whose ``alpha`` is already divided by ``size``."""
        return cls(size=size, k=k, alpha=alpha / size, beta=beta, **kwargs)

    def call(self, inputs, training=False):
        args = (inputs, self.size // 2, self.k, self.alpha, self.beta)
        if keras.backend.backend() == "tensorflow":
            return _tf_lrn(compiled=bool(training))(*args)
        return lrn(*args)

    def compute_output_shape(self, input_shape):
        return input_shape

    def op_counts(self, in_shapes, out_shape):
        """(MACs, other ops) per image, for :mod:`keras_classics.analysis`: a window of
        ``size`` squares summed, then scale, power and divide, per output."""
        return 0, math.prod(out_shape) * (self.size + 3)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "k": self.k,
                "alpha": self.alpha, "beta": self.beta}


def lrn(x, depth_radius, bias, alpha, beta):
    """LRN across the last axis with ``keras.ops`` (any backend): ``x / (bias + alpha *
    sum of squares over channels d - depth_radius .. d + depth_radius) ** beta``, as
    ``tf.nn.local_response_normalization`` computes it, in float32."""
    x32 = ops.cast(x, "float32")
    channels = x.shape[-1]
    squares = ops.pad(ops.square(x32), [[0, 0]] * (len(x.shape) - 1) +
                      [[depth_radius, depth_radius]])
    window = squares[..., :channels]
    for i in range(1, 2 * depth_radius + 1):
        window = window + squares[..., i:i + channels]
    return ops.cast(x32 / ops.power(bias + alpha * window, beta), x.dtype)


@functools.cache
def _tf_lrn(compiled):
    """TensorFlow's LRN kernel with its casts; ``compiled``: the same XLA-compiled.
    TensorFlow's CPU gradient of LRN is a loop per element: forward and backward of ZFNet's
    norm1 (batch 32 at 112x112: 27x27x96) on one thread took 43 ms with TensorFlow's kernels,
    24 ms compiled; a mixed-bfloat16 ZFNet step 10-15% less. One function for every layer:
    ``reduce_retracing`` traces it for unknown shapes, and XLA compiles each shape it meets
    once."""
    import tensorflow as tf

    def tf_lrn(x, depth_radius, bias, alpha, beta):
        y = tf.nn.local_response_normalization(tf.cast(x, tf.float32),
                                               depth_radius=depth_radius, bias=bias,
                                               alpha=alpha, beta=beta)
        return tf.cast(y, x.dtype)

    return tf.function(tf_lrn, jit_compile=True, autograph=False,
                       reduce_retracing=True) if compiled else tf_lrn
