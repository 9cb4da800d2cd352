"""The JAX side of bench/run.py (Keras fixes its backend per process): started with
``KERAS_BACKEND=jax python bench/jax_child.py NAME SIZE WEIGHTS BATCHES``, it builds NAME at
SIZE x SIZE with the TensorFlow process's weights (a .weights.h5), compiles inference with
``jax.jit`` over Keras' ``stateless_call`` in float32 and, folded, in bfloat16 (as the
TensorFlow side's fast path), and then answers one line per request on stdin: ``KEY`` runs
that function once (to completion) and prints ``ok``, so the parent times it in its own
interleaved rounds, beside TensorFlow's and PyTorch's calls."""
import os
import sys

import jax
import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import keras_classics as kc  # noqa: E402


def jitted(model, x):
    """``model(x)`` compiled with jax.jit over its variables (what ``model.predict`` runs,
    without the data pipeline around it)."""
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def infer(trainable, non_trainable, x):
        y, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return y

    def call():
        return infer(trainable, non_trainable, x).block_until_ready()
    return call


def main(name, size, weights, batches):
    model = kc.get_model(name, input_shape=(size, size, 3))
    model.load_weights(weights)
    fast = kc.fuse_batchnorm(model, dtype="bfloat16")
    rng = np.random.default_rng(0)
    fns = {}
    for batch in batches:
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
        fns[f"jax_fp32_b{batch}"] = jitted(model, x)
        fns[f"jax_bf16_folded_b{batch}"] = jitted(fast, x)
    for fn in fns.values():  # compile before the rounds start
        fn()
    print("ready " + " ".join(fns), flush=True)
    for line in sys.stdin:
        fns[line.strip()]()
        print("ok", flush=True)


if __name__ == "__main__":
    assert keras.backend.backend() == "jax", keras.backend.backend()
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], [int(b) for b in sys.argv[4].split(",")])
