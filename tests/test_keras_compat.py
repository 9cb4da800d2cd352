"""Models keras.applications also has keep its layer names, weight shapes and weight order, so
Keras' own weight files load unchanged and give the same outputs (the published files, with and
without top and pooled: tests/test_weights.py; Keras 3 ``.weights.h5`` files: here)."""
import keras
import numpy as np
import pytest

import keras_classics as kc
from keras_classics.models._zoo import shapes_only
from conftest import (KERAS_APPS as KERAS, assert_close, random_images, standard_model,
                      standard_models)


def weight_layout(model):
    return [(layer.name, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers if layer.weights]


@pytest.mark.parametrize("name", standard_models(sorted(KERAS)))
def test_same_layer_names_shapes_and_order(name):
    with shapes_only():  # structure only, as standard_model: no variable filled
        theirs = KERAS[name](weights=None)
    ours = standard_model(name)
    assert weight_layout(ours) == weight_layout(theirs)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "resnet50_v2"])
def test_keras_weights_file_loads_by_path(name, tmp_path):
    shape = (48, 48, 3)
    theirs = KERAS[name](weights=None, include_top=False, input_shape=shape)
    path = tmp_path / f"{name}.weights.h5"
    theirs.save_weights(path)
    ours = kc.get_model(name, weights=str(path), include_top=False, input_shape=shape)
    x = random_images(shape)
    assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_vgg16_full_top_outputs_match():
    theirs = keras.applications.VGG16(weights=None)
    ours = kc.VGG16()
    ours.set_weights(theirs.get_weights())
    x = random_images((224, 224, 3), batch=1)
    assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
