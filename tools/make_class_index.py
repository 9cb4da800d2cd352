"""Regenerate keras_classics/data/imagenet_class_index.json (run by hand; the file is shipped).

The 1000 WordNet ids in the standard ILSVRC-2012 class order come from tensorflow-datasets
(``datasets/imagenet2012/labels.txt``); readable names from timm's wheel
(``timm/data/_info/imagenet_synset_to_lemma.txt``: ``pip download --no-deps timm`` and unzip).
Each class gets its first lemma with spaces as underscores, the format of Keras'
``imagenet_class_index.json``: ``{"0": ["n01440764", "tench"], ...}``.

    python tools/make_class_index.py PATH/TO/imagenet_synset_to_lemma.txt
"""
import json
import os
import sys
from pathlib import Path

import tensorflow_datasets as tfds


def main(lemma_file):
    labels = Path(tfds.__file__).parent / "datasets" / "imagenet2012" / "labels.txt"
    wnids = labels.read_text().split()
    assert len(wnids) == 1000, len(wnids)
    lemmas = dict(line.split("\t", 1) for line in Path(lemma_file).read_text().splitlines())
    index = {str(i): [w, lemmas[w].split(",")[0].strip().replace(" ", "_")]
             for i, w in enumerate(wnids)}
    out = Path(__file__).resolve().parents[1] / "keras_classics" / "data" / \
        "imagenet_class_index.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, out)
    print(f"wrote {out} ({len(index)} classes)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
