"""The shared building blocks: numerics against plain-numpy formulas, configs, .keras round trips."""
import keras
import numpy as np
import pytest

import keras_classics as kc
from keras_classics import layers as L
from conftest import assert_close, random_images


def lrn_reference(a, n, k, alpha, beta):
    """The AlexNet paper's formula (section 3.3), written out channel by channel."""
    out = np.empty_like(a)
    channels = a.shape[-1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[..., i] = a[..., i] / (k + alpha * (a[..., lo:hi + 1] ** 2).sum(-1)) ** beta
    return out


def test_lrn_is_the_paper_formula():
    a = np.random.default_rng(1).normal(0, 20, (2, 5, 5, 16)).astype("float32")
    layer = L.LocalResponseNormalization()  # the paper: n=5, k=2, alpha=1e-4, beta=0.75
    assert_close(layer(a), lrn_reference(a, 5, 2.0, 1e-4, 0.75), rtol=1e-5)


def test_lrn_caffe_alpha_is_divided_by_n():
    a = np.random.default_rng(2).normal(0, 20, (1, 3, 3, 12)).astype("float32")
    caffe = L.LocalResponseNormalization.from_caffe(size=5, alpha=5e-4, beta=0.75, k=2.0)
    assert caffe.alpha == pytest.approx(1e-4)
    # PyTorch's LocalResponseNorm(5, alpha=5e-4, k=2): a / (k + alpha/n * sum a^2)^beta
    assert_close(caffe(a), lrn_reference(a, 5, 2.0, 5e-4 / 5, 0.75), rtol=1e-5)


@pytest.mark.parametrize("n,k,alpha,beta", [(5, 2.0, 1e-4, 0.75), (3, 1.0, 2e-3, 0.5)])
def test_lrn_matches_tensorflow_and_pytorch(n, k, alpha, beta):
    """The documented mappings of the paper's (n, k, alpha, beta): TensorFlow's
    ``local_response_normalization(depth_radius=n//2, bias=k, alpha=alpha, beta=beta)`` sums
    the same window; PyTorch's ``local_response_norm(size=n, alpha=alpha*n, beta, k)`` divides
    alpha by n (Caffe's convention), channels first."""
    import tensorflow as tf
    import torch

    a = np.random.default_rng(3).normal(0, 20, (2, 4, 4, 13)).astype("float32")
    ours = np.asarray(L.LocalResponseNormalization(size=n, k=k, alpha=alpha, beta=beta)(a))
    assert np.isfinite(ours).all()
    tf_out = tf.nn.local_response_normalization(a, depth_radius=n // 2, bias=k, alpha=alpha,
                                                beta=beta).numpy()
    assert_close(ours, tf_out, rtol=1e-5)
    torch_out = torch.nn.functional.local_response_norm(
        torch.from_numpy(a.transpose(0, 3, 1, 2).copy()), size=n, alpha=alpha * n, beta=beta,
        k=k).numpy().transpose(0, 2, 3, 1)
    assert_close(ours, torch_out, rtol=1e-5)


def xla_compiled_calls(concrete):
    """The function calls in ``concrete``'s graph (and the graphs it calls) that XLA must
    compile."""
    graphs = [concrete.graph.as_graph_def()]
    nodes = list(graphs[0].node) + [n for f in graphs[0].library.function for n in f.node_def]
    names = {f.signature.name for f in graphs[0].library.function
             if f.attr.get("_XlaMustCompile") and f.attr["_XlaMustCompile"].b}
    return [n for n in nodes if (n.attr.get("_XlaMustCompile") and n.attr["_XlaMustCompile"].b)
            or n.attr["f"].func.name in names]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_lrn_in_training_is_compiled_and_gives_pytorch_s_output_and_gradient(dtype):
    """In training the layer is XLA-compiled (TensorFlow's CPU gradient of LRN is slow); its
    output and gradient are PyTorch's (autograd), in float32 and under mixed bfloat16. In
    inference it is TensorFlow's kernel: no XLA in what an export serves."""
    import tensorflow as tf
    import torch

    a = np.random.default_rng(4).normal(0, 20, (2, 6, 6, 24)).astype("float32")
    upstream = np.random.default_rng(5).normal(0, 1, a.shape).astype("float32")
    layer = L.LocalResponseNormalization(dtype="mixed_bfloat16" if dtype == "bfloat16"
                                         else "float32")
    x = tf.cast(a, dtype)
    a = np.asarray(tf.cast(x, "float32"))  # the bfloat16 inputs, exactly

    @tf.function
    def step(x, training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
        return y, tape.gradient(y, x, tf.cast(upstream, dtype))

    t = torch.from_numpy(a.transpose(0, 3, 1, 2).copy()).requires_grad_()
    want = torch.nn.functional.local_response_norm(t, size=5, alpha=5e-4, beta=0.75, k=2.0)
    want.backward(torch.from_numpy(upstream.transpose(0, 3, 1, 2).copy()))
    rtol = 1e-5 if dtype == "float32" else 1e-2  # bfloat16 keeps 8 bits of the result
    y, grad = step(x, True)
    assert y.dtype == grad.dtype == dtype
    assert_close(tf.cast(y, "float32"), want.detach().numpy().transpose(0, 2, 3, 1), rtol=rtol,
                 atol=rtol * 1e-2)
    assert_close(tf.cast(grad, "float32"), t.grad.numpy().transpose(0, 2, 3, 1), rtol=rtol,
                 atol=rtol * 1e-2)
    assert xla_compiled_calls(step.get_concrete_function(x, True))
    assert not xla_compiled_calls(step.get_concrete_function(x, False))
    assert not xla_compiled_calls(tf.function(layer).get_concrete_function(x))


def test_lrn_rejects_even_size():
    with pytest.raises(ValueError, match="odd"):
        L.LocalResponseNormalization(size=4)


def test_squeeze_excite_matches_numpy():
    x = random_images((4, 4, 32))
    layer = L.SqueezeExcite(ratio=8)
    y = np.asarray(layer(x))
    w1, b1, w2, b2 = (np.asarray(w) for w in layer.weights)
    assert w1.shape == (32, 4) and w2.shape == (4, 32)
    s = x.mean(axis=(1, 2))
    s = np.maximum(s @ w1 + b1, 0) @ w2 + b2
    assert_close(y, x * (1 / (1 + np.exp(-s)))[:, None, None, :], rtol=1e-5,
                               atol=1e-6)


def test_squeeze_excite_divisor_rounds_up():
    assert L.SqueezeExcite(16).reduced_channels(64) == 4
    assert L.SqueezeExcite(16, divisor=8).reduced_channels(64) == 8


@pytest.mark.parametrize("norm,cls,groups", [("batch", "BatchNormalization", None),
                                             ("group", "GroupNormalization", 16),
                                             ("layer", "GroupNormalization", 1),
                                             ("instance", "GroupNormalization", 48)])
def test_norm_factory(norm, cls, groups):
    x = keras.Input((8, 8, 48))
    y = L.normalize(x, norm, "conv1")
    layer = y._keras_history.operation
    assert layer.__class__.__name__ == cls
    assert layer.name == "conv1_" + {"batch": "bn", "group": "gn", "layer": "ln",
                                     "instance": "in"}[norm]
    if groups:
        assert layer.groups == groups


def test_instance_norm_normalizes_each_channel_of_each_image():
    x = keras.Input((6, 6, 4))
    model = keras.Model(x, L.normalize(x, "instance", "n"))
    y = np.asarray(model(random_images((6, 6, 4)) * 5 + 3))
    assert_close(y.mean(axis=(1, 2)), 0, atol=1e-4)
    assert_close(y.std(axis=(1, 2)), 1, atol=1e-2)


def test_unknown_norm_lists_allowed():
    with pytest.raises(ValueError, match="'batch', 'group', 'layer', 'instance', None"):
        L.normalize(keras.Input((4, 4, 8)), "weight", "x")


def test_inception_v1_module_channels_and_naive_form():
    x = keras.Input((28, 28, 192))
    y = L.inception_v1_module(x, (64, 96, 128, 16, 32, 32), "inception_3a")
    assert y.shape[-1] == 64 + 128 + 32 + 32
    naive = L.inception_v1_module(x, (64, 96, 128, 16, 32, 32), "naive", naive=True)
    assert naive.shape[-1] == 64 + 128 + 32 + 192  # the pool branch passes all 192 through
    names = {layer.name for layer in keras.Model(x, [y, naive]).layers}
    assert "inception_3a_3x3_reduce" in names and "naive_3x3_reduce" not in names


def test_dense_block_and_transition_channels():
    x = keras.Input((16, 16, 24))
    y = L.dense_block(x, 4, growth_rate=12, name="conv2")
    assert y.shape[-1] == 24 + 4 * 12
    t = L.transition_block(y, "pool2", compression=0.5)
    assert tuple(t.shape[1:]) == (8, 8, 36)


@pytest.mark.parametrize("kwargs,out", [
    (dict(groups=32, base_width=4), 256),  # ResNeXt
    (dict(base_width=128), 256),           # Wide ResNet
    (dict(se_ratio=16), 256),              # SE
    (dict(preact=True), 256),
])
def test_bottleneck_variants(kwargs, out):
    x = keras.Input((8, 8, 64))
    y = L.bottleneck_block(x, 64, "conv2_block1", stride=2, **kwargs)
    assert tuple(y.shape[1:]) == (4, 4, out)


def all_layers_model():
    x = inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(32, 3, padding="same")(x)
    x = L.LocalResponseNormalization(name="lrn")(x)
    x = L.inception_v1_module(x, (8, 8, 16, 4, 8, 8), "inc")
    x = L.basic_block(x, 32, "b1", norm="group", se_ratio=4)
    x = L.basic_block(x, 32, "b2", preact=True, norm="instance", dropout=0.1)
    x = L.bottleneck_block(x, 16, "b3", stride=2, groups=4, base_width=16, norm="layer")
    x = L.bottleneck_block(x, 16, "b4", preact=True, se_ratio=4)
    x = L.dense_block(x, 2, 8, "d")
    x = L.transition_block(x, "t")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(5)(x))


def test_every_shared_layer_round_trips_through_keras_file(tmp_path):
    model = all_layers_model()
    x = random_images((16, 16, 3))
    path = tmp_path / "layers.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert {type(l).__name__ for l in loaded.layers} >= {"LocalResponseNormalization",
                                                          "SqueezeExcite"}
    assert_close(loaded(x), model(x), rtol=1e-6, atol=1e-6)


