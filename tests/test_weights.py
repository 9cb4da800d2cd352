"""weights=None | "imagenet" | path: Keras' own files loaded as they are, PyTorch checkpoints
converted on first use, all through loopback HTTP (no network here), and bad files refused."""
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

import keras_classics as kc
from keras_classics import weights
import keras2_fixtures
from conftest import KERAS_APPS as KERAS, assert_close, random_images, serve_keras_source


def save_legacy_h5(model, path):
    """A legacy .h5 written by Keras 3 (for our own models' files; Keras' published files are
    made by keras2_fixtures.py)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def keras_pinned_hashes():
    """File name -> md5 as keras.applications itself pins them (its ``get_file`` calls; the
    ResNet family's ``WEIGHTS_HASHES``)."""
    import inspect
    import re

    from keras.src.applications import densenet, resnet, vgg16, vgg19

    pinned = {}
    for module in (vgg16, vgg19, densenet):
        pinned.update(re.findall(r'"(\w+\.h5)",\s*\w+,\s*cache_subdir="models",\s*'
                                 r'file_hash="([0-9a-f]{32})"', inspect.getsource(module)))
    for key, (top, notop) in resnet.WEIGHTS_HASHES.items():
        pinned[f"{key}_weights_tf_dim_ordering_tf_kernels.h5"] = top
        pinned[f"{key}_weights_tf_dim_ordering_tf_kernels_notop.h5"] = notop
    return pinned


def test_every_keras_sourced_model_has_a_pinned_keras_file():
    assert {n for n, s in weights.SOURCES.items() if s.source == "keras"} == set(KERAS)
    for name in KERAS:
        src = weights.SOURCES[name]
        assert src.url.endswith(keras2_fixtures.file_name(name, True))
        assert src.notop_url.endswith(keras2_fixtures.file_name(name, False))
        pinned = keras_pinned_hashes()
        assert src.file_hash == pinned[keras2_fixtures.file_name(name, True)]
        assert src.notop_hash == pinned[keras2_fixtures.file_name(name, False)]
        assert kc.model_info(name).preprocessing == src.preprocessing


def test_records_carry_the_weights_own_figures():
    """Keras' files score what keras-applications publishes, not torchvision's figures."""
    published_top1 = {"vgg16": 71.268, "vgg19": 71.256, "densenet121": 74.972,
                      "densenet169": 76.176, "densenet201": 77.320, "resnet50": 74.928}
    for name, top1 in published_top1.items():
        assert kc.model_info(name).top1 == top1
        assert "keras-applications" in kc.model_info(name).weights.top1_source
    assert {n: weights.SOURCES[n].preprocessing for n in ("vgg16", "resnet50", "resnet50_v2",
                                                           "densenet121", "googlenet_bn")} == \
        {"vgg16": "caffe", "resnet50": "caffe", "resnet50_v2": "tf", "densenet121": "torch",
         "googlenet_bn": "tf"}
    assert kc.model_info("zfnet").weights is None and kc.model_info("zfnet").top1 is None


def test_a_pretrained_variant_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        weights.register_weights(weights.SOURCES["vgg16"])


@pytest.mark.parametrize("include_top", [True, False], ids=["top", "notop"])
@pytest.mark.parametrize("name", sorted(KERAS))
def test_published_keras_file_loads_and_gives_keras_outputs(name, include_top, published):
    path = published(name, include_top)
    with h5py.File(path, "r") as f:  # the Keras 2 layout, old names and all
        assert f.attrs["keras_version"].startswith("2.")
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
    if name.startswith("densenet"):
        assert "conv1/conv" in names and ("fc1000" in names) == include_top
    if name.startswith("resnet"):
        assert ("probs" in names) == include_top
    shape = (224, 224, 3) if include_top and name.startswith("vgg") else (64, 64, 3)
    # without top, with the pooling keras.applications users ask for
    kwargs = {"classifier_activation": None} if include_top else {"pooling": "avg"}
    theirs = KERAS[name](weights=None, include_top=include_top, input_shape=shape, **kwargs)
    theirs.load_weights(path)  # Keras' own loader accepts the fixture
    ours = kc.get_model(name, weights=str(path), include_top=include_top, input_shape=shape,
                        **kwargs)
    x = random_images(shape, batch=1)
    got, want = np.asarray(ours(x)), np.asarray(theirs(x))
    assert_close(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_imagenet_downloads_the_published_file_with_top(monkeypatch, http_root, keras_home,
                                                        published):
    path = published("resnet50", True)
    serve_keras_source(monkeypatch, http_root, "resnet50", path, include_top=True)
    ours = kc.ResNet50(weights="imagenet", classifier_activation=None)
    theirs = keras.applications.ResNet50(weights=None, classifier_activation=None)
    theirs.load_weights(path)
    x = random_images((224, 224, 3), batch=1)
    assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-4)
    assert (keras_home / path.name).exists()
    assert kc.weights_info(ours).name == "resnet50"
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    assert_close(kc.preprocess_input(images, ours),
                 keras.applications.resnet50.preprocess_input(images.copy()))


def test_imagenet_no_top_uses_the_notop_file(monkeypatch, http_root, keras_home, published):
    path = published("densenet121", False)
    serve_keras_source(monkeypatch, http_root, "densenet121", path, include_top=False)
    ours = kc.DenseNet121(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    theirs = keras.applications.DenseNet121(weights=None, include_top=False,
                                            input_shape=(64, 64, 3))
    theirs.load_weights(path)
    x = random_images((64, 64, 3))
    assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def cache_files(folder):
    """What a cache folder holds, lock files aside."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and
                  not p.name.endswith(".lock"))


def test_imagenet_hash_mismatch_raises_and_keeps_nothing(monkeypatch, http_root, keras_home,
                                                         published):
    serve_keras_source(monkeypatch, http_root, "resnet50", published("resnet50", False),
                       include_top=False)
    src = weights.SOURCES["resnet50"]
    monkeypatch.setitem(weights.SOURCES, "resnet50",
                        dataclasses.replace(src, notop_hash="0" * 32))
    with pytest.raises(ValueError, match="hash mismatch"):
        kc.ResNet50(weights="imagenet", include_top=False)
    assert cache_files(keras_home) == []


def serve_torchvision_resnet18(monkeypatch, http_root):
    """A real torchvision ResNet-18 checkpoint (random weights) served as resnet18's."""
    import torch  # the test extra pins it: missing is a failure, not a skip
    import torch_models as tm

    base, root = http_root
    module = tm.randomize(tm.torchvision_models().resnet18())
    torch.save(module.state_dict(), root / "resnet18-test.pth")
    sha = hashlib.sha256((root / "resnet18-test.pth").read_bytes()).hexdigest()
    record = dataclasses.replace(weights.SOURCES["resnet18"], url=f"{base}/resnet18-test.pth",
                                 file_hash=sha[:8])
    monkeypatch.setitem(weights.SOURCES, "resnet18", record)
    return module, record


def test_torchvision_checkpoint_converted_once_then_cached_and_checked(monkeypatch, http_root,
                                                                       keras_home):
    from test_convert import compare

    module, record = serve_torchvision_resnet18(monkeypatch, http_root)
    model = kc.get_model("resnet18", weights="imagenet", classifier_activation=None,
                         input_shape=(64, 64, 3))
    compare(model, module, (64, 64, 3))
    converted = keras_home / "keras_classics" / f"resnet18-{record.file_hash}.weights.h5"
    assert converted.exists() and (converted.parent / (converted.name + ".sha256")).exists()
    root = http_root[1]
    (root / "resnet18-test.pth").rename(root / "away.pth")  # the cache answers alone
    again = kc.get_model("resnet18", weights="imagenet", classifier_activation=None,
                         input_shape=(64, 64, 3))
    compare(again, module, (64, 64, 3))
    with h5py.File(converted, "r+") as f:  # tamper with one value of the converted cache
        kernels = []
        f.visititems(lambda n, o: kernels.append(n) if n.endswith("vars/0") else None)
        f[kernels[0]][(0,) * f[kernels[0]].ndim] = 1e30
    fixed = kc.get_model("resnet18", weights="imagenet", classifier_activation=None,
                         input_shape=(64, 64, 3))
    compare(fixed, module, (64, 64, 3))  # converted again from the cached checkpoint
    with h5py.File(converted, "r+") as f:  # tampered, and its hash file gone: not trusted
        f[kernels[0]][(0,) * f[kernels[0]].ndim] = 1e30
    (converted.parent / (converted.name + ".sha256")).unlink()
    compare(kc.get_model("resnet18", weights="imagenet", classifier_activation=None,
                         input_shape=(64, 64, 3)), module, (64, 64, 3))
    assert (converted.parent / (converted.name + ".sha256")).exists()
    with h5py.File(converted, "r+") as f:
        f[kernels[0]][(0,) * f[kernels[0]].ndim] = 1e30
    (keras_home / "resnet18-test.pth").unlink()  # no checkpoint, no server: refused
    with pytest.raises(ValueError, match="could not download"):
        kc.get_model("resnet18", weights="imagenet")


CONCURRENT = """
import dataclasses, sys
from pathlib import Path
import numpy as np
import keras_classics as kc
from keras_classics import weights
url, file_hash, ready, out = sys.argv[1:]
weights.SOURCES["resnet18"] = dataclasses.replace(weights.SOURCES["resnet18"], url=url,
                                                  file_hash=file_hash)
Path(ready).touch()  # about to ask for the weights
model = kc.get_model("resnet18", weights="imagenet", input_shape=(32, 32, 3),
                     classifier_activation=None)
x = np.random.default_rng(7).normal(size=(2, 32, 32, 3)).astype("float32")
np.save(out, np.asarray(model(x, training=False)))
"""


def test_two_processes_fetch_and_convert_one_file_at_once(monkeypatch, tmp_path, keras_home):
    """Every worker of a multi-worker job asks for the same weights at once: the server holds
    its first answer until both processes are asking (and 3 s more), so without the lock the
    second one downloads too. One request reaches the server, both processes end with the
    torch module's logits and the cache holds one good copy."""
    import torch  # the test extra pins it: missing is a failure, not a skip
    import http.server
    import threading
    import time

    import torch_models as tm

    module = tm.randomize(tm.torchvision_models().resnet18())
    buf = tmp_path / "r18.pth"
    torch.save(module.state_dict(), buf)
    payload = buf.read_bytes()
    sha = hashlib.sha256(payload).hexdigest()
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    requests = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            deadline = time.monotonic() + 300
            while not all(r.exists() for r in ready) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(3)  # the other process is now at the lock (or, without it, here)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/resnet18-test.pth"
    try:
        procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, url, sha[:8], str(ready[i]),
                                   str(tmp_path / f"out{i}.npy")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        server.shutdown()
        server.server_close()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    assert requests == ["/resnet18-test.pth"]  # one download for both
    x = np.random.default_rng(7).normal(size=(2, 32, 32, 3)).astype("float32")
    theirs = tm.run(module, x)
    for i in range(2):
        assert_close(np.load(tmp_path / f"out{i}.npy"), theirs, rtol=1e-4,
                     atol=1e-4 * np.abs(theirs).max())
    assert hashlib.sha256((keras_home / "resnet18-test.pth").read_bytes()).hexdigest() == sha
    assert cache_files(keras_home) == sorted(
        ["resnet18-test.pth", f"resnet18-{sha[:8]}.weights.h5",
         f"resnet18-{sha[:8]}.weights.h5.sha256"])


def test_unwritable_cache_falls_back_to_tmp_then_says_permissions(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with pytest.warns(UserWarning, match="not writable; using .*tmp/.keras/models"):
        assert weights.cache_dir() == str(tmp_path / "tmp" / ".keras" / "models")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    with pytest.raises(PermissionError, match="no writable cache directory .* Set KERAS_HOME"):
        weights.cache_dir()


@pytest.mark.parametrize("trick", ["soft link", "external link", "external storage",
                                   "model_weights soft link", "model_weights external link"])
def test_h5_files_that_reach_other_files_are_refused(tmp_path, trick):
    """Links inside a layer group, external storage, and ``/model_weights`` itself (the
    group of a Keras 2 model file) as a soft link or a link into another file: refused,
    the model untouched."""
    model = kc.ResNet18(include_top=False, input_shape=(32, 32, 3))
    if trick.startswith("model_weights"):  # a Keras 2 model file's layout, its group a link
        other = save_legacy_h5(model, tmp_path / "other.h5")
        path = tmp_path / "r18.h5"
        with h5py.File(path, "w") as f:
            if trick.endswith("soft link"):
                with h5py.File(other, "r") as o:
                    o.copy(o["/"], f, "hidden")
                f["model_weights"] = h5py.SoftLink("/hidden")
            else:
                f["model_weights"] = h5py.ExternalLink(str(other), "/")
        target = kc.ResNet18(include_top=False, input_shape=(32, 32, 3))
        before = [w.copy() for w in target.get_weights()]
        with pytest.raises(ValueError, match=r"r18\.h5: group 'model_weights' is an HDF5 "
                                             r"(SoftLink|ExternalLink)"):
            weights.load_weights(target, path)
        for a, b in zip(before, target.get_weights()):
            np.testing.assert_array_equal(a, b)
        return
    path = save_legacy_h5(model, tmp_path / "r18.h5")
    secret = tmp_path / "secret.bin"
    with h5py.File(path, "r+") as f:
        group = f["conv1_conv"]
        wname = group.attrs["weight_names"][0]
        wname = wname.decode() if isinstance(wname, bytes) else wname
        data = np.asarray(group[wname])
        del group[wname]
        if trick == "soft link":
            f["elsewhere"] = data
            group[wname] = h5py.SoftLink("/elsewhere")
        elif trick == "external link":
            with h5py.File(tmp_path / "other.h5", "w") as other:
                other["w"] = data
            group[wname] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/w")
        else:
            secret.write_bytes(data.astype("float32").tobytes())
            group.create_dataset(wname, shape=data.shape, dtype="float32",
                                 external=[(str(secret), 0, data.nbytes)])
    target = kc.ResNet18(include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(ValueError, match=r"r18\.h5: .*(SoftLink|ExternalLink|external)"):
        weights.load_weights(target, path)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)


H5_BOMB = r"""
import json, sys


def peak_kb():  # this process's peak RSS (ru_maxrss keeps the parent's across exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])

import keras
from keras_classics import weights
inp = keras.Input((int(sys.argv[2]),))
model = keras.Model(inp, keras.layers.Dense(4096, name="fc")(inp))
before = peak_kb()
try:
    weights.load_weights(model, sys.argv[1])
    message = None
except ValueError as err:
    message = str(err)
growth = peak_kb() - before
print(json.dumps({"message": message, "growth_mb": growth / 1024}))
"""


@pytest.mark.parametrize("rows,declared,written,refusal", [
    (2048, (2 ** 19, 4096), 0, r"dataset 'fc/kernel:0' declares 8192 MiB \(524288, 4096\) "
                               "but stores 0 bytes: a decompression bomb"),
    (2048, (96, 4096 * 1024), 600_000,
     r"layer 'fc' does not match the file: model shapes \[\(2048, 4096\), \(4096,\)\], "
     r"file shapes \[\(96, 4194304\)"),
    (4096, (4096, 4096), 0, r"dataset 'fc/kernel:0' declares 64 MiB \(4096, 4096\) but "
                            "stores 0 bytes: a decompression bomb")])
def test_h5_size_bombs_are_refused_before_reading(tmp_path, rows, declared, written, refusal):
    """Small .h5 files whose dataset declares 8 GiB or 64 MiB (the model's own shape) and
    stores nothing but a fill value, or declares 1.5 GiB with 2.4 MB stored (more than Keras'
    1/1000 rule asks) in a shape that is not the model's: refused before the dataset is read,
    in a process that grows < 200 MB."""
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"fc"]
        g = f.create_group("fc")
        g.attrs["weight_names"] = [b"fc/kernel:0", b"fc/bias:0"]
        kernel = g.create_dataset("fc/kernel:0", shape=declared, dtype="float32",
                                  chunks=(64, 1024), compression="gzip", fillvalue=1.0)
        if written:
            kernel[0, :written] = np.random.default_rng(0).normal(size=written)
        g.create_dataset("fc/bias:0", data=np.zeros(4096, "float32"))
    assert path.stat().st_size < 5 * written + 100_000
    res = subprocess.run([sys.executable, "-c", H5_BOMB, str(path), str(rows)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["message"] and out["message"].startswith(f"{path}: ")
    assert re.search(refusal, out["message"]), out["message"]
    assert out["growth_mb"] < 200, out


def test_imagenet_checks_before_building():
    with pytest.raises(ValueError, match="classes=1000"):
        kc.ResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="zfnet: no public ImageNet weights"):
        kc.ZFNet(weights="imagenet")
    with pytest.raises(ValueError, match="get_model\\('googlenet_bn', weights='imagenet'\\)"):
        kc.GoogLeNet(weights="imagenet")
    with pytest.raises(ValueError, match="resnet50: no public ImageNet weights"):
        kc.ResNet(50, weights="imagenet")  # a bare ResNet(depth) names no weights
    # the variant's name is its weights key; a call that changes the topology has none
    with pytest.raises(ValueError, match="vgg_d: no public ImageNet weights"):
        kc.VGG("D", weights="imagenet")
    with pytest.raises(ValueError, match="densenet121: no public ImageNet weights"):
        kc.DenseNet121(weights="imagenet", growth_rate=16)


def serve_torch_module(monkeypatch, http_root, key, module):
    """``module``'s state_dict, saved with ``torch.save`` as torchvision publishes it, served
    on loopback as ``key``'s ImageNet weights."""
    import torch

    base, root = http_root
    path = root / f"{key}-test.pth"
    torch.save(module.state_dict(), path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(weights.SOURCES, key, dataclasses.replace(
        weights.SOURCES[key], url=f"{base}/{path.name}", file_hash=sha[:8]))
    return module


def torch_children(module, count, skip=()):
    """The first ``count`` children of ``module`` (``skip`` left out), run in a row."""
    import torch

    return torch.nn.Sequential(*[c for n, c in module.named_children() if n not in skip][:count])


def spy_on_load_imagenet(monkeypatch):
    """The keys ``load_imagenet`` is asked for; the real loader still runs."""
    calls, real = [], weights.load_imagenet

    def spy(model, key, include_top=True, **kwargs):
        calls.append((key, include_top))
        return real(model, key, include_top=include_top, **kwargs)

    monkeypatch.setattr(weights, "load_imagenet", spy)
    return calls


def test_get_model_builds_the_pretrained_variant(monkeypatch, http_root, keras_home):
    import torch_models as tm
    from test_convert import compare

    module = serve_torch_module(monkeypatch, http_root, "alexnet_owt",
                                tm.randomize(tm.torchvision_models().alexnet()))
    calls = spy_on_load_imagenet(monkeypatch)
    with pytest.warns(UserWarning, match="building 'alexnet_owt'"):
        model = kc.get_model("alexnet", weights="imagenet", classifier_activation=None)
    assert model.name == "alexnet_owt" and calls == [("alexnet_owt", True)]
    compare(model, module, (224, 224, 3))  # torchvision's AlexNet, its weights and all


def test_named_builders_pass_their_variant_as_weights_key(monkeypatch, http_root, keras_home,
                                                          published):
    import torch_models as tm
    from test_convert import compare

    tv = tm.torchvision_models()
    serve_keras_source(monkeypatch, http_root, "vgg16", published("vgg16", False), False)
    modules = {"vgg16_bn": tv.vgg16_bn(),
               "googlenet_bn": tv.googlenet(weights=None, aux_logits=True, init_weights=False),
               "resnet50_v1_5": tv.resnet50()}
    for key, module in modules.items():
        serve_torch_module(monkeypatch, http_root, key, tm.randomize(module))
    calls = spy_on_load_imagenet(monkeypatch)
    small = dict(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    vgg = kc.VGG16(**small, dropout=0.2)  # dropout has no weights: still vgg16's
    bn = kc.VGG16(**small, batch_norm=True)  # torchvision's vgg16_bn, by its name
    googlenet = kc.get_model("googlenet_bn", **small)
    resnet = kc.ResNet50V1_5(**small)
    assert [key for key, _ in calls] == ["vgg16", "vgg16_bn", "googlenet_bn", "resnet50_v1_5"]
    assert bn.name == "vgg16_bn"
    theirs = KERAS["vgg16"](weights=None, include_top=False, input_shape=(64, 64, 3))
    theirs.load_weights(published("vgg16", False))
    x = random_images((64, 64, 3))
    assert_close(vgg(x), theirs(x), rtol=1e-5, atol=1e-5 * np.abs(theirs(x)).max())
    # the features of each torchvision module (its layers up to the classifier)
    features = {"vgg16_bn": lambda m: m.features,
                "resnet50_v1_5": lambda m: torch_children(m, 8),
                "googlenet_bn": lambda m: torch_children(m, 16, skip=("aux1", "aux2"))}
    for key, model in (("vgg16_bn", bn), ("googlenet_bn", googlenet), ("resnet50_v1_5", resnet)):
        compare(model, features[key](modules[key]), (64, 64, 3))


def test_other_architecture_names_the_first_mismatch_and_leaves_model_untouched(tmp_path,
                                                                               published):
    path = save_legacy_h5(kc.ResNet18(include_top=False, input_shape=(32, 32, 3)),
                          tmp_path / "r18.h5")
    model = kc.ResNet34(include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="the model has 72 layers with weights, the file 40"):
        weights.load_weights(model, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    wide = save_legacy_h5(kc.get_model("resnet18", include_top=False, input_shape=(32, 32, 3),
                                       classes=10), tmp_path / "r18_again.h5")
    with pytest.raises(ValueError, match="layer 'conv1_conv' does not match the file"):
        kc.ResNet18(include_top=False, input_shape=(32, 32, 1), weights=str(wide))
    # Keras' published layout: loaded by order, errors name both layers
    with pytest.raises(ValueError, match=r"layer #0 'conv1_conv' \(file layer 'conv1/conv'\)"):
        kc.DenseNet121(include_top=False, input_shape=(64, 64, 1),
                       weights=str(published("densenet121", False)))
    model = kc.ResNet50(include_top=False, input_shape=(64, 64, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="the model has 106 layers with weights, the file 208"):
        weights.load_weights(model, published("resnet101", False))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = save_legacy_h5(kc.ResNet18(include_top=False, input_shape=(32, 32, 3)),
                          tmp_path / "r18.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable Keras .h5 weights file"):
        kc.ResNet18(include_top=False, input_shape=(32, 32, 3), weights=str(path))


def test_keras_model_file_as_weights(tmp_path):
    """Every weight lands where it belongs, batch-norm statistics included: they are random
    here (#40: a fresh model's BN is ones and zeros, so a gamma/variance mix-up passed)."""
    source = kc.ResNet18(input_shape=(32, 32, 3), classes=7)
    rng = np.random.default_rng(0)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2, var.shape)])
    source.save(tmp_path / "r18.keras")
    model = kc.ResNet18(input_shape=(32, 32, 3), classes=7, weights=str(tmp_path / "r18.keras"))
    for ours, theirs in zip(model.weights, source.weights):
        assert ours.path == theirs.path
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), err_msg=ours.path)
    x = random_images((32, 32, 3))
    assert_close(model(x, training=False), source(x, training=False), rtol=1e-6, atol=1e-7)


def test_failed_weights_h5_load_restores_the_model(tmp_path):
    path = tmp_path / "r18.weights.h5"
    kc.ResNet18(include_top=False, input_shape=(32, 32, 3)).save_weights(path)
    model = kc.ResNet34(include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="could not load"):
        weights.load_weights(model, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_googlenet_asked_by_its_paper_name_gets_googlenet_bn_preprocessing(monkeypatch,
                                                                          http_root, keras_home):
    import torch_models as tm
    from keras_classics import transfer

    serve_torch_module(monkeypatch, http_root, "googlenet_bn", tm.randomize(
        tm.torchvision_models().googlenet(weights=None, aux_logits=True, init_weights=False)))
    with pytest.warns(UserWarning, match="building 'googlenet_bn'"):
        backbone = transfer.load_backbone("googlenet", "imagenet", (64, 64, 3))
    assert backbone.name == "googlenet_bn"
    assert kc.weights_info(backbone).preprocessing == "tf"
    assert kc.preprocessing.mode_of(backbone) == "tf"
    with pytest.raises(ValueError, match="was not built with weights='imagenet'"):
        kc.preprocess_input(np.zeros((1, 8, 8, 3)), kc.ResNet18(input_shape=(32, 32, 3)))
