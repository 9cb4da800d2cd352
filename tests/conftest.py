import contextlib
import functools
import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# as the tools do (keras_classics.cli.ONEDNN): TensorFlow's own kernels on AVX2-only CPUs are
# several times slower at training, and inherited by every tool the tests start
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# Under xdist (-n auto: one worker per core) each worker's TensorFlow, and every tool a test
# starts, would use a thread per core for each op: two workers on 2 cores ran two concurrent
# ResNet-18 trainings in 21 and 31 s each with the default, 21 and 21 s with one thread each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(
        1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Seeded, and every model of a test freed before the next (full-size nets are big):
    ``clear_session`` runs ``gc.collect`` itself (a second collection here took 0.11 s a test,
    ~65 s of the suite's two workers)."""
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


@functools.lru_cache(maxsize=1)
def standard_model(name):
    """``name`` in its standard configuration, for its structure: the layers, names and
    weight shapes ``kc.get_model(name)`` builds, with the variables' initializers left unrun
    (``ModelInfo.build_shapes``, as the analysis does; tests/test_analysis.py checks that
    such a model profiles as the built one). Kept until another is asked for. Read-only use:
    the contract, parameter, depth and layout tests of one model share it, parametrized with
    :func:`standard_models`, whose xdist_group sends the tests of one model to one worker in a
    row, so each model is made once. Building the 52 standard models took 190 s here, making
    their shapes 47 s (Keras creates and fills each variable one by one)."""
    import keras_classics as kc

    return kc.model_info(name).build_shapes()


def standard_models(params):
    """Model names (or tuples whose first item is one) as pytest parameters, each in its
    model's xdist_group: the one :func:`standard_model` serves."""
    return [pytest.param(*(p if isinstance(p, tuple) else (p,)), marks=pytest.mark.xdist_group(
        f"standard_{p[0] if isinstance(p, tuple) else p}")) for p in params]


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


@pytest.fixture(scope="session")
def readme_training(tmp_path_factory):
    """The README's training, export and fine-tuning commands (tests/test_readme.py, group
    "train_export_finetune"), run once, as written, in a copy of the repository: (copy,
    {command: stdout}). Its ``runs/train/model.keras`` -- ResNet-18 trained on the digits by
    the README's first training command -- is also the trained model of the TFLite and
    visualization tests; the tests using this fixture share an xdist_group, so one worker
    trains once for all of them."""
    import test_readme

    copy = test_readme.copy_repository(tmp_path_factory.mktemp("readme_training") / "repo")
    # the folder the README's fine-tuning command names, as class subfolders of digit images
    digits_folder(copy / "path" / "to" / "class_folders", classes=(0, 1, 2), per_class=30)
    return copy, test_readme.run_group("train_export_finetune", copy)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def load_tool(name):
    """The command ``keras-classics NAME`` (``python tools/NAME.py``) as its module,
    ``keras_classics.cli.NAME``, to call its ``main(argv)`` in this process."""
    import importlib

    return importlib.import_module(f"keras_classics.cli.{name}")


def call_tool(name, *args):
    """``python tools/NAME.py ARGS``, run in this process (the tools are thin shims over
    ``keras_classics.cli.main.run(NAME, argv)``): an object with ``returncode``, ``stdout``
    and ``stderr``."""
    import contextlib
    import io
    import types

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            from keras_classics.cli.main import run

            code = run(name, [str(a) for a in args], prog=f"{name}.py")
        except SystemExit as exit_:
            code = exit_.code
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def digits_folder(root, classes=range(10), per_class=30):
    """scikit-learn's digits written as a folder dataset (``root/digit{label}/{i}.png``, 8x8
    RGB PNGs, the first ``per_class`` of each class): real images in the layout users train
    on, smaller than the embedded set where a test needs only the pipeline."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in classes:
        folder = root / f"digit{label}"
        folder.mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == label][:per_class]):
            keras.utils.save_img(folder / f"{i}.png", np.repeat(image[..., None] * 16, 3, -1))
    return root


def random_images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")


@contextlib.contextmanager
def serve_folder(root):
    """A loopback HTTP server on a free port serving the folder ``root``: yields its base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server on a free port serving ``tmp_path/www``: yields (base_url, dir)."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as base:
        yield base, root


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache (``$KERAS_HOME``) for the test; yields its ``models`` folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


PUBLISHED_SPECS = [f"{n}{'' if top else ':notop'}" for n in sorted(KERAS_APPS)
                   for top in (True, False)]


def _write_published(out):
    """Start tests/keras2_fixtures.py writing every spec into ``out``; a thread marks
    ``out/done`` (or ``out/failed`` with the error) when it ends. Returns the thread."""
    import subprocess
    import sys
    import threading
    from pathlib import Path

    script = Path(__file__).resolve().parent / "keras2_fixtures.py"
    proc = subprocess.Popen([sys.executable, str(script), str(out), *PUBLISHED_SPECS],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait():
        log = proc.communicate(timeout=1800)[0]
        marker = "done" if proc.returncode == 0 else "failed"
        (Path(out) / marker).write_bytes(log[-5000:])
    thread = threading.Thread(target=wait, daemon=True)
    thread.proc = proc
    thread.start()
    return thread


def pytest_configure_node(node):
    """pytest-xdist, in the controller (idle while its workers test): start writing the
    published files once, in the background, and tell each worker where."""
    import tempfile

    config = node.config
    if not hasattr(config, "_kc_published"):
        out = tempfile.mkdtemp(prefix="keras2_published-")
        config._kc_published = (out, _write_published(out))
    node.workerinput["keras2_published"] = config._kc_published[0]


def pytest_unconfigure(config):
    import shutil

    if hasattr(config, "_kc_published"):  # the controller: 1.5 GB of fixtures
        config._kc_published[1].proc.kill()  # done by now, or the run was interrupted
        config._kc_published[1].join(timeout=60)
        shutil.rmtree(config._kc_published[0], ignore_errors=True)


@pytest.fixture(scope="session")
def published(request, tmp_path_factory):
    """Every Keras-sourced file, with and without top, in the published layout: written by
    keras_applications' code on Keras 2 (tests/keras2_fixtures.py), in a process of its own,
    once per run (under xdist, by the controller while the workers test).
    Yields ``path(name, include_top)``."""
    import time
    from pathlib import Path

    import keras2_fixtures

    shared = getattr(request.config, "workerinput", {}).get("keras2_published")
    if shared:
        out = Path(shared)
    else:  # not under xdist
        out = tmp_path_factory.mktemp("keras2_published")
        _write_published(out).join()
    deadline = time.monotonic() + 1800
    while not (out / "done").exists():
        assert not (out / "failed").exists(), (out / "failed").read_text(errors="replace")
        assert time.monotonic() < deadline, "the published fixtures took over 30 minutes"
        time.sleep(0.5)
    return lambda name, include_top: out / keras2_fixtures.file_name(name, include_top)


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (setup.cfg): one worker per core, at most 4 (each holds full-size nets)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


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


def pytest_collection_modifyitems(config, items):
    """The slow tests first, the longest (``slow(seconds=...)``, else 60) first among them:
    the workers start on them, the short ones fill in after."""
    def seconds(item):
        slow = item.get_closest_marker("slow")
        return 0 if slow is None else slow.kwargs.get("seconds", 60)
    items.sort(key=seconds, reverse=True)


def pytest_collection_finish(session):
    """What is loaded by now (TensorFlow, Keras, PyTorch, the test modules: ~560,000 objects)
    lives until the end: ``gc.freeze`` takes it out of the collector's sight, so the
    ``gc.collect`` inside every test's teardown (in ``clear_session``) looks only
    at what tests made -- 0.9-1.5 s a test before, a fifth of the time of the weight and
    contract tests."""
    gc.collect()
    gc.freeze()


def assert_close(actual, desired, **tolerances):
    """``np.testing.assert_allclose``, which takes NaN for equal to NaN, after checking that
    both sides are finite: two package outputs that are both NaN are not a match."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert np.isfinite(actual).all() and np.isfinite(desired).all(), "NaN or inf in a comparison"
    np.testing.assert_allclose(actual, desired, **tolerances)
