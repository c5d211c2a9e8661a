"""A task as a KerasTuner HyperModel, and the tuner that searches it.

`TaskHyperModel.build` is the task's own `build_model(cfg, info, hp)`; `fit` batches the data
with the trial's batch size (`data.pipeline`) and trains through `training.fit_phases` with the
callbacks of every run (`training.fit_callbacks`): a trial trains as `dlapps train` does, less the
run directory. Only what is tuned changes (keras-io `guides/keras_tuner/getting_started.py`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import keras_tuner

from dlapps import training
from dlapps.data import pipeline
from dlapps.task import Data, Phase, Task

HYPERBAND_FACTOR = 3


class TaskHyperModel(keras_tuner.HyperModel):
    """A task as a KerasTuner HyperModel: `build` is the task's build_model, `fit` batches the data.

    The data are loaded once; each trial batches them with its own batch size (a tunable
    `batch_size` when the [search] table declares one). `replicas` is the strategy's replica
    count (global batch = batch size x replicas); `objective` is (metric, 'min' or 'max').
    """

    def __init__(self, task: Task, cfg, data: Data, replicas: int, objective: tuple[str, str],
                 tune_batch_size: bool, verbose: int, jit: bool = False):
        super().__init__(name=task.name, tunable=True)
        self.task, self.cfg, self.data, self.replicas = task, cfg, data, replicas
        self.objective, self.tune_batch_size, self.verbose, self.jit = objective, tune_batch_size, verbose, jit

    def batch_size(self, hp) -> int:
        """The per-replica batch size of this trial."""
        if self.tune_batch_size and hp is not None and "batch_size" in hp.values:
            return int(hp.values["batch_size"])
        return self.cfg.batch_size

    def trial_config(self, hp):
        """The task's config with this trial's batch size."""
        return dataclasses.replace(self.cfg, batch_size=self.batch_size(hp))

    def trial_data(self, hp) -> Data:
        """The data, their info holding this trial's steps_per_epoch and global_batch_size."""
        return pipeline.with_batch_facts(self.data, self.batch_size(hp) * self.replicas)

    def build(self, hp):
        """The task's model for the hyperparameters `hp` (compiled by build_model)."""
        return self.task.build_model(self.trial_config(hp), self.trial_data(hp).info, hp)

    def fit(self, hp, model, *args, callbacks=(), epochs: int | None = None, initial_epoch: int = 0,
            **kwargs):
        """Train one trial over the task's phases; returns a `keras.callbacks.History` of all of them.

        Hyperband passes a budget: `epochs` (the last epoch) and `initial_epoch` (where a trial
        continued from another's checkpoint starts); that becomes one phase from `initial_epoch`
        to `epochs`, as `model.fit` reads them. `callbacks` (KerasTuner's own) run before the
        callbacks of every fit; other keyword arguments go to `model.fit`. `search` passes no
        positional data (`args`): the data are the task's.
        """
        cfg = self.trial_config(hp)
        self.task.before_fit(model, self.data, cfg)
        train, val = pipeline.fit_datasets(self.data, cfg, cfg.batch_size * self.replicas)
        monitor, mode = self.objective
        callbacks = list(callbacks) + training.fit_callbacks(cfg, monitor, mode, restore_best_weights=False)
        phases = self.task.phases(cfg) if epochs is None else [Phase("train", epochs - initial_epoch)]
        verbose = kwargs.pop("verbose", self.verbose)
        values = training.fit_phases(model, train, val, phases, cfg, callbacks, verbose=verbose,
                                     initial_epoch=initial_epoch, jit=self.jit, **kwargs)
        history = keras.callbacks.History()
        # KerasTuner averages every entry of the best epoch: numbers only (no phase names).
        history.history = {key: value for key, value in values.items() if key != "phase"}
        return history


def logged_metrics(model, data: Data) -> list[str]:
    """The names `fit` logs for `model` (training and val_ ones), from one evaluation step."""
    x, y = next(iter(pipeline.batched(data.val.take(2), 2)))
    try:
        names = list(model.test_on_batch(x, y, return_dict=True))
    except Exception:  # a custom test_step that needs more than one batch: fall back to compile info
        names = [n for n in model.metrics_names if n != "compile_metrics"]
    return sorted(names + [f"val_{n}" for n in names])


def make_tuner(kind: str, hypermodel: TaskHyperModel, objective, max_trials: int, executions_per_trial: int,
               hyperparameters, run_dir: Path, strategy, seed: int, epochs: int):
    """The KerasTuner tuner of `kind` ('random', 'bayesian' or 'hyperband') over `run_dir`.

    The tuner remembers the ids of the trials this process trained (`trials_run`) and calls
    `on_trial_done(trial)` after each. `strategy` is None for one replica; `epochs` is
    Hyperband's longest budget (at least HYPERBAND_FACTOR).
    """
    base = {"random": keras_tuner.RandomSearch, "bayesian": keras_tuner.BayesianOptimization,
            "hyperband": keras_tuner.Hyperband}[kind]

    class Tuner(base):
        trials_run: list[str]
        on_trial_done = None

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.trials_run.append(trial.trial_id)
            if self.on_trial_done is not None:
                self.on_trial_done(trial)

    common = dict(hypermodel=hypermodel, objective=objective, hyperparameters=hyperparameters,
                  tune_new_entries=True, allow_new_entries=True, seed=seed,
                  executions_per_trial=executions_per_trial, distribution_strategy=strategy,
                  directory=str(run_dir.parent), project_name=run_dir.name,
                  overwrite=False)  # `tune` already cleared it for --overwrite (never a worker's)
    if kind == "random":
        tuner = Tuner(max_trials=max_trials, **common)
    elif kind == "bayesian":
        # KerasTuner's default is 3 random points per dimension, i.e. no Bayesian step at all in a
        # short search: a third of the budget (at least 2) explores, the rest follows the GP.
        tuner = Tuner(max_trials=max_trials, num_initial_points=max(2, max_trials // 3), **common)
    else:
        tuner = Tuner(max_epochs=max(epochs, HYPERBAND_FACTOR), factor=HYPERBAND_FACTOR, **common)
        tuner.oracle.max_trials = max_trials  # Hyperband has no budget in trials: cap it too
        full = hyperband_iteration_trials(tuner.oracle)
        if max_trials < full:
            print(f"dlapps: note: one Hyperband iteration over {tuner.oracle.max_epochs} epochs runs about {full} "
                  f"trials; --max-trials {max_trials} stops it in its first, shortest rounds", file=sys.stderr)
    tuner.trials_run = []
    return tuner


# ----------------------------------------------------------------------------- KerasTuner private API
# The one place dlapps reaches into KerasTuner's private API. HyperbandOracle has no public way
# to say how many trials one iteration runs; its _get_num_brackets/_get_num_rounds/_get_size
# (keras-tuner 1.4) do. Only advice depends on it: if they change, the note is skipped.
def hyperband_iteration_trials(oracle) -> int:
    """Trials of one full Hyperband iteration of `oracle` (a HyperbandOracle); 0 if unknown."""
    try:
        return sum(oracle._get_size(bracket, round_) for bracket in range(oracle._get_num_brackets())
                   for round_ in range(oracle._get_num_rounds(bracket)))
    except (AttributeError, TypeError):
        return 0
