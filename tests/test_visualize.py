"""Zeiler & Fergus' views: the deconvnet and guided backprop against hand-written references,
filter tiles in order, occlusion and Grad-CAM on the digits' strokes, the CLI and its errors."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_classics as kc
from keras_classics import datasets, visualize as V
from keras_classics.layers import LocalResponseNormalization
from conftest import assert_close, call_tool
from hostile_files import png_of_size


def random_image(size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (size, size, 3)).astype("float32")


def test_deconvnet_of_a_one_conv_net_is_the_transposed_convolution():
    """One conv layer (ReLU): the deconvnet of a unit is its rectified feature map (others
    zeroed) convolved back with the transposed filters, written out here tap by tap."""
    inp = keras.Input((9, 9, 3))
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    image = random_image(9)
    x = V.prepare(model, image, "tf")[0]
    kernel, bias = (np.asarray(w) for w in model.get_layer("conv").weights)
    act = np.zeros((4, 4, 4), "float32")
    for i in range(4):
        for j in range(4):
            act[i, j] = np.maximum(0, np.einsum("abc,abcd->d", x[2 * i:2 * i + 3,
                                                             2 * j:2 * j + 3], kernel) + bias)
    for channel in range(4):
        for position in ("all", "max"):
            top = np.zeros_like(act[..., channel])
            if position == "all":
                top[:] = act[..., channel]
            else:
                where = np.unravel_index(np.argmax(act[..., channel]), top.shape)
                top[where] = act[..., channel][where]
            want = np.zeros((9, 9, 3), "float32")
            for i in range(4):
                for j in range(4):
                    want[2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.maximum(top[i, j], 0) * \
                        kernel[..., channel]
            got = V.project(model, image, "tf", channel, "conv", "deconvnet", position)
            assert np.abs(want).max() > 0 and np.isfinite(got).all()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def reference_gradient(x, kernels, rule, channel, layer_out):
    """The same small net in raw TensorFlow ops (conv, ReLU, max-pool, LRN, conv, ReLU), its
    ReLUs given ``rule``'s gradient by ``tf.custom_gradient``, LRN's gradient passed through
    for the deconvnet."""
    @tf.custom_gradient
    def relu(v):
        def grad(g):
            if rule == "deconvnet":
                return tf.nn.relu(g)
            return g * tf.cast(v > 0, g.dtype) * tf.cast(g > 0, g.dtype)
        return tf.nn.relu(v), grad

    x = tf.constant(x[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        (k1, b1), (k2, b2) = kernels
        h = relu(tf.nn.conv2d(x, k1, 1, "SAME") + b1)
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        lrn = tf.nn.local_response_normalization(h, 2, 2.0, 1e-2, 0.75)
        h = h + tf.stop_gradient(lrn - h) if rule == "deconvnet" else lrn
        h = relu(tf.nn.conv2d(h, k2, 1, "SAME") + b2)
        a = h[0, ..., channel].numpy()
        mask = np.zeros(h.shape, "float32")
        mask[(0, *np.unravel_index(np.argmax(a), a.shape), channel)] = 1
        signal = tf.reduce_sum(tf.stop_gradient(h * mask) * h)
    return tape.gradient(signal, x).numpy()[0]


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_projection_rules_match_tensorflow_gradients_with_those_rules(rule):
    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", name="c1")(inp)
    h = keras.layers.Activation("relu", name="r1")(h)
    h = keras.layers.MaxPooling2D(2, name="p1")(h)
    h = LocalResponseNormalization(size=5, k=2.0, alpha=1e-2, beta=0.75, name="n1")(h)
    h = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="c2")(h)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(1)
    for w in model.weights:  # biases negative enough that some units are off
        w.assign(rng.normal(-0.1 if w.shape.rank == 1 else 0, 0.3, w.shape).astype("float32"))
    image = random_image(12, 2)
    x = V.prepare(model, image, "tf")[0]
    kernels = [[np.asarray(w) for w in model.get_layer(n).weights] for n in ("c1", "c2")]
    for channel in range(5):
        got = V.project(model, image, "tf", channel, "c2", rule)
        want = reference_gradient(x, kernels, rule, channel, "c2")
        assert np.abs(want).max() > 0 and np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_deconvnet_and_guided_and_plain_gradient_differ():
    model = kc.get_model("zfnet", input_shape=(64, 64, 3), classes=10)
    image = random_image(64, 3)
    d = V.project(model, image, "torch", 0, "conv3", "deconvnet")
    g = V.project(model, image, "torch", 0, "conv3", "guided")
    assert np.isfinite(d).all() and np.isfinite(g).all()
    assert np.abs(d - g).max() > 0.1 * np.abs(d).max()
    # guided backprop only passes positive gradients through active units: never more
    # non-zero pixels than the deconvnet's
    assert (g != 0).sum() <= (d != 0).sum()


def test_filters_are_one_normalized_tile_per_filter_in_order():
    for name, size in (("alexnet", 11), ("zfnet", 7)):
        model = kc.get_model(name, input_shape=(96, 96, 3), classes=10)
        conv = model.get_layer("conv1")
        k = np.asarray(conv.kernel)
        perm = np.random.default_rng(0).permutation(k.shape[-1])
        conv.kernel.assign(k[..., perm])
        tiles = V.filters(model)
        assert tiles.shape == (96, size, size, 3)
        for i in (0, 1, 50, 95):
            f = k[..., perm[i]]
            np.testing.assert_allclose(tiles[i], (f - f.min()) / (f.max() - f.min()),
                                       rtol=1e-5, atol=1e-6)
        assert tiles.min() == 0 and tiles.max() == 1


def keras_io_grad_cam(model, x, layer, label):
    """Grad-CAM as the Keras example computes it (keras.io/examples/vision/grad_cam,
    make_gradcam_heatmap, on the model with the softmax removed): gradient of the class score
    over the layer's output, averaged per channel, the weighted sum of the channels, ReLU,
    divided by its maximum. At the layer's resolution."""
    head = model.get_layer("predictions")
    grad_model = keras.Model(model.inputs, [model.get_layer(layer).output, head.input])
    with tf.GradientTape() as tape:
        conv_out, features = grad_model(x)
        class_channel = (tf.matmul(features, head.kernel) + head.bias)[:, label]
    grads = tape.gradient(class_channel, conv_out)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.squeeze(conv_out[0] @ pooled_grads[..., tf.newaxis])
    return (tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)).numpy()


