"""What a search found: the ranked trials, how each hyperparameter goes with the score, plots, best_config.toml.

Written into the tuning directory by the chief (or the lone tuner)::

    trials.csv  best_config.toml  plots/score_by_trial.png  plots/score_vs_hyperparameters.png
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlapps import config as config_lib
from dlapps.errors import UserError
from dlapps.task import Task


@dataclass
class TuneResult:
    """What `tune` produced (on a worker, only `run_dir`, `objective` and `trials_run` are set)."""

    run_dir: Path
    objective: tuple[str, str]
    """(metric name, 'min' or 'max')."""
    replicas: int = 1
    """Replicas of the distribution strategy each trial trained on."""
    best_score: float | None = None
    best_hyperparameters: dict[str, Any] = field(default_factory=dict)
    best_config: Any = None
    """The task's Config with the best hyperparameters mapped onto its fields."""
    trials: list[dict[str, Any]] = field(default_factory=list)
    """Every trial, best first: trial, status, score, best_epoch, and its hyperparameter values."""
    trials_run: list[str] = field(default_factory=list)
    """Ids of the trials this process trained in this call (a worker's share, or all when alone)."""
    train_result: Any = None
    """The `training.RunResult` of `--train-best`, if asked for."""


def trial_rows(oracle, metric: str, direction: str) -> list[dict[str, Any]]:
    """Every trial of `oracle` as a row (best first; failed ones last)."""
    rows = []
    for trial_id in sorted(oracle.trials, key=_trial_order):
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        score = trial.score
        usable = trial.status == "COMPLETED" and score is not None and math.isfinite(score)
        row = {"trial": trial_id, "status": trial.status, metric: float(score) if usable else None,
               "best_epoch": (int(trial.best_step) + 1) if usable and trial.best_step is not None else None}
        row.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
        if "tuner/epochs" in values:
            row["budget_epochs"] = values["tuner/epochs"]
        rows.append(row)
    sign = 1 if direction == "min" else -1
    rows.sort(key=lambda r: (r[metric] is None, sign * r[metric] if r[metric] is not None else 0,
                             _trial_order(r["trial"])))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row[metric] is not None else None
    return rows


def _trial_order(trial_id: str) -> tuple[int, str]:
    """Trial ids are numbers whose zero-padding changes when a resumed search gets more trials."""
    return (int(trial_id) if trial_id.isdigit() else -1, trial_id)


def best_config(task: Task, cfg, hyperparameters: dict[str, Any]) -> tuple[Any, list[str]]:
    """(cfg with each hyperparameter named like a config field set to its value, the unmapped names)."""
    fields = config_lib.field_types(task.Config)
    updates, unmapped = {}, []
    for name, value in hyperparameters.items():
        if name.startswith("tuner/"):
            continue
        if name not in fields:
            unmapped.append(name)
            continue
        if isinstance(value, float):
            value = float(f"{value:.10g}")  # 0.15000000000000002 (a float step) reads 0.15
        try:
            updates[name] = config_lib.coerce(task.Config, name, value)
        except UserError:  # a whole float (hp.Float with a step) for an int field
            if not (isinstance(value, float) and value.is_integer()):
                raise
            updates[name] = config_lib.coerce(task.Config, name, int(value))
    return dataclasses.replace(cfg, **updates), unmapped


