"""Convert a torchvision/timm checkpoint you downloaded yourself into a Keras weights file.

    keras-classics convert-weights resnet50_v1_5 resnet50-0676ba61.pth resnet50.weights.h5
    keras-classics convert-weights se_resnet50 model.safetensors se_resnet50.weights.h5
    keras-classics convert-weights googlenet_bn googlenet.pth out.weights.h5 --layout googlenet

then ``keras_classics.get_model("resnet50_v1_5", weights="resnet50.weights.h5")``. ``.pth`` needs
PyTorch (``pip install 'keras_classics[torch]'``); ``.safetensors`` and ``.npz`` do not. Every
tensor of the checkpoint must find its place and every weight of the model must be set.
"""
import argparse
import os

import keras_classics as kc
from keras_classics import convert, weights


def main(argv=None, prog=None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("model", help="registry name, e.g. resnet50_v1_5")
    parser.add_argument("checkpoint", help=".pth/.pt/.bin, .safetensors or .npz")
    parser.add_argument("output", help="where to write the .weights.h5 file")
    parser.add_argument("--layout", choices=sorted(convert.HEADS),
                        help="checkpoint layout (default: the model's ImageNet source's)")
    args = parser.parse_args(argv)
    try:
        info = kc.model_info(args.model)
        layout = args.layout or getattr(weights.SOURCES.get(info.name), "layout", None)
        if layout is None:
            parser.error(f"{info.name} has no PyTorch checkpoint layout on record; pass "
                         f"--layout ({', '.join(sorted(convert.HEADS))})")
        if not args.output.endswith(".weights.h5"):
            parser.error(f"output must end in .weights.h5, got {args.output!r}")
        if not os.path.isfile(args.checkpoint):
            parser.error(f"no such checkpoint: {args.checkpoint}")
        model = info.build()
        convert.convert_checkpoint(model, args.checkpoint, layout)
    except ValueError as err:
        parser.error(str(err))
    tmp = args.output[: -len(".weights.h5")] + ".part.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: {len(model.weights)} tensors, {model.count_params():,} values "
          f"for {info.name} (preprocessing: {info.preprocessing})")
    return 0

