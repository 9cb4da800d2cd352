"""Model names → builders and what users need to know about each: paper, input sizes, dataset.

Names follow torchvision where torchvision has the model (``vgg16_bn``, ``resnext50_32x4d``);
``wrn_{depth}_{k}``, ``densenet_bc_{L}_{k}``, ``preact_resnet{depth}`` and
``resnet{depth}_cifar`` accept any valid numbers. The family modules declare their models
(``models/_zoo.py``); this module only reads that table.
"""
import difflib
import math
import warnings

from . import models  # noqa: F401  (importing the families registers their models)
from .models._zoo import MODELS, PATTERNS, ModelInfo
from .weights import PRETRAINED_VARIANT

__all__ = ["ModelInfo", "describe", "get_model", "list_models", "model_info", "resolve"]


def list_models(family=None):
    """Registered names (sorted), with examples of the name patterns (``wrn_*``,
    ``densenet_bc_*``, ``preact_resnet*``, ``resnet*_cifar``, ``plain*_cifar``); ``family`` is
    one of alexnet, vgg, googlenet, resnet, densenet."""
    names = {*MODELS, *(ex for _, examples, _ in PATTERNS for ex in examples)}
    if family is not None:
        families = {model_info(n).family for n in names}
        if family not in families:
            raise ValueError(f"unknown family {family!r}; allowed: {', '.join(sorted(families))}")
        names = [n for n in names if model_info(n).family == family]
    return sorted(names)


def model_info(name):
    """The :class:`ModelInfo` of a registered name; unknown names raise with close matches."""
    lowered = str(name).lower()
    for key in (lowered.replace("-", "_"), lowered.replace("-", "")):  # wrn-28-10, ResNet-50
        if key in MODELS:
            return MODELS[key]
        for pattern, _, factory in PATTERNS:
            match = pattern.fullmatch(key)
            if match:
                return factory(match)
    names = list_models()
    close = [n for n in names if n.startswith(key)]
    close = list(dict.fromkeys(close + difflib.get_close_matches(key, names, n=5, cutoff=0.5)))[:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}{hint} (keras_classics.list_models() lists all; "
                     "wrn_{depth}_{k}, densenet_bc_{L}_{k} and preact_resnet{depth} take any "
                     "valid numbers)")


def get_model(name, **kwargs):
    """Build a registered model: ``get_model("vgg16_bn", include_top=False, pooling="avg")``.

    ``weights="imagenet"`` for a paper topology whose public weights belong to a variant
    (``alexnet`` → ``alexnet_owt``, ``googlenet`` → ``googlenet_bn``) builds that variant,
    with a warning saying so."""
    return resolve(name, kwargs.get("weights"), stacklevel=3).build(**kwargs)


def resolve(name, weights=None, stacklevel=2):
    """The :class:`ModelInfo` that ``get_model(name, weights=weights)`` builds: for
    ``weights="imagenet"``, a paper topology whose public weights belong to a variant resolves
    to that variant (with a warning), so its preprocessing is the variant's."""
    info = model_info(name)
    if weights == "imagenet" and PRETRAINED_VARIANT.get(info.name):
        variant = PRETRAINED_VARIANT[info.name]
        warnings.warn(f"{info.name} has no public ImageNet weights in the paper's topology; "
                      f"building '{variant}' ({model_info(variant).description})",
                      stacklevel=stacklevel)
        info = model_info(variant)
    return info


def describe(name, **kwargs):
    """Build ``name`` at its standard configuration and return its vital figures as a dict:
    name, family, dataset, default/min input size, trainable and total parameters, layers."""
    info = model_info(name)
    model = info.build_shapes(**kwargs)
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"name": info.name, "family": info.family, "dataset": info.dataset,
            "input": info.default_size, "min_input": info.min_size, "trainable": trainable,
            "total": model.count_params(), "layers": len(model.layers),
            "paper": info.paper, "description": info.description}
