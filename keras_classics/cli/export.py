"""Export a model for TF Serving (SavedModel, BN folded) or TFLite.

    keras-classics export runs/train/model.keras --out serving/digits
    keras-classics export resnet50 --weights imagenet --labels imagenet --out serving/resnet50
    keras-classics export runs/train/model.keras --out out/ --format tflite

SavedModels go to OUT/<version>/ (next integer unless --version), the layout TF Serving
watches; docs/serving.md shows the request formats.
"""
import argparse
import os
import sys

import keras

import keras_classics as kc
from keras_classics import cli, export, fusion, preprocessing, training, weights


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("model", help="a .keras file (e.g. from keras-classics train) or a registry name")
    p.add_argument("--out", required=True, help="base directory (SavedModel) or folder (tflite)")
    p.add_argument("--weights", help="for a registry name: imagenet or a weights file")
    p.add_argument("--version", type=cli.positive_int)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-fuse", action="store_true", help="keep BatchNormalization layers")
    p.add_argument("--top-k", type=cli.positive_int, default=5)
    p.add_argument("--labels", help="a file with one class name per line, or 'imagenet'")
    p.add_argument("--image-size", type=cli.positive_int,
                   help="input size when the model takes any size")
    p.add_argument("--preprocessing", choices=("torch", "caffe", "tf"),
                   help="default: that of the model's pretrained weights (registry name with "
                        "--weights imagenet), or the one a .keras file was trained with "
                        "(summary.json beside it), else torch")
    p.add_argument("--format", choices=("saved_model", "tflite"), default="saved_model")
    p.add_argument("--dtype", choices=fusion.DTYPES,
                   help="SavedModel: serve the folded model in this dtype policy (bfloat16 is "
                        "the fast CPU path; see bench/)")
    p.add_argument("--max-pixels", type=cli.positive_int, default=export.MAX_PIXELS,
                   help="SavedModel: refuse encoded images with more pixels than this, read "
                        "from their headers before decoding (default %(default)s)")
    args = p.parse_args(argv)
    if args.format == "tflite" and args.dtype:
        p.error("--dtype applies to SavedModels; TFLite exports are float32")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out} exists and is not a directory")
    if args.model.endswith(".keras") and not os.path.isfile(args.model):
        p.error(f"no such file: {args.model}")
    labels = None
    if args.labels == "imagenet":
        labels = [name for _, name in sorted(preprocessing.class_index().items())]
    elif args.labels:
        try:
            with open(args.labels) as f:
                labels = [line.strip() for line in f if line.strip()]
        except OSError as err:
            p.error(f"--labels {args.labels}: {err.strerror}")
    existed = os.path.isdir(args.out)
    try:
        if args.model.endswith(".keras"):
            try:
                model = keras.saving.load_model(args.model)
            except Exception as err:  # Keras' messages carry its traceback and the config
                raise ValueError(f"{args.model}: not a loadable .keras model: "
                                 f"{cli.first_line(err)}") from None
            pre = args.preprocessing or training.saved_preprocessing(args.model)
        else:
            model = kc.get_model(args.model, weights=args.weights)
            pre = args.preprocessing or weights.preprocessing_of(model)
            if args.weights is None:
                print("warning: exporting randomly initialized weights (no --weights)",
                      file=sys.stderr)
        if args.format == "tflite":
            os.makedirs(args.out, exist_ok=True)
            path, report = export.export_tflite(
                model, os.path.join(args.out, "model.tflite"), fuse_bn=not args.no_fuse,
                image_size=args.image_size, preprocessing=pre, overwrite=args.overwrite)
            print(f"wrote {path} (on {report['images']} held-out digits: top-1 agreement with "
                  f"Keras {report['top1_agreement']:.0%}, max |TFLite - Keras| = "
                  f"{report['max_abs_difference']:.2e}; input: one preprocessed float32 "
                  f"image, preprocessing {pre})")
            return 0
        path = export.export_saved_model(
            model, args.out, version=args.version, fuse_bn=not args.no_fuse, top_k=args.top_k,
            labels=labels, image_size=args.image_size, preprocessing=pre,
            overwrite=args.overwrite, dtype=args.dtype, max_pixels=args.max_pixels)
    except (ValueError, OSError) as err:
        if not existed and os.path.isdir(args.out) and not os.listdir(args.out):
            os.rmdir(args.out)  # refused: leave nothing behind
        p.error(cli.first_line(err) if isinstance(err, ValueError) else
                f"cannot write {args.out}: {err.strerror or err}")
    print(f"wrote {path} (signatures: serving_default <- encoded images up to "
          f"{args.max_pixels} pixels, predict_images <- float RGB [0, 255]; preprocessing "
          f"{pre}; dtype {args.dtype or 'float32'})")
    return 0

