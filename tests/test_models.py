"""Forward passes of every family at small inputs, the papers' feature-map sizes, pooling
options, minimum sizes and .keras round trips."""
import keras
import numpy as np
import pytest

import keras_classics as kc
from conftest import assert_close, random_images

# One small configuration per family (and per block kind), built at a small input.
SMALL = {
    "alexnet": dict(name="alexnet", input_shape=(67, 67, 3), classes=7),
    "alexnet_1tower": dict(name="alexnet", input_shape=(80, 80, 3), classes=7, groups=1),
    "zfnet": dict(name="zfnet", input_shape=(64, 64, 3), classes=7, widths=(64, 128, 64)),
    "vgg_a_lrn": dict(name="vgg11_lrn", input_shape=(32, 32, 3), classes=7),
    "vgg_c_bn": dict(name="vgg16_c", input_shape=(32, 32, 3), classes=7, batch_norm=True),
    "googlenet": dict(name="googlenet", input_shape=(64, 64, 3), classes=7),
    "googlenet_bn": dict(name="googlenet_bn", input_shape=(48, 48, 3), classes=7),
    "resnet18": dict(name="resnet18", input_shape=(32, 32, 3), classes=7),
    "resnet50_v2": dict(name="resnet50_v2", input_shape=(32, 32, 3), classes=7),
    "se_resnext50": dict(name="se_resnext50_32x4d", input_shape=(32, 32, 3), classes=7),
    "wrn": dict(name="wrn_16_2", input_shape=(16, 16, 3), classes=7, dropout=0.3),
    "preact_cifar": dict(name="preact_resnet29", input_shape=(16, 16, 3), classes=7),
    "densenet": dict(name="densenet121", input_shape=(32, 32, 3), classes=7),
    "densenet_bc": dict(name="densenet_bc_40_12", input_shape=(16, 16, 3), classes=7),
}


def build(key, **overrides):
    kwargs = {**SMALL[key], **overrides}
    return kc.get_model(kwargs.pop("name"), **kwargs)


@pytest.mark.parametrize("key", sorted(SMALL))
def test_forward_gives_class_probabilities(key):
    model = build(key)
    x = random_images(SMALL[key]["input_shape"])
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 7)
    assert_close(y.sum(axis=1), 1, rtol=1e-5)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("key", ["alexnet", "vgg_a_lrn", "googlenet", "resnet18", "densenet",
                                 "wrn"])
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_include_top_false_pooling(key, pooling):
    shape = SMALL[key]["input_shape"]
    model = build(key, include_top=False, pooling=pooling)
    out = model.output_shape
    assert len(out) == (4 if pooling is None else 2)
    y = np.asarray(model(random_images(shape)))
    assert y.shape[0] == 2 and y.shape[1:] == tuple(out[1:])


@pytest.mark.parametrize("name", ["alexnet", "zfnet", "vgg16", "googlenet", "resnet50",
                                  "resnet50_v2", "densenet121", "wrn_16_2", "alexnet_owt",
                                  "googlenet_bn", "densenet_bc_40_12"])
def test_builds_at_its_minimum_size_and_any_larger_non_square_one(name):
    info = kc.model_info(name)
    # the declared output shape is what the model computes on an image of that size (a pool
    # whose static shape is off by one fails here)
    for shape in ((info.min_size, info.min_size, 3), (info.min_size + 5, info.min_size + 31, 3)):
        m = info.build(include_top=False, input_shape=shape)
        out = np.asarray(m(np.zeros((1, *shape), "float32")))
        assert out.shape[1:] == m.output_shape[1:] and np.isfinite(out).all()
    with pytest.raises(ValueError, match=f"at least {info.min_size}x{info.min_size}"):
        info.build(include_top=False, input_shape=(info.min_size - 1, info.min_size + 40, 3))


def test_variable_size_backbone_runs_two_sizes():
    model = kc.ResNet18(include_top=False, pooling="avg")
    assert model.input_shape == (None, None, None, 3)
    assert model(random_images((40, 56, 3))).shape == (2, 512)
    assert model(random_images((64, 64, 3))).shape == (2, 512)


def feature_shapes(model, names):
    return {n: tuple(model.get_layer(n).output.shape[1:]) for n in names}


def test_alexnet_matches_the_lecture_table():
    model = kc.AlexNet(groups=1)  # the lecture draws one tower; 227x227x3 input
    assert model.input_shape == (None, 227, 227, 3)
    assert feature_shapes(model, ["conv1", "pool1", "norm1", "conv2", "pool2", "conv3",
                                  "conv4", "conv5", "pool5"]) == {
        "conv1": (55, 55, 96), "norm1": (55, 55, 96), "pool1": (27, 27, 96),
        "conv2": (27, 27, 256), "pool2": (13, 13, 256), "conv3": (13, 13, 384),
        "conv4": (13, 13, 384), "conv5": (13, 13, 256), "pool5": (6, 6, 256)}
    assert model.get_layer("conv1").count_params() == (11 * 11 * 3 + 1) * 96  # "35K"
    assert model.get_layer("fc6").units == 4096


