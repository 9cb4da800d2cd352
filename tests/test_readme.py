"""The documentation, run as written (#19, #39). Every command line of the bash blocks of
README.md and docs/*.md is either run here — exactly as written, with bash, in a temporary copy
of the repository, the figures the pages state beside it checked — or listed in NOT_RUN with
the reason. A command that is neither fails ``test_every_documented_command_is_run_or_listed``.
Commands of one group share their copy, in order (the export commands use the model the
training command wrote), so a long command runs once and serves every check that needs it.

Every Python block of those pages runs too (``test_python_blocks``: a page's blocks in order,
in one fresh process, on small inputs), every rendered results table must be what its results
file renders to (``test_rendered_tables_match_their_results_files``), and the wheel installs
the ``keras-classics`` command into a fresh virtual environment (``test_wheel_...``)."""
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



def cpu_precision(cpuinfo="/proc/cpuinfo"):
    """What ``--precision auto`` must choose on this CPU (no GPU in the tests), read from the
    CPU's flags rather than from the code under test: mixed bfloat16 with AVX512-BF16 or AMX,
    else float32."""
    flags = set(open(cpuinfo).read().split())
    return "mixed_bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
       # `python` and `keras-classics` in a command are those of the interpreter running the
       # tests
       "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def page_name(page):
    return str(Path(page).relative_to(ROOT))


