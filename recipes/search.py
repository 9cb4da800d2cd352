"""Run a recipe's search with keras-tuner, then report: leaderboard, CSV/JSON, a plot,
the best configuration retrained and tested, optionally exported for TF Serving.

Distributed search is keras-tuner's own: with ``KERASTUNER_TUNER_ID`` (chief, tuner0, ...),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` set, the chief serves the oracle and
the workers run trials; rerunning without ``overwrite`` resumes the same search.
"""
import csv
import json
import os
import time

import keras_tuner as kt

from keras_classics import training
from keras_classics.training.checkpoints import differences, lock

TUNERS = {"random": kt.RandomSearch, "hyperband": kt.Hyperband,
          "bayesian": kt.BayesianOptimization, "grid": kt.GridSearch}


class _Reporting:
    """Mixed into a keras-tuner Tuner: a directory per trial for our training loop, and one
    progress line per finished trial."""

    def run_trial(self, trial, *args, **kwargs):
        kwargs["trial_dir"] = self.get_trial_dir(trial.trial_id)
        results = super().run_trial(trial, *args, **kwargs)
        self._last_result = results[-1] if isinstance(results, list) else results
        return results

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._finished = done = getattr(self, "_finished", 0) + 1  # in this process
        label = self.hypermodel.label(trial.hyperparameters.values)
        if trial.status == "COMPLETED":  # a worker's trial carries no metrics: ours do
            result = getattr(self, "_last_result", None) or {}
            acc, secs = result.get("val_accuracy", float("nan")), result.get("seconds", 0)
            print(f"[trial {trial.trial_id}, {done} run here] {label}: val_accuracy {acc:.4f} "
                  f"({secs:.0f} s)", flush=True)
        else:
            print(f"[trial {trial.trial_id}, {done} run here] {label}: {trial.status.lower()} "
                  f"({(trial.message or '').strip().splitlines()[-1:] or ''})", flush=True)


def make_tuner(kind, hypermodel, directory, project, max_trials, overwrite=False,
               epochs=None, seed=0):
    if kind not in TUNERS:
        raise ValueError(f"unknown tuner {kind!r}; allowed: {', '.join(TUNERS)}")
    base = TUNERS[kind]
    cls = type(f"{base.__name__}Classic", (_Reporting, base), {})
    common = dict(hypermodel=hypermodel, objective=kt.Objective("val_accuracy", "max"),
                  directory=directory, project_name=project, overwrite=overwrite, seed=seed,
                  max_consecutive_failed_trials=10_000)
    if kind == "hyperband":
        return cls(max_epochs=epochs or hypermodel.epochs, factor=3, **common)
    return cls(max_trials=max_trials, **common)


def is_worker():
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"


def leaderboard(tuner):
    """One dict per trial, best first: hyperparameters, parameters, MACs, accuracy, time."""
    hm = tuner.hypermodel
    rows = []
    for trial in tuner.oracle.trials.values():
        values = dict(trial.hyperparameters.values)
        row = {"trial": trial.trial_id, "status": trial.status.lower(),
               "label": hm.label(values), **values}
        try:
            row["params"], row["macs"] = hm.measure(trial.hyperparameters)
        except ValueError as err:
            row["params"] = row["macs"] = None
            row["status"] = f"invalid: {err}"
        if trial.status == "COMPLETED":
            row["val_accuracy"] = trial.metrics.get_best_value("val_accuracy")
            row["seconds"] = trial.metrics.get_best_value("seconds")
        rows.append(row)
    rows.sort(key=lambda r: -(r.get("val_accuracy") or -1))
    return rows


def write_results(rows, directory):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    for name, text in (("results.json", json.dumps(rows, indent=1, default=str)),
                       ("results.csv", None)):
        path = os.path.join(directory, name)
        with open(path + ".tmp", "w", newline="") as f:
            if text is not None:
                f.write(text)
            else:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(rows)
        os.replace(path + ".tmp", path)


