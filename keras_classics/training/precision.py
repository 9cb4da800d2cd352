"""Which precision to train in, and float16's loss scaling on several replicas.

"mixed_float16" (GPUs with tensor cores) needs loss scaling; "mixed_bfloat16" (TPUs, CPUs
with AVX512_BF16 or AMX) has float32's range and needs none; "auto" is the faster of the
machine's (:func:`fast_precision`). Under either mixed policy the models' output layers
compute in float32 (``models._common.classifier``).
"""
import contextlib

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def fast_precision(cpuinfo="/proc/cpuinfo"):
    """The fastest policy this machine trains in: "mixed_float16" on a GPU of compute
    capability 7.0 or more (tensor cores), "mixed_bfloat16" on a CPU with bfloat16
    instructions (AVX512_BF16 or AMX; oneDNN runs bf16 matmuls and convolutions on them:
    ZFNet trains 1.7-1.9x faster than in float32 here), else "float32" (bfloat16 emulated
    in AVX-512F or AVX2 is slower than float32)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0))
        return "mixed_float16" if tuple(capability) >= (7, 0) else "float32"
    try:
        with open(cpuinfo) as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:  # no /proc (macOS, Windows): nothing to tell, keep float32
        return "float32"
    return "mixed_bfloat16" if flags & set(BF16_CPU_FLAGS) else "float32"


def check_precision(name, owner=None):
    """``name`` if it is one of :data:`PRECISIONS`, else a ValueError saying what is allowed
    (prefixed with ``owner``). Touches no device, unlike :func:`resolve_precision`."""
    if name not in PRECISIONS:
        raise ValueError(f"{owner + ': ' if owner else ''}unknown precision {name!r}; "
                         f"allowed: {', '.join(PRECISIONS)}")
    return name


def resolve_precision(name):
    """The Keras policy ``name`` stands for: one of :data:`PRECISIONS` ("auto":
    :func:`fast_precision`); ``None`` is "float32"."""
    name = check_precision("float32" if name is None else name)
    return fast_precision() if name == "auto" else name


@contextlib.contextmanager
def precision(name):
    """Set Keras' global policy to :func:`resolve_precision` of ``name`` for the block;
    yields the policy's name and restores the previous policy afterwards."""
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolve_precision(name))
    try:
        yield keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy(old)


@keras.saving.register_keras_serializable("keras_classics")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' dynamic loss scaling with a finite-gradient check all replicas agree on.

    Keras 3.15 (``LossScaleOptimizer._tf_apply``) takes replica 0's verdict on gradients that
    are not yet summed across replicas: when another replica overflows, its infinite
    gradients are applied everywhere (two CPU replicas, ResNet-18 in float16: NaN within the
    first epoch for 4 seeds of 4). Here the replicas sum their "not finite" flags, so one
    overflowing replica makes every replica skip the step and halve the scale."""

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return finite
        bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                             tf.cast(tf.logical_not(finite), tf.float32))
        return tf.equal(bad, 0.0)


def with_policy(model, policy, copy=False):
    """A copy of the functional ``model`` with its weights whose layers compute under
    ``policy`` (a Keras policy name), those producing its outputs in float32 under a mixed
    policy; ``model`` itself when its layers already do, unless ``copy``. Fine-tuning a float32
    backbone in mixed precision, looking at a mixed-precision model in float32."""
    outputs = {id(t._keras_history[0]) for t in model.outputs}

    def wanted(layer):
        mixed = keras.DTypePolicy(policy).compute_dtype != "float32"
        return "float32" if mixed and id(layer) in outputs else policy

    if not copy and all(layer.dtype_policy.name == wanted(layer) for layer in model.layers
                        if not isinstance(layer, keras.layers.InputLayer)):
        return model

    def clone(layer):
        if isinstance(layer, keras.Model):
            return with_policy(layer, policy)
        return layer.__class__.from_config({**layer.get_config(), "dtype": wanted(layer)})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
