"""Downloading weight files into the Keras cache, safely.

``fetch`` writes to ``<name>.part`` beside the target, checks the hash while streaming, and
renames into place only when the hash matches: an interrupted or corrupted download never
leaves a file that looks complete. The cache is Keras' (``$KERAS_HOME/models``, default
``~/.keras/models``).
"""
import dataclasses
import hashlib
import os
import urllib.error
import urllib.request

import keras

CHUNK = 1 << 20


def cache_dir(subdir="models"):
    """``$KERAS_HOME/<subdir>`` (``~/.keras/<subdir>`` by default), created if needed."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(base, subdir)
    os.makedirs(path, exist_ok=True)
    return path


def _hasher(file_hash):
    if len(file_hash) == 32:  # keras.applications pins md5 hashes
        return hashlib.md5()
    if 8 <= len(file_hash) <= 64:  # sha256, or the prefix torchvision/timm put in file names
        return hashlib.sha256()
    raise ValueError(f"file_hash must be a sha256 (or a prefix of at least 8 hex digits) or an "
                     f"md5, got {file_hash!r}")


def _matches(digest, file_hash):
    return digest.startswith(file_hash.lower())


def file_hash_of(path, file_hash):
    """The hex digest of ``path`` with the algorithm matching ``file_hash``'s length."""
    h = _hasher(file_hash)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url, file_hash, fname=None, subdir="models", progress=True, timeout=30):
    """Return the local path of ``url``'s file, downloading it into the cache if it is not
    there with the right hash. Raises ValueError on a hash mismatch (the download is deleted)
    and OSError when the file cannot be downloaded, saying where to place it by hand."""
    fname = fname or os.path.basename(url.split("?")[0])
    target = os.path.join(cache_dir(subdir), fname)
    if os.path.exists(target):
        if _matches(file_hash_of(target, file_hash), file_hash):
            return target
        os.remove(target)  # stale or corrupted: fetch again
    part = target + ".part"
    h = _hasher(file_hash)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            bar = keras.utils.Progbar(total or None, unit_name="B") if progress else None
            done = 0
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if bar:
                    bar.update(done)
    except (urllib.error.URLError, OSError) as err:
        if os.path.exists(part):
            os.remove(part)
        raise OSError(f"could not download {url} ({err}). Without network access, download it "
                      f"on another machine and place it at {target}") from err
    if not _matches(h.hexdigest(), file_hash):
        os.remove(part)
        raise ValueError(f"{fname}: hash mismatch (expected {file_hash}, got {h.hexdigest()}); "
                         "the download was deleted. Retry, or place a correct copy at "
                         f"{target}")
    os.replace(part, target)
    return target


# ---- where each model's ImageNet weights come from ----------------------------------------


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """Pinned ImageNet weights: ``kind`` "keras" (a legacy .h5 loaded as it is, with a no-top
    file beside it), "torchvision" or "timm" (a PyTorch checkpoint converted to our layout on
    first use). ``file_hash``: md5 or sha256 as Keras pins them; for PyTorch checkpoints the
    sha256 prefix in the file name, which is what torchvision and timm themselves check."""

    kind: str
    url: str
    file_hash: str
    notop_url: str = None
    notop_hash: str = None
    preprocessing: str = "torch"
    family: str = None  # the converter's key map for PyTorch checkpoints


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _keras(path, top_hash, notop_hash, preprocessing):
    return WeightsSource("keras", f"{_KERAS}{path}.h5", top_hash, f"{_KERAS}{path}_notop.h5",
                         notop_hash, preprocessing)


def _tv(file, family, preprocessing="torch"):
    prefix = file.rsplit("-", 1)[1].split(".")[0]
    return WeightsSource("torchvision", f"https://download.pytorch.org/models/{file}", prefix,
                         preprocessing=preprocessing, family=family)


def _timm(path, family):
    prefix = path.rsplit("-", 1)[1].split(".")[0]
    return WeightsSource(
        "timm", "https://github.com/rwightman/pytorch-image-models/releases/download/" + path,
        prefix, family=family)


