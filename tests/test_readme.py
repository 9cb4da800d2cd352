"""The README's commands, run as written (#19). Every command line of the README's bash blocks
is either run here — exactly as written, with bash, in a temporary copy of the repository, the
figures the README states beside it checked — or listed in NOT_RUN with the reason. A command
that is neither fails ``test_every_readme_command_is_run_or_listed``. Commands of one group
share their copy, in README order (the export commands use the model the training command
wrote), so a long command runs once and serves every check that needs it."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_classics.training.precision import fast_precision

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
       # `python` in a command is the interpreter running the tests
       "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def readme_commands():
    """Every command line of the README's bash blocks, continuation lines joined, comments
    kept (bash ignores them)."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line)
    return lines


def command(line):
    """A command without its trailing comment, whitespace normalized: how it is named here."""
    return " ".join(re.split(r"\s+#\s", line, maxsplit=1)[0].split())


# command (as named by command()) -> why it is not run here
NOT_RUN = {
    "pip install -e . && python tools/tune.py zfnet":
        "the install and the main job: the install is what .ci/run does; the job is the "
        "README's `python tools/tune.py zfnet`, run as written by test_main_job_command",
    "pip install -e '.[test]' && python -m pytest -q tests": "the suite itself (.ci/run runs it)",
    "python tools/train.py resnet50 --dataset cifar10 --epochs 90 --batch-size 256 --strategy "
    "mirrored --precision auto": "network: downloads cifar10",
    "python tools/train.py alexnet --dataset imagenette/160px-v2 --preset alexnet --image-size "
    "227 --augment crop,flip,pca": "network: downloads imagenette",
    "python tools/train.py resnet18 --strategy mirrored --cpu-replicas 2 --precision "
    "mixed_float16 --epochs 2 --batch-size 32 --output runs/float16":
        "16 min on an Intel Xeon, 100 s on an AMD EPYC (float16 is emulated on CPUs); "
        "tests/test_training.py runs the same path for one epoch of wrn_10_1",
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": "
    "{\"type\": \"worker\", \"index\": 0}}' python tools/train.py resnet50 --dataset cifar10 "
    "--output /shared/run1": "a second host (tests/test_training.py runs two workers on "
                             "localhost) and network (cifar10)",
    "python tools/export.py resnet50 --weights imagenet --labels imagenet --out "
    "serving/resnet50": "network: downloads the ImageNet weights",
    "docker run -p 8501:8501 -p 8500:8500 -v $PWD/serving/digits:/models/digits -e "
    "MODEL_NAME=digits tensorflow/serving": "Docker and TensorFlow Serving's image",
    "curl -d \"{\\\"instances\\\": [{\\\"b64\\\": \\\"$(base64 -w0 digit.png)\\\"}]}\" "
    "localhost:8501/v1/models/digits:predict": "a running TensorFlow Serving (the docker "
                                               "command above)",
    "python tools/tune.py zfnet --max-trials 16": "32 trainings, ~30 min",
    "python tools/tune.py wide_resnet": "5 min here; tests/test_tune.py runs each study's "
                                        "space at its extremes",
    "python tools/tune.py resnet": "6 min here; tests/test_tune.py runs each study's space at "
                                   "its extremes",
    "python tools/tune.py vgg | densenet | norm | se": "a list of choices, not one command",
    "python tools/tune.py resnet --dataset cifar10 --epochs 30 --strategy mirrored --tuner "
    "bayesian": "network: downloads cifar10",
    "export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000":
        "a second host (tests/test_tune.py runs a chief and two workers on localhost)",
    "KERASTUNER_TUNER_ID=chief python tools/tune.py wide_resnet --directory /shared/tune &":
        "a second host (as above)",
    "KERASTUNER_TUNER_ID=tuner0 python tools/tune.py wide_resnet --directory /shared/tune":
        "a second host (as above)",
    "python tools/finetune.py resnet50 --weights imagenet --dataset imagenette/160px-v2 "
    "--image-size 160": "network: the ImageNet weights and imagenette",
    "python tools/visualize.py alexnet --weights imagenet --image cat.jpg --out viz/alexnet/":
        "network: the ImageNet weights",
}

