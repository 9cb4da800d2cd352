"""Weight files in the layout of Keras' published ImageNet files, written by the tools that
wrote them: the keras_applications code of the published files (PyPI Keras-Applications 1.0.8,
whose DenseNet names ``conv1/conv``/``fc1000`` come from keras-applications d0c13ac and whose
ResNet/ResNetV2 classifier ``probs`` from d33bdd8) run on Keras 2 (``tf_keras``), saved with
Keras 2's ``save_weights(... .h5)``. Every weight is random (BN statistics included), so a
mapping mistake shows in the outputs.

Run as a script in its own process (Keras 2 and Keras 3 stay apart):
``python keras2_fixtures.py OUT_DIR NAME[:notop] ...``; each file gets the published name
(``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# registry name -> (keras_applications module, builder, published file stem)
BUILDERS = {
    "vgg16": ("vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels"),
    "vgg19": ("vgg19", "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels"),
    "resnet50": ("resnet_common", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels"),
    "resnet101": ("resnet_common", "ResNet101", "resnet101_weights_tf_dim_ordering_tf_kernels"),
    "resnet152": ("resnet_common", "ResNet152", "resnet152_weights_tf_dim_ordering_tf_kernels"),
    "resnet50_v2": ("resnet_common", "ResNet50V2",
                    "resnet50v2_weights_tf_dim_ordering_tf_kernels"),
    "resnet101_v2": ("resnet_common", "ResNet101V2",
                     "resnet101v2_weights_tf_dim_ordering_tf_kernels"),
    "resnet152_v2": ("resnet_common", "ResNet152V2",
                     "resnet152v2_weights_tf_dim_ordering_tf_kernels"),
    "densenet121": ("densenet", "DenseNet121", "densenet121_weights_tf_dim_ordering_tf_kernels"),
    "densenet169": ("densenet", "DenseNet169", "densenet169_weights_tf_dim_ordering_tf_kernels"),
    "densenet201": ("densenet", "DenseNet201", "densenet201_weights_tf_dim_ordering_tf_kernels"),
}


def file_name(name, include_top):
    return BUILDERS[name][2] + ("" if include_top else "_notop") + ".h5"


def random_weights(model, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:  # drawn in float32: VGG fc1 1.5 s, 4.2 s as float64 cast down
        shape, wname = tuple(w.shape), w.name
        if "moving_variance" in wname or "gamma" in wname:
            v = rng.random(shape, dtype=np.float32) + np.float32(0.5)
        else:
            std = (1.0 / np.prod(shape[:-1])) ** 0.5 if len(shape) > 1 else 0.1
            v = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        values.append(v)
    model.set_weights(values)


def write(out_dir, name, include_top, seed=0):
    import importlib

    import tf_keras

    module, builder, _ = BUILDERS[name]
    build = getattr(importlib.import_module(f"keras_applications.{module}"), builder)
    tf_keras.backend.clear_session()
    model = build(include_top=include_top, weights=None, backend=tf_keras.backend,
                  layers=tf_keras.layers, models=tf_keras.models, utils=tf_keras.utils)
    random_weights(model, seed)
    path = os.path.join(out_dir, file_name(name, include_top))
    model.save_weights(path)  # Keras 2's HDF5 writer: the published files' format
    return path


if __name__ == "__main__":
    out = sys.argv[1]
    for i, spec in enumerate(sys.argv[2:]):
        name, _, top = spec.partition(":")
        print(write(out, name, top != "notop", seed=i), flush=True)
