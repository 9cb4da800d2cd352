"""The real torchvision and timm model code, beside the test extra's CPU PyTorch.

torchvision from the package registry is built against the CUDA torch; with the CPU torch its
compiled operators fail to register (``operator torchvision::nms does not exist``) while its
model definitions are pure Python. ``register_fake`` (the meta kernels of those operators) is
made a no-op while ``torchvision.models`` is imported; the models then build and run as they
are. timm imports torchvision, so it comes after."""
import importlib

import torch


def torchvision_models():
    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        return importlib.import_module("torchvision.models")
    finally:
        torch.library.register_fake = register_fake


def timm():
    torchvision_models()
    return importlib.import_module("timm")


def randomize(module, seed=0):
    """Random weights everywhere, BN statistics included, so a misplaced tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            if t.dim() > 1:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5)
            elif name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return module.eval()


def run(module, x_nhwc):
    """The module's output for NHWC numpy input, NHWC (maps) or (batch, classes)."""
    import numpy as np

    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
    out = out.numpy()
    return out.transpose(0, 2, 3, 1) if out.ndim == 4 else out
