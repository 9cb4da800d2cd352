"""fetch() against a loopback HTTP server serving files the test makes."""
import hashlib
import os
import socket

import pytest

from keras_classics import weights

PAYLOAD = os.urandom(300_000)


@pytest.fixture
def server(http_root):
    base, root = http_root
    (root / "w.weights.h5").write_bytes(PAYLOAD)
    return base


@pytest.fixture
def cache(keras_home):
    return keras_home


def test_good_hash_downloads_into_the_keras_cache(server, cache):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = weights.fetch(f"{server}/w.weights.h5", sha, progress=False)
    assert path == str(cache / "w.weights.h5")
    assert open(path, "rb").read() == PAYLOAD
    assert sorted(p.name for p in cache.iterdir()) == ["w.weights.h5", "w.weights.h5.lock"]
    md5 = hashlib.md5(PAYLOAD).hexdigest()  # keras.applications pins md5
    assert weights.fetch(f"{server}/w.weights.h5", md5, progress=False) == path


def test_bad_hash_deletes_the_download(server, cache):
    with pytest.raises(ValueError, match="hash mismatch"):
        weights.fetch(f"{server}/w.weights.h5", "0" * 64, progress=False)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_cached_file_is_used_without_network(server, cache):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = weights.fetch(f"{server}/w.weights.h5", sha, progress=False)
    # port 9 refuses connections: the cached copy is returned without asking
    assert weights.fetch("http://127.0.0.1:9/w.weights.h5", sha, progress=False) == path
    assert path == str(cache / "w.weights.h5") and open(path, "rb").read() == PAYLOAD


def test_corrupted_cache_is_replaced(server, cache):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    cache.mkdir(parents=True)
    (cache / "w.weights.h5").write_bytes(PAYLOAD[:1000])  # truncated earlier download
    path = weights.fetch(f"{server}/w.weights.h5", sha, progress=False)
    assert open(path, "rb").read() == PAYLOAD


def test_a_cache_entry_linked_to_a_device_is_replaced_not_read_forever(server, cache,
                                                                        tmp_path):
    """``w.weights.h5`` a link to /dev/zero (endless) and a converted file's ``.sha256`` too:
    the download replaces the link (nothing is written through it), the conversion cache is
    not trusted; each check returns at once."""
    import subprocess
    import sys

    sha = hashlib.sha256(PAYLOAD).hexdigest()
    cache.mkdir(parents=True)
    os.symlink("/dev/zero", cache / "w.weights.h5")
    (tmp_path / "conv.weights.h5").write_bytes(b"x")
    os.symlink("/dev/zero", tmp_path / "conv.weights.h5.sha256")
    code = ("import sys; from keras_classics import weights; "
            "print(weights.fetch(sys.argv[1], sys.argv[2], progress=False)); "
            "print(weights._cache_ok(sys.argv[3]))")
    res = subprocess.run([sys.executable, "-c", code, f"{server}/w.weights.h5", sha,
                          str(tmp_path / "conv.weights.h5")], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "KERAS_HOME": str(cache.parent)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == [str(cache / "w.weights.h5"), "False"]
    assert not os.path.islink(cache / "w.weights.h5")
    assert (cache / "w.weights.h5").read_bytes() == PAYLOAD


def test_connection_refused_says_where_to_put_the_file(cache):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError, match=r"place it at .*keras_home/models/w\.weights\.h5"):
        weights.fetch(f"http://127.0.0.1:{port}/w.weights.h5", "0" * 64, progress=False)
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]
