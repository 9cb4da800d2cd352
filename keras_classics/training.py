"""Training on tf.distribute: one loop for one device, all GPUs of a host, or many hosts.

One custom loop serves every strategy (``strategy.run`` + ``tf.GradientTape`` + a Keras
optimizer), because Keras 3.15's ``model.fit`` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585). Checkpoints hold every model and optimizer variable plus the loop's
state (epoch, step within the epoch, learning-rate state, history) in one file written
atomically; with the data order a pure function of (seed, epoch), a run killed at any moment
and rerun ends with the weights an uninterrupted run has.
"""
import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from . import data as data_lib
from .registry import model_info, resolve
from .weights import weights_info


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe: defaults the user can override. ``lr`` is for ``batch_size``; other
    batch sizes scale it linearly (Goyal et al. 2017)."""

    name: str
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 256
    schedule: str = "cosine"  # cosine | step | plateau | constant
    epochs: int = 90
    augment: tuple = ("crop", "flip")
    aux_weight: float = 0.3  # GoogLeNet's auxiliary losses (section 6 of the paper)
    patience: int = 2  # plateau: epochs without validation improvement before lr /= 10
    warmup_epochs: float = 0.0


RECIPES = {
    # Krizhevsky et al. 2012, section 5 (and the lecture): SGD momentum 0.9, lr 1e-2 divided
    # by 10 when validation accuracy plateaus, weight decay 5e-4, batch 128, crops and flips
    # (add "pca" to augment for the colour lighting). Dropout 0.5 lives in the model.
    "alexnet": Recipe("alexnet", "sgd", 1e-2, 0.9, 5e-4, 128, "plateau", 90, ("crop", "flip")),
    # He et al. 2016, section 3.4: SGD 0.1 (batch 256), momentum 0.9, weight decay 1e-4, BN.
    "resnet": Recipe("resnet", "sgd", 0.1, 0.9, 1e-4, 256, "cosine", 90, ("crop", "flip"),
                     warmup_epochs=1),
    "resnet_step": Recipe("resnet_step", "sgd", 0.1, 0.9, 1e-4, 256, "step", 90,
                          ("crop", "flip"), warmup_epochs=1),
    # Not from a paper: Adam for small datasets and quick experiments.
    "adam": Recipe("adam", "adam", 1e-3, 0.0, 0.0, 64, "cosine", 30, ("crop",)),
}
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
PUBLIC_NAMES = {"_DefaultDistributionStrategy": "default",
                "MirroredStrategy": "MirroredStrategy",
                "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def get_recipe(name, **overrides):
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPES)}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    bad = set(overrides) - fields
    if bad:
        raise ValueError(f"unknown recipe fields {sorted(bad)}; allowed: {sorted(fields)}")
    return dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items()
                                                if v is not None})


def make_strategy(kind="auto", cpu_replicas=None):
    """``auto``: MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy when more
    than one GPU is visible, else the default strategy. ``cpu_replicas=N`` splits the CPU into
    N logical devices for a CPU-only MirroredStrategy (a stand-in for several GPUs)."""
    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; allowed: {', '.join(STRATEGIES)}")
    if cpu_replicas:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError:
            pass  # already initialized (a second run in the same process): keep what exists
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "auto":
        kind = "multiworker" if os.environ.get("TF_CONFIG") else \
            "mirrored" if len(gpus) > 1 or cpu_replicas else "default"
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def _worker():
    """(task type, task id, is chief) from TF_CONFIG."""
    cfg = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cfg.get("task", {})
    kind, index = task.get("type"), task.get("index", 0)
    return kind, index, kind in (None, "chief") or (kind == "worker" and index == 0 and
                                                    "chief" not in cfg.get("cluster", {}))


# ---- checkpoints: every variable + loop state, one atomic file -----------------------------
def _save_state(path, model, optimizer, state):
    arrays = {f"m{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    arrays["state"] = np.array(json.dumps(state))
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_state(path, model, optimizer):
    with np.load(path) as f:
        mvars, ovars = model.variables, optimizer.variables
        if sum(k.startswith("m") for k in f.files) != len(mvars):
            raise ValueError(f"{path}: checkpoint of another model ({len(mvars)} variables "
                             "expected); use a new --output or delete it")
        for i, v in enumerate(mvars):
            v.assign(f[f"m{i}"])
        for i, v in enumerate(ovars):
            v.assign(f[f"o{i}"])
        return json.loads(str(f["state"]))


# ---- learning rate --------------------------------------------------------------------------
def learning_rate(recipe, base_lr, state, step, steps_per_epoch, epochs):
    """The learning rate at global ``step`` (plateau: the current value in ``state``)."""
    warm = recipe.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return base_lr * (step + 1) / warm
    if recipe.schedule == "cosine":
        total = max(1, epochs * steps_per_epoch - warm)
        return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, (step - warm) / total)))
    if recipe.schedule == "step":  # divide by 10 at 50% and 75% of training
        frac = step / max(1, epochs * steps_per_epoch)
        return base_lr * (0.1 ** ((frac >= 0.5) + (frac >= 0.75)))
    if recipe.schedule == "plateau":
        return state["lr"]
    return base_lr


def _plateau_update(recipe, state, val_acc):
    if val_acc > state["best"] + 1e-4:
        state["best"], state["wait"] = val_acc, 0
    else:
        state["wait"] += 1
        if state["wait"] >= recipe.patience:
            state["lr"], state["wait"] = state["lr"] * 0.1, 0


def total_loss(labels, outputs, aux_weight, global_batch):
    """Cross-entropy of the main output plus ``aux_weight`` × that of each auxiliary output
    (GoogLeNet: 0.3), averaged over the global batch as tf.distribute expects."""
    loss = 0.0
    for i, out in enumerate(outputs):
        per_example = keras.losses.sparse_categorical_crossentropy(labels,
                                                                   tf.cast(out, tf.float32))
        loss += (1.0 if i == 0 else aux_weight) * tf.nn.compute_average_loss(
            per_example, global_batch_size=global_batch)
    return loss


def _optimizer(recipe, lr, mixed_float16):
    if recipe.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=recipe.momentum,
                                   weight_decay=recipe.weight_decay or None)
    elif recipe.optimizer == "adam":
        opt = keras.optimizers.AdamW(lr, weight_decay=recipe.weight_decay) \
            if recipe.weight_decay else keras.optimizers.Adam(lr)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; allowed: sgd, adam")
    if recipe.weight_decay:  # decay the kernels, not biases or normalization parameters
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "expand_bias",
                                                 "reduce_bias"])
    return keras.optimizers.LossScaleOptimizer(opt) if mixed_float16 else opt


@contextlib.contextmanager
def _precision(mixed):
    old = keras.mixed_precision.global_policy()
    if mixed:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
    try:
        yield keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy(old)


def _plot_history(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(epochs, [h["loss"] for h in history], "o-", label="train")
    a.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(epochs, [h["accuracy"] for h in history], "o-", label="train")
    b.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.legend(), b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def train(model="resnet18", dataset="digits", epochs=None, batch_size=None, recipe="resnet",
          strategy="auto", mixed_precision=False, jit=False, output="runs/train",
          image_size=None, seed=0, lr=None, checkpoint_every=20, cpu_replicas=None,
          data_dir=None, augment=None, verbose=1, model_kwargs=None, data=None,
          build_model=None, stop_after_steps=None, deterministic=False, preprocessing=None):
    """Train ``model`` (a registry name) on ``dataset`` and write, in ``output``: TensorBoard
    ``logs/``, ``history.csv``, ``curves.png``, ``model.keras``, ``summary.json`` and
    ``checkpoint.npz`` (rerunning the same call resumes from it). Returns the summary dict.

    ``data`` (a :class:`keras_classics.data.Data`) replaces ``dataset``; ``build_model(classes,
    input_shape)`` replaces the registry builder (used by transfer learning);
    ``stop_after_steps`` ends the run early after that many steps in this call (tests).
    Augmentation defaults to the recipe's (crops and flips for ImageNet recipes), except on
    the digits, which are only cropped. ``deterministic`` enables TensorFlow's op determinism.
    ``preprocessing`` ("torch", "caffe", "tf") defaults to that of the pretrained weights the
    model was built with (``model_kwargs={"weights": "imagenet"}``), else "torch"; it is
    written to ``summary.json``, where ``tools/export.py`` and fine-tuning read it.
    """
    rec = get_recipe(recipe, epochs=epochs, batch_size=batch_size, augment=augment)
    epochs, batch = rec.epochs, rec.batch_size
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch!r}")
    info = model_info(model) if build_model is None else None
    image_size = image_size or (info.default_size if info and info.dataset == "cifar" else 32)
    if info and image_size < info.min_size:
        raise ValueError(f"{info.name} needs inputs of at least {info.min_size}x{info.min_size}"
                         f", got --image-size {image_size}")
    strat = make_strategy(strategy, cpu_replicas)
    replicas = strat.num_replicas_in_sync
    if batch % replicas:
        raise ValueError(f"the global batch size {batch} must be divisible by the "
                         f"{replicas} replicas")
    data = data or data_lib.load(dataset, image_size, data_dir, seed)
    if augment is None and data.name == "digits":  # a flipped digit is another digit
        rec = dataclasses.replace(rec, augment=("crop",))
    steps_per_epoch = data.num_train // batch
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {batch} is larger than the {data.num_train} training "
                         "examples")
    base_lr = lr if lr is not None else rec.lr * batch / RECIPES[recipe].batch_size
    task_type, task_id, chief = _worker()
    os.makedirs(output, exist_ok=True)
    ckpt_path = os.path.join(output, "checkpoint.npz")
    keras.utils.set_random_seed(seed)
    if deterministic:  # bitwise-reproducible kernels: resumed and uninterrupted runs agree
        tf.config.experimental.enable_op_determinism()

    with _precision(mixed_precision) as policy, strat.scope():
        shape = (image_size, image_size, 3)
        net = build_model(data.num_classes, shape) if build_model else resolve(
            info.name, (model_kwargs or {}).get("weights")).build(
            classes=data.num_classes, input_shape=shape, **(model_kwargs or {}))
        optimizer = _optimizer(rec, base_lr, policy == "mixed_float16")
        optimizer.build(net.trainable_variables)
    record = weights_info(net)
    preprocessing = preprocessing or (record.preprocessing if record else "torch")
    state = {"epoch": 0, "step": 0, "global_step": 0, "lr": base_lr, "best": -1.0, "wait": 0,
             "history": [], "train_seconds": 0.0, "images": 0}
    if os.path.exists(ckpt_path):
        state = _load_state(ckpt_path, net, optimizer)
        if verbose and chief:
            print(f"resuming from {ckpt_path}: epoch {state['epoch'] + 1}, "
                  f"step {state['step']}")

    global_batch = batch
    aux_weight = rec.aux_weight

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            outs = net(x, training=True)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            loss = total_loss(y, outs, aux_weight, global_batch)
            if net.losses:
                loss += tf.add_n(net.losses) / replicas
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(outs[0], -1, output_type=tf.int32),
                                                 y), tf.float32))
        return loss, correct

    def replica_eval(x, y):
        out = net(x, training=False)
        out = tf.cast(out[0] if isinstance(out, (list, tuple)) else out, tf.float32)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, out))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32), y),
                                        tf.float32))
        return loss, correct, tf.cast(tf.shape(y)[0], tf.float32)

    sum_ = tf.distribute.ReduceOp.SUM

    @tf.function(jit_compile=jit or None, reduce_retracing=True)
    def train_step(x, y):
        loss, correct = strat.run(replica_step, args=(x, y))
        return strat.reduce(sum_, loss, None), strat.reduce(sum_, correct, None)

    @tf.function(reduce_retracing=True)
    def eval_step(x, y):
        return [strat.reduce(sum_, v, None) for v in strat.run(replica_eval, args=(x, y))]

    # BatchNormalization's moving statistics are updated per replica (Keras creates them with
    # no aggregation), so replicas drift apart; averaging them keeps every copy, and every
    # worker, identical.
    stats = [v for v in net.non_trainable_variables
             if "float" in str(v.dtype) and "seed" not in v.path]

    @tf.function
    def mean_stats():
        local = strat.run(lambda: [tf.identity(v.value) for v in stats])
        return [strat.reduce(tf.distribute.ReduceOp.MEAN, v, None) for v in local]

    def sync_stats():
        if replicas > 1 and stats:
            for v, m in zip(stats, mean_stats()):
                v.assign(m)

    def save():
        sync_stats()
        if chief:
            _save_state(ckpt_path, net, optimizer, state)

    def evaluate(split):
        totals = np.zeros(3)
        ds = strat.experimental_distribute_dataset(
            data.pipeline(split, batch, seed=seed, preprocessing=preprocessing))
        for x, y in ds:
            totals += [float(v) for v in eval_step(x, y)]
        return totals[0] / max(totals[2], 1), totals[1] / max(totals[2], 1)

    log_dir = os.path.join(output, "logs") if chief else tempfile.mkdtemp()
    writer = tf.summary.create_file_writer(log_dir)
    interrupted = {"flag": False}
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *a: interrupted.__setitem__("flag", True))
    steps_this_call = 0
    try:
        while state["epoch"] < epochs:
            epoch = state["epoch"]
            ds = data.pipeline("train", batch, epoch=epoch, seed=seed, augment=rec.augment,
                               drop_remainder=True, skip_batches=state["step"],
                               preprocessing=preprocessing)
            bar = keras.utils.Progbar(steps_per_epoch, verbose=verbose if chief else 0,
                                      stateful_metrics=["lr"])
            if chief and verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar.update(state["step"])
            sums = state.setdefault("epoch_sums", [0.0, 0.0, 0])
            t0 = time.perf_counter()
            for x, y in strat.experimental_distribute_dataset(ds):
                step_lr = learning_rate(rec, base_lr, state, state["global_step"],
                                        steps_per_epoch, epochs)
                optimizer.learning_rate.assign(step_lr)
                loss, correct = train_step(x, y)
                loss = float(loss)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss} at epoch {epoch + 1}, step {state['step'] + 1}"
                        f" (learning rate {step_lr:.3g}); stopped without saving, the last "
                        f"good checkpoint is {ckpt_path if os.path.exists(ckpt_path) else 'none'}"
                        ". Lower the learning rate (--lr) and rerun")
                state["step"] += 1
                state["global_step"] += 1
                state["images"] += batch
                sums[0] += loss
                sums[1] += float(correct)
                sums[2] += batch
                steps_this_call += 1
                bar.update(state["step"], [("loss", loss), ("accuracy", float(correct) / batch),
                                           ("lr", step_lr)])
                if interrupted["flag"]:
                    raise KeyboardInterrupt
                if checkpoint_every and state["step"] % checkpoint_every == 0:
                    state["train_seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    save()
                if stop_after_steps and steps_this_call >= stop_after_steps:
                    state["train_seconds"] += time.perf_counter() - t0
                    save()
                    return {"stopped_after_steps": steps_this_call, "state": state}
            state["train_seconds"] += time.perf_counter() - t0
            sync_stats()
            val_loss, val_acc = evaluate("val")
            row = {"epoch": epoch + 1, "loss": sums[0] / max(state["step"], 1),
                   "accuracy": sums[1] / max(sums[2], 1), "val_loss": val_loss,
                   "val_accuracy": val_acc, "lr": step_lr}
            state["history"].append(row)
            if rec.schedule == "plateau":
                _plateau_update(rec, state, val_acc)
            with writer.as_default():
                for k, v in row.items():
                    if k != "epoch":
                        tf.summary.scalar(k, v, step=epoch + 1)
            if chief and verbose:
                print(f"  val_loss {val_loss:.4f}  val_accuracy {val_acc:.4f}")
            state.update(epoch=epoch + 1, step=0, epoch_sums=[0.0, 0.0, 0])
            save()
            if chief:
                _write_history(state["history"], output)
    except KeyboardInterrupt:
        save()
        raise KeyboardInterrupt(f"interrupted: progress saved to {ckpt_path}; rerun the same "
                                "command to continue") from None
    finally:
        signal.signal(signal.SIGINT, previous)
        writer.close()

    test_loss, test_acc = evaluate("test")
    history = state["history"]
    summary = {
        "model": net.name, "dataset": data.name, "recipe": rec.name, "epochs": epochs,
        "batch_size": batch, "image_size": image_size, "learning_rate": base_lr,
        "preprocessing": preprocessing,
        "pretrained": record.name if record else None,
        "best_val_accuracy": max((h["val_accuracy"] for h in history), default=None),
        "final_val_accuracy": history[-1]["val_accuracy"] if history else None,
        "test_accuracy": test_acc, "test_loss": test_loss,
        "wall_time_s": state["train_seconds"],
        "images_per_second": state["images"] / max(state["train_seconds"], 1e-9),
        "strategy": PUBLIC_NAMES.get(type(strat).__name__, type(strat).__name__),
        "replicas": replicas, "precision": policy,
        "jit": bool(jit), "params": net.count_params(),
        "weights_checksum": float(sum(np.abs(v.numpy()).sum() for v in net.weights)),
    }
    if chief:
        net.save(os.path.join(output, "model.tmp.keras"))
        os.replace(os.path.join(output, "model.tmp.keras"), os.path.join(output, "model.keras"))
        _plot_history(history, os.path.join(output, "curves.png"))
    summary_path = os.path.join(output, "summary.json" if chief else
                                f"summary_{task_type}_{task_id}.json")
    with open(summary_path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(summary_path + ".tmp", summary_path)
    summary["model_object"] = net
    return summary


def saved_preprocessing(model_path):
    """The preprocessing a ``model.keras`` written by :func:`train` was trained with (read from
    the ``summary.json`` beside it); "torch" when there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "summary.json")
    try:
        with open(path) as f:
            mode = json.load(f).get("preprocessing", "torch")
    except (OSError, ValueError, AttributeError):
        return "torch"
    return mode if mode in data_lib.MODES else "torch"


def _write_history(history, output):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    w.writerows(history)
    path = os.path.join(output, "history.csv")
    with open(path + ".tmp", "w") as f:
        f.write(buf.getvalue())
    os.replace(path + ".tmp", path)
