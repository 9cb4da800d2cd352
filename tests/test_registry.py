import pytest

import keras_classics as kc

REQUIRED = ["alexnet", "zfnet", "vgg11", "vgg11_bn", "vgg11_lrn", "vgg13", "vgg16", "vgg16_bn",
            "vgg16_c", "vgg19", "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50",
            "resnet101", "resnet152", "resnet50_v2", "resnet101_v2", "resnet152_v2",
            "preact_resnet164", "preact_resnet1001", "wide_resnet50_2", "wide_resnet101_2",
            "wrn_28_10", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
            "se_resnet50", "se_resnet101", "se_resnet152", "se_resnext50_32x4d",
            "se_resnext101_32x4d", "densenet121", "densenet161", "densenet169", "densenet201",
            "densenet264", "densenet_bc_100_12"]


def test_list_models_has_every_required_name():
    assert set(REQUIRED) <= set(kc.list_models())
    assert kc.list_models() == sorted(kc.list_models())


def test_list_models_by_family():
    assert kc.list_models("vgg") == ["vgg11", "vgg11_bn", "vgg11_lrn", "vgg13", "vgg13_bn",
                                     "vgg16", "vgg16_bn", "vgg16_c", "vgg19", "vgg19_bn"]
    with pytest.raises(ValueError, match="unknown family 'lenet'"):
        kc.list_models("lenet")


def test_model_info_carries_paper_and_sizes():
    info = kc.model_info("alexnet")
    assert "Krizhevsky" in info.paper and info.default_size == 227 and info.min_size == 67
    wrn = kc.model_info("wrn_40_4")
    assert wrn.dataset == "cifar" and wrn.kwargs == {"depth": 40, "width": 4}
    assert "Zagoruyko" in wrn.paper
    assert kc.model_info("ResNet-50").name == "resnet50"


def test_get_model_passes_arguments_and_names_the_model():
    model = kc.get_model("densenet_bc_40_12", classes=3)
    assert model.name == "densenet_bc_40_12" and model.output_shape == (None, 3)
    assert kc.get_model("vgg16_bn", include_top=False).get_layer("block5_conv3_bn")


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'vgg17'; did you mean .*vgg16"):
        kc.get_model("vgg17")
    with pytest.raises(ValueError, match="resnext50_32x4d"):
        kc.get_model("resnext50")


def test_every_resnet_variant_row_has_its_public_builder():
    from keras_classics.models import resnet

    imagenet = [n for n in kc.list_models("resnet") if kc.model_info(n).dataset == "imagenet"]
    assert len(imagenet) == 21  # ResNet 18-152, v1.5, v2, Wide, ResNeXt, SE
    for name in imagenet:
        info = kc.model_info(name)
        func = info.builder.__name__
        builder = getattr(kc.models, func)
        assert func in kc.models.__all__ and builder is getattr(resnet, func)
        assert builder.__doc__.startswith(info.description)
        assert kc.model_info(name).builder is builder
