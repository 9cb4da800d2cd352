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

from conftest import call_tool

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
    assert bad.returncode == 2 and "--max-trials: must be a positive integer, got 0" in \
        bad.stderr


def test_budget_skips_configurations_over_it():
    hm = recipes.get("wide_resnet")(data.digits(32), budget_params=300_000)
    hp = kt.HyperParameters()
    hm.space(hp)
    hp.values.update(depth=40, width=4)
    with pytest.raises(kt.errors.FailedTrialError, match="over the budget"):
        hm.build(hp)
    hp.values.update(depth=10, width=1)
    assert hm.build(hp).count_params() < 300_000


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_bayesian_tuner_runs(tmp_path):
    from recipes import search

    report = search.run(recipes.get("norm"), data.digits(16), "norm", tuner="bayesian",
                        max_trials=2, epochs=2, image_size=16, directory=str(tmp_path))
    done = [r for r in report["trials"] if r["status"] == "completed"]
    assert len(done) == 2 and all(r["val_accuracy"] > 0.2 for r in done)  # chance: 0.1
    assert report["best_test_accuracy"] > 0.2


@pytest.mark.slow
def test_hyperband_resumes_trials_from_their_checkpoints(tmp_path):
    from recipes import search

    # max_epochs 3, factor 3: a bracket trains trials 1 epoch, then continues the best to 3
    report = search.run(recipes.get("norm"), data.digits(16), "norm", tuner="hyperband",
                        epochs=3, image_size=16, directory=str(tmp_path))
    project = tmp_path / "norm"
    trials = [json.loads(p.read_text()) for p in project.glob("trial_*/trial.json")]
    resumed = [t for t in trials if t["hyperparameters"]["values"].get("tuner/initial_epoch")]
    assert resumed and all(t["status"] == "COMPLETED" for t in trials)
    for t in resumed:
        values = t["hyperparameters"]["values"]
        parent = project / f"trial_{values['tuner/trial_id']}"
        assert (parent / "checkpoint.weights.h5").exists()  # written by keras-tuner's callback
        rows = list(csv.DictReader((project / f"trial_{t['trial_id']}" / "train" /
                                    "history.csv").open()))
        # trained from epoch initial_epoch + 1 on, starting from the parent's weights
        assert int(rows[0]["epoch"]) == values["tuner/initial_epoch"] + 1
        assert int(rows[-1]["epoch"]) == values["tuner/epochs"]
        parent_rows = list(csv.DictReader((parent / "train" / "history.csv").open()))
        assert float(rows[0]["loss"]) < float(parent_rows[0]["loss"])
    assert report["best_test_accuracy"] > 0.2


@pytest.mark.slow
def test_rerun_with_other_settings_and_second_chief_are_refused(tmp_path):
    from recipes import search

    digits = data.digits(16)
    kw = dict(tuner="random", max_trials=1, image_size=16, directory=str(tmp_path))
    search.run(recipes.get("norm"), digits, "norm", epochs=1, **kw)
    with pytest.raises(ValueError, match=r"(?s)other settings:.*epochs: 1 in settings.json, 2 "
                                         r"now.*--overwrite"):
        search.run(recipes.get("norm"), digits, "norm", epochs=2, **kw)
    with pytest.raises(ValueError, match="image_size: 16 in settings.json, 20 now"):
        search.run(recipes.get("norm"), data.digits(20), "norm", epochs=1,
                   **{**kw, "image_size": 20})
    holder = subprocess.Popen(
        [sys.executable, "-c", "import filelock, sys, time; lock = filelock.FileLock(sys.argv"
         "[1]); lock.acquire(); print('held', flush=True); time.sleep(120)",
         str(tmp_path / ".norm.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match="another search is running in"):
            search.run(recipes.get("norm"), digits, "norm", epochs=1, **kw)
    finally:
        holder.kill()
        holder.wait()
    report = search.run(recipes.get("norm"), digits, "norm", epochs=2, overwrite=True, **kw)
    saved = json.loads((tmp_path / "norm" / "settings.json").read_text())
    assert saved["epochs"] == 2 and len(report["trials"]) == 1
    best = json.loads((tmp_path / "norm" / "best" / "summary.json").read_text())
    assert best["epochs"] == 2


def test_bad_arguments_exit_2_and_write_nothing(tmp_path):
    for args, message in ((["--epochs", "0"], "--epochs: must be a positive integer"),
                          (["--image-size", "-3"], "--image-size: must be a positive"),
                          (["--tuner", "grid2"], "invalid choice")):
        bad = call_tool("tune", "norm", "--directory", tmp_path / "d", *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "d").exists()
