"""What every builder shares: the keras.applications signature, its checks, the head, weights.

Checks run before any layer is built, so bad input gets a ValueError naming the model, the
value given and what is allowed, never a negative-dimension trace from TensorFlow.
"""
import os

import keras

from ..layers import CeilMaxPooling2D, check_norm, normalize, padded_conv
from .. import weights as weights_lib
from ._zoo import MODELS, register

WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".keras")


def check_args(model_name, *, include_top, weights, pooling, classes, norm="batch",
               weights_key=None):
    """Validate the arguments every builder takes; raise ValueError saying what is allowed.
    ``weights_key`` is the registry name whose ImageNet weights ``weights="imagenet"`` means."""
    check_norm(norm, model_name)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{model_name}: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"{model_name}: classes must be a positive int, got {classes!r}")
    if weights is None:
        return
    if weights == "imagenet":
        weights_lib.check_imagenet(model_name, weights_key)
        if include_top and classes != 1000:
            raise ValueError(f"{model_name}: weights='imagenet' with include_top=True needs "
                             f"classes=1000, got {classes}; use include_top=False and add "
                             "your own head")
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"{model_name}: weights must be None, 'imagenet' or a file path, "
                         f"got {weights!r}")
    path = os.fspath(weights)
    if not path.endswith(WEIGHT_SUFFIXES):
        raise ValueError(f"{model_name}: weights must be None, 'imagenet' or a path ending in "
                         f"{', '.join(WEIGHT_SUFFIXES)}, got {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{model_name}: weights file {path!r} does not exist")


def model_input(model_name, *, input_tensor, input_shape, default_size, min_size, include_top,
                weights, fixed_head=False):
    """Return ``(inputs, image_tensor)`` after checking the input shape (channels last).

    Without ``input_shape``: ``(default_size, default_size, 3)`` when ``include_top``
    (keras.applications' rule), else ``(None, None, 3)``. ``fixed_head`` marks models whose top
    flattens a feature map (AlexNet, ZFNet, VGG): with ``include_top=True`` they need a fixed
    size, and with weights, the size those weights were made for.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(f"{model_name}: only image_data_format='channels_last' is supported")
    if input_tensor is not None:
        shape = tuple(input_tensor.shape[1:])
    elif input_shape is not None:
        shape = tuple(input_shape)
    else:
        shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    if len(shape) != 3:
        raise ValueError(f"{model_name}: input_shape must be (height, width, channels), "
                         f"got {shape!r}")
    height, width, channels = shape
    if channels is None or channels < 1:
        raise ValueError(f"{model_name}: the channel count must be a positive int, "
                         f"got {channels!r} in input_shape {shape!r}")
    if weights == "imagenet" and channels != 3:
        raise ValueError(f"{model_name}: weights='imagenet' needs 3 input channels, "
                         f"got {channels}")
    for size in (height, width):
        if size is not None and size < min_size:
            raise ValueError(
                f"{model_name} needs inputs of at least {min_size}x{min_size}, "
                f"got {height}x{width}"
            )
    if include_top and fixed_head:
        if height is None or width is None:
            raise ValueError(
                f"{model_name}: include_top=True flattens the last feature map, so the input "
                f"size must be fixed; got input_shape {shape!r} (use include_top=False for "
                "variable sizes)")
        if weights is not None and (height, width) != (default_size, default_size):
            raise ValueError(
                f"{model_name}: include_top=True with pretrained weights needs input_shape "
                f"({default_size}, {default_size}, {channels}), got {shape!r}")
    if input_tensor is None:
        img = keras.Input(shape=shape, name="input_layer")
        return img, img
    if not keras.backend.is_keras_tensor(input_tensor):
        img = keras.Input(tensor=input_tensor, shape=shape)
        return img, img
    return keras.utils.get_source_inputs(input_tensor), input_tensor


def pool_features(x, pooling):
    """The ``include_top=False`` output: the feature map, or its global average/max."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def classifier(x, classes, activation, name="predictions"):
    """The output layer: a Dense of ``classes`` units. Under a mixed-precision policy it
    computes in float32 (Keras' mixed-precision guide): a float16 softmax rounds small
    probabilities to 0, and the loss's gradient at them overflows float16 at any loss scale."""
    policy = keras.mixed_precision.global_policy()
    mixed = policy.compute_dtype != policy.variable_dtype
    return keras.layers.Dense(classes, activation=activation, name=name,
                              dtype="float32" if mixed else None)(x)


