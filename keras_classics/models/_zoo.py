"""The model table the family modules fill, as timm's ``@register_model`` and torchvision's
``Weights`` do: each family declares its variants next to their builders, and
:mod:`keras_classics.registry` only reads :data:`MODELS` and :data:`PATTERNS`."""
import contextlib
import dataclasses
import re
from typing import Callable

import keras

from .. import weights as weights_lib

MODELS = {}  # registered name -> ModelInfo
PATTERNS = []  # (compiled regex, examples listed by list_models(), factory(match) -> ModelInfo)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A registered model: ``build(**kwargs)`` calls ``builder(**self.kwargs, **kwargs)``."""

    name: str
    builder: Callable
    kwargs: dict
    family: str  # the family module: alexnet, vgg, googlenet, resnet, densenet
    paper: str
    dataset: str  # "imagenet" (224x224 or the paper's size, 1000 classes) or "cifar" (32, 10)
    default_size: int
    min_size: int
    description: str

    @property
    def weights(self):
        """The :class:`~keras_classics.weights.WeightsRecord` of its ImageNet weights, or None."""
        return weights_lib.SOURCES.get(self.name)

    @property
    def top1(self):
        """Published ImageNet top-1 (%) of its weights (the weights' own figure), or None."""
        return self.weights.top1 if self.weights else None

    @property
    def preprocessing(self):
        """The input preprocessing its ImageNet weights need ("torch" when it has none)."""
        return self.weights.preprocessing if self.weights else "torch"

    @property
    def weights_source(self):
        """"keras", "torchvision" or "timm" when ``weights="imagenet"`` works, else None."""
        return self.weights.source if self.weights else None

    def build(self, **kwargs):
        return self.builder(**{**self.kwargs, "name": self.name, **kwargs})

    def build_shapes(self, **kwargs):
        """``build(**kwargs)`` with every variable's initializer left unrun (:func:`shapes_only`):
        a model for its shapes (parameter counts, :func:`keras_classics.analysis.profile`),
        not for calling. 2.4x faster than ``build`` here for six ImageNet nets (23.6 vs 57.2
        s), most of it TensorFlow creating and filling each variable. No weights: ``weights``
        must be None."""
        if kwargs.get("weights") is not None:
            raise ValueError(f"{self.name}: build_shapes() makes a model without weights; "
                             f"use build(weights=...) to load {kwargs['weights']!r}")
        with shapes_only():
            return self.build(**kwargs)


@contextlib.contextmanager
def shapes_only():
    """Models built inside have their variables' shapes, not their values: variables created in
    a ``keras.StatelessScope`` are deferred; the scope is left without initializing them, and
    they are taken off Keras's list of variables to initialize (else the next scope would
    allocate them)."""
    from keras.src.backend.common import global_state  # Keras's own, no public handle

    pending = global_state.get_global_attribute("uninitialized_variables", [],
                                                set_to_default=True)
    before = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        del pending[before:]


def _family(builder):
    return builder.__module__.rsplit(".", 1)[-1]


def _first_line(builder):
    return (builder.__doc__ or "").strip().split("\n")[0]


def register(name, builder, paper, *, kwargs=None, dataset="imagenet", default_size=224,
             min_size=32, description=None):
    """Register ``name`` as ``builder(**kwargs)``; the family is the builder's module and the
    description defaults to the first line of its docstring. Returns ``builder``."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    if dataset not in ("imagenet", "cifar"):
        raise ValueError(f"{name}: dataset must be 'imagenet' or 'cifar', got {dataset!r}")
    MODELS[name] = ModelInfo(name, builder, dict(kwargs or {}), _family(builder), paper,
                             dataset, default_size, min_size,
                             description or _first_line(builder))
    return builder


def register_pattern(regex, examples, builder, paper, kwargs, description, *,
                     dataset="cifar", default_size=32, min_size=4):
    """Register every name matching ``regex`` (``wrn_(\\d+)_(\\d+)``): ``kwargs(match)`` gives
    the builder's arguments, ``description`` is formatted with the match's groups."""
    def factory(match):
        return ModelInfo(match.group(0), builder, kwargs(match), _family(builder), paper,
                         dataset, default_size, min_size, description.format(*match.groups()))

    PATTERNS.append((re.compile(regex), tuple(examples), factory))
