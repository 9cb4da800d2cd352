"""Model names → builders and what users need to know about each: paper, input sizes, dataset.

Names follow torchvision where torchvision has the model (``vgg16_bn``, ``resnext50_32x4d``);
``wrn_{depth}_{k}``, ``densenet_bc_{L}_{k}`` and ``preact_resnet{depth}`` accept any valid
numbers.
"""
import dataclasses
import difflib
import functools
import math
import re
import warnings
from typing import Callable

from . import models
from .models import alexnet, resnet
from .weights import PRETRAINED_VARIANT, SOURCES

PAPERS = {
    "alexnet": "Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep "
               "Convolutional Neural Networks, NIPS 2012",
    "alexnet_owt": "Krizhevsky, One weird trick for parallelizing convolutional neural "
                   "networks, arXiv:1404.5997, 2014",
    "zfnet": "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
    "vgg": "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
           "Recognition, ICLR 2015",
    "googlenet": "Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    "resnet": "He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016",
    "preact": "He, Zhang, Ren & Sun, Identity Mappings in Deep Residual Networks, ECCV 2016",
    "wrn": "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016",
    "resnext": "Xie, Girshick, Dollar, Tu & He, Aggregated Residual Transformations for Deep "
               "Neural Networks, CVPR 2017",
    "senet": "Hu, Shen & Sun, Squeeze-and-Excitation Networks, CVPR 2018",
    "densenet": "Huang, Liu, van der Maaten & Weinberger, Densely Connected Convolutional "
                "Networks, CVPR 2017",
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A registered model: ``build(**kwargs)`` calls ``builder(**self.kwargs, **kwargs)``."""

    name: str
    builder: Callable
    kwargs: dict
    family: str
    paper: str
    dataset: str  # "imagenet" (224x224 or the paper's size, 1000 classes) or "cifar" (32, 10)
    default_size: int
    min_size: int
    description: str

    @property
    def weights(self):
        """The :class:`~keras_classics.weights.WeightsRecord` of its ImageNet weights, or None."""
        return SOURCES.get(self.name)

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


def _doc(builder):
    return (builder.__doc__ or "").strip().split("\n")[0]


def _entries():
    e = {}

    def add(name, builder, family, paper, kwargs=None, dataset="imagenet", default_size=224,
            min_size=32, description=None):
        e[name] = ModelInfo(name, builder, dict(kwargs or {}), family, PAPERS[paper], dataset,
                            default_size, min_size, description or _doc(builder))

    add("alexnet", models.AlexNet, "alexnet", "alexnet", default_size=227,
        min_size=alexnet.ops_min_size(alexnet.alexnet_ops()))
    add("alexnet_owt", models.AlexNetOWT, "alexnet", "alexnet_owt",
        min_size=alexnet.ops_min_size(alexnet.alexnet_owt_ops()))
    add("zfnet", models.ZFNet, "alexnet", "zfnet",
        min_size=alexnet.ops_min_size(alexnet.zfnet_ops()))
    for depth, builder in ((11, models.VGG11), (13, models.VGG13), (16, models.VGG16),
                           (19, models.VGG19)):
        add(f"vgg{depth}", builder, "vgg", "vgg")
        add(f"vgg{depth}_bn", builder, "vgg", "vgg", {"batch_norm": True},
            description=f"VGG-{depth} with BatchNormalization after every conv (torchvision)")
    add("vgg11_lrn", models.VGG, "vgg", "vgg", {"config": "A-LRN"},
        description="VGG configuration A-LRN: A with LRN after the first conv")
    add("vgg16_c", models.VGG, "vgg", "vgg", {"config": "C"},
        description="VGG configuration C: 16 layers, a 1x1 conv ends blocks 3-5")
    add("googlenet", models.GoogLeNet, "googlenet", "googlenet")
    add("googlenet_bn", models.GoogLeNet, "googlenet", "googlenet",
        {"norm": "batch", "lrn": False, "five_kernel": 3, "dropout": 0.2, "last_pool": 2},
        description="torchvision's GoogLeNet: BN after every conv, 3x3 in the '5x5' branch, "
                    "no LRN, 2x2 pool before 5a")
    for name, (func, _, what) in resnet.VARIANTS.items():
        paper = ("senet" if name.startswith("se_") else "resnext" if "resnext" in name
                 else "wrn" if name.startswith("wide") else
                 "preact" if name.endswith("_v2") else "resnet")
        add(name, getattr(models, func), "resnet", paper, description=what)
    for depth in (121, 161, 169, 201, 264):
        add(f"densenet{depth}", getattr(models, f"DenseNet{depth}"), "densenet", "densenet")
    return e


_PATTERNS = [
    # regex, examples listed by list_models(), factory(match) -> ModelInfo
    (r"preact_resnet(\d+)", ("preact_resnet164", "preact_resnet1001"),
     lambda m: ModelInfo(m.group(0), models.CifarResNet, {"depth": int(m.group(1))},
                         "resnet", PAPERS["preact"], "cifar", 32, 4,
                         f"Pre-activation ResNet-{m.group(1)} for CIFAR (bottleneck blocks)")),
    (r"(resnet|plain)(\d+)_cifar", ("plain20_cifar", "resnet20_cifar", "resnet56_cifar"),
     lambda m: ModelInfo(m.group(0), models.CifarResNet,
                         {"depth": int(m.group(2)), "block": "basic", "version": "v1",
                          "residual": m.group(1) == "resnet"},
                         "resnet", PAPERS["resnet"], "cifar", 32, 4,
                         f"ResNet paper CIFAR {m.group(1)} net, {m.group(2)} layers")),
    (r"wrn_(\d+)_(\d+)", ("wrn_16_8", "wrn_28_10", "wrn_40_4"),
     lambda m: ModelInfo(m.group(0), models.WideResNet,
                         {"depth": int(m.group(1)), "width": int(m.group(2))},
                         "resnet", PAPERS["wrn"], "cifar", 32, 4,
                         f"Wide ResNet WRN-{m.group(1)}-{m.group(2)} for CIFAR")),
    (r"densenet_bc_(\d+)_(\d+)", ("densenet_bc_100_12", "densenet_bc_190_40",
                                  "densenet_bc_250_24"),
     lambda m: ModelInfo(m.group(0), models.DenseNetBC,
                         {"depth": int(m.group(1)), "growth_rate": int(m.group(2))},
                         "densenet", PAPERS["densenet"], "cifar", 32, 4,
                         f"DenseNet-BC L={m.group(1)}, k={m.group(2)} for CIFAR")),
]


@functools.lru_cache(maxsize=None)
def _registry():
    return _entries()


def list_models(family=None):
    """Registered names (sorted), with examples of the ``wrn_*``/``densenet_bc_*``/
    ``preact_resnet*`` patterns; ``family`` is one of alexnet, vgg, googlenet, resnet, densenet."""
    names = [*_registry(), *(ex for _, examples, _ in _PATTERNS for ex in examples)]
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
        if key in _registry():
            return _registry()[key]
        for pattern, _, factory in _PATTERNS:
            match = re.fullmatch(pattern, key)
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
    model = info.build(**kwargs)
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"name": info.name, "family": info.family, "dataset": info.dataset,
            "input": info.default_size, "min_input": info.min_size, "trainable": trainable,
            "total": model.count_params(), "layers": len(model.layers),
            "paper": info.paper, "description": info.description}