def plot(rows, recipe, path):
    """wide_resnet: accuracy against parameters, depth by marker and width by colour;
    other recipes: accuracy per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("val_accuracy") is not None]
    fig, ax = plt.subplots(figsize=(9, 5))
    if recipe == "wide_resnet":
        markers = dict(zip(sorted({r["depth"] for r in done}), "osD^v<>p"))
        widths = sorted({r["width"] for r in done})
        colors = dict(zip(widths, plt.cm.viridis([i / max(len(widths) - 1, 1)
                                                  for i in range(len(widths))])))
        for r in done:
            ax.scatter(r["params"] / 1e6, r["val_accuracy"], marker=markers[r["depth"]],
                       color=colors[r["width"]], s=90, edgecolors="k")
            ax.annotate(r["label"], (r["params"] / 1e6, r["val_accuracy"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (M, log)")
        for d, m in markers.items():
            ax.scatter([], [], marker=m, color="gray", label=f"depth {d}")
        for w, c in colors.items():
            ax.scatter([], [], marker="s", color=c, label=f"width {w}")
        ax.legend(fontsize=8)
        ax.set_title("Wide ResNet: width against depth")
    else:
        done = sorted(done, key=lambda r: r["label"])
        ax.barh([r["label"] for r in done], [r["val_accuracy"] for r in done], color="tab:blue")
        for i, r in enumerate(done):
            ax.text(r["val_accuracy"], i, f" {r['val_accuracy']:.3f}", va="center", fontsize=8)
        ax.set_xlabel("validation accuracy")
        ax.set_title(f"{recipe}: accuracy per configuration")
        ax.set_xlim(0, 1.08)
    ax.set_ylabel("validation accuracy" if recipe == "wide_resnet" else "")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def retrain_best(tuner, directory):
    """Train the best configuration again (same budget, from scratch: the best may have
    changed since a previous run) and evaluate it on the test split."""
    hm = tuner.hypermodel
    best = tuner.get_best_hyperparameters(1)[0]
    _, _, overrides = hm.space(best)
    result = training.train(
        data=hm.data, build_model=lambda c, s: hm.make(best, c, s), epochs=hm.epochs,
        batch_size=hm.batch_size, image_size=hm.image_size,
        recipe=overrides.pop("recipe", hm.recipe), strategy=hm.strategy,
        output=os.path.join(directory, "best"), verbose=0, overwrite=True, **overrides)
    return best, result


def run(recipe_cls, data, recipe, tuner="random", max_trials=None, epochs=None,
        image_size=None, batch_size=None, directory="runs/tune", overwrite=False,
        strategy="default", budget_params=None, export_dir=None):
    """The whole job behind ``tools/tune.py``; returns the report dict (None on a worker)."""
    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise ValueError(f"max_trials must be a positive int, got {max_trials!r}")
    hm = recipe_cls(data, image_size=image_size, epochs=epochs, batch_size=batch_size,
                    strategy=strategy, budget_params=budget_params)
    if tuner not in TUNERS:
        raise ValueError(f"unknown tuner {tuner!r}; allowed: {', '.join(TUNERS)}")
    settings = {"recipe": recipe, "dataset": data.name, "num_train": data.num_train,
                "tuner": tuner, "max_trials": max_trials or hm.max_trials, "epochs": hm.epochs,
                "image_size": hm.image_size, "batch_size": hm.batch_size,
                "budget_params": hm.budget_params, "strategy": strategy}
    project = os.path.join(directory, recipe)
    if is_worker():  # the chief's oracle hands out trials; the chief checked the settings
        make_tuner(tuner, hm, directory, recipe, settings["max_trials"],
                   epochs=hm.epochs).search(verbose=0)
        return None
    os.makedirs(directory, exist_ok=True)
    held = lock(project, os.path.join(directory, f".{recipe}.lock"), "search", "--directory")
    try:
        return _search(hm, data, recipe, tuner, settings, directory, project, overwrite,
                       export_dir)
    finally:
        held.release()


def _check_settings(project, settings, overwrite):
    """Refuse to resume a search that ran with other settings (unless ``overwrite``)."""
    path = os.path.join(project, "settings.json")
    if overwrite or not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    diff = differences(saved, json.loads(json.dumps(settings)), "in settings.json")
    if diff:
        raise ValueError(f"{project} holds a search with other settings:\n  " +
                         "\n  ".join(diff) + "\nrerun with the same settings to resume it, "
                         "or pass --overwrite (or another --directory) to start afresh")


def _search(hm, data, recipe, tuner, settings, directory, project, overwrite, export_dir):
    _check_settings(project, settings, overwrite)
    t = make_tuner(tuner, hm, directory, recipe, settings["max_trials"],
                   overwrite=overwrite, epochs=hm.epochs)
    os.makedirs(project, exist_ok=True)
    with open(os.path.join(project, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)
    if overwrite:  # keras-tuner removed the search; our retrained best goes with it
        import shutil

        shutil.rmtree(os.path.join(project, "best"), ignore_errors=True)
    start = time.perf_counter()
    t.search(verbose=0)
    rows = leaderboard(t)
    write_results(rows, project)
    plot(rows, recipe, os.path.join(project, "results.png"))
    best, result = retrain_best(t, project)
    summary = result.summary
    report = {"recipe": recipe, "tuner": tuner, "trials": rows, "best": best.values,
              "best_label": hm.label(best.values),
              "best_test_accuracy": summary["test_accuracy"],
              "best_val_accuracy": summary["best_val_accuracy"],
              "search_seconds": time.perf_counter() - start, "directory": project}
    if export_dir:
        from keras_classics import export_saved_model

        report["export"] = export_saved_model(result.model, export_dir,
                                              labels=data.class_names)
    with open(os.path.join(project, "report.json"), "w") as f:
        json.dump({k: v for k, v in report.items() if k != "trials"}, f, indent=1,
                  default=str)
    return report
