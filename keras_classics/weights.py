"""Pretrained weights: their records, safe downloads into the Keras cache, and loading.

- :class:`WeightsRecord`: one per pretrained variant, declared by its family module with
  :func:`register_weights` (URL, hash, preprocessing, eval size, converter layout, top-1).
- :func:`fetch` downloads to a temporary file of this process, checks the hash while
  streaming and renames into place under a file lock: an interrupted, corrupted or concurrent
  download never leaves a file that looks complete. The cache is Keras' (``$KERAS_HOME/models``,
  default ``~/.keras/models``; ``/tmp/.keras`` when that is not writable, as Keras does).
- :func:`load_imagenet` loads a record's file (Keras' ``.h5`` through ``assign``, a PyTorch
  checkpoint converted by ``convert`` and cached converted).
"""
import dataclasses
import hashlib
import os
import tempfile
import urllib.error
import warnings
import urllib.request

import filelock
import keras

from .assign import load_legacy_h5, load_weights  # noqa: F401 (load_weights: API)
from .convert import convert_checkpoint

CHUNK = 1 << 20


def cache_dir(subdir="models"):
    """``$KERAS_HOME/<subdir>`` (``~/.keras/<subdir>`` by default), created if needed. Where
    that is not writable, ``/tmp/.keras/<subdir>`` as Keras' ``get_file`` does (with a
    warning); if neither is, a PermissionError saying so."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    tried = []
    for root in (base, os.path.join(tempfile.gettempdir(), ".keras")):
        path = os.path.join(root, subdir)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            tried.append(f"{path} ({err.strerror})")
            continue
        if os.access(path, os.W_OK | os.X_OK):
            if tried:
                warnings.warn(f"the Keras cache {tried[0]} is not writable; using {path}",
                              stacklevel=3)
            return path
        tried.append(f"{path} (not writable)")
    raise PermissionError(f"no writable cache directory for weights: tried {', '.join(tried)}"
                          ". Set KERAS_HOME to a writable directory")


def _hasher(file_hash):
    if len(file_hash) == 32:  # keras.applications pins md5 hashes
        return hashlib.md5()
    if 8 <= len(file_hash) <= 64:  # sha256, or the prefix torchvision/timm put in file names
        return hashlib.sha256()
    raise ValueError(f"file_hash must be a sha256 (or a prefix of at least 8 hex digits) or an "
                     f"md5, got {file_hash!r}")


def _matches(digest, file_hash):
    return digest.startswith(file_hash.lower())


def file_hash_of(path, file_hash="0" * 64):
    """The hex digest of ``path`` with the algorithm matching ``file_hash``'s length; a
    ValueError for what is not a regular file (a link to ``/dev/zero`` would never end)."""
    h = _hasher(file_hash)
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file")
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _lock(target):
    """A lock file beside ``target``: processes fetching or converting one file take turns."""
    return filelock.FileLock(target + ".lock")


def _temp_beside(target, suffix=".part"):
    """A new temporary path in ``target``'s folder, unique to this process."""
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".", suffix=suffix,
                               dir=os.path.dirname(target))
    os.close(fd)
    return tmp


def fetch(url, file_hash, fname=None, subdir="models", progress=True, timeout=30):
    """Return the local path of ``url``'s file, downloading it into the cache if it is not
    there with the right hash. The download goes to a temporary file of this process and is
    renamed into place only after its hash matched, under a lock, so processes fetching the
    same file at once all end with a correct one. Raises ValueError on a hash mismatch (the
    download is deleted) and OSError when the file cannot be downloaded, saying where to place
    it by hand."""
    fname = fname or os.path.basename(url.split("?")[0])
    target = os.path.join(cache_dir(subdir), fname)
    with _lock(target):
        if os.path.isfile(target) and _matches(file_hash_of(target, file_hash), file_hash):
            return target  # a stale or corrupted file (or a link to a device) is replaced
        if os.path.islink(target):  # replaced by the download, never written through
            os.remove(target)
        part = _temp_beside(target)
        h = _hasher(file_hash)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, \
                    open(part, "wb") as out:
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
            os.remove(part)
            raise OSError(f"could not download {url} ({err}). Without network access, "
                          f"download it on another machine and place it at {target}") from err
        except BaseException:
            os.remove(part)
            raise
        if not _matches(h.hexdigest(), file_hash):
            os.remove(part)
            raise ValueError(f"{fname}: hash mismatch (expected {file_hash}, got "
                             f"{h.hexdigest()}); the download was deleted. Retry, or place a "
                             f"correct copy at {target}")
        os.chmod(part, 0o644)
        os.replace(part, target)
    return target


