import keras
import numpy as np
import pytest

import keras_classics as kc

RGB = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")


@pytest.mark.parametrize("name,reference", [
    ("vgg16", keras.applications.vgg16.preprocess_input),
    ("resnet50", keras.applications.resnet.preprocess_input),
    ("resnet101_v2", keras.applications.resnet_v2.preprocess_input),
    ("densenet121", keras.applications.densenet.preprocess_input),
])
def test_models_from_keras_use_keras_preprocessing(name, reference):
    np.testing.assert_allclose(kc.preprocess_input(RGB, name), reference(RGB.copy()),
                               rtol=1e-6)


def test_torchvision_models_use_mean_std():
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    for name in ("resnet18", "vgg16_bn", "resnext50_32x4d", "se_resnet50"):
        np.testing.assert_allclose(kc.preprocess_input(RGB, name), (RGB / 255 - mean) / std,
                                   rtol=1e-5, atol=1e-6)


def test_input_is_not_modified_and_bad_mode():
    before = RGB.copy()
    kc.preprocess_input(RGB, mode="caffe")
    np.testing.assert_array_equal(RGB, before)
    with pytest.raises(ValueError, match="unknown mode 'bgr'; allowed: caffe, tf, torch"):
        kc.preprocess_input(RGB, mode="bgr")
    with pytest.raises(ValueError, match="exactly one of"):
        kc.preprocess_input(RGB)


def test_decode_predictions_offline():
    preds = np.zeros((2, 1000), "float32")
    preds[0, [0, 1, 999]] = [0.2, 0.7, 0.1]
    preds[1, 2] = 1.0
    decoded = kc.decode_predictions(preds, top=3)
    assert decoded[0] == [("n01443537", "goldfish", pytest.approx(0.7)),
                          ("n01440764", "tench", pytest.approx(0.2)),
                          ("n15075141", "toilet_tissue", pytest.approx(0.1))]
    assert decoded[1][0][:2] == ("n01484850", "great_white_shark")
    with pytest.raises(ValueError, match=r"shape \(batch, 1000\), got \(2, 10\)"):
        kc.decode_predictions(np.zeros((2, 10)))


def test_class_index_is_the_tfds_order():
    from pathlib import Path

    import tensorflow_datasets as tfds

    wnids = (Path(tfds.__file__).parent / "datasets/imagenet2012/labels.txt").read_text().split()
    index = kc.preprocessing.class_index()
    assert [index[i][0] for i in range(1000)] == wnids
