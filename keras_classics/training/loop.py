"""The step loop: ``strategy.run`` of a ``tf.GradientTape`` step, several steps per
``tf.function`` call (what ``steps_per_execution`` does in ``fit``), sums kept on the device,
and BatchNormalization statistics averaged across replicas.

One custom loop serves every strategy because Keras 3.15's ``model.fit`` fails under
MultiWorkerMirroredStrategy (keras-team/keras#20585). The host reads the loss once per call,
never per step; a non-finite loss is found on the device and reported with its step.
"""
import functools

import keras
import numpy as np
import tensorflow as tf

from .strategy import strategy_name

SUM = tf.distribute.ReduceOp.SUM


def _run_function(fn):
    """``tf.function(fn, autograph=False)``, its traces counted for this run alone. TensorFlow
    counts traces per code object over a whole process and warns of "frequent retracing"
    when runs are short (five tuning trials of one epoch: five models, each traced once, on
    purpose); a ``functools.partial`` has no code object, so each run's is its own key."""
    return tf.function(functools.partial(fn), autograph=False)


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


# fuse_pays: compiling the optimizer's update costs 0.1-4 s per run (more with more variables:
# GoogLeNet's 128, 3.9 s) and saves a few ms a step per million parameters (ZFNet, 24.7M: 300 ->
# 204 ms; ResNet-50, 23.6M: 418 -> 351; GoogLeNet, 6.4M: 166 -> 157; CPU time, one thread), so it
# pays in runs that update many parameter values: a GoogLeNet test of 6 steps took 8 s longer
FUSE_MIN_PARAMS = 5_000_000
FUSE_MIN_UPDATES = 1_000_000_000  # parameters x steps over the run


def fuse_pays(net, optimizer, strategy, steps):
    """Whether to XLA-compile ``optimizer``'s update of ``net`` for a run of ``steps`` steps:
    under the default strategy only (under a Mirrored or MultiWorkerMirrored strategy, of one
    replica too, the update is a cross-replica call XLA cannot compile), without loss scaling
    (float16: its finite check and skipped steps stay as Keras wrote them), for a model of at
    least FUSE_MIN_PARAMS parameters updated at least FUSE_MIN_UPDATES times in all."""
    params = sum(int(np.prod(v.shape)) for v in net.trainable_variables)
    return strategy_name(strategy) == "default" and \
        not isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and \
        params >= FUSE_MIN_PARAMS and params * steps >= FUSE_MIN_UPDATES


# A loss above max(DIVERGED_LOSS, DIVERGED_FACTOR x the run's first) is divergence, not
# learning: a cross-entropy starts near ln(classes) (6.9 for ImageNet), or higher for an
# untrained head on large inputs (630 for ResNet-50 on caffe-scaled pixels), and only climbs
# that far when the weights explode (--lr 1000: 1e3 at step 4, 1.7e18 before the NaN).
DIVERGED_LOSS, DIVERGED_FACTOR = 100.0, 10.0


