"""``train()``: check the call, build the model under the strategy, resume its run, loop over
epochs, write the run's outputs. The parts live beside it: ``presets`` (optimizer and
schedule), ``strategy``, ``loop`` (steps), ``checkpoints`` (lock, settings, TF checkpoints),
``outputs`` (history, curves, summary, model)."""
import dataclasses
import json
import math
import os
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from .. import datasets
from ..registry import model_info, resolve
from ..weights import preprocessing_of, weights_info
from . import checkpoints as ckpt_lib, outputs
from .loop import DIVERGED_LOSS, StepLoop, fuse_pays
from .presets import PRESETS, get_preset, make_optimizer, plateau_update, schedule
from .precision import precision as policy_scope, resolve_precision
from .strategy import make_strategy, strategy_name, worker_role


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the trained model, the summary written to
    ``summary.json`` and the output directory."""

    model: keras.Model
    summary: dict
    output: str


def _check_count(name, value, minimum=1):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


EVAL_BATCH = 64


def train(model="resnet18", dataset="digits", epochs=None, batch_size=None, preset=None,
          strategy="auto", precision="float32", jit=False, output="runs/train",
          image_size=None, seed=0, lr=None, checkpoint_every=20, cpu_replicas=None,
          data_dir=None, augment=None, verbose=1, model_kwargs=None, data=None,
          build_model=None, deterministic=False, preprocessing=None, overwrite=False,
          initial_epoch=0, callbacks=None, steps_per_execution=10, warmup_epochs=None):
    """Train ``model`` (a registry name) on ``dataset``; returns a :class:`TrainResult`.

    Writes, in ``output``: ``checkpoints/`` (TensorFlow checkpoints of model, optimizer and loop
    state), TensorBoard ``logs/``, ``history.csv``, ``curves.png``, ``model.keras`` and
    ``summary.json``. Rerunning the same call resumes (a finished run: returns its summary); a
    call with other settings (model, data, sizes, preset and overrides, seed, replicas,
    precision) is refused unless ``overwrite``. ``data`` (a
    :class:`keras_classics.datasets.Data`) replaces ``dataset``; ``build_model(classes,
    input_shape)`` replaces the registry builder (transfer learning, tuning). Augmentation
    defaults to the preset's, except on the digits, which are only cropped. ``preprocessing``
    defaults to that of the pretrained weights the model was built with
    (``model_kwargs={"weights": "imagenet"}``), else "torch". ``initial_epoch`` and
    ``callbacks`` (Keras callbacks, told each epoch's logs) serve keras-tuner.
    ``steps_per_execution`` steps run per ``tf.function`` call. ``precision`` is one of
    ``precision.PRECISIONS`` ("auto": mixed where that is faster, :func:`fast_precision`); under
    mixed_float16 the summary reports the final ``loss_scale``. ``epochs``, ``batch_size``,
    ``augment`` and ``warmup_epochs`` override the preset's. ``preset`` defaults to "digits"
    (ResNet's preset sized for 1,078 small images: 8 epochs at batch 64) for the embedded
    digits, else "resnet".
    """
    if preset is None:
        preset = "digits" if data is None and dataset == "digits" else "resnet"
    rec = get_preset(preset, epochs=epochs, batch_size=batch_size, augment=augment,
                     warmup_epochs=warmup_epochs)
    epochs, batch = rec.epochs, rec.batch_size
    for name, value, minimum in (("image_size", image_size, 1), ("cpu_replicas", cpu_replicas, 1),
                                 ("steps_per_execution", steps_per_execution, 1),
                                 ("checkpoint_every", checkpoint_every, 0),
                                 ("initial_epoch", initial_epoch, 0)):
        _check_count(name, value, minimum)
    if lr is not None and not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if initial_epoch >= epochs:
        raise ValueError(f"initial_epoch {initial_epoch} must be below epochs {epochs}")
    if preprocessing is not None and preprocessing not in datasets.MODES:
        raise ValueError(f"unknown preprocessing {preprocessing!r}; allowed: "
                         f"{', '.join(datasets.MODES)}")
    policy = resolve_precision(precision)
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
    data = data or datasets.load(dataset, image_size, data_dir, seed)
    if augment is None and data.name == "digits":  # a flipped digit is another digit
        rec = dataclasses.replace(rec, augment=("crop",))
    steps_per_epoch = data.num_train // batch
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {batch} is larger than the {data.num_train} training "
                         "examples")
    base_lr = lr if lr is not None else rec.lr * batch / PRESETS[preset].batch_size
    keras.utils.set_random_seed(seed)
    if deterministic:  # bitwise-reproducible kernels: resumed and uninterrupted runs agree
        tf.config.experimental.enable_op_determinism()

    with policy_scope(policy), strat.scope():
        shape = (image_size, image_size, 3)
        net = build_model(data.num_classes, shape) if build_model else resolve(
            info.name, (model_kwargs or {}).get("weights")).build(
            classes=data.num_classes, input_shape=shape, **(model_kwargs or {}))
        optimizer = make_optimizer(rec, schedule(rec, base_lr, steps_per_epoch, epochs),
                                   loss_scale=policy == "mixed_float16")
        optimizer.build(net.trainable_variables)
    record = weights_info(net)
    preprocessing = preprocessing or preprocessing_of(net)
    settings = {"model": info.name if info else net.name, "dataset": data.name,
                "num_train": data.num_train, "image_size": image_size,
                "preprocessing": preprocessing, "seed": seed, "replicas": replicas,
                "precision": policy, "learning_rate": base_lr,
                "model_kwargs": {k: v for k, v in (model_kwargs or {}).items()},
                **{f"preset.{k}": v for k, v in dataclasses.asdict(rec).items()},
                **({"data_source": data.source} if data.source else {})}
    settings = _jsonable(settings)

    # Everything above only read; the output directory is created now, and locked.
    task_type, task_id, chief = worker_role()
    os.makedirs(output, exist_ok=True)
    held = ckpt_lib.lock(output) if chief else None
    try:
        if overwrite and chief:
            ckpt_lib.clear(output)
        ckpts = ckpt_lib.Checkpoints(output, net, optimizer, chief)
        state = {"settings": settings, "epoch": initial_epoch, "step": 0,
                 "global_step": initial_epoch * steps_per_epoch, "lr": base_lr, "best": -1.0,
                 "wait": 0, "history": [], "train_seconds": 0.0, "images": 0,
                 "epoch_sums": [0.0, 0.0, 0]}
        latest = ckpts.latest()
        if latest:
            saved = ckpts.peek(latest)
            diff = ckpt_lib.differences(saved.get("settings", {}), settings)
            if diff:
                raise ckpt_lib.RunMismatch(
                    f"{output} holds a run with other settings:\n  " + "\n  ".join(diff) +
                    "\nrerun with the same settings to resume it, or use a new --output or "
                    "--overwrite to start afresh")
            ckpts.restore(latest)
            state = saved
            if verbose and chief:
                print(f"resuming from {latest}: epoch {state['epoch'] + 1}, "
                      f"step {state['step']}")
        else:
            optimizer.iterations.assign(state["global_step"])
        if rec.schedule == "plateau":
            optimizer.learning_rate = state["lr"]
        summary_name = "summary.json" if chief else f"summary_{task_type}_{task_id}.json"
        if state["epoch"] >= epochs and not callbacks:
            done = _finished_summary(net, os.path.join(output, summary_name))
            if done:
                return TrainResult(net, done, output)
        try:
            return _run(net, optimizer, ckpts, state, strat, data, rec, settings, output,
                        chief=chief, batch=batch, seed=seed, steps_per_epoch=steps_per_epoch,
                        preprocessing=preprocessing, jit=jit,
                        checkpoint_every=checkpoint_every, verbose=verbose,
                        callbacks=callbacks or [], record=record, base_lr=base_lr,
                        steps_per_execution=steps_per_execution, summary_name=summary_name)
        except tf.errors.InvalidArgumentError:
            bad = data.unreadable()
            if bad:
                raise ValueError(f"{bad[0]}: {bad[1]}; remove or replace it and rerun: the "
                                 "run resumes from its last checkpoint") from None
            raise
    finally:
        if held:
            held.release()


def _diverged(data, loss_sum, epoch, step, lr, good, which="", limit=DIVERGED_LOSS):
    """What to say when a step's loss is not finite or above ``limit`` (see
    ``loop.DIVERGED_LOSS``): bad data first (NaN or infinite pixels), else the learning rate,
    with the checkpoint to keep."""
    what = "nan" if math.isnan(loss_sum) else "inf" if math.isinf(loss_sum) else \
        f"{loss_sum:.3g} (above {limit:.3g}: diverging)"
    where = f"at epoch {epoch + 1}, step {step}"
    bad = data.non_finite()
    if bad:
        return (f"the {which}loss became {what} {where}: the training data is not finite ({bad}); "
                "fix the data, then rerun with --overwrite or another --output")
    kept = (f"The last good checkpoint (the steps from its weights had a loss within twice "
            f"the run's first) is {good}." if good else "No checkpoint of this run is good (the "
            "steps from each had a loss above twice the run's first).")
    return (f"the {which}loss became {what} {where} (learning rate {lr:.3g}); stopped without "
            f"saving. {kept} Lower the learning rate "
            "(--lr) and rerun with --overwrite or another --output (a run's settings are "
            "fixed once it has started)")


def _jsonable(value):
    return json.loads(json.dumps(value))


def _checksum(net):
    return float(sum(np.abs(v.numpy()).sum() for v in net.weights))


def _finished_summary(net, path):
    """The summary a finished run wrote, if it is of the weights just restored (its
    checksum): a rerun of a finished run returns it instead of evaluating the test set, saving
    the model and plotting again (fine-tuning's medium and large regimes rerun the head phase
    small trained)."""
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    return summary if summary.get("weights_checksum") == _checksum(net) else None


def _run(net, optimizer, ckpts, state, strat, data, rec, settings, output, *, chief, batch,
         seed, steps_per_epoch, preprocessing, jit, checkpoint_every, verbose, callbacks,
         record, base_lr, steps_per_execution, summary_name):
    epochs = rec.epochs
    steps_left = (epochs - state["epoch"]) * steps_per_epoch - state["step"]
    loop = StepLoop(strat, net, optimizer, batch, rec.aux_weight, jit, fuse_update=fuse_pays(
        net, optimizer, strat, steps_left))
    # TensorBoard scalars by hand: keras.callbacks.TensorBoard reads ``model.optimizer``,
    # which only compile() sets. Same layout as the callback's: logs/train, logs/validation.
    log_dir = os.path.join(output, "logs") if chief else tempfile.mkdtemp()
    writers = {k: tf.summary.create_file_writer(os.path.join(log_dir, k))
               for k in ("train", "validation")}
    cbs = keras.callbacks.CallbackList(list(callbacks) if chief else [], model=net)

    if "first_loss" in state:  # resumed: the limit of its first steps
        loop.set_first_loss(state["first_loss"])
    saved_at = {"step": state["global_step"]}  # the run's step at its last checkpoint
    # checkpoints known to be good: the steps run from their weights had a loss near the
    # run's first (a checkpoint written while the loss explodes holds the exploded weights)
    sane, pending = set(), [ckpts.manager.latest_checkpoint]

    def save():
        loop.sync_stats()
        ckpts.save(state, state["global_step"])
        saved_at["step"] = state["global_step"]
        pending[0] = ckpts.manager.latest_checkpoint

    # one pipeline per held-out split for the whole run (nothing random in it), in batches
    # of at least 64: inference keeps no activations for gradients, and small batches
    # (fine-tuning on few labels) spend most of their time in per-batch overhead (2x here)
    held_out = {}

    def evaluate(split):
        if split not in held_out:
            held_out[split] = strat.experimental_distribute_dataset(data.pipeline(
                split, max(batch, EVAL_BATCH), seed=seed, preprocessing=preprocessing))
        return loop.evaluate(held_out[split])

    interrupted = {"flag": False}
    previous = signal.signal(signal.SIGINT, lambda *a: interrupted.__setitem__("flag", True))
    cbs.on_train_begin()
    if state["epoch"] < epochs:  # one pipeline for the epochs left, from where the run is
        iterator = iter(strat.experimental_distribute_dataset(data.pipeline(
            "train", batch, epoch=state["epoch"], epochs=epochs, seed=seed,
            augment=rec.augment, drop_remainder=True, skip_batches=state["step"],
            preprocessing=preprocessing)))
    try:
        while state["epoch"] < epochs:
            epoch = state["epoch"]
            cbs.on_epoch_begin(epoch)
            bar = keras.utils.Progbar(steps_per_epoch, verbose=verbose if chief else 0,
                                      stateful_metrics=["lr"])
            if chief and verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar.update(state["step"])
            sums = state["epoch_sums"]
            t0 = time.perf_counter()
            while state["step"] < steps_per_epoch:
                n = min(steps_per_execution, steps_per_epoch - state["step"])
                if checkpoint_every:
                    n = min(n, checkpoint_every - state["step"] % checkpoint_every)
                lr_now = float(optimizer.learning_rate)
                loss_sum, correct, bad = loop.train(iterator, n)
                if bad >= 0:
                    good = [p for p in ckpts.manager.checkpoints if p in sane]
                    raise TrainingDiverged(_diverged(data, loss_sum, epoch,
                                                     state["step"] + bad + 1, lr_now,
                                                     good[-1] if good else None,
                                                     limit=float(loop.loss_limit)))
                if "first_loss" not in state:
                    state["first_loss"] = loss_sum / n
                    loop.set_first_loss(state["first_loss"])
                if pending[0] and loss_sum / n <= 2 * state["first_loss"]:
                    sane.add(pending[0])
                pending[0] = None
                state["step"] += n
                state["global_step"] += n
                state["images"] += n * batch
                sums[0] += loss_sum
                sums[1] += correct
                sums[2] += n * batch
                bar.update(state["step"], [("loss", loss_sum / n),
                                           ("accuracy", correct / (n * batch)),
                                           ("lr", lr_now)])
                if interrupted["flag"]:
                    raise KeyboardInterrupt
                if checkpoint_every and state["step"] % checkpoint_every == 0 and \
                        state["step"] < steps_per_epoch:
                    state["train_seconds"] += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    save()
            state["train_seconds"] += time.perf_counter() - t0
            loop.sync_stats()
            val_loss, val_acc = evaluate("val")
            # not finite: the last update exploded (a large finite loss is not divergence here:
            # after a first epoch the moving BN statistics can put it in the hundreds)
            if not math.isfinite(val_loss):
                good = [p for p in ckpts.manager.checkpoints if p in sane]
                raise TrainingDiverged(_diverged(data, val_loss, epoch, state["step"],
                                                 float(optimizer.learning_rate),
                                                 good[-1] if good else None, "validation "))
            row = {"epoch": epoch + 1, "loss": sums[0] / max(state["step"], 1),
                   "accuracy": sums[1] / max(sums[2], 1), "val_loss": val_loss,
                   "val_accuracy": val_acc, "lr": float(optimizer.learning_rate)}
            state["history"].append(row)
            if rec.schedule == "plateau":
                plateau_update(rec, state, val_acc)
                optimizer.learning_rate = state["lr"]
            if chief and verbose:
                print(f"  val_loss {val_loss:.4f}  val_accuracy {val_acc:.4f}")
            state.update(epoch=epoch + 1, step=0, epoch_sums=[0.0, 0.0, 0])
            # at an epoch's end once checkpoint_every steps have passed since the last save,
            # and after the last epoch: runs of many short epochs (fine-tuning 50 images,
            # tuning trials) spent a fifth of their time saving (0.2 s a checkpoint for
            # ResNet-20). A rule of steps, not seconds: every worker must take part in a save
            if state["global_step"] - saved_at["step"] >= checkpoint_every or \
                    state["epoch"] == epochs:
                save()
            for key, value in row.items():
                if key != "epoch":
                    split = "validation" if key.startswith("val_") else "train"
                    with writers[split].as_default():
                        tf.summary.scalar("epoch_" + key.removeprefix("val_"), value,
                                          step=epoch + 1)
            cbs.on_epoch_end(epoch, {k: v for k, v in row.items() if k != "epoch"})
            if chief:
                outputs.write_history(state["history"], output)
    except KeyboardInterrupt:
        save()
        raise KeyboardInterrupt(f"interrupted: progress saved to {ckpts.directory}; rerun the "
                                "same command to continue") from None
    finally:
        signal.signal(signal.SIGINT, previous)
        for w in writers.values():
            w.close()
    cbs.on_train_end()

    test_loss, test_acc = evaluate("test")
    history = state["history"]
    summary = {
        "model": net.name, "dataset": data.name, "preset": rec.name, "epochs": epochs,
        "batch_size": batch, "image_size": settings["image_size"], "learning_rate": base_lr,
        "preprocessing": preprocessing, "pretrained": record.name if record else None,
        "best_val_accuracy": max((h["val_accuracy"] for h in history), default=None),
        "final_val_accuracy": history[-1]["val_accuracy"] if history else None,
        # still improving when training stopped? (recipes.search warns above 0.02)
        "last_epoch_rise": history[-1]["val_accuracy"] - history[-2]["val_accuracy"]
        if len(history) > 1 else None,
        "test_accuracy": test_acc, "test_loss": test_loss,
        "wall_time_s": state["train_seconds"],
        "images_per_second": state["images"] / max(state["train_seconds"], 1e-9),
        "strategy": strategy_name(strat), "replicas": settings["replicas"],
        "precision": settings["precision"], "jit": bool(jit), "params": net.count_params(),
        "weights_checksum": _checksum(net),
    }
    if hasattr(optimizer, "dynamic_scale"):  # float16: how far the loss scale had to fall
        summary["loss_scale"] = float(optimizer.dynamic_scale.numpy())
    if chief:
        outputs.save_model(net, output)
        outputs.plot_history(history, os.path.join(output, "curves.png"))
    outputs.write_summary(summary, os.path.join(output, summary_name))
    return TrainResult(net, summary, output)
