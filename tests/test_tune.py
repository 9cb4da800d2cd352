"""keras-tuner recipes: valid search spaces, an end-to-end run of tools/tune.py, resume after a
kill, and a distributed search with a chief and two workers on localhost."""
import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pytest
from scipy import stats

from keras_classics import recipes
from keras_classics import datasets
from keras_classics.training.precision import fast_precision
from keras_classics.recipes import base, search

from conftest import call_tool

ROOT = Path(__file__).resolve().parents[1]
TUNE = [sys.executable, str(ROOT / "tools" / "tune.py")]
# GPUs hidden: the subprocesses (two or three at once in the multi-process tests) would each
# take a whole GPU's memory, and every test asks for the CPU paths it checks
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
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


def architecture(model):
    """Each layer's class and configuration, names left out."""
    return json.dumps([(type(layer).__name__, {k: v for k, v in layer.get_config().items()
                                               if k != "name"}) for layer in model.layers],
                      sort_keys=True, default=str)


@pytest.mark.parametrize("name", recipes.RECIPES)
def test_every_recipe_space_builds_valid_models_at_its_extremes(name):
    cls = recipes.get(name)
    hm = cls(datasets.digits(cls.image_size), image_size=cls.image_size)
    built = {}
    for hp_name, value, hp in extremes(hm):
        model = hm.make(hp)
        assert model.output_shape == (None, 10), (hp_name, value)
        built.setdefault(hp_name, []).append((hm.space(hp), architecture(model)))
    assert built
    for hp_name, ((spec_a, arch_a), (spec_b, arch_b)) in built.items():
        # the first and last value of each hyperparameter select different things: another
        # model (then its layers differ), or other training settings for the same model
        assert spec_a != spec_b, (hp_name, spec_a)
        if spec_a[:2] != spec_b[:2]:
            assert arch_a != arch_b, hp_name
        else:
            assert spec_a[2] != spec_b[2], hp_name


def test_unknown_recipe_and_out_of_range_values():
    with pytest.raises(ValueError, match="unknown recipe 'lenet'; allowed: zfnet, wide_resnet"):
        recipes.get("lenet")
    digits = datasets.digits(64)
    with pytest.raises(ValueError, match="at least 105x105, got --image-size 64"):
        recipes.get("zfnet")(digits, image_size=64)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        recipes.get("norm")(digits, epochs=0)
    with pytest.raises(ValueError, match="norm: unknown precision 'fp16'; allowed: float32"):
        recipes.get("norm")(digits, precision="fp16")
    bad = call_tool("tune", "norm", "--max-trials", "0", "--directory", "/tmp/x")
    assert bad.returncode == 2 and "--max-trials: must be a positive integer, got 0" in \
        bad.stderr


def test_budget_skips_configurations_over_it():
    hm = recipes.get("wide_resnet")(datasets.digits(32), budget_params=600_000)
    hp = kt.HyperParameters()
    hm.space(hp)
    hp.values.update(net="WRN-16-2")  # 0.69 M
    with pytest.raises(kt.errors.FailedTrialError, match="over the budget"):
        hm.build(hp)
    hp.values.update(net="WRN-40-1")  # 0.56 M
    assert hm.build(hp).count_params() < 600_000


def test_a_trial_checkpoints_every_100_steps(tmp_path, monkeypatch):
    """A trial saves every RecipeHyperModel.checkpoint_every (100) steps and after its last
    epoch, not every 20 steps as a training does: 3 epochs of 33 steps save once, at 99; at
    training's cadence they saved at 20, 53, 86 and 99."""
    from keras_classics.training import checkpoints

    saved = []
    real = checkpoints.Checkpoints.save
    monkeypatch.setattr(checkpoints.Checkpoints, "save",
                        lambda self, state, step: (saved.append(step), real(self, state, step)))
    hm = recipes.get("norm")(datasets.digits(8), image_size=8, epochs=3, batch_size=32,
                             seeds=1)
    hp = kt.HyperParameters()
    hm.space(hp)
    summary = hm.train_seed(hp, 0, str(tmp_path / "seed0")).summary
    assert summary["epochs"] == 3 and np.isfinite(summary["test_accuracy"])
    assert saved == [99]


