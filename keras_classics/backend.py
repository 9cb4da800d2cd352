"""Which Keras backend runs this process, and a clear error for the parts that need
TensorFlow.

The zoo (layers, builders, registry), weights, preprocessing, analysis and folding use
``keras.ops`` and numpy and run on every Keras backend (TensorFlow, JAX, PyTorch). The
training loop (tf.distribute), the tuning recipes and fine-tuning that train with it,
SavedModel/TFLite export and the visualizations (``tf.GradientTape``) are TensorFlow by
nature."""
import keras


class BackendError(RuntimeError):
    """A TensorFlow-only part of the package asked for under another Keras backend."""


def require_tensorflow(feature):
    """Raise a :class:`BackendError` (a RuntimeError) naming ``feature`` and what to do when
    Keras runs on another backend."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            f"{feature} needs Keras' TensorFlow backend; this process runs Keras on "
            f"{backend!r} (KERAS_BACKEND). Run it with KERAS_BACKEND=tensorflow, or save the "
            "model (model.save('m.keras'), any backend) and use the file there; the models, "
            "their weights and model.fit work on every backend")


def fused_batch_norm(x, scale, offset, epsilon):
    """TensorFlow's fused batch norm in training mode (``FusedBatchNormV3``, which oneDNN
    runs where TensorFlow uses it): ``(y, batch_mean, batch_variance)`` of an NHWC ``x``
    (float32, float16 or bfloat16; statistics and ``scale``/``offset`` in float32).
    ``batch_variance`` is the biased one (over N·H·W), as ``keras.ops.moments`` gives: the
    kernel returns Bessel's correction, undone here. TensorFlow backend only."""
    import tensorflow as tf

    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, epsilon=epsilon, data_format="NHWC", is_training=True)
    n = tf.cast(tf.size(x, out_type=tf.int64) // tf.cast(tf.shape(x)[-1], tf.int64),
                tf.float32)
    return y, mean, variance * ((n - 1.0) / n)
