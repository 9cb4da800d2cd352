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


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """Every Keras-sourced file, with and without top, in the published layout: written by
    keras_applications' code on Keras 2 (tests/keras2_fixtures.py), in a process of its own.
    Yields ``path(name, include_top)``."""
    import subprocess
    import sys
    from pathlib import Path

    import keras2_fixtures

    out = tmp_path_factory.mktemp("keras2_published")
    specs = [f"{n}{'' if top else ':notop'}" for n in sorted(KERAS_APPS) for top in (True, False)]
    script = Path(__file__).resolve().parent / "keras2_fixtures.py"
    subprocess.run([sys.executable, str(script), str(out), *specs], check=True, timeout=1800,
                   capture_output=True)
    return lambda name, include_top: out / keras2_fixtures.file_name(name, include_top)


def serve_keras_source(monkeypatch, http_root, name, path, include_top):
    """Serve a published-layout file on the loopback server as ``name``'s ImageNet weights."""
    import dataclasses
    import hashlib
    import shutil

    from keras_classics import weights

    base, root = http_root
    served = root / path.name
    shutil.copyfile(path, served)
    digest = hashlib.md5(served.read_bytes()).hexdigest()
    src = weights.SOURCES[name]
    field = {"url": f"{base}/{path.name}", "file_hash": digest} if include_top else \
        {"notop_url": f"{base}/{path.name}", "notop_hash": digest}
    monkeypatch.setitem(weights.SOURCES, name, dataclasses.replace(src, **field))
