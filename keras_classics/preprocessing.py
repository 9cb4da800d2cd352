"""ImageNet input preprocessing and decoding, with the class index shipped in the package.

Each registered model carries the preprocessing of the weights it is meant for
(``model_info(name).preprocessing``): "caffe" (BGR, ImageNet mean subtracted; Keras' VGG16/19
and ResNet50/101/152 weights), "tf" (scaled to [-1, 1]; Keras' ResNetV2) or "torch" (RGB in
[0, 1], ImageNet mean/std; Keras' DenseNets and every torchvision/timm checkpoint). The
arithmetic is keras.applications' own ``imagenet_utils.preprocess_input``.
"""
import functools
import json
from importlib import resources

import numpy as np
from keras.applications import imagenet_utils

from .registry import model_info
from .weights import weights_info

MODES = ("caffe", "tf", "torch")


def mode_of(model):
    """The preprocessing mode for ``model``: a registry name (its ImageNet weights' mode) or a
    model built with ``weights="imagenet"`` (the mode of the weights it holds)."""
    if isinstance(model, str):
        return model_info(model).preprocessing
    record = weights_info(model)
    if record is None:
        raise ValueError(f"{getattr(model, 'name', model)!r} was not built with "
                         "weights='imagenet', so it carries no preprocessing: pass mode= "
                         f"({', '.join(MODES)})")
    return record.preprocessing


def preprocess_input(x, model_name=None, mode=None):
    """Preprocess RGB images in [0, 255] for ``model_name`` (a registry name, or a model built
    with ``weights="imagenet"``), or by ``mode`` ("caffe", "tf", "torch"). Returns a new float
    array; ``x`` is not modified."""
    if (model_name is None) == (mode is None):
        raise ValueError("preprocess_input: give exactly one of model_name or mode")
    if model_name is not None:
        mode = mode_of(model_name)
    if mode not in MODES:
        raise ValueError(f"preprocess_input: unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    x = np.array(x, dtype="float32", copy=True) if not hasattr(x, "numpy") else x
    return imagenet_utils.preprocess_input(x, mode=mode)


@functools.lru_cache(maxsize=1)
def class_index():
    """``{index: (wordnet_id, name)}`` for the 1000 ILSVRC-2012 classes (Keras' format)."""
    text = resources.files(__package__).joinpath("data", "imagenet_class_index.json").read_text()
    return {int(k): tuple(v) for k, v in json.loads(text).items()}


def decode_predictions(preds, top=5):
    """``[(wordnet_id, name, score), ...]`` for the ``top`` classes of each row of ``preds``
    (shape ``(batch, 1000)``), best first, as keras.applications' decode_predictions, but
    offline: the class index ships with the package."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(f"decode_predictions expects ImageNet scores of shape (batch, 1000), "
                         f"got {preds.shape}")
    if not isinstance(top, int) or not 1 <= top <= 1000:
        raise ValueError(f"decode_predictions: top must be an int in [1, 1000], got {top!r}")
    index = class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*index[int(i)], float(row[i])) for i in best])
    return results
