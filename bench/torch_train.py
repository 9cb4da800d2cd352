"""PyTorch's side of the training benchmarks: torchvision's ResNet-50 and a ZFNet written to
our layer table, trained channels-last with SGD momentum, in float32 or under
``torch.autocast("cpu", torch.bfloat16)``. ``bench/train_vs_torch.py`` times the step,
``bench/where_time_goes.py --by-op`` profiles it. Imports no TensorFlow."""
import contextlib
import os
import sys

MODELS = ("resnet50", "zfnet")


def torch_zfnet(torch, classes):
    """ZFNet (Zeiler & Fergus 2013, table 1) as ``keras_classics.ZFNet`` builds it: 7x7/2 96,
    3x3/2 max pool, LRN; 5x5/2 256, pool, LRN; 3x3 384, 384, 256; pool; 4096, 4096 with
    dropout; pools 1 and 2 in ceil mode, as ours."""
    nn = torch.nn

    def lrn():
        return nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0)

    return nn.Sequential(
        nn.Conv2d(3, 96, 7, 2, 1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
        nn.Conv2d(96, 256, 5, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), lrn(),
        nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(), nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096),
        nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, classes))


def torch_and_models():
    """``(torch, torchvision.models)``; ImportError without the test extra's PyTorch."""
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from torch_models import torchvision_models
    return torch, torchvision_models()


def training(name, x, y, autocast, classes=1000):
    """``(step, model)``: ``step(n)`` runs ``n`` training steps of ``name`` on the NHWC batch
    ``x`` (numpy or a tensor) with labels ``y`` and returns the last loss; ``step(n,
    scoped=True)`` marks the model call, the loss and the backward pass for the profiler."""
    import numpy as np

    if name not in MODELS:
        raise ValueError(f"no PyTorch twin of {name!r}: one of {', '.join(MODELS)}")
    torch, models = torch_and_models()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    images = torch.from_numpy(np.asarray(x, np.float32).transpose(0, 3, 1, 2).copy()).contiguous(
        memory_format=torch.channels_last)
    labels = torch.from_numpy(np.asarray(y).astype("int64"))
    torch.manual_seed(0)
    model = models.resnet50(num_classes=classes) if name == "resnet50" else \
        torch_zfnet(torch, classes)
    with torch.no_grad():
        model.eval()(images[:1])  # materialises ZFNet's LazyLinear
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def scope(label, scoped):
        return torch.profiler.record_function(label) if scoped else contextlib.nullcontext()

    def step(steps=1, scoped=False):
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                with scope("model", scoped):
                    logits = model(images)
                with scope("loss", scoped):
                    loss = torch.nn.functional.cross_entropy(logits, labels)
            with scope("backward", scoped):
                loss.backward()
            opt.step()
        return float(loss.detach())
    return step, model