def test_custom_layer_configs():
    lrn = L.LocalResponseNormalization(size=3, k=1.0, alpha=2e-4, beta=0.5)
    assert L.LocalResponseNormalization.from_config(lrn.get_config()).get_config() == \
        lrn.get_config()
    se = L.SqueezeExcite(ratio=4, divisor=8, name="se")
    assert L.SqueezeExcite.from_config(se.get_config()).divisor == 8
    assert kc.layers.SqueezeExcite is L.SqueezeExcite


def _bn_pair(policy, **kwargs):
    """Our BatchNormalization and Keras' own with the same random gamma and beta."""
    rng = np.random.default_rng(5)
    pair = (L.BatchNormalization(momentum=0.9, epsilon=1.001e-5, dtype=policy, **kwargs),
            keras.layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5, dtype=policy,
                                            **kwargs))
    gamma, beta = rng.normal(1, 0.3, 8), rng.normal(0, 0.3, 8)
    for layer in pair:
        layer.build((None, 6, 6, 8))
        if layer.scale:
            layer.gamma.assign(gamma)
        if layer.center:
            layer.beta.assign(beta)
    return pair


def _bn_training_step(layer, x, upstream, jit=False):
    """One training-mode call in a tf.function (XLA-compiled with ``jit``): output, the
    gradients of <output, upstream> with respect to the input and the layer's trainable
    weights, and the op types run."""
    import tensorflow as tf

    @tf.function(jit_compile=jit)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(layer(x, training=True), tf.float32)
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, [x, *layer.trainable_weights])
    y, grads = step(x)
    ops = {op.type for op in step.get_concrete_function(x).graph.get_operations()}
    return [np.asarray(y), *map(np.asarray, grads), np.asarray(layer.moving_mean),
            np.asarray(layer.moving_variance)], ops


