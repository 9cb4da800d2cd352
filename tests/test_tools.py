import csv
import os
import subprocess
import sys
from pathlib import Path

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
    result = run_tool("vgg17")
    assert result.returncode == 2
    assert "unknown model 'vgg17'; did you mean" in result.stderr
