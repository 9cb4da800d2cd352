"""Downloading weight files into the Keras cache, safely.

``fetch`` writes to ``<name>.part`` beside the target, checks the hash while streaming, and
renames into place only when the hash matches: an interrupted or corrupted download never
leaves a file that looks complete. The cache is Keras' (``$KERAS_HOME/models``, default
``~/.keras/models``).
"""
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
    if len(file_hash) == 64:
        return hashlib.sha256()
    if len(file_hash) == 32:  # keras.applications pins md5 hashes
        return hashlib.md5()
    raise ValueError(f"file_hash must be a sha256 (64 hex digits) or md5 (32), got "
                     f"{file_hash!r}")


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
        if file_hash_of(target, file_hash) == file_hash.lower():
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
    if h.hexdigest() != file_hash.lower():
        os.remove(part)
        raise ValueError(f"{fname}: hash mismatch (expected {file_hash}, got {h.hexdigest()}); "
                         "the download was deleted. Retry, or place a correct copy at "
                         f"{target}")
    os.replace(part, target)
    return target
