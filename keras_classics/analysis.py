"""Per-layer parameters, activation memory and multiply-adds of any functional Keras model.

Nothing is run on data: output shapes come from propagating symbolic tensors through the
model's graph (``compute_output_spec``), so a whole zoo profiles in seconds.

Conventions (printed with every table, see :data:`CONVENTIONS`):

- **MACs** (multiply-accumulates) are exact for Conv2D (grouped too), DepthwiseConv2D,
  SeparableConv2D, Conv2DTranspose, Dense and the package's SqueezeExcite FCs: one per weight
  use, biases not counted. This is the ResNet paper's "FLOPs" and torchvision's "GFLOPS";
  TensorFlow's profiler counts 2 FLOPs per MAC.
- **Other ops** (pooling, normalization, activations, additions, LRN, SE scaling) are
  element-wise estimates kept in their own column and never added to MACs.
- **Activations**: elements of each layer's output. The memory total counts the input and
  every output except those a framework computes in place or as a view (Activation, ReLU,
  Dropout, Flatten, Reshape, identity layers), i.e. what the lecture's VGG16 table counts.
"""
import collections
import csv
import dataclasses
import gc
import io
import json
import math
import os

import keras
import numpy as np

from .layers import inception_v1_module
from .registry import list_models, model_info

CONVENTIONS = (
    "MACs: multiply-accumulates of Conv/Dense/SE weights (biases not counted; FLOPs = 2 x MACs). "
    "Other ops: element-wise estimate for pooling, norms, activations, additions (not in MACs). "
    "Memory: input + every layer output except in-place/view layers (Activation, Dropout, "
    "Flatten, Reshape), per image; bytes at the compute dtype.")

IN_PLACE = {"Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout2D",
            "GaussianNoise", "Flatten", "Reshape", "Identity", "InputLayer", "Permute"}
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2,
                   "adamw": 2, "nadam": 2, "adagrad": 1}


@dataclasses.dataclass
class LayerProfile:
    """One row: a layer application (a shared layer applied twice gives two rows)."""

    name: str
    type: str
    output_shape: tuple  # per image, without the batch dimension (first output)
    activations: int     # output elements per image (all outputs)
    activation_bytes: int
    params: int
    bias_params: int
    macs: int            # per image
    other_ops: int       # per image
    counted: bool        # whether ``activations`` enter the memory total
    kernel: tuple = ()   # conv kernel (h, w), for the lecture's labels
    input_channels: int = 0

    @property
    def weights(self):
        """Parameters without biases (the lecture's tables leave biases out)."""
        return self.params - self.bias_params


@dataclasses.dataclass
class Profile:
    """The result of :func:`profile`: ``rows`` plus totals, bottlenecks and exports."""

    model_name: str
    input_shape: tuple
    batch_size: int
    dtype: str
    rows: list
    trainable_params: int
    non_trainable_params: int

    # ---- totals -------------------------------------------------------------------------
    @property
    def params(self):
        return self.trainable_params + self.non_trainable_params

    @property
    def macs(self):
        """Multiply-adds per image."""
        return sum(r.macs for r in self.rows)

    @property
    def other_ops(self):
        return sum(r.other_ops for r in self.rows)

    @property
    def activations(self):
        """Counted activation elements per image (see the module conventions)."""
        return sum(r.activations for r in self.rows if r.counted)

    @property
    def activation_bytes(self):
        """Counted activation bytes for the whole batch (forward pass)."""
        return self.batch_size * sum(r.activation_bytes for r in self.rows if r.counted)

    def training_memory(self, optimizer="momentum", batch_size=None, param_bytes=4):
        """Bytes for one training step, split as the lecture's VGG16 slide: parameters, their
        gradients, optimizer slots (SGD 0, momentum 1, Adam 2 per trainable parameter), layer
        outputs kept for the backward pass and their gradients ("layer errors", same size)."""
        key = optimizer.lower()
        if key not in OPTIMIZER_SLOTS:
            raise ValueError(f"unknown optimizer {optimizer!r}; allowed: "
                             f"{', '.join(OPTIMIZER_SLOTS)}")
        batch = batch_size or self.batch_size
        outputs = batch * sum(r.activation_bytes for r in self.rows if r.counted)
        parts = {
            "parameters": self.params * param_bytes,
            "gradients": self.trainable_params * param_bytes,
            "optimizer_slots": OPTIMIZER_SLOTS[key] * self.trainable_params * param_bytes,
            "layer_outputs": outputs,
            "layer_errors": outputs,
        }
        parts["total"] = sum(parts.values())
        return parts

    def bottlenecks(self, top=3):
        """The ``top`` rows holding most activation memory, most parameters, most MACs."""
        out = {}
        for key, total in (("activations", self.activations), ("params", self.params),
                           ("macs", self.macs)):
            rows = sorted((r for r in self.rows if key != "activations" or r.counted),
                          key=lambda r: getattr(r, key), reverse=True)[:top]
            out[key] = [(r.name, getattr(r, key), getattr(r, key) / total if total else 0.0)
                        for r in rows]
        return out

    # ---- exports ------------------------------------------------------------------------
    def to_dicts(self):
        return [{**dataclasses.asdict(r), "output_shape": list(r.output_shape),
                 "kernel": list(r.kernel), "weights": r.weights} for r in self.rows]

    def summary(self):
        return {"model": self.model_name, "input_shape": list(self.input_shape),
                "batch_size": self.batch_size, "dtype": self.dtype,
                "params": self.params, "trainable_params": self.trainable_params,
                "macs": self.macs, "gmacs": self.macs / 1e9, "other_ops": self.other_ops,
                "activations": self.activations,
                "activation_bytes_per_batch": self.activation_bytes,
                "conventions": CONVENTIONS}

    def to_json(self):
        return json.dumps({**self.summary(), "layers": self.to_dicts(),
                           "bottlenecks": self.bottlenecks()}, indent=1)

    def to_csv(self):
        buf = io.StringIO()
        rows = self.to_dicts()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()


