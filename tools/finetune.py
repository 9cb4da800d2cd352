"""`python tools/finetune.py ...` in a checkout: the same as the installed `keras-classics finetune ...`
(the code is keras_classics/cli/finetune.py). `python tools/finetune.py --help` lists the options."""
import os
import sys

# before TensorFlow loads (keras_classics imports it): why oneDNN, keras_classics.cli.ONEDNN
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_classics.cli.main import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("finetune", sys.argv[1:]))
