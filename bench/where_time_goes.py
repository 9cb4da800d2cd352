"""Where the inference time goes: the whole model run as in the benchmark (one tf.function,
grappler's fusions in place), with oneDNN's own account of every primitive it executes
(``ONEDNN_VERBOSE``), summed by kind. Convolutions get their achieved GFLOP/s (from the
problem sizes oneDNN prints) against the machine's peak; the time outside oneDNN (TF's own
kernels, the executor) is the wall time minus the primitives'.

    python bench/where_time_goes.py [--model resnet50] [--variants keras bf16_folded]
    python bench/where_time_goes.py --variants train_fp32 train_mixed_bf16 --size 128
    python bench/where_time_goes.py --by-op --variants train_fp32 --size 128

Variants: keras (keras.applications, fp32), ours (fp32), folded (BN folded, fp32),
bf16_folded (BN folded, bfloat16 policy): inference; train_fp32, train_mixed_bf16: one
training step (forward, loss, backward, SGD-momentum update in one tf.function, as
``bench/train_vs_torch.py`` times it), its convolutions split into forward, backward-data and
backward-weights; train_fp32_keras_bn, train_mixed_bf16_keras_bn: the same with batch norm
trained by Keras' own code instead of TensorFlow's fused kernel. CPU only: on a GPU, or with
TF_ENABLE_ONEDNN_OPTS=0, no oneDNN primitives run and the report says so.

``--by-op`` gives TensorFlow's account instead (its profiler, ``tf.profiler.experimental``):
every op the executor ran, attributed to the layer kind whose name scope it carries (the
forward pass, ``gradient_tape/`` for the backward pass, the optimizer's scope for the update),
each op's time split evenly among the ops running beside it on the two inter-op threads, so
the rows add up to the busy time. This is where the time outside oneDNN goes: casts, batch
norm and its gradient, ReLU and add gradients, the update. The profiler slows the step down;
the report gives both walls. The variants torch_train_fp32 and torch_train_bf16_autocast put
PyTorch's step (``bench/torch_train.py``, as ``bench/train_vs_torch.py`` times it; resnet50 and
zfnet) in the same rows, from PyTorch's profiler: each top-level op to the layer kind of the
module it ran in, each autograd node to the layer whose forward op made it.

    python bench/where_time_goes.py --by-op --variants train_fp32 torch_train_fp32 --size 128
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # why: keras_classics.cli.ONEDNN

VARIANTS = ("keras", "ours", "folded", "bf16_folded", "train_fp32", "train_mixed_bf16",
            "train_fp32_keras_bn", "train_mixed_bf16_keras_bn", "torch_train_fp32",
            "torch_train_bf16_autocast")
# PyTorch's modules as the Keras layer kinds of our twins (the rows of ``--by-op``)
TORCH_KINDS = {"Conv2d": "Conv2D", "BatchNorm2d": "BatchNormalization", "ReLU": "Activation",
               "MaxPool2d": "MaxPooling2D", "AdaptiveAvgPool2d": "GlobalAveragePooling2D",
               "Linear": "Dense", "LocalResponseNorm": "LocalResponseNormalization",
               "Dropout": "Dropout", "Flatten": "Flatten"}
OTHER = "other (loss, gradient sums)"
FUNCTION_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
UNSCOPED_GRADIENT = "gradient of a function call"
_CONV = re.compile(r"(?:g(\d+))?mb(\d+)_ic(\d+)oc(\d+)_(?:id\d+od\d+kd\d+\S*?_)?"
                   r"ih(\d+)oh(\d+)kh(\d+)\S*?(?:_iw(\d+)ow(\d+)kw(\d+))?")


def build(model, variant, size):
    """The model of one variant (imports here: the parent process needs no TensorFlow)."""
    import keras_classics as kc

    shape = (size, size, 3)
    if variant == "keras":
        from timing import KERAS_APPS
        return KERAS_APPS[model](weights=None, input_shape=shape)
    ours = kc.get_model(model, input_shape=shape)
    if variant == "ours":
        return ours
    return kc.fuse_batchnorm(ours, dtype="bfloat16" if variant == "bf16_folded" else None)


def warmed_call(model, variant, batch, size):
    """``(f, x, net)``: the tf.function of ``variant`` (a training step or an inference call),
    its input batch and its model, already called twice (tracing, primitives, caches)."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).normal(size=(batch, size, size, 3)), tf.float32)
    if variant.startswith("train_"):
        f, net = train_step(model, variant, size, batch)
    else:
        net = build(model, variant, size)
        f = tf.function(lambda t: net(t, training=False))
    f(x), f(x)
    return f, x, net


