"""keras_classics.profile against the lecture's tables, the papers, torchvision and TensorFlow's
own profiler."""
import csv
import json
from pathlib import Path

import keras
import pytest

import keras_classics as kc
from keras_classics import analysis

from conftest import call_tool

ROOT = Path(__file__).resolve().parents[1]

# The lecture's VGG16 table: (label, output shape, params without biases).
LECTURE_VGG16 = [
    ("INPUT", (224, 224, 3), 0),
    ("CONV3-64", (224, 224, 64), 1_728), ("CONV3-64", (224, 224, 64), 36_864),
    ("POOL", (112, 112, 64), 0),
    ("CONV3-128", (112, 112, 128), 73_728), ("CONV3-128", (112, 112, 128), 147_456),
    ("POOL", (56, 56, 128), 0),
    ("CONV3-256", (56, 56, 256), 294_912), ("CONV3-256", (56, 56, 256), 589_824),
    ("CONV3-256", (56, 56, 256), 589_824), ("POOL", (28, 28, 256), 0),
    ("CONV3-512", (28, 28, 512), 1_179_648), ("CONV3-512", (28, 28, 512), 2_359_296),
    ("CONV3-512", (28, 28, 512), 2_359_296), ("POOL", (14, 14, 512), 0),
    ("CONV3-512", (14, 14, 512), 2_359_296), ("CONV3-512", (14, 14, 512), 2_359_296),
    ("CONV3-512", (14, 14, 512), 2_359_296), ("POOL", (7, 7, 512), 0),
    ("FC", (4096,), 102_760_448), ("FC", (4096,), 16_777_216), ("FC", (1000,), 4_096_000),
]


@pytest.fixture(scope="module")
def vgg16():
    return kc.profile("vgg16")


def test_vgg16_reproduces_every_row_of_the_lecture_table(vgg16):
    rows = [r for r in vgg16.rows if r.counted]
    got = [(analysis._label(r), r.output_shape, r.weights) for r in rows]
    assert got == LECTURE_VGG16
    assert [r.activations for r in rows] == [
        int(__import__("math").prod(shape)) for _, shape, _ in LECTURE_VGG16]


def test_vgg16_totals(vgg16):
    assert vgg16.params == 138_357_544
    # The lecture's rows add up to 15.2 M activations (it prints "24M"); we count those rows.
    assert vgg16.activations == sum(__import__("math").prod(s) for _, s, _ in LECTURE_VGG16)
    assert vgg16.activations == 15_237_608
    assert round(vgg16.macs / 1e9, 3) == 15.470  # torchvision's vgg16 GFLOPS
    bottlenecks = vgg16.bottlenecks()
    assert bottlenecks["params"][0][0] == "fc1"  # the lecture: FC layers hold the parameters
    assert {n for n, _, _ in bottlenecks["activations"][:2]} == {"block1_conv1",
                                                                  "block1_conv2"}


def test_vgg16_training_memory_split(vgg16):
    p = vgg16.params * 4
    mem = vgg16.training_memory("momentum")
    assert mem["parameters"] == mem["gradients"] == mem["optimizer_slots"] == p
    assert mem["layer_outputs"] == mem["layer_errors"] == 15_237_608 * 4
    assert vgg16.training_memory("sgd")["optimizer_slots"] == 0
    adam = vgg16.training_memory("adam", batch_size=8)
    assert adam["optimizer_slots"] == 2 * p and adam["layer_outputs"] == 8 * 15_237_608 * 4
    assert adam["total"] == sum(v for k, v in adam.items() if k != "total")
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        vgg16.training_memory("lbfgs")


def test_alexnet_conv1_as_in_the_lecture():
    prof = kc.profile("alexnet")
    conv1 = next(r for r in prof.rows if r.name == "conv1")
    assert conv1.output_shape == (55, 55, 96) and conv1.params == 34_944
    pool1 = next(r for r in prof.rows if r.name == "pool1")
    assert pool1.output_shape == (27, 27, 96) and pool1.params == 0


# ResNet paper Table 1 "FLOPs" (multiply-adds). The paper truncates some figures (3.66 -> 3.6,
# 3.86 -> 3.8) and rounds others (7.57 -> 7.6, 11.28 -> 11.3): we agree within 0.07 G.
@pytest.mark.parametrize("name,paper", [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50", 3.8),
                                        ("resnet101", 7.6), ("resnet152", 11.3)])
def test_resnet_macs_match_the_paper(name, paper):
    assert abs(kc.profile(name).macs / 1e9 - paper) < 0.07


