"""One module per family; every public builder has the keras.applications signature."""
from .alexnet import AlexNet, AlexNetOWT, ZFNet
from .densenet import (DenseNet, DenseNet121, DenseNet161, DenseNet169, DenseNet201,
                       DenseNet264, DenseNetBC)
from .googlenet import GoogLeNet
from .resnet import (VARIANTS as _RESNETS, CifarResNet, PreActResNet164, PreActResNet1001,
                     ResNet, WideResNet)
from . import resnet as _resnet
from .vgg import VGG, VGG11, VGG13, VGG16, VGG19

globals().update({func: getattr(_resnet, func) for func, _, _ in _RESNETS.values()})

__all__ = [
    "AlexNet", "AlexNetOWT", "ZFNet", "VGG", "VGG11", "VGG13", "VGG16", "VGG19", "GoogLeNet",
    "ResNet", "CifarResNet", "PreActResNet164", "PreActResNet1001", "WideResNet",
    "DenseNet", "DenseNet121", "DenseNet161", "DenseNet169", "DenseNet201", "DenseNet264",
    "DenseNetBC", *(func for func, _, _ in _RESNETS.values()),
]
