"""Hyperparameter search (dlapps/tuning/): searches that find their best trial, resume, errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import socket

import pytest

import dlapps
from dlapps import cli, config, tuning
from dlapps.errors import UserError

# A second task for the search tests: the first of these that is registered.
OTHER_TASKS = ("spam", "mnist", "sentiment", "autoencoder")


def _other_task() -> str:
    for name in OTHER_TASKS:
        if name in dlapps.list_tasks():
            return name
    pytest.skip("no second cheap task registered yet")


def _smoke(name: str, **overrides):
    task = dlapps.get_task(name)
    cfg = config.resolve(task, "smoke")
    return task, dataclasses.replace(cfg, **overrides)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_trials(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- searches
@pytest.mark.parametrize("which", ["tabular", "other"])
def test_random_search_finds_a_best_config_equal_to_its_best_trial(which, tmp_path):
    name = "tabular" if which == "tabular" else _other_task()
    task, cfg = _smoke(name)
    if name != "tabular":  # only the search is checked here: a short schedule will do
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 3))
    else:  # the recipe's batch sizes (64-256) leave the small embedded table 3 steps per epoch
        cfg = dataclasses.replace(cfg, epochs=40)
    result = tuning.tune(task, cfg, max_trials=3, run_dir=tmp_path / "tune", train_best=name == "tabular",
                         quiet=True)

    metric, direction = result.objective
    assert (metric, direction) == task.objective
    scores = [row[metric] for row in result.trials]
    assert len(scores) == 3 and all(s is not None and math.isfinite(s) for s in scores)
    best = min(scores) if direction == "min" else max(scores)
    assert result.best_score == pytest.approx(best)
    assert result.trials[0][metric] == pytest.approx(best) and result.trials[0]["rank"] == 1

    # The table on disk is the same ranking; the plots exist.
    rows = _read_trials(tmp_path / "tune" / "trials.csv")
    assert [r["trial"] for r in rows] == [r["trial"] for r in result.trials]
    assert float(rows[0][metric]) == pytest.approx(best)
    for plot in ("score_by_trial.png", "score_vs_hyperparameters.png"):
        assert (tmp_path / "tune" / "plots" / plot).stat().st_size > 0

    # best_config.toml is the best trial's hyperparameters on the config, and reads back as is.
    fields = config.field_types(task.Config)
    for key, value in result.best_hyperparameters.items():
        if key in fields:
            assert getattr(result.best_config, key) == pytest.approx(value), key
    again = config.resolve(task, "demo", config_file=tmp_path / "tune" / "best_config.toml")
    assert again == result.best_config

    if name == "tabular":
        # The recipe's [search] table bounds the space (batch_size is tuned in fit) ...
        search = config.load_recipe("tabular")["search"]
        for row in result.trials:
            for name, spec in search.items():  # choices stay among their values, fixed ones fixed
                if spec["type"] == "choice":
                    assert row[name] in spec["values"], name
                elif spec["type"] == "fixed":
                    assert row[name] == spec["value"], name
            assert search["units"]["min"] <= row["units"] <= search["units"]["max"] and row["units"] % 64 == 0
        # ... and the best model learned: well below the error of predicting the mean (std of y).
        data = task.load_data(cfg)
        assert result.best_score < 0.85 * data.info["target_std"]
        # --train-best retrains exactly that configuration.
        run = result.train_result
        assert run.run_dir == tmp_path / "tune" / "best" and (run.run_dir / "model.keras").exists()
        trained = json.loads((run.run_dir / "config.json").read_text())["config"]
        assert config.coerce_all(task.Config, trained) == result.best_config
        assert math.isfinite(run.metrics["test"]["rmse"])


def test_resume_continues_without_repeating_trials_and_overwrite_restarts(tmp_path):
    task, cfg = _smoke("tabular", epochs=3)
    run_dir = tmp_path / "tune"
    first = tuning.tune(task, cfg, max_trials=2, run_dir=run_dir, quiet=True)
    assert sorted(first.trials_run) == ["0", "1"]
    values = {r["trial"]: {k: r[k] for k in ("units", "depth", "learning_rate")} for r in first.trials}

    resumed = tuning.tune(task, cfg, max_trials=3, run_dir=run_dir, quiet=True)
    assert resumed.trials_run == ["2"]  # only the new trial was trained
    assert sorted(r["trial"] for r in resumed.trials) == ["0", "1", "2"]
    for row in resumed.trials:
        if row["trial"] in values:
            assert {k: row[k] for k in ("units", "depth", "learning_rate")} == values[row["trial"]]
    # Nothing left to do: re-running the same search trains nothing.
    assert tuning.tune(task, cfg, max_trials=3, run_dir=run_dir, quiet=True).trials_run == []

    # Another config in the same directory is refused; --overwrite restarts.
    with pytest.raises(UserError, match="another config"):
        tuning.tune(task, dataclasses.replace(cfg, epochs=4), max_trials=3, run_dir=run_dir, quiet=True)
    # Without --run-dir, the same command continues the latest matching search under runs/.
    first = tuning.tune(task, cfg, max_trials=1, runs_root=tmp_path / "runs", quiet=True)
    again = tuning.tune(task, cfg, max_trials=2, runs_root=tmp_path / "runs", quiet=True)
    assert again.run_dir == first.run_dir and again.trials_run == ["1"]
    assert first.run_dir.parent == tmp_path / "runs" / "tabular" and first.run_dir.name.startswith("tune-")

    restarted = tuning.tune(task, cfg, max_trials=1, executions_per_trial=2, run_dir=run_dir, overwrite=True,
                            quiet=True)
    assert [r["trial"] for r in restarted.trials] == ["0"] and restarted.trials_run == ["0"]


@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_complete_on_smoke(kind, tmp_path):
    task, cfg = _smoke("tabular", epochs=4)
    result = tuning.tune(task, cfg, tuner=kind, max_trials=3, run_dir=tmp_path / "tune", quiet=True)
    metric = result.objective[0]
    assert len(result.trials) == 3 and all(r[metric] is not None for r in result.trials)
    assert result.best_score == pytest.approx(min(r[metric] for r in result.trials))
    if kind == "hyperband":  # successive halving: short budgets first
        assert all(1 <= r["budget_epochs"] <= 4 for r in result.trials)


def test_trials_run_under_the_requested_strategy(tmp_path):
    from dlapps.runtime import Runtime

    task, cfg = _smoke("tabular", epochs=2)
    # A batch size that splits the first batches evenly: Keras' MirroredStrategy build reduces the
    # first batch across replicas, which fails on a partial batch of odd size (reported to the lead).
    search = {**config.load_recipe("tabular")["search"], "batch_size": {"type": "fixed", "value": 16}}
    result = tuning.tune(task, cfg, runtime=Runtime(strategy="mirrored", devices="cpu:2"), max_trials=1,
                         run_dir=tmp_path / "tune", search=search, quiet=True)
    assert result.replicas == 2 and math.isfinite(result.best_score)


def test_objective_option_and_direction():
    task = dlapps.get_task("tabular")
    assert tuning.resolve_objective(task, None) == ("val_rmse", "min")
    assert tuning.resolve_objective(task, "val_mae") == ("val_mae", "min")
    assert tuning.resolve_objective(task, "val_custom:max") == ("val_custom", "max")
    with pytest.raises(UserError, match="minimise or maximise"):
        tuning.resolve_objective(task, "val_custom")


def test_importance_ranks_the_hyperparameter_that_drives_the_score():
    hp = tuning.parse_search({"lr": {"type": "float", "min": 1e-4, "max": 1e-1, "sampling": "log"},
                              "units": {"type": "int", "min": 1, "max": 9},
                              "opt": {"type": "choice", "values": ["a", "b"]}})
    space = {h.name: h for h in hp.space}
    rows = [{"score": lr * 10, "lr": lr, "units": u, "opt": o}
            for lr, u, o in [(1e-4, 5, "a"), (1e-3, 1, "b"), (1e-2, 9, "b"), (1e-1, 3, "a")]]
    weights = tuning.importance(rows, "score", space)
    assert next(iter(weights)) == "lr" and weights["lr"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- errors
def test_unknown_hyperparameter_in_search_is_a_clear_error(tmp_path):
    task, cfg = _smoke("tabular")
    with pytest.raises(UserError, match=r"unknown hyperparameter\(s\) unitz.*declares.*units"):
        tuning.tune(task, cfg, max_trials=1, run_dir=tmp_path / "t",
                    search={"unitz": {"type": "int", "min": 8, "max": 64}}, quiet=True)
    with pytest.raises(UserError, match="hp.Int, so its type cannot be 'float'"):
        tuning.tune(task, cfg, max_trials=1, run_dir=tmp_path / "t2",
                    search={"units": {"type": "float", "min": 8, "max": 64}}, quiet=True)


def test_a_search_that_fails_before_its_first_trial_leaves_no_folder(tmp_path):
    task, cfg = _smoke("tabular")
    with pytest.raises(UserError, match="unknown hyperparameter"):
        tuning.tune(task, cfg, max_trials=1, runs_root=tmp_path / "runs",
                    search={"unitz": {"type": "int", "min": 8, "max": 64}}, quiet=True)
    assert not (tmp_path / "runs").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    with pytest.raises(UserError, match="no tuning chief answered"):
        tuning.tune(task, cfg, run_dir=tmp_path / "kept" / "w", chief=f"127.0.0.1:{_free_port()}", worker="1",
                    chief_timeout=1, quiet=True)
    assert list((tmp_path / "kept").iterdir()) == []


@pytest.mark.parametrize("entry, message", [
    ({"type": "int", "min": 8}, "needs min and max"),
    ({"type": "float", "min": 0.0, "max": 1.0, "sampling": "log"}, "needs min > 0"),
    ({"type": "integer", "min": 1, "max": 2}, "unknown type 'integer'"),
    ({"type": "choice", "values": []}, "non-empty list"),
    ({"type": "int", "min": 1, "max": 8, "stp": 2}, "unexpected key"),
    (32, "expected a table"),
])
def test_malformed_search_entries(entry, message):
    with pytest.raises(UserError, match=message):
        tuning.parse_search({"units": entry})


def test_objective_the_task_does_not_log(tmp_path):
    task, cfg = _smoke("tabular")
    with pytest.raises(UserError, match="does not log it; choose one of .*val_rmse"):
        tuning.tune(task, cfg, max_trials=1, objective="val_accuracy", run_dir=tmp_path / "t", quiet=True)


def test_bad_budgets_and_cli_exit_code(tmp_path, capsys):
    task, cfg = _smoke("tabular")
    for kwargs, message in [({"max_trials": 0}, "--max-trials 0"), ({"executions_per_trial": 0}, "at least 1"),
                            ({"tuner": "grid"}, "--tuner 'grid'")]:
        with pytest.raises(UserError, match=message):
            tuning.tune(task, cfg, run_dir=tmp_path / "t", **kwargs)
    code = cli.main(["tune", "tabular", "--profile", "smoke", "--max-trials", "0", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--max-trials 0" in err and "Traceback" not in err


def test_worker_with_an_unreachable_chief_stops_after_a_bounded_wait(tmp_path):
    task, cfg = _smoke("tabular")
    address = f"127.0.0.1:{_free_port()}"  # nobody listens there
    with pytest.raises(UserError, match=f"no tuning chief answered at {address} within 1 s"):
        tuning.tune(task, cfg, max_trials=2, run_dir=tmp_path / "w", chief=address, worker="1",
                    chief_timeout=1, quiet=True)
    with pytest.raises(UserError, match="--worker ID needs --chief"):
        tuning.tune(task, cfg, run_dir=tmp_path / "w2", worker="1")
    with pytest.raises(UserError, match="expected HOST:PORT"):
        tuning.tune(task, cfg, run_dir=tmp_path / "w3", chief="localhost", worker="1")
    import os

    assert "KERASTUNER_TUNER_ID" not in os.environ  # the process environment is restored


# ----------------------------------------------------------------------------- what really ran (tiny task)
def _spy_tuner(monkeypatch) -> list:
    """The tuners `tune` makes, appended to the returned list (with their GP fits counted)."""
    from dlapps.tuning import hypermodel

    made, real = [], hypermodel.make_tuner

    def spy(*args, **kwargs):
        tuner = real(*args, **kwargs)
        tuner.gp_fits = 0
        gpr = getattr(tuner.oracle, "gpr", None)
        if gpr is not None:
            fit = gpr.fit

            def counted(*a, **k):
                tuner.gp_fits += 1
                return fit(*a, **k)
            gpr.fit = counted
        made.append(tuner)
        return tuner
    monkeypatch.setattr(hypermodel, "make_tuner", spy)
    return made


def test_bayesian_tuner_fits_a_gaussian_process_after_its_initial_points(tmp_path, monkeypatch):
    import keras_tuner
    from tiny_task import RECIPE, TINY, TinyConfig

    made = _spy_tuner(monkeypatch)
    result = tuning.tune(TINY, TinyConfig(), tuner="bayesian", max_trials=4, run_dir=tmp_path / "tune",
                         search=RECIPE["search"], quiet=True)
    (tuner,) = made
    assert type(tuner.oracle) is keras_tuner.oracles.BayesianOptimizationOracle
    assert tuner.oracle.num_initial_points == 2  # a third of the budget, at least 2 (KerasTuner: 3 x dims)
    assert tuner.oracle.max_trials == 4
    assert len(result.trials) == 4
    assert tuner.gp_fits == 2  # trials 3 and 4 were proposed by the Gaussian process


def test_executions_per_trial_are_averaged(tmp_path, monkeypatch):
    import numpy as np
    from tiny_task import RECIPE, TINY, TinyConfig

    from dlapps.tuning.hypermodel import TaskHyperModel

    bests, real_fit = [], TaskHyperModel.fit

    def fit(self, hp, model, *args, **kwargs):
        history = real_fit(self, hp, model, *args, **kwargs)
        bests.append(min(history.history["val_loss"]))
        return history
    monkeypatch.setattr(TaskHyperModel, "fit", fit)
    result = tuning.tune(TINY, TinyConfig(), max_trials=2, executions_per_trial=3, run_dir=tmp_path / "tune",
                         search=RECIPE["search"], quiet=True)
    assert len(bests) == 6  # 2 trials x 3 executions, run one trial after the other
    scores = {row["trial"]: row["val_loss"] for row in result.trials}
    for trial in ("0", "1"):
        runs_of_trial = bests[3 * int(trial): 3 * int(trial) + 3]
        assert len(set(runs_of_trial)) == 3  # fresh weights each time: different runs ...
        assert scores[trial] == pytest.approx(np.mean(runs_of_trial), rel=1e-6)  # ... whose mean is the score


def test_tune_command_line_reaches_the_search(tmp_path, monkeypatch, capsys):
    """`dlapps tune` with --tuner, --objective, --executions-per-trial and --train-best, on the tiny task."""
    import tiny_task

    tiny_task.register(monkeypatch)
    made = _spy_tuner(monkeypatch)
    assert cli.main(["tune", "tiny", "--profile", "smoke", "--tuner", "bayesian", "--max-trials", "2",
                     "--executions-per-trial", "2", "--objective", "loss:min", "--train-best",
                     "--run-dir", str(tmp_path / "tune"), "--quiet"]) == 0
    (tuner,) = made
    assert type(tuner.oracle).__name__ == "BayesianOptimizationOracle"
    assert tuner.executions_per_trial == 2
    assert tuner.oracle.objective.name == "loss" and tuner.oracle.objective.direction == "min"
    manifest = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert manifest["tuner"] == "bayesian" and manifest["objective"] == "loss"
    rows = _read_trials(tmp_path / "tune" / "trials.csv")
    assert len(rows) == 2 and float(rows[0]["loss"]) <= float(rows[1]["loss"])
    best = tmp_path / "tune" / "best"
    assert (best / "model.keras").exists() and (best / "metrics.json").exists()
    trained = json.loads((best / "config.json").read_text())["config"]
    assert trained["units"] == int(rows[0]["units"])  # the best trial's value, retrained