def readme_commands(pages=PAGES):
    """Every command line of the pages' bash blocks, continuation lines joined, comments kept
    (bash ignores them)."""
    lines = []
    for page in pages:
        for block in re.findall(r"```bash\n(.*?)```", Path(page).read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    lines.append(line)
    return lines


def command(line):
    """A command without its trailing comment, whitespace normalized: how it is named here."""
    return " ".join(re.split(r"\s+#\s", line, maxsplit=1)[0].split())


def command_lines():
    """{command: line}: each documented line by its command, and a line ``A && B`` (an install,
    then a job) also by its last part, the job, which a group may run alone."""
    lines = {}
    for line in readme_commands():
        lines.setdefault(command(line), line)
        if " && " in command(line):
            job = command(line).rsplit(" && ", 1)[1]
            lines.setdefault(job, f"{job}  # {line.strip()}")
    return lines


NETWORK = "network: downloads "
# command (as named by command()) -> why it is not run here
NOT_RUN = {
    "pip install -e . && python tools/tune.py zfnet":
        "the install is what .ci/run does; the job, `python tools/tune.py zfnet`, is run as "
        "written by test_main_job_command",
    "pip install -e '.[test]' && python -m pytest -q tests": "the suite itself (.ci/run runs it)",
    "pip install .": "installs the dependencies from the registry; test_wheel_installs_the_"
                     "command builds the wheel and installs it into a fresh venv",
    "pip install -e '.[torch]'": "the test extra installs torch (.ci/run)",
    "pip install -e '.[gpu]'": "no GPU here; tensorflow[and-cuda] is gigabytes of CUDA "
                               "libraries",
    "keras-classics train resnet50 --dataset cifar10 --epochs 90 --batch-size 256 --strategy "
    "mirrored --precision auto": NETWORK + "cifar10",
    "keras-classics train alexnet --dataset imagenette/160px-v2 --preset alexnet --image-size "
    "227 --augment crop,flip,pca": NETWORK + "imagenette",
    "keras-classics train resnet18 --strategy mirrored --cpu-replicas 2 --precision "
    "mixed_float16 --epochs 2 --batch-size 32 --output runs/float16":
        "float16 is emulated on CPUs (minutes to a quarter of an hour); tests/test_training.py "
        "runs the same path for one epoch of wrn_10_1",
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": "
    "{\"type\": \"worker\", \"index\": 0}}' keras-classics train resnet50 --dataset cifar10 "
    "--output /shared/run1": "a second host (tests/test_training.py runs two workers on "
                             "localhost) and network (cifar10)",
    "keras-classics export resnet50 --weights imagenet --labels imagenet --out "
    "serving/resnet50": NETWORK + "the ImageNet weights",
    "docker run -p 8501:8501 -p 8500:8500 -v $PWD/serving/digits:/models/digits -e "
    "MODEL_NAME=digits tensorflow/serving": "Docker and TensorFlow Serving's image",
    "curl -d \"{\\\"instances\\\": [{\\\"b64\\\": \\\"$(base64 -w0 digit.png)\\\"}]}\" "
    "localhost:8501/v1/models/digits:predict": "a running TensorFlow Serving (the docker "
                                               "command above)",
    "keras-classics tune zfnet --max-trials 16": "32 trainings, ~30 min",
    "keras-classics tune wide_resnet": "minutes; tests/test_tune.py runs each study's space at "
                                       "its extremes",
    "keras-classics tune resnet": "minutes; tests/test_tune.py runs each study's space at its "
                                  "extremes",
    "keras-classics tune vgg | densenet | norm | se": "a list of choices, not one command",
    "keras-classics tune resnet --dataset cifar10 --epochs 30 --strategy mirrored --tuner "
    "bayesian": NETWORK + "cifar10",
    "export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000":
        "a second host (tests/test_tune.py runs a chief and two workers on localhost)",
    "KERASTUNER_TUNER_ID=chief keras-classics tune wide_resnet --directory /shared/tune &":
        "a second host (as above)",
    "KERASTUNER_TUNER_ID=tuner0 keras-classics tune wide_resnet --directory /shared/tune":
        "a second host (as above)",
    "keras-classics finetune resnet50 --weights imagenet --dataset imagenette/160px-v2 "
    "--image-size 160": NETWORK + "the ImageNet weights and imagenette",
    "keras-classics visualize alexnet_owt --weights imagenet --image cat.jpg --out "
    "viz/alexnet/": NETWORK + "the ImageNet weights",
}

GROUPS = {
    # the README's first command; the same job through the installed command, which finds the
    # finished search (same settings) and trains nothing; its export; a look inside its best
    # model (docs/visualization.md)
    "main_job": ["python tools/tune.py zfnet", "keras-classics tune zfnet",
                 "keras-classics tune zfnet --export serving/zfnet",
                 "keras-classics visualize runs/tune/zfnet/best/model.keras --dataset digits "
                 "--out viz/"],
    "analysis": ["keras-classics analyze vgg16",
                 "keras-classics analyze vgg16 --train momentum",
                 "keras-classics analyze resnet50 --input-size 160 --batch-size 32 --format json",
                 "keras-classics analyze my_model.keras --input-size 64",
                 "keras-classics analyze --zoo --plot zoo.png",
                 "keras-classics analyze --inception-example"],
    "train_export_finetune": [
        "keras-classics train resnet18",
        "keras-classics export runs/train/model.keras --out serving/digits",
        "keras-classics export runs/train/model.keras --out lite/ --format tflite",
        "keras-classics export runs/train/model.keras --out serving/digits --max-pixels 4000000",
        "keras-classics finetune runs/train/model.keras --dataset path/to/class_folders "
        "--regime medium --export serving/ft"],
    "googlenet": ["keras-classics train googlenet_bn --image-size 80 --set aux_logits=true "
                  "--epochs 5 --output runs/googlenet"],
    "mirrored": ["keras-classics train wrn_10_1 --epochs 2 --batch-size 32 --image-size 16 "
                 "--strategy mirrored --cpu-replicas 2 --jit --output runs/mirrored"],
    "transfer": ["keras-classics finetune --experiment"],
    "backends": ['KERAS_BACKEND=jax python -c "import keras_classics as kc; '
                 'print(kc.GoogLeNet().count_params())"'],
}


def test_every_documented_command_is_run_or_listed():
    run = {c for group in GROUPS.values() for c in group}
    named = [command(line) for line in readme_commands()]
    unknown = [c for c in named if c not in run and c not in NOT_RUN]
    assert not unknown, f"documented commands neither run by this test nor listed in " \
                        f"NOT_RUN: {unknown}"
    stale = sorted((run | set(NOT_RUN)) - set(command_lines()))
    assert not stale, f"commands of this test that are no longer documented: {stale}"
    # the README starts with the two commands: the ZFNet study, and the tests
    first = [command(line) for line in readme_commands([ROOT / "README.md"])[:2]]
    assert first[0].endswith("python tools/tune.py zfnet") and first[1].endswith(
        "python -m pytest -q tests"), first


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
    """Run the group's documented lines (comments included) with bash in ``cwd``; each must
    exit 0. Returns {command: stdout}."""
    lines = command_lines()
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
    keras.Model(inputs, outputs).save(copy / "my_model.keras")  # docs/analysis.md's "my_model.keras"
    out = run_group("analysis", copy)
    g = GROUPS["analysis"]
    assert "138,357,544" in out[g[0]]  # VGG16's parameters, the zoo table of docs/models.md
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


def test_backends_command(copy):
    """docs/models.md#backends: GoogLeNet built under JAX, TensorFlow's parameter count."""
    import keras_classics as kc

    out = run_group("backends", copy)[GROUPS["backends"][0]]
    assert out.strip() == str(kc.GoogLeNet().count_params()) == "6998552"


@pytest.mark.slow
@pytest.mark.xdist_group("readme_training")  # with the tests of its model (conftest)
def test_training_export_and_finetune_commands(readme_training):
    copy, _ = readme_training  # the group's commands, run as written
    run = copy / "runs" / "train"
    s = summary(run / "summary.json")
    # docs/training.md: "digits preset: 8 epochs, batch 64 ... ~98% test"
    assert (s["preset"], s["epochs"], s["batch_size"]) == ("digits", 8, 64)
    assert s["test_accuracy"] >= 0.95, s
    assert s["strategy"] == "default" and s["replicas"] == 1
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for split in ("train", "validation"):
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "logs" / split))
    import tensorflow as tf

    from keras_classics import datasets
    model = keras.saving.load_model(run / "model.keras")
    x, y = next(iter(datasets.digits(32).pipeline("test", 64)))
    assert (np.asarray(model(x)).argmax(1) == y.numpy()).mean() > 0.9
    # "-> serving/digits/1/" serves the trained model: held-out digits, sent as PNG bytes
    data = datasets.digits(32)
    pngs = [tf.io.encode_png(np.repeat(np.round(i), 3, -1).astype(np.uint8)).numpy()
            for i in data.test[0][:64]]
    served = tf.saved_model.load(str(copy / "serving" / "digits" / "1")).signatures[
        "serving_default"](images=tf.constant(pngs))
    assert (served["classes"][:, 0].numpy() == np.asarray(model(x)).argmax(1)).mean() >= 0.95
    assert (served["classes"][:, 0].numpy() == data.test[1][:64]).mean() > 0.9
    # then the second export of the same folder is version 2
    # "--max-pixels 4000000": version 2 refuses an image over it, version 1 (50M) serves it
    big = tf.constant([tf.io.encode_png(np.zeros((2000, 2001, 3), np.uint8)).numpy()])
    for version, allowed in (("1", True), ("2", False)):
        served = tf.saved_model.load(str(copy / "serving" / "digits" / version)).signatures[
            "serving_default"]
        if allowed:
            assert served(images=big)["classes"].shape == (1, 5)
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match="at most 4000000 pixels"):
                served(images=big)
    # lite/model.tflite against the model: test_export.py (the same fixture)
    assert [p.name for p in (copy / "lite").glob("*.tflite")] == ["model.tflite"]
    ft = summary(copy / "runs" / "finetune" / "summary.json")
    assert ft["regime"] == "medium" and [p["phase"] for p in ft["phases"]] == ["head", "medium"]
    assert ft["test_accuracy"] > 0.6, ft  # three digit classes, chance is 1/3
    # "--export serving/ft" serves the fine-tuned model, with the folders' names as labels
    folder = copy / "path" / "to" / "class_folders"
    files = sorted(folder.glob("digit*/*.png"))
    served = tf.saved_model.load(str(copy / "serving" / "ft" / "1")).signatures[
        "serving_default"](images=tf.constant([f.read_bytes() for f in files]))
    labels = [l.decode() for l in served["labels"][:, 0].numpy()]
    assert set(labels) <= {"digit0", "digit1", "digit2"}
    assert np.mean([l == f.parent.name for l, f in zip(labels, files)]) > 0.6


