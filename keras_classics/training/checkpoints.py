"""A run directory: its lock, its settings and TensorFlow checkpoints of model, optimizer and
loop state (``tf.train.Checkpoint`` + ``CheckpointManager``, as TensorFlow's multi-worker
custom-loop guide: the chief writes ``OUTPUT/checkpoints``, other workers a temporary
directory they delete). The loop state — the run's settings, epoch, step, history — is a
string variable inside the same checkpoint, so it can never disagree with the weights.
"""
import json
import os
import shutil
import tempfile

import filelock
import tensorflow as tf

# What a run writes into its --output; --overwrite removes exactly these.
RUN_FILES = ("checkpoints", "logs", "model.keras", "summary.json", "history.csv",
             "curves.png")
STATE_KEY = "loop/.ATTRIBUTES/VARIABLE_VALUE"


class RunMismatch(ValueError):
    """The output directory holds a run with other settings."""


class CorruptCheckpoint(ValueError):
    """A checkpoint that cannot be read completely; nothing was assigned from it."""


def lock(output, path=None, what="training", option="--output"):
    """Hold ``path`` (default ``OUTPUT/.lock``) for a run: a second ``what`` on the same
    ``output`` is refused, naming the lock and the ``option`` to change."""
    path = path or os.path.join(output, ".lock")
    held = filelock.FileLock(path)
    try:
        held.acquire(timeout=0)
    except filelock.Timeout:
        raise ValueError(f"another {what} is running in {output} (it holds {path}); wait "
                         f"for it to finish or use another {option}") from None
    return held


def differences(saved, current, where="in the checkpoint"):
    """Lines naming each setting that differs between a saved run and this call."""
    return [f"{k}: {saved.get(k)!r} {where}, {current.get(k)!r} now"
            for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]


def clear(output):
    """Remove a previous run's files from ``output`` (--overwrite), nothing else."""
    for name in RUN_FILES:
        path = os.path.join(output, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


class Checkpoints:
    """Model, optimizer and loop state of one run in ``output``."""

    def __init__(self, output, net, optimizer, chief=True, keep=2):
        self.directory = os.path.join(output, "checkpoints")
        self.state = tf.Variable("", dtype=tf.string, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=net, optimizer=optimizer, loop=self.state)
        self.chief, self.keep = chief, keep
        write_dir = self.directory if chief else tempfile.mkdtemp(prefix="ckpt-worker-")
        self.manager = tf.train.CheckpointManager(self.checkpoint, write_dir, max_to_keep=keep)

    def listed(self):
        """The checkpoints the index names, oldest first (missing files included)."""
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except Exception as err:  # a damaged "checkpoint" index file
            raise CorruptCheckpoint(f"{self.directory}/checkpoint: unreadable "
                                    f"({type(err).__name__}); delete it or rerun with "
                                    "--overwrite") from None
        if state is None:
            return []
        # as TensorFlow resolves them: relative entries joined to the directory
        return list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]

    def latest(self):
        """The newest checkpoint whose files are all there, or None when the index names
        none. Checkpoints the index names without their files (deleted by hand) are dropped
        from it, so the manager never prunes one it did not write; when the index names
        only missing checkpoints, the run is refused rather than started afresh over them."""
        if not os.path.isdir(self.directory):
            return None
        listed = self.listed()
        present = [p for p in listed if os.path.exists(p + ".index")]
        if not listed:
            return None
        if not present:
            raise CorruptCheckpoint(
                f"{self.directory}/checkpoint names {', '.join(map(os.path.basename, listed))} "
                "but their files are missing: nothing to resume from. Rerun with --overwrite "
                "to start afresh (or restore the files)")
        if present != listed and self.chief:  # drop the missing ones from the index
            tf.compat.v1.train.update_checkpoint_state(  # paths as TensorFlow resolved them;
                self.directory, present[-1],  # a copy: it rewrites the list it is given
                all_model_checkpoint_paths=list(present))
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                      max_to_keep=self.keep)
        return present[-1]

    def peek(self, path):
        """The loop state stored at ``path``, after reading (and so checksumming) every tensor
        in it: a damaged checkpoint is refused before anything is assigned."""
        try:
            reader = tf.train.load_checkpoint(path)
            for key in reader.get_variable_to_shape_map():
                reader.get_tensor(key)
            return json.loads(reader.get_tensor(STATE_KEY).decode())
        except Exception as err:
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            older = [p for p in self.listed() if p != path and os.path.exists(p + ".index")]
            then = (f"Delete its files ({os.path.basename(path)}.*) to resume from "
                    f"{os.path.basename(older[-1])}, or rerun" if older else "Rerun")
            raise CorruptCheckpoint(
                f"{path}: damaged or incomplete checkpoint ({type(err).__name__}: {detail}); "
                f"nothing was loaded. {then} with --overwrite to start afresh") from None

    def restore(self, path):
        """Every object of the run gets its value; the checkpoint's ``save_counter`` (written
        by the manager, not read back by ``read``) is left unused without a warning."""
        self.checkpoint.read(path).assert_existing_objects_matched().expect_partial()

    def save(self, state, step):
        self.state.assign(json.dumps(state))
        try:
            self.manager.save(checkpoint_number=step)
        except Exception:  # a full disk: TensorFlow leaves its half-written ckpt-N_temp
            for name in os.listdir(self.manager.directory):
                if name.startswith("ckpt-") and name.endswith("_temp"):
                    shutil.rmtree(os.path.join(self.manager.directory, name),
                                  ignore_errors=True)
            raise
        if not self.chief:  # a worker's copy only exists so that every worker saves
            shutil.rmtree(self.manager.directory, ignore_errors=True)
