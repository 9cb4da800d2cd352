import csv
import os
import subprocess
import sys
from pathlib import Path

from conftest import call_tool

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "zoo.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_zoo_table_and_csv(tmp_path):
    out = tmp_path / "zoo.csv"
    result = run_tool("alexnet", "vgg16", "wrn_28_10", "--csv", str(out))
    assert result.returncode == 0, result.stderr
    assert "60,965,224" in result.stdout and "138,357,544" in result.stdout
    rows = {r["name"]: r for r in csv.DictReader(out.open())}
    assert int(rows["wrn_28_10"]["trainable"]) == 36_479_194
    assert rows["alexnet"]["input"] == "227" and rows["alexnet"]["min_input"] == "67"
    assert rows["wrn_28_10"]["dataset"] == "cifar"


def test_zoo_unknown_model_is_a_usage_error():
    result = call_tool("zoo", "vgg17")  # in this process: the table test starts the tool
    assert result.returncode == 2
    assert "unknown model 'vgg17'; did you mean" in result.stderr


def test_every_tool_turns_on_onednn_before_importing_tensorflow():
    """keras_classics.cli.ONEDNN: the variable only counts if set before TensorFlow loads, so
    every script of tools/ and bench/ that loads TensorFlow sets it ahead of its first import
    of TensorFlow, Keras or keras_classics (and leaves a value the user set alone)."""
    import ast

    from keras_classics.cli import ONEDNN

    heavy = ("tensorflow", "keras", "keras_classics", "timing", "where_time_goes", "run")
    for path in sorted([*(ROOT / "tools").glob("*.py"), *(ROOT / "bench").glob("*.py")]):
        text = path.read_text()
        if '__name__ == "__main__"' not in text:  # a module the scripts import (timing.py)
            continue
        if path.name == "jax_child.py":  # Keras on JAX: TensorFlow is never loaded there
            continue
        tree = ast.parse(text)
        first_import = next((node.lineno for node in tree.body
                             if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                                 (getattr(node, "module", None) or a.name).split(".")[0]
                                 in heavy for a in node.names)), None)
        if first_import is None:
            continue
        sets = [node.lineno for node in tree.body if isinstance(node, ast.Expr) and
                ast.unparse(node) == f"os.environ.setdefault('{ONEDNN}', '1')"]
        assert sets and sets[0] < first_import, path.name


GROUPED = '''
import os, pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", [0, 1])
def test_grouped_parametrized(i, request):
    record(request)

@pytest.mark.xdist_group("shared")
def test_grouped(request):
    record(request)

def test_other():
    pass

def record(request):
    with open(os.path.join(os.path.dirname(__file__), "seen.txt"), "a") as f:
        f.write(f"{os.environ['PYTEST_XDIST_WORKER']} {request.node.nodeid}\\n")
'''


def test_xdist_loadgroup_keeps_a_group_on_one_worker(tmp_path):
    """The suite's setup (setup.cfg: -n auto --dist loadgroup) relies on xdist_group to train
    a shared model once: with the installed pytest and xdist, every test of a group carries
    the group's suffix and runs on one worker (pytest 9.2 broke this: pytest-xdist#1386)."""
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist",
                          "loadgroup", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    seen = [line.split() for line in (tmp_path / "seen.txt").read_text().splitlines()]
    assert len(seen) == 3 and all(nodeid.endswith("@shared") for _, nodeid in seen), seen
    assert len({worker for worker, _ in seen}) == 1, seen
