import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Seeded, and every model of a test freed before the next (full-size nets are big)."""
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()
    gc.collect()


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def random_images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")
