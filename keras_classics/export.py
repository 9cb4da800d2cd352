"""SavedModel export for TF Serving, built with ``keras.export.ExportArchive``.

(``tf.saved_model.save`` on a Keras 3 model writes a SavedModel that fails when served,
keras-team/keras#20095, tensorflow/serving#2250.) The version directory is written under a
temporary name and renamed into place, so a server polling ``base_dir`` never sees half a
version.

Signatures:
- ``serving_default``: ``images`` — a batch of encoded JPEG/PNG/GIF/BMP images (``tf.string``)
  → decoded, resized, preprocessed exactly as in training;
- ``predict_images``: ``images`` — float32 ``[batch, H, W, 3]`` RGB in [0, 255] (NaN or
  infinity refused);
both returning ``classes`` (int64, top-k indices), ``probabilities`` (float32, top-k),
``scores`` (float32, all classes) and, when labels are given, ``labels`` (string, top-k).
An empty batch returns empty outputs. ``serving_default`` reads each image's width and height
from its header and refuses images above ``max_pixels`` before decoding (a small PNG can
decode to gigabytes); images are resized from their 8-bit pixels, without a float32 copy.

TFLite files are written by Keras' own LiteRT export (``model.export(format="litert")``:
ExportArchive, SavedModel, ``TFLiteConverter.from_saved_model``, which freezes the
variables), from the BN-folded model cast to float32, TFLite's built-in ops only.
"""
import os
import shutil
import tempfile
import uuid
import warnings

import keras
import numpy as np

from .backend import require_tensorflow

require_tensorflow("keras_classics.export (SavedModel and TFLite files)")

import tensorflow as tf  # noqa: E402
from keras.applications import imagenet_utils

from . import datasets, images as image_files
from .fusion import fuse_batchnorm
from .weights import preprocessing_of

from .images import MAGIC, MAX_PIXELS, header_size  # noqa: F401 (the export's API)


def _image_input(model, image_size=None):
    """``(height, width)`` of ``model``'s image input; a ValueError when the model does not
    take one batch of RGB images or when its size is open and not given."""
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else ()
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"{model.name} does not take RGB images: its inputs are "
                         f"{[tuple(x.shape) for x in model.inputs]}; exports need one input "
                         "of shape (batch, height, width, 3)")
    size = image_size or (shape[1], shape[2])
    size = (size, size) if isinstance(size, int) else tuple(size)
    if None in size:
        raise ValueError(f"{model.name} takes any input size: pass image_size=(height, width)")
    return size


def _mkdir_unique(parent, prefix):
    """A new directory ``parent/prefix<random>`` with the usual permissions (``os.mkdir``
    honours the umask; ``tempfile.mkdtemp`` would make it 0700, unreadable by a server
    running as another user)."""
    path = os.path.join(parent, f"{prefix}{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    return path


def _versions(base_dir):
    return sorted(int(d) for d in os.listdir(base_dir) if d.isdigit()) \
        if os.path.isdir(base_dir) else []


def serving_functions(model, image_size, preprocessing="torch", top_k=5, labels=None,
                      max_pixels=MAX_PIXELS):
    """The two ``tf.function`` endpoints (encoded images, float images) for ``model``."""
    height, width = image_size
    classes = model.outputs[0].shape[-1]
    k = min(top_k, classes)
    if labels is not None and len(labels) != classes:
        raise ValueError(f"labels has {len(labels)} names but the model has {classes} classes")
    label_table = tf.constant(list(labels)) if labels is not None else None

    def predict(images):
        x = imagenet_utils.preprocess_input(tf.cast(images, tf.float32), mode=preprocessing)
        scores = model(x, training=False)
        return tf.cast(scores[0] if isinstance(scores, (list, tuple)) else scores, tf.float32)

    def outputs(images):
        scores = tf.cond(tf.shape(images)[0] > 0, lambda: predict(images),  # oneDNN's conv
                         lambda: tf.zeros([0, classes], tf.float32))  # fails on 0 images
        top = tf.math.top_k(scores, k=k)
        out = {"classes": tf.cast(top.indices, tf.int64), "probabilities": top.values,
               "scores": scores}
        if label_table is not None:
            out["labels"] = tf.gather(label_table, top.indices)
        return out

    def decode(data):
        image = image_files.decode(data, max_pixels)
        image = tf.image.resize(image, (height, width))  # uint8 in, float32 out: no copy
        return tf.ensure_shape(image, (height, width, 3))

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32,
                                                name="images")])
    def serve_float(images):
        finite = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(images)), [
            "images must be finite RGB values in [0, 255]; got NaN or infinity"])
        with tf.control_dependencies([finite]):  # NaN pixels gave plausible probabilities
            return outputs(tf.identity(images))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes(images):  # calls serve_float's one graph: the model is traced once
        return serve_float(tf.map_fn(decode, images, fn_output_signature=tf.TensorSpec(
            [height, width, 3], tf.float32)))  # static shape: an empty batch works too

    return serve_bytes, serve_float


