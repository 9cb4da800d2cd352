"""Bad input: a ValueError naming the model, the value given and what is allowed, raised before
TensorFlow builds anything."""
import pytest

import keras_classics as kc


def test_below_minimum_size():
    with pytest.raises(ValueError, match=r"vgg16 needs inputs of at least 32x32, got 16x16"):
        kc.VGG16(include_top=False, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match=r"alexnet needs inputs of at least 67x67, got 66x70"):
        kc.AlexNet(include_top=False, input_shape=(66, 70, 3))
    with pytest.raises(ValueError, match=r"googlenet needs inputs of at least 79x79"):
        kc.GoogLeNet(aux_logits=True, input_shape=(64, 64, 3))


def test_wrong_channel_count_for_imagenet_weights():
    with pytest.raises(ValueError, match="resnet50: weights='imagenet' needs 3 input channels, "
                                         "got 1"):
        kc.ResNet50(weights="imagenet", input_shape=(224, 224, 1))


def test_top_with_weights_needs_the_weights_input_size(tmp_path):
    weights = tmp_path / "vgg.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=r"vgg16: include_top=True with pretrained weights "
                                         r"needs input_shape \(224, 224, 3\), got \(128, 128, 3\)"):
        kc.VGG16(weights=str(weights), input_shape=(128, 128, 3))


def test_flattening_top_needs_a_fixed_size():
    with pytest.raises(ValueError, match="alexnet: include_top=True flattens"):
        kc.AlexNet(input_shape=(None, None, 3))


@pytest.mark.parametrize("builder", [kc.VGG16, kc.ResNet50, kc.DenseNet121, kc.GoogLeNet,
                                     kc.AlexNet, kc.WideResNet])
def test_unknown_norm(builder):
    with pytest.raises(ValueError, match=r"unknown norm 'batchnorm'; allowed: 'batch', "
                                         r"'group', 'layer', 'instance', None"):
        builder(norm="batchnorm")


@pytest.mark.parametrize("kwargs,match", [
    (dict(pooling="mean", include_top=False), "pooling must be None, 'avg' or 'max', got 'mean'"),
    (dict(classes=0), "classes must be a positive int, got 0"),
    (dict(input_shape=(224, 224)), r"input_shape must be \(height, width, channels\)"),
    (dict(weights="missing.weights.h5"), "weights file 'missing.weights.h5' does not exist"),
    (dict(weights="model.pt"),
     "weights must be None, 'imagenet' or a path ending in .weights.h5, .h5, .keras"),
])
def test_bad_common_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.ResNet18(**kwargs)


@pytest.mark.parametrize("name,match", [
    ("wrn_27_10", r"wrn_27_10: depth must be 6n\+4"),
    ("densenet_bc_101_12", r"densenet_bc_101_12: depth must be 6n\+4"),
    ("preact_resnet100", r"preact_resnet100: depth must be 9n\+2"),
])
def test_bad_pattern_depths(name, match):
    with pytest.raises(ValueError, match=match):
        kc.get_model(name)


def test_family_specific_arguments():
    with pytest.raises(ValueError, match="alexnet: groups must be 1"):
        kc.AlexNet(groups=4)
    with pytest.raises(ValueError, match="vgg: unknown config 'F'; allowed: A, A-LRN, B, C, D, E"):
        kc.VGG("F")
    with pytest.raises(ValueError, match="resnet18: groups/base_width need a bottleneck depth"):
        kc.ResNet(18, groups=32)
    with pytest.raises(ValueError, match=r"resnet42: depth must be one of \[18, 34"):
        kc.ResNet(42)
    with pytest.raises(ValueError, match="aux_logits=True needs include_top=True"):
        kc.GoogLeNet(aux_logits=True, include_top=False)


def test_weights_of_another_architecture_raise(tmp_path):
    path = tmp_path / "r18.weights.h5"
    kc.ResNet18(include_top=False, input_shape=(32, 32, 3)).save_weights(path)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="resnet34: could not load"):
        kc.ResNet34(include_top=False, input_shape=(32, 32, 3), weights=str(path))
