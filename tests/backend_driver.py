"""Run by tests/test_backends.py as ``KERAS_BACKEND=jax|torch python backend_driver.py WORK``:
what a user of that backend does with the zoo, in a process where TensorFlow cannot be
imported (as if not installed), so nothing here may need it.

WORK/specs.json (written by the TensorFlow test process) says what to do; the results go to
WORK/<backend>/ as .npz and .json files, compared there with TensorFlow's."""
import json
import sys
from pathlib import Path

# TensorFlow as if not installed: importing it raises ModuleNotFoundError and
# importlib.util.find_spec (how PyTorch's dynamo probes for it) answers None
sys.modules["tensorflow"] = None

import dataclasses  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_classics as kc  # noqa: E402
from keras_classics import layers, weights  # noqa: E402


def out(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False)).astype("float32")


def main(work):
    work = Path(work)
    spec = json.loads((work / "specs.json").read_text())
    backend = keras.backend.backend()
    dest = work / backend
    dest.mkdir()
    report = {"backend": backend}

    # one model per family: TensorFlow-written .weights.h5, TensorFlow's inputs
    logits = {}
    for m in spec["models"]:
        model = kc.get_model(m["name"], **m["kwargs"])
        model.load_weights(work / m["weights"])
        for size in m["sizes"]:
            x = np.load(work / f"{m['key']}-{size}.npy")
            logits[f"{m['key']}-{size}"] = out(model, x)
        del model
    np.savez(dest / "models.npz", **logits)

    # the layers on random inputs, computing in float32, float16 and bfloat16 (as under a
    # mixed precision policy)
    x = np.load(work / "layer_input.npy")
    results = {}
    for dtype in ("float32", "float16", "bfloat16"):
        xd = keras.ops.cast(x, dtype)
        lrn = layers.LocalResponseNormalization(dtype=dtype)
        pool = layers.CeilMaxPooling2D(3, 2, dtype=dtype)
        for name, layer in (("lrn", lrn), ("pool", pool)):
            for training in (False, True):
                if name == "pool" and training:
                    continue
                y = layer(xd, training=training) if name == "lrn" else layer(xd)
                assert keras.backend.standardize_dtype(y.dtype) == dtype, (name, y.dtype)
                results[f"{name}-{dtype}-{training}"] = keras.ops.convert_to_numpy(
                    keras.ops.cast(y, "float32"))
    np.savez(dest / "layers.npz", **results)

    # .keras files across backends: TensorFlow's loads here; this backend's is written for
    # TensorFlow to load
    loaded = keras.saving.load_model(work / "tf_model.keras")
    xk = np.load(work / "keras_input.npy")
    np.save(dest / "tf_model_here.npy", out(loaded, xk))
    loaded.save(dest / "model.keras")

    # weights="imagenet": a converted torchvision checkpoint and Keras' published .h5, over
    # HTTP into this backend's cache
    for key, fields in spec["imagenet"].items():  # where this test serves them
        weights.SOURCES[key] = dataclasses.replace(weights.SOURCES[key], **fields)
    r18 = kc.get_model("resnet18", weights="imagenet", classifier_activation=None,
                       input_shape=(64, 64, 3))
    d121 = kc.DenseNet121(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    xi = np.load(work / "imagenet_input.npy")
    # batch-norm folding, the analysis and preprocessing need no TensorFlow either
    np.savez(dest / "imagenet.npz", resnet18=out(r18, xi), densenet121=out(d121, xi),
             resnet18_folded=out(kc.fuse_batchnorm(r18), xi),
             preprocessed=kc.preprocess_input(xi * 127.5 + 127.5, r18))
    report["resnet50_macs"] = kc.profile("resnet50").macs
    report["imagenet_preprocessing"] = [kc.weights_info(r18).preprocessing,
                                        kc.weights_info(d121).preprocessing]

    # Keras' own training: model.fit of a zoo model on the digits (scikit-learn's, in numpy)
    fit = spec["fit"]
    data = np.load(work / "digits.npz")
    keras.utils.set_random_seed(0)
    net = kc.get_model(fit["model"], input_shape=tuple(data["x_train"].shape[1:]), classes=10)
    net.compile(optimizer=keras.optimizers.Adam(fit["lr"]),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = net.fit(data["x_train"], data["y_train"], batch_size=fit["batch_size"],
                      epochs=fit["epochs"], validation_data=(data["x_val"], data["y_val"]),
                      verbose=0)
    report["fit"] = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    # TensorFlow-only features say so
    errors = {}
    for name, call in (("export", lambda: kc.export_saved_model(net, str(dest / "sm"))),
                       ("train", lambda: kc.training.train(fit["model"])),
                       ("fine_tune", lambda: kc.transfer.fine_tune(fit["model"]))):
        try:
            call()
            errors[name] = None
        except Exception as err:  # noqa: BLE001 (the test reads the type and message)
            errors[name] = f"{type(err).__name__}: {err}"
    report["errors"] = errors
    report["tensorflow_imported"] = sys.modules["tensorflow"] is not None or any(
        m.startswith("tensorflow.") for m in sys.modules)
    (dest / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
