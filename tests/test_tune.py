"""keras-tuner recipes: valid search spaces, an end-to-end run of tools/tune.py, resume after a
kill, and a distributed search with a chief and two workers on localhost."""
import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner as kt
import pytest

import recipes
from keras_classics import data

ROOT = Path(__file__).resolve().parents[1]
TUNE = [sys.executable, str(ROOT / "tools" / "tune.py")]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
    ENV.pop(var, None)


def extremes(hm):
    """For each hyperparameter, its first and last value (others at their defaults)."""
    hp = kt.HyperParameters()
    hm.space(hp)
    for p in hp.space:
        values = p.values if hasattr(p, "values") else [False, True]
        for v in (values[0], values[-1]):
            one = kt.HyperParameters()
            one.values[p.name] = v
            hm.space(one)
            one.values[p.name] = v
            yield p.name, v, one


@pytest.mark.parametrize("name", recipes.RECIPES)
def test_every_recipe_space_builds_valid_models_at_its_extremes(name):
    cls = recipes.get(name)
    hm = cls(data.digits(cls.image_size), image_size=cls.image_size)
    seen = 0
    for hp_name, value, hp in extremes(hm):
        model = hm.make(hp)
        assert model.output_shape == (None, 10), (hp_name, value)
        assert hp.values[hp_name] == value
        seen += 1
    assert seen >= 2


def test_unknown_recipe_and_out_of_range_values():
    with pytest.raises(ValueError, match="unknown recipe 'lenet'; allowed: zfnet, wide_resnet"):
        recipes.get("lenet")
    digits = data.digits(64)
    with pytest.raises(ValueError, match="at least 105x105, got --image-size 64"):
        recipes.get("zfnet")(digits, image_size=64)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        recipes.get("norm")(digits, epochs=0)
    bad = subprocess.run(TUNE + ["norm", "--max-trials", "0", "--directory", "/tmp/x"],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert bad.returncode == 2 and "max_trials must be a positive int" in bad.stderr


def test_budget_skips_configurations_over_it():
    hm = recipes.get("wide_resnet")(data.digits(32), budget_params=300_000)
    hp = kt.HyperParameters()
    hm.space(hp)
    hp.values.update(depth=40, width=4)
    with pytest.raises(kt.errors.FailedTrialError, match="over the budget"):
        hm.build(hp)
    hp.values.update(depth=10, width=1)
    assert hm.build(hp).count_params() < 300_000


def test_tune_zfnet_end_to_end(tmp_path):
    out = subprocess.run(TUNE + ["zfnet", "--max-trials", "2", "--epochs", "1", "--image-size",
                                 "105", "--directory", str(tmp_path), "--export",
                                 str(tmp_path / "serving")],
                         capture_output=True, text=True, env=ENV, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("[trial ") == 2 and "Leaderboard (zfnet):" in out.stdout
    assert "retrained: test accuracy" in out.stdout
    project = tmp_path / "zfnet"
    rows = list(csv.DictReader((project / "results.csv").open()))
    assert len(rows) == 2 and all(float(r["val_accuracy"]) >= 0 for r in rows)
    assert {r["conv1"] for r in rows} <= {"7x7/2", "11x11/4"} and int(rows[0]["params"]) > 0
    assert int(rows[0]["macs"]) > 0
    assert (project / "results.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((project / "report.json").read_text())
    assert 0 <= report["best_test_accuracy"] <= 1
    assert (tmp_path / "serving" / "1" / "saved_model.pb").exists()


def trial_states(project):
    states = {}
    for path in project.glob("trial_*/trial.json"):
        states[path.parent.name] = json.loads(path.read_text())["status"]
    return states


def test_kill_and_resume_repeats_and_loses_no_trial(tmp_path):
    args = TUNE + ["norm", "--max-trials", "3", "--epochs", "1", "--directory", str(tmp_path)]
    project = tmp_path / "norm"
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while "COMPLETED" not in trial_states(project).values() and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    first = {k for k, v in trial_states(project).items() if v == "COMPLETED"}
    assert first and len(first) < 3
    stamps = {k: (project / k / "trial.json").stat().st_mtime for k in first}
    again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    states = trial_states(project)
    assert sorted(states.values()) == ["COMPLETED"] * 3
    for k in first:  # finished trials were not run again
        assert (project / k / "trial.json").stat().st_mtime == stamps[k]
    values = [json.loads((project / k / "trial.json").read_text())["hyperparameters"]["values"]
              ["norm"] for k in states]
    assert len(set(values)) == 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_search_chief_and_two_workers(tmp_path):
    port = free_port()
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**ENV, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
        procs[tuner_id] = subprocess.Popen(
            TUNE + ["norm", "--max-trials", "4", "--epochs", "1", "--directory",
                    str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        if tuner_id == "chief":
            time.sleep(3)
    try:
        outs = {k: p.communicate(timeout=600) for k, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()
    assert {k: p.returncode for k, p in procs.items()} == \
        {"chief": 0, "tuner0": 0, "tuner1": 0}, {k: o[1][-1500:] for k, o in outs.items()}
    states = trial_states(tmp_path / "norm")
    assert sorted(states.values()) == ["COMPLETED"] * 4
    runs = list((tmp_path / "norm").glob("trial_*/train/summary.json"))
    assert len(runs) == 4  # each trial trained once
    assert "Leaderboard (norm):" in outs["chief"][0]
    assert all("worker done" in outs[w][0] for w in ("tuner0", "tuner1"))


@pytest.mark.parametrize("tuner", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_tuners_run(tuner, tmp_path):
    from recipes import search

    hm_cls = recipes.get("norm")
    report = search.run(hm_cls, data.digits(16), "norm", tuner=tuner, max_trials=2, epochs=2,
                        image_size=16, directory=str(tmp_path))
    done = [r for r in report["trials"] if r["status"] == "completed"]
    assert len(done) >= 2 and all(0 <= r["val_accuracy"] <= 1 for r in done)
    assert 0 <= report["best_test_accuracy"] <= 1