def gap_classifier(x, classes, classifier_activation, dropout=0.0):
    """Global average pool, optional dropout, one Dense: GoogLeNet, ResNet and DenseNet's top."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return classifier(x, classes, classifier_activation)


def finalize(inputs, outputs, name, weights, weights_key=None, include_top=True):
    """Make the functional model and load ``weights``: "imagenet" (``weights_key``'s) or a
    path. A model whose weights fail to load is dropped: nothing half-loaded escapes."""
    model = keras.Model(inputs, outputs, name=name)
    if weights is None:
        return model
    try:
        if weights == "imagenet":
            weights_lib.load_imagenet(model, weights_key, include_top=include_top)
        else:
            weights_lib.load_weights(model, weights)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"{name}: could not load weights {weights!r}: {err}") from err
    return model


def out_size(size, kernel, stride, padding):
    """Spatial output size of a conv/pool: ``padding`` is "same", "valid" or an int pad."""
    if padding == "same":
        return -(-size // stride)
    pad = 0 if padding == "valid" else padding
    return (size + 2 * pad - kernel) // stride + 1


def min_input_size(path, limit=4096):
    """Smallest square input for which every (kernel, stride, padding) op on ``path`` has an
    output of at least 1×1 (for models whose downsampling is not all "same")."""
    for size in range(1, limit):
        s = size
        for kernel, stride, padding in path:
            s = out_size(s, kernel, stride, padding)
            if s < 1:
                break
        else:
            return size
    raise ValueError("no input size up to %d fits this model" % limit)


# Arguments that change no weight: a named variant called with them keeps its ImageNet weights.
WEIGHTLESS = frozenset({"dropout"})


def variant(func_name, base, model_name, what, paper, *, classes=1000, dataset="imagenet",
            default_size=224, min_size=32, alias=None, **spec):
    """The named builder of one row of a family's table (``ResNet50``: ``ResNet(depth=50,
    ...)``) with keras.applications' signature, registered as ``model_name``: the one place a
    variant is declared. ``weights="imagenet"`` means ``model_name``'s weights unless the call
    changes the topology (an argument beyond the signature other than ``dropout``).
    ``alias=(other, {arg: value})``: a call with one of those arguments builds the registered
    variant ``other`` (``VGG16(batch_norm=True)`` is ``vgg16_bn``, with its name and weights)."""
    def builder(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=classes, classifier_activation="softmax",
                name=model_name, **kwargs):
        signature = dict(include_top=include_top, weights=weights, input_tensor=input_tensor,
                         input_shape=input_shape, pooling=pooling, classes=classes,
                         classifier_activation=classifier_activation)
        if alias and any(kwargs.get(k, object()) == v for k, v in alias[1].items()):
            other = {k: v for k, v in kwargs.items() if k not in alias[1]}
            return MODELS[alias[0]].build(**signature, **other,
                                          **({} if name == model_name else {"name": name}))
        return base(**{**spec, **kwargs}, **signature, name=name,
                    weights_key=model_name if set(kwargs) <= WEIGHTLESS else None)

    builder.__name__ = builder.__qualname__ = func_name
    builder.__module__ = base.__module__
    builder.__doc__ = f"{what}. Other arguments: see :func:`{base.__name__}`."
    return register(model_name, builder, paper, dataset=dataset, default_size=default_size,
                    min_size=min_size, description=what)


def stem_7x7(x, filters, norm, epsilon, use_bias=False, act=True, pool="pad",
             pool_name="pool1_pool"):
    """The ImageNet ResNet/DenseNet stem in keras.applications' names: 7×7/2 conv
    (``conv1_conv``), norm and ReLU unless ``act=False`` (pre-activation nets), 3×3/2 max pool
    padded by one (``pool="pad"``) or Caffe's unpadded ceil-mode pool (``"ceil"``)."""
    x = padded_conv(x, filters, 7, "conv1_conv", 2, 3, pad_name="conv1_pad",
                    use_bias=use_bias or norm is None)
    if act:
        x = normalize(x, norm, "conv1", epsilon=epsilon)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
    if pool == "pad":
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        return keras.layers.MaxPooling2D(3, strides=2, name=pool_name)(x)
    return CeilMaxPooling2D(3, strides=2, name=pool_name)(x)


def fc_classifier(x, fc, dropout, classes, classifier_activation, first=1):
    """Flatten, hidden FCs with ReLU (``fc{first}``, ...) each followed by dropout, then the
    classifier: the top of AlexNet, ZFNet and VGG."""
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(fc, start=first):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return classifier(x, classes, classifier_activation)