def export_saved_model(model, base_dir, version=None, fuse_bn=True, top_k=5, labels=None,
                       image_size=None, preprocessing=None, overwrite=False, dtype=None,
                       max_pixels=MAX_PIXELS):
    """Write ``model`` as ``base_dir/<version>/`` (the next integer when ``version`` is None)
    and return that path. ``preprocessing`` ("torch", "caffe", "tf") is applied inside the
    signatures to RGB pixels in [0, 255], as in training; by default the mode of the
    pretrained weights the model was built or fine-tuned from (:func:`weights_info`), else
    "torch" (what :func:`~keras_classics.training.train` uses from scratch).
    ``dtype="bfloat16"`` serves the folded model in bf16 (about 2x faster on CPUs with
    AVX512-BF16, see bench/); scores stay float32. ``serving_default`` refuses images of
    more than ``max_pixels`` pixels before decoding them."""
    preprocessing = preprocessing or preprocessing_of(model)
    if preprocessing not in ("torch", "caffe", "tf"):
        raise ValueError(f"unknown preprocessing {preprocessing!r}; allowed: torch, caffe, tf")
    size = _image_input(model, image_size)
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(f"{base_dir} exists and is not a directory")
    if version is None:
        version = (_versions(base_dir) or [0])[-1] + 1
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive int, got {version!r}")
    target = os.path.join(base_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise ValueError(f"{target} exists; choose another version or pass overwrite=True")
    if dtype is not None and not fuse_bn:
        raise ValueError("dtype needs fuse_bn=True: the serving model is rebuilt in that dtype "
                         "while folding")
    serving = fuse_batchnorm(model, dtype=dtype) if fuse_bn else model
    serve_bytes, serve_float = serving_functions(serving, size, preprocessing, top_k, labels,
                                                 max_pixels)
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint("serving_default", serve_bytes)
    archive.add_endpoint("predict_images", serve_float)
    os.makedirs(base_dir, exist_ok=True)
    tmp = _mkdir_unique(base_dir, f".{version}.tmp-")
    try:
        archive.write_out(tmp, verbose=False)
        if os.path.exists(target):  # overwrite: swap, then remove the old version
            old = tempfile.mkdtemp(prefix=f".{version}.old-", dir=base_dir)
            os.rename(target, os.path.join(old, "v"))
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return target


def held_out_digits(image_size, preprocessing="torch", count=50):
    """``count`` images of the embedded digits' test split, resized to ``image_size`` and
    preprocessed as in training: real inputs for parity checks."""
    batch = next(iter(datasets.digits(image_size[0]).pipeline(
        "test", count, preprocessing=preprocessing)))[0]
    if image_size[0] != image_size[1]:
        batch = tf.image.resize(batch, image_size)
    return np.asarray(batch)


def parity(reference, candidate, tolerance=1e-3):
    """Compare two models' outputs on the same inputs: ``{"finite", "max_abs_difference",
    "top1_agreement", "decisive_disagreements"}``. A top-1 disagreement is decisive when the
    reference's margin between its first and second class exceeds twice the allowed
    difference (``tolerance`` times the output range), so rounding cannot explain it."""
    reference, candidate = np.asarray(reference, "float64"), np.asarray(candidate, "float64")
    finite = bool(np.isfinite(candidate).all() and np.isfinite(reference).all())
    allowed = tolerance * max(float(np.abs(reference).max()), 1e-6) if finite else 0.0
    diff = float(np.abs(candidate - reference).max()) if finite else float("nan")
    top2 = -np.sort(-reference, axis=-1)[:, :2]
    differ = reference.argmax(-1) != candidate.argmax(-1)
    return {"finite": finite, "max_abs_difference": diff, "allowed_difference": allowed,
            "top1_agreement": float(1 - differ.mean()),
            "decisive_disagreements": int((differ & (top2[:, 0] - top2[:, 1] > 2 * allowed))
                                          .sum())}


def export_tflite(model, path, fuse_bn=True, image_size=None, check=True,
                  preprocessing=None, overwrite=False):
    """Convert ``model`` to a TFLite flatbuffer at ``path`` taking one float32 preprocessed
    image ``[1, H, W, 3]`` and returning the model's outputs. BNs are folded and the model is
    rebuilt in float32 (a mixed-precision model converts too); only TFLite's built-in ops.

    With ``check`` (default) the file is run in TFLite's interpreter on 50 held-out digits
    (resized and preprocessed with ``preprocessing``, by default the model's) and compared
    with the Keras model; the file is only kept when every output is finite, the largest
    difference is within 1e-3 of the output range (3e-2 for a model computing in 16 bits) and
    no top-1 disagreement is decisive (:func:`parity`). An existing ``path`` is only
    replaced with ``overwrite`` (as :func:`export_saved_model`). Returns ``(path, report)``."""
    size = _image_input(model, image_size)
    if not str(path).endswith(".tflite"):
        raise ValueError(f"{path}: a TFLite file name ends with .tflite")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} exists; pass overwrite=True to replace it")
    float32 = model.dtype_policy.name == "float32" and all(
        w.dtype == "float32" for w in model.weights)
    if not fuse_bn and not float32:
        raise ValueError(f"{model.name} computes in {model.dtype_policy.name}: TFLite exports "
                         "are float32, which needs fuse_bn=True (the model is rebuilt in "
                         "float32 while folding)")
    serving = fuse_batchnorm(model, dtype="float32") if fuse_bn else model
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tflite")
    try:
        serving.export(tmp, format="litert", verbose=False, input_signature=[
            tf.TensorSpec([1, *size, 3], tf.float32, name="images")],
            target_spec={"supported_ops": {tf.lite.OpsSet.TFLITE_BUILTINS}})
        report = None
        if check:
            x = held_out_digits(size, preprocessing or preprocessing_of(model))
            # a mixed-precision model is compared to its own rounding (bf16's 8 bits)
            report = {**parity(_keras_outputs(model, x), _tflite_outputs(tmp, x),
                               1e-3 if float32 else 3e-2), "images": len(x)}
            if not report["finite"]:
                raise ValueError("TFLite outputs are not finite (NaN or infinity): not written")
            if not report["max_abs_difference"] <= report["allowed_difference"] or \
                    report["decisive_disagreements"]:
                raise ValueError(
                    f"TFLite outputs differ from Keras by up to "
                    f"{report['max_abs_difference']:.3g} (allowed "
                    f"{report['allowed_difference']:.3g}), top-1 agreement "
                    f"{report['top1_agreement']:.0%} on {len(x)} held-out digits: not written")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path, report


def _keras_outputs(model, images):
    out = model.predict(images, batch_size=25, verbose=0)
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, "float32")


def _tflite_outputs(path, images):
    with warnings.catch_warnings():  # "use ai_edge_litert": not a dependency of ours
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rows = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype("float32"))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(rows)