@pytest.mark.slow
def test_googlenet_command(copy):
    run_group("googlenet", copy)
    s = summary(copy / "runs" / "googlenet" / "summary.json")
    model = keras.saving.load_model(copy / "runs" / "googlenet" / "model.keras")
    assert len(model.outputs) == 3 and s["image_size"] == 80  # the two auxiliary heads
    assert s["test_accuracy"] >= 0.95 - 0.1, s  # docs/training.md: "~95% test" (0.956, 0.958 in our runs)


def test_mirrored_command(copy):
    # --jit compiles the per-replica step: compiling the call around strategy.run failed on
    # the first step ("Trying to access resource ... replica_1 located in device CPU:1")
    run_group("mirrored", copy)
    s = summary(copy / "runs" / "mirrored" / "summary.json")
    assert (s["strategy"], s["replicas"], s["jit"]) == ("MirroredStrategy", 2, True)
    assert s["test_accuracy"] > 0.5, s  # 2 epochs of wrn_10_1 at 16x16: 0.72 here


def results_files(study):
    """The committed results files of ``study`` (docs/results/STUDY.MACHINE.json), one per
    machine kind; at least one."""
    files = sorted((ROOT / "docs" / "results").glob(f"{study}.*.json"))
    assert files, f"no results file for {study} in docs/results"
    return [json.loads(f.read_text()) for f in files]


