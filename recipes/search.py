"""Run a recipe's search with keras-tuner, then report: leaderboard (mean ± std over seeds),
CSV/JSON, a plot with error bars, a verdict (Welch's t-test), the best configuration's test
accuracy and its best seed's model, optionally exported for TF Serving.

Distributed search is keras-tuner's own: with ``KERASTUNER_TUNER_ID`` (chief, tuner0, ...),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` set, the chief serves the oracle and
the workers run trials; rerunning without ``overwrite`` resumes the same search.
"""
import contextlib
import csv
import json
import os
import time
import warnings

import keras_tuner as kt
import numpy as np

from keras_classics import provenance
from keras_classics.training.checkpoints import differences, lock
from keras_classics.training.outputs import atomic_write

TUNERS = {"random": kt.RandomSearch, "hyperband": kt.Hyperband,
          "bayesian": kt.BayesianOptimization, "grid": kt.GridSearch}


class SearchFailed(RuntimeError):
    """The search ran but no configuration completed."""


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
                  f"± {result.get('val_accuracy_std', float('nan')):.4f} over "
                  f"{result.get('seeds', 1)} seeds ({secs:.0f} s)", flush=True)
        else:
            print(f"[trial {trial.trial_id}, {done} run here] {label}: {trial.status.lower()} "
                  f"({(trial.message or '').strip().splitlines()[-1:] or ''})", flush=True)


@contextlib.contextmanager
def atomic_tuner_files():
    """keras-tuner writes its state (``oracle.json``, each ``trial.json``) in place: a kill
    during a write leaves an empty file, and the rerun that should resume the search fails to
    parse it ("Expecting value: line 1 column 1"). While a search runs here, those files are
    written whole or not at all: to a temporary file, renamed into place (local paths; remote
    ones, ``gs://...``, as keras-tuner does)."""
    from keras_tuner.src import utils as kt_utils

    original = kt_utils.save_json

    def save_json(path, obj):
        if "://" in str(path):
            return original(path, obj)
        text = json.dumps(obj)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        return text

    kt_utils.save_json = save_json
    try:
        yield
    finally:
        kt_utils.save_json = original


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
    """One dict per trial, best first: hyperparameters, parameters, MACs, accuracy (mean and
    standard deviation over seeds, and each seed's), time."""
    hm = tuner.hypermodel
    rows = []
    for trial in tuner.oracle.trials.values():
        values = dict(trial.hyperparameters.values)
        row = {"trial": trial.trial_id, "status": trial.status.lower(),
               "label": hm.label(values), **values, **hm.columns(values)}
        try:
            row["params"], row["macs"] = hm.measure(trial.hyperparameters)
        except ValueError as err:
            row["params"] = row["macs"] = None
            row["status"] = f"invalid: {err}"
        if trial.status == "COMPLETED":
            metrics = trial.metrics.metrics
            row.update({name: trial.metrics.get_best_value(name) for name in RESULT_METRICS
                        if name in metrics})
            row.update({name: trial.metrics.get_best_value(name) for name in sorted(metrics)
                        if "_seed" in name})
            row["seeds"] = int(row.get("seeds") or 1)
        rows.append(row)
    # ties (equal mean accuracy over the seeds) in trial order, the same on every rerun
    rows.sort(key=lambda r: (-(r.get("val_accuracy") or -1), str(r.get("trial")).zfill(12)))
    return rows


RESULT_METRICS = ("val_accuracy", "val_accuracy_std", "test_accuracy", "test_accuracy_std",
                  "seeds", "seconds", "last_epoch_rise")
UNSETTLED = 0.02  # a validation accuracy still rising by more than this in the last epoch


def seed_values(row, key="val_accuracy"):
    """Each seed's ``key`` of a leaderboard row, in seed order."""
    return [row[f"{key}_seed{i}"] for i in range(int(row.get("seeds") or 0))
            if f"{key}_seed{i}" in row]