TORCHVISION_GMACS = {
    "alexnet_owt": 0.714, "vgg11": 7.609, "vgg13": 11.308, "vgg19_bn": 19.632,
    "googlenet_bn": 1.498, "resnet18": 1.814, "resnet34": 3.664, "resnet50_v1_5": 4.089,
    "resnet101_v1_5": 7.801, "resnet152_v1_5": 11.514, "wide_resnet50_2": 11.398,
    "wide_resnet101_2": 22.753, "resnext50_32x4d": 4.230, "resnext101_32x8d": 16.414,
    "densenet121": 2.834, "densenet161": 7.728, "densenet169": 3.360, "densenet201": 4.291,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_macs_match_torchvision(name):
    assert kc.profile(name).macs / 1e9 == pytest.approx(TORCHVISION_GMACS[name], abs=6e-4)


@pytest.mark.parametrize("name,shape", [("resnet18", (64, 64, 3)), ("googlenet", (96, 96, 3)),
                                        ("se_resnet50", (64, 64, 3)),
                                        ("densenet_bc_40_12", (32, 32, 3)),
                                        ("vgg11_lrn", (32, 32, 3))])
def test_macs_match_tensorflow_profiler(name, shape):
    model = kc.get_model(name, input_shape=shape)
    flops = analysis.tf_profiler_flops(model)
    assert 2 * kc.profile(model).macs == flops["Conv2D"] + flops.get("MatMul", 0)


def test_any_functional_model_depthwise_separable_dense():
    x = keras.Input((16, 16, 8))
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    y = keras.layers.SeparableConv2D(16, 3, padding="same")(y)
    y = keras.layers.Conv2D(32, 3, strides=2, padding="same", groups=4)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(10)(y))
    prof = kc.profile(model)
    by_type = {r.type: r.macs for r in prof.rows}
    assert by_type["DepthwiseConv2D"] == 16 * 16 * 8 * 9
    assert by_type["SeparableConv2D"] == 16 * 16 * 8 * 9 + 16 * 16 * 8 * 16
    assert by_type["Conv2D"] == 8 * 8 * 32 * 9 * 16 // 4
    assert by_type["Dense"] == 32 * 10
    # TensorFlow's profiler has no statistics for grouped Conv2D (its shapes are unknown in
    # the graph), so the cross-check covers the depthwise and separable layers.
    flops = analysis.tf_profiler_flops(model)
    assert 2 * (by_type["DepthwiseConv2D"] + by_type["SeparableConv2D"]) == \
        flops["DepthwiseConv2dNative"] + flops["Conv2D"]


def test_googlenet_vs_alexnet_parameters():
    ratio = kc.profile("alexnet").params / kc.profile("googlenet").params
    # The lecture says "12x fewer" (60 M / 5 M); the paper-faithful nets give 8.7x.
    assert round(ratio, 1) == 8.7


def test_multi_output_model_counts_the_aux_heads():
    main = kc.profile(kc.GoogLeNet())
    aux = kc.profile(kc.GoogLeNet(aux_logits=True))
    heads = [r for r in aux.rows if r.name.startswith(("aux1", "aux2"))]
    assert {r.name for r in heads} >= {"aux1_fc", "aux2_predictions"}
    assert aux.macs == main.macs + sum(r.macs for r in heads)


def test_input_shape_override_and_nested_models():
    backbone = kc.ResNet18(include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="unknown sizes; pass input_shape"):
        kc.profile(backbone)
    at64 = kc.profile(backbone, input_shape=(64, 64, 3))
    assert at64.macs == kc.profile(kc.ResNet18(include_top=False, pooling="avg",
                                               input_shape=(64, 64, 3))).macs
    head = keras.Sequential([keras.Input((64, 64, 3)), backbone, keras.layers.Dense(5)])
    nested = kc.profile(head)
    assert nested.macs == at64.macs + 512 * 5
    assert any(r.name.startswith("resnet18/conv2_block1") for r in nested.rows)


def test_private_graph_call_is_pinned_to_the_keras_version_it_was_checked_with():
    """analysis re-runs a functional graph through Keras' private ``_run_through_graph``
    (no public API does this): a new Keras minor version must be checked again, then
    ``analysis.KERAS_CHECKED`` updated."""
    assert ".".join(keras.__version__.split(".")[:2]) == analysis.KERAS_CHECKED
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Dense(2)(inp)))
    seen = []

    def fn(op):
        def call(*args, **kwargs):
            seen.append((op.name, tuple(args[0].shape)))
            return op.compute_output_spec(*args, **kwargs)
        return call

    out = analysis._run_graph(model, keras.KerasTensor((7, 4)), fn)
    assert tuple(out.shape) == (7, 3)
    assert seen == [(model.layers[1].name, (7, 4)), (model.layers[2].name, (7, 2))]