_KERAS_RESNET = {  # keras.applications' resnet.py WEIGHTS_HASHES (md5)
    "resnet50": ("resnet50", "2cb95161c43110f7111970584f804107",
                 "4d473c1dd8becc155b73f8504c6f6626", "caffe"),
    "resnet101": ("resnet101", "f1aeb4b969a6efcfb50fad2f0c20cfc5",
                  "88cf7a10940856eca736dc7b7e228a21", "caffe"),
    "resnet152": ("resnet152", "100835be76be38e30d865e96f2aaae62",
                  "ee4c566cf9a93f14d82f913c2dc6dd0c", "caffe"),
    "resnet50_v2": ("resnet50v2", "3ef43a0b657b3be2300d5770ece849e0",
                    "fac2f116257151a9d068a22e544a4917", "tf"),
    "resnet101_v2": ("resnet101v2", "6343647c601c52e1368623803854d971",
                     "c0ed64b8031c3730f411d2eb4eea35b5", "tf"),
    "resnet152_v2": ("resnet152v2", "a49b44d1979771252814e80f8ec446f9",
                     "ed17cf2e0169df9d443503ef94b23b33", "tf"),
}
SOURCES = {
    "vgg16": _keras("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels",
                    "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc",
                    "caffe"),
    "vgg19": _keras("vgg19/vgg19_weights_tf_dim_ordering_tf_kernels",
                    "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6",
                    "caffe"),
    **{name: _keras(f"resnet/{file}_weights_tf_dim_ordering_tf_kernels", top, notop, pre)
       for name, (file, top, notop, pre) in _KERAS_RESNET.items()},
    "densenet121": _keras("densenet/densenet121_weights_tf_dim_ordering_tf_kernels",
                          "9d60b8095a5708f2dcce2bca79d332c7",
                          "30ee3e1110167f948a6b9946edeeb738", "torch"),
    "densenet169": _keras("densenet/densenet169_weights_tf_dim_ordering_tf_kernels",
                          "d699b8f76981ab1b30698df4c175e90b",
                          "b8c4d4c20dd625c148057b9ff1c1176b", "torch"),
    "densenet201": _keras("densenet/densenet201_weights_tf_dim_ordering_tf_kernels",
                          "1ceb130c1ea1b78c3bf6114dbdfd8807",
                          "c13680b51ded0fb44dff2d8f86ac8bb1", "torch"),
    # torchvision IMAGENET1K_V1 checkpoints
    "alexnet_owt": _tv("alexnet-owt-7be5be79.pth", "alexnet"),
    "vgg11": _tv("vgg11-8a719046.pth", "vgg"), "vgg11_bn": _tv("vgg11_bn-6002323d.pth", "vgg"),
    "vgg13": _tv("vgg13-19584684.pth", "vgg"), "vgg13_bn": _tv("vgg13_bn-abd245e5.pth", "vgg"),
    "vgg16_bn": _tv("vgg16_bn-6c64b313.pth", "vgg"),
    "vgg19_bn": _tv("vgg19_bn-c79401a0.pth", "vgg"),
    # ported from TensorFlow: torchvision's transform_input maps its inputs to [-1, 1]
    "googlenet_bn": _tv("googlenet-1378be20.pth", "googlenet", preprocessing="tf"),
    "resnet18": _tv("resnet18-f37072fd.pth", "resnet"),
    "resnet34": _tv("resnet34-b627a593.pth", "resnet"),
    "resnet50_v1_5": _tv("resnet50-0676ba61.pth", "resnet"),
    "resnet101_v1_5": _tv("resnet101-63fe2227.pth", "resnet"),
    "resnet152_v1_5": _tv("resnet152-394f9c45.pth", "resnet"),
    "wide_resnet50_2": _tv("wide_resnet50_2-95faca4d.pth", "resnet"),
    "wide_resnet101_2": _tv("wide_resnet101_2-32ee1156.pth", "resnet"),
    "resnext50_32x4d": _tv("resnext50_32x4d-7cdf4587.pth", "resnet"),
    "resnext101_32x8d": _tv("resnext101_32x8d-8ba56ff5.pth", "resnet"),
    "resnext101_64x4d": _tv("resnext101_64x4d-173b62eb.pth", "resnet"),
    "densenet161": _tv("densenet161-8d451a50.pth", "densenet"),
    # timm's "legacy" SENet checkpoints: the SENet authors' Caffe weights (Cadene's port)
    "se_resnet50": _timm("v0.1-cadene/se_resnet50-ce0d4300.pth", "senet"),
    "se_resnet101": _timm("v0.1-cadene/se_resnet101-7e38fcc6.pth", "senet"),
    "se_resnet152": _timm("v0.1-cadene/se_resnet152-d17c99b7.pth", "senet"),
    "se_resnext50_32x4d": _timm("v0.1-weights/legacy_se_resnext50_32x4d-f3651bad.pth",
                                "senet"),
    "se_resnext101_32x4d": _timm("v0.1-weights/legacy_se_resnext101_32x4d-37725eac.pth",
                                 "senet"),
}
# Paper topologies without public weights, and the registered variant that has them.
PRETRAINED_VARIANT = {"alexnet": "alexnet_owt", "googlenet": "googlenet_bn",
                      "vgg16_c": None, "vgg11_lrn": None, "zfnet": None}