# ---- per-layer counting -----------------------------------------------------------------
def _shape(spec):
    return tuple(spec.shape[1:])


def _kind(layer):
    """The layer type a row is counted as: a package layer that extends a Keras layer says
    which with ``counted_as`` (our ceil-mode pooling is a MaxPooling2D)."""
    return getattr(layer, "counted_as", None) or type(layer).__name__


def _elements(shape):
    return int(math.prod(d for d in shape)) if all(d is not None for d in shape) else 0


def _bias_params(layer):
    return sum(int(math.prod(w.shape)) for w in layer.weights
               if w.path.endswith(("bias", "beta")) and w.trainable and
               type(layer).__name__ not in ("BatchNormalization", "GroupNormalization",
                                            "LayerNormalization"))


def _counts(layer, in_shapes, out_shape):
    """(MACs, other ops) per image for one application of ``layer``; the package's own
    layers count themselves (``op_counts``)."""
    kind = _kind(layer)
    out = _elements(out_shape)
    first_in = in_shapes[0] if in_shapes else ()
    if hasattr(layer, "op_counts"):
        known = all(d is not None for shape in (*in_shapes, out_shape) for d in shape)
        return layer.op_counts(in_shapes, out_shape) if known else (0, 0)
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        cin = first_in[-1]
        return out * math.prod(layer.kernel_size) * cin // layer.groups, 0
    if kind == "Conv2DTranspose":
        return _elements(first_in) * math.prod(layer.kernel_size) * layer.filters, 0
    if kind == "DepthwiseConv2D":
        return out * math.prod(layer.kernel_size), 0
    if kind == "SeparableConv2D":
        cin = first_in[-1]
        depthwise = _elements(out_shape[:-1]) * cin * layer.depth_multiplier * \
            math.prod(layer.kernel_size)
        return depthwise + out * cin * layer.depth_multiplier, 0
    if kind == "Dense":
        return out * first_in[-1], 0
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return 0, out * math.prod(layer.pool_size)
    if kind.startswith("Global"):
        return 0, _elements(first_in)
    if kind == "BatchNormalization":
        return 0, 2 * out
    if kind in ("GroupNormalization", "LayerNormalization"):
        return 0, 5 * out
    if kind in ("Activation", "ReLU", "Softmax", "LeakyReLU", "ELU"):
        return 0, out
    if kind in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"):
        return 0, out * (len(in_shapes) - 1)
    return 0, 0


def _dtype_bytes(dtype):
    return np.dtype(keras.backend.standardize_dtype(dtype)).itemsize if dtype != "bfloat16" \
        else 2


# Keras has no public way to re-run a functional graph on inputs of another shape with a
# function per operation: the two private calls below are kept here, and
# tests/test_analysis.py pins the Keras version they were checked against.
KERAS_CHECKED = "3.15"


def _graph(model):
    """The functional graph of a Functional or (built) Sequential model, else None."""
    if isinstance(model, keras.Sequential):
        model = getattr(model, "_functional", None)
    return model if hasattr(model, "_run_through_graph") else None