def test_grad_cam_matches_the_keras_example():
    """On a small net with random weights (the class score depends on where features are: a
    strided convolution and a flattening head after the layer), for the predicted class and
    every other one whose map has heat. Not square (16x24), so a map resized to (width,
    height) fails."""
    inputs = keras.Input((16, 24, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c2")(h)
    outputs = keras.layers.Dense(5, activation="softmax", name="predictions")(
        keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    image = random_image(16, seed=3)
    x = V.prepare(model, image, "tf")
    layer, heat, predicted = V.grad_cam(model, image, "tf", layer="c1")
    assert layer == "c1" and predicted == int(np.argmax(model(x)[0]))
    compared = 0
    for label in range(5):
        want = keras_io_grad_cam(model, x, "c1", label)
        if not np.isfinite(want).all():  # negative evidence everywhere: an all-zero map
            assert V.grad_cam(model, image, "tf", label, "c1")[1].max() == 0
            continue
        got = V.grad_cam(model, image, "tf", label, "c1")[1]
        assert got.shape == (16, 24)  # c1 is at the input's size: no resizing in between
        assert_close(got, want, rtol=1e-4, atol=1e-5)
        compared += 1
    assert compared >= 2
    # at c2 (8x12) the map is upsampled to the input: the Keras example's map resized the
    # same way (bilinear, then divided by its maximum)
    at_c2 = V.grad_cam(model, image, "tf", predicted, "c2")[1]
    want = keras_io_grad_cam(model, x, "c2", predicted)
    assert want.shape == (8, 12)
    want = tf.image.resize(want[..., None], (16, 24), "bilinear")[..., 0].numpy()
    assert at_c2.shape == (16, 24) and not np.allclose(at_c2, heat)
    assert_close(at_c2, want / want.max(), rtol=1e-4, atol=1e-5)


@pytest.fixture
def digits_model(readme_training):
    """ResNet-18 trained on the digits at 32x32 by the README's training command
    (conftest.readme_training), and the held-out images."""
    copy, _ = readme_training
    images, labels, _ = V.dataset_images("digits", 32, limit=40)
    return copy / "runs" / "train" / "model.keras", images, labels


def stroke_share(heat, image):
    """The share of the map's mass on the digit's strokes over their share of the image."""
    strokes = image[..., 0] > 0.3 * 255
    heat = np.maximum(heat, 0)
    return (heat[strokes].sum() / heat.sum()) / strokes.mean()


def grad_cam_share(model, mode, images, labels, layer):
    """(mean stroke share over the maps with any heat, number of maps without): where a
    class's evidence at ``layer`` is negative everywhere, Grad-CAM's ReLU leaves an all-zero
    map, which has no share (0/0)."""
    heats = [V.grad_cam(model, image, mode, int(label), layer)[1] for image, label in
             zip(images, labels)]
    shares = [stroke_share(h, image) for h, image in zip(heats, images) if h.max() > 0]
    return np.mean(shares), len(heats) - len(shares)


@pytest.mark.slow
@pytest.mark.xdist_group("readme_training")  # one worker trains the model once
def test_occlusion_concentrates_on_the_strokes_and_grad_cam_has_heat(digits_model, tmp_path):
    """On held-out digits: the probability drop under occlusion lies on the strokes (about
    twice their share of the image, measured 2.1, 1.9 and 2.0); Grad-CAM of the true class
    finds evidence in most images. Then the README's command on the same model.keras."""
    path, images, labels = digits_model
    model, mode = V.load(path)
    occ_shares = []
    for image, label in zip(images[:20], labels[:20]):
        probs, p0 = V.occlusion(model, image, mode, int(label), progress=False)  # 8 px, stride 2
        assert probs.shape == (16, 16) and np.isfinite(probs).all()
        # p0 is the model's probability of the label on the unoccluded image
        x = keras.applications.imagenet_utils.preprocess_input(
            image[None].astype("float32"), mode=mode)
        assert p0 == pytest.approx(float(np.asarray(model(x, training=False))[0, int(label)]),
                                   rel=1e-5)
        drop = tf.image.resize((p0 - probs)[..., None], (32, 32), "nearest").numpy()[..., 0]
        if drop.max() > 0:  # else no square lowers p(label) (a saturated p0): no share
            occ_shares.append(stroke_share(drop, image))
    layer = "conv2_block2_out"
    right, right_empty = grad_cam_share(model, mode, images, labels, layer)
    print("occlusion", np.mean(occ_shares), "grad-cam", right,
          "true-class maps without heat", right_empty, "of", len(images))
    assert len(occ_shares) >= 15 and np.isfinite(occ_shares).all() and np.isfinite(right)
    # the true class has evidence somewhere in most images (empty maps seen on an AMD EPYC,
    # none on an Intel Xeon)
    assert right_empty <= 0.25 * len(images)
    assert np.mean(occ_shares) > 1.5
    # the map is the label's (#40: nothing here checked that): the true class's and a wrong
    # class's maps differ (correlation below 0.9) on most images where both have heat
    corr = []
    for image, label in zip(images[:20], labels[:20]):
        maps = [V.grad_cam(model, image, mode, int(c), layer)[1] for c in (label,
                                                                           (label + 1) % 10)]
        if all(m.max() > 0 for m in maps):
            corr.append(np.corrcoef(maps[0].ravel(), maps[1].ravel())[0, 1])
    print("grad-cam true/wrong correlations", np.round(corr, 2))
    assert len(corr) >= 10 and np.isfinite(corr).all()
    assert np.mean(np.array(corr) < 0.9) >= 0.6, corr
    # Not asserted: how much of Grad-CAM's heat lies on the strokes. At this 8x8 map it is a
    # property of the trained model that did not hold still: true class 1.25, 1.20, 1.16 and
    # 1.03 times the strokes' share, a wrong class 0.97 to 1.30, on models trained on an Intel
    # Xeon and an AMD EPYC. The computation itself is checked against the Keras example
    # (test_grad_cam_matches_the_keras_example).

    import matplotlib.image as mpimg

    res = cli(path, "--dataset", "digits", "--out", tmp_path / "viz", "--limit", 60,
              "--index", 3)
    assert res.returncode == 0, res.stderr
    names = ["filters.png", "feature_maps.png", "top_activations.png", "projections.png",
             "occlusion.png", "grad_cam.png"]
    assert [line.split()[-1] for line in res.stdout.splitlines() if line.startswith("wrote")] \
        == [str(tmp_path / "viz" / n) for n in names]
    assert sorted(os.listdir(tmp_path / "viz")) == sorted(names)  # no temporary files left
    for n in names:
        img = mpimg.imread(tmp_path / "viz" / n)
        assert img.ndim == 3 and min(img.shape[:2]) > 100 and img.std() > 0.01, n


def cli(*args):
    """``python tools/visualize.py ARGS`` in this process (the README's visualize test runs it
    as a process)."""
    return call_tool("visualize", *args)


def test_cli_on_a_registry_name_and_an_image_file(tmp_path):
    import matplotlib.pyplot as plt

    images, _, _ = V.dataset_images("digits", 48, limit=1)
    plt.imsave(tmp_path / "digit.png", images[0].astype("uint8"))
    res = cli("zfnet", "--image-size", 64, "--image", tmp_path / "digit.png", "--out",
              tmp_path / "viz", "--layer", "conv2", "--channel", 5)
    assert res.returncode == 0, res.stderr
    assert "top_activations.png: needs a dataset" in res.stdout
    assert sorted(os.listdir(tmp_path / "viz")) == sorted(
        ["filters.png", "feature_maps.png", "projections.png", "occlusion.png", "grad_cam.png"])


@pytest.mark.parametrize("args,message", [
    (["--layer", "nope"], "zfnet has no layer 'nope'; layers with feature maps: .*conv1.*conv5"),
    (["--layer", "fc6"], r"layer 'fc6' outputs \(None, 4096\), not a feature map.*allowed: "
                         ".*conv2"),
    (["--layer", "conv2", "--channel", "256"], r"layer 'conv2' has channels 0..255, got 256"),
    (["--image", "missing.jpg"], "missing.jpg: no such image file"),
    (["--index", "-1"], "must be zero or more"),
])
def test_cli_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message):
    import re

    res = call_tool("visualize", "zfnet", "--image-size", 64, "--out", tmp_path / "viz", *args)
    assert res.returncode == 2 and re.search(message, res.stderr), res.stderr
    assert not (tmp_path / "viz").exists()


def test_cli_hostile_images_and_outputs_are_one_line_and_write_nothing(tmp_path):
    """A text file named .png, a 1 MB PNG of 20000x20000 pixels, --out naming a file and a
    .keras model with no convolution: one line naming the file, exit 2, nothing written."""
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "huge.png").write_bytes(png_of_size(20000, 20000))
    images, _, _ = V.dataset_images("digits", 32, limit=1)
    keras.utils.save_img(tmp_path / "digit.png", images[0].astype("uint8"))
    (tmp_path / "file").write_text("keep me")
    inp = keras.Input((8, 8, 3))
    keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp))).save(
        tmp_path / "dense.keras")
    zfnet = ["zfnet", "--image-size", 64]
    for args, message in (
            ([*zfnet, "--image", tmp_path / "text.png"],
             f"{tmp_path / 'text.png'}: each input must be a JPEG, PNG, GIF or BMP image"),
            ([*zfnet, "--image", tmp_path / "huge.png"],
             f"{tmp_path / 'huge.png'}: image too large: 20000 x 20000 in 1 frame"),
            ([*zfnet, "--image", tmp_path / "digit.png", "--out", tmp_path / "file"],
             f"--out {tmp_path / 'file'} exists and is not a directory"),
            ([tmp_path / "dense.keras"], "has no Conv2D layer")):
        out = ["--out", tmp_path / "viz"] if "--out" not in args else []
        res = call_tool("visualize", *args, *out)
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "viz").exists()
    assert (tmp_path / "file").read_text() == "keep me"


