"""What a run leaves in its --output besides checkpoints: history.csv, curves.png,
summary.json, model.keras — each written to a temporary name and renamed into place.

history.csv is rewritten from the checkpointed history after each epoch rather than appended
by ``keras.callbacks.CSVLogger``: a run killed between an append and its checkpoint would
repeat rows when resumed.
"""
import csv
import io
import json
import os

from .. import datasets


def atomic_write(path, text):
    with open(path + ".tmp", "w", newline="") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_history(history, output):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    w.writerows(history)
    atomic_write(os.path.join(output, "history.csv"), buf.getvalue())


def write_summary(summary, path):
    atomic_write(path, json.dumps(summary, indent=1))


def save_model(net, output):
    tmp = os.path.join(output, "model.tmp.keras")
    net.save(tmp)
    os.replace(tmp, os.path.join(output, "model.keras"))


def plot_history(history, path):
    """Loss and accuracy per epoch, training against validation."""
    import matplotlib  # not imported with the package (it is slow): only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], "o-", label="train")
        ax.plot(epochs, [h["val_" + key] for h in history], "o-", label="validation")
        ax.set_xlabel("epoch"), ax.set_ylabel(key), ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def saved_preprocessing(model_path):
    """The preprocessing a ``model.keras`` written by :func:`train` was trained with (read from
    the ``summary.json`` beside it); "torch" when there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "summary.json")
    try:
        with open(path) as f:
            mode = json.load(f).get("preprocessing", "torch")
    except (OSError, ValueError, AttributeError):
        return "torch"
    return mode if mode in datasets.MODES else "torch"
