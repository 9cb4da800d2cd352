"""``keras-classics COMMAND ...``: the package's commands behind one entry point.

Each command's code is ``keras_classics.cli.<command>.main(argv, prog)``; ``python
tools/<command>.py`` in a checkout runs the same function.
"""
import importlib
import os
import sys

from keras_classics.backend import BackendError

# command -> (module, one line for the overview)
COMMANDS = {
    "zoo": ("zoo", "every registered model with its input sizes, parameters and layers"),
    "analyze": ("analyze", "per-layer parameters, memory and multiply-adds of a model"),
    "train": ("train", "train a zoo model on one device, several GPUs or several machines"),
    "tune": ("tune", "keras-tuner studies (zfnet, wide_resnet, resnet, vgg, ...)"),
    "finetune": ("finetune", "transfer learning: a backbone, a dataset, a regime"),
    "export": ("export", "a SavedModel for TF Serving (or a TFLite file)"),
    "convert-weights": ("convert_weights", "a torchvision/timm checkpoint -> .weights.h5"),
    "visualize": ("visualize", "Zeiler & Fergus' views and Grad-CAM of a model"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: keras-classics COMMAND [ARGS ...]", "",
             "The classic ImageNet CNNs for Keras 3: models, analysis, training, tuning, "
             "export.", "", "commands:"]
    lines += [f"  {name:{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "keras-classics COMMAND --help: the command's options; "
                  "keras-classics --version: the version"]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from keras_classics import __version__

        print(f"keras-classics {__version__}")
        return 0
    name = argv[0].replace("_", "-")
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"keras-classics: unknown command {argv[0]!r}{hint}\n\n{usage()}", file=sys.stderr)
        return 2
    return run(COMMANDS[name][0], argv[1:], f"keras-classics {name}")


def run(module, argv=None, prog=None):
    """Command ``module``'s main, its failures that are not bugs said in one line: a command
    that needs TensorFlow in a process that runs Keras on another backend (exit 2), a
    diverged training (exit 3), a file that cannot be written or read — read-only or full
    disk, a file where a folder should be — from Python (``OSError``) or from TensorFlow's
    file system (``ResourceExhaustedError`` and friends), exit 1. Set
    ``KERAS_CLASSICS_TRACEBACK=1`` to get the traceback instead."""
    prog = prog or os.path.basename(sys.argv[0])
    try:
        command = importlib.import_module(f"keras_classics.cli.{module}")
    except BackendError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        return command.main(argv, prog=prog) or 0
    except Exception as err:
        code, line = _one_line(err)
        if code is None or os.environ.get("KERAS_CLASSICS_TRACEBACK"):
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        return code


def _one_line(err):
    """``(exit code, message)`` for the failures a command reports in one line, else
    ``(None, None)``: a bug keeps its traceback."""
    if type(err).__name__ == "TrainingDiverged":
        return 3, str(err)
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return 1, (f"{err.strerror or err}{where} (nothing more was written; free space or "
                   "choose a writable --output/--out and rerun: runs resume from their last "
                   "checkpoint)")
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    if errors and isinstance(err, (errors.ResourceExhaustedError, errors.PermissionDeniedError,
                                   errors.OutOfRangeError, errors.FailedPreconditionError,
                                   errors.NotFoundError, errors.UnavailableError)):
        text = (err.message or str(err)).strip().splitlines()[0]
        text = text.split("}} ")[-1][:400]  # without TensorFlow's node name
        return 1, (f"{text} (TensorFlow {type(err).__name__}; a full disk or an unwritable "
                   "--output/--out is the usual cause: free space or choose another and rerun)")
    return None, None
