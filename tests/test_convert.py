"""Converted PyTorch checkpoints give the logits of the real torchvision and timm modules they
came from, at 224 and at an odd size (where ceil-mode pooling differs from Keras' "same"), and
our weights records agree with torchvision's and timm's own weights tables.

The modules are torchvision's and timm's own code (tests/torch_models.py), with random weights
(no network here); checkpoints are written with ``torch.save`` of their ``state_dict``."""
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_classics as kc
from keras_classics import convert, weights

import torch  # noqa: E402  (the test extra pins it: missing is a failure, not a skip)
import torch_models as tm  # noqa: E402
from conftest import call_tool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TV = tm.torchvision_models()
ODD = 225


def compare(model, module, shape, seed=1, ours_input=None, theirs_input=None):
    x = np.random.default_rng(seed).normal(size=(2, *shape)).astype("float32")
    ours = np.asarray(model(x if ours_input is None else ours_input(x), training=False))
    theirs = tm.run(module, x if theirs_input is None else theirs_input(x))
    assert ours.shape == theirs.shape
    assert np.isfinite(ours).all() and np.isfinite(theirs).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def save_pth(module, path, rename=lambda k: k):
    torch.save({rename(k): v for k, v in module.state_dict().items()}, path)
    return path


# registry name -> the real module; all of these end in global pooling, so one Keras model
# (input (None, None, 3)) is checked at 224 and at an odd size
GAP_MODELS = {
    "resnet18": lambda: TV.resnet18(),
    "resnet50_v1_5": lambda: TV.resnet50(),
    "resnext50_32x4d": lambda: TV.resnext50_32x4d(),
    "densenet161": lambda: TV.densenet161(),
    "googlenet_bn": lambda: TV.googlenet(weights=None, aux_logits=False, init_weights=False),
    "se_resnet50": lambda: tm.timm().create_model("legacy_seresnet50"),
    "se_resnext50_32x4d": lambda: tm.timm().create_model("legacy_seresnext50_32x4d"),
}


@pytest.mark.parametrize("name", sorted(GAP_MODELS))
def test_checkpoint_of_the_real_module_gives_its_logits(name, tmp_path):
    module = tm.randomize(GAP_MODELS[name]())
    ckpt = save_pth(module, tmp_path / "ckpt.pth")
    model = kc.get_model(name, input_shape=(None, None, 3), classifier_activation=None)
    convert.convert_checkpoint(model, ckpt, weights.SOURCES[name].layout)
    for size in (224, ODD):
        compare(model, module, (size, size, 3))


@pytest.mark.parametrize("name,make", [("alexnet_owt", lambda: TV.alexnet()),
                                       ("vgg11_bn", lambda: TV.vgg11_bn())])
def test_flattening_models_at_224_and_their_features_at_an_odd_size(name, make, tmp_path):
    module = tm.randomize(make())
    ckpt = save_pth(module, tmp_path / "ckpt.pth")
    layout = weights.SOURCES[name].layout
    model = kc.get_model(name, classifier_activation=None)
    convert.convert_checkpoint(model, ckpt, layout)
    compare(model, module, (224, 224, 3))
    features = kc.get_model(name, include_top=False, input_shape=(ODD, ODD, 3))
    convert.convert_checkpoint(features, ckpt, layout, include_top=False)
    compare(features, module.features, (ODD, ODD, 3))


def test_googlenet_weights_want_tf_preprocessing():
    """torchvision's pretrained GoogLeNet runs with ``transform_input=True``: fed ImageNet
    mean/std inputs, it maps them to [-1, 1] itself. Our record says "tf": the Keras model fed
    ``preprocess_input(raw, "googlenet_bn")`` gives the module's logits on mean/std inputs."""
    assert kc.model_info("googlenet_bn").preprocessing == "tf"
    module = tm.randomize(TV.googlenet(weights=None, aux_logits=False, transform_input=True,
                                       init_weights=False))
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    model = kc.get_model("googlenet_bn", classifier_activation=None)
    convert.convert_state_dict(model, state, "googlenet")
    mean = np.array([0.485, 0.456, 0.406], "float32")
    std = np.array([0.229, 0.224, 0.225], "float32")
    compare(model, module, (224, 224, 3),
            ours_input=lambda x: kc.preprocess_input(raw(x), "googlenet_bn"),
            theirs_input=lambda x: (raw(x) / 255.0 - mean) / std)


def raw(x):
    """Test inputs as RGB pixels in [0, 255]."""
    return (255.0 / (1 + np.exp(-x))).astype("float32")