def compare(a, b, alpha=0.05):
    """Does sample ``a`` (one value per seed) beat sample ``b``? Welch's two-sample t-test,
    one-sided (mean of a > mean of b), at level ``alpha``: returns (beats, p). Fewer than two
    seeds on either side, or no spread on both (seeds that agree to the last validation
    image), cannot be tested: (False, nan)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()) or \
            (a.std() == 0 and b.std() == 0):  # no spread on either side: t is undefined
        return False, float("nan")
    with warnings.catch_warnings():  # scipy warns when one side has (almost) no spread
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return bool(p < alpha), p


def verdict(rows, alpha=0.05):
    """One line: does the best configuration (first row) beat each other completed one?"""
    done = [r for r in rows if r.get("val_accuracy") is not None]
    if len(done) < 2:
        return "verdict: nothing to compare (fewer than two completed configurations)"
    best, others = done[0], done[1:]
    a = seed_values(best)
    if len(a) < 2:
        return (f"verdict: cannot tell: {len(a)} seed per configuration; a test needs at "
                "least two (--seeds 2)")
    beaten, close = [], []
    for row in others:
        beats, p = compare(a, seed_values(row), alpha)
        (beaten if beats else close).append(
            f"{row['label']} (p={p:.2g})" if p == p else
            f"{row['label']} (untestable: no spread in either)")
    test = (f"Welch's one-sided t-test on validation accuracy over {len(a)} seeds, "
            f"p < {alpha}")
    if not beaten:
        return (f"verdict: the data cannot separate the best, {best['label']}, from any other "
                f"configuration: {', '.join(close)} [{test}]")
    line = f"verdict: {best['label']} beats {', '.join(beaten)}"
    if close:
        line += f"; cannot be separated from {', '.join(close)}"
    return line + f" [{test}]"


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
    """Validation accuracy, mean over seeds with ±1 standard deviation error bars.
    wide_resnet: against parameters, depth by marker and width by colour; other recipes: per
    configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("val_accuracy") is not None]
    std = [r.get("val_accuracy_std") or 0.0 for r in done]
    seeds = max((int(r.get("seeds") or 1) for r in done), default=1)
    fig, ax = plt.subplots(figsize=(9, 5))
    if recipe == "wide_resnet":
        markers = dict(zip(sorted({r["depth"] for r in done}), "osD^v<>p"))
        widths = sorted({r["width"] for r in done})
        colors = dict(zip(widths, plt.cm.viridis([i / max(len(widths) - 1, 1)
                                                  for i in range(len(widths))])))
        for r, e in zip(done, std):
            ax.errorbar(r["params"] / 1e6, r["val_accuracy"], yerr=e, fmt=markers[r["depth"]],
                        color=colors[r["width"]], ms=9, mec="k", capsize=4)
            ax.annotate(r["label"], (r["params"] / 1e6, r["val_accuracy"]), fontsize=8,
                        xytext=(6, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (M, log)")
        ax.set_ylabel(f"validation accuracy (mean ± std over {seeds} seeds)")
        for d, m in markers.items():
            ax.scatter([], [], marker=m, color="gray", label=f"depth {d}")
        for w, c in colors.items():
            ax.scatter([], [], marker="s", color=c, label=f"width {w}")
        ax.legend(fontsize=8)
        ax.set_title("Wide ResNet: width against depth")
    else:
        order = sorted(range(len(done)), key=lambda i: done[i]["label"])
        done, std = [done[i] for i in order], [std[i] for i in order]
        ax.barh([r["label"] for r in done], [r["val_accuracy"] for r in done], xerr=std,
                color="tab:blue", capsize=4)
        for i, (r, e) in enumerate(zip(done, std)):
            ax.text(min(r["val_accuracy"] + e, 1.0), i,
                    f" {r['val_accuracy']:.3f} ± {e:.3f}", va="center", fontsize=8)
        ax.set_xlabel(f"validation accuracy (mean ± std over {seeds} seeds)")
        ax.set_title(f"{recipe}: accuracy per configuration")
        ax.set_xlim(0, 1.2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def best_model(tuner, rows, directory):
    """The best configuration's model: its best seed's run (trained in the search) copied to
    ``directory/best``; where that run is not on this machine (a worker elsewhere ran the
    trial), the configuration is trained again with that seed. Returns (hyperparameters, that
    run's summary, the keras model if it was trained here, else None: ``best/model.keras``
    is loaded only where it is needed)."""
    import shutil

    best = rows[0]
    trial = tuner.oracle.get_trial(best["trial"])
    seed = int(np.argmax(seed_values(best)))
    source = os.path.join(tuner.get_trial_dir(best["trial"]), f"seed{seed}")
    target = os.path.join(directory, "best")
    shutil.rmtree(target, ignore_errors=True)
    if os.path.exists(os.path.join(source, "model.keras")):
        shutil.copytree(source, target,
                        ignore=shutil.ignore_patterns("checkpoints", "logs", ".lock"))
        with open(os.path.join(target, "summary.json")) as f:
            return trial.hyperparameters, json.load(f), None
    result = tuner.hypermodel.train_seed(trial.hyperparameters, seed, target, overwrite=True)
    return trial.hyperparameters, result.summary, result.model


def run(recipe_cls, data, recipe, tuner="random", max_trials=None, epochs=None,
        image_size=None, batch_size=None, directory="runs/tune", overwrite=False,
        strategy="default", budget_params=None, export_dir=None, seeds=None, precision=None,
        command=None):
    """The whole job behind ``keras-classics tune``; returns the report dict (None on a
    worker). ``report.json`` holds it with the leaderboard and the run's ``command``
    (default: this process's command line), machine and date: ``markdown(report)`` renders
    it."""
    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise ValueError(f"max_trials must be a positive int, got {max_trials!r}")
    hm = recipe_cls(data, image_size=image_size, epochs=epochs, batch_size=batch_size,
                    strategy=strategy, budget_params=budget_params, seeds=seeds,
                    precision=precision)
    if tuner not in TUNERS:
        raise ValueError(f"unknown tuner {tuner!r}; allowed: {', '.join(TUNERS)}")
    settings = {"recipe": recipe, "dataset": data.name, "num_train": data.num_train,
                "tuner": tuner, "max_trials": max_trials or hm.max_trials, "epochs": hm.epochs,
                "image_size": hm.image_size, "batch_size": hm.batch_size,
                "budget_params": hm.budget_params, "strategy": strategy, "seeds": hm.seeds,
                "precision": hm.precision, "warmup_epochs": hm.warmup_epochs}
    project = os.path.join(directory, recipe)
    if is_worker():  # the chief's oracle hands out trials; the chief checked the settings
        with atomic_tuner_files():
            make_tuner(tuner, hm, directory, recipe, settings["max_trials"],
                       epochs=hm.epochs).search(verbose=0)
        return None
    os.makedirs(directory, exist_ok=True)
    held = lock(project, os.path.join(directory, f".{recipe}.lock"), "search", "--directory")
    try:
        with atomic_tuner_files():
            return _search(hm, data, recipe, tuner, settings, directory, project, overwrite,
                           export_dir, command)
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


def _search(hm, data, recipe, tuner, settings, directory, project, overwrite, export_dir,
            command=None):
    _check_settings(project, settings, overwrite)
    t = make_tuner(tuner, hm, directory, recipe, settings["max_trials"],
                   overwrite=overwrite, epochs=hm.epochs)
    os.makedirs(project, exist_ok=True)
    # whole or not at all: a rerun reads it
    atomic_write(os.path.join(project, "settings.json"), json.dumps(settings, indent=1))
    if overwrite:  # keras-tuner removed the search; our copy of its best goes with it
        import shutil

        shutil.rmtree(os.path.join(project, "best"), ignore_errors=True)
    start = time.perf_counter()
    t.search(verbose=0)
    rows = leaderboard(t)
    write_results(rows, project)
    if not any(r.get("val_accuracy") is not None for r in rows):
        raise SearchFailed(f"no trial of {project} completed: see the messages above")
    plot(rows, recipe, os.path.join(project, "results.png"))
    best, summary, model = best_model(t, rows, project)
    top = rows[0]
    report = {"recipe": recipe, "tuner": tuner, "trials": rows, "best": best.values,
              "best_label": hm.label(best.values), "seeds": hm.seeds,
              "best_test_accuracy": top["test_accuracy"],
              "best_test_accuracy_std": top["test_accuracy_std"],
              "best_val_accuracy": top["val_accuracy"],
              "best_val_accuracy_std": top["val_accuracy_std"],
              "best_model_test_accuracy": summary["test_accuracy"],
              "verdict": verdict(rows),
              "unsettled": [r["label"] for r in rows
                            if (r.get("last_epoch_rise") or 0) > UNSETTLED],
              "search_seconds": time.perf_counter() - start, "directory": project,
              "settings": settings, "run": provenance.run_record(command)}
    if export_dir:
        import keras

        from keras_classics import export_saved_model

        if model is None:
            model = keras.saving.load_model(os.path.join(project, "best", "model.keras"))
        report["export"] = export_saved_model(model, export_dir, labels=data.class_names)
    atomic_write(os.path.join(project, "report.json"),
                 json.dumps(report, indent=1, default=str))
    return report


def markdown(report):
    """A study's results as the docs show them: the command, machine and date, the
    leaderboard (parameters, multiply-adds, validation and test accuracy as mean ± std over
    the seeds, training time), the best configuration's test accuracy, the verdict and the
    warning about configurations still improving. ``report``: a ``report.json``."""
    seeds = report["seeds"]
    lines = [provenance.heading(report.get("run")), "",
             f"| configuration | params | MACs | validation acc. ({seeds} seeds) | "
             f"test acc. ({seeds} seeds) | train time |", "|---|---|---|---|---|---|"]
    for r in report["trials"]:
        if r.get("val_accuracy") is None:
            lines.append(f"| {r['label']} | | | {r['status']} | | |")
            continue
        params = f"{r['params']:,}" if r.get("params") else "-"
        macs = f"{r['macs'] / 1e6:.1f}M" if r.get("macs") else "-"
        lines.append(f"| {r['label']} | {params} | {macs} | {r['val_accuracy']:.4f} ± "
                     f"{r['val_accuracy_std']:.4f} | {r['test_accuracy']:.4f} ± "
                     f"{r['test_accuracy_std']:.4f} | {r['seconds']:.0f} s |")
    lines += ["", f"Best: {report['best_label']}, test accuracy "
                  f"{report['best_test_accuracy']:.4f} ± {report['best_test_accuracy_std']:.4f} "
                  f"over its {seeds} seeds (models trained in the search, chosen on "
                  "validation). Search time "
                  f"{report['search_seconds'] / 60:.1f} min.", "", f"> {report['verdict']}"]
    if report["unsettled"]:
        lines += [">", f"> warning: still improving in the last epoch (validation accuracy up "
                       f"by more than {UNSETTLED}): {'; '.join(report['unsettled'])}: raise "
                       "--epochs"]
    return "\n".join(lines)
