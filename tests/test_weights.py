"""weights=None | "imagenet" | path: Keras' own files loaded as they are, PyTorch checkpoints
converted on first use, all through loopback HTTP (no network here), and bad files refused."""
import dataclasses
import hashlib

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

import keras_classics as kc
from keras_classics import weights
from conftest import KERAS_APPS as KERAS, random_images



def save_legacy_h5(model, path):
    """The format of Keras' published weight files (``*_tf_dim_ordering_tf_kernels.h5``)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_every_keras_sourced_model_has_a_pinned_keras_file():
    assert {n for n, s in weights.SOURCES.items() if s.kind == "keras"} == set(KERAS)
    for name in KERAS:
        src = weights.SOURCES[name]
        assert src.url.endswith("_tf_dim_ordering_tf_kernels.h5") and len(src.file_hash) == 32
        assert src.notop_url.endswith("_notop.h5") and len(src.notop_hash) == 32
        assert kc.model_info(name).preprocessing == src.preprocessing


@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_legacy_h5_loads_unchanged(name, tmp_path):
    shape = (64, 64, 3)
    theirs = KERAS[name](weights=None, include_top=False, input_shape=shape)
    path = save_legacy_h5(theirs, tmp_path / f"{name}_notop.h5")
    ours = kc.get_model(name, weights=str(path), include_top=False, input_shape=shape)
    x = random_images(shape)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def serve_keras_source(monkeypatch, http_root, name, model, include_top):
    base, root = http_root
    fname = f"{name}{'' if include_top else '_notop'}.h5"
    path = save_legacy_h5(model, root / fname)
    src = weights.SOURCES[name]
    field = {"url": f"{base}/{fname}", "file_hash": md5(path)} if include_top else \
        {"notop_url": f"{base}/{fname}", "notop_hash": md5(path)}
    monkeypatch.setitem(weights.SOURCES, name, dataclasses.replace(src, **field))


def test_imagenet_downloads_keras_file_with_top(monkeypatch, http_root, keras_home):
    theirs = keras.applications.ResNet50(weights=None)
    serve_keras_source(monkeypatch, http_root, "resnet50", theirs, include_top=True)
    ours = kc.ResNet50(weights="imagenet")
    x = random_images((224, 224, 3), batch=1)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    assert (keras_home / "resnet50.h5").exists()


def test_imagenet_no_top_uses_the_notop_file(monkeypatch, http_root, keras_home):
    theirs = keras.applications.DenseNet121(weights=None, include_top=False,
                                            input_shape=(64, 64, 3))
    serve_keras_source(monkeypatch, http_root, "densenet121", theirs, include_top=False)
    ours = kc.DenseNet121(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    x = random_images((64, 64, 3))
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_imagenet_hash_mismatch_raises_and_keeps_nothing(monkeypatch, http_root, keras_home):
    theirs = keras.applications.ResNet50(weights=None, include_top=False)
    serve_keras_source(monkeypatch, http_root, "resnet50", theirs, include_top=False)
    src = weights.SOURCES["resnet50"]
    monkeypatch.setitem(weights.SOURCES, "resnet50",
                        dataclasses.replace(src, notop_hash="0" * 32))
    with pytest.raises(ValueError, match="hash mismatch"):
        kc.ResNet50(weights="imagenet", include_top=False)
    assert list(keras_home.iterdir()) == []


def test_imagenet_torchvision_checkpoint_converted_once_then_cached(monkeypatch, http_root,
                                                                   keras_home):
    torch = pytest.importorskip("torch")
    import torch_reference as tr
    from test_convert import compare, randomize

    base, root = http_root
    module = randomize(tr.ResNet(tr.Basic, [2, 2, 2, 2]))
    torch.save(module.state_dict(), root / "resnet18-test.pth")
    sha = hashlib.sha256((root / "resnet18-test.pth").read_bytes()).hexdigest()
    monkeypatch.setitem(weights.SOURCES, "resnet18", dataclasses.replace(
        weights.SOURCES["resnet18"], url=f"{base}/resnet18-test.pth", file_hash=sha[:8]))
    model = kc.get_model("resnet18", weights="imagenet", classifier_activation=None)
    compare(model, module, (224, 224, 3))
    converted = keras_home / "keras_classics" / "resnet18.weights.h5"
    assert converted.exists()
    (root / "resnet18-test.pth").unlink()  # the server no longer has it: the cache answers
    (keras_home / "resnet18-test.pth").unlink()
    again = kc.get_model("resnet18", weights="imagenet", classifier_activation=None)
    compare(again, module, (224, 224, 3))


def test_imagenet_checks_before_building():
    with pytest.raises(ValueError, match="classes=1000"):
        kc.ResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="zfnet: no public ImageNet weights"):
        kc.ZFNet(weights="imagenet")
    with pytest.raises(ValueError, match="get_model\\('googlenet_bn', weights='imagenet'\\)"):
        kc.GoogLeNet(weights="imagenet")
    with pytest.raises(ValueError, match="resnet50: no public ImageNet weights"):
        kc.ResNet(50, weights="imagenet")  # a bare ResNet(depth) names no weights


def test_get_model_builds_the_pretrained_variant(monkeypatch):
    calls = []
    monkeypatch.setattr(weights, "load_imagenet",
                        lambda model, key, include_top=True: calls.append((key, include_top)))
    with pytest.warns(UserWarning, match="building 'alexnet_owt'"):
        model = kc.get_model("alexnet", weights="imagenet")
    assert model.name == "alexnet_owt" and calls == [("alexnet_owt", True)]


def test_other_architecture_names_the_first_mismatch_and_leaves_model_untouched(tmp_path):
    path = save_legacy_h5(kc.ResNet18(include_top=False, input_shape=(32, 32, 3)),
                          tmp_path / "r18.h5")
    model = kc.ResNet34(include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="no layer 'conv2_block3_1_conv'"):
        weights.load_weights(model, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    wide = save_legacy_h5(kc.get_model("resnet18", include_top=False, input_shape=(32, 32, 3),
                                       classes=10), tmp_path / "r18_again.h5")
    with pytest.raises(ValueError, match="layer 'conv1_conv' does not match the file"):
        kc.ResNet18(include_top=False, input_shape=(32, 32, 1), weights=str(wide))


def test_truncated_file_is_a_clear_error(tmp_path):
    path = save_legacy_h5(kc.ResNet18(include_top=False, input_shape=(32, 32, 3)),
                          tmp_path / "r18.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable Keras .h5 weights file"):
        kc.ResNet18(include_top=False, input_shape=(32, 32, 3), weights=str(path))


def test_keras_model_file_as_weights(tmp_path):
    source = kc.ResNet18(input_shape=(32, 32, 3), classes=7)
    source.save(tmp_path / "r18.keras")
    model = kc.ResNet18(input_shape=(32, 32, 3), classes=7, weights=str(tmp_path / "r18.keras"))
    x = random_images((32, 32, 3))
    np.testing.assert_allclose(model(x), source(x), rtol=1e-6, atol=1e-6)


def test_failed_weights_h5_load_restores_the_model(tmp_path):
    path = tmp_path / "r18.weights.h5"
    kc.ResNet18(include_top=False, input_shape=(32, 32, 3)).save_weights(path)
    model = kc.ResNet34(include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="could not load"):
        weights.load_weights(model, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