def test_alexnet_two_gpu_grouping():
    two = kc.AlexNet(groups=2, include_top=False)
    assert [two.get_layer(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert two.get_layer("conv2").kernel.shape == (5, 5, 48, 256)


def test_zfnet_feature_maps_match_figure_3():
    model = kc.ZFNet()
    assert feature_shapes(model, ["conv1", "pool1", "conv2", "pool2", "conv5", "pool5"]) == {
        "conv1": (110, 110, 96), "pool1": (55, 55, 96), "conv2": (26, 26, 256),
        "pool2": (13, 13, 256), "conv5": (13, 13, 256), "pool5": (6, 6, 256)}


def test_zfnet_hyperparameters_are_arguments():
    alexlike = kc.ZFNet(conv1_kernel=11, conv1_stride=4, include_top=False)
    assert alexlike.get_layer("conv1").kernel.shape == (11, 11, 3, 96)
    wide = kc.ZFNet(widths=(512, 1024, 512), include_top=False)
    assert [wide.get_layer(f"conv{i}").filters for i in (3, 4, 5)] == [512, 1024, 512]


def test_vgg_configurations_follow_table_1():
    c = kc.VGG("C", include_top=False)
    assert [c.get_layer(f"block{b}_conv3").kernel_size for b in (3, 4, 5)] == [(1, 1)] * 3
    assert c.get_layer("block2_conv2").kernel_size == (3, 3)
    a_lrn = kc.VGG("A-LRN", include_top=False)
    assert isinstance(a_lrn.get_layer("block1_lrn"), kc.layers.LocalResponseNormalization)
    bn = kc.VGG16(batch_norm=True, include_top=False)
    assert bn.name == "vgg16_bn" and bn.get_layer("block1_conv1_bn")
    assert kc.VGG16(include_top=False).output_shape == (None, None, None, 512)


def test_googlenet_aux_outputs_and_paper_stem():
    model = kc.GoogLeNet(aux_logits=True, classes=7)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 7)] * 3
    assert model.get_layer("aux1_pool").output.shape[1:] == (4, 4, 512)  # section 5
    assert model.get_layer("inception_5b_5x5").kernel.shape[:2] == (5, 5)
    assert model.get_layer("inception_3a_output").output.shape[1:] == (28, 28, 256)
    assert model.get_layer("inception_5b_output").output.shape[1:] == (7, 7, 1024)
    y = model(random_images((224, 224, 3), batch=1))
    assert len(y) == 3


def test_googlenet_bn_is_torchvisions_topology():
    model = kc.get_model("googlenet_bn", include_top=False)
    assert model.get_layer("inception_3a_5x5").kernel.shape[:2] == (3, 3)
    assert not any(isinstance(l, kc.layers.LocalResponseNormalization) for l in model.layers)


@pytest.mark.parametrize("norm,cls", [("batch", "BatchNormalization"),
                                      ("group", "GroupNormalization"),
                                      ("layer", "GroupNormalization"),
                                      ("instance", "GroupNormalization"), (None, None)])
@pytest.mark.parametrize("name", ["resnet18", "densenet_bc_40_12", "googlenet", "vgg11",
                                  "alexnet", "wrn_10_1"])
def test_every_builder_accepts_every_norm(name, norm, cls):
    info = kc.model_info(name)
    model = info.build(norm=norm, include_top=False, input_shape=(info.min_size,) * 2 + (3,))
    kinds = {l.__class__.__name__ for l in model.layers}
    if cls is None:
        assert not kinds & {"BatchNormalization", "GroupNormalization"}
    else:
        assert cls in kinds
    assert np.isfinite(np.asarray(model(random_images(model.input_shape[1:])))).all()


def test_resnet_stride_placement_and_bias():
    v1 = kc.ResNet50(include_top=False)
    assert v1.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v1.get_layer("conv3_block1_1_conv").use_bias
    v15 = kc.get_model("resnet50_v1_5", include_top=False)
    assert v15.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert not v15.get_layer("conv3_block1_1_conv").use_bias
    x = kc.get_model("resnext50_32x4d", include_top=False)
    assert x.get_layer("conv2_block1_2_conv").groups == 32
    assert x.get_layer("conv2_block1_2_conv").filters == 128
    assert kc.get_model("wide_resnet50_2", include_top=False) \
        .get_layer("conv2_block1_2_conv").filters == 128


@pytest.mark.parametrize("key", ["alexnet", "vgg_a_lrn", "googlenet", "se_resnext50", "wrn",
                                 "densenet_bc", "resnet50_v2"])
def test_keras_file_round_trip(key, tmp_path):
    kwargs = {"aux_logits": True, "input_shape": (79, 79, 3)} if key == "googlenet" else {}
    model = build(key, **kwargs)
    x = random_images(model.input_shape[1:])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(keras.tree.flatten(loaded(x)), keras.tree.flatten(model(x))):
        assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_input_tensor_is_used():
    t = keras.Input((40, 40, 3), name="img")
    model = kc.ResNet18(input_tensor=t, include_top=False)
    assert model.inputs[0] is t
    assert model.output_shape == (None, 2, 2, 512)