TORCHVISION_NAMES = {"alexnet_owt": "alexnet", "googlenet_bn": "googlenet",
                     "resnet50_v1_5": "resnet50", "resnet101_v1_5": "resnet101",
                     "resnet152_v1_5": "resnet152"}


def test_torchvision_records_match_torchvision_weights_tables():
    records = [r for r in weights.SOURCES.values() if r.source == "torchvision"]
    assert len(records) == 19
    for rec in records:
        tv = TV.get_model_weights(TORCHVISION_NAMES.get(rec.name, rec.name)).IMAGENET1K_V1
        assert rec.url == tv.url, rec.name
        assert rec.top1 == tv.meta["_metrics"]["ImageNet-1K"]["acc@1"], rec.name
        transforms = tv.transforms()
        assert list(transforms.crop_size) == [rec.input_size], rec.name
        assert rec.file_hash in tv.url  # the sha256 prefix torchvision checks
        if rec.name != "googlenet_bn":  # see test_googlenet_weights_want_tf_preprocessing
            assert rec.preprocessing == "torch"
            assert tuple(transforms.mean) == (0.485, 0.456, 0.406)


def test_timm_records_match_timm_pretrained_cfgs():
    timm = tm.timm()
    for rec in (r for r in weights.SOURCES.values() if r.source == "timm"):
        cfg = timm.models.get_pretrained_cfg(
            "legacy_" + rec.name.replace("se_res", "seres") + ".in1k")
        assert cfg.url == rec.url, rec.name
        assert tuple(cfg.mean) == (0.485, 0.456, 0.406) and rec.preprocessing == "torch"
        assert cfg.input_size[-1] == rec.input_size


def test_densenet_legacy_keys_as_torchvision_renames_them(tmp_path):
    """Old torchvision DenseNet files spell ``norm.1``, ``relu.1``, ``conv.1``, ``norm.2``,
    ``conv.2``; torchvision's own pattern renames them, and so do we."""
    dense = tm.randomize(TV.densenet121())
    legacy = {}
    for k, v in dense.state_dict().items():
        for part in ("norm1", "conv1", "norm2", "conv2"):
            k = k.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        legacy[k] = v.numpy()
    assert any(".norm.1." in k for k in legacy) and any(".conv.2." in k for k in legacy)
    model = kc.get_model("densenet121", input_shape=(64, 64, 3), classifier_activation=None)
    convert.convert_state_dict(model, legacy, "densenet")
    compare(model, dense, (64, 64, 3))


def test_no_top_drops_the_classifier(tmp_path):
    module = tm.randomize(TV.resnet18())
    model = kc.get_model("resnet18", include_top=False, input_shape=(64, 64, 3))
    convert.convert_checkpoint(model, save_pth(module, tmp_path / "r.pth"), "resnet",
                               include_top=False)
    body = torch.nn.Sequential(*list(module.children())[:-2])
    compare(model, body, (64, 64, 3))


def test_leftover_and_missing_tensors_raise_and_change_nothing():
    module = tm.randomize(TV.resnet18())
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    model = kc.ResNet18(input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="no place in the model: extra"):
        convert.convert_state_dict(model, {**state, "extra.weight": np.zeros(3)}, "resnet")
    missing = {k: v for k, v in state.items() if not k.startswith("layer2.1.conv2")}
    with pytest.raises(ValueError, match="no layer 'conv3_block2_2_conv'"):
        convert.convert_state_dict(model, missing, "resnet")
    wrong = {**state, "fc.weight": np.zeros((10, 512), "float32"), "fc.bias": np.zeros(10)}
    with pytest.raises(ValueError, match="layer 'predictions' does not match"):
        convert.convert_state_dict(model, wrong, "resnet")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_script_checkpoint_loads_from_its_model_entry(tmp_path):
    module = tm.randomize(TV.resnet18())
    path = tmp_path / "epoch3.pth"
    torch.save({"model": module.state_dict(), "epoch": 3, "best_acc": 0.7}, path)
    model = kc.get_model("resnet18", input_shape=(64, 64, 3), classifier_activation=None)
    convert.convert_checkpoint(model, path, "resnet")
    compare(model, module, (64, 64, 3))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_half_precision_checkpoints_convert(dtype, fmt, tmp_path):
    """Checkpoints saved in bfloat16 or float16 (``module.to(dtype)``; hub files often are),
    as .pth and as .safetensors written by safetensors' torch API: the Keras model gives the
    logits of the module with those rounded weights."""
    from safetensors.torch import save_file

    module = tm.randomize(TV.resnet18()).to(getattr(torch, dtype))
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    path = tmp_path / f"r18.{fmt}"
    torch.save(state, path) if fmt == "pth" else save_file(state, str(path))
    model = kc.get_model("resnet18", input_shape=(64, 64, 3), classifier_activation=None)
    convert.convert_checkpoint(model, path, "resnet")
    compare(model, module.float(), (64, 64, 3))


