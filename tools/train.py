"""`python tools/train.py ...` in a checkout: the same as the installed `keras-classics train ...`
(the code is keras_classics/cli/train.py). `python tools/train.py --help` lists the options."""
import os
import sys

# before TensorFlow loads (keras_classics imports it): why oneDNN, keras_classics.cli.ONEDNN
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_classics.cli.main import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("train", sys.argv[1:]))