def check_imagenet(model_name, weights_key):
    """Raise a ValueError unless ``weights_key`` has ImageNet weights."""
    if weights_key in SOURCES:
        return SOURCES[weights_key]
    variant = PRETRAINED_VARIANT.get(weights_key)
    hint = (f"; torchvision's are for the '{variant}' topology: "
            f"keras_classics.get_model('{variant}', weights='imagenet')" if variant else "")
    have = ", ".join(sorted(SOURCES))
    raise ValueError(f"{model_name}: no public ImageNet weights for this topology{hint}. "
                     f"Models with ImageNet weights: {have}")


# ---- loading ------------------------------------------------------------------------------
def read_legacy_h5(path):
    """``{layer_name: [arrays]}`` of a legacy Keras .h5 weights file (Keras' published
    format), in file order; raises ValueError for files that are not readable."""
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            g = f["model_weights"] if "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["layer_names"]]
            out = {}
            for name in names:
                wnames = [w.decode() if isinstance(w, bytes) else w
                          for w in g[name].attrs["weight_names"]]
                if wnames:
                    out[name] = [np.asarray(g[name][w]) for w in wnames]
            return out
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable Keras .h5 weights file ({err})") from err


def assign_by_name(model, arrays, ignore=()):
    """Set every weight of ``model`` from ``arrays`` ({layer name: [arrays]}), all or nothing:
    every layer with weights must be in ``arrays`` with matching shapes, and every entry of
    ``arrays`` must be used (except names starting with an ``ignore`` prefix). The first
    mismatch raises a ValueError naming the layer, before any weight is changed."""
    plan = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in arrays:
            raise ValueError(f"{model.name}: the weights file has no layer '{layer.name}' "
                             f"(first missing layer; the file has {len(arrays)} layers)")
        have = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays[layer.name]]
        if have != got:
            raise ValueError(f"{model.name}: layer '{layer.name}' does not match the file: "
                             f"model shapes {have}, file shapes {got}")
        plan.append((layer, arrays[layer.name]))
    used = {layer.name for layer, _ in plan}
    left = [n for n in arrays if n not in used and not n.startswith(tuple(ignore))]
    if left:
        raise ValueError(f"{model.name}: the weights file has layers this model does not: "
                         f"{', '.join(left[:5])}{' ...' if len(left) > 5 else ''}")
    for layer, values in plan:
        layer.set_weights(values)


def load_weights(model, path):
    """Load a ``.weights.h5`` (Keras 3), legacy ``.h5`` (by layer name) or ``.keras`` file."""
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        before = model.get_weights()  # Keras may assign some variables before it fails
        try:
            model.load_weights(path)
        except Exception as err:
            model.set_weights(before)
            raise ValueError(f"{model.name}: could not load {path!r}: {err}") from err
    elif path.endswith(".h5"):
        assign_by_name(model, read_legacy_h5(path))
    elif path.endswith(".keras"):
        try:
            source = keras.saving.load_model(path, compile=False)
        except Exception as err:
            raise ValueError(f"{path}: not a readable .keras model file ({err})") from err
        assign_by_name(model, {l.name: l.get_weights() for l in source.layers if l.weights})
    else:
        raise ValueError(f"{model.name}: weights files must end in .weights.h5, .h5 or .keras, "
                         f"got {path!r}")


def load_imagenet(model, weights_key, include_top=True, progress=True):
    """Download (or find in the cache) ``weights_key``'s ImageNet weights and load them.
    PyTorch checkpoints are converted on first use and cached converted."""
    source = check_imagenet(model.name, weights_key)
    if source.kind == "keras":
        url, file_hash = (source.url, source.file_hash) if include_top else \
            (source.notop_url, source.notop_hash)
        assign_by_name(model, read_legacy_h5(fetch(url, file_hash, progress=progress)))
        return model
    converted = os.path.join(cache_dir(os.path.join("models", "keras_classics")),
                             f"{weights_key}{'' if include_top else '_notop'}.weights.h5")
    if os.path.exists(converted):
        try:
            model.load_weights(converted)
            return model
        except Exception:  # a cache from an older layout: convert again
            os.remove(converted)
    from .convert import convert_checkpoint

    checkpoint = fetch(source.url, source.file_hash, progress=progress)
    convert_checkpoint(model, checkpoint, source.family, include_top=include_top)
    tmp = converted + ".part.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, converted)
    return model
