"""Where a measured result comes from: the command that produced it, the machine and the date.

Every results file the tools write (a tuning study's ``report.json``, the transfer
experiment's ``results.json``, the benchmarks' ``results.json``) carries ``run_record()``,
and every table rendered from such a file is headed by ``heading()``. CPU speeds and even
accuracies (through the order of floating-point sums) differ between machines, so a figure
without its machine cannot be compared with anything.
"""
import datetime
import os
import platform
import shlex
import sys


def cpu_name(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name and the instruction sets that decide our speed here: AVX2,
    AVX-512, AVX512-BF16 and AMX (e.g. ``AMD EPYC (avx2, avx512f, avx512_bf16, no AMX)``)."""
    try:
        with open(cpuinfo) as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    if "avx512f" not in flags:
        isa.append("no AVX-512")
    if "amx_bf16" not in flags:
        isa.append("no AMX")
    return f"{name} ({', '.join(isa)})"


def machine():
    """The machine as the results files record it."""
    import tensorflow as tf  # noqa: the figures are TensorFlow's
    import keras

    return {"cpu": cpu_name(), "cpu_cores": os.cpu_count(), "platform": platform.platform(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def command_line(argv=None):
    """The command as the user typed it: ``python tools/tune.py zfnet`` for a script,
    ``keras-classics tune zfnet`` for the installed command."""
    argv = list(sys.argv if argv is None else argv)
    prog = argv[0] if argv else "python"
    if prog.endswith(".py"):
        path = os.path.relpath(prog) if os.path.isabs(prog) else prog
        if path.startswith(".."):
            path = prog
        head = ["python", path]
    else:
        head = [os.path.basename(prog)]
    return shlex.join(head + argv[1:])


def run_record(command=None):
    """``{"command", "machine", "date"}`` for a results file (``date``: UTC, ISO 8601)."""
    return {"command": command or command_line(), "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")}


def heading(run):
    """The line above a rendered table: command, machine, date."""
    if not run:
        raise ValueError("this results file has no run record (command, machine, date): "
                         "it was not written by a tool of this version")
    m = run["machine"]
    gpus = f", {m['gpus']} GPU{'s' if m['gpus'] != 1 else ''}" if m.get("gpus") else ""
    return (f"`{run['command']}` on {m['cpu']}, {m['cpu_cores']} cores{gpus} "
            f"(TF {m['tensorflow']}, Keras {m['keras']}), {run['date'][:10]}")
