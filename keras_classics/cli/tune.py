"""Hyperparameter searches from the lecture's architectures with keras-tuner.

    keras-classics tune zfnet                      # AlexNet vs ZFNet choices, on the digits
    keras-classics tune wide_resnet --tuner grid --budget-params 1500000
    keras-classics tune resnet --dataset cifar10 --epochs 30 --strategy mirrored
    keras-classics tune zfnet --export serving/zfnet

Recipes: zfnet, wide_resnet, vgg, resnet, densenet, norm, se. Every configuration trains
once per seed (--seeds, default 2); the leaderboard shows mean ± std and a verdict line says
whether the best beats each other configuration (Welch's one-sided t-test, p < 0.05).
Rerun the same command to resume an interrupted search; a rerun with other settings is
refused (naming them) unless --overwrite, which starts afresh; a second search on the same
directory is refused. Distributed search: the same command on a chief and on workers, with
KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set (docs/tuning.md).
"""
import argparse
import sys

from keras_classics import analysis, datasets, recipes, training
from keras_classics.cli import (add_precision_arguments, print_rendered,
                                positive_int, warn_if_gpus_unused)
from keras_classics.recipes import search


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("recipe", nargs="?", help=", ".join(recipes.RECIPES))
    p.add_argument("--dataset", default="digits")
    p.add_argument("--tuner", choices=sorted(search.TUNERS),
                   help="default: the recipe's (grid for zfnet, wide_resnet and resnet, "
                        "random otherwise)")
    p.add_argument("--max-trials", type=positive_int,
                   help="default: the recipe's (zfnet: 4, the architectures; 16 adds learning "
                        "rate and dropout)")
    p.add_argument("--epochs", type=positive_int, help="epochs per trial (hyperband: the "
                                                       "maximum; default: the recipe's)")
    p.add_argument("--image-size", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--seeds", type=positive_int,
                   help="trainings per configuration, seeds 0..N-1 (default 2): the leaderboard "
                        "shows mean ± std and the verdict tests the differences")
    add_precision_arguments(p, default=None, help_default="the recipe's; auto for zfnet, "
                                                         "float32 for the CIFAR-sized studies")
    p.add_argument("--budget-params", type=positive_int, help="skip configurations over this many "
                                                     "trainable parameters")
    p.add_argument("--directory", default="runs/tune")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--strategy", default="default", choices=training.STRATEGIES)
    p.add_argument("--export", help="write the best model (the best configuration's best seed) "
                                    "as a SavedModel here")
    p.add_argument("--data-dir")
    p.add_argument("--render", metavar="REPORT_JSON",
                   help="no search: print a finished study's report.json as the docs' "
                        "Markdown table (command, machine, date, leaderboard, verdict)")
    args = p.parse_args(argv)
    if args.render:
        return print_rendered(p, args.render, search.markdown)
    if not args.recipe:
        p.error(f"give a recipe ({', '.join(recipes.RECIPES)}) or --render REPORT_JSON")
    warn_if_gpus_unused()
    try:
        cls = recipes.get(args.recipe)
        args.tuner = args.tuner or cls.default_tuner
        size = args.image_size or cls.image_size
        data = datasets.load(args.dataset, size, args.data_dir)
        print(f"{args.recipe}: {args.tuner} search on {data.name} ({data.num_train} training "
              f"images at {size}x{size}), {args.max_trials or cls.max_trials} trials of "
              f"{args.epochs or cls.epochs} epochs x {args.seeds or cls.seeds} seeds -> "
              f"{args.directory}/{args.recipe}", flush=True)
        report = search.run(cls, data, args.recipe, tuner=args.tuner,
                            max_trials=args.max_trials, epochs=args.epochs, image_size=size,
                            batch_size=args.batch_size, directory=args.directory,
                            overwrite=args.overwrite, strategy=args.strategy,
                            budget_params=args.budget_params, export_dir=args.export,
                            seeds=args.seeds, precision=args.precision)
    except ValueError as err:
        p.error(str(err))
    except search.SearchFailed as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 1
    if report is None:
        print("worker done")
        return 0
    print(f"\nLeaderboard ({args.recipe}), validation accuracy mean ± std over {report['seeds']} "
          "seeds:")
    print(f"{'trial':>6} {'configuration':40s} {'params':>11} {'MACs':>8} {'val acc':>15} "
          f"{'time':>6}")
    for r in report["trials"]:
        acc = r["status"][:15] if r.get("val_accuracy") is None else \
            f"{r['val_accuracy']:.4f} ± {r['val_accuracy_std']:.4f}"
        macs = analysis.human(r["macs"]) if r.get("macs") else "-"
        params = f"{r['params']:,}" if r.get("params") else "-"
        secs = f"{r['seconds']:.0f}s" if r.get("seconds") is not None else "-"
        print(f"{r['trial']:>6} {r['label'][:40]:40s} {params:>11} {macs:>8} {acc:>15} "
              f"{secs:>6}")
    print(f"\nbest: {report['best_label']}: test accuracy {report['best_test_accuracy']:.4f} "
          f"± {report['best_test_accuracy_std']:.4f} over its {report['seeds']} seeds (models "
          "trained in the search, chosen on validation)")
    print(report["verdict"])
    if report["unsettled"]:
        print(f"warning: still improving in the last epoch (validation accuracy up by more than "
              f"{search.UNSETTLED}): {'; '.join(report['unsettled'])}: raise --epochs")
    d = report["directory"]
    print(f"wrote {d}/results.csv, {d}/results.json, {d}/results.png, {d}/best/")
    if report.get("export"):
        print(f"exported {report['export']}")
    return 0

