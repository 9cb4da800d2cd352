"""Bad input: a ValueError naming the model, the value given and what is allowed, raised before
TensorFlow builds anything."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras_classics as kc
from conftest import call_tool


def test_below_minimum_size():
    with pytest.raises(ValueError, match=r"vgg16 needs inputs of at least 32x32, got 16x16"):
        kc.VGG16(include_top=False, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match=r"alexnet needs inputs of at least 67x67, got 66x70"):
        kc.AlexNet(include_top=False, input_shape=(66, 70, 3))
    with pytest.raises(ValueError, match=r"googlenet needs inputs of at least 79x79"):
        kc.GoogLeNet(aux_logits=True, input_shape=(64, 64, 3))


def test_wrong_channel_count_for_imagenet_weights():
    with pytest.raises(ValueError, match="resnet50: weights='imagenet' needs 3 input channels, "
                                         "got 1"):
        kc.ResNet50(weights="imagenet", input_shape=(224, 224, 1))


def test_top_with_weights_needs_the_weights_input_size(tmp_path):
    weights = tmp_path / "vgg.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"vgg16: include_top=True with pretrained weights "
                                         r"needs input_shape \(224, 224, 3\), got \(128, 128, 3\)"):
        kc.VGG16(weights=str(weights), input_shape=(128, 128, 3))


def test_flattening_top_needs_a_fixed_size():
    with pytest.raises(ValueError, match="alexnet: include_top=True flattens"):
        kc.AlexNet(input_shape=(None, None, 3))


@pytest.mark.parametrize("builder", [kc.VGG16, kc.ResNet50, kc.DenseNet121, kc.GoogLeNet,
                                     kc.AlexNet, kc.WideResNet])
def test_unknown_norm(builder):
    with pytest.raises(ValueError, match=r"unknown norm 'batchnorm'; allowed: 'batch', "
                                         r"'group', 'layer', 'instance', None"):
        builder(norm="batchnorm")


@pytest.mark.parametrize("kwargs,match", [
    (dict(pooling="mean", include_top=False), "pooling must be None, 'avg' or 'max', got 'mean'"),
    (dict(classes=0), "classes must be a positive int, got 0"),
    (dict(input_shape=(224, 224)), r"input_shape must be \(height, width, channels\)"),
    (dict(weights="missing.weights.h5"), "weights file 'missing.weights.h5' does not exist"),
    (dict(weights="model.pt"),
     "weights must be None, 'imagenet' or a path ending in .weights.h5, .h5, .keras"),
])
def test_bad_common_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.ResNet18(**kwargs)


@pytest.mark.parametrize("name,match", [
    ("wrn_27_10", r"wrn_27_10: depth must be 6n\+4"),
    ("densenet_bc_101_12", r"densenet_bc_101_12: depth must be 6n\+4"),
    ("preact_resnet100", r"preact_resnet100: depth must be 9n\+2"),
])
def test_bad_pattern_depths(name, match):
    with pytest.raises(ValueError, match=match):
        kc.get_model(name)


def test_family_specific_arguments():
    with pytest.raises(ValueError, match="alexnet: groups must be 1"):
        kc.AlexNet(groups=4)
    with pytest.raises(ValueError, match="vgg: unknown config 'F'; allowed: A, A-LRN, B, C, D, E"):
        kc.VGG("F")
    with pytest.raises(ValueError, match="resnet18: groups/base_width need a bottleneck depth"):
        kc.ResNet(18, groups=32)
    with pytest.raises(ValueError, match=r"resnet42: depth must be one of \[18, 34"):
        kc.ResNet(42)
    with pytest.raises(ValueError, match="aux_logits=True needs include_top=True"):
        kc.GoogLeNet(aux_logits=True, include_top=False)


def test_weights_of_another_architecture_raise(tmp_path):
    path = tmp_path / "r18.weights.h5"
    kc.ResNet18(include_top=False, input_shape=(32, 32, 3)).save_weights(path)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="resnet34: could not load"):
        kc.ResNet34(include_top=False, input_shape=(32, 32, 3), weights=str(path))


# ---- the commands: one line, not a traceback -------------------------------------------------
TOOLS = Path(__file__).resolve().parents[1] / "tools"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def tool(name, *args, preexec_fn=None):
    """``python tools/NAME.py ARGS`` as a process: ``(exit code, its error lines)`` (TensorFlow's
    C++ start-up lines, which it prints before its logging is set up, left out)."""
    res = subprocess.run([sys.executable, str(TOOLS / f"{name}.py"), *map(str, args)],
                         capture_output=True, text=True, env=ENV, timeout=900,
                         preexec_fn=preexec_fn)
    lines = [line for line in res.stderr.splitlines()
             if not re.match(r"[IWE]0000 |WARNING: All log messages before absl", line)]
    return res.returncode, lines


def test_finetune_divergence_is_one_line_exit_3(tmp_path):
    """--lr 1e38: TrainingDiverged was a traceback from finetune (train printed one line)."""
    code, err = call_tool_lines("finetune", "wrn_10_1", "--image-size", 16, "--per-class", 5,
                                "--epochs", 1, "--lr", 1e38, "--output", tmp_path / "ft")
    assert code == 3 and len(err) == 1, err
    assert re.match("finetune.py: error: the (validation )?loss became", err[0]), err
    assert not (tmp_path / "ft" / "model.keras").exists()


def call_tool_lines(name, *args):
    res = call_tool(name, *args)
    return res.returncode, [line for line in res.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("name,args", [
    ("train", ["wrn_10_1", "--epochs", 1, "--image-size", 16, "--output", "{out}"]),
    ("tune", ["zfnet", "--max-trials", 1, "--epochs", 1, "--directory", "{out}"]),
    ("visualize", ["zfnet", "--image-size", 64, "--out", "{out}"]),
])
def test_an_unwritable_output_is_one_line(name, args):
    """/sys refuses new directories (EPERM, as root too): the commands say so in one line,
    naming the path, exit 1."""
    out = "/sys/keras_classics_test/run"
    code, err = call_tool_lines(name, *[a.format(out=out) if isinstance(a, str) else a
                                        for a in args])
    assert code == 1 and len(err) == 1, err
    assert re.match(rf"{name}.py: error: (Operation not permitted|Read-only file system|"
                    r"Permission denied): /sys/keras_classics_test", err[0]), err
    assert not os.path.exists("/sys/keras_classics_test")


def test_a_full_disk_during_training_is_one_line_and_leaves_no_half_checkpoint(tmp_path):
    """A file-size limit makes every write past 20 KB fail (EFBIG) as a full disk does: the
    first checkpoint cannot be written. One line naming the file, exit 1, no half-written
    ckpt-N_temp left; the same command without the limit then trains."""
    import resource
    import signal

    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    args = ["wrn_10_1", "--epochs", 1, "--batch-size", 32, "--image-size", 16, "--output",
            tmp_path / "run"]
    code, err = tool("train", *args, preexec_fn=full_disk)
    assert code == 1 and len(err) == 1, err
    assert re.match(r"train.py: error: .*/run/checkpoints/ckpt-20_temp/.*File too large", err[0])
    assert os.listdir(tmp_path / "run" / "checkpoints") == []
    code, err = tool("train", *args)
    assert code == 0, err
    assert (tmp_path / "run" / "model.keras").exists()
