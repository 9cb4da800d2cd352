"""Training: real digits, real tf.distribute strategies (two logical CPUs; two worker
processes on localhost), kill-and-resume, NaN, Ctrl-C, tfds through mock_data, bad input."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_classics import data, training

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "tools" / "train.py")]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
ENV.pop("TF_CONFIG", None)
SMALL = ["wrn_10_1", "--epochs", "2", "--batch-size", "32", "--image-size", "16"]


def run(args, env=None, timeout=600):
    return subprocess.run(TRAIN + args, capture_output=True, text=True, env=env or ENV,
                          timeout=timeout)


def saved_weights(path):
    return keras.saving.load_model(path).get_weights()


def test_digits_reach_95_percent_and_leave_every_output(tmp_path):
    out = tmp_path / "run"
    summary = training.train("resnet18", "digits", epochs=8, batch_size=64, output=str(out),
                             verbose=0)
    assert summary["test_accuracy"] >= 0.95, summary
    assert summary["strategy"] == "default" and summary["replicas"] == 1
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out / "logs"))
    saved = json.loads((out / "summary.json").read_text())
    assert saved["test_accuracy"] == summary["test_accuracy"]
    assert {"best_val_accuracy", "wall_time_s", "images_per_second", "epochs"} <= set(saved)
    model = keras.saving.load_model(out / "model.keras")
    x, y = next(iter(data.digits(32).pipeline("test", 64)))
    assert (np.asarray(model(x)).argmax(1) == y.numpy()).mean() > 0.9


def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path):
    args = SMALL + ["--deterministic", "--checkpoint-every", "3"]
    ref = run(args + ["--output", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(TRAIN + args + ["--output", str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no chance to save anything more
    proc.wait()
    assert not (out / "model.keras").exists(), "killed too late to test a resume"
    resumed = run(args + ["--output", str(out)])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    for a, b in zip(saved_weights(out / "model.keras"), saved_weights(tmp_path / "ref" /
                                                                       "model.keras")):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_saves_then_the_same_command_continues(tmp_path):
    out = tmp_path / "run"
    args = SMALL + ["--epochs", "6", "--checkpoint-every", "2", "--output", str(out)]
    proc = subprocess.Popen(TRAIN + args, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    # the first step checkpoint proves the loop is running (6 epochs are far from done)
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "progress saved to" in err and (out / "checkpoint.npz").exists()
    done = run(args)
    assert done.returncode == 0 and "resuming from" in done.stdout
    assert json.loads((out / "summary.json").read_text())["epochs"] == 6


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(training.TrainingDiverged, match="the loss became nan"):
        training.train("wrn_10_1", epochs=2, batch_size=32, image_size=16, lr=1e12,
                       output=str(tmp_path), verbose=0, checkpoint_every=0)
    assert not (tmp_path / "model.keras").exists()
    assert not (tmp_path / "checkpoint.npz").exists()  # nothing bad was saved


def test_mirrored_over_two_logical_cpus(tmp_path):
    result = run(SMALL + ["--strategy", "mirrored", "--cpu-replicas", "2", "--output",
                          str(tmp_path)])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["strategy"] == "MirroredStrategy" and summary["replicas"] == 2
    bad = run(SMALL + ["--strategy", "mirrored", "--cpu-replicas", "2", "--batch-size", "33",
                       "--output", str(tmp_path / "bad")])
    assert bad.returncode == 2
    assert "global batch size 33 must be divisible by the 2 replicas" in bad.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_on_localhost(tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster,
                                               "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(TRAIN + SMALL + ["--output", str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    chief = json.loads((tmp_path / "summary.json").read_text())
    worker = json.loads((tmp_path / "summary_worker_1.json").read_text())
    assert chief["strategy"] == "MultiWorkerMirroredStrategy" and chief["replicas"] == 2
    assert chief["weights_checksum"] == worker["weights_checksum"]
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_tfds_dataset_through_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        summary = training.train("wrn_10_1", "cifar10", epochs=1, batch_size=16,
                                 image_size=16, output=str(tmp_path), verbose=0)
    assert summary["dataset"] == "cifar10" and summary["epochs"] == 1
    assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe 'sgdr'; allowed: alexnet, resnet"):
        training.train("resnet18", recipe="sgdr", output=str(tmp_path))
    with pytest.raises(ValueError, match="unknown dataset 'not_a_dataset'"):
        training.train("resnet18", dataset="not_a_dataset", output=str(tmp_path))
    with pytest.raises(ValueError, match="unknown strategy 'tpu'"):
        training.train("resnet18", strategy="tpu", output=str(tmp_path))
    with pytest.raises(ValueError, match="alexnet needs inputs of at least 67x67"):
        training.train("alexnet", image_size=32, output=str(tmp_path))
    bad = run(["vgg17", "--output", str(tmp_path)])
    assert bad.returncode == 2 and "did you mean" in bad.stderr


def test_recipes_follow_the_papers():
    alex = training.RECIPES["alexnet"]
    assert (alex.optimizer, alex.lr, alex.momentum, alex.weight_decay, alex.batch_size,
            alex.schedule) == ("sgd", 1e-2, 0.9, 5e-4, 128, "plateau")
    res = training.RECIPES["resnet"]
    assert (res.lr, res.weight_decay, res.batch_size) == (0.1, 1e-4, 256)
    state = {"lr": 0.01, "best": 0.5, "wait": 0}
    for acc in (0.5, 0.5):  # two epochs without improvement: lr / 10
        training._plateau_update(alex, state, acc)
    assert state["lr"] == pytest.approx(1e-3)
    assert training.learning_rate(training.RECIPES["resnet_step"], 0.1, {}, 60, 1, 100) == \
        pytest.approx(0.01)


def test_aux_losses_weighted_0_3():
    y = np.array([0, 1])
    main = np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    aux = np.array([[0.5, 0.5], [0.5, 0.5]], "float32")
    ce = lambda p: -np.mean(np.log(p[np.arange(2), y]))  # noqa: E731
    got = float(training.total_loss(y, [main, aux, aux], 0.3, 2))
    assert got == pytest.approx(ce(main) + 0.3 * 2 * ce(aux), rel=1e-5)


def test_googlenet_with_aux_heads_mixed_precision_and_xla(tmp_path):
    summary = training.train("googlenet", epochs=1, batch_size=32, image_size=79,
                             output=str(tmp_path), verbose=0, mixed_precision=True, jit=True,
                             model_kwargs={"aux_logits": True})
    assert summary["precision"] == "mixed_bfloat16" and summary["jit"]
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    model = summary["model_object"]
    assert len(model.outputs) == 3


def test_folder_dataset_and_imagenet_manual_download_message(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            keras.utils.save_img(tmp_path / "imgs" / cls / f"{i}.png",
                                 rng.integers(0, 255, (20, 20, 3)).astype("uint8"))
    d = data.load(str(tmp_path / "imgs"), image_size=16)
    assert d.num_classes == 2 and d.class_names == ["cat", "dog"]
    assert d.num_train == 14 and len(d.val[1]) + len(d.test[1]) == 6
    x, y = next(iter(d.pipeline("train", 4)))
    assert x.shape == (4, 16, 16, 3)
    with pytest.raises(ValueError, match=r"ILSVRC2012_img_train.tar .* place them in .*manual"):
        data.load("imagenet2012", data_dir=str(tmp_path / "tfds"))