def transfer_table():
    """The transfer experiment's committed results (docs/transfer.md renders them), one
    table per machine: [{setting: (mean, std)}] of the test accuracy."""
    return [{row["setting"]: (row["test_accuracy"], row["std"]) for row in result["rows"]
             if row["setting"] != "pretrain on 0-4"} for result in results_files("transfer-digits")]


@pytest.mark.slow
def test_transfer_experiment_command(copy):
    out = run_group("transfer", copy)["keras-classics finetune --experiment"]
    acc, per_seed = {}, {}
    for m in re.finditer(r"^\s+(.+?)\s+([01]\.\d{3}) ± [01]\.\d{3}\s+(.*)$", out, re.M):
        acc[m.group(1)] = float(m.group(2))
        per_seed[m.group(1)] = [float(a) for a in m.group(3).split()]
    tables = transfer_table()
    for stated in tables:
        assert set(acc) == {"pretrain on 0-4", *stated}, out
    for setting, accs in per_seed.items():  # three seeds each, and the mean is theirs
        assert len(accs) == 3 and np.isfinite(accs).all(), out
        assert acc[setting] == pytest.approx(np.mean(accs), abs=1.1e-3)  # printed to 0.001
    assert acc["pretrain on 0-4"] > 0.95  # 0.98-0.99 in the committed runs
    # docs/transfer.md's reading: a head on frozen features is clearly worse than fine-tuning;
    # fine-tuning is not behind training from scratch (ahead on average, not separable)
    best = max(acc["transfer, medium"], acc["transfer, large"])
    assert min(acc["transfer, medium"], acc["transfer, large"]) >= acc["transfer, small"] + 0.1
    assert best >= acc["from scratch"] - 0.05, acc
    # means of three seeds on 50 training images each, which move with the CPU's kernels and
    # the thread count (small moved by 0.1 over four runs on two machines): within 0.08 of
    # each committed table, or two standard errors of a three-seed mean where its seeds spread
    # more
    for stated in tables:
        for setting, (figure, sd) in stated.items():
            tol = max(0.08, 2 * sd / np.sqrt(3))
            assert abs(acc[setting] - figure) <= tol, (setting, acc[setting], figure, tol)
    # what the command wrote is what docs/transfer.md renders from (same keys, finite figures)
    written = json.loads((copy / "runs" / "finetune" / "results.json").read_text())
    assert [r["setting"] for r in written["rows"]] == list(acc) and written["run"]["command"] \
        == "keras-classics finetune --experiment"
    assert [r["test_accuracy"] for r in written["rows"]] == pytest.approx(list(acc.values()),
                                                                        abs=5.1e-4)


