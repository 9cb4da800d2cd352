"""Render the results tables of README.md and docs/*.md from their results files.

A rendered block is written in the Markdown as

    <!-- rendered: keras-classics tune --render docs/results/tune-zfnet.amd-epyc-avx2.json -->
    ...what the command prints...
    <!-- end rendered -->

and this tool runs each command (a ``keras-classics`` command or a ``python bench/*.py``
script, from the repository's root) and puts its output between the markers. Every such
command renders a results file that a tool wrote, headed by the command, machine and date
of the run; nothing in a block is typed by hand.

    python tools/render_docs.py           # rewrite the blocks
    python tools/render_docs.py --check   # exit 1, naming them, if any block is out of date
"""
import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys
from pathlib import Path

# before TensorFlow loads (keras_classics imports it): why oneDNN, keras_classics.cli.ONEDNN
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- rendered: (?P<command>.+?) -->\n)(?P<body>.*?)(<!-- end rendered -->)",
                   re.S)


def pages(root=ROOT):
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(text):
    """``[(command, body)]`` of a page's rendered blocks."""
    return [(m.group("command"), m.group("body")) for m in BLOCK.finditer(text)]


def render(command, root=ROOT):
    """What ``command`` prints, run in this process from ``root``."""
    argv = shlex.split(command)
    if argv[0] == "keras-classics":
        from keras_classics.cli.main import main
        run, args = main, argv[1:]
    elif argv[0] == "python" and len(argv) > 1 and argv[1].startswith("bench/") \
            and "--render" in argv:
        name = Path(argv[1]).stem
        spec = importlib.util.spec_from_file_location(f"bench_{name}", root / argv[1])
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(root / "bench"))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(root / "bench"))
        run, args = module.main, argv[2:]
    else:
        raise ValueError(f"not a render command: {command!r} (keras-classics ... or python "
                         "bench/X.py --render ...)")
    out, cwd = io.StringIO(), os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out):
            code = run(args)
    finally:
        os.chdir(cwd)
    if code:
        raise RuntimeError(f"{command!r} exited with {code}")
    return out.getvalue().rstrip("\n") + "\n"


def update(text, root=ROOT):
    """``text`` with every block's body replaced by its command's output."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("command"), root) + m.group(4), text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if any block "
                                                        "is out of date")
    args = p.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        new = update(text)
        if new != text:
            stale.append(str(page.relative_to(ROOT)))
            if not args.check:
                page.write_text(new)
    verb = "out of date" if args.check else "rendered"
    print(f"{verb}: {', '.join(stale)}" if stale else "every rendered block is up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
