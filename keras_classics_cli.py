"""The ``keras-classics`` console script (installed by pip with the package).

It lives outside the ``keras_classics`` package on purpose: TensorFlow reads
``TF_ENABLE_ONEDNN_OPTS`` and ``TF_CPP_MIN_LOG_LEVEL`` once, when it is first imported, and
importing anything from ``keras_classics`` imports TensorFlow. So the command sets them here
first, as ``python tools/*.py`` does (why oneDNN: ``keras_classics.cli.ONEDNN``); values the
user set are left alone. The commands themselves are in ``keras_classics.cli``.
"""
import os
import sys


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    from keras_classics.cli.main import main as run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