def test_a_16_bit_png_is_seen_as_training_sees_it(tmp_path):
    """A 16-bit grey PNG of mid grey: visualize decodes it as a folder dataset does
    (TensorFlow's 8-bit reduction, 128), not saturated (Pillow's load_img gave 255)."""
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((24, 20), 32768 + 64 * i, np.uint16)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    path = tmp_path / "imgs" / "a" / "0.png"
    assert Image.open(path).mode.startswith("I;16")
    model = kc.get_model("zfnet", input_shape=(64, 64, 3), classes=2)
    seen = V.read_image(str(path), model)
    data = datasets.folder(str(tmp_path / "imgs"), 64)
    data.train = datasets.Files([str(path)], np.zeros(1, "int32"))
    trained_on = next(iter(data.pipeline("train", 1, preprocessing=None)))[0].numpy()
    assert seen.shape == trained_on.shape == (1, 64, 64, 3)
    assert_close(seen, trained_on, rtol=0, atol=1e-4)
    assert abs(float(seen.mean()) - 128) < 1


def test_a_model_that_is_not_an_image_classifier_is_refused(tmp_path):
    inp = keras.Input((20,))
    keras.Model(inp, keras.layers.Dense(3)(inp)).save(tmp_path / "tabular.keras")
    res = call_tool("visualize", tmp_path / "tabular.keras", "--out", tmp_path / "viz")
    assert res.returncode == 2 and "visualize needs an image model, inputs (batch, height, " \
        "width, 1 or 3)" in res.stderr, res.stderr
    maps = kc.get_model("resnet18", input_shape=(32, 32, 3), include_top=False)
    with pytest.raises(ValueError, match="visualize needs class scores"):
        V.check_image_model(maps)
    assert not (tmp_path / "viz").exists()