# ---- pretrained weights records -----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WeightsRecord:
    """One pretrained variant's weights, declared next to its family's builders (as
    torchvision's ``Weights`` enums and timm's ``default_cfgs``): where the file is, how it is
    checked, how its inputs must be preprocessed and what it scores.

    ``source``: "keras" (a Keras 2 ``.h5`` loaded as it is, a no-top file beside it),
    "torchvision" or "timm" (a PyTorch checkpoint converted by ``layout``'s key map on first
    use). ``file_hash``: md5 (Keras pins md5) or the sha256 prefix in a PyTorch file's name.
    ``preprocessing``: "caffe", "tf" or "torch" (keras.applications' modes). ``input_size``:
    the centre crop the published ``top1`` was measured at; ``top1_source`` says where the
    figure is printed. The figures are the weights' own, never another library's."""

    name: str
    source: str
    url: str
    file_hash: str
    preprocessing: str
    top1: float = None
    top1_source: str = None
    input_size: int = 224
    notop_url: str = None
    notop_hash: str = None
    layout: str = None  # the converter's key map for PyTorch checkpoints


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_TOP1 = ("keras-team/keras-applications README (Keras Applications on the ILSVRC-2012 "
              "validation set, single centre crop)")
TORCHVISION_TOP1 = "torchvision IMAGENET1K_V1 weights meta (acc@1)"


def keras_weights(name, path, top_hash, notop_hash, preprocessing, top1, input_size=224):
    """A Keras published file: ``<path>.h5`` and ``<path>_notop.h5`` (md5 as Keras pins it)."""
    return WeightsRecord(name, "keras", f"{_KERAS}{path}.h5", top_hash, preprocessing, top1,
                         KERAS_TOP1, input_size, f"{_KERAS}{path}_notop.h5", notop_hash)


def torchvision_weights(name, file, layout, top1, preprocessing="torch"):
    """A torchvision IMAGENET1K_V1 checkpoint (its file name carries the sha256 prefix)."""
    prefix = file.rsplit("-", 1)[1].split(".")[0]
    return WeightsRecord(name, "torchvision", f"https://download.pytorch.org/models/{file}",
                         prefix, preprocessing, top1, TORCHVISION_TOP1, layout=layout)


def timm_weights(name, path, layout, top1=None):
    """A timm release checkpoint (sha256 prefix in the file name)."""
    prefix = path.rsplit("-", 1)[1].split(".")[0]
    return WeightsRecord(
        name, "timm", "https://github.com/rwightman/pytorch-image-models/releases/download/"
        + path, prefix, "torch", top1, None, layout=layout)


SOURCES = {}  # registry name -> WeightsRecord, filled by the family modules
PRETRAINED_VARIANT = {}  # paper topology -> the registered variant that has public weights


def register_weights(*records, variant_of=None):
    """Declare pretrained records (from a family module); ``variant_of`` maps a paper topology
    without public weights to the variant whose weights exist (``{"alexnet": "alexnet_owt"}``),
    or to None. Duplicate names raise, as torchvision's ``register_model`` does."""
    for rec in records:
        if rec.name in SOURCES:
            raise ValueError(f"weights for {rec.name!r} are registered twice")
        if rec.preprocessing not in ("caffe", "tf", "torch"):
            raise ValueError(f"{rec.name}: unknown preprocessing {rec.preprocessing!r}")
        SOURCES[rec.name] = rec
    PRETRAINED_VARIANT.update(variant_of or {})
    return records