GROUPS = {
    # the second command finds the first one's finished search (same settings) and exports;
    # the third looks inside its best model (the README's visualization section)
    "main_job": ["python tools/tune.py zfnet", "python tools/tune.py zfnet --export serving/zfnet",
                 "python tools/visualize.py runs/tune/zfnet/best/model.keras --dataset digits "
                 "--out viz/"],
    "analysis": ["python tools/analyze.py vgg16",
                 "python tools/analyze.py vgg16 --train momentum",
                 "python tools/analyze.py resnet50 --input-size 160 --batch-size 32 --format json",
                 "python tools/analyze.py my_model.keras --input-size 64",
                 "python tools/analyze.py --zoo --plot zoo.png",
                 "python tools/analyze.py --inception-example"],
    "train_export_finetune": [
        "python tools/train.py resnet18",
        "python tools/export.py runs/train/model.keras --out serving/digits",
        "python tools/export.py runs/train/model.keras --out lite/ --format tflite",
        "python tools/export.py runs/train/model.keras --out serving/digits --max-pixels 4000000",
        "python tools/finetune.py runs/train/model.keras --dataset path/to/class_folders "
        "--regime medium --export serving/ft"],
    "googlenet": ["python tools/train.py googlenet_bn --image-size 80 --set aux_logits=true "
                  "--epochs 5 --output runs/googlenet"],
    "mirrored": ["python tools/train.py wrn_10_1 --epochs 2 --batch-size 32 --image-size 16 "
                 "--strategy mirrored --cpu-replicas 2 --jit --output runs/mirrored"],
    "transfer": ["python tools/finetune.py --experiment"],
}


def test_every_readme_command_is_run_or_listed():
    run = {c for group in GROUPS.values() for c in group}
    named = [command(line) for line in readme_commands()]
    unknown = [c for c in named if c not in run and c not in NOT_RUN]
    assert not unknown, f"README commands neither run by this test nor listed in NOT_RUN: " \
                        f"{unknown}"
    stale = sorted((run | set(NOT_RUN)) - set(named))
    assert not stale, f"commands of this test that are no longer in the README: {stale}"