def main_job_tables():
    """The ZFNet study's committed results (docs/tuning.md renders them): {configuration:
    (params, MACs in millions)}, the same in every file, and one {configuration: validation
    accuracy} per machine."""
    reports = results_files("tune-zfnet")
    sizes = {r["label"]: (r["params"], round(r["macs"] / 1e6, 1)) for r in reports[0]["trials"]}
    val = []
    for report in reports:
        assert {r["label"]: (r["params"], round(r["macs"] / 1e6, 1))
                for r in report["trials"]} == sizes
        val.append({r["label"]: r["val_accuracy"] for r in report["trials"]})
    assert len(sizes) == 4, sizes
    return sizes, val


@pytest.mark.slow(seconds=500)
def test_main_job_command(copy):
    """The README's first command (its install is what .ci/run does), the same through the
    installed command, its export and the visualization page's look inside its best model."""
    outs = run_group("main_job", copy, timeout=2400)
    out = outs["python tools/tune.py zfnet"]
    project = copy / "runs" / "tune" / "zfnet"
    rows = list(csv.DictReader((project / "results.csv").open()))
    sizes, tables = main_job_tables()
    assert {r["label"] for r in rows} == set(sizes) and out.count("[trial ") == 4, out
    acc = {r["label"]: float(r["val_accuracy"]) for r in rows}
    for r in rows:
        # the architecture's figures are the committed results'; the accuracy is within 0.03
        # of each committed run (runs of one machine differed by up to 0.009, with the order of
        # sums)
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
        assert {s["precision"] for s in runs} == {cpu_precision()}  # bfloat16 where it runs
        assert f"{float(r['val_accuracy']):.4f} ± {float(r['val_accuracy_std']):.4f}" in out
    # the docs' reading: both 7x7/2 nets ahead of both 11x11/4 nets on average
    assert min(a for c, a in acc.items() if "7x7/2" in c) > \
        max(a for c, a in acc.items() if "11x11/4" in c), acc
    assert [float(r["val_accuracy"]) for r in rows] == sorted(acc.values(), reverse=True)
    assert "verdict: " in out and "Welch's one-sided t-test" in out
    # the best configuration's test accuracy (0.97-0.98 in the committed runs)
    report = json.loads((project / "report.json").read_text())
    # the report is what docs/tuning.md renders: the leaderboard, and the command as typed
    assert [r["label"] for r in report["trials"]] == [r["label"] for r in rows]
    # (each rerun of the finished search rewrites it: the last was the export's)
    assert report["run"]["command"] == "keras-classics tune zfnet --export serving/zfnet"
    # the installed command found the finished search: no trial trained again, same board
    again = outs["keras-classics tune zfnet"]
    assert again.count("[trial ") == 0 and \
        again[again.index("Leaderboard"):again.index("wrote")] == \
        out[out.index("Leaderboard"):out.index("wrote")]
    assert report["best_test_accuracy"] == pytest.approx(float(rows[0]["test_accuracy"]))
    assert report["best_test_accuracy"] >= 0.95 and f"test accuracy " \
        f"{report['best_test_accuracy']:.4f}" in out
    # best/ is the best configuration's best seed, as trained in the search
    seed = int(np.argmax([float(rows[0][f"val_accuracy_seed{i}"]) for i in range(2)]))
    assert summary(project / "best" / "summary.json") == summary(
        project / f"trial_{rows[0]['trial']}" / f"seed{seed}" / "summary.json")
    for name in ("results.json", "best/model.keras"):  # what docs/tuning.md says it writes
        assert (project / name).stat().st_size > 0
    assert (project / "results.png").read_bytes()[:4] == b"\x89PNG"
    # the export serves the best model: its top class for held-out digits, sent as PNG bytes
    import tensorflow as tf

    from keras_classics import datasets
    data = datasets.digits(32)
    pngs = [tf.io.encode_png(np.repeat(np.round(i), 3, -1).astype(np.uint8)).numpy()
            for i in data.test[0][:64]]
    served = tf.saved_model.load(str(copy / "serving" / "zfnet" / "1")).signatures[
        "serving_default"](images=tf.constant(pngs))
    assert (served["classes"][:, 0].numpy() == data.test[1][:64]).mean() > 0.9
    # what the best model computes in (#40): the precision --precision auto must pick here
    best = keras.saving.load_model(project / "best" / "model.keras")
    convs = [l for l in best.layers if isinstance(l, keras.layers.Conv2D)]
    assert {l.compute_dtype for l in convs} == {"bfloat16" if cpu_precision() ==
                                                "mixed_bfloat16" else "float32"}
    # the visualization section's command on the best model: "writes the six PNG files"
    for name in ("filters", "feature_maps", "top_activations", "projections", "occlusion",
                 "grad_cam"):
        assert (copy / "viz" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


# --- every Python block of the pages runs -------------------------------------------------

def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", Path(page).read_text(), re.S)


# (page, block number from 1) -> why it is not run here; none today: the blocks that use
# weights="imagenet" get ResNet-50's files from a loopback server (see PREAMBLE)
PY_NOT_RUN = {}

# Run before a page's blocks, in a namespace of its own: the test's stand-in for the network.
# Keras' published ResNet-50 files, written in the published layout by the code that wrote
# them (conftest.published), are served on loopback; only the URLs and hashes of the record
# differ, so download, hash check and loading are the real ones.
PREAMBLE = """
import dataclasses, sys
from keras_classics import weights
record = weights.SOURCES["resnet50"]
weights.SOURCES["resnet50"] = dataclasses.replace(
    record, url=sys.argv[2], file_hash=sys.argv[3], notop_url=sys.argv[4], notop_hash=sys.argv[5])
"""

RUNNER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
exec(compile(PREAMBLE, "preamble", "exec"), {"__name__": "preamble"})
namespace = {"__name__": "__main__"}
for i, source in enumerate(blocks, 1):
    print(f"=== block {i}", flush=True)
    exec(compile(source, f"{sys.argv[6]}, python block {i}", "exec"), namespace)
print("=== done", flush=True)
""".replace("PREAMBLE", repr(PREAMBLE))

# what a page's blocks print, beside exiting 0: {page: [regex that must match stdout]}
PY_EXPECT = {
    "README.md": [r"\[\('n\d{8}', '[^']+', [\d.e-]+\), \('n\d{8}', '[^']+', [\d.e-]+\), "
                  r"\('n\d{8}'",                                   # the top 3 classes
                  r"\n\(1, 2048\)\n",                               # the features
                  r"\nsmall \d\.\d+\n",                              # 14 images a class: small
                  r"\n\[\[\d+ \d+\]\] \[\[[\d. e+-]+\]\]\n"],      # top 2 from the SavedModel
    "docs/weights.md": [r"\[\[\('n\d{8}', '[^']+', [\d.e-]+\)", r"caffe"],
    "docs/models.md": [r"\d+ He, Zhang, Ren & Sun"],
    "docs/training.md": [r"\n\d\.\d+ runs/python_train\n"],
    "docs/transfer.md": [r"medium \['head', 'medium'\] \d\.\d+"],
    "docs/serving.md": [r"serving/python_demo/\d+ \[\[b'(cat|dog|bird)' b'(cat|dog|bird)'\]\]"],
    "docs/visualization.md": [r"\S+ \(112, 112\) \(\d+, \d+\) \d\.\d+"],
}


def pages_with_python():
    marks = {"README.md": pytest.mark.slow(seconds=150)}  # fine-tunes and exports ResNet-50
    return [pytest.param(page_name(p), marks=marks.get(page_name(p), ()), id=page_name(p))
            for p in PAGES if python_blocks(p)]


def test_every_page_with_python_is_checked():
    assert {page_name(p) for p in PAGES if python_blocks(p)} == set(PY_EXPECT)


@pytest.mark.parametrize("page", pages_with_python())
def test_python_blocks(page, tmp_path, http_root, request):
    """A page's Python blocks in order, in one fresh process (as a reader pastes them into one
    session), in an empty folder holding the files they name: ``cat.jpg`` (a real photograph,
    scikit-learn's sample image) and ``flowers/`` (three classes of digit images)."""
    import hashlib

    from sklearn.datasets import load_sample_image

    from conftest import digits_folder

    blocks = python_blocks(ROOT / page)
    skipped = [i for i in range(1, len(blocks) + 1) if (page, i) in PY_NOT_RUN]
    assert not skipped or all(PY_NOT_RUN[(page, i)] for i in skipped)
    work = tmp_path / "work"
    work.mkdir()
    keras.utils.save_img(work / "cat.jpg", load_sample_image("china.jpg")[::2, ::2])
    digits_folder(work / "flowers", classes=(0, 1, 2), per_class=20)
    base, root = http_root
    args = ["-"] * 4
    if any('weights="imagenet"' in b for b in blocks):  # the published files, once written
        published, args = request.getfixturevalue("published"), []
        for top in (True, False):
            path = published("resnet50", top)
            shutil.copyfile(path, root / path.name)
            args += [f"{base}/{path.name}", hashlib.md5(path.read_bytes()).hexdigest()]
    (tmp_path / "blocks.json").write_text(json.dumps(
        [b if i not in skipped else "" for i, b in enumerate(blocks, 1)]))
    env = {**ENV, "KERAS_HOME": str(tmp_path / "keras_home")}
    res = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "blocks.json"), *args,
                          page], cwd=work, env=env, capture_output=True, text=True,
                         timeout=1200)
    assert res.returncode == 0 and "=== done" in res.stdout, \
        f"{page}: {res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    for pattern in PY_EXPECT[page]:
        assert re.search(pattern, res.stdout), f"{page}: {pattern!r} not in\n{res.stdout}"