def weights_info(model):
    """The :class:`WeightsRecord` a model was built with (``weights="imagenet"``), else None.
    Lets code that holds only the model find its preprocessing."""
    return getattr(model, "_keras_classics_weights", None)


def preprocessing_of(model, default="torch"):
    """The preprocessing mode of the pretrained weights ``model`` was built with, else
    ``default`` ("torch": what training from scratch uses)."""
    record = weights_info(model)
    return record.preprocessing if record else default


def _attach(model, record):
    object.__setattr__(model, "_keras_classics_weights", record)  # not a tracked attribute
    return model


def check_imagenet(model_name, weights_key):
    """The :class:`WeightsRecord` of ``weights_key``; a ValueError when it has no ImageNet
    weights, naming the variant that has them where there is one."""
    if weights_key in SOURCES:
        return SOURCES[weights_key]
    variant = PRETRAINED_VARIANT.get(weights_key)
    hint = (f"; the public weights are for the '{variant}' topology: "
            f"keras_classics.get_model('{variant}', weights='imagenet')" if variant else "")
    have = ", ".join(sorted(SOURCES))
    raise ValueError(f"{model_name}: no public ImageNet weights for this topology{hint}. "
                     f"Models with ImageNet weights: {have}")


def converted_path(record, include_top=True):
    """Where a PyTorch checkpoint converted to our layout is cached: the name carries the source
    checkpoint's hash, so another checkpoint never answers for it."""
    folder = cache_dir(os.path.join("models", "keras_classics"))
    return os.path.join(folder, f"{record.name}-{record.file_hash}"
                                f"{'' if include_top else '_notop'}.weights.h5")


def load_imagenet(model, weights_key, include_top=True, progress=True):
    """Download (or find in the cache) ``weights_key``'s ImageNet weights and load them, all or
    nothing; the model remembers its :class:`WeightsRecord` (:func:`weights_info`).

    PyTorch checkpoints are converted on first use and cached converted, with the sha256 of
    the converted file beside it: a cache file that does not match it (tampered, truncated) is
    converted again, never loaded."""
    source = check_imagenet(model.name, weights_key)
    if source.source == "keras":
        url, file_hash = (source.url, source.file_hash) if include_top else \
            (source.notop_url, source.notop_hash)
        load_legacy_h5(model, fetch(url, file_hash, progress=progress))
        return _attach(model, source)
    converted = converted_path(source, include_top)
    with _lock(converted):
        if _cache_ok(converted):
            before = model.get_weights()
            try:
                model.load_weights(converted)
                return _attach(model, source)
            except Exception:  # e.g. written for another input layout: convert again
                model.set_weights(before)

        checkpoint = fetch(source.url, source.file_hash, progress=progress)
        convert_checkpoint(model, checkpoint, source.layout, include_top=include_top)
        tmp = _temp_beside(converted, suffix=".weights.h5")
        try:
            model.save_weights(tmp)
            digest = file_hash_of(tmp)
            with open(tmp + ".sha256", "w") as f:
                f.write(digest + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp + ".sha256", converted + ".sha256")
            os.replace(tmp, converted)
        finally:
            for leftover in (tmp, tmp + ".sha256"):
                if os.path.exists(leftover):
                    os.remove(leftover)
    return _attach(model, source)


def _cache_ok(converted):
    try:
        if not (os.path.isfile(converted) and os.path.isfile(converted + ".sha256")):
            return False  # links to devices (/dev/zero) are not a cache
        with open(converted + ".sha256") as f:
            expected = f.read(100).strip()
        return len(expected) == 64 and file_hash_of(converted) == expected
    except OSError:
        return False