def _run_graph(model, inputs, operation_fn):
    """``model``'s graph applied to ``inputs``, each operation replaced by
    ``operation_fn(op)`` (a callable taking the operation's arguments)."""
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def _walk(model, inputs, rows, dtype, prefix=""):
    """Propagate symbolic ``inputs`` through ``model``'s graph, appending a row per layer
    application; nested functional models are walked with ``{name}/`` prefixes."""

    def record(op):
        def call(*args, **kwargs):
            if isinstance(op, keras.Model) and _graph(op) is not None:
                return _walk(_graph(op), args[0] if len(args) == 1 else list(args), rows,
                             dtype, f"{prefix}{op.name}/")
            outputs = op.compute_output_spec(*args, **kwargs)
            in_shapes = [_shape(t) for t in keras.tree.flatten((args, kwargs))
                         if isinstance(t, keras.KerasTensor)]
            outs = keras.tree.flatten(outputs)
            out_shape = _shape(outs[0])
            elements = sum(_elements(_shape(o)) for o in outs)
            macs, other = _counts(op, in_shapes, out_shape)
            nbytes = _dtype_bytes(dtype or getattr(op, "compute_dtype", None) or "float32")
            rows.append(LayerProfile(
                name=prefix + op.name, type=_kind(op), output_shape=out_shape,
                activations=elements, activation_bytes=elements * nbytes,
                params=op.count_params() if getattr(op, "built", False) and op.weights else 0,
                bias_params=_bias_params(op), macs=int(macs), other_ops=int(other),
                counted=_kind(op) not in IN_PLACE,
                kernel=tuple(getattr(op, "kernel_size", ()) or ()),
                input_channels=in_shapes[0][-1] if in_shapes and in_shapes[0] else 0))
            return outputs
        return call

    for x, layer_input in zip(model.inputs, keras.tree.flatten(inputs)):
        shape = _shape(layer_input)
        nbytes = _dtype_bytes(dtype or x.dtype or "float32")
        rows.append(LayerProfile(
            name=prefix + (getattr(x, "name", None) or "input"), type="InputLayer",
            output_shape=shape, activations=_elements(shape),
            activation_bytes=_elements(shape) * nbytes, params=0, bias_params=0, macs=0,
            other_ops=0, counted=not prefix))
    return _run_graph(model, inputs, record)


def profile(model_or_name, input_shape=None, batch_size=1, dtype=None):
    """Profile a Keras functional model (or a registered name) layer by layer.

    ``input_shape`` (without batch) replaces the model's own input shape, needed when the model
    was built with ``None`` spatial sizes; for a registry name the model is built at that size.
    ``dtype`` (e.g. "bfloat16") sets the bytes per activation; default: each layer's compute
    dtype. Returns a :class:`Profile`.
    """
    if isinstance(model_or_name, str):
        info = model_info(model_or_name)
        kwargs = {"input_shape": tuple(input_shape)} if input_shape is not None else {}
        model = info.build_shapes(**kwargs)  # shapes are all a profile reads
    else:
        model = model_or_name
    graph = _graph(model)
    if graph is None:
        raise ValueError(f"profile() needs a functional (or built Sequential) Keras model, got "
                         f"{type(model).__name__}; subclassed models have no graph to walk")
    if input_shape is None:
        shapes = [tuple(x.shape[1:]) for x in model.inputs]
    else:
        shapes = [tuple(input_shape)]
    for shape in shapes:
        if any(d is None for d in shape):
            raise ValueError(f"{model.name}: input shape {shape} has unknown sizes; pass "
                             "input_shape=(height, width, channels)")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    inputs = [keras.KerasTensor((batch_size, *s), dtype=x.dtype)
              for s, x in zip(shapes, model.inputs)]
    rows = []
    _walk(graph, inputs if len(inputs) > 1 else inputs[0], rows, dtype)
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return Profile(model.name, shapes[0], batch_size, dtype or model.compute_dtype, rows,
                   trainable, model.count_params() - trainable)


def tf_profiler_flops(model, input_shape=None, batch_size=1):
    """FLOPs per TensorFlow op type, as TensorFlow's profiler counts them, summed over the
    model's inference graph: the statistics registered for each op (``RegisterStatistics
    (..., "flops")``, what ``ProfileOptionBuilder.float_operation()`` reports): 2 per
    multiply-add for Conv2D, DepthwiseConv2dNative and MatMul. Ops without registered
    statistics are left out. Used to cross-check :func:`profile`; it traces the model, so it is
    much slower than profile()."""
    # TensorFlow's graph statistics are internal API: imported only where they are used
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    shape = tuple(input_shape or model.inputs[0].shape[1:])
    spec = tf.TensorSpec((batch_size, *shape), model.inputs[0].dtype)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(concrete).graph
    flops = collections.Counter()
    for op in graph.get_operations():
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except (ValueError, TypeError):  # no statistics registered, or unknown shapes
            continue
        if value:
            flops[op.type] += int(value)
    return dict(flops)