def importance(rows: list[dict[str, Any]], metric: str, space: dict[str, Any]) -> dict[str, float]:
    """How strongly each hyperparameter goes with the score over these trials, in [0, 1].

    Numbers: |Spearman rank correlation| (of log values for log-sampled ones); choices and booleans:
    the correlation ratio (share of the score variance explained by the groups). A few trials
    give a rough guide, not a measurement.
    """
    import numpy as np
    import pandas as pd

    done = [r for r in rows if r[metric] is not None]
    scores = np.array([r[metric] for r in done], dtype=float)
    out = {}
    if len(done) < 3 or np.ptp(scores) == 0:
        return out
    for name, hp in space.items():
        values = [r.get(name) for r in done]
        if any(v is None for v in values) or len({repr(v) for v in values}) < 2:
            continue
        if type(hp).__name__ in ("Int", "Float"):
            x = pd.Series(values, dtype=float)
            rho = x.corr(pd.Series(scores), method="spearman")
            out[name] = 0.0 if not math.isfinite(rho) else abs(float(rho))
        else:
            groups = pd.Series(scores).groupby([repr(v) for v in values])
            between = float(sum(len(g) * (g.mean() - scores.mean()) ** 2 for _, g in groups))
            out[name] = between / float(((scores - scores.mean()) ** 2).sum())
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def summarise(task: Task, cfg, oracle, result: TuneResult, run_dir: Path) -> None:
    """Ranked table (printed and trials.csv), plots, best_config.toml; fills `result`.

    Raises UserError when no trial completed.
    """
    metric, direction = result.objective
    rows = trial_rows(oracle, metric, direction)
    result.trials = rows
    completed = [r for r in rows if r[metric] is not None]
    space = {hp.name: hp for hp in oracle.hyperparameters.space if not hp.name.startswith("tuner/")}
    columns = ["rank", "trial", metric, "best_epoch"] + list(space) + (
        ["budget_epochs"] if any("budget_epochs" in r for r in rows) else []) + ["status"]
    with open(run_dir / "trials.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(format_table(rows, columns))
    if not completed:
        raise UserError(f"no trial completed (see {run_dir}/trial_*/ for their errors)")

    best = oracle.get_best_trials(1)[0]
    result.best_score = float(best.score)
    result.best_hyperparameters = {k: v for k, v in best.hyperparameters.values.items()
                                   if not k.startswith("tuner/")}
    result.best_config, unmapped = best_config(task, cfg, result.best_hyperparameters)
    weights = importance(rows, metric, space)
    written = plot_trials(rows, metric, direction, space, weights, run_dir / "plots", task.name)
    header = (f"Best configuration of `dlapps tune {task.name}` ({run_dir}):\n"
              f"trial {best.trial_id}, {metric} = {result.best_score:.6g} ({direction}imised), "
              f"best of {len(completed)} completed trial(s).\n"
              f"Retrain: dlapps train {task.name} --config {run_dir / 'best_config.toml'}")
    if unmapped:
        header += (f"\nTuned values without a config key (not applied by --config): "
                   + ", ".join(f"{k}={result.best_hyperparameters[k]!r}" for k in unmapped))
    (run_dir / "best_config.toml").write_text(config_lib.to_toml(result.best_config, header), encoding="utf-8")
    print(f"best {metric} = {result.best_score:.6g} (trial {best.trial_id}): "
          + ", ".join(f"{k}={_fmt(v)}" for k, v in result.best_hyperparameters.items()))
    if weights:
        print("hyperparameters most related to the score (rough, over these trials): "
              + ", ".join(f"{k} {v:.2f}" for k, v in list(weights.items())[:4]))
    print(f"wrote {run_dir / 'trials.csv'}, {run_dir / 'best_config.toml'}, "
          + ", ".join(str(p) for p in written))
    print(f"retrain with: dlapps train {task.name} --config {run_dir / 'best_config.toml'}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(rows: list[dict[str, Any]], columns: list[str], limit: int = 25) -> str:
    """A plain-text table of the first `limit` rows."""
    cells = [[_fmt(r.get(c)) if r.get(c) is not None else "-" for c in columns] for r in rows[:limit]]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more in trials.csv")
    return "\n".join(lines)


def plot_trials(rows, metric: str, direction: str, space: dict, weights: dict[str, float], plots_dir: Path,
                title: str) -> list[Path]:
    """Score by trial (with the best so far) and score against the most related hyperparameters.

    Writes score_by_trial.png and (when a hyperparameter varied) score_vs_hyperparameters.png
    into `plots_dir`; returns the written paths.
    """
    from dlapps import plots  # noqa: F401  (selects the Agg backend)
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    plots_dir.mkdir(parents=True, exist_ok=True)
    by_id = sorted((r for r in rows if r[metric] is not None), key=lambda r: _trial_order(r["trial"]))
    numbers = [_trial_order(r["trial"])[0] for r in by_id]
    scores = np.array([r[metric] for r in by_id], dtype=float)
    best_so_far = (np.minimum if direction == "min" else np.maximum).accumulate(scores)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(numbers, scores, "o", label="trial")
    ax.step(numbers, best_so_far, where="post", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=metric, title=f"{title}: {metric} by trial ({direction})")
    ax.legend()
    written = [plots.save_figure(fig, plots_dir / "score_by_trial.png")]

    names = list(weights)[:4] or [n for n in space if len({repr(r.get(n)) for r in by_id}) > 1][:4]
    if names:
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False, sharey=True)
        for ax, name in zip(axes[0], names):
            hp = space[name]
            values = [r.get(name) for r in by_id]
            if type(hp).__name__ in ("Int", "Float"):
                ax.scatter(values, scores)
                if getattr(hp, "sampling", "linear") == "log":
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # labelled minor ticks overlap
            else:
                labels = sorted({str(v) for v in values})
                ax.scatter([labels.index(str(v)) for v in values], scores)
                ax.set_xticks(range(len(labels)), labels, rotation=30)
            weight = f" ({weights[name]:.2f})" if name in weights else ""
            ax.set(xlabel=f"{name}{weight}")
        axes[0][0].set_ylabel(metric)
        fig.suptitle(f"{title}: {metric} against the hyperparameters most related to it")
        written.append(plots.save_figure(fig, plots_dir / "score_vs_hyperparameters.png"))
    return written
