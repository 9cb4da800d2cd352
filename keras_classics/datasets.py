"""Datasets for training: the embedded digits, any tensorflow-datasets name, or a folder.

Every loader returns a :class:`Data` with ``tf.data`` pipelines that yield ``(image, label)``
batches of float32 images at the requested size, preprocessed by the mode of the weights they
will feed (keras.applications' own ``preprocess_input`` arithmetic: "torch" — RGB, ImageNet
mean/std — for models trained here, "caffe" or "tf" for pretrained weights that need them).
Training order is a pure function of ``(seed, epoch)``, so a resumed run sees exactly the
batches an uninterrupted one would.
"""
import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf
from keras.applications import imagenet_utils

from . import images
from .preprocessing import MODES

# AlexNet section 4.1: the RGB eigen-decomposition used for PCA colour augmentation.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], "float32")
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], "float32")


@dataclasses.dataclass
class Data:
    """Arrays or a tf.data source per split, and how to batch them."""

    name: str
    num_classes: int
    image_size: int
    train: object  # (images [0, 255] NHWC, labels) arrays, Files, or a tf.data.Dataset
    val: object
    test: object
    num_train: int
    class_names: list = None
    # where a folder dataset's files are: its absolute path and a digest of its file list
    # (names, sizes), part of a run's settings so a resume cannot switch folders
    source: dict = None

    def non_finite(self):
        """Where the training arrays hold NaN or infinity (e.g. "3 values in 1 image, the
        first image 17"), or None; files and tensorflow-datasets decode to finite pixels."""
        if not isinstance(self.train, tuple):
            return None
        x = np.asarray(self.train[0])
        bad = ~np.isfinite(x.reshape(len(x), -1))
        if not bad.any():
            return None
        images = np.flatnonzero(bad.any(1))
        return (f"{int(bad.sum())} NaN or infinite values in {len(images)} image(s), the "
                f"first training image {int(images[0])}")

    def unreadable(self):
        """(path, reason) of the first file of a folder dataset that does not decode, or
        None: called after a decoding error, which TensorFlow reports without the file."""
        paths = [p for s in (self.train, self.val, self.test) if isinstance(s, Files)
                 for p in s.paths]
        return first_unreadable(paths)

    def pipeline(self, split, batch_size, epoch=0, seed=0, augment=(), shuffle=None,
                 drop_remainder=False, skip_batches=0, preprocessing="torch", epochs=None):
        """A batched, preprocessed ``tf.data.Dataset`` for ``split`` ("train", "val", "test").
        ``augment`` may hold "crop" (pad 1/8 and crop back, random), "flip" and "pca";
        ``preprocessing`` is "torch", "caffe" or "tf" (see :mod:`keras_classics.preprocessing`),
        or None for the raw RGB images in [0, 255].

        ``epochs``: the batches of epochs ``epoch`` .. ``epochs - 1`` in one pipeline, each
        epoch's exactly as ``pipeline(epoch=e)`` gives them (``drop_remainder`` needed: no
        batch spans two epochs), ``skip_batches`` skipped from the first. A training run
        builds it once instead of a pipeline an epoch, whose tracing of the map functions
        took a tenth of a fine-tuning run of 5-step epochs."""
        if preprocessing is not None and preprocessing not in MODES:
            raise ValueError(f"unknown preprocessing {preprocessing!r}; allowed: "
                             f"{', '.join(MODES)}")
        last = epoch + 1 if epochs is None else epochs
        if last - epoch > 1 and (split != "train" or not drop_remainder):
            raise ValueError("a pipeline of several epochs is for training: split 'train', "
                             "drop_remainder=True")
        source = getattr(self, split)
        shuffle = split == "train" if shuffle is None else shuffle
        size = self.image_size
        files = isinstance(source, Files)

        def prepare(image, label):
            image = tf.image.resize(tf.cast(image, tf.float32), (size, size))
            if image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            return image, tf.cast(label, tf.int32)

        if files:  # file names: shuffled, then read and decoded
            base, buffer = source.dataset(), len(source.paths)
        else:
            base = source if isinstance(source, tf.data.Dataset) else \
                tf.data.Dataset.from_tensor_slices(source)
            base = base.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
            if isinstance(source, tuple):
                base = base.cache()  # small arrays: keep the resized images in memory
            buffer = min(self.num_train, 10_000)
        parts = []
        for e in range(epoch, last):  # no functions traced per epoch: the seed is data
            ds = base.shuffle(buffer, seed=seed * 1000 + e, reshuffle_each_iteration=False) \
                if shuffle else base
            if last - epoch > 1:  # the batches of one epoch only
                ds = ds.take(self.num_train // batch_size * batch_size)
            parts.append(tf.data.Dataset.zip(tf.data.Dataset.from_tensors(
                tf.constant(seed * 1000 + e, tf.int64)).repeat(), ds.enumerate()))
        ds = functools.reduce(tf.data.Dataset.concatenate, parts)
        aug = _augmenter(augment, size) if augment else None

        def example(key, indexed):
            index, (image, label) = indexed
            if files:
                image, label = prepare(*_decode(image, label))
            if aug:
                image = aug(key, index, image)
            if preprocessing is not None:
                image = imagenet_utils.preprocess_input(image, mode=preprocessing)
            return image, label

        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if skip_batches:
            ds = ds.skip(skip_batches)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        options.deterministic = True
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _augmenter(augment, size):
    unknown = set(augment) - {"crop", "flip", "pca"}
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)}; allowed: crop, flip, pca")
    pad = max(1, size // 8)

    def aug(seed, index, image):
        # stateless ops keyed on (seed * 1000 + epoch, position in the epoch): reproducible,
        # also after a resume
        key = tf.stack([seed, index])
        if "crop" in augment:
            padded = tf.image.resize_with_crop_or_pad(image, size + 2 * pad, size + 2 * pad)
            image = tf.image.stateless_random_crop(padded, (size, size, 3), seed=key)
        if "flip" in augment:
            image = tf.image.stateless_random_flip_left_right(image, seed=key + 1)
        if "pca" in augment:  # AlexNet's colour lighting, sigma 0.1
            alpha = tf.random.stateless_normal([3], seed=key + 2, stddev=0.1)
            image = image + tf.tensordot(PCA_EIGVEC, alpha * PCA_EIGVAL, 1) * 255.0
        return image

    return aug


def digits(image_size=32, seed=0):
    """scikit-learn's bundled handwritten digits (1,797 8×8 images, 10 classes), offline.
    Fixed stratified split: 60% train, 20% validation, 20% test; pixels scaled to [0, 255]."""
    # scikit-learn and tensorflow-datasets take seconds to import: only when their data is used
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images[..., None] * (255.0 / 16.0)).astype("float32")
    y = d.target.astype("int32")
    x_tr, x_rest, y_tr, y_rest = train_test_split(x, y, test_size=0.4, stratify=y,
                                                  random_state=seed)
    x_val, x_te, y_val, y_te = train_test_split(x_rest, y_rest, test_size=0.5,
                                                stratify=y_rest, random_state=seed)
    return Data("digits", 10, image_size, (x_tr, y_tr), (x_val, y_val), (x_te, y_te),
                len(y_tr), [str(i) for i in range(10)])