def test_wide_resnet_pairs_have_about_equal_parameters():
    """The grid's pairs, thin-deep then wide-shallow, differ by at most 25% in parameters."""
    from keras_classics.recipes.wide_resnet import PAIRS

    hm = recipes.get("wide_resnet")(datasets.digits(32))
    names = list(PAIRS)
    for deep, wide in zip(names[::2], names[1::2]):
        (d1, w1), (d2, w2) = PAIRS[deep], PAIRS[wide]
        assert d1 > d2 and w1 < w2
        counts = []
        for name in (deep, wide):
            hp = kt.HyperParameters()
            hp.values["net"] = name
            counts.append(hm.make(hp).count_params())
        assert max(counts) / min(counts) < 1.25, (deep, wide, counts)


def trial_states(project):
    states = {}
    for path in project.glob("trial_*/trial.json"):
        states[path.parent.name] = json.loads(path.read_text())["status"]
    return states


@pytest.mark.slow
def test_kill_and_resume_repeats_and_loses_no_trial(tmp_path):
    args = TUNE + ["norm", "--max-trials", "3", "--epochs", "1", "--seeds", "1", "--image-size",
                   "16", "--directory", str(tmp_path)]
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
            TUNE + ["norm", "--max-trials", "4", "--epochs", "1", "--seeds", "1",
                    "--image-size", "16", "--directory", str(tmp_path)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if tuner_id == "chief":  # the workers start once the chief's oracle listens
            deadline = time.time() + 300
            while procs["chief"].poll() is None and time.time() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.2)
    try:
        outs = {k: p.communicate(timeout=600) for k, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()
    assert {k: p.returncode for k, p in procs.items()} == \
        {"chief": 0, "tuner0": 0, "tuner1": 0}, {k: o[1][-1500:] for k, o in outs.items()}
    states = trial_states(tmp_path / "norm")
    assert sorted(states.values()) == ["COMPLETED"] * 4
    runs = list((tmp_path / "norm").glob("trial_*/seed*/summary.json"))
    assert len(runs) == 4  # each trial trained once
    assert "Leaderboard (norm), validation accuracy mean ± std over 1 seeds:" in outs["chief"][0]
    assert all("worker done" in outs[w][0] for w in ("tuner0", "tuner1"))
    # every trial was trained by exactly one worker, and each worker trained at least one
    ran = {w: set(re.findall(r"^\[trial (\d+), ", outs[w][0], re.M)) for w in ("tuner0", "tuner1")}
    assert ran["tuner0"] and ran["tuner1"] and not ran["tuner0"] & ran["tuner1"], ran
    assert {f"trial_{t}" for t in ran["tuner0"] | ran["tuner1"]} == set(states), (ran, states)


def assert_best_is_the_model(report, project, image_size):
    """The report's best test accuracy is what best/model.keras scores on every held-out
    digit (counted here), and well above chance (0.1)."""
    model = keras.saving.load_model(project / "best" / "model.keras")
    x, y = next(iter(datasets.digits(image_size).pipeline("test", 1000)))
    counted = float((np.asarray(model(x, training=False)).argmax(1) == np.asarray(y)).mean())
    assert len(y) == 360 and report["best_model_test_accuracy"] == pytest.approx(counted,
                                                                                abs=1e-6)
    assert report["best_test_accuracy"] == pytest.approx(counted, abs=1e-6)  # one seed
    assert counted > 0.25  # measured: 0.39 (bayesian, 2 epochs), 0.62 (hyperband, 3)


@pytest.mark.slow
def test_bayesian_tuner_runs(tmp_path):
    report = search.run(recipes.get("norm"), datasets.digits(16), "norm", tuner="bayesian",
                        max_trials=2, epochs=2, image_size=16, directory=str(tmp_path),
                        seeds=1)
    done = [r for r in report["trials"] if r["status"] == "completed"]
    assert len(done) == 2
    # each trial trained: its loss fell. Not its validation accuracy: after 2 epochs the
    # batch-norm trial's moving statistics can lag its weights (seen: training accuracy 0.59,
    # validation 0.18, with one intra-op thread per test worker)
    for r in done:
        rows = list(csv.DictReader((tmp_path / "norm" / f"trial_{r['trial']}" / "seed0" /
                                    "history.csv").open()))
        assert len(rows) == 2 and float(rows[-1]["loss"]) < float(rows[0]["loss"]), rows
    assert max(r["val_accuracy"] for r in done) > 0.2  # chance: 0.1
    assert_best_is_the_model(report, tmp_path / "norm", 16)


@pytest.mark.slow
def test_hyperband_resumes_trials_from_their_checkpoints(tmp_path):
    # max_epochs 3, factor 3: a bracket trains trials 1 epoch, then continues the best to 3
    report = search.run(recipes.get("norm"), datasets.digits(16), "norm", tuner="hyperband",
                        epochs=3, image_size=16, directory=str(tmp_path), seeds=1)
    project = tmp_path / "norm"
    trials = [json.loads(p.read_text()) for p in project.glob("trial_*/trial.json")]
    resumed = [t for t in trials if t["hyperparameters"]["values"].get("tuner/initial_epoch")]
    assert resumed and all(t["status"] == "COMPLETED" for t in trials)
    for t in resumed:
        values = t["hyperparameters"]["values"]
        parent = project / f"trial_{values['tuner/trial_id']}"
        assert (parent / "checkpoint.weights.h5").exists()  # written by keras-tuner's callback
        rows = list(csv.DictReader((project / f"trial_{t['trial_id']}" / "seed0" /
                                    "history.csv").open()))
        # trained from epoch initial_epoch + 1 on, starting from the parent's weights
        assert int(rows[0]["epoch"]) == values["tuner/initial_epoch"] + 1
        assert int(rows[-1]["epoch"]) == values["tuner/epochs"]
        parent_rows = list(csv.DictReader((parent / "seed0" / "history.csv").open()))
        assert float(rows[0]["loss"]) < float(parent_rows[0]["loss"])
    assert_best_is_the_model(report, project, 16)


@pytest.mark.slow
def test_rerun_with_other_settings_and_second_chief_are_refused(tmp_path):
    digits = datasets.digits(16)
    kw = dict(tuner="random", max_trials=1, image_size=16, directory=str(tmp_path), seeds=1)
    search.run(recipes.get("norm"), digits, "norm", epochs=1, **kw)
    with pytest.raises(ValueError, match=r"(?s)other settings:.*epochs: 1 in settings.json, 2 "
                                         r"now.*--overwrite"):
        search.run(recipes.get("norm"), digits, "norm", epochs=2, **kw)
    with pytest.raises(ValueError, match="image_size: 16 in settings.json, 20 now"):
        search.run(recipes.get("norm"), datasets.digits(20), "norm", epochs=1,
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


def test_aggregate_over_seeds():
    runs = [{"best_val_accuracy": v, "test_accuracy": t, "wall_time_s": 10.0 + i,
             "last_epoch_rise": r} for i, (v, t, r) in
            enumerate([(0.90, 0.88, 0.01), (0.94, 0.90, 0.05), (0.95, 0.97, None)])]
    m = base.aggregate(runs)
    assert m["seeds"] == 3 and m["seconds"] == 33.0
    assert m["val_accuracy"] == pytest.approx(0.93) and m["test_accuracy"] == pytest.approx(
        0.9166667)
    # sample standard deviation: sqrt(((-.03)^2 + .01^2 + .02^2) / 2)
    assert m["val_accuracy_std"] == pytest.approx(np.sqrt((0.0009 + 0.0001 + 0.0004) / 2))
    assert [m[f"val_accuracy_seed{i}"] for i in range(3)] == [0.90, 0.94, 0.95]
    assert m["last_epoch_rise"] == pytest.approx(0.03)  # mean over the seeds that have one
    one = base.aggregate(runs[:1])
    assert one["val_accuracy_std"] == 0.0 and one["seeds"] == 1


def rows_of(*samples):
    return [{"label": f"config {i}", "seeds": len(s), "val_accuracy": float(np.mean(s)),
             **{f"val_accuracy_seed{j}": v for j, v in enumerate(s)}}
            for i, s in enumerate(samples)]


def test_verdict_calls_a_clear_difference_and_not_equal_results():
    clear = rows_of([0.97, 0.975, 0.972], [0.80, 0.81, 0.79], [0.971, 0.965, 0.975])
    line = search.verdict(clear)
    assert line.startswith("verdict: config 0 beats config 1 (p=")
    assert "cannot be separated from config 2" in line and "Welch's one-sided t-test" in line
    # the p-value is Welch's: t and the Welch-Satterthwaite degrees of freedom by hand
    a, b = np.array([0.97, 0.975, 0.972]), np.array([0.80, 0.81, 0.79])
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    beats, p = search.compare(a, b)
    assert beats and p == pytest.approx(stats.t.sf(t, df)) and p < 0.05
    equal = rows_of([0.90, 0.92], [0.92, 0.90])
    assert search.verdict(equal).startswith("verdict: the data cannot separate the best")
    assert search.compare([0.90, 0.92], [0.92, 0.90]) == (False, pytest.approx(0.5))
    # a worse configuration never "beats"; NaN and single seeds cannot be tested
    assert not search.compare([0.80, 0.81, 0.79], [0.97, 0.975, 0.972])[0]
    assert search.compare([0.9, float("nan")], [0.5, 0.6])[0] is False
    assert search.verdict(rows_of([0.9], [0.5])).startswith("verdict: cannot tell: 1 seed")
    # spread on one side only is Welch's test; on neither side the test is undefined
    assert search.compare([0.95, 0.96], [0.8, 0.8])[0] is True
    beats, p = search.compare([0.9, 0.9], [0.8, 0.8])
    assert beats is False and np.isnan(p)
    assert "config 1 (untestable: no spread in either)" in search.verdict(
        rows_of([0.9, 0.9], [0.8, 0.8]))


def test_fastest_precision_follows_the_cpu_flags(tmp_path):
    flags = "flags\t\t: fpu sse2 avx2 avx512f {}\n"
    for extra, policy in (("avx512_bf16", "mixed_bfloat16"),
                          ("amx_bf16 amx_tile", "mixed_bfloat16"), ("avx512_vnni", "float32")):
        (tmp_path / "cpuinfo").write_text("processor\t: 0\n" + flags.format(extra))
        assert fast_precision(str(tmp_path / "cpuinfo")) == policy
    assert fast_precision(str(tmp_path / "missing")) == "float32"


def test_keras_tuner_state_files_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """keras-tuner writes oracle.json and trial.json in place; a kill mid-write left an empty
    file that the resuming rerun could not parse. During our searches they go to a temporary
    file renamed into place: a write that dies before the rename leaves the old file."""
    from keras_tuner.src import utils as kt_utils

    path = tmp_path / "oracle.json"
    path.write_text('{"ongoing_trials": {}}')

    def killed(*args):
        raise KeyboardInterrupt("killed before the rename")

    with search.atomic_tuner_files():
        kt_utils.save_json(str(tmp_path / "trial.json"), {"trial_id": "0"})
        assert json.loads((tmp_path / "trial.json").read_text()) == {"trial_id": "0"}
        monkeypatch.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            kt_utils.save_json(str(path), {"ongoing_trials": {"1": "tuner0"}})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"ongoing_trials": {}}
    assert kt_utils.save_json.__module__ == "keras_tuner.src.utils"  # restored afterwards
