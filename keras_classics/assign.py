"""Setting a model's weights from a file or from arrays, all or nothing: every layer and shape
is checked before any weight changes. Keras 3 ``.weights.h5``, ``.keras`` models, and legacy
``.h5`` files in the layout of Keras' published weights (read with links and external storage
refused). Used by ``weights`` (pretrained files) and ``convert`` (PyTorch checkpoints), which
therefore do not import each other's halves."""
import os

import h5py
import keras
import numpy as np


def _h5_child(group, path, kind):
    """``group[path]`` refusing soft and external links on the way, external and virtual
    datasets (HDF5 features that make a file read other files: Keras refuses them too)."""
    node = group
    for part in path.split("/"):
        if not part or part not in node:
            raise KeyError(path)
        link = node.get(part, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            raise ValueError(f"{kind} '{path}' is an HDF5 {type(link).__name__}; weight files "
                             "with links are refused")
        node = node[part]
    if isinstance(node, h5py.Dataset) and (node.external or node.is_virtual):
        raise ValueError(f"dataset '{path}' keeps its data in other files (HDF5 "
                         f"{'external' if node.external else 'virtual'} storage); refused")
    return node


def read_legacy_h5(path):
    """``[(layer name, [arrays])]`` of a legacy Keras ``.h5`` weights or model file (the format
    of Keras' published weights: Keras 2 names, a ``/`` in a name nests groups, datasets named
    ``<layer>/<weight>:0``), in file order, layers without weights left out. Files that are not
    readable, or that use links or external storage, raise a ValueError naming the file."""
    def text(values):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    try:
        with h5py.File(path, "r") as f:
            g = f["model_weights"] if "model_weights" in f else f
            out = []
            for name in text(g.attrs["layer_names"]):
                layer = _h5_child(g, name, "layer")
                wnames = text(layer.attrs["weight_names"])
                if wnames:
                    out.append((name, [np.asarray(_h5_child(layer, w, "weight"))
                                       for w in wnames]))
            return out
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    except (OSError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable Keras .h5 weights file ({err})") from err


def _plan_by_name(model, arrays, ignore=()):
    plan = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in arrays:
            raise ValueError(f"{model.name}: the weights file has no layer '{layer.name}' "
                             f"(first missing layer; the file has {len(arrays)} layers)")
        plan.append((layer, layer.name, arrays[layer.name]))
    used = {layer.name for layer, _, _ in plan}
    left = [n for n in arrays if n not in used and not n.startswith(tuple(ignore))]
    if left:
        raise ValueError(f"{model.name}: the weights file has layers this model does not: "
                         f"{', '.join(left[:5])}{' ...' if len(left) > 5 else ''}")
    return plan


def _plan_by_order(model, entries):
    layers = [layer for layer in model.layers if layer.weights]
    if len(layers) != len(entries):
        raise ValueError(f"{model.name}: the model has {len(layers)} layers with weights, the "
                         f"file {len(entries)} (loading by layer order, as Keras loads its "
                         "published files)")
    return [(layer, name, values) for layer, (name, values) in zip(layers, entries)]


def _assign(model, plan):
    for i, (layer, file_name, values) in enumerate(plan):
        have = [tuple(w.shape) for w in layer.weights]
        got = [tuple(np.shape(a)) for a in values]
        if have != got:
            where = f"layer '{layer.name}'" if file_name == layer.name else \
                f"layer #{i} '{layer.name}' (file layer '{file_name}')"
            raise ValueError(f"{model.name}: {where} does not match the file: model shapes "
                             f"{have}, file shapes {got}")
    for layer, _, values in plan:  # every check passed: now change the model
        layer.set_weights(values)


def assign_by_name(model, arrays, ignore=()):
    """Set every weight of ``model`` from ``arrays`` ({layer name: [arrays]}), all or nothing:
    every layer with weights must be in ``arrays`` with matching shapes, and every entry of
    ``arrays`` must be used (except names starting with an ``ignore`` prefix). The first
    mismatch raises a ValueError naming the layer, before any weight is changed."""
    _assign(model, _plan_by_name(model, arrays, ignore))


def assign_legacy(model, entries):
    """Load ``read_legacy_h5`` entries: by name when the file's layer names are the model's,
    else by layer order with every shape checked, as Keras loads its published files (their
    Keras 2 names differ: DenseNet ``conv1/conv``, ``fc1000``; ResNet ``probs``). All or
    nothing; the first mismatch raises naming both layers."""
    names = [name for name, _ in entries]
    mine = [layer.name for layer in model.layers if layer.weights]
    if sorted(names) == sorted(mine):
        _assign(model, _plan_by_name(model, dict(entries)))
    else:
        _assign(model, _plan_by_order(model, entries))


def load_weights(model, path):
    """Load a ``.weights.h5`` (Keras 3), legacy ``.h5`` (by layer name) or ``.keras`` file."""
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        before = model.get_weights()  # Keras may assign some variables before it fails
        try:
            model.load_weights(path)
        except Exception as err:
            model.set_weights(before)
            raise ValueError(f"{model.name}: could not load {path!r}: {err}") from err
    elif path.endswith(".h5"):
        assign_legacy(model, read_legacy_h5(path))
    elif path.endswith(".keras"):
        try:
            source = keras.saving.load_model(path, compile=False)
        except Exception as err:
            raise ValueError(f"{path}: not a readable .keras model file ({err})") from err
        assign_by_name(model, {l.name: l.get_weights() for l in source.layers if l.weights})
    else:
        raise ValueError(f"{model.name}: weights files must end in .weights.h5, .h5 or .keras, "
                         f"got {path!r}")