@pytest.mark.parametrize("policy,kwargs,jit", [
    ("float32", {}, False), ("mixed_bfloat16", {}, False), ("mixed_float16", {}, False),
    ("mixed_bfloat16", {}, True), ("float32", {"scale": False}, False),
    ("float32", {"center": False}, False)])
def test_batchnorm_trains_through_the_fused_kernel_as_keras_does(policy, kwargs, jit):
    """In training, TensorFlow's FusedBatchNormV3 and its gradient run instead of Keras'
    moments (the point of the layer), and everything Keras' layer computes comes out the same:
    the output, the gradients of the input, gamma and beta, and the moving mean and variance
    (Keras' biased batch variance; the kernel's Bessel-corrected one is 1/71 larger here)."""
    import tensorflow as tf

    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(1.5, 2.0, (2, 6, 6, 8)), tf.float32)
    upstream = tf.constant(rng.normal(size=(2, 6, 6, 8)), tf.float32)
    ours, keras_bn = _bn_pair(policy, **kwargs)
    (got, ops), (want, keras_ops) = (_bn_training_step(layer, x, upstream, jit)
                                     for layer in (ours, keras_bn))
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops
    assert not ops & {"SquaredDifference", "Mean"}, ops
    assert {"SquaredDifference"} <= keras_ops and "FusedBatchNormV3" not in keras_ops
    names = ["output", "input gradient", *[w.name + " gradient" for w in ours.trainable_weights],
             "moving mean", "moving variance"]
    for name, a, b in zip(names, got, want):
        tol = 1e-5 * max(1.0, float(np.max(np.abs(b))))
        assert_close(a, b, atol=tol, rtol=0, err_msg=name)


