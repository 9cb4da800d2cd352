"""bench/run.py --quick as a smoke test: it runs and produces every row (no timing asserted)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_produces_every_row(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
                             "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert set(report["models"]) == {"vgg16", "resnet50", "densenet121"}
    table = (tmp_path / "results.md").read_text()
    for row in ("ours/keras inference b1", "ours/keras training", "folded/fp32", "xla/fp32",
                "saved_model/fp32", "bf16 folded/keras fp32", "achieved/peak fp32",
                "achieved/peak bf16"):
        assert f"| {row}" in table
    assert "top-1 agreement" in table and report["peak_gflops"]["fp32"] > 0