def child(model, variant, batch, size, calls):
    """Run in a process started with ONEDNN_VERBOSE=1: marks each timed call on stdout."""
    import time

    import numpy as np

    f, x, _ = warmed_call(model, variant, batch, size)
    for i in range(calls):
        print(f"@@start {i}", flush=True)
        t = time.perf_counter()
        np.asarray(f(x))
        print(f"@@end {i} {time.perf_counter() - t}", flush=True)


def child_ops(model, variant, batch, size, calls, logdir):
    """Run in a child: ``calls`` timed calls, then ``calls`` under TensorFlow's profiler
    writing to ``logdir``; prints ``@@json`` with both walls and each layer's kind."""
    import time

    import numpy as np
    import tensorflow as tf

    f, x, net = warmed_call(model, variant, batch, size)

    def timed():
        t = time.perf_counter()
        for _ in range(calls):
            np.asarray(f(x))
        return (time.perf_counter() - t) / calls * 1e3
    wall = timed()
    tf.profiler.experimental.start(logdir)
    try:
        profiled = timed()
    finally:
        tf.profiler.experimental.stop()
    kinds = {layer.name: type(layer).__name__ for layer in net.layers}
    print("@@json " + json.dumps({"wall_ms": wall, "profiled_wall_ms": profiled,
                                   "kinds": kinds, "model_scope": net.name}), flush=True)


def child_torch_ops(model, variant, batch, size, calls):
    """Run in a child: PyTorch's training step (``bench/torch_train.py``), ``calls`` timed
    steps, then ``calls`` under PyTorch's profiler with every leaf module's call marked;
    prints ``@@json`` with both walls and the rows (:func:`torch_rows`)."""
    import time

    import numpy as np
    import torch

    import torch_train

    x = np.random.default_rng(0).normal(size=(batch, size, size, 3))
    step, net = torch_train.training(model, x, np.zeros(batch), variant.endswith("autocast"))
    step(2)

    def timed(scoped=False):
        t = time.perf_counter()
        step(calls, scoped=scoped)
        return (time.perf_counter() - t) / calls * 1e3
    wall = timed()
    open_marks = []

    def enter(module, args):
        open_marks.append(torch.profiler.record_function("layer::" + type(module).__name__))
        open_marks[-1].__enter__()

    def leave(module, args, out):
        open_marks.pop().__exit__(None, None, None)
    leaves = [m for m in net.modules() if next(m.children(), None) is None]
    hooks = [h for m in leaves for h in (m.register_forward_pre_hook(enter),
                                         m.register_forward_hook(leave))]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        profiled = timed(scoped=True)
    for h in hooks:
        h.remove()
    print("@@json " + json.dumps({"wall_ms": wall, "profiled_wall_ms": profiled,
                                   "rows": torch_rows(prof.events(), calls)}), flush=True)


def torch_rows(events, calls):
    """``{"kind|pass": {"ms", "ops": {op: ms}}}`` per step from PyTorch's profiler events. Each
    top-level op (an ``aten::`` op, an autograd node's evaluation, the optimizer's step and
    zero_grad) goes whole to the row of the layer it ran for: a forward op to the innermost
    ``layer::`` mark around it (the Keras kind of that module, ``TORCH_KINDS``; an add inside
    the model but outside a module is the residual ``Add``), an autograd node to the forward
    op that recorded its sequence number. The row's ops are the subtrees' self times."""
    def ancestors(e):
        while e.cpu_parent is not None:
            e = e.cpu_parent
            yield e.name

    def subtree(e):
        yield e
        for c in e.cpu_children:
            yield from subtree(c)

    def is_op(name):
        return name.startswith(("aten::", "autograd::engine::evaluate_function", "Optimizer."))

    made_by = {}  # autograd sequence number -> the layer kind whose forward op recorded it
    rows = collections.defaultdict(lambda: {"ms": 0.0, "ops": collections.Counter()})
    for e in sorted(events, key=lambda e: e.time_range.start):
        scopes = list(ancestors(e))
        if not is_op(e.name) or any(is_op(name) for name in scopes):
            continue
        if e.name.startswith("Optimizer."):
            kind, phase = "optimizer", "update"
        elif e.name.startswith("autograd::"):
            kind, phase = made_by.get(e.sequence_nr, OTHER), "backward"
        else:
            layer = next((name[7:] for name in scopes if name.startswith("layer::")), None)
            if layer is not None:
                kind = TORCH_KINDS.get(layer, layer)
            elif "model" in scopes:
                kind = "Add" if e.name in ("aten::add", "aten::add_") else "other layer"
            else:
                kind = OTHER
            phase = "backward" if "backward" in scopes else "forward"
            if phase == "forward":
                made_by.update((d.sequence_nr, kind) for d in subtree(e) if d.sequence_nr >= 0)
        row = rows[f"{kind}|{phase}"]
        row["ms"] += e.time_range.elapsed_us() / 1e3 / calls
        for d in subtree(e):
            op = d.name.replace("autograd::engine::evaluate_function: ", "").replace(
                "aten::", "")
            row["ops"][op] += d.self_cpu_time_total / 1e3 / calls
    return {k: {"ms": v["ms"], "ops": dict(v["ops"])} for k, v in rows.items()}


