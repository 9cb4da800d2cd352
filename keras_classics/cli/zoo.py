"""The model zoo at a glance: every registered model built at its standard configuration.

    keras-classics zoo                  # one row per model: input sizes, parameters, layers
    keras-classics zoo --family resnet  # one family
    keras-classics zoo vgg16 resnet50   # chosen models
    keras-classics zoo vgg16 --summary  # Keras' layer-by-layer summary
"""
import argparse
import csv

import keras_classics as kc

COLUMNS = ["name", "family", "dataset", "input", "min_input", "trainable", "total", "layers"]


def main(argv=None, prog=None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="registry names (default: all)")
    parser.add_argument("--family", help="only this family (alexnet, vgg, googlenet, resnet, "
                                         "densenet)")
    parser.add_argument("--summary", action="store_true", help="print model.summary()")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    try:
        names = args.models or kc.list_models(args.family)
        infos = [kc.model_info(n) for n in names]
    except ValueError as err:
        parser.error(str(err))
    if args.summary:
        for info in infos:
            info.build().summary()
        return 0
    widths = [20, 9, 8, 5, 9, 13, 13, 6]
    print("  ".join(c.rjust(w) if i > 2 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(COLUMNS, widths))))
    rows = []
    for i, info in enumerate(infos, start=1):
        row = kc.describe(info.name)
        rows.append(row)
        cells = [row["name"], row["family"], row["dataset"], row["input"], row["min_input"],
                 f"{row['trainable']:,}", f"{row['total']:,}", row["layers"]]
        print("  ".join(str(c).rjust(w) if j > 2 else str(c).ljust(w)
                        for j, (c, w) in enumerate(zip(cells, widths))),
              f"  [{i}/{len(infos)}]", flush=True)
    print("\ntrainable: parameters an optimizer updates (the papers' and torchvision's count); "
          "total adds BatchNormalization moving statistics (keras count_params()).")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS + ["paper"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 0