def subset(data, classes, per_class=None, seed=0, relabel=True):
    """Keep only ``classes`` (relabelled 0..k-1) and at most ``per_class`` training examples
    of each: for transfer experiments on the digits or a folder dataset."""
    rng = np.random.default_rng(seed)
    mapping = {c: i for i, c in enumerate(classes)}

    def pick(split, limit):
        x, y = (split.paths, split.labels) if isinstance(split, Files) else split
        idx = [np.flatnonzero(y == c) for c in classes]
        if limit:
            idx = [rng.permutation(i)[:limit] for i in idx]
        idx = np.sort(np.concatenate(idx))
        labels = np.array([mapping[c] for c in y[idx]], "int32") if relabel else y[idx]
        if isinstance(split, Files):
            return Files([x[i] for i in idx], labels)
        return x[idx], labels

    train = pick(data.train, per_class)
    return dataclasses.replace(data, num_classes=len(classes), train=train,
                               val=pick(data.val, None), test=pick(data.test, None),
                               num_train=len(train.labels if isinstance(train, Files)
                                             else train[1]),
                               class_names=[data.class_names[c] if data.class_names else
                                            str(c) for c in classes])


IMAGENET_MANUAL = ("imagenet2012 cannot be downloaded automatically: download "
                   "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org "
                   "and place them in {manual}, then rerun")


def tfds_data(name, image_size, data_dir=None, seed=0):
    """Any tensorflow-datasets name; validation is the "validation" split when the dataset has
    one, else the last 10% of "train"."""
    import tensorflow_datasets as tfds  # seconds to import: only for its datasets

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # DatasetNotFoundError and friends
        raise ValueError(f"unknown dataset {name!r}: {err}".split("\n")[0]) from err
    if builder.info.name == "imagenet2012":
        manual = os.path.join(data_dir or os.path.expanduser("~/tensorflow_datasets"),
                              "downloads", "manual")
        if not builder.data_path.exists() and not any(
                os.path.exists(os.path.join(manual, f)) for f in ("ILSVRC2012_img_train.tar",)):
            raise ValueError(IMAGENET_MANUAL.format(manual=manual))
    builder.download_and_prepare()
    splits = set(builder.info.splits.keys()) or {"train", "test"}  # empty under mock_data
    train_split = "train" if "validation" in splits else "train[:90%]"
    val_split = "validation" if "validation" in splits else "train[90%:]"
    test_split = "test" if "test" in splits else val_split
    load = lambda s: builder.as_dataset(split=s, as_supervised=True, shuffle_files=False)  # noqa
    train = load(train_split)
    num_train = int(train.cardinality())
    if num_train < 0:  # unknown: count once
        num_train = int(train.reduce(0, lambda n, _: n + 1))
    labels = builder.info.features["label"]
    return Data(name, labels.num_classes, image_size, train, load(val_split), load(test_split),
                num_train, list(labels.names))


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF",
          b"GIF89a": "GIF", b"BM": "BMP"}