# --- every rendered results table is what its results file renders to -----------------------

def render_docs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "tools" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rendered_tables_match_their_results_files():
    """Each block between ``<!-- rendered: COMMAND -->`` and ``<!-- end rendered -->`` is the
    output of its COMMAND (a tool rendering a results file it wrote), headed by the command,
    the machine and the date; every results file in docs/results is rendered somewhere."""
    rd = render_docs()
    rendered = []
    for page in PAGES:
        for cmd, body in rd.blocks(page.read_text()):
            assert body == rd.render(cmd), f"{page_name(page)}: the block of {cmd!r} is not " \
                                           "what it renders to: run python tools/render_docs.py"
            assert re.match(r"`[^`]+` on .+, \d+ cores.*, \d{4}-\d\d-\d\d\n", body), body[:300]
            rendered.append(cmd)
    files = {f"docs/results/{f.name}" for f in (ROOT / "docs" / "results").glob("*.json")}
    named = {f for f in files if any(f in c for c in rendered)}
    assert files and named == files, f"results files no page renders: {sorted(files - named)}"


# a commit hash in prose (7-12 hex digits with a letter and a digit), not a file name's
# hash part ("resnet50-0676ba61.pth")
COMMIT = r"(?<![-\w/.])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,12}(?![-\w]|\.\w)"