# ---- the lecture's presentation ---------------------------------------------------------
_LABELS = {"InputLayer": "INPUT", "Dense": "FC", "BatchNormalization": "BN",
           "GroupNormalization": "GN", "LocalResponseNormalization": "NORM",
           "Concatenate": "CONCAT", "Add": "ADD", "SqueezeExcite": "SE",
           "GlobalAveragePooling2D": "AVGPOOL", "GlobalMaxPooling2D": "MAXPOOL",
           "ZeroPadding2D": "PAD"}


def human(n):
    """3211264 -> '3.2M', 150528 -> '151K', 4096 -> '4096' (the lecture's shorthand)."""
    for div, suffix in ((1e9, "G"), (1e6, "M")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{n / 1e3:.0f}K" if n >= 10_000 else str(n)


def _label(row):
    if row.type in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"):
        kh, kw = row.kernel
        return f"CONV{kh if kh == kw else f'{kh}x{kw}'}-{row.output_shape[-1]}"
    if row.type in ("MaxPooling2D", "AveragePooling2D"):
        return "POOL"
    return _LABELS.get(row.type, row.type.upper())


def _param_formula(row, layer=None):
    if row.type == "Conv2D" and row.kernel:
        kh, kw = row.kernel
        cin = row.weights // (kh * kw * row.output_shape[-1]) if row.output_shape[-1] else 0
        return f"({kh}*{kw}*{cin})*{row.output_shape[-1]} = {row.weights:,}"
    if row.type == "Dense":
        return f"{row.input_channels}*{row.output_shape[-1]} = {row.weights:,}"
    return f"{row.weights:,}"


def lecture_lines(prof, all_rows=False):
    """One line per layer in the lecture's style, e.g.
    ``CONV3-64: [224x224x64] memory: 224*224*64=3.2M params: (3*3*3)*64 = 1,728``.
    Params leave biases out, as the lecture does; in-place/view layers are skipped unless
    ``all_rows``."""
    lines = []
    for row in prof.rows:
        if not all_rows and not row.counted and not row.params and row.type != "InputLayer":
            continue
        dims = "x".join(str(d) for d in row.output_shape)
        mem = "*".join(str(d) for d in row.output_shape)
        mem = f"{mem}={human(row.activations)}" if len(row.output_shape) > 1 else mem
        line = (f"{_label(row)}: [{dims}] memory: {mem} "
                f"params: {_param_formula(row)}")
        if row.macs:
            line += f" MACs: {human(row.macs)}"
        lines.append(f"{line}   ({row.name})")
    return lines


def report(prof, train=None, top=3):
    """The full text report: conventions, per-layer lines, totals, bottlenecks and, with
    ``train`` (an optimizer name), the training-memory split."""
    mb = 1e6  # the lecture's MB
    bytes_per = prof.rows[-1].activation_bytes // max(prof.rows[-1].activations, 1) or 4
    out = [f"{prof.model_name} at {'x'.join(map(str, prof.input_shape))}, batch "
           f"{prof.batch_size}, {prof.dtype}", f"Conventions: {CONVENTIONS}", ""]
    out += lecture_lines(prof)
    out += [
        "",
        f"Total memory: {prof.activations:,} activations ({human(prof.activations)}) * "
        f"{bytes_per} bytes = {prof.activations * bytes_per / mb:.1f} MB / image (forward)",
        f"Total params: {prof.params:,} ({human(prof.params)}; trainable "
        f"{prof.trainable_params:,}, biases included)",
        f"Total MACs: {prof.macs:,} ({prof.macs / 1e9:.3f} G multiply-adds = "
        f"{2 * prof.macs / 1e9:.3f} GFLOPs); other ops {human(prof.other_ops)}",
        "",
        "Bottlenecks:",
    ]
    for key, label in (("activations", "memory"), ("params", "parameters"), ("macs", "MACs")):
        items = ", ".join(f"{n} {human(v)} ({share:.0%})"
                          for n, v, share in prof.bottlenecks(top)[key])
        out.append(f"  {label}: {items}")
    if train:
        parts = prof.training_memory(train)
        out += ["", f"Training memory, {train}, batch {prof.batch_size}:"]
        out += [f"  {k.replace('_', ' ')}: {v / mb:,.1f} MB" for k, v in parts.items()]
    return "\n".join(out)


# ---- the lecture's Inception example ----------------------------------------------------
LECTURE_INCEPTION = {"naive": ((128, 0, 192, 0, 96, 0), 854e6),
                     "reduced": ((128, 64, 192, 64, 96, 64), 358e6)}


def inception_example(input_shape=(28, 28, 256)):
    """The lecture's Inception module comparison at a 28×28×256 input, computed from the
    layers: ``{"naive"|"reduced": {"convs": [(name, MACs)], "macs": total, "slide": printed,
    "output_channels": C}}``."""
    result = {}
    for kind, (filters, slide) in LECTURE_INCEPTION.items():
        x = keras.Input(input_shape)
        y = inception_v1_module(x, filters, kind, naive=kind == "naive")
        prof = profile(keras.Model(x, y, name=f"inception_{kind}"))
        convs = [(r.name, r.macs) for r in prof.rows if r.type == "Conv2D"]
        result[kind] = {"convs": convs, "macs": sum(m for _, m in convs), "slide": slide,
                        "output_channels": y.shape[-1],
                        "params": prof.params}
    return result


# ---- the whole zoo ----------------------------------------------------------------------
def analyze_zoo(names=None, progress=None):
    """Profile registered models at their standard input: one dict per model with params,
    GMACs, activations (per image), activation MiB and published top-1 (or None).
    ``progress(i, n, name)`` is called before each model."""
    names = list(names or list_models())
    rows = []
    # each model is freed before the next (clear_session, which runs gc.collect); frozen, the
    # objects that were here before (TensorFlow's, Keras') are not rescanned every time:
    # 0.45 s a model, half the zoo's time
    gc.collect()
    gc.freeze()
    try:
        for i, name in enumerate(names, start=1):
            if progress:
                progress(i, len(names), name)
            info = model_info(name)
            prof = profile(name)
            rows.append({"name": info.name, "family": info.family, "dataset": info.dataset,
                         "input": info.default_size, "params": prof.trainable_params,
                         "gmacs": prof.macs / 1e9, "activations": prof.activations,
                         "activation_mib": prof.activation_bytes / 1024 ** 2,
                         "top1": info.top1})
            keras.backend.clear_session()
    finally:
        gc.unfreeze()
    return rows


def plot_zoo(rows, path):
    """Canziani et al. 2017 style chart: GMACs against parameters (marker area ∝ activation
    memory) and, where a published top-1 exists, top-1 against GMACs (area ∝ parameters)."""
    import matplotlib  # not imported with the package (it is slow): only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({r["family"] for r in rows})
    colors = dict(zip(families, plt.cm.tab10.colors))
    with_acc = [r for r in rows if r["top1"] is not None]
    fig, axes = plt.subplots(1, 2 if with_acc else 1, figsize=(16 if with_acc else 9, 7),
                             squeeze=False)
    ax = axes[0][0]
    max_act = max(r["activation_mib"] for r in rows) or 1
    for r in rows:
        ax.scatter(r["gmacs"], r["params"] / 1e6, s=30 + 900 * r["activation_mib"] / max_act,
                   color=colors[r["family"]], alpha=0.55, edgecolors="k", linewidths=0.5,
                   marker="s" if r["dataset"] == "cifar" else "o")
        ax.annotate(r["name"], (r["gmacs"], r["params"] / 1e6), fontsize=6.5,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("multiply-adds per image (G, log)")
    ax.set_ylabel("trainable parameters (M, log)")
    ax.set_title("Compute vs parameters (area: activation memory per image; "
                 "squares: CIFAR nets at 32x32)")
    ax.grid(True, which="both", alpha=0.3)
    for fam in families:
        ax.scatter([], [], color=colors[fam], label=fam)
    ax.legend(loc="lower right", fontsize=8)
    if with_acc:
        ax = axes[0][1]
        max_p = max(r["params"] for r in with_acc)
        for r in with_acc:
            ax.scatter(r["gmacs"], r["top1"], s=30 + 900 * r["params"] / max_p,
                       color=colors[r["family"]], alpha=0.55, edgecolors="k", linewidths=0.5)
            ax.annotate(r["name"], (r["gmacs"], r["top1"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xlabel("multiply-adds per image (G)")
        ax.set_ylabel("ImageNet top-1 (%), torchvision V1 weights")
        ax.set_title("Top-1 vs compute (marker area: parameters)")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    os.replace(tmp, path)
    return path
