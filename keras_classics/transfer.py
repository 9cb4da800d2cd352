"""Transfer learning, the lecture's three regimes (after Yosinski et al. 2014 and the Keras
transfer-learning guide):

- ``small``: a new classifier on a frozen backbone;
- ``medium``: the new classifier first, then also the top two stages of the backbone;
- ``large``: the new classifier first, then every layer;
- ``auto``: by training examples per class: fewer than 50 → small, fewer than 500 → medium,
  else large.

Fine-tuning (the second phase of medium/large) uses the first phase's learning rate divided
by ``lr_factor`` (default 100, as the Keras guide's Adam 1e-3 for the head, then 1e-5 for the
whole model: with 10, Adam's first full-size steps on every layer wrecked the pretrained
features in the digits experiment, "large" 0.59 against 0.87 with 100). The backbone's
BatchNormalization layers stay frozen, hence in inference mode, in every regime (the Keras
transfer-learning guide's rule; in Keras 3 a frozen BN layer runs in inference mode, whatever
``training`` flag the outer model receives).
What is trainable is decided by stage, read from the layer names every zoo model uses
(``block3_*``, ``conv4_block2_*``, ``inception_4c_*``, ``pool3_*`` ...), not by layer counts.
"""
import json
import os
import re

import keras
import numpy as np

from . import provenance
from .backend import require_tensorflow
from .models._common import classifier
from .registry import model_info, resolve
from .weights import _attach, preprocessing_of, weights_info

REGIMES = ("auto", "small", "medium", "large")
THRESHOLDS = (50, 500)  # examples per class: below the first small, below the second medium
MEDIUM_STAGES = 2


def stage_of(name):
    """The stage number of a zoo layer name (1 = the stem), or None for non-stage layers."""
    m = re.match(r"^(?:block|conv|pool|norm|inception_)(\d)", name)
    return int(m.group(1)) if m else None


def backbone_stages(backbone):
    """{stage: [layers with weights]}; unnumbered layers after the stages (post_bn, bn ...)
    join the last. A weighted layer before any numbered one, or a backbone of fewer than two
    stages, is refused: "medium" would otherwise unfreeze everything without saying so."""
    stages, last = {}, None
    for layer in backbone.layers:
        s = stage_of(layer.name)
        last = s if s is not None and (last is None or s > last) else last
        if layer.weights:
            if s is None and last is None:
                raise ValueError(f"{backbone.name}: layer {layer.name!r} has weights but no "
                                 "stage number in its name (block<n>, conv<n>, pool<n>, "
                                 "norm<n>, inception_<n>)")
            stages.setdefault(s if s is not None else last, []).append(layer)
    if len(stages) < 2:
        raise ValueError(f"{backbone.name}: its layer names give {len(stages)} stage(s); "
                         "transfer needs at least two (block<n>, conv<n>, ... names)")
    return dict(sorted(stages.items()))


def choose_regime(regime, per_class):
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}")
    if regime != "auto":
        return regime
    return "small" if per_class < THRESHOLDS[0] else "medium" if per_class < THRESHOLDS[1] \
        else "large"


def load_backbone(source, weights=None, input_shape=None):
    """A feature extractor (pooled features) from a registry name (+ weights) or a ``.keras``
    classifier (everything before its last Dense layer)."""
    if str(source).endswith(".keras"):
        if not os.path.isfile(source):
            raise ValueError(f"no such model file: {source}")
        model = keras.saving.load_model(source, compile=False)
        last = model.layers[-1]
        if not isinstance(last, keras.layers.Dense) or len(model.outputs) != 1:
            raise ValueError(f"{source} is not a classifier: its last layer is "
                             f"{type(last).__name__} '{last.name}', not a Dense classifier")
        return keras.Model(model.inputs, last.input, name=f"{model.name}_backbone")
    info = resolve(source, weights)
    if input_shape and input_shape[0] < info.min_size:
        raise ValueError(f"{info.name} needs inputs of at least {info.min_size}x"
                         f"{info.min_size}; the dataset is loaded at {input_shape[0]}: pass a "
                         "larger image size")
    return info.build(include_top=False, pooling="avg", weights=weights,
                      input_shape=input_shape)


