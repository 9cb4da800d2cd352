"""Converted PyTorch checkpoints give the same outputs as the PyTorch model they came from.

The reference models (tests/torch_reference.py) restate torchvision's and timm's modules with
their state-dict names; checkpoints are made here with random weights (no network)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_classics as kc
from keras_classics import convert

torch = pytest.importorskip("torch")
import torch_reference as tr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            if t.dim() > 1:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5)
            elif name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return module.eval()


def compare(model, module, shape, seed=1):
    x = np.random.default_rng(seed).normal(size=(2, *shape)).astype("float32")
    ours = np.asarray(model(x, training=False))
    with torch.no_grad():
        theirs = module(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    if theirs.ndim == 4:
        theirs = theirs.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def save_pth(module, path, rename=lambda k: k):
    torch.save({rename(k): v for k, v in module.state_dict().items()}, path)
    return path


@pytest.mark.parametrize("name,make,shape", [
    ("resnet18", lambda: tr.ResNet(tr.Basic, [2, 2, 2, 2]), (64, 64, 3)),
    ("resnet50_v1_5", lambda: tr.ResNet(tr.Bottleneck, [3, 4, 6, 3]), (64, 64, 3)),
    ("resnext50_32x4d", lambda: tr.ResNet(tr.Bottleneck, [3, 4, 6, 3], groups=32,
                                          width_per_group=4), (64, 64, 3)),
    ("alexnet_owt", tr.alexnet_owt, (224, 224, 3)),
    ("googlenet_bn", tr.GoogLeNet, (224, 224, 3)),
    ("densenet161", lambda: tr.densenet(48, (6, 12, 36, 24), 96), (64, 64, 3)),
])
def test_torchvision_checkpoint_parity(name, make, shape, tmp_path):
    module = randomize(make())
    ckpt = save_pth(module, tmp_path / "ckpt.pth")
    model = kc.get_model(name, input_shape=shape, classifier_activation=None)
    convert.convert_checkpoint(model, ckpt, kc.weights.SOURCES[name].layout)
    compare(model, module, shape)


def test_timm_legacy_senet_parity_from_safetensors(tmp_path):
    from safetensors.numpy import save_file

    module = randomize(tr.ResNet(tr.Bottleneck, [3, 4, 6, 3], se=True, stride_in="1x1",
                                 ceil_pool=True))
    legacy = {"conv1.": "layer0.conv1.", "bn1.": "layer0.bn1.", "fc.": "last_linear."}

    def rename(k):
        for a, b in legacy.items():
            if k.startswith(a):
                return b + k[len(a):]
        return k.replace(".se.", ".se_module.")

    state = {rename(k): v.numpy() for k, v in module.state_dict().items()}
    assert "layer1.0.se_module.fc1.weight" in state and "layer0.conv1.weight" in state
    save_file(state, str(tmp_path / "se.safetensors"))
    model = kc.get_model("se_resnet50", input_shape=(64, 64, 3), classifier_activation=None)
    convert.convert_checkpoint(model, tmp_path / "se.safetensors", "senet")
    compare(model, module, (64, 64, 3))


def test_vgg_bn_features_and_densenet_legacy_keys(tmp_path):
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    module = randomize(tr.vgg_features(cfg, bn=True))
    model = kc.get_model("vgg11_bn", include_top=False, input_shape=(64, 64, 3))
    convert.convert_state_dict(model, {k: v.numpy() for k, v in module.state_dict().items()},
                               "vgg", include_top=False)
    compare(model, module, (64, 64, 3))
    # torchvision's DenseNet files say "norm.1" for "norm1": accepted
    dense = randomize(tr.densenet(32, (6, 12, 24, 16), 64))
    state = {k.replace("norm1", "norm.1").replace("conv2", "conv.2"): v.numpy()
             for k, v in dense.state_dict().items()}
    assert any(".norm.1." in k for k in state)
    model = kc.get_model("densenet121", input_shape=(64, 64, 3), classifier_activation=None)
    convert.convert_state_dict(model, state, "densenet")
    compare(model, dense, (64, 64, 3))


def test_no_top_drops_the_classifier(tmp_path):
    module = randomize(tr.alexnet_owt())
    model = kc.get_model("alexnet_owt", include_top=False)
    convert.convert_checkpoint(model, save_pth(module, tmp_path / "a.pth"), "alexnet",
                               include_top=False)
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        feats = module.features(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(model(x), feats.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_leftover_and_missing_tensors_raise_and_change_nothing():
    module = randomize(tr.ResNet(tr.Basic, [2, 2, 2, 2]))
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


def test_pth_without_torch_says_what_to_install(tmp_path, monkeypatch):
    path = save_pth(randomize(tr.ResNet(tr.Basic, [2, 2, 2, 2])), tmp_path / "r.pth")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ValueError, match=r"needs PyTorch \(pip install 'keras_classics\[torch\]'"):
        convert.read_checkpoint(path)


def test_convert_weights_cli(tmp_path):
    module = randomize(tr.ResNet(tr.Basic, [2, 2, 2, 2]))
    ckpt = save_pth(module, tmp_path / "resnet18-f37072fd.pth")
    out = tmp_path / "r18.weights.h5"
    cmd = [sys.executable, str(ROOT / "tools" / "convert_weights.py"), "resnet18", str(ckpt)]
    result = subprocess.run(cmd + [str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "preprocessing: torch" in result.stdout
    model = kc.get_model("resnet18", weights=str(out), classifier_activation=None)
    compare(model, module, (224, 224, 3))
    bad = subprocess.run(cmd + [str(tmp_path / "r18.h5")], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode == 2 and "must end in .weights.h5" in bad.stderr
