"""Local response normalization (Krizhevsky, Sutskever & Hinton 2012, section 3.3)."""
import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_classics")
class LocalResponseNormalization(keras.layers.Layer):
    """``b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2) ** beta`` across channels.

    Arguments follow the AlexNet paper: window ``size`` n (odd), ``k``, ``alpha``, ``beta``;
    the paper's values are n=5, k=2, α=1e-4, β=0.75. Caffe and PyTorch (``nn.LocalResponseNorm``)
    divide their α by n, so their ``alpha=5e-4`` is the paper's 1e-4 at n=5: build such a layer
    with :meth:`from_caffe`. Computed with ``tf.nn.local_response_normalization`` in float32
    (and cast back), so it is safe under mixed precision. In training the op is XLA-compiled:
    the gradient of TensorFlow's LRN kernel is slow on CPUs (see :func:`_compiled_lrn`);
    inference keeps TensorFlow's kernel, so exported SavedModels need no XLA to serve.
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
        return (_compiled_lrn if training else _lrn)(inputs, self.size // 2, self.k,
                                                     self.alpha, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def op_counts(self, in_shapes, out_shape):
        """(MACs, other ops) per image, for :mod:`keras_classics.analysis`: a window of
        ``size`` squares summed, then scale, power and divide, per output."""
        return 0, math.prod(out_shape) * (self.size + 3)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "k": self.k,
                "alpha": self.alpha, "beta": self.beta}


def _lrn(x, depth_radius, bias, alpha, beta):
    y = tf.nn.local_response_normalization(tf.cast(x, tf.float32), depth_radius=depth_radius,
                                           bias=bias, alpha=alpha, beta=beta)
    return tf.cast(y, x.dtype)


# The same op XLA-compiled, with its casts: TensorFlow's CPU gradient of LRN is a loop per
# element. Forward and backward of ZFNet's norm1 (batch 32 at 112x112: 27x27x96) on one thread
# took 43 ms with TensorFlow's kernels, 24 ms compiled; a mixed-bfloat16 ZFNet step 10-15% less.
# One function for every layer: ``reduce_retracing`` traces it for unknown shapes, and XLA
# compiles each shape it meets once.
_compiled_lrn = tf.function(_lrn, jit_compile=True, autograph=False, reduce_retracing=True)