def test_bad_checkpoint_files_are_value_errors_naming_the_file(tmp_path):
    from safetensors.numpy import save_file

    state = {k: v.numpy() for k, v in tm.randomize(TV.resnet18()).state_dict().items()}
    odd = tmp_path / "odd.pth"
    torch.save({"conv1.weight": torch.zeros(3), "note": "not a tensor"}, odd)
    with pytest.raises(ValueError, match=r"odd\.pth: entry 'note' is a str, not a tensor"):
        convert.read_checkpoint(odd)
    st = tmp_path / "r.safetensors"
    save_file(state, str(st))
    st.write_bytes(st.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"r\.safetensors: not a readable \.safetensors file"):
        convert.read_checkpoint(st)
    npz = tmp_path / "r.npz"
    np.savez(npz, **state)
    npz.write_bytes(npz.read_bytes()[:20000])
    with pytest.raises(ValueError, match=r"r\.npz: not a readable \.npz file"):
        convert.read_checkpoint(npz)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"p\.npz"):
        convert.read_checkpoint(pickled)
    pth = tmp_path / "t.pth"
    torch.save(dict(TV.resnet18().state_dict()), pth)
    pth.write_bytes(pth.read_bytes()[:10000])
    with pytest.raises(ValueError, match=r"t\.pth: not a readable PyTorch checkpoint"):
        convert.read_checkpoint(pth)


def test_pth_without_torch_says_what_to_install(tmp_path, monkeypatch):
    path = save_pth(TV.resnet18(), tmp_path / "r.pth")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ValueError, match=r"needs PyTorch \(pip install 'keras_classics\[torch\]'"):
        convert.read_checkpoint(path)


def test_convert_weights_cli(tmp_path):
    module = tm.randomize(TV.resnet18())
    ckpt = save_pth(module, tmp_path / "resnet18-f37072fd.pth")
    out = tmp_path / "r18.weights.h5"
    cmd = [sys.executable, str(ROOT / "tools" / "convert_weights.py"), "resnet18", str(ckpt)]
    result = subprocess.run(cmd + [str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "preprocessing: torch" in result.stdout
    model = kc.get_model("resnet18", weights=str(out), classifier_activation=None)
    compare(model, module, (224, 224, 3))
    bad = call_tool("convert_weights", "resnet18", ckpt, tmp_path / "r18.h5")  # in-process
    assert bad.returncode == 2 and "must end in .weights.h5" in bad.stderr


def test_googlenet_aux_heads_convert_to_their_own_heads():
    """torchvision's two auxiliary heads land on ours, aux1 on 4a's and aux2 on 4d's (#40:
    their tensors have the same shapes, so a swap converted without error). torchvision pools
    4a/4d adaptively to 4x4 where the paper (and we) pool 5x5/3 — different windows — so each
    of torchvision's heads is run from our pool's output, through its conv, fc1 and fc2."""
    module = tm.randomize(TV.googlenet(weights=None, aux_logits=True, init_weights=False))
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    model = kc.get_model("googlenet_bn", aux_logits=True, classifier_activation=None)
    convert.convert_state_dict(model, state, "googlenet")
    x = np.random.default_rng(2).normal(size=(2, 224, 224, 3)).astype("float32")
    outputs = [np.asarray(o) for o in model(x, training=False)]
    theirs = {}
    for i, (name, head) in enumerate((("aux1", module.aux1), ("aux2", module.aux2)), 1):
        pooled = np.asarray(keras.Model(model.input, model.get_layer(f"{name}_pool").output)(x))
        with torch.no_grad():
            h = head.conv(torch.from_numpy(pooled.transpose(0, 3, 1, 2).copy()))
            h = torch.relu(head.fc1(torch.flatten(h, 1)))
            theirs[name] = head.fc2(h).numpy()
        assert np.isfinite(outputs[i]).all() and np.isfinite(theirs[name]).all()
        np.testing.assert_allclose(outputs[i], theirs[name], rtol=1e-4,
                                   atol=1e-4 * np.abs(theirs[name]).max())
    assert np.abs(theirs["aux1"] - theirs["aux2"]).max() > 0.1 * np.abs(theirs["aux1"]).max()
