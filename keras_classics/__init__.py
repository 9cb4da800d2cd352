"""keras_classics: the classic ImageNet CNNs for Keras 3 (the zoo on every backend).

Documentation: README.md and docs/ in the repository.

Builders follow keras.applications' signature (``include_top, weights, input_tensor,
input_shape, pooling, classes, classifier_activation, name``)::

    import keras_classics
    model = keras_classics.VGG16(weights=None)
    model = keras_classics.get_model("resnext50_32x4d", include_top=False, pooling="avg")
"""
import importlib

from . import layers, models, preprocessing
from .models import *  # noqa: F401,F403  (the builders)
from .models import __all__ as _builders
from .analysis import profile
from .fusion import fuse_batchnorm
from .preprocessing import decode_predictions, preprocess_input
from .registry import ModelInfo, describe, get_model, list_models, model_info
from .weights import WeightsRecord, weights_info

# TensorFlow by nature (tf.distribute, SavedModel, GradientTape): imported on first use, so
# the zoo, weights and analysis run under KERAS_BACKEND=jax or torch without TensorFlow
_LAZY = {"training": (".training", None), "transfer": (".transfer", None),
         "export": (".export", None), "visualize": (".visualize", None),
         "datasets": (".datasets", None),
         "export_saved_model": (".export", "export_saved_model"),
         "export_tflite": (".export", "export_tflite")}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_classics' has no attribute {name!r}")
    module, attr = _LAZY[name]
    module = importlib.import_module(module, __name__)
    return module if attr is None else getattr(module, attr)


__version__ = "0.1.0"
__all__ = ["layers", "models", "profile", "fuse_batchnorm", "export_saved_model",
           "export_tflite", "preprocess_input", "decode_predictions", "describe", "get_model",
           "list_models", "model_info", "ModelInfo", "WeightsRecord", "weights_info",
           *_builders]