def copy_repository(dest):
    """A copy of the working directory at ``dest`` (what a user has after cloning), without
    outputs."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", "runs", "serving", "lite", "viz", "__pycache__", "*.egg-info", ".pytest_cache"))
    return dest


@pytest.fixture
def copy(tmp_path):
    return copy_repository(tmp_path / "repo")


def run_group(name, cwd, timeout=1200, env=ENV):
    """Run the group's README lines (comments included) with bash in ``cwd``; each must exit
    0. Returns {command: stdout}."""
    lines = {command(line): line for line in readme_commands()}
    out = {}
    for c in GROUPS[name]:
        res = subprocess.run(["bash", "-c", lines[c]], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=timeout)
        assert res.returncode == 0, f"{lines[c]}\n{res.stderr[-3000:]}"
        out[c] = res.stdout
    return out


def summary(path):
    data = json.loads(Path(path).read_text())
    assert all(np.isfinite(v) for v in data.values() if isinstance(v, float)), data
    return data


def test_analysis_commands(copy):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(copy / "my_model.keras")  # the README's "my_model.keras"
    out = run_group("analysis", copy)
    g = GROUPS["analysis"]
    assert "138,357,544" in out[g[0]]  # VGG16's parameters, the README's zoo table
    assert "momentum" in out[g[1]].lower()
    report = json.loads(out[g[2]])  # ResNet-50's parameters (the zoo table), at 160, batch 32
    assert (report["params"], report["input_shape"], report["batch_size"]) == (
        25_636_712, [160, 160, 3], 32)
    rows = list(csv.DictReader((copy / "zoo.csv").open()))
    from keras_classics.registry import list_models
    assert {r["name"] for r in rows} == set(list_models())
    assert (copy / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    # "854M naive, 271M reduced (slide: 358M)"
    assert "854,196,224 = 854M" in out[g[5]] and "271,351,808 = 271M (slide: 358M)" in out[g[5]]


@pytest.mark.slow
@pytest.mark.xdist_group("readme_training")  # with the tests of its model (conftest)
def test_training_export_and_finetune_commands(readme_training):
    copy, _ = readme_training  # the group's commands, run as written
    run = copy / "runs" / "train"
    s = summary(run / "summary.json")
    # README: "digits preset: 8 epochs, batch 64 ... ~98% test"
    assert (s["preset"], s["epochs"], s["batch_size"]) == ("digits", 8, 64)
    assert s["test_accuracy"] >= 0.95, s
    assert s["strategy"] == "default" and s["replicas"] == 1
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for split in ("train", "validation"):
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "logs" / split))
    from keras_classics import datasets
    model = keras.saving.load_model(run / "model.keras")
    x, y = next(iter(datasets.digits(32).pipeline("test", 64)))
    assert (np.asarray(model(x)).argmax(1) == y.numpy()).mean() > 0.9
    # "-> serving/digits/1/", then the second export of the same folder is version 2
    assert (copy / "serving" / "digits" / "1" / "saved_model.pb").exists()
    assert (copy / "serving" / "digits" / "2" / "saved_model.pb").exists()
    assert list((copy / "lite").glob("*.tflite"))
    ft = summary(copy / "runs" / "finetune" / "summary.json")
    assert ft["regime"] == "medium" and [p["phase"] for p in ft["phases"]] == ["head", "medium"]
    assert ft["test_accuracy"] > 0.6, ft  # three digit classes, chance is 1/3
    assert (copy / "serving" / "ft" / "1" / "saved_model.pb").exists()


@pytest.mark.slow
def test_googlenet_command(copy):
    run_group("googlenet", copy)
    s = summary(copy / "runs" / "googlenet" / "summary.json")
    model = keras.saving.load_model(copy / "runs" / "googlenet" / "model.keras")
    assert len(model.outputs) == 3 and s["image_size"] == 80  # the two auxiliary heads
    assert s["test_accuracy"] >= 0.95 - 0.1, s  # README: "~95% test" (0.956, 0.958 here)


def test_mirrored_command(copy):
    # --jit compiles the per-replica step: compiling the call around strategy.run failed on
    # the first step ("Trying to access resource ... replica_1 located in device CPU:1")
    run_group("mirrored", copy)
    s = summary(copy / "runs" / "mirrored" / "summary.json")
    assert (s["strategy"], s["replicas"], s["jit"]) == ("MirroredStrategy", 2, True)
    assert s["test_accuracy"] > 0.5, s  # 2 epochs of wrn_10_1 at 16x16: 0.72 here


def transfer_table():
    """The README's transfer table, read from the README: {setting: (mean, std)} of the test
    accuracy, named as the experiment prints them ("small (new head only)" -> "transfer, small")."""
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (small|medium|large|from scratch)\b[^|]*\| ([01]\.\d{3}) ± "
                      r"([01]\.\d{3}) \|[^|]*\|$", text, re.M)
    table = {(s if s == "from scratch" else f"transfer, {s}"): (float(a), float(sd))
             for s, a, sd in rows}
    assert len(table) == len(rows) == 4, rows
    return table


@pytest.mark.slow
def test_transfer_experiment_command(copy):
    out = run_group("transfer", copy)["python tools/finetune.py --experiment"]
    acc, per_seed = {}, {}
    for m in re.finditer(r"^\s+(.+?)\s+([01]\.\d{3}) ± [01]\.\d{3}\s+(.*)$", out, re.M):
        acc[m.group(1)] = float(m.group(2))
        per_seed[m.group(1)] = [float(a) for a in m.group(3).split()]
    stated = transfer_table()
    assert set(acc) == {"pretrain on 0-4", *stated}, out
    for setting, accs in per_seed.items():  # three seeds each, and the mean is theirs
        assert len(accs) == 3 and np.isfinite(accs).all(), out
        assert acc[setting] == pytest.approx(np.mean(accs), abs=1.1e-3)  # printed to 0.001
    assert acc["pretrain on 0-4"] > 0.95  # README: 0.989
    # the README's reading: a head on frozen features is clearly worse than fine-tuning;
    # fine-tuning is not behind training from scratch (ahead on average, not separable)
    best = max(acc["transfer, medium"], acc["transfer, large"])
    assert min(acc["transfer, medium"], acc["transfer, large"]) >= acc["transfer, small"] + 0.1
    assert best >= acc["from scratch"] - 0.05, acc
    # means of three seeds on 50 training images each, which move with the CPU's kernels and
    # the thread count (README: small 0.583-0.689 over four runs): within 0.08 of the README's
    # table, or two standard errors of a three-seed mean where the seeds spread more
    for setting, (figure, sd) in stated.items():
        tol = max(0.08, 2 * sd / np.sqrt(3))
        assert abs(acc[setting] - figure) <= tol, (setting, acc[setting], figure, tol)


def main_job_tables():
    """The README's two tables of the main job, read from the README: {configuration:
    (params, MACs in millions)} from the first, {configuration: validation accuracy} from
    each, named as results.csv names them ("conv1 7x7/2, conv3-5 384-384-256")."""
    text = (ROOT / "README.md").read_text().replace("×", "x").replace("–", "-")
    sizes = {c: (int(p.replace(",", "")), float(m)) for c, p, m in re.findall(
        r"^\| (conv1 [^|]+?) \| ([\d,]+) \| ([\d.]+)M \| [01]\.\d{4} ± ", text, re.M)}
    val = [{} for _ in range(2)]
    rows = re.findall(r"^\| (conv1 [^|]+?) \|[^\n]*?([01]\.\d{4}) ± [01]\.\d{4} \|[^\n]*$",
                      text, re.M)
    for i, (c, a) in enumerate(rows):
        val[i // 4][c] = float(a)
    assert len(sizes) == 4 and all(v.keys() == sizes.keys() for v in val), (sizes, val)
    return sizes, val


@pytest.mark.slow(seconds=500)
def test_main_job_command(copy):
    """The README's first command (its install is what .ci/run does), then its export and
    the visualization section's look inside its best model."""
    out = run_group("main_job", copy, timeout=2400)["python tools/tune.py zfnet"]
    project = copy / "runs" / "tune" / "zfnet"
    rows = list(csv.DictReader((project / "results.csv").open()))
    sizes, tables = main_job_tables()
    assert {r["label"] for r in rows} == set(sizes) and out.count("[trial ") == 4, out
    acc = {r["label"]: float(r["val_accuracy"]) for r in rows}
    for r in rows:
        # the architecture's figures are the README's; the accuracy is within 0.03 of the
        # README's two runs (they differ by up to 0.009, with the order of sums)
        assert (int(r["params"]), round(int(r["macs"]) / 1e6, 1)) == sizes[r["label"]]
        for table in tables:
            assert abs(acc[r["label"]] - table[r["label"]]) <= 0.03, (r["label"], acc, table)
        # every figure in results.csv is the one its seeds' training runs wrote
        runs = [summary(project / f"trial_{r['trial']}" / f"seed{i}" / "summary.json")
                for i in range(2)]
        val = [s["best_val_accuracy"] for s in runs]
        test = [s["test_accuracy"] for s in runs]
        assert [float(r[f"val_accuracy_seed{i}"]) for i in range(2)] == pytest.approx(val)
        assert float(r["val_accuracy"]) == pytest.approx(np.mean(val))
        assert float(r["val_accuracy_std"]) == pytest.approx(np.std(val, ddof=1))
        assert float(r["test_accuracy"]) == pytest.approx(np.mean(test))
        assert runs[0]["weights_checksum"] != runs[1]["weights_checksum"]  # two seeds trained
        assert (runs[0]["epochs"], runs[0]["image_size"]) == (5, 112)
        assert {s["precision"] for s in runs} == {fast_precision()}  # bfloat16 where it runs
        assert f"{float(r['val_accuracy']):.4f} ± {float(r['val_accuracy_std']):.4f}" in out
    # the README's reading: both 7x7/2 nets ahead of both 11x11/4 nets on average
    assert min(a for c, a in acc.items() if "7x7/2" in c) > \
        max(a for c, a in acc.items() if "11x11/4" in c), acc
    assert [float(r["val_accuracy"]) for r in rows] == sorted(acc.values(), reverse=True)
    assert "verdict: " in out and "Welch's one-sided t-test" in out
    # the best configuration's test accuracy (README: 0.982 and 0.971 in its two runs)
    report = json.loads((project / "report.json").read_text())
    assert report["best_test_accuracy"] == pytest.approx(float(rows[0]["test_accuracy"]))
    assert report["best_test_accuracy"] >= 0.95 and f"test accuracy " \
        f"{report['best_test_accuracy']:.4f}" in out
    # best/ is the best configuration's best seed, as trained in the search
    seed = int(np.argmax([float(rows[0][f"val_accuracy_seed{i}"]) for i in range(2)]))
    assert summary(project / "best" / "summary.json") == summary(
        project / f"trial_{rows[0]['trial']}" / f"seed{seed}" / "summary.json")
    for name in ("results.json", "best/model.keras"):  # what the README says it writes
        assert (project / name).stat().st_size > 0
    assert (project / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert (copy / "serving" / "zfnet" / "1" / "saved_model.pb").exists()
    # the visualization section's command on the best model: "writes the six PNG files"
    for name in ("filters", "feature_maps", "top_activations", "projections", "occlusion",
                 "grad_cam"):
        assert (copy / "viz" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
