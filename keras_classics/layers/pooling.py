"""Max pooling that rounds its output size up, as Caffe does and PyTorch's ``ceil_mode=True``.

GoogLeNet (Caffe, and torchvision's port) and the SENet Caffe models pool with ceil mode; Keras'
"same" pooling gives the same map only when the input size is even. For an odd size, ceil mode
adds one window at the bottom/right that runs past the input (PyTorch drops a window that would
start in the padding); the missing pixels count as -inf, as in both frameworks.
"""
import keras
from keras import ops


def ceil_pool_size(size, pool, stride, padding=0):
    """PyTorch's ``ceil_mode=True`` output size (None stays None)."""
    if size is None:
        return None
    out = -(-(size + 2 * padding - pool) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


@keras.saving.register_keras_serializable(package="keras_classics")
class CeilMaxPooling2D(keras.layers.MaxPooling2D):
    """``MaxPooling2D(pool_size, strides, padding="valid")`` with ceil-mode output sizes
    (channels last). Works on inputs of unknown size: the extra bottom/right padding is
    computed from the runtime shape."""

    counted_as = "MaxPooling2D"  # keras_classics.analysis counts and labels it as one

    def __init__(self, pool_size=3, strides=2, **kwargs):
        kwargs.pop("padding", None)
        super().__init__(pool_size=pool_size, strides=strides, padding="valid", **kwargs)

    def _extra(self, size, axis):
        """The padding at the end of ``axis`` (a Python int, or a tensor where the size is
        known only at run time: TensorFlow's graphs of inputs of unknown size)."""
        k, s = self.pool_size[axis], self.strides[axis]
        if isinstance(size, int):
            return max((ceil_pool_size(size, k, s) - 1) * s + k - size, 0)
        out = (size - k + s - 1) // s + 1
        out = out - ops.cast((out - 1) * s >= size, out.dtype)
        return ops.maximum((out - 1) * s + k - size, 0)

    def call(self, inputs):
        shape = ops.shape(inputs)
        pads = [[0, 0], [0, self._extra(shape[1], 0)], [0, self._extra(shape[2], 1)], [0, 0]]
        return super().call(ops.pad(inputs, pads, constant_values=-float("inf")))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, ceil_pool_size(h, self.pool_size[0], self.strides[0]),
                ceil_pool_size(w, self.pool_size[1], self.strides[1]), c)

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return config