def op_events(logdir):
    """``[(start_ps, end_ps, op_name, op_type)]`` of every op the executor ran, from the
    profile in ``logdir``: events named ``name:Type`` on the ``tf_Compute`` threads, and the
    asynchronous ops (an XLA-compiled function's call: ``ExecutorState::ProcessAsync::Start``,
    which runs the compiled code to its end, with the op's name and type as stats)."""
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"TensorFlow's profiler wrote nothing under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for e in line.events:
                full = names[e.metadata_id].name
                if full == "ExecutorState::ProcessAsync::Start":
                    stats = {plane.stat_metadata[s.metadata_id].name: s.str_value or (
                        plane.stat_metadata[s.ref_value].name if s.ref_value else "")
                        for s in e.stats}
                    name, op = stats.get("name"), stats.get("kernel_type")
                    if not name or not op:
                        continue
                elif "::" in full or ":" not in full:  # executor and threadpool bookkeeping
                    continue
                else:
                    name, op = full.rsplit(":", 1)
                start = line.timestamp_ns * 1000 + e.offset_ps
                events.append((start, start + e.duration_ps, name, op))
    return events


def attribute(events):
    """``{key: ps}``: each event's time split evenly among the events running at the same
    moment (a sweep over start/end points), so the values add up to the busy time."""
    points = sorted([(s, 1, i) for i, (s, _, _) in enumerate(events)]
                    + [(e, -1, i) for i, (_, e, _) in enumerate(events)])
    share = collections.defaultdict(float)
    active, last = set(), None
    for t, kind, i in points:
        if active and last is not None and t > last:
            for j in active:
                share[events[j][2]] += (t - last) / len(active)
        last = t
        (active.add if kind == 1 else active.discard)(i)
    return dict(share)


_SCOPE_SUFFIX = re.compile(r"_\d+$")


def op_row(name, op, kinds, model_scope):
    """The row an op belongs to: ``(what, pass)``, e.g. ``("BatchNormalization",
    "backward")``, from its name scope (``gradient_tape/`` marks the backward pass)."""
    parts = name.split("/")
    backward = parts[0] == "gradient_tape"
    if backward:
        parts = parts[1:]
    if parts and _SCOPE_SUFFIX.sub("", parts[0]) == model_scope and len(parts) > 1:
        layer = _SCOPE_SUFFIX.sub("", parts[1])
        return kinds.get(layer, kinds.get(parts[1], "other layer")), \
            "backward" if backward else "forward"
    if parts and parts[0] in ("sgd", "SGD", "optimizer"):
        return "optimizer", "update"
    if len(parts) == 1 and op in FUNCTION_CALLS:
        # TensorFlow calls the gradient of a function call (in the zoo: LRN's XLA-compiled
        # function) outside any name scope; op_profile gives it to the layer kind calling one
        return UNSCOPED_GRADIENT, "backward"
    return OTHER, "backward" if backward else "forward"