def pending_initializers():
    """Keras's list of variables created in a StatelessScope and not yet initialized."""
    from keras.src.backend.common import global_state

    return list(global_state.get_global_attribute("uninitialized_variables") or [])


# one model per family and block kind (LRN, BN-less FCs, Inception, bottleneck, SE, dense)
@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn", "googlenet", "resnet50", "wrn_16_8",
                                  "se_resnext50_32x4d", "densenet121", "preact_resnet164"])
def test_profile_by_name_builds_shapes_only_and_matches_the_real_model(name):
    """profile(name) builds with ModelInfo.build_shapes (no initializer runs): the same rows
    and totals as profiling the model get_model(name) gives users, and nothing left on Keras's
    list of variables to initialize (the next StatelessScope would allocate them). Keras
    private state is read here, as in build_shapes: pinned with analysis.KERAS_CHECKED."""
    before = pending_initializers()
    real = analysis.profile(kc.get_model(name))
    by_name = analysis.profile(name)
    assert by_name.rows == real.rows and by_name.macs == real.macs > 0
    assert (by_name.trainable_params, by_name.non_trainable_params) == \
        (real.trainable_params, real.non_trainable_params)
    shapes = kc.model_info(name).build_shapes()
    assert shapes.count_params() == sum(r.params for r in real.rows)
    assert all(v._value is None for v in shapes.weights)  # not initialized: not allocated
    assert pending_initializers() == before
    with keras.StatelessScope():  # leaving a scope initializes what is pending: not these
        pass
    assert all(v._value is None for v in shapes.weights)
    with pytest.raises(ValueError, match="without weights"):
        kc.model_info(name).build_shapes(weights="imagenet")


def test_subclassed_model_is_refused():
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="needs a functional"):
        kc.profile(Sub())


def test_inception_example_arithmetic():
    res = analysis.inception_example()
    hw = 28 * 28
    assert res["naive"]["macs"] == hw * 256 * (128 + 192 * 9 + 96 * 25) == 854_196_224
    assert res["reduced"]["macs"] == hw * (64 * 256 + 64 * 256 + 128 * 256 + 192 * 9 * 64
                                           + 96 * 25 * 64 + 64 * 256) == 271_351_808
    assert res["naive"]["output_channels"] == 672 and res["reduced"]["output_channels"] == 480


def run_tool(*args):
    return call_tool("analyze", *args)


def test_cli_lecture_table_and_training_memory():
    result = run_tool("vgg16", "--train", "adam", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert "CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*3)*64 = 1,728" in \
        result.stdout
    assert "Total memory: 15,237,608 activations" in result.stdout
    assert "optimizer slots" in result.stdout and "Bottlenecks:" in result.stdout


def test_cli_json_and_csv():
    result = run_tool("resnet18", "--input-size", "64", "--format", "json")
    data = json.loads(result.stdout)
    assert data["model"] == "resnet18" and data["input_shape"] == [64, 64, 3]
    assert data["macs"] == kc.profile("resnet18", input_shape=(64, 64, 3)).macs
    csv_out = run_tool("alexnet", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("name,type,output_shape")
    rows = list(csv.DictReader(csv_out))
    model = kc.get_model("alexnet")
    # one row per layer, in the model's order; the params column adds up to the model's
    assert [r["name"] for r in rows] == [l.name for l in model.layers]
    assert sum(int(r["params"]) for r in rows) == model.count_params()


def test_cli_inception_example_flags_the_slide():
    out = run_tool("--inception-example").stdout
    assert "854,196,224" in out and "271,351,808" in out
    assert "the slide prints 358M, but its own listed convolutions add up to 271M" in out


def test_cli_zoo_plot_and_csv(tmp_path):
    png = tmp_path / "zoo.png"
    result = run_tool("--zoo", "--models", "alexnet_owt", "vgg11", "resnet18", "--plot",
                      str(png))
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    lines = (tmp_path / "zoo.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("name,family")
    assert ",69.758\n" in (tmp_path / "zoo.csv").read_text()  # resnet18 torchvision acc@1


def test_cli_bad_input():
    res = run_tool("vgg16", "--train", "lbfgs")
    assert res.returncode == 2 and "unknown optimizer 'lbfgs'; allowed: sgd" in res.stderr, res.stderr
    bad = run_tool("vgg17")
    assert bad.returncode == 2 and "did you mean" in bad.stderr