def test_docs_have_no_session_history():
    """The front page and the docs hold no suite timings, commit hashes or paths outside the
    repository (that is what git log and CHANGELOG.md are for)."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text, page
        hashes = re.findall(COMMIT, text)
        assert not hashes, (page_name(page), hashes)
        assert not re.search(r"\d+ passed|pytest \d+ min|suite (took|ran in)", text), page
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):  # relative links resolve
            if not link.startswith("http"):
                assert (page.parent / link).exists(), (page_name(page), link)


# --- the wheel gives a working command --------------------------------------------------------

@pytest.mark.slow(seconds=60)
def test_wheel_installs_the_command(tmp_path):
    """``pip install .`` as a user does it, without the editable install's checkout: the wheel
    built from a copy, installed into a fresh virtual environment and run from outside any
    checkout. The dependencies are those installed for the tests, seen through a ``.pth``
    file listing their folders (whose own ``.pth`` files, the editable install's among them,
    are not run: only the wheel provides keras_classics there)."""
    import importlib.util
    import site

    src = copy_repository(tmp_path / "src")
    dist = tmp_path / "dist"
    isolation = [] if importlib.util.find_spec("setuptools") and importlib.util.find_spec(
        "wheel") else ["--use-pep517"]  # else pip fetches the build backend
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            *(["--no-build-isolation"] if not isolation else isolation),
                            "-w", str(dist), str(src)], timeout=600, capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel, = dist.glob("keras_classics-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python, script = venv / "bin" / "python", venv / "bin" / "keras-classics"
    packages = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if os.path.isdir(p)]
    Path(packages, "test_dependencies.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=600, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*argv):
        res = subprocess.run([str(a) for a in argv], cwd=elsewhere, env=ENV,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, (argv, res.stdout[-2000:], res.stderr[-3000:])
        return res.stdout

    from keras_classics.cli.main import COMMANDS

    overview = run(script, "--help")
    assert all(f"  {name} " in overview for name in COMMANDS), overview
    assert "138,357,544" in run(script, "zoo", "vgg16")  # VGG16's parameters
    # each command's --help, the package and its data from the venv (not this checkout)
    probe = run(python, "-c", """
