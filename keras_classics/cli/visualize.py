"""Look inside a convnet the way Zeiler & Fergus did: filters, feature maps, top images,
deconvnet and guided-backprop projections, occlusion, Grad-CAM.

    keras-classics visualize runs/tune/zfnet/best/model.keras --dataset digits --out viz/
    keras-classics visualize zfnet --image-size 112 --image photo.jpg --out viz/
    keras-classics visualize alexnet --weights imagenet --image cat.jpg --out viz/

Writes PNG files into --out and prints their paths; the views are described in
keras_classics/visualize.py.
"""
import argparse

from keras_classics import cli, visualize


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("model", help="a functional .keras file (e.g. from keras-classics train) or a "
                                 "registry name")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--weights", help="imagenet or a weights file")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="an image file (JPEG, PNG, ...)")
    src.add_argument("--dataset", default="digits",
                     help="digits (embedded), a tensorflow-datasets name or a folder: its test "
                          "split gives the image (--index) and the top-k search")
    p.add_argument("--data-dir", help="tensorflow-datasets data directory")
    p.add_argument("--index", type=cli.non_negative_int, default=0,
                   help="which test image of --dataset to look at")
    p.add_argument("--limit", type=cli.positive_int, default=500,
                   help="test images searched for the top activations")
    p.add_argument("--layer", help="layer for feature maps, top images and projections "
                                   "(default: the deepest feature map at least 8 wide)")
    p.add_argument("--channel", type=cli.non_negative_int,
                   help="channel for the top images (default: the image's strongest)")
    p.add_argument("--top-k", type=cli.positive_int, default=9)
    p.add_argument("--image-size", type=cli.positive_int,
                   help="input size for a registry name (default: the model's)")
    args = p.parse_args(argv)

    try:
        model, mode = visualize.load(args.model, args.weights, args.image_size)
        size = model.input_shape[1]
        if args.image:  # decoded as training decodes a folder's files
            images, labels, names = visualize.read_image(args.image, model), None, None
        else:
            images, labels, names = visualize.dataset_images(
                args.dataset, size, limit=max(args.limit, args.index + 1),
                data_dir=args.data_dir)
        paths = visualize.report(model, mode, args.out, images, labels, index=args.index,
                                 layer=args.layer, channel=args.channel, k=args.top_k,
                                 class_names=names)
    except (ValueError, FileNotFoundError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    if args.image:
        print("top_activations.png: needs a dataset (--dataset), skipped")
    for path in paths:
        print(f"wrote {path}")
    return 0

