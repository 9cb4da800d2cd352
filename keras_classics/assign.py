"""Setting a model's weights from a file or from arrays, all or nothing: every layer and shape
is checked before any weight changes. Keras 3 ``.weights.h5``, ``.keras`` models, and legacy
``.h5`` files in the layout of Keras' published weights (read with links and external storage
refused). Used by ``weights`` (pretrained files) and ``convert`` (PyTorch checkpoints), which
therefore do not import each other's halves."""
import math
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
    if isinstance(node, h5py.Dataset):
        declared = math.prod(node.shape or ()) * node.dtype.itemsize
        stored = node.id.get_storage_size()
        if declared > BOMB_FLOOR and declared > MAX_EXPANSION * stored:
            raise ValueError(f"dataset '{path}' declares {declared / 2 ** 20:.0f} MiB "
                             f"{node.shape} but stores {stored} bytes: a decompression bomb, "
                             "refused before reading")
    return node


# A dataset that declares more than BOMB_FLOOR bytes must store at least 1/MAX_EXPANSION of
# them (Keras 3.15 applies the same rule from 4 GiB; real weights, even compressed, pass)
BOMB_FLOOR = 16 * 2 ** 20
MAX_EXPANSION = 1000


def read_legacy_h5(path, check=None):
    """``[(layer name, [arrays])]`` of a legacy Keras ``.h5`` weights or model file (the format
    of Keras' published weights: Keras 2 names, a ``/`` in a name nests groups, datasets named
    ``<layer>/<weight>:0``), in file order, layers without weights left out. ``check``, given
    the same list with the HDF5 datasets (``.shape``) in place of arrays, runs before any
    array is read: a file whose shapes are not the model's is refused without reading it.
    Files that are not readable, that use links (at any level, ``/model_weights`` too) or
    external storage, or that declare far more bytes than they store, raise a ValueError
    naming the file."""
    def text(values):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    try:
        with h5py.File(path, "r") as f:
            g = _h5_child(f, "model_weights", "group") if "model_weights" in f else f
            entries = []
            for name in text(g.attrs["layer_names"]):
                layer = _h5_child(g, name, "layer")
                wnames = text(layer.attrs["weight_names"])
                if wnames:
                    entries.append((name, [_h5_child(layer, w, "weight") for w in wnames]))
            if check:
                check(entries)
            return [(name, [np.asarray(d) for d in datasets]) for name, datasets in entries]
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


def _check_shapes(model, plan):
    for i, (layer, file_name, values) in enumerate(plan):
        have = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) if hasattr(a, "shape") else np.shape(a) for a in values]
        if have != got:
            where = f"layer '{layer.name}'" if file_name == layer.name else \
                f"layer #{i} '{layer.name}' (file layer '{file_name}')"
            raise ValueError(f"{model.name}: {where} does not match the file: model shapes "
                             f"{have}, file shapes {got}")


def _assign(model, plan):
    _check_shapes(model, plan)
    for layer, _, values in plan:  # every check passed: now change the model
        layer.set_weights(values)


def assign_by_name(model, arrays, ignore=()):
    """Set every weight of ``model`` from ``arrays`` ({layer name: [arrays]}), all or nothing:
    every layer with weights must be in ``arrays`` with matching shapes, and every entry of
    ``arrays`` must be used (except names starting with an ``ignore`` prefix). The first
    mismatch raises a ValueError naming the layer, before any weight is changed."""
    _assign(model, _plan_by_name(model, arrays, ignore))


def _plan_legacy(model, entries):
    names = [name for name, _ in entries]
    mine = [layer.name for layer in model.layers if layer.weights]
    if sorted(names) == sorted(mine):
        return _plan_by_name(model, dict(entries))
    return _plan_by_order(model, entries)


def assign_legacy(model, entries):
    """Load ``read_legacy_h5`` entries: by name when the file's layer names are the model's,
    else by layer order with every shape checked, as Keras loads its published files (their
    Keras 2 names differ: DenseNet ``conv1/conv``, ``fc1000``; ResNet ``probs``). All or
    nothing; the first mismatch raises naming both layers."""
    _assign(model, _plan_legacy(model, entries))


def load_legacy_h5(model, path):
    """:func:`assign_legacy` of a legacy ``.h5`` file whose layers and shapes are compared
    with ``model``'s before any array is read (a dataset declaring gigabytes is refused for
    its shape, not read first)."""
    assign_legacy(model, read_legacy_h5(
        path, check=lambda entries: _check_shapes(model, _plan_legacy(model, entries))))


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
        load_legacy_h5(model, path)
    elif path.endswith(".keras"):
        try:
            source = keras.saving.load_model(path, compile=False)
        except Exception as err:
            raise ValueError(f"{path}: not a readable .keras model file ({err})") from err
        assign_by_name(model, {l.name: l.get_weights() for l in source.layers if l.weights})
    else:
        raise ValueError(f"{model.name}: weights files must end in .weights.h5, .h5 or .keras, "
                         f"got {path!r}")