import contextlib, importlib.metadata as md, io, json
import numpy as np
import keras_classics, keras_classics_cli
from keras_classics import recipes, decode_predictions
from keras_classics.cli.main import COMMANDS, main
helps = {}
for name in COMMANDS:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([name, "--help"])
        except SystemExit as exit_:
            assert exit_.code == 0, (name, exit_.code)
    helps[name] = out.getvalue()
meta = md.metadata("keras_classics")
print(json.dumps({"files": [keras_classics.__file__, keras_classics_cli.__file__,
                            recipes.__file__],
                  "decoded": decode_predictions(np.eye(1000)[[1]], top=1)[0][0][1],
                  "helps": helps, "requires_python": meta["Requires-Python"],
                  "license": meta["License"], "summary": meta["Summary"],
                  "urls": meta.get_all("Project-URL"),
                  "scripts": [e.name for e in md.entry_points(group="console_scripts")
                              if e.value.startswith("keras_classics")]}))
""")
    info = json.loads(probe.strip().splitlines()[-1])
    assert all(f.startswith(str(venv)) for f in info["files"]), info["files"]
    assert info["decoded"] == "goldfish"  # the class index ships in the wheel
    for name, text in info["helps"].items():
        assert text.startswith(f"usage: keras-classics {name}"), (name, text[:200])
    assert info["scripts"] == ["keras-classics"] and info["requires_python"] == ">=3.10"
    assert info["license"] == "Apache-2.0" and info["summary"] and info["urls"]