def test_a_mixed_precision_model_is_looked_at_in_float32(tmp_path):
    """A model trained with --mixed-precision: the views run on a float32 copy with the same
    weights (its logits agree to bf16 rounding), and the original is untouched. Compared as
    logits spread wide enough that the scores are far from uniform (#40: near-uniform softmax
    outputs within 0.05 of each other could not tell a copy with other weights apart)."""
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = kc.get_model("zfnet", input_shape=(64, 64, 3), classes=10,
                             classifier_activation=None)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    head = [l for l in mixed.layers if isinstance(l, keras.layers.Dense)][-1]
    head.kernel.assign(np.asarray(head.kernel) * 300)  # logits of a trained net, not ~0.01
    mixed.save(tmp_path / "mixed.keras")
    model, mode = V.load(str(tmp_path / "mixed.keras"))
    assert {l.compute_dtype for l in model.layers} == {"float32"}
    assert "bfloat16" in {l.compute_dtype for l in mixed.layers}
    for seed in (4, 5):
        image = random_image(64, seed)
        x = V.prepare(model, image, mode)
        ref = np.asarray(mixed(x), "float32")
        got = np.asarray(model(x))
        assert got.dtype == np.float32 and np.ptp(ref) > 1.0  # softmax(ref) is not uniform
        # bf16 rounding moved the largest logit by ~1% of it here
        assert_close(got, ref, rtol=0, atol=0.025 * np.abs(ref).max())
        assert np.argmax(got) == np.argmax(ref)
    proj = V.project(model, image, mode, 0, "conv2", "deconvnet")
    assert proj.dtype == np.float32 and np.isfinite(proj).all() and np.abs(proj).max() > 0


def test_the_rebuilt_model_is_reused_and_follows_the_weights():
    """project() twice reuses one rebuilt graph; after the model's weights change, the
    projection follows them (the copied layers are refreshed)."""
    model = kc.get_model("zfnet", input_shape=(64, 64, 3), classes=10)
    image = random_image(64, 5)
    first = V.project(model, image, "torch", 0, "conv2", "guided")
    net = V.rebuild(model, "guided", taps=("conv2",))
    assert V.rebuild(model, "guided", taps=("conv2",)) is net
    conv1 = model.get_layer("conv1")
    conv1.kernel.assign(np.asarray(conv1.kernel) * -1.5)
    again = V.project(model, image, "torch", 0, "conv2", "guided")
    assert np.abs(again - first).max() > 0.1 * np.abs(first).max()
    fresh = V._rebuild(model, "guided", False, ("conv2",))[0]
    x = V.prepare(model, image, "torch")
    assert_close(net(x)[1], fresh(x)[1], rtol=1e-5, atol=1e-6)