def transfer_model(backbone, classes, trainable_stages, dropout=0.2):
    """``backbone`` (called in inference mode) + dropout + a new softmax classifier; layers of
    the stages in ``trainable_stages`` (and the classifier) are trainable, the rest frozen."""
    stages = backbone_stages(backbone)
    for s, layers in stages.items():
        for layer in layers:
            # A frozen BatchNormalization runs in inference mode in Keras 3; the outer
            # call's training flag would override training=False on the backbone call.
            layer.trainable = s in trainable_stages and \
                not isinstance(layer, keras.layers.BatchNormalization)
    inputs = keras.Input(backbone.input_shape[1:])
    x = backbone(inputs, training=False)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = classifier(x, classes, "softmax")
    return keras.Model(inputs, out, name=f"{backbone.name}_transfer")


def fine_tune(backbone, dataset="digits", weights=None, regime="auto", epochs=10,
              head_epochs=None, lr=1e-3, lr_factor=100.0, batch_size=32, image_size=None,
              output="runs/finetune", strategy="default", data=None, verbose=0, seed=0,
              preprocessing=None, overwrite=False, precision="float32"):
    """Fine-tune ``backbone`` (a registry name with ``weights``, or a ``.keras`` classifier) on
    ``dataset``/``data``; returns a summary with the regime used, per-phase results and the
    final model (``model_object``). Phase 1 trains the head for ``head_epochs`` (default
    ``epochs``); phase 2 (medium, large) trains the unfrozen stages for ``epochs`` more at
    ``lr / lr_factor``. Adam is used in both phases. Each phase is a training run in
    ``output/phase_<name>``: rerunning resumes it, other settings are refused unless
    ``overwrite``.

    Images reach the backbone preprocessed as its weights need: the mode of its pretrained
    record (``weights="imagenet"``: "caffe" for Keras' ResNet50, "tf" for ResNetV2 and
    torchvision's GoogLeNet, "torch" for the rest), the mode a ``.keras`` classifier was trained
    with (its ``summary.json``), or ``preprocessing`` when given. ``precision`` as in
    :func:`training.train`: the backbone is rebuilt under that policy."""
    require_tensorflow("fine_tune (it trains with keras_classics.training, on tf.distribute; "
                       "on another backend, compile transfer_model(...) and call its fit)")
    from . import datasets, training  # TensorFlow by nature: imported where they are used
    from .training.precision import with_policy

    if lr_factor <= 0:
        raise ValueError(f"lr_factor must be positive, got {lr_factor}")
    if data is None:
        size = image_size or (model_info(backbone).default_size
                              if not str(backbone).endswith(".keras") else None)
        if size is None:  # a .keras backbone: its own input size
            size = keras.saving.load_model(backbone, compile=False).input_shape[1]
        data = datasets.load(dataset, size)
    shape = (data.image_size, data.image_size, 3)
    per_class = data.num_train / data.num_classes
    chosen = choose_regime(regime, per_class)
    base = load_backbone(backbone, weights, shape)
    record = weights_info(base)
    if preprocessing is None:
        preprocessing = preprocessing_of(base, training.saved_preprocessing(backbone)
                                         if str(backbone).endswith(".keras") else "torch")
    if tuple(base.input_shape[1:3]) not in ((None, None), shape[:2]):
        raise ValueError(f"the backbone takes {base.input_shape[1:3]} inputs, the dataset is "
                         f"loaded at {shape[:2]}: pass image_size={base.input_shape[1]}")
    n_stages = max(backbone_stages(base))

    def build(trainable, start=None):
        def make(classes, input_shape):
            # a fresh copy (of the weights too) under the policy train() set
            bb = with_policy(base, keras.mixed_precision.global_policy().name, copy=True)
            model = transfer_model(bb, classes, trainable)
            if start is not None:
                model.set_weights(start)
            return model
        return make

    phases = [("head", set(), head_epochs or epochs, lr)]
    if chosen == "medium":
        phases.append(("medium", set(range(n_stages - MEDIUM_STAGES + 1, n_stages + 1)),
                       epochs, lr / lr_factor))
    elif chosen == "large":
        phases.append(("large", set(range(0, n_stages + 1)), epochs, lr / lr_factor))
    results, start = [], None
    for name, stages, n_epochs, phase_lr in phases:
        run = training.train(
            data=data, build_model=build(stages, start), epochs=n_epochs,
            batch_size=batch_size, image_size=data.image_size, preset="adam", lr=phase_lr,
            strategy=strategy, output=os.path.join(output, f"phase_{name}"), verbose=verbose,
            seed=seed, augment=(), preprocessing=preprocessing, overwrite=overwrite,
            precision=precision)
        model, summary = run.model, run.summary
        start = model.get_weights()
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        results.append({"phase": name, "stages": sorted(stages), "epochs": n_epochs,
                        "lr": phase_lr, "trainable_params": trainable,
                        "val_accuracy": summary["best_val_accuracy"],
                        "test_accuracy": summary["test_accuracy"]})
    if record is not None:
        _attach(model, record)  # export and preprocess_input find the weights' preprocessing
    return {"regime": chosen, "per_class": per_class, "phases": results,
            "test_accuracy": results[-1]["test_accuracy"], "model_object": model,
            "output": output, "preprocessing": preprocessing,
            "pretrained": record.name if record else None, "class_names": data.class_names}