def test_batchnorm_keeps_keras_code_where_the_kernel_does_not_apply():
    """Inference, fused=False, a 2-D input, renorm: no fused kernel, Keras' results."""
    import tensorflow as tf

    x4 = tf.constant(np.random.default_rng(7).normal(2, 3, (2, 6, 6, 8)), tf.float32)
    x2 = tf.constant(np.random.default_rng(7).normal(2, 3, (5, 8)), tf.float32)
    cases = [("inference", {}, x4, False), ("fused=False", {"fused": False}, x4, True),
             ("2-D", {}, x2, True), ("renorm", {"renorm": True}, x4, True)]
    for case, kwargs, x, training in cases:
        ours = L.BatchNormalization(**kwargs)
        ref = keras.layers.BatchNormalization(
            **{k: v for k, v in kwargs.items() if k != "fused"})
        for layer in (ours, ref):
            layer.build(x.shape)
        f = tf.function(lambda t, layer: layer(t, training=training))
        outs = [np.asarray(f(x, layer)) for layer in (ours, ref)]
        ops = {op.type for op in f.get_concrete_function(x, ours).graph.get_operations()}
        assert not ops & {"FusedBatchNormV3"}, case
        assert_close(outs[0], outs[1], atol=1e-6, err_msg=case)


def test_models_use_it_and_it_round_trips(tmp_path):
    """The zoo's batch norms are this layer (same name and weights as Keras'), and a .keras
    file keeps its class and its ``fused`` setting."""
    model = kc.get_model("resnet18", input_shape=(32, 32, 3), classes=3)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(type(l) is L.BatchNormalization for l in bns)
    assert [w.name for w in bns[0].weights] == ["gamma", "beta", "moving_mean",
                                                "moving_variance"]
    bns[1].fused = False
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    again = [l for l in back.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert all(type(l) is L.BatchNormalization for l in again)
    assert [l.fused for l in again[:3]] == [True, False, True]