def run_child(function, *args, env=None, timeout=3600):
    """The stdout of ``where_time_goes.function(*args)`` run in a fresh Python (``args`` start
    with the model and the variant) with ``env`` added to this process' environment."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import where_time_goes as w; w.{function}{args!r}")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"profiling {args[0]} {args[1]} failed:\n{res.stderr[-2000:]}")
    return res.stdout


def child_json(stdout):
    """The ``@@json`` line a child printed."""
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("@@json "))[7:])


def op_profile(model, variant, batch=32, size=224, calls=3):
    """TensorFlow's (or for torch_* variants PyTorch's) account of a call of ``variant``, per
    call: ``{"wall_ms", "profiled_wall_ms", "rows": {"kind|pass": {"ms", "ops": {op type:
    ms}}}, "busy_ms"}``."""
    import tempfile

    if variant.startswith("torch_"):
        info = child_json(run_child("child_torch_ops", model, variant, batch, size, calls))
        rows = info["rows"]
    else:
        with tempfile.TemporaryDirectory() as logdir:
            info = child_json(run_child("child_ops", model, variant, batch, size, calls, logdir))
            events = op_events(logdir)
        rows = tf_rows(events, info["kinds"], info["model_scope"], calls)
    return {"model": model, "variant": variant, "batch": batch, "size": size, "calls": calls,
            "wall_ms": info["wall_ms"], "profiled_wall_ms": info["profiled_wall_ms"],
            "busy_ms": sum(v["ms"] for v in rows.values()), "rows": rows}


def tf_rows(events, kinds, model_scope, calls):
    """``{"kind|pass": {"ms", "ops": {op type: ms}}}`` per call from :func:`op_events`: each
    op's shared time (:func:`attribute`) to its :func:`op_row`."""
    ps = attribute([(s, e, i) for i, (s, e, _, _) in enumerate(events)])
    placed = [op_row(name, op, kinds, model_scope) for _, _, name, op in events]
    # the unscoped gradients of function calls belong to the one layer kind calling functions
    calling = {kind for (kind, phase), (_, _, _, op) in zip(placed, events)
               if phase == "forward" and op in FUNCTION_CALLS}
    rows = collections.defaultdict(lambda: {"ms": 0.0, "ops": collections.Counter()})
    for i, (_, _, _, op) in enumerate(events):
        kind, phase = placed[i]
        if kind == UNSCOPED_GRADIENT and len(calling) == 1:
            kind = next(iter(calling))
        ms = ps.get(i, 0.0) / 1e9 / calls
        rows[f"{kind}|{phase}"]["ms"] += ms
        rows[f"{kind}|{phase}"]["ops"][op] += ms
    return {k: {"ms": v["ms"], "ops": dict(v["ops"])} for k, v in rows.items()}


def op_table(profiles, top=3):
    """Markdown: one row per (layer kind, pass), ms per call under the profiler and share of
    the busy time per variant, with the row's largest op types."""
    keys = sorted({k for p in profiles for k in p["rows"]},
                  key=lambda k: -max(p["rows"].get(k, {"ms": 0})["ms"] for p in profiles))
    small = [k for k in keys if all(p["rows"].get(k, {"ms": 0})["ms"] < 0.005 * p["busy_ms"]
                                    for p in profiles)]
    if len(small) > 1:  # fold the rows under 0.5% everywhere into one (in copies)
        keys = [k for k in keys if k not in small] + ["the rest|"]
        folded = []
        for p in profiles:
            rest = {"ms": 0.0, "ops": collections.Counter()}
            for k in small:
                r = p["rows"].get(k, {"ms": 0.0, "ops": {}})
                rest["ms"] += r["ms"]
                rest["ops"].update({f"{k.split('|')[0]} {op}": ms for op, ms in r["ops"].items()})
            folded.append({**p, "rows": {**p["rows"], "the rest|": rest}})
        profiles = folded
    lines = ["| layer kind | pass | " + " | ".join(
        f"{p['variant']} ms (share) | largest ops" for p in profiles) + " |",
        "|---|---|" + "---|---|" * len(profiles)]
    for k in keys:
        kind, phase = k.split("|")
        cells = []
        for p in profiles:
            r = p["rows"].get(k)
            if r is None:
                cells += ["–", ""]
                continue
            ops = sorted(r["ops"].items(), key=lambda kv: -kv[1])[:top]
            cells += [f"{r['ms']:.0f} ({r['ms'] / p['busy_ms']:.0%})",
                      ", ".join(f"{op} {ms:.0f}" for op, ms in ops if ms >= 0.5)]
        lines.append(f"| {kind} | {phase} | " + " | ".join(cells) + " |")
    cells = []
    for p in profiles:
        cells += [f"{p['busy_ms']:.0f} (100%)",
                  f"wall {p['profiled_wall_ms']:.0f} profiled, {p['wall_ms']:.0f} not"]
    lines.append("| total busy | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train_step(model, variant, size, batch):
    """``(step, net)``: a tf.function running one training step of ``net``, the model
    ``model``, on its argument."""
    import keras
    import tensorflow as tf

    import keras_classics as kc
    from keras_classics.training.precision import precision

    with precision("mixed_bfloat16" if "mixed_bf16" in variant else "float32"):
        net = kc.get_model(model, input_shape=(size, size, 3))
    from timing import fuse_batch_norm
    fuse_batch_norm(net, not variant.endswith("_keras_bn"))
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    opt.build(net.trainable_variables)
    y = tf.zeros([batch], tf.int32)

    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                y, tf.cast(net(x, training=True), tf.float32)))
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return loss
    return step, net


