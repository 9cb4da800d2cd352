"""One module per family; every public builder has the keras.applications signature."""
from .alexnet import AlexNet, AlexNetOWT, ZFNet
from .densenet import (DenseNet, DenseNet121, DenseNet161, DenseNet169, DenseNet201,
                       DenseNet264, DenseNetBC)
from .googlenet import GoogLeNet
from .resnet import (CifarResNet, PreActResNet164, PreActResNet1001, ResNet, WideResNet,
                     ResNet18, ResNet34, ResNet50, ResNet101, ResNet152, ResNet50V1_5,
                     ResNet101V1_5, ResNet152V1_5, ResNet50V2, ResNet101V2, ResNet152V2,
                     WideResNet50_2, WideResNet101_2, ResNeXt50_32x4d, ResNeXt101_32x8d,
                     ResNeXt101_64x4d, SEResNet50, SEResNet101, SEResNet152, SEResNeXt50_32x4d,
                     SEResNeXt101_32x4d)
from .vgg import VGG, VGG11, VGG13, VGG16, VGG19

__all__ = [
    "AlexNet", "AlexNetOWT", "ZFNet", "VGG", "VGG11", "VGG13", "VGG16", "VGG19", "GoogLeNet",
    "ResNet", "CifarResNet", "PreActResNet164", "PreActResNet1001", "WideResNet",
    "DenseNet", "DenseNet121", "DenseNet161", "DenseNet169", "DenseNet201", "DenseNet264",
    "DenseNetBC",
    "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNet50V1_5", "ResNet101V1_5",
    "ResNet152V1_5", "ResNet50V2", "ResNet101V2", "ResNet152V2", "WideResNet50_2",
    "WideResNet101_2", "ResNeXt50_32x4d", "ResNeXt101_32x8d", "ResNeXt101_64x4d", "SEResNet50",
    "SEResNet101", "SEResNet152", "SEResNeXt50_32x4d", "SEResNeXt101_32x4d",
]
