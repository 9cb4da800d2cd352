"""Looking inside a convnet: the views of Zeiler & Fergus, "Visualizing and Understanding
Convolutional Networks" (ECCV 2014), which led from AlexNet to ZFNet, for any zoo model or
functional ``.keras`` file.

- :func:`filters`: first-layer filters, each contrast-normalized (the paper's Fig. 5/6).
- :func:`feature_maps` of a layer for one image; :func:`top_activations`: the images of a
  dataset that excite a channel most (Fig. 2's top 9).
- :func:`project`: a unit's activation taken back to pixel space, by the paper's deconvnet
  (unpooling by the max-pool switches, ReLU on the way down, transposed filters) or by guided
  backpropagation (Springenberg et al., "Striving for Simplicity", 2015).
- :func:`occlusion`: the true class's probability as a grey square slides over the image
  (Fig. 7).
- :func:`grad_cam` (Selvaraju et al., 2017) for any convolutional layer.

Images are RGB in [0, 255], shape (H, W, 3); each function applies the model's preprocessing
("torch", "caffe" or "tf", see :mod:`keras_classics.preprocessing`) itself. Departures from
the paper: the deconvnet is computed as a gradient with the deconvnet's ReLU rule (the two are
the same computation: max-pool gradients route through the switches, convolution gradients are
the transposed filters); local response normalization, which the deconvnet has no step for, is
passed through unchanged on the way down. Grad-CAM and occlusion use the class logit and the
softmax probability: a final softmax is replaced by a linear twin for the logit.
"""
import os
import weakref

import keras
import matplotlib.pyplot as plt
import numpy as np

from .backend import require_tensorflow

require_tensorflow("keras_classics.visualize (tf.GradientTape)")

import tensorflow as tf  # noqa: E402
from keras.applications import imagenet_utils

from . import datasets, images as image_files
from .layers import LocalResponseNormalization
from .preprocessing import MODES
from .registry import resolve
from .training.outputs import saved_preprocessing
from .training.precision import with_policy

RULES = ("deconvnet", "guided")


# ---------------------------------------------------------------- loading and checking


def load(model, weights=None, image_size=None):
    """``(keras model, preprocessing mode)`` for a registry name (random weights, or
    ``weights`` "imagenet"/a file) or a functional ``.keras`` file (the mode it was trained with,
    read from the ``summary.json`` that :func:`keras_classics.training.train` writes beside it)."""
    if str(model).endswith(".keras"):
        if not os.path.isfile(model):
            raise FileNotFoundError(f"no such model file: {model}")
        net = keras.saving.load_model(model, compile=False)
        if weights:
            net.load_weights(weights)
        mode = saved_preprocessing(model)
    else:
        kwargs = {"weights": weights}
        if image_size:
            kwargs["input_shape"] = (image_size, image_size, 3)
        info = resolve(model, weights)
        net = info.build(**kwargs)
        mode = info.preprocessing if weights == "imagenet" else "torch"
    check_image_model(net)
    return in_float32(net), mode


def in_float32(model):
    """``model`` itself when every layer computes in float32, else a float32 copy with its
    weights (a model trained with mixed precision): gradients of bfloat16 or float16 layers are
    too coarse to look at."""
    return with_policy(model, "float32")


def check_image_model(model):
    """Refuse what is not a functional model from images (N, H, W, 1|3) to class scores."""
    if not isinstance(model, keras.Model) or not hasattr(model, "operations"):
        raise ValueError(f"{model!r} is not a functional Keras model")
    shape = model.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] in (1, 3)):
        raise ValueError(f"{model.name} takes inputs of shape {shape}: visualize needs an image "
                         "model, inputs (batch, height, width, 1 or 3)")
    if None in shape[1:3]:
        raise ValueError(f"{model.name} has no fixed input size ({shape}): build it with "
                         "input_shape=(H, W, 3)")
    if len(model.output_shape) != 2:
        raise ValueError(f"{model.name} outputs {model.output_shape}: visualize needs class "
                         "scores (batch, classes); build it with include_top=True")
    if not any(isinstance(l, keras.layers.Conv2D) for l in model.layers):
        raise ValueError(f"{model.name} has no Conv2D layer: visualize shows a convnet's "
                         "filters, feature maps and projections")


