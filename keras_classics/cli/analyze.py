"""Per-layer parameters, activation memory and multiply-adds of a model, the lecture's way.

    keras-classics analyze vgg16                      # lecture-style table, totals, bottlenecks
    keras-classics analyze vgg16 --train momentum     # + training memory (params/grads/slots/...)
    keras-classics analyze resnet50 --format csv      # or json
    keras-classics analyze my_model.keras --input-size 64
    keras-classics analyze --zoo --plot zoo.png       # every model: CSV + Canziani-style chart
    keras-classics analyze --inception-example        # the lecture's 854M vs 358M comparison
"""
import argparse
import csv
import os
import sys

import keras

import keras_classics as kc
from keras_classics import analysis


def inception_text():
    res = analysis.inception_example()
    lines = ["The lecture's Inception module at a 28x28x256 input, computed from the layers:"]
    for kind in ("naive", "reduced"):
        r = res[kind]
        lines.append(f"\n{kind} module ({r['output_channels']} output channels):")
        lines += [f"  {name}: {macs:,} multiply-adds" for name, macs in r["convs"]]
        lines.append(f"  total: {r['macs']:,} = {r['macs'] / 1e6:.0f}M "
                     f"(slide: {r['slide'] / 1e6:.0f}M)")
        if round(r["macs"] / 1e6) != round(r["slide"] / 1e6):
            lines.append(f"  NOTE: the slide prints {r['slide'] / 1e6:.0f}M, but its own listed "
                         f"convolutions add up to {r['macs'] / 1e6:.0f}M.")
    ratio = res["naive"]["macs"] / res["reduced"]["macs"]
    lines.append(f"\n1x1 reductions cut the cost {ratio:.1f}x (and the output from "
                 f"{res['naive']['output_channels']} to {res['reduced']['output_channels']} "
                 "channels).")
    return "\n".join(lines)


def zoo(args):
    names = args.models or kc.list_models(args.family)

    def progress(i, n, name):
        print(f"[{i}/{n}] {name}", file=sys.stderr, flush=True)

    rows = analysis.analyze_zoo(names, progress=progress)
    print(f"{'model':22s} {'params':>12s} {'GMACs':>8s} {'act/img':>9s} {'MiB/img':>8s} "
          f"{'top-1':>6s}")
    for r in rows:
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "-"
        print(f"{r['name']:22s} {r['params']:>12,d} {r['gmacs']:8.3f} "
              f"{analysis.human(r['activations']):>9s} {r['activation_mib']:8.1f} {top1:>6s}")
    csv_path = args.csv or (os.path.splitext(args.plot)[0] + ".csv" if args.plot else None)
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {csv_path}")
    if args.plot:
        analysis.plot_zoo(rows, args.plot)
        print(f"wrote {args.plot}")


def main(argv=None, prog=None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="registry name or a .keras file")
    parser.add_argument("--input-size", type=int, help="square input size (default: the "
                                                       "model's own)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--dtype", help="activation dtype for memory, e.g. bfloat16")
    parser.add_argument("--train", metavar="OPTIMIZER",
                        help="also print training memory for " +
                             "|".join(analysis.OPTIMIZER_SLOTS))
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--zoo", action="store_true", help="analyze every registered model")
    parser.add_argument("--models", nargs="+", help="with --zoo: only these models")
    parser.add_argument("--family", help="with --zoo: only this family")
    parser.add_argument("--plot", help="with --zoo: write the chart to this PNG")
    parser.add_argument("--csv", help="with --zoo: write the figures to this CSV "
                                      "(default: next to --plot)")
    parser.add_argument("--inception-example", action="store_true",
                        help="the lecture's Inception module cost comparison")
    args = parser.parse_args(argv)
    try:
        if args.inception_example:
            print(inception_text())
            return 0
        if args.zoo:
            zoo(args)
            return 0
        if not args.model:
            parser.error("give a MODEL, --zoo or --inception-example")
        if args.train and args.train.lower() not in analysis.OPTIMIZER_SLOTS:
            parser.error(f"unknown optimizer {args.train!r}; allowed: "
                         f"{', '.join(analysis.OPTIMIZER_SLOTS)}")
        if args.model.endswith(".keras"):
            if not os.path.isfile(args.model):
                parser.error(f"no such file: {args.model}")
            model = keras.saving.load_model(args.model)
            shape = None
            if args.input_size:
                shape = (args.input_size, args.input_size, model.inputs[0].shape[-1])
            prof = analysis.profile(model, shape, args.batch_size, args.dtype)
        else:
            info = kc.model_info(args.model)
            size = args.input_size or info.default_size
            prof = analysis.profile(info.name, (size, size, 3), args.batch_size, args.dtype)
    except ValueError as err:
        parser.error(str(err))
    if args.format == "csv":
        sys.stdout.write(prof.to_csv())
    elif args.format == "json":
        print(prof.to_json())
    else:
        print(analysis.report(prof, train=args.train))
    return 0