def digits_experiment(per_class=10, pretrain_epochs=8, epochs=20, model="resnet20_cifar",
                      output="runs/transfer", image_size=16, seeds=3, command=None):
    """The lecture's regimes on real data, offline: for each of ``seeds`` seeds, pretrain
    ``model`` on digits 0–4, draw ``per_class`` labels per class of digits 5–9, and compare
    small / medium / large with training from scratch, all evaluated on the same held-out 5–9
    test images. At 16x16 by default: the digits are 8x8 images, and at 32x32 the experiment
    took twice as long with the same ranking (small clearly worse, medium and large not
    separable from scratch over three seeds).

    Returns ``{"per_class", "seeds", "rows", "run"}`` (also written to
    ``output/results.json``; ``markdown()`` renders it), a row per setting with the mean test accuracy
    over the seeds, its standard deviation (n - 1) and each seed's. Several seeds, each with
    its own pretraining, because one is not enough: with 50 training images the outcome
    hangs on the pretrained model -- two pretrainings of the same seed that differed only in
    the order of floating-point sums (one intra-op thread or two) led "medium" to 0.78 and
    0.88."""
    require_tensorflow("digits_experiment (it trains with keras_classics.training)")
    from . import datasets, training
    from .training.outputs import atomic_write

    full = datasets.digits(image_size, 0)
    source = datasets.subset(full, list(range(5)))
    results = {}
    for seed in range(seeds):
        run = os.path.join(output, f"seed{seed}")
        pre = training.train(model, data=source, epochs=pretrain_epochs, batch_size=32,
                             image_size=image_size, output=os.path.join(run, "pretrain"),
                             verbose=0, seed=seed)
        results.setdefault("pretrain on 0-4", []).append(pre.summary["test_accuracy"])
        path = os.path.join(run, "pretrain", "model.keras")
        target = datasets.subset(full, list(range(5, 10)), per_class=per_class, seed=seed)
        for regime in ("small", "medium", "large"):
            # one folder for the three: their head phase is the same run, trained once (small)
            # and resumed, already finished, by medium and large
            res = fine_tune(path, data=target, regime=regime, epochs=epochs, lr=1e-2,
                            batch_size=10, output=os.path.join(run, "transfer"), seed=seed)
            results.setdefault(f"transfer, {regime}", []).append(res["test_accuracy"])
        scratch = training.train(model, data=target, epochs=epochs * 2, preset="adam",
                                 batch_size=10, image_size=image_size,
                                 output=os.path.join(run, "scratch"), verbose=0, seed=seed,
                                 augment=())
        results.setdefault("from scratch", []).append(scratch.summary["test_accuracy"])
    rows = [{"setting": setting, "test_accuracy": float(np.mean(accs)),
             "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
             "per_seed": [float(a) for a in accs]} for setting, accs in results.items()]
    result = {"per_class": per_class, "seeds": seeds, "model": model, "image_size": image_size,
              "rows": rows, "run": provenance.run_record(command)}
    atomic_write(os.path.join(output, "results.json"), json.dumps(result, indent=1))
    return result


SETTINGS = {"pretrain on 0-4": "pretrained on digits 0–4 (its own test split)",
            "transfer, small": "small (new head only)",
            "transfer, medium": "medium (+ top two stages)",
            "transfer, large": "large (all layers)",
            "from scratch": "from scratch (same net, same images, twice the epochs)"}


def markdown(result):
    """The experiment's table as the docs show it, headed by command, machine and date.
    ``result``: what ``digits_experiment`` returned (its ``results.json``)."""
    lines = [provenance.heading(result.get("run")), "",
             f"| setting | test accuracy (mean ± std, {result['seeds']} seeds) | per seed |",
             "|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {SETTINGS.get(row['setting'], row['setting'])} | "
                     f"{row['test_accuracy']:.3f} ± {row['std']:.3f} | "
                     f"{' '.join(f'{a:.3f}' for a in row['per_seed'])} |")
    return "\n".join(lines)