def conv_layers(model):
    """Names of the layers whose output is a feature map (batch, H, W, C), in order."""
    return [l.name for l in model.layers if not isinstance(l, keras.layers.InputLayer)
            and len(_output_shape(l)) == 4]


def _output_shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return ()


def _feature_layer(model, layer, min_width=8):
    allowed = conv_layers(model)
    if layer is None:  # the deepest feature map at least min_width wide
        wide = [n for n in allowed if model.get_layer(n).output.shape[2] >= min_width]
        return (wide or allowed)[-1]
    names = [l.name for l in model.layers]
    if layer not in names:
        raise ValueError(f"{model.name} has no layer {layer!r}; layers with feature maps: "
                         f"{_listing(allowed)}")
    if layer not in allowed:
        raise ValueError(f"layer {layer!r} outputs {_output_shape(model.get_layer(layer))}, "
                         f"not a feature map (batch, H, W, C); allowed: {_listing(allowed)}")
    return layer


def _listing(names, most=12):
    return ", ".join(names) if len(names) <= most else \
        ", ".join(names[:most // 2]) + ", ..., " + ", ".join(names[-most // 2:])


def _channel(model, layer, channel):
    count = model.get_layer(layer).output.shape[-1]
    if not 0 <= channel < count:
        raise ValueError(f"layer {layer!r} has channels 0..{count - 1}, got {channel}")


def read_image(path, model):
    """An image file as a float32 RGB batch of one at ``model``'s input size, decoded and
    resized as training reads a folder dataset (TensorFlow's decoder: a 16-bit PNG becomes 8
    bits, EXIF orientation is not applied) and refused above the serving pixel cap; a
    ValueError naming the file when it is not an image."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such image file")
    image = tf.cast(image_files.read(path), tf.float32)
    return tf.image.resize(image, model.input_shape[1:3]).numpy()[None]


def at_input_size(model, images):
    """Images (N, H, W, 1|3) or (H, W, 1|3) in [0, 255] as an RGB float32 batch at the model's
    input size (still raw pixels)."""
    x = np.asarray(images, "float32")
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, 3) or (H, W, 3) in [0, 255], got {x.shape}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    size = model.input_shape[1:3]
    return tf.image.resize(x, size).numpy() if x.shape[1:3] != size else x


def prepare(model, images, mode):
    """Images (N, H, W, 3) or (H, W, 3) in [0, 255], resized to the model's input and
    preprocessed by ``mode``: a float32 batch the model takes."""
    if mode not in MODES:
        raise ValueError(f"unknown preprocessing {mode!r}; allowed: {', '.join(MODES)}")
    x = imagenet_utils.preprocess_input(at_input_size(model, images).copy(), mode=mode)
    return x if model.input_shape[-1] == 3 else x.mean(-1, keepdims=True)


def dataset_images(name="digits", image_size=32, split="test", limit=500, data_dir=None):
    """``(images (N, S, S, 3) in [0, 255], labels, class names)``: the first ``limit`` images
    of a split of a :func:`keras_classics.datasets.load` dataset (held-out by default)."""
    d = datasets.load(name, image_size, data_dir=data_dir)
    images, labels = [], []
    in_memory = isinstance(getattr(d, split), tuple)  # read to the end: it is cached
    for x, y in d.pipeline(split, 64, shuffle=False, preprocessing=None):
        images.append(x.numpy())
        labels.append(y.numpy())
        if sum(map(len, labels)) >= limit and not in_memory:
            break
    return (np.concatenate(images)[:limit], np.concatenate(labels)[:limit],
            d.class_names)


# ---------------------------------------------------------------- graph rewriting


class RectifiedBackward(keras.layers.Layer):
    """ReLU forward; on the way down the deconvnet's rule (``relu(grad)``: Zeiler & Fergus
    section 2.1, "rectification") or guided backpropagation's (``grad * (x > 0) * (grad > 0)``)."""

    def __init__(self, rule="deconvnet", **kwargs):
        super().__init__(**kwargs)
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; allowed: {', '.join(RULES)}")
        self.rule = rule

    def call(self, x):
        rule = self.rule

        @tf.custom_gradient
        def relu(x):
            def grad(g):
                if rule == "deconvnet":
                    return tf.nn.relu(g)
                return g * tf.cast(x > 0, g.dtype) * tf.cast(g > 0, g.dtype)

            return tf.nn.relu(x), grad

        return relu(x)


class PassThroughBackward(keras.layers.Layer):
    """Computes ``layer`` forward, passes the gradient through unchanged (the deconvnet has no
    step for local response normalization)."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.inner = layer

    def call(self, x):
        return x + tf.stop_gradient(self.inner(x) - x)


def _is(fn, name):
    return getattr(fn, "__name__", None) == name


def _linear_twin(layer):
    """A copy of ``layer`` without its activation, holding its weights."""
    config = layer.get_config()
    config["activation"] = "linear"
    twin = layer.__class__.from_config(config)
    twin.build(layer.input.shape)
    twin.set_weights(layer.get_weights())
    return twin


_REBUILT = weakref.WeakKeyDictionary()  # model -> {(rule, logits, taps): rebuilt model}


def rebuild(model, rule=None, logits=False, taps=()):
    """``model`` with its ReLUs following ``rule`` on the way down (None: unchanged), its final
    softmax removed (``logits``), returning ``[outputs of taps..., output]``. Weights are shared
    (or copied, for layers that lose their activation). The rebuilt model is kept per model and
    reused (rebuilding ResNet-18 costs more than the gradient it serves), its copied weights
    refreshed from ``model`` at each use."""
    cache = _REBUILT.setdefault(model, {})
    key = (rule, logits, tuple(taps))
    if key not in cache:
        cache[key] = _rebuild(model, rule, logits, tuple(taps))
    net, twins = cache[key]
    for twin, layer in twins:
        twin.set_weights(layer.get_weights())
    return net


def _rebuild(model, rule, logits, taps):
    out_layer = model.layers[-1]
    twins = []

    def linear_twin(layer):
        twin = _linear_twin(layer)
        twins.append((twin, layer))
        return twin

    tapped = {}

    def call(layer, *args, **kwargs):
        activation = getattr(layer, "activation", None)
        if rule and isinstance(layer, (keras.layers.Activation, keras.layers.ReLU)) and \
                (isinstance(layer, keras.layers.ReLU) or _is(activation, "relu")):
            y = RectifiedBackward(rule, name=layer.name)(args[0])
        elif rule == "deconvnet" and isinstance(layer, LocalResponseNormalization):
            y = PassThroughBackward(layer, name=layer.name)(args[0])
        elif rule and _is(activation, "relu"):
            y = RectifiedBackward(rule, name=layer.name + "_rule")(
                linear_twin(layer)(*args, **kwargs))
        elif logits and layer is out_layer and _is(activation, "softmax"):
            y = linear_twin(layer)(*args, **kwargs)  # an Activation layer's twin is identity
        else:
            y = layer(*args, **kwargs)
        if layer.name in taps:
            tapped[layer.name] = y
        return y

    clone = keras.models.clone_model(model, clone_function=lambda l: l, call_function=call)
    return keras.Model(clone.input, [tapped[t] for t in taps] + [clone.output]), twins


# ---------------------------------------------------------------- the views


def filters(model, layer=None):
    """The first convolution's filters (or ``layer``'s), ``(count, kh, kw, 3)`` in the layer's
    order, each min-max normalized to [0, 1] on its own. Filters over more than 3 input
    channels are shown as their mean over inputs (grey)."""
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"{model.name} has no Conv2D layer")
    if layer is None:
        conv = convs[0]
    else:
        conv = next((l for l in convs if l.name == layer), None)
        if conv is None:
            raise ValueError(f"{layer!r} is not a Conv2D layer of {model.name}; allowed: "
                             f"{_listing([l.name for l in convs])}")
    k = np.asarray(conv.kernel, "float32")  # (kh, kw, in, out)
    if k.shape[2] != 3:
        k = np.repeat(k.mean(2, keepdims=True), 3, 2)
    tiles = np.moveaxis(k, -1, 0)
    lo = tiles.min((1, 2, 3), keepdims=True)
    hi = tiles.max((1, 2, 3), keepdims=True)
    return (tiles - lo) / np.maximum(hi - lo, 1e-12)


def feature_maps(model, image, mode, layer=None):
    """``(layer name, maps (H, W, C))`` of ``layer`` (default: the deepest at least 8 wide)."""
    layer = _feature_layer(model, layer)
    sub = keras.Model(model.input, model.get_layer(layer).output)
    return layer, np.asarray(sub(prepare(model, image, mode), training=False))[0]


def top_activations(model, images, mode, channel, layer=None, k=9, batch_size=32,
                    progress=True):
    """``(layer, indices, values)``: the ``k`` images whose strongest activation of ``channel``
    in ``layer`` is largest, best first."""
    layer = _feature_layer(model, layer)
    _channel(model, layer, channel)
    sub = keras.Model(model.input, model.get_layer(layer).output)
    n = len(images)
    bar = keras.utils.Progbar(n, unit_name="image") if progress else None
    best = np.empty(n, "float32")
    for i in range(0, n, batch_size):
        maps = sub(prepare(model, images[i:i + batch_size], mode), training=False)
        best[i:i + batch_size] = np.asarray(maps[..., channel]).reshape(len(maps), -1).max(1)
        if bar:
            bar.update(min(n, i + batch_size))
    order = np.argsort(-best, kind="stable")[:k]
    return layer, order, best[order]


def project(model, image, mode, channel, layer=None, rule="deconvnet", position="max"):
    """The activation of ``channel`` in ``layer`` projected to pixel space, ``(H, W, 3)``.

    The top signal is the channel's feature map with every other activation zeroed (the paper,
    section 2.1), at its strongest position only (``position="max"``, the paper's figures) or
    over the whole map (``"all"``); ``rule`` is "deconvnet" or "guided"."""
    if position not in ("max", "all"):
        raise ValueError(f"position must be 'max' or 'all', got {position!r}")
    layer = _feature_layer(model, layer)
    _channel(model, layer, channel)
    net = rebuild(model, rule=rule, taps=(layer,))
    x = tf.constant(prepare(model, image, mode))
    with tf.GradientTape() as tape:
        tape.watch(x)
        act = net(x, training=False)[0]
        mask = np.zeros(act.shape, "float32")
        a = np.asarray(act[0, ..., channel])
        if position == "max":
            mask[(0, *np.unravel_index(np.argmax(a), a.shape), channel)] = 1
        else:
            mask[..., channel] = 1
        top = tf.stop_gradient(act * mask)
        signal = tf.reduce_sum(top * act)
    grad = tape.gradient(signal, x)
    return np.asarray(grad)[0]


def occlusion(model, image, mode, label, patch=None, stride=None, fill=None, batch_size=32,
              progress=True):
    """``(probabilities (h, w), p0)``: the probability of ``label`` with a grey square of side
    ``patch`` (default 1/4 of the input) centred at each of a grid of positions ``stride``
    apart (default ``patch // 4``), and without occlusion. ``fill`` is the square's raw value
    (default: the image's mean per channel: grey on photographs, as in the paper, and no bright
    blob on a dark background such as the digits')."""
    raw = at_input_size(model, image)[0]
    h, w = model.input_shape[1:3]
    classes = model.output_shape[-1]
    if not 0 <= label < classes:
        raise ValueError(f"label must be in 0..{classes - 1}, got {label}")
    patch = patch or max(1, min(h, w) // 4)
    stride = stride or max(1, patch // 4)
    if not (0 < patch <= min(h, w) and stride > 0):
        raise ValueError(f"patch must be in 1..{min(h, w)} and stride positive, got "
                         f"patch={patch}, stride={stride}")
    fill = raw.mean((0, 1)) if fill is None else fill
    ys, xs = np.arange(0, h, stride), np.arange(0, w, stride)
    centres = [(y, x) for y in ys for x in xs]
    p0 = float(np.asarray(model(prepare(model, raw, mode), training=False))[0, label])
    probs = np.empty(len(centres), "float32")
    bar = keras.utils.Progbar(len(centres), unit_name="position") if progress else None
    for i in range(0, len(centres), batch_size):
        batch = np.repeat(raw[None], len(centres[i:i + batch_size]), 0)
        for j, (y, x) in enumerate(centres[i:i + batch_size]):
            y0, x0 = max(0, y - patch // 2), max(0, x - patch // 2)
            batch[j, y0:y0 + patch, x0:x0 + patch] = fill
        out = np.asarray(model(prepare(model, batch, mode), training=False))
        probs[i:i + len(batch)] = out[:, label]
        if bar:
            bar.update(min(len(centres), i + batch_size))
    return probs.reshape(len(ys), len(xs)), p0


def grad_cam(model, image, mode, label=None, layer=None):
    """``(layer, heat (H, W) in [0, 1], label)``: Grad-CAM of the class logit ``label``
    (default: the predicted class) at ``layer`` (default: the last feature map at least 7 wide,
    as VGG-16's last convolution at 224x224 in the Grad-CAM paper), upsampled to the input
    size."""
    layer = _feature_layer(model, layer, min_width=7)
    net = rebuild(model, logits=True, taps=(layer,))
    x = prepare(model, image, mode)
    with tf.GradientTape() as tape:
        act, logits = net(x, training=False)
        if label is None:
            label = int(np.argmax(logits[0]))
        score = logits[0, label]
    grad = tape.gradient(score, act)
    weights = tf.reduce_mean(grad, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * act, -1))[0]
    cam = tf.image.resize(cam[..., None], model.input_shape[1:3])[..., 0].numpy()
    top = cam.max()
    return layer, cam / top if top > 0 else cam, label


# ---------------------------------------------------------------- pictures


def _grid(n):
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def _display(image):
    """Raw [0, 255] (or any) image as [0, 1] RGB for imshow."""
    x = np.asarray(image, "float32")
    x = np.repeat(x, 3, -1) if x.shape[-1] == 1 else x
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _save(fig, path):
    """Write ``fig`` to ``path`` atomically (a temporary name, then renamed)."""
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_filters(tiles, path, title):
    """One tile per filter, row by row in the layer's order."""
    rows, cols = _grid(len(tiles))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6 + 0.4, rows * 0.6 + 0.8),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(tiles):
            ax.imshow(tiles[i], interpolation="nearest")
    fig.suptitle(title)
    return _save(fig, path)


def plot_maps(image, maps, path, title, most=64):
    """The input and up to ``most`` channels of a feature map on one colour scale."""
    n = min(most, maps.shape[-1])
    rows, cols = _grid(n + 1)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1 + 1, rows * 1.1 + 0.8),
                             squeeze=False)
    vmax = max(float(maps[..., :n].max()), 1e-12)
    im = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i == 0:
            ax.imshow(_display(image))
            ax.set_title("input", fontsize=7)
        elif i <= n:
            im = ax.imshow(maps[..., i - 1], cmap="viridis", vmin=min(0, maps.min()), vmax=vmax)
            ax.set_title(str(i - 1), fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="activation")
    fig.suptitle(title)
    return _save(fig, path)


def plot_top(images, order, values, path, title):
    rows, cols = _grid(len(order))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.5 + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(order):
            ax.imshow(_display(images[order[i]]))
            ax.set_title(f"#{order[i]}: {values[i]:.3g}", fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def plot_projections(image, rows, path, title):
    """``rows``: ``[(channel, deconvnet (H, W, 3), guided (H, W, 3))]``, side by side."""
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.3, 2.1 * len(rows) + 0.5), squeeze=False)
    for (channel, deconv, guided), row in zip(rows, axes):
        for ax, img, name in zip(row, (image, deconv, guided),
                                 ("input", f"deconvnet, channel {channel}",
                                  f"guided backprop, channel {channel}")):
            ax.axis("off")
            ax.imshow(_display(img) if img is image else _contrast(img))
            ax.set_title(name, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _contrast(g):
    """A projection as an image: centred on grey, scaled by its largest magnitude."""
    top = float(np.abs(g).max())
    return np.clip(0.5 + 0.5 * g / top, 0, 1) if top > 0 else np.full(g.shape, 0.5)


def plot_heat(image, heat, path, title, label, cmap="jet", overlay=True):
    """The input, and the map over it with a colour bar labelled ``label``."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3.4))
    a.imshow(_display(image))
    a.set_title("input")
    shown = np.asarray(heat)
    if overlay:
        b.imshow(_display(image))
    im = b.imshow(shown, cmap=cmap, alpha=0.55 if overlay else 1.0,
                  extent=(-0.5, np.shape(image)[1] - 0.5, np.shape(image)[0] - 0.5, -0.5))
    fig.colorbar(im, ax=b, label=label)
    for ax in (a, b):
        ax.axis("off")
    fig.suptitle(title, y=1.04)
    return _save(fig, path)


def report(model, mode, out, images, labels=None, index=0, layer=None, channel=None, k=9,
           progress=True, class_names=None):
    """Write the five views for ``images[index]`` into ``out``: filters.png,
    feature_maps.png, top_activations.png (when there is more than one image),
    projections.png, occlusion.png, grad_cam.png. Returns the paths written."""
    if not 0 <= index < len(images):
        raise ValueError(f"index must be in 0..{len(images) - 1}, got {index}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} exists and is not a directory; give a folder")
    check_image_model(model)
    layer = _feature_layer(model, layer)
    if channel is not None:
        _channel(model, layer, channel)
    image = at_input_size(model, images[index])[0]
    probs = np.asarray(model(prepare(model, image, mode), training=False))[0]
    label = int(labels[index]) if labels is not None else int(np.argmax(probs))
    if not 0 <= label < len(probs):
        raise ValueError(f"label {label} is not a class of {model.name} (0..{len(probs) - 1})")
    os.makedirs(out, exist_ok=True)
    name = class_names[label] if class_names else str(label)
    written = []

    first = next(l for l in model.layers if isinstance(l, keras.layers.Conv2D))
    tiles = filters(model)
    written.append(plot_filters(tiles, os.path.join(out, "filters.png"),
                                f"{model.name}: {first.name}, {len(tiles)} filters "
                                f"{first.kernel_size[0]}x{first.kernel_size[1]}"
                                f"/{first.strides[0]}"))

    _, maps = feature_maps(model, image, mode, layer)
    written.append(plot_maps(image, maps, os.path.join(out, "feature_maps.png"),
                             f"{model.name}: {layer} ({maps.shape[0]}x{maps.shape[1]}x"
                             f"{maps.shape[2]})"))
    strongest = np.argsort(-maps.reshape(-1, maps.shape[-1]).max(0), kind="stable")
    channel = int(strongest[0]) if channel is None else channel

    if len(images) > 1:
        _, order, values = top_activations(model, images, mode, channel, layer, k=k,
                                           progress=progress)
        written.append(plot_top(images, order, values, os.path.join(out, "top_activations.png"),
                                f"{layer}, channel {channel}: the top {len(order)} of "
                                f"{len(images)} images (strongest activation)"))

    rows = [(c, project(model, image, mode, c, layer, "deconvnet"),
             project(model, image, mode, c, layer, "guided"))
            for c in dict.fromkeys([channel, *map(int, strongest[:3])])]
    written.append(plot_projections(image, rows, os.path.join(out, "projections.png"),
                                    f"{layer}: the strongest activation of each channel, "
                                    "projected to pixels"))

    occ, p0 = occlusion(model, image, mode, label, progress=progress)
    written.append(plot_heat(image, occ, os.path.join(out, "occlusion.png"),
                             f"occlusion: p({name}) with a grey square there "
                             f"(unoccluded {p0:.2f})", f"p({name})", cmap="viridis", overlay=False))

    cam_layer, cam, _ = grad_cam(model, image, mode, label)
    written.append(plot_heat(image, cam, os.path.join(out, "grad_cam.png"),
                             f"Grad-CAM of '{name}' at {cam_layer}", "relative importance"))
    return written
