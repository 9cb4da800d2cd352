"""SavedModel export for TF Serving, built with ``keras.export.ExportArchive``.

(``tf.saved_model.save`` on a Keras 3 model writes a SavedModel that fails when served,
keras-team/keras#20095, tensorflow/serving#2250.) The version directory is written under a
temporary name and renamed into place, so a server polling ``base_dir`` never sees half a
version.

Signatures:
- ``serving_default``: ``images`` — a batch of encoded JPEG/PNG/GIF/BMP images (``tf.string``)
  → decoded, resized, preprocessed exactly as in training;
- ``predict_images``: ``images`` — float32 ``[batch, H, W, 3]`` RGB in [0, 255];
both returning ``classes`` (int64, top-k indices), ``probabilities`` (float32, top-k),
``scores`` (float32, all classes) and, when labels are given, ``labels`` (string, top-k).
"""
import os
import shutil
import tempfile

import keras
import tensorflow as tf
from keras.applications import imagenet_utils

from .fusion import fuse_batchnorm
from .weights import weights_info

MAGIC = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG", "GIF": b"GIF8", "BMP": b"BM"}


def _versions(base_dir):
    return sorted(int(d) for d in os.listdir(base_dir) if d.isdigit()) \
        if os.path.isdir(base_dir) else []


def serving_functions(model, image_size, preprocessing="torch", top_k=5, labels=None):
    """The two ``tf.function`` endpoints (encoded images, float images) for ``model``."""
    height, width = image_size
    classes = model.outputs[0].shape[-1]
    k = min(top_k, classes)
    if labels is not None and len(labels) != classes:
        raise ValueError(f"labels has {len(labels)} names but the model has {classes} classes")
    label_table = tf.constant(list(labels)) if labels is not None else None

    def outputs(images):
        x = imagenet_utils.preprocess_input(tf.cast(images, tf.float32), mode=preprocessing)
        scores = model(x, training=False)
        scores = tf.cast(scores[0] if isinstance(scores, (list, tuple)) else scores,
                         tf.float32)
        top = tf.math.top_k(scores, k=k)
        out = {"classes": tf.cast(top.indices, tf.int64), "probabilities": top.values,
               "scores": scores}
        if label_table is not None:
            out["labels"] = tf.gather(label_table, top.indices)
        return out

    def decode(data):
        ok = tf.reduce_any([tf.strings.substr(data, 0, len(m)) == m for m in MAGIC.values()])
        check = tf.debugging.Assert(ok, ["each input must be a JPEG, PNG, GIF or BMP image; "
                                         "got", tf.strings.length(data), "bytes starting with",
                                         tf.strings.substr(data, 0, 8)])
        with tf.control_dependencies([check]):  # decode only after the check has passed
            data = tf.identity(data)
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, (height, width, 3))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes(images):
        return outputs(tf.map_fn(decode, images, fn_output_signature=tf.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32,
                                                name="images")])
    def serve_float(images):
        return outputs(images)

    return serve_bytes, serve_float


def export_saved_model(model, base_dir, version=None, fuse_bn=True, top_k=5, labels=None,
                       image_size=None, preprocessing=None, overwrite=False, dtype=None):
    """Write ``model`` as ``base_dir/<version>/`` (the next integer when ``version`` is None)
    and return that path. ``preprocessing`` ("torch", "caffe", "tf") is applied inside the
    signatures to RGB pixels in [0, 255], as in training; by default the mode of the
    pretrained weights the model was built or fine-tuned from (:func:`weights_info`), else
    "torch" (what :func:`~keras_classics.training.train` uses from scratch).
    ``dtype="bfloat16"`` serves the folded model in bf16 (about 2x faster on CPUs with
    AVX512-BF16, see bench/); scores stay float32."""
    if preprocessing is None:
        record = weights_info(model)
        preprocessing = record.preprocessing if record else "torch"
    if preprocessing not in ("torch", "caffe", "tf"):
        raise ValueError(f"unknown preprocessing {preprocessing!r}; allowed: torch, caffe, tf")
    shape = model.inputs[0].shape
    size = image_size or (shape[1], shape[2])
    size = (size, size) if isinstance(size, int) else tuple(size)
    if None in size:
        raise ValueError(f"{model.name} takes any input size: pass image_size=(height, width)")
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
    serve_bytes, serve_float = serving_functions(serving, size, preprocessing, top_k, labels)
    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint("serving_default", serve_bytes)
    archive.add_endpoint("predict_images", serve_float)
    os.makedirs(base_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=base_dir)
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


def export_tflite(model, path, fuse_bn=True, image_size=None, check=True):
    """Convert ``model`` (BN folded) to a TFLite flatbuffer taking float32 preprocessed images;
    with ``check``, compare it with the Keras model on random inputs and raise if the largest
    difference exceeds 1e-3 of the output range. Returns ``(path, max_abs_difference)``."""
    import numpy as np

    serving = fuse_batchnorm(model) if fuse_bn else model
    shape = model.inputs[0].shape[1:]
    if image_size:
        shape = (image_size, image_size, shape[-1])
    if None in shape:
        raise ValueError(f"{model.name} takes any input size: pass image_size")

    @tf.function(input_signature=[tf.TensorSpec([1, *shape], tf.float32, name="images")])
    def infer(x):
        out = serving(x, training=False)
        return out[0] if isinstance(out, (list, tuple)) else out

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [infer.get_concrete_function()], serving)
    flat = converter.convert()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(flat)
    diff = 0.0
    if check:
        interp = tf.lite.Interpreter(model_content=flat)
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        rng = np.random.default_rng(0)
        for _ in range(3):
            x = rng.normal(size=(1, *shape)).astype("float32")
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            ref = np.asarray(infer(x))
            got = interp.get_tensor(out["index"])
            diff = max(diff, float(np.abs(got - ref).max()))
            if diff > 1e-3 * max(float(np.abs(ref).max()), 1e-6):
                os.remove(tmp)
                raise ValueError(f"TFLite output differs from Keras by {diff:.3g}")
    os.replace(tmp, path)
    return path, diff