def conv_flops(problem):
    """2 x multiply-adds of a oneDNN convolution problem descriptor, or None."""
    m = _CONV.search(problem)
    if not m:
        return None
    g, mb, ic, oc, ih, oh, kh, iw, ow, kw = (int(v) if v else None for v in m.groups())
    ow, kw = ow or oh, kw or kh
    return 2 * mb * oc * oh * ow * (ic // (g or 1)) * kh * kw


def parse(stdout):
    """{call: (wall_s, [(group, ms, flops or None), ...])} from a child's stdout."""
    calls, current = {}, None
    for line in stdout.splitlines():
        if line.startswith("@@start"):
            current = int(line.split()[1])
            calls[current] = [None, []]
        elif line.startswith("@@end"):
            _, i, wall = line.split()
            calls[int(i)][0] = float(wall)
            current = None
        elif current is not None and line.startswith("onednn_verbose") and ",exec," in line:
            f = line.split(",")
            kind, problem, ms = f[5], f[-2], float(f[-1])
            flops = None
            if kind == "convolution":
                flops = conv_flops(problem)
                kind += " 1x1" if "kh1" in problem and ("kw" not in problem or "kw1" in
                                                         problem) else " kxk"
                if "sum" in line:
                    kind += " +residual add"
                if f[7].startswith("backward"):  # backward_data, backward_weights
                    kind += " " + f[7].replace("_", "-")
            calls[current][1].append((kind, ms, flops))
    return {i: (wall, prims) for i, (wall, prims) in calls.items() if wall is not None}


def profile(model, variant, batch=32, size=224, calls=5):
    """oneDNN's account of an inference call of ``variant``, the mean over ``calls`` calls:
    ``{"wall_ms", "groups": {kind: {"n", "ms", "gflop"}}, "outside_ms"}``."""
    runs = parse(run_child("child", model, variant, batch, size, calls,
                           env={"ONEDNN_VERBOSE": "1"}, timeout=1800))
    groups = collections.defaultdict(lambda: {"n": 0, "ms": 0.0, "gflop": 0.0})
    for _, prims in runs.values():
        for kind, ms, flops in prims:
            g = groups[kind]
            g["n"] += 1 / len(runs)
            g["ms"] += ms / len(runs)
            g["gflop"] += (flops or 0) / 1e9 / len(runs)
    for g in groups.values():
        g["n"] = round(g["n"])
    wall = sum(w for w, _ in runs.values()) / len(runs) * 1e3
    inside = sum(g["ms"] for g in groups.values())
    return {"model": model, "variant": variant, "batch": batch, "size": size, "calls": len(runs),
            "wall_ms": wall, "groups": dict(groups), "outside_ms": max(wall - inside, 0.0)}


def table(profiles, peak_gflops=None):
    """Markdown: one row per primitive kind, ms and share of the wall time per variant; for
    convolutions the achieved GFLOP/s (and the share of ``peak_gflops[variant]``)."""
    if not any(p["groups"] for p in profiles):
        return "No oneDNN primitives ran (a GPU, or TF_ENABLE_ONEDNN_OPTS=0): use TensorBoard's " \
               "profiler there."
    kinds = sorted({k for p in profiles for k in p["groups"]},
                   key=lambda k: -max(p["groups"].get(k, {"ms": 0})["ms"] for p in profiles))
    head = "| primitive | " + " | ".join(f"{p['variant']} ms (share) | GFLOP/s"
                                         for p in profiles) + " |"
    lines = [head, "|---|" + "---|---|" * len(profiles)]
    for k in kinds + ["outside oneDNN", "total (wall)"]:
        cells = []
        for p in profiles:
            g = p["groups"].get(k)
            if k == "outside oneDNN":
                g = {"n": 0, "ms": p["outside_ms"], "gflop": 0}
            elif k == "total (wall)":
                total_gflop = sum(v["gflop"] for v in p["groups"].values())
                g = {"n": 0, "ms": p["wall_ms"], "gflop": total_gflop}
            if g is None:
                cells += ["–", "–"]
                continue
            n = f" ×{g['n']}" if g["n"] else ""
            cells.append(f"{g['ms']:.0f}{n} ({g['ms'] / p['wall_ms']:.0%})")
            if g["gflop"]:
                rate = g["gflop"] / g["ms"] * 1e3
                peak = (peak_gflops or {}).get(p["variant"])
                cells.append(f"{rate:.0f}" + (f" ({rate / peak:.0%} of peak)" if peak else ""))
            else:
                cells.append("")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--variants", nargs="+", default=["keras", "bf16_folded"], choices=VARIANTS)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--no-peak", action="store_true", help="skip measuring the peak")
    p.add_argument("--by-op", action="store_true",
                   help="TensorFlow's profiler: time per layer kind and op (see above)")
    p.add_argument("--calls", type=int, default=None,
                   help="calls averaged (default 5; 3 with --by-op)")
    p.add_argument("--out", help="also write OUT/where_time_goes.json (where_time_goes_ops."
                   "json with --by-op) and .md")
    p.add_argument("--render", metavar="JSON", help="no measuring: print a written profile")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(markdown(json.load(f)))
        return 0
    from torch_train import MODELS as TORCH_MODELS
    if any(v.startswith("torch_") for v in args.variants):
        if args.model not in TORCH_MODELS:
            p.error(f"the torch_* variants have PyTorch twins of {', '.join(TORCH_MODELS)} "
                    f"only, not {args.model!r}")
        if not args.by_op:
            p.error("the torch_* variants are profiled with --by-op (PyTorch's profiler)")
    from keras_classics import provenance
    from timing import write_report

    if args.by_op:
        profiles = [op_profile(args.model, v, args.batch, args.size, args.calls or 3)
                    for v in args.variants]
        report = {"run": provenance.run_record(), "by_op": profiles}
        text = markdown(report)
        if args.out:
            write_report(args.out, "where_time_goes_ops", report, text)
        print(text)
        return 0
    peaks = None
    if not args.no_peak:
        import tensorflow as tf

        from timing import peak
        fp32, bf16 = peak(tf.float32)[0] / 1e9, peak(tf.bfloat16)[0] / 1e9
        peaks = {v: bf16 if "bf16" in v else fp32 for v in args.variants}
    profiles = [profile(args.model, v, args.batch, args.size, args.calls or 5)
                for v in args.variants]
    report = {"run": provenance.run_record(), "profiles": profiles, "peaks": peaks}
    text = markdown(report)
    if args.out:
        write_report(args.out, "where_time_goes", report, text)
    print(text)
    return 0


