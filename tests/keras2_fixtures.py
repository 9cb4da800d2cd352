"""Weight files in the layout of Keras' published ImageNet files, written by the tools that
wrote them: the keras_applications code of the published files (PyPI Keras-Applications 1.0.8,
whose DenseNet names ``conv1/conv``/``fc1000`` come from keras-applications d0c13ac and whose
ResNet/ResNetV2 classifier ``probs`` from d33bdd8) run on Keras 2 (``tf_keras``), saved with
Keras 2's ``save_weights(... .h5)``. Every weight is random (BN statistics included), so a
mapping mistake shows in the outputs.

Run as a script in its own process (Keras 2 and Keras 3 stay apart):
``python keras2_fixtures.py OUT_DIR NAME[:notop] ...``; each file gets the published name
(``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``). Where both files of a model are
asked for, the notop file is written from the top model's layers, a Keras 2 model up to its
classifier: the HDF5 layout of a notop build (attributes, layer and weight names and their
order, shapes, dtypes), checked identical for all eleven models, and each run checks
ResNet-50's against a notop build (:data:`CHECKED`); a deep net takes ~5 s to build. Such a
notop file holds the top file's weights, as the published pairs do.
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


# the first layer of each family's classifier: a notop model is every layer before it
HEAD = {"vgg": "flatten", "resnet": "avg_pool", "densenet": "avg_pool"}
CHECKED = "resnet50"  # its notop file from the top model is compared with a notop build


def build(name, include_top):
    import importlib

    import tf_keras

    module, builder, _ = BUILDERS[name]
    tf_keras.backend.clear_session()
    return getattr(importlib.import_module(f"keras_applications.{module}"), builder)(
        include_top=include_top, weights=None, backend=tf_keras.backend, layers=tf_keras.layers,
        models=tf_keras.models, utils=tf_keras.utils)


def notop_of(model, name):
    """The notop model of ``name`` on ``model``'s layers (a Keras 2 Model up to the classifier)."""
    import tf_keras

    head = next(v for k, v in HEAD.items() if name.startswith(k))
    return tf_keras.Model(model.input, model.get_layer(head).input, name=model.name)


def save(model, out_dir, name, include_top, seed=None):
    if seed is not None:
        random_weights(model, seed)
    path = os.path.join(out_dir, file_name(name, include_top))
    model.save_weights(path)  # Keras 2's HDF5 writer: the published files' format
    return path


def layout(path):
    """Everything in an HDF5 file but the values: attributes, names, order, shapes, dtypes."""
    import h5py

    with h5py.File(path) as f:
        items = [("/", sorted((k, str(v)) for k, v in f.attrs.items()))]
        f.visititems(lambda key, obj: items.append((
            key, getattr(obj, "shape", None), str(getattr(obj, "dtype", "")),
            sorted((k, str(v)) for k, v in obj.attrs.items()))))
    return items


def write(out_dir, specs):
    """Write ``specs`` (``NAME`` or ``NAME:notop``), the i-th with random weights of seed i
    (a notop file written with its top file holds the top file's weights, as the published
    pairs do); yields each path."""
    wanted = [(spec.partition(":")[0], not spec.endswith(":notop")) for spec in specs]
    seeds = {w: i for i, w in enumerate(wanted)}
    for name, include_top in wanted:
        if not include_top and (name, True) in seeds:
            continue  # written with its top model
        model = build(name, include_top)
        yield save(model, out_dir, name, include_top, seeds[name, include_top])
        if include_top and (name, False) in seeds:
            path = save(notop_of(model, name), out_dir, name, False)
            if name == CHECKED:
                built = os.path.join(out_dir, "check_notop.h5")
                build(name, False).save_weights(built)
                if layout(built) != layout(path):
                    raise AssertionError(f"{path}: not the layout of a notop build of {name}")
                os.remove(built)
            yield path


if __name__ == "__main__":
    for written in write(sys.argv[1], sys.argv[2:]):
        print(written, flush=True)
