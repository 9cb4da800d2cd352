"""Squeeze-and-Excitation (Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018)."""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_classics")
class SqueezeExcite(keras.layers.Layer):
    """Channel attention: ``x * sigmoid(W2 · relu(W1 · mean_hw(x) + b1) + b2)``.

    ``ratio`` is the paper's reduction r (16 in SE-ResNet/SE-ResNeXt): the bottleneck has
    ``max(1, round(C / r))`` channels, rounded up to a multiple of ``divisor``. The paper uses
    ``divisor=1``; timm rounds to multiples of 8, which only differs when C/r is not already a
    multiple of 8 (never in SE-ResNet-50/101/152). Both FCs have biases, as in the paper's Caffe
    models and timm (their 1×1 convolutions are these matrices).
    """

    def __init__(self, ratio=16, divisor=1, **kwargs):
        super().__init__(**kwargs)
        if not ratio or ratio <= 0:
            raise ValueError(f"SqueezeExcite: ratio must be > 0, got {ratio!r}")
        self.ratio, self.divisor = ratio, int(divisor)

    def reduced_channels(self, channels):
        rd = max(1, round(channels / self.ratio))
        return -(-rd // self.divisor) * self.divisor

    def build(self, input_shape):
        channels = input_shape[-1]
        rd = self.reduced_channels(channels)
        self.reduce_kernel = self.add_weight(shape=(channels, rd), name="reduce_kernel",
                                             initializer="glorot_uniform")
        self.reduce_bias = self.add_weight(shape=(rd,), name="reduce_bias", initializer="zeros")
        self.expand_kernel = self.add_weight(shape=(rd, channels), name="expand_kernel",
                                             initializer="glorot_uniform")
        self.expand_bias = self.add_weight(shape=(channels,), name="expand_bias",
                                           initializer="zeros")

    def call(self, inputs):
        s = ops.mean(inputs, axis=(1, 2), keepdims=True)
        s = ops.relu(ops.matmul(s, self.reduce_kernel) + self.reduce_bias)
        s = ops.sigmoid(ops.matmul(s, self.expand_kernel) + self.expand_bias)
        return inputs * s

    def compute_output_shape(self, input_shape):
        return input_shape

    def op_counts(self, in_shapes, out_shape):
        """(MACs, other ops) per image, for :mod:`keras_classics.analysis`: the two FCs'
        multiply-adds; the pooling's adds and the gating's multiplies."""
        channels = in_shapes[0][-1]
        return 2 * channels * self.reduced_channels(channels), 2 * math.prod(in_shapes[0])

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "divisor": self.divisor}