@dataclasses.dataclass
class Files:
    """Image files and their labels: a split that is read from disk batch by batch."""

    paths: list
    labels: np.ndarray

    def dataset(self):
        return tf.data.Dataset.from_tensor_slices((tf.constant(self.paths, tf.string, [
            len(self.paths)]), self.labels))  # typed: an empty split is strings too


_CAP = "keras_classics.images.MAX_PIXELS"


def _decode(path, label):
    """A file's first frame, refused before decoding when it would take more than
    ``images.MAX_PIXELS`` pixels (as the export's serving signature does)."""
    return images.decode(tf.io.read_file(path), images.MAX_PIXELS, _CAP), label


def first_unreadable(paths):
    """The first of ``paths`` that is too large to decode (every header is read first) or
    that TensorFlow cannot decode, with the reason, or None: used to name the file behind a
    decoding error in a pipeline, which TensorFlow reports without it."""
    for check in (images.checked, images.decode):
        for path in paths:
            try:
                check(tf.io.read_file(path), images.MAX_PIXELS, _CAP)
            except (tf.errors.OpError, ValueError) as err:
                text = images.reason(err)
                return path, text if text.startswith("image too large") else \
                    f"not a readable image ({text})"
    return None


def folder(path, image_size, seed=0):
    """A directory of images in class subfolders, read from disk as batches are needed.

    Split 70/15/15 within each class by a seeded shuffle (stratified, reproducible). Files
    whose first bytes are not a JPEG, PNG, GIF or BMP header are refused here, naming them; a
    file that passes that check but fails to decode stops training with an error naming it.
    """
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a directory of class subfolders")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    files = {c: sorted(os.path.join(path, c, f) for f in os.listdir(os.path.join(path, c))
                       if f.lower().endswith(IMAGE_EXTENSIONS)) for c in classes}
    files = {c: f for c, f in files.items() if f}
    if len(files) < 2:
        raise ValueError(f"{path!r} has {len(files)} class subfolder(s) with images "
                         f"({', '.join(IMAGE_EXTENSIONS)}); at least 2 are needed")
    bad = [(f, why) for fs in files.values() for f in fs for why in [_not_an_image(f)] if why]
    if bad:
        raise ValueError(f"{bad[0][0]}: {bad[0][1]}"
                         + (f"; {len(bad) - 1} more such files" if len(bad) > 1 else "") +
                         ". Remove them and rerun")
    rng = np.random.default_rng(seed)
    splits = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for label, name in enumerate(files):
        fs = [files[name][i] for i in rng.permutation(len(files[name]))]
        a, b = int(0.7 * len(fs)), int(0.7 * len(fs)) + int(0.15 * len(fs))
        for split, part in (("train", fs[:a]), ("val", fs[a:b]), ("test", fs[b:])):
            splits[split][0].extend(part)
            splits[split][1].extend([label] * len(part))
    train, val, test = (Files(p, np.array(y, "int32")) for p, y in splits.values())
    return Data(os.path.basename(os.path.normpath(path)), len(files), image_size, train, val,
                test, len(train.paths), list(files), _source(path, files))


def _source(path, files):
    """``{"path": absolute path, "files": sha256 of every file's name and size}``."""
    import hashlib

    root = os.path.realpath(path)
    digest = hashlib.sha256()
    for name in files:
        for f in files[name]:
            digest.update(f"{os.path.relpath(f, path)}\0{os.path.getsize(f)}\n".encode())
    return {"path": root, "files": digest.hexdigest()}


def _not_an_image(path):
    """Why ``path`` cannot be an image file (a directory, a broken or looping link, no
    JPEG, PNG, GIF or BMP header), or None."""
    if os.path.islink(path) and not os.path.exists(path):
        return f"a broken or looping symbolic link (to {os.readlink(path)!r})"
    if not os.path.isfile(path):
        return "not a file (a directory or a device) with an image name"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not any(head.startswith(magic) for magic in _MAGIC):
        return "not a readable image (no JPEG, PNG, GIF or BMP header)"
    return None


def load(name="digits", image_size=32, data_dir=None, seed=0):
    """``"digits"`` (embedded, offline), a tensorflow-datasets name (``cifar10``,
    ``imagenette/160px-v2``, ``cifar10:3.0.2``, ``imagenet2012`` ...) or an existing
    directory of class subfolders."""
    if name == "digits":
        return digits(image_size, seed)
    if os.path.exists(name):  # only an existing path is a folder: "imagenette/160px-v2" is not
        return folder(name, image_size, seed)
    try:
        return tfds_data(name, image_size, data_dir, seed)
    except ValueError as err:
        if name.startswith((".", "~")) or os.path.sep in name:
            raise ValueError(f"{name!r} is neither an existing folder nor a "
                             f"tensorflow-datasets dataset ({err})") from None
        raise
