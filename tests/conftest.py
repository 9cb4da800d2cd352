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


# The models keras.applications also has, by our registry name.
KERAS_APPS = {
    "vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19,
    "resnet50": keras.applications.ResNet50, "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152, "resnet50_v2": keras.applications.ResNet50V2,
    "resnet101_v2": keras.applications.ResNet101V2,
    "resnet152_v2": keras.applications.ResNet152V2,
    "densenet121": keras.applications.DenseNet121,
    "densenet169": keras.applications.DenseNet169,
    "densenet201": keras.applications.DenseNet201,
}


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def random_images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server on a free port serving ``tmp_path/www``: yields (base_url, dir)."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache (``$KERAS_HOME``) for the test; yields its ``models`` folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"
