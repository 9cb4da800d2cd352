"""Export a model for TF Serving (SavedModel, BN folded) or TFLite.

    python tools/export.py runs/train/model.keras --out serving/digits
    python tools/export.py resnet50 --weights imagenet --labels imagenet --out serving/resnet50
    python tools/export.py runs/train/model.keras --out out/ --format tflite

SavedModels go to OUT/<version>/ (next integer unless --version), the layout TF Serving
watches; see the README for the request formats.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_classics as kc  # noqa: E402
from keras_classics import export, fusion, preprocessing, training  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a .keras file (e.g. from tools/train.py) or a registry name")
    p.add_argument("--out", required=True, help="base directory (SavedModel) or folder (tflite)")
    p.add_argument("--weights", help="for a registry name: imagenet or a weights file")
    p.add_argument("--version", type=int)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-fuse", action="store_true", help="keep BatchNormalization layers")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--labels", help="a file with one class name per line, or 'imagenet'")
    p.add_argument("--image-size", type=int, help="input size when the model takes any size")
    p.add_argument("--preprocessing", choices=("torch", "caffe", "tf"),
                   help="default: that of the model's pretrained weights (registry name with "
                        "--weights imagenet), or the one a .keras file was trained with "
                        "(summary.json beside it), else torch")
    p.add_argument("--format", choices=("saved_model", "tflite"), default="saved_model")
    p.add_argument("--dtype", choices=fusion.DTYPES,
                   help="SavedModel: serve the folded model in this dtype policy (bfloat16 is "
                        "the fast CPU path; see bench/)")
    args = p.parse_args(argv)
    try:
        if args.model.endswith(".keras"):
            if not os.path.isfile(args.model):
                p.error(f"no such file: {args.model}")
            model = keras.saving.load_model(args.model)
            pre = args.preprocessing or training.saved_preprocessing(args.model)
        else:
            model = kc.get_model(args.model, weights=args.weights)
            record = kc.weights_info(model)
            pre = args.preprocessing or (record.preprocessing if record else "torch")
            if args.weights is None:
                print("warning: exporting randomly initialized weights (no --weights)",
                      file=sys.stderr)
        labels = None
        if args.labels == "imagenet":
            labels = [name for _, name in sorted(preprocessing.class_index().items())]
        elif args.labels:
            with open(args.labels) as f:
                labels = [line.strip() for line in f if line.strip()]
        size = (args.image_size, args.image_size) if args.image_size else None
        if args.format == "tflite":
            if args.dtype:
                p.error("--dtype applies to SavedModels; TFLite exports are float32")
            os.makedirs(args.out, exist_ok=True)
            path, diff = export.export_tflite(model, os.path.join(args.out, "model.tflite"),
                                              fuse_bn=not args.no_fuse,
                                              image_size=args.image_size)
            print(f"wrote {path} (max |TFLite - Keras| = {diff:.2e}; input: preprocessed "
                  f"float32 images, preprocessing {pre})")
            return 0
        path = export.export_saved_model(model, args.out, version=args.version,
                                         fuse_bn=not args.no_fuse, top_k=args.top_k,
                                         labels=labels, image_size=size, preprocessing=pre,
                                         overwrite=args.overwrite, dtype=args.dtype)
    except ValueError as err:
        p.error(str(err))
    print(f"wrote {path} (signatures: serving_default <- encoded images, predict_images <- "
          f"float RGB [0, 255]; preprocessing {pre}; dtype {args.dtype or 'float32'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