def markdown(report):
    """The profile table, headed by command, machine and date."""
    from keras_classics import provenance

    if "by_op" in report:
        first = report["by_op"][0]
        return "\n".join([
            provenance.heading(report.get("run")), "",
            f"{first['model']}, batch {first['batch']} at {first['size']}x{first['size']}, "
            f"TensorFlow's profiler, ms per call (mean of {first['calls']} calls under the "
            "profiler), each op's time shared with the ops running beside it"
            + ("; torch_* columns: PyTorch's profiler, its top-level ops (they run one after "
               "another)" if any(p["variant"].startswith("torch_") for p in report["by_op"])
               else ""), "",
            op_table(report["by_op"])])
    first, peaks = report["profiles"][0], report.get("peaks")
    peak_line = (f"; peak {max(peaks.values()):.0f} GFLOP/s bf16, "
                 f"{min(peaks.values()):.0f} fp32" if peaks and len(set(peaks.values())) > 1
                 else "")
    return "\n".join([
        provenance.heading(report.get("run")), "",
        f"{first['model']}, batch {first['batch']} at {first['size']}x{first['size']}, "
        f"oneDNN's own times, mean of {first['calls']} calls{peak_line}", "",
        table(report["profiles"], peaks)])


if __name__ == "__main__":
    sys.exit(main())
