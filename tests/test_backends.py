"""The zoo on Keras' other backends (#41): JAX and PyTorch, each in its own process (Keras fixes
its backend per process) where TensorFlow cannot be imported (tests/backend_driver.py).

This process (TensorFlow) writes one model of every family with random weights and random
batch-norm statistics as ``.weights.h5``, the inputs, a ``.keras`` file with the package's
layers, the digits and loopback-served ImageNet files; the driver builds, loads, runs and trains
there, and its outputs are compared here with TensorFlow's."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_classics as kc
from keras_classics import layers
from conftest import KERAS_APPS, assert_close, random_images, serve_folder

HERE = Path(__file__).resolve().parent
# one worker builds the fixture (the driver runs once per backend, not once per worker)
pytestmark = pytest.mark.xdist_group("backends")
ODD = 225  # ceil-mode pools differ from "same" ones at odd sizes

# one model of every family (docs/models.md): (key, registry name, builder arguments, sizes)
FAMILIES = [
    ("alexnet", "alexnet", {"classifier_activation": None}, [227]),  # LRN, flatten
    ("zfnet", "zfnet", {"include_top": False, "input_shape": (ODD, ODD, 3)}, [ODD]),
    ("vgg11_lrn", "vgg11_lrn", {"include_top": False, "input_shape": (64, 64, 3)}, [64]),
    ("googlenet", "googlenet", {"input_shape": (None, None, 3),  # ceil pools, LRN
                                "classifier_activation": None}, [224, ODD]),
    ("resnet18", "resnet18", {"input_shape": (None, None, 3), "classifier_activation": None},
     [224, ODD]),
    ("resnet50_v2", "resnet50_v2", {"include_top": False, "input_shape": (64, 64, 3)}, [64]),
    ("wrn_16_8", "wrn_16_8", {"classifier_activation": None}, [32]),
    ("resnext50", "resnext50_32x4d", {"include_top": False, "input_shape": (65, 65, 3)}, [65]),
    ("se_resnet50", "se_resnet50", {"include_top": False,  # SE blocks, ceil pools
                                    "input_shape": (65, 65, 3)}, [65]),
    ("densenet121", "densenet121", {"include_top": False, "input_shape": (64, 64, 3)}, [64]),
]


def randomize(model, seed):
    """Random weights, batch-norm statistics included, so a misplaced tensor shows."""
    rng = np.random.default_rng(seed)
    new = []
    for w in model.weights:
        path = w.path
        shape = tuple(w.shape)
        if path.endswith(("moving_variance", "gamma")):
            new.append(rng.uniform(0.5, 1.5, shape))
        elif len(shape) > 1:
            new.append(rng.normal(0, (1 / np.prod(shape[:-1])) ** 0.5, shape))
        else:
            new.append(rng.normal(0, 0.1, shape))
    model.set_weights([a.astype("float32") for a in new])
    return model


def layer_model():
    """A small classifier with the package's own layers: LRN, ceil-mode pooling, an SE block."""
    inputs = keras.Input((17, 17, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = layers.LocalResponseNormalization()(x)
    x = layers.CeilMaxPooling2D(3, 2)(x)
    x = layers.SqueezeExcite(4)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


@pytest.fixture(scope="module")
def backends(tmp_path_factory, published):
    """The driver run once per backend on one shared work folder: (work folder, {backend:
    its results folder})."""
    import torch

    import torch_models as tm

    work = tmp_path_factory.mktemp("backends")
    models = []
    for i, (key, name, kwargs, sizes) in enumerate(FAMILIES):
        model = randomize(kc.get_model(name, **kwargs), i)
        model.save_weights(work / f"{key}.weights.h5")
        for size in sizes:
            # pixels of the size caffe-mode preprocessing gives: large enough activations
            # for local response normalization to matter (on [-1, 1] it is near identity)
            x = 127.5 * random_images((size, size, 3), batch=2, seed=i)
            np.save(work / f"{key}-{size}.npy", x)
            np.save(work / f"{key}-{size}-tf.npy", np.asarray(model(x, training=False)))
        models.append({"key": key, "name": name, "kwargs": kwargs, "sizes": sizes,
                       "weights": f"{key}.weights.h5"})
        del model
    rng = np.random.default_rng(0)
    np.save(work / "layer_input.npy", rng.normal(0, 3, (2, 9, 11, 13)).astype("float32"))
    small = randomize(layer_model(), 99)
    small.save(work / "tf_model.keras")
    xk = random_images((17, 17, 3), batch=2, seed=5)
    np.save(work / "keras_input.npy", xk)
    np.save(work / "tf_model-tf.npy", np.asarray(small(xk)))
    # ImageNet weights over loopback: a torchvision checkpoint (torch.save of its state_dict,
    # as torchvision publishes them) and Keras' published DenseNet-121 .h5 (no top)
    root = work / "www"
    root.mkdir()
    module = tm.randomize(tm.torchvision_models().resnet18())
    torch.save(module.state_dict(), root / "resnet18-test.pth")
    sha = hashlib.sha256((root / "resnet18-test.pth").read_bytes()).hexdigest()
    h5 = published("densenet121", False)
    (root / h5.name).write_bytes(h5.read_bytes())
    md5 = hashlib.md5(h5.read_bytes()).hexdigest()
    xi = random_images((64, 64, 3), batch=2, seed=9)
    np.save(work / "imagenet_input.npy", xi)
    keras_d121 = KERAS_APPS["densenet121"](weights=None, include_top=False,
                                            input_shape=(64, 64, 3))
    keras_d121.load_weights(h5)
    np.savez(work / "imagenet-reference.npz", resnet18=tm.run(module, xi),
             densenet121=np.asarray(keras_d121(xi)))
    # the digits (scikit-learn's), at 16x16, scaled as the "tf" mode does
    from keras_classics import datasets

    data = datasets.digits(16)
    arrays = {}
    for split, (x, y) in (("train", data.train), ("val", data.val)):
        x = np.asarray(data.pipeline(split, len(y), shuffle=False).get_single_element()[0])
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    np.savez(work / "digits.npz", **arrays)
    out = {}
    with serve_folder(root) as base:
        spec = {"models": models,
                "imagenet": {"resnet18": {"url": f"{base}/resnet18-test.pth",
                                          "file_hash": sha[:8]},
                             "densenet121": {"notop_url": f"{base}/{h5.name}",
                                             "notop_hash": md5}},
                "fit": {"model": "wrn_10_1", "lr": 3e-3, "batch_size": 64, "epochs": 4}}
        (work / "specs.json").write_text(json.dumps(spec))
        for backend in ("jax", "torch"):
            env = {**os.environ, "KERAS_BACKEND": backend,
                   "KERAS_HOME": str(work / f"keras_home_{backend}")}
            result = subprocess.run([sys.executable, str(HERE / "backend_driver.py"),
                                     str(work)], capture_output=True, text=True, env=env,
                                    timeout=1500)
            assert result.returncode == 0, (backend, result.stderr[-4000:])
            out[backend] = work / backend
    return work, out


def rel_close(got, want, rtol=1e-4):
    """Relative error of the largest difference against the output range, finite."""
    got, want = np.asarray(got, "float64"), np.asarray(want, "float64")
    assert got.shape == want.shape
    assert_close(got, want, rtol=0, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_family_gives_tensorflow_s_logits(backends, backend):
    work, out = backends
    got = np.load(out[backend] / "models.npz")
    for key, _, _, sizes in FAMILIES:
        for size in sizes:
            want = np.load(work / f"{key}-{size}-tf.npy")
            assert np.abs(want).max() > 0 and np.std(want) > 0, key
            rel_close(got[f"{key}-{size}"], want)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_lrn_and_ceil_pooling_match_tensorflow_in_every_dtype(backends, backend):
    work, out = backends
    x = np.load(work / "layer_input.npy")
    got = np.load(out[backend] / "layers.npz")
    for dtype, tol in (("float32", 1e-5), ("float16", 2e-3), ("bfloat16", 2e-2)):
        xd = keras.ops.cast(x, dtype)
        lrn = layers.LocalResponseNormalization(dtype=dtype)
        pool = layers.CeilMaxPooling2D(3, 2, dtype=dtype)
        for training in (False, True):
            want = np.asarray(keras.ops.cast(lrn(xd, training=training), "float32"))
            rel_close(got[f"lrn-{dtype}-{training}"], want, tol)
        want = np.asarray(keras.ops.cast(pool(xd), "float32"))
        assert got[f"pool-{dtype}-False"].shape == (2, 4, 5, 13)
        np.testing.assert_array_equal(got[f"pool-{dtype}-False"], want)  # a max: exact


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_files_cross_backends(backends, backend):
    work, out = backends
    xk = np.load(work / "keras_input.npy")
    want = np.load(work / "tf_model-tf.npy")
    rel_close(np.load(out[backend] / "tf_model_here.npy"), want, 1e-5)
    back = keras.saving.load_model(out[backend] / "model.keras")  # written there, read here
    rel_close(np.asarray(back(xk)), want, 1e-5)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_imagenet_weights_download_and_load(backends, backend):
    work, out = backends
    got = np.load(out[backend] / "imagenet.npz")
    want = np.load(work / "imagenet-reference.npz")
    for key in ("resnet18", "densenet121"):  # torchvision's module, keras.applications'
        rel_close(got[key], want[key])
    report = json.loads((out[backend] / "report.json").read_text())
    assert report["imagenet_preprocessing"] == ["torch", "torch"]
    # folding (the torchvision BN statistics are random: folding changes every weight)
    rel_close(got["resnet18_folded"], want["resnet18"])
    xi = np.load(work / "imagenet_input.npy")
    assert_close(got["preprocessed"], keras.applications.imagenet_utils.preprocess_input(
        xi * 127.5 + 127.5, mode="torch"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_analysis_counts_what_tensorflow_counts(backends, backend):
    _, out = backends
    report = json.loads((out[backend] / "report.json").read_text())
    assert report["resnet50_macs"] == kc.profile("resnet50").macs == 3_857_973_248


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_fit_trains_and_tensorflow_only_parts_say_so(backends, backend):
    _, out = backends
    report = json.loads((out[backend] / "report.json").read_text())
    assert report["backend"] == backend and report["tensorflow_imported"] is False
    fit = report["fit"]
    assert len(fit["loss"]) == 4 and np.isfinite(fit["loss"]).all()
    assert fit["loss"][-1] < 0.7 * fit["loss"][0], fit["loss"]
    assert fit["accuracy"][-1] > 0.5 and max(fit["val_accuracy"]) > 0.5, fit  # chance: 0.1
    for name, message in report["errors"].items():
        assert message and message.startswith("BackendError: ") and \
            f"this process runs Keras on '{backend}'" in message, (name, message)
