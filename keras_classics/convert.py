"""PyTorch checkpoints (torchvision, timm) → keras_classics layouts.

Conversions: conv ``(O, I, kh, kw)`` → ``(kh, kw, I, O)``; linear ``(out, in)`` → ``(in, out)``,
and for the first FC after a flatten, PyTorch's (C, H, W) flattening order → Keras' (H, W, C);
BatchNorm ``weight, bias, running_mean, running_var`` → ``gamma, beta, moving_mean,
moving_variance``; an SE block's two 1×1 convs → :class:`SqueezeExcite`'s matrices. Every tensor
of the checkpoint must be consumed and every weight of the model set, or nothing is changed and
a ValueError names what is left over (``num_batches_tracked`` counters are dropped).
"""
import os
import re

import numpy as np
from safetensors.numpy import load_file

from .assign import assign_by_name

BN_PARTS = ("weight", "bias", "running_mean", "running_var")


def read_checkpoint(path):
    """``{key: numpy array}`` from a ``.pth``/``.pt``/``.bin`` (needs PyTorch: read with
    ``torch.load(weights_only=True)``), ``.safetensors`` or ``.npz`` file. Training-script
    checkpoints (``{"model": state_dict, "epoch": 3, ...}``, or ``"state_dict"``) give their
    state dict. Unreadable files and non-tensor values raise a ValueError naming the file."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):

        try:
            return dict(load_file(path))
        except Exception as err:  # SafetensorError, OSError: truncated or not safetensors
            raise ValueError(f"{path}: not a readable .safetensors file ({err})") from err
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                return _tensors(path, {k: data[k] for k in data.files})
        except ValueError as err:
            if str(err).startswith(path):
                raise
            raise ValueError(f"{path}: not a readable .npz file ({err})") from err
        except Exception as err:  # BadZipFile, EOFError, OSError
            raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    if path.endswith((".pth", ".pt", ".bin")):
        try:
            import torch  # optional (the [torch] extra): only .pth files need it
        except ImportError as err:
            raise ValueError(f"{path}: reading PyTorch checkpoints needs PyTorch (pip install "
                             "'keras_classics[torch]'), or convert it where PyTorch is "
                             "installed with keras-classics convert-weights") from err
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
        for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (name -> tensor), found "
                             f"{type(state).__name__}")
        arrays = {}
        for k, v in state.items():
            if not isinstance(v, torch.Tensor):
                raise ValueError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor "
                                 "(expected a state dict, or one under 'model'/'state_dict')")
            arrays[k] = v.detach().cpu().float().numpy() if v.is_floating_point() else \
                v.detach().cpu().numpy()
        return arrays
    raise ValueError(f"{path}: checkpoints must be .pth/.pt/.bin, .safetensors or .npz")


def _tensors(path, arrays):
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray) or v.dtype == object or \
                not np.issubdtype(v.dtype, np.number):
            raise ValueError(f"{path}: entry {k!r} is not a numeric array")
    return arrays


# ---- layouts (one key map per checkpoint layout): module name -> (our layer, kind) -------
def _block(m, part):
    return f"conv{int(m[1]) + 1}_block{int(m[2]) + 1}_{part}"


_RESNET_BODY = [
    (r"layer(\d)\.(\d+)\.conv(\d)", lambda m: (_block(m, f"{m[3]}_conv"), "conv")),
    (r"layer(\d)\.(\d+)\.bn(\d)", lambda m: (_block(m, f"{m[3]}_bn"), "bn")),
    (r"layer(\d)\.(\d+)\.downsample\.0", lambda m: (_block(m, "0_conv"), "conv")),
    (r"layer(\d)\.(\d+)\.downsample\.1", lambda m: (_block(m, "0_bn"), "bn")),
    (r"layer(\d)\.(\d+)\.(?:se|se_module)\.fc([12])", lambda m: (_block(m, "se"), f"se{m[3]}")),
]
RULES = {
    "resnet": [(r"conv1", lambda m: ("conv1_conv", "conv")),
               (r"bn1", lambda m: ("conv1_bn", "bn")), *_RESNET_BODY,
               (r"fc", lambda m: ("predictions", "linear"))],
    "senet": [(r"layer0\.conv1", lambda m: ("conv1_conv", "conv")),
              (r"layer0\.bn1", lambda m: ("conv1_bn", "bn")), *_RESNET_BODY,
              (r"last_linear", lambda m: ("predictions", "linear"))],
    "densenet": [
        (r"features\.conv0", lambda m: ("conv1_conv", "conv")),
        (r"features\.norm0", lambda m: ("conv1_bn", "bn")),
        (r"features\.denseblock(\d)\.denselayer(\d+)\.norm1",
         lambda m: (f"conv{int(m[1]) + 1}_block{m[2]}_0_bn", "bn")),
        (r"features\.denseblock(\d)\.denselayer(\d+)\.conv1",
         lambda m: (f"conv{int(m[1]) + 1}_block{m[2]}_1_conv", "conv")),
        (r"features\.denseblock(\d)\.denselayer(\d+)\.norm2",
         lambda m: (f"conv{int(m[1]) + 1}_block{m[2]}_1_bn", "bn")),
        (r"features\.denseblock(\d)\.denselayer(\d+)\.conv2",
         lambda m: (f"conv{int(m[1]) + 1}_block{m[2]}_2_conv", "conv")),
        (r"features\.transition(\d)\.norm", lambda m: (f"pool{int(m[1]) + 1}_bn", "bn")),
        (r"features\.transition(\d)\.conv", lambda m: (f"pool{int(m[1]) + 1}_conv", "conv")),
        (r"features\.norm5", lambda m: ("bn", "bn")),
        (r"classifier", lambda m: ("predictions", "linear")),
    ],
    "googlenet": [
        (r"conv1\.(conv|bn)", lambda m: ("conv1_7x7_s2" + _bn(m[1]), m[1])),
        (r"conv2\.(conv|bn)", lambda m: ("conv2_3x3_reduce" + _bn(m[1]), m[1])),
        (r"conv3\.(conv|bn)", lambda m: ("conv2_3x3" + _bn(m[1]), m[1])),
        (r"inception(\w\w)\.branch(\d)(?:\.(\d))?\.(conv|bn)",
         lambda m: (f"inception_{m[1]}_{_BRANCH[(m[2], m[3])]}" + _bn(m[4]), m[4])),
        (r"aux(\d)\.conv\.(conv|bn)", lambda m: (f"aux{m[1]}_conv" + _bn(m[2]), m[2])),
        (r"aux(\d)\.fc1", lambda m: (f"aux{m[1]}_fc", "linear")),
        (r"aux(\d)\.fc2", lambda m: (f"aux{m[1]}_predictions", "linear")),
        (r"fc", lambda m: ("predictions", "linear")),
    ],
}
_BRANCH = {("1", None): "1x1", ("2", "0"): "3x3_reduce", ("2", "1"): "3x3",
           ("3", "0"): "5x5_reduce", ("3", "1"): "5x5", ("4", "1"): "pool_proj"}
HEADS = {"resnet": ("fc.",), "senet": ("last_linear.",), "densenet": ("classifier.",),
         "googlenet": ("fc.", "aux1.", "aux2."), "alexnet": ("classifier.",),
         "vgg": ("classifier.",)}
# torchvision's Sequential indices of the classifier Linears
CLASSIFIER = {"alexnet": (1, 4, 6), "vgg": (0, 3, 6)}


def _bn(kind):
    return "_bn" if kind == "bn" else ""


def _sequential_rules(model, layout):
    """torchvision's ``features.N`` / ``classifier.N`` indices for AlexNet and VGG, read off
    our layer sequence (conv [bn] relu ... pool), plus the three classifier Linears."""
    mapping, idx = {}, 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            mapping[f"features.{idx}"] = (layer.name, "conv")
            idx += 2 if layer.activation.__name__ == "relu" else 1  # fused ReLU is a module
        elif kind == "BatchNormalization":
            mapping[f"features.{idx}"] = (layer.name, "bn")
            idx += 1
        elif kind in ("Activation", "MaxPooling2D"):
            idx += 1
    dense = [layer.name for layer in model.layers if type(layer).__name__ == "Dense"]
    for i, name in zip(CLASSIFIER[layout], dense):
        mapping[f"classifier.{i}"] = (name, "linear")
    return mapping


# torchvision's own renaming of its legacy DenseNet keys ("norm.1" -> "norm1", "conv.2",
# "relu.1" ...), from torchvision/models/densenet.py ``_load_state_dict``.
_LEGACY_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                              r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _fix_legacy_densenet(key):
    m = _LEGACY_DENSENET.match(key)
    return m.group(1) + m.group(2) if m else key


def convert_state_dict(model, state, layout, include_top=True):
    """Map a PyTorch ``state`` ({key: array}) of ``layout`` (resnet, senet, densenet,
    googlenet, alexnet, vgg) onto ``model`` and set its weights, all or nothing."""
    if layout not in HEADS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; allowed: "
                         f"{', '.join(sorted(HEADS))}")
    drop = [] if include_top else list(HEADS[layout])  # no classifier in the model
    if layout == "googlenet" and not any(l.name.startswith("aux") for l in model.layers):
        drop += ["aux1.", "aux2."]  # torchvision ships the auxiliary heads; not built here
    state = {_fix_legacy_densenet(k): v for k, v in state.items()
             if not k.endswith("num_batches_tracked") and not k.startswith(tuple(drop))}
    modules = {}
    for key in state:
        module, _, part = key.rpartition(".")
        modules.setdefault(module, {})[part] = key
    sequential = _sequential_rules(model, layout) if layout in CLASSIFIER else None
    flat_input = _flatten_inputs(model)
    arrays, unmapped = {}, []
    for module, parts in modules.items():
        target = sequential.get(module) if sequential is not None else None
        if sequential is None:
            for pattern, fn in RULES[layout]:
                m = re.fullmatch(pattern, module)
                if m:
                    target = fn(m)
                    break
        if target is None:
            unmapped.append(module)
            continue
        name, kind = target
        get = {p: np.asarray(state[k]) for p, k in parts.items()}
        if kind == "conv":
            arrays[name] = [get["weight"].transpose(2, 3, 1, 0)] + \
                ([get["bias"]] if "bias" in get else [])
        elif kind == "bn":
            arrays[name] = [get[p] for p in BN_PARTS]
        elif kind == "linear":
            w = get["weight"]
            if name in flat_input:  # (out, C*H*W) in PyTorch's order -> (H*W*C, out)
                h, wd, c = flat_input[name]
                w = w.reshape(w.shape[0], c, h, wd).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
            else:
                w = w.T
            arrays[name] = [w, get["bias"]]
        else:  # se1 / se2: 1x1 conv weights (out, in, 1, 1) -> (in, out)
            slot = arrays.setdefault(name, [None] * 4)
            i = 0 if kind == "se1" else 2
            slot[i], slot[i + 1] = get["weight"][:, :, 0, 0].T, get["bias"]
    if unmapped:
        raise ValueError(f"{model.name}: checkpoint tensors with no place in the model: "
                         f"{', '.join(unmapped[:5])}{' ...' if len(unmapped) > 5 else ''}")
    assign_by_name(model, arrays)
    return model


def _flatten_inputs(model):
    """{Dense layer name: (H, W, C)} for Dense layers fed by a Flatten of a feature map."""
    producers = {id(op.output): op for op in model.operations}
    out = {}
    for layer in model.layers:
        if type(layer).__name__ != "Dense":
            continue
        src = producers.get(id(layer.input))
        if type(src).__name__ == "Flatten":
            out[layer.name] = tuple(src.input.shape[1:])
    return out


def convert_checkpoint(model, path, layout, include_top=True):
    """:func:`read_checkpoint` then :func:`convert_state_dict`."""
    return convert_state_dict(model, read_checkpoint(path), layout, include_top=include_top)