class StepLoop:
    """Training and evaluation steps of ``net`` with ``optimizer`` under ``strategy``.

    ``jit`` XLA-compiles the per-replica forward and backward pass (not the call around
    ``strategy.run``, which XLA cannot compile, nor the optimizer's cross-replica update).
    ``fuse_update`` (``train`` asks :func:`fuse_pays`) XLA-compiles the optimizer's update
    under the default strategy: Keras applies Adam as a chain of element-wise ops, each a pass
    over every parameter; compiled, it is one (ZFNet's 36M parameters: 94 -> 32 ms a step here
    on two threads, 90 -> 49 ms on one; ResNet-18: 22 -> 13 ms), for a compilation of 0.1-4 s
    per run. With the compiled LRN, a mixed-bfloat16 ZFNet step at 112x112, batch 32, one intra-op
    thread, took 10-15% less CPU time."""

    def __init__(self, strategy, net, optimizer, global_batch, aux_weight=0.3, jit=False,
                 fuse_update=False):
        self.strategy, self.net, self.optimizer = strategy, net, optimizer
        self.replicas = strategy.num_replicas_in_sync
        if not optimizer.built:  # slot variables made in the step: TensorFlow traces it twice
            with strategy.scope():
                optimizer.build(net.trainable_variables)
        self.fused_update = bool(fuse_update)
        # the loss above which a step counts as diverged: none until the run's first loss
        # is known (set_first_loss)
        self.loss_limit = tf.Variable(float("inf"), trainable=False, dtype=tf.float32)
        self._apply = self._update_fn(self.fused_update)
        replica_step = (self._compiled_replica_step if jit else self._replica_step)(
            global_batch, aux_weight)

        # autograph=False, the loop written as a tf.while_loop: autograph converting every
        # call under the step (the model's layers, the optimizer) was a fifth of the tracing
        # time (ResNet-20: 4.2 s -> 3.3 s), which every run pays
        @_run_function
        def train_steps(iterator, n):
            def step(i, loss_sum, correct, first_bad):
                x, y = next(iterator)
                loss, hits = strategy.run(replica_step, args=(x, y))
                loss = strategy.reduce(SUM, loss, None)
                bad = ~tf.math.is_finite(loss) | (loss > self.loss_limit)
                first_bad = tf.where((first_bad < 0) & bad, i, first_bad)
                return (i + 1, loss_sum + loss, correct + strategy.reduce(SUM, hits, None),
                        first_bad)

            return tf.while_loop(lambda i, *_: i < n, step, (
                tf.constant(0), tf.constant(0.0), tf.constant(0.0), tf.constant(-1)))[1:]

        self._train_steps = train_steps
        eval_step = self._eval_fn()

        # a held-out split in one call: its batches read in a tf.while_loop until the
        # (distributed) iterator is exhausted, sums kept on the device, one trace for every
        # batch size (the partial last batch too). A Python call per batch took 0.31 s for
        # the 359 validation digits of ResNet-20 at 16x16 (median of 20), this 0.18 s
        @_run_function
        def evaluate_all(iterator):
            def body(batch, loss, hits, count):
                out = eval_step(*batch.get_value())
                return (iterator.get_next_as_optional(), loss + out[0], hits + out[1],
                        count + out[2])

            return tf.while_loop(lambda batch, *_: batch.has_value(), body, (
                iterator.get_next_as_optional(), tf.constant(0.0), tf.constant(0.0),
                tf.constant(0.0)))[1:]

        self._evaluate_all = evaluate_all
        # BatchNormalization's moving statistics are updated per replica (Keras creates them
        # with no aggregation), so replicas drift apart; averaging keeps every copy, and
        # every worker, identical.
        self.stats = [v for v in net.non_trainable_variables
                      if "float" in str(v.dtype) and "seed" not in v.path]
        self._mean_stats = tf.function(autograph=False, func=lambda: [
            strategy.reduce(tf.distribute.ReduceOp.MEAN, v, None)
            for v in strategy.run(lambda: [tf.identity(s.value) for s in self.stats])])

    def _update_fn(self, fuse):
        net, optimizer = self.net, self.optimizer

        def apply(grads):
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return tf.function(apply, jit_compile=True, autograph=False) if fuse else apply

    def _replica_step(self, global_batch, aux_weight):
        net, optimizer, replicas = self.net, self.optimizer, self.replicas

        def step(x, y):
            with tf.GradientTape() as tape:
                outs = net(x, training=True)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                loss = total_loss(y, outs, aux_weight, global_batch)
                if net.losses:
                    loss += tf.add_n(net.losses) / replicas
                scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") \
                    else loss
            grads = tape.gradient(scaled, net.trainable_variables)
            self._apply(grads)
            hits = tf.reduce_sum(tf.cast(tf.equal(
                tf.argmax(outs[0], -1, output_type=tf.int32), y), tf.float32))
            return loss, hits
        return step

    def _compiled_replica_step(self, global_batch, aux_weight):
        """The step with its forward and backward pass XLA-compiled. The compiled function
        takes the variables' values as arguments (``stateless_call``) and returns the
        gradients and the new BatchNormalization and RNG state: under MirroredStrategy, a
        compiled function that reads replica 1's variables itself runs on CPU:0/GPU:0 and
        fails ("Trying to access resource .../replica_1 located in device CPU:1")."""
        net, optimizer, replicas = self.net, self.optimizer, self.replicas

        @tf.function(jit_compile=True)
        def forward_backward(trainable, state, x, y, scale):
            with tf.GradientTape() as tape:
                tape.watch(trainable)
                outs, state, losses = net.stateless_call(trainable, state, x, training=True,
                                                         return_losses=True)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                loss = total_loss(y, outs, aux_weight, global_batch)
                if losses:
                    loss += tf.add_n(losses) / replicas
                scaled = loss * scale
            grads = tape.gradient(scaled, trainable)
            hits = tf.reduce_sum(tf.cast(tf.equal(
                tf.argmax(outs[0], -1, output_type=tf.int32), y), tf.float32))
            return loss, hits, grads, state

        def step(x, y):
            scale = tf.identity(optimizer.dynamic_scale) if hasattr(optimizer, "dynamic_scale") \
                else tf.constant(1.0)
            loss, hits, grads, state = forward_backward(
                [tf.identity(v.value) for v in net.trainable_variables],
                [tf.identity(v.value) for v in net.non_trainable_variables], x, y, scale)
            for v, value in zip(net.non_trainable_variables, state):
                v.assign(value)
            self._apply(grads)
            return loss, hits
        return step

    def _eval_fn(self):
        net, strategy = self.net, self.strategy

        def replica_eval(x, y):
            out = net(x, training=False)
            out = tf.cast(out[0] if isinstance(out, (list, tuple)) else out, tf.float32)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, out))
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32),
                                                  y), tf.float32))
            return loss, hits, tf.cast(tf.shape(y)[0], tf.float32)

        return lambda x, y: [strategy.reduce(SUM, v, None)
                             for v in strategy.run(replica_eval, args=(x, y))]

    def set_first_loss(self, first):
        """Steps whose loss exceeds max(DIVERGED_LOSS, DIVERGED_FACTOR * ``first``) are
        reported as diverged from now on."""
        self.loss_limit.assign(max(DIVERGED_LOSS, DIVERGED_FACTOR * first))

    def train(self, iterator, steps):
        """Run ``steps`` steps from ``iterator``: (sum of the step losses, number of correct
        predictions, index of the first non-finite loss or -1), read once."""
        loss, correct, bad = self._train_steps(iterator, tf.constant(steps))
        return float(loss), float(correct), int(bad)

    def evaluate(self, dataset):
        """(mean loss, accuracy) over a distributed dataset."""
        loss, hits, count = (float(t) for t in self._evaluate_all(iter(dataset)))
        return loss / max(count, 1), hits / max(count, 1)

    def sync_stats(self):
        """Average BatchNormalization statistics over replicas (no-op on one replica)."""
        if self.replicas > 1 and self.stats:
            for v, m in zip(self.stats, self._mean_stats()):
                v.assign(m)
