"""Transfer learning: stages by name, the regimes, the offline experiment, bad input."""
import json

import keras
import tensorflow as tf
import numpy as np
import pytest

import keras_classics as kc
from keras_classics import datasets, transfer
from conftest import call_tool


@pytest.mark.parametrize("name,stages", [
    ("resnet18", [1, 2, 3, 4, 5]), ("vgg11", [1, 2, 3, 4, 5]),
    ("densenet121", [1, 2, 3, 4, 5]), ("googlenet", [1, 2, 3, 4, 5]),
    ("alexnet", [1, 2, 3, 4, 5]), ("wrn_16_1", [1, 2, 3, 4]),
])
def test_every_family_has_named_stages(name, stages):
    info = kc.model_info(name)
    backbone = info.build(include_top=False, pooling="avg")
    found = transfer.backbone_stages(backbone)
    assert sorted(found) == stages
    assert sum(len(v) for v in found.values()) == sum(1 for l in backbone.layers if l.weights)


def test_regimes_freeze_by_stage_and_bn_stays_in_inference_mode():
    backbone = kc.ResNet18(include_top=False, pooling="avg", input_shape=(32, 32, 3))
    model = transfer.transfer_model(backbone, 5, trainable_stages={4, 5})
    trainable = {l.name for l in backbone.layers if l.trainable and l.weights}
    assert trainable and all(n.startswith(("conv4", "conv5")) for n in trainable)
    assert "conv4_block1_1_conv" in trainable and "conv3_block1_1_conv" not in trainable
    assert not any(isinstance(backbone.get_layer(n), keras.layers.BatchNormalization)
                   for n in trainable)
    assert model.get_layer("predictions").trainable
    bn = backbone.get_layer("conv5_block2_2_bn")
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    before = np.asarray(bn.moving_mean).copy()
    model(x, training=True)  # training=True outside: the backbone still runs in inference
    np.testing.assert_array_equal(bn.moving_mean, before)
    assert transfer.choose_regime("auto", 10) == "small"
    assert transfer.choose_regime("auto", 100) == "medium"
    assert transfer.choose_regime("auto", 5000) == "large"


def test_fine_tune_two_phases_and_lower_lr(tmp_path):
    digits = datasets.digits(32)
    source = datasets.subset(digits, [0, 1, 2])
    pre = kc.training.train("wrn_10_1", data=source, epochs=1, batch_size=32,
                            output=str(tmp_path / "pre"), verbose=0)
    target = datasets.subset(digits, [3, 4], per_class=20)
    res = transfer.fine_tune(str(tmp_path / "pre" / "model.keras"), data=target,
                             regime="large", epochs=1, lr=1e-2, batch_size=10,
                             output=str(tmp_path / "ft"))
    head, full = res["phases"]
    assert (head["phase"], full["phase"]) == ("head", "large")
    assert full["lr"] == pytest.approx(head["lr"] / 100)
    assert full["trainable_params"] > head["trainable_params"]
    assert res["model_object"].output_shape == (None, 2)
    saved = json.loads((tmp_path / "pre" / "summary.json").read_text())
    assert saved["test_accuracy"] == pre.summary["test_accuracy"]
    # a rerun with other settings is refused, naming them, before anything is trained
    with pytest.raises(kc.training.RunMismatch, match="preset.epochs: 1 in the checkpoint, 2"):
        transfer.fine_tune(str(tmp_path / "pre" / "model.keras"), data=target, regime="large",
                           epochs=2, lr=1e-2, batch_size=10, output=str(tmp_path / "ft"))
    # --precision: the float32 backbone is rebuilt under the policy, the new head in float32
    mixed = transfer.fine_tune(str(tmp_path / "pre" / "model.keras"), data=target,
                               regime="small", epochs=1, lr=1e-2, batch_size=10,
                               output=str(tmp_path / "ft16"), precision="mixed_bfloat16")
    model = mixed["model_object"]
    backbone = next(l for l in model.layers if isinstance(l, keras.Model))
    convs = [l for l in backbone.layers if isinstance(l, keras.layers.Conv2D)]
    assert {l.compute_dtype for l in convs} == {"bfloat16"}
    assert model.output.dtype == "float32" and np.isfinite(mixed["test_accuracy"])


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown regime 'huge'; allowed: auto, small"):
        transfer.fine_tune("resnet18", regime="huge", data=datasets.digits(32))
    with pytest.raises(ValueError, match="alexnet needs inputs of at least 67x67"):
        transfer.fine_tune("alexnet", data=datasets.digits(32))
    x = keras.Input((8, 8, 3))
    keras.Model(x, keras.layers.Conv2D(2, 3)(x)).save(tmp_path / "seg.keras")
    with pytest.raises(ValueError, match="is not a classifier: its last layer is Conv2D"):
        transfer.fine_tune(str(tmp_path / "seg.keras"), data=datasets.digits(8))
    bad = call_tool("finetune", "resnet18", "--regime", "huge")
    assert bad.returncode == 2 and "invalid choice: 'huge'" in bad.stderr


class Spy(keras.layers.Layer):
    """Passes its input through and keeps the last training batch it saw."""

    def __init__(self, batch, shape, **kwargs):
        super().__init__(**kwargs)
        self.seen = self.add_weight(shape=(batch, *shape), initializer="zeros",
                                    trainable=False, name="seen")

    def call(self, x, training=None):
        if training:
            self.seen.assign(x)
        return x


@pytest.mark.parametrize("name,keras_preprocess", [
    ("resnet50", keras.applications.resnet50.preprocess_input),       # "caffe"
    ("resnet50_v2", keras.applications.resnet_v2.preprocess_input),   # "tf"
    ("densenet121", keras.applications.densenet.preprocess_input),    # "torch"
])
def test_fine_tuning_feeds_the_backbone_its_weights_preprocessing(
        name, keras_preprocess, monkeypatch, http_root, keras_home, published, tmp_path):
    """From Keras-layout ImageNet weights served on loopback, the images that reach the
    backbone are exactly what keras.applications' own preprocess_input makes of them."""
    from conftest import serve_keras_source

    serve_keras_source(monkeypatch, http_root, name, published(name, False), include_top=False)
    digits = datasets.subset(datasets.digits(32), list(range(10)), per_class=2)
    spies, real = [], transfer.transfer_model

    def spying(backbone, classes, trainable_stages, dropout=0.2):
        model = real(backbone, classes, trainable_stages, dropout)
        inputs = keras.Input(model.input_shape[1:])
        spies.append(Spy(4, model.input_shape[1:]))
        return keras.Model(inputs, model(spies[-1](inputs)))

    monkeypatch.setattr(transfer, "transfer_model", spying)
    result = transfer.fine_tune(name, weights="imagenet", data=digits, regime="small",
                                epochs=1, batch_size=4, output=str(tmp_path / "ft"))
    assert result["preprocessing"] == kc.model_info(name).preprocessing
    assert kc.weights_info(result["model_object"]).name == name
    x, _ = digits.train
    images = tf.image.grayscale_to_rgb(tf.image.resize(x, (32, 32))).numpy()
    expected = keras_preprocess(images.copy())
    seen = spies[-1].seen.numpy()
    assert np.abs(seen).max() > 0  # the spy saw a batch
    for row in seen:  # each image fed is one of the expected ones, exactly
        assert np.abs(expected - row).reshape(len(expected), -1).max(axis=1).min() < 1e-4
    for mode in {"caffe", "tf", "torch"} - {result["preprocessing"]}:
        other = kc.preprocess_input(images, mode=mode)
        assert np.abs(other - seen[0]).reshape(len(other), -1).max(axis=1).min() > 1e-2
