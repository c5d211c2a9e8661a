"""KerasTuner glue: search a task's hyperparameters on one machine or many.

`tune(task, cfg)` is what `dlapps tune` and `dlapps.tune` call. The search space is the task's own
`build_model(cfg, info, hp)` (each `hp.Int/Float/Choice/Boolean` it declares, with the config value
as default), widened, narrowed or pinned by the `[search]` table of its recipe::

    [search]
    units = { type = "int", min = 64, max = 512, step = 64 }
    learning_rate = { type = "float", min = 3e-4, max = 1e-2, sampling = "log" }
    optimizer = { type = "choice", values = ["adam", "nadam"] }
    batch_norm = { type = "boolean" }
    activation = { type = "fixed", value = "gelu" }      # pinned: not searched
    batch_size = { type = "choice", values = [64, 128, 256] }   # tuned in HyperModel.fit

Hyperparameters that build_model declares but [search] does not mention are searched over
build_model's own ranges (KerasTuner's `tune_new_entries`). Output, under
`runs/<task>/tune-<UTC time>/` (KerasTuner's project directory, so the same `--run-dir` resumes)::

    trials.csv  best_config.toml  tune.json  plots/score_by_trial.png  plots/score_vs_hyperparameters.png

Distributed tuning uses KerasTuner's own protocol: one chief runs the oracle (a gRPC server, it
trains nothing), every worker asks it for trials, trains them and reports back.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from dlapps import config as config_lib
from dlapps.errors import UserError
from dlapps.runtime import Runtime, setup
from dlapps.task import Data, Task
from dlapps.training import write_json

TUNERS = ("random", "bayesian", "hyperband")
SEARCH_TYPES = ("int", "float", "choice", "boolean", "fixed")
FIT_HYPERPARAMETERS = ("batch_size",)
"""Hyperparameters that [search] may declare although build_model does not: they act in `fit`."""
HYPERBAND_FACTOR = 3


# ----------------------------------------------------------------------------- results
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


# ----------------------------------------------------------------------------- the search space
def parse_search(table: dict[str, Any], where: str = "[search]"):
    """A `keras_tuner.HyperParameters` holding the entries of a recipe's `[search]` table."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, spec in table.items():
        declare(hp, name, spec, where)
    return hp


def declare(hp, name: str, spec: Any, where: str = "[search]", default: Any = None) -> None:
    """Declare hyperparameter `name` in `hp` from its [search] entry (a UserError if malformed)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise UserError(f"{where} {name}: expected a table like {{ type = \"int\", min = 1, max = 8 }}")
    kind = spec["type"]
    allowed = {"int": {"min", "max", "step", "sampling"}, "float": {"min", "max", "step", "sampling"},
               "choice": {"values"}, "boolean": set(), "fixed": {"value"}}
    if kind not in allowed:
        raise UserError(f"{where} {name}: unknown type {kind!r}; use one of {', '.join(SEARCH_TYPES)}")
    extra = set(spec) - allowed[kind] - {"type"}
    if extra:
        raise UserError(f"{where} {name}: unexpected key(s) {', '.join(sorted(extra))} for type {kind!r} "
                        f"(allowed: {', '.join(sorted(allowed[kind])) or 'none'})")
    try:
        if kind in ("int", "float"):
            if "min" not in spec or "max" not in spec:
                raise UserError(f"{where} {name}: type {kind!r} needs min and max")
            low, high = spec["min"], spec["max"]
            if not low <= high:
                raise UserError(f"{where} {name}: min {low} is larger than max {high}")
            sampling = spec.get("sampling", "linear")
            if sampling not in ("linear", "log", "reverse_log"):
                raise UserError(f"{where} {name}: sampling {sampling!r}; use linear, log or reverse_log")
            if sampling != "linear" and low <= 0:
                raise UserError(f"{where} {name}: {sampling} sampling needs min > 0")
            method = hp.Int if kind == "int" else hp.Float
            if kind == "int" and not all(isinstance(v, int) for v in (low, high, spec.get("step", 1))):
                raise UserError(f"{where} {name}: type 'int' needs integer min, max and step")
            if default is not None and not low <= default <= high:
                default = None
            method(name, low, high, step=spec.get("step"), sampling=sampling,
                   **({} if default is None else {"default": default}))
        elif kind == "choice":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise UserError(f"{where} {name}: type 'choice' needs a non-empty list: values = [...]")
            if len({type(v) for v in values}) > 1:
                raise UserError(f"{where} {name}: choice values must all have one type, got {values}")
            hp.Choice(name, values, **({"default": default} if default in values else {}))
        elif kind == "boolean":
            hp.Boolean(name, default=bool(default) if isinstance(default, bool) else False)
        else:
            if "value" not in spec:
                raise UserError(f"{where} {name}: type 'fixed' needs value = ...")
            hp.Fixed(name, spec["value"])
    except ValueError as err:  # KerasTuner's own checks (e.g. a step that does not fit the range)
        raise UserError(f"{where} {name}: {str(err).splitlines()[0]}") from None


def search_space(task: Task, cfg, search: dict[str, Any], declared: dict[str, str]):
    """The pre-declared HyperParameters for the tuner: [search] entries, defaults from `cfg`.

    `declared` (name -> KerasTuner class name) is what build_model declares; a [search] name it
    does not know is a UserError (a typo would otherwise silently tune nothing).
    """
    import keras_tuner

    where = f"tasks/{task.name}.toml [search]"
    unknown = sorted(set(search) - set(declared) - set(FIT_HYPERPARAMETERS))
    if unknown:
        raise UserError(
            f"{where}: unknown hyperparameter(s) {', '.join(unknown)}; {task.name}'s build_model declares "
            f"{', '.join(sorted(declared))} (and tuning adds {', '.join(FIT_HYPERPARAMETERS)})")
    expected = {"Int": ("int", "choice", "fixed"), "Float": ("float", "choice", "fixed"),
                "Choice": ("choice", "fixed"), "Boolean": ("boolean", "choice", "fixed")}
    for name, spec in search.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if name in declared and kind in SEARCH_TYPES and kind not in expected.get(declared[name], SEARCH_TYPES):
            raise UserError(f"{where} {name}: build_model declares it as hp.{declared[name]}, so its type "
                            f"cannot be {kind!r} (use one of {', '.join(expected[declared[name]])})")
    hp = keras_tuner.HyperParameters()
    fields = config_lib.field_types(task.Config)
    for name, spec in search.items():
        declare(hp, name, spec, where, default=getattr(cfg, name) if name in fields else None)
    return hp


# ----------------------------------------------------------------------------- the hypermodel
def _hypermodel_class():
    import keras_tuner

    class TaskHyperModel(keras_tuner.HyperModel):
        """A task as a KerasTuner HyperModel: `build` is the task's build_model, `fit` batches the data.

        The data are loaded once; each trial batches them with its own batch size (a tunable
        `batch_size` when the [search] table declares one).
        """

        def __init__(self, task: Task, cfg, data: Data, replicas: int, objective: tuple[str, str],
                     tune_batch_size: bool, verbose: int):
            super().__init__(name=task.name, tunable=True)
            self.task, self.cfg, self.data, self.replicas = task, cfg, data, replicas
            self.objective, self.tune_batch_size, self.verbose = objective, tune_batch_size, verbose

        def batch_size(self, hp) -> int:
            """The per-replica batch size of this trial."""
            if self.tune_batch_size and hp is not None and "batch_size" in hp.values:
                return int(hp.values["batch_size"])
            return self.cfg.batch_size

        def trial_config(self, hp):
            return dataclasses.replace(self.cfg, batch_size=self.batch_size(hp))

        def trial_info(self, hp) -> dict:
            global_batch_size = self.batch_size(hp) * self.replicas
            info = dict(self.data.info)
            info["steps_per_epoch"] = max(1, -(-int(info["train_size"]) // global_batch_size))
            info["global_batch_size"] = global_batch_size
            return info

        def build(self, hp):
            return self.task.build_model(self.trial_config(hp), self.trial_info(hp), hp)

        def fit(self, hp, model, *args, **kwargs):
            import keras

            from dlapps import training

            cfg, data = self.trial_config(hp), self.data
            global_batch_size = cfg.batch_size * self.replicas
            train_ds = training.batched(data.train, global_batch_size, shuffle=True, cache=cfg.cache,
                                        shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed)
            val_ds = training.batched(data.val, global_batch_size, cache=cfg.cache)
            monitor, mode = self.objective
            callbacks = list(kwargs.pop("callbacks", [])) + [keras.callbacks.TerminateOnNaN()]
            if cfg.early_stopping_patience > 0:
                callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                                               patience=cfg.early_stopping_patience))
            if cfg.lr_schedule == "plateau":
                callbacks.append(keras.callbacks.ReduceLROnPlateau(
                    monitor=monitor, mode=mode, factor=0.5, patience=max(1, cfg.early_stopping_patience // 2)))
            kwargs.setdefault("verbose", self.verbose)
            if "epochs" in kwargs or not self.task.phases:  # Hyperband sets epochs and initial_epoch
                kwargs.setdefault("epochs", cfg.epochs)
                return model.fit(train_ds, validation_data=val_ds, callbacks=callbacks, shuffle=False, **kwargs)
            # A multi-stage task (e.g. head, then fine-tuning): one history across its phases.
            history, epoch = keras.callbacks.History(), 0
            history.history = {}
            for phase in self.task.phases(cfg):
                if phase.prepare is not None:
                    phase.prepare(model, cfg)
                fit = model.fit(train_ds, validation_data=val_ds, initial_epoch=epoch, epochs=epoch + phase.epochs,
                                callbacks=callbacks, shuffle=False, **kwargs)
                for key, values in fit.history.items():
                    history.history.setdefault(key, []).extend(values)
                epoch += phase.epochs
            return history

    return TaskHyperModel


def _tuner(kind: str, hypermodel, objective, max_trials: int, executions_per_trial: int,
           hyperparameters, run_dir: Path, strategy, seed: int, epochs: int):
    """The KerasTuner tuner of `kind`, remembering which trials this process trained."""
    import keras_tuner

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
                  overwrite=False)  # `_tuning_dir` already cleared it for --overwrite (never a worker's)
    if kind == "random":
        tuner = Tuner(max_trials=max_trials, **common)
    elif kind == "bayesian":
        # KerasTuner's default is 3 random points per dimension, i.e. no Bayesian step at all in a
        # short search: a third of the budget (at least 2) explores, the rest follows the GP.
        tuner = Tuner(max_trials=max_trials, num_initial_points=max(2, max_trials // 3), **common)
    else:
        tuner = Tuner(max_epochs=max(epochs, HYPERBAND_FACTOR), factor=HYPERBAND_FACTOR, **common)
        tuner.oracle.max_trials = max_trials  # Hyperband has no budget in trials: cap it too
        oracle = tuner.oracle
        try:  # trials of one full Hyperband iteration (private KerasTuner helpers; only for advice)
            full = sum(oracle._get_size(b, r) for b in range(oracle._get_num_brackets())
                       for r in range(oracle._get_num_rounds(b)))
        except (AttributeError, TypeError):
            full = 0
        if max_trials < full:
            print(f"dlapps: note: one Hyperband iteration over {oracle.max_epochs} epochs runs about {full} "
                  f"trials; --max-trials {max_trials} stops it in its first, shortest rounds", file=sys.stderr)
    tuner.trials_run = []
    return tuner


# ----------------------------------------------------------------------------- checks
def resolve_objective(task: Task, name: str | None) -> tuple[str, str]:
    """(metric, direction) from `--objective NAME[:min|max]`, default the task's objective."""
    default_name, default_direction = task.objective
    if not name:
        return default_name, default_direction
    name, _, direction = name.partition(":")
    if direction:
        if direction not in ("min", "max"):
            raise UserError(f"--objective {name}:{direction}: the direction must be min or max")
        return name, direction
    if name.removeprefix("val_") == default_name.removeprefix("val_"):
        return name, default_direction
    lowered = name.lower()
    if any(word in lowered for word in ("loss", "error", "rmse", "mse", "mae", "perplexity", "distance")):
        return name, "min"
    if any(word in lowered for word in ("acc", "auc", "f1", "precision", "recall", "r2", "bleu", "iou")):
        return name, "max"
    raise UserError(f"--objective {name}: cannot tell whether to minimise or maximise it; "
                    f"write --objective {name}:min or {name}:max")


def logged_metrics(model, data: Data) -> list[str]:
    """The names `fit` logs for `model` (training and val_ ones), from one evaluation step."""
    from dlapps import training

    x, y = next(iter(training.batched(data.val.take(2), 2)))
    try:
        names = list(model.test_on_batch(x, y, return_dict=True))
    except Exception:  # a custom test_step that needs more than one batch: fall back to compile info
        names = [n for n in model.metrics_names if n != "compile_metrics"]
    return sorted(names + [f"val_{n}" for n in names])


def parse_address(address: str, flag: str = "--chief") -> tuple[str, int]:
    """'HOST:PORT' -> (host, port), a UserError otherwise."""
    host, sep, port = (address or "").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{flag} {address!r}: expected HOST:PORT, e.g. {flag} 10.0.0.1:8000")
    return host, int(port)


def wait_for_chief(host: str, port: int, timeout: float) -> None:
    """Return once the chief's oracle answers at host:port; a UserError after `timeout` seconds.

    KerasTuner's client waits up to an hour per call when the chief is absent: check first.
    """
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise UserError(
            f"no tuning chief answered at {host}:{port} within {timeout:g} s; start "
            f"`dlapps tune TASK --chief {host}:{port}` on that host first (or check the address, "
            f"port and firewall; --chief-timeout waits longer)") from None
    finally:
        channel.close()


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise UserError(f"--chief {host}:{port}: cannot listen there ({err.strerror}); "
                            "choose a free port of an address of this machine") from None


@contextmanager
def _distributed_env(chief: str | None, worker: str | None) -> Iterator[str | None]:
    """Set KerasTuner's KERASTUNER_* variables for a chief or a worker; restore them afterwards.

    Yields the tuner id ('chief', the worker's id, or None when tuning alone).
    """
    names = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
    saved = {name: os.environ.get(name) for name in names}
    try:
        if chief is None:
            if worker is not None:
                raise UserError("--worker ID needs --chief HOST:PORT (the address of the chief's oracle)")
            for name in names:
                os.environ.pop(name, None)
            yield None
            return
        host, port = parse_address(chief)
        if worker is None:
            tuner_id = "chief"
        else:
            worker = str(worker).strip()
            if not worker or "chief" in worker or not all(ch.isalnum() or ch in "-_" for ch in worker):
                raise UserError(f"--worker {worker!r}: use a short id of letters, digits, - or _ "
                                "(not containing 'chief'), unique per worker")
            tuner_id = f"worker{worker}" if worker.isdigit() else worker
        os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host,
                          KERASTUNER_ORACLE_PORT=str(port))
        yield tuner_id
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ----------------------------------------------------------------------------- tune
def tune(task: Task, cfg, runtime: Runtime = Runtime(), tuner: str = "random", max_trials: int = 10,
         executions_per_trial: int = 1, objective: str | None = None, runs_root: str | Path = "runs",
         run_dir: str | Path | None = None, overwrite: bool = False, train_best: bool = False,
         chief: str | None = None, worker: str | None = None, chief_timeout: float = 60.0,
         search: dict[str, Any] | None = None, quiet: bool = False) -> TuneResult:
    """Search `task`'s hyperparameters with KerasTuner; write the tuning directory; return the result.

    `search` replaces the recipe's [search] table. `run_dir` of an earlier search resumes it
    (`overwrite` restarts). `chief='HOST:PORT'` alone runs the oracle for distributed workers;
    with `worker=ID` this process is a worker of that chief.
    """
    if tuner not in TUNERS:
        raise UserError(f"--tuner {tuner!r}: choose one of {', '.join(TUNERS)}")
    if max_trials < 1:
        raise UserError(f"--max-trials {max_trials}: need at least 1 trial")
    if executions_per_trial < 1:
        raise UserError(f"--executions-per-trial {executions_per_trial}: need at least 1")
    metric, direction = resolve_objective(task, objective)
    if search is None:
        search = config_lib.load_recipe(task.name).get("search", {})
    if not isinstance(search, dict):
        raise UserError(f"tasks/{task.name}.toml: [search] must be a table of hyperparameters")

    with _distributed_env(chief, worker) as tuner_id:
        run_dir = _tuning_dir(task, runs_root, run_dir, overwrite, tuner_id, tuner, metric, cfg)
        seed = cfg.seed if runtime.seed is None else runtime.seed
        strategy = setup(dataclasses.replace(runtime, seed=seed))
        replicas = strategy.num_replicas_in_sync
        log = (lambda *a: None) if quiet else (lambda *a: print("dlapps:", *a, file=sys.stderr))

        data = task.load_data(cfg)
        if data.val is None:
            raise UserError("tuning scores trials on a validation split; set val_fraction > 0")
        from dlapps import training

        info = dict(data.info)
        info.setdefault("train_size", training.count(data.train))
        data = dataclasses.replace(data, info=info)
        verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
        hypermodel = _hypermodel_class()(task, cfg, data, replicas, (metric, direction),
                                         "batch_size" in search, verbose)

        # One build with a recording HyperParameters: what build_model declares, what fit logs.
        import keras
        import keras_tuner

        recorder = keras_tuner.HyperParameters()
        probe = hypermodel.build(recorder)
        declared = {hp.name: type(hp).__name__ for hp in recorder.space}
        hyperparameters = search_space(task, cfg, search, declared)
        logged = logged_metrics(probe, data)
        if metric not in logged:
            raise UserError(f"--objective {metric}: {task.name} does not log it; choose one of "
                            f"{', '.join(n for n in logged if n.startswith('val_'))}")
        del probe
        keras.backend.clear_session()

        if tuner_id is not None and tuner_id != "chief":
            host, port = parse_address(chief)
            log(f"worker {tuner_id}: waiting up to {chief_timeout:g} s for the chief at {host}:{port}")
            wait_for_chief(host, port, chief_timeout)
        if tuner_id == "chief":
            _check_port_free(*parse_address(chief))

        kt_objective = keras_tuner.Objective(metric, direction)
        resumed = (run_dir / "oracle.json").exists() and not overwrite
        keras_tuner_obj = _tuner(tuner, hypermodel, kt_objective, max_trials, executions_per_trial,
                                 hyperparameters, run_dir, strategy if replicas > 1 else None,
                                 seed, cfg.epochs)
        progress = run_dir / (f"trials_run_by_{tuner_id}.json" if tuner_id else "trials_run.json")
        done_before = _read_json(progress, []) if resumed else []

        def record(trial):
            write_json(progress, done_before + keras_tuner_obj.trials_run)
        keras_tuner_obj.on_trial_done = record

        role = {None: "", "chief": " (chief: runs the oracle, workers train)"}.get(tuner_id, f" (worker {tuner_id})")
        log(f"tuning {task.name}{role}: {tuner} search, up to {max_trials} trials, objective {metric} ({direction}), "
            f"{replicas} replica(s); {'resuming' if resumed else 'writing'} {run_dir}")
        if tuner_id == "chief":
            log(f"chief listening on {chief}; start workers with "
                f"`dlapps tune {task.name} --worker ID --chief {chief}` (same profile and settings)")
        try:
            keras_tuner_obj.search(verbose=verbose)
        except RuntimeError as err:
            if "consecutive failures" not in str(err):
                raise
            last = [line for line in str(err).splitlines() if line.strip()][-1]
            raise UserError(f"the search stopped: {str(err).splitlines()[0]} (last error: {last}); "
                            f"see the trial folders in {run_dir}") from None

        result = TuneResult(run_dir, (metric, direction), replicas, trials_run=list(keras_tuner_obj.trials_run))
        if tuner_id not in (None, "chief"):
            log(f"worker {tuner_id} ran trial(s) {', '.join(result.trials_run) or 'none'}; "
                "the chief reports the best")
            return result
        _summarise(task, cfg, keras_tuner_obj.oracle, result, run_dir, quiet)
        if train_best:
            log(f"retraining the best configuration into {run_dir / 'best'}")
            result.train_result = training.train(task, result.best_config, runtime, run_dir=run_dir / "best",
                                                 overwrite=True, quiet=quiet)
        return result


def _tuning_dir(task: Task, runs_root, run_dir, overwrite: bool, tuner_id: str | None, tuner: str,
                metric: str, cfg) -> Path:
    """The search's project directory; checks that a reused one is a matching search.

    Without `run_dir`: the latest runs/<task>/tune-* of a search with the same task, tuner,
    objective and config (so re-running a command continues it), else a new tune-<UTC time>.
    """
    settings = {"task": task.name, "tuner": tuner, "objective": metric, "config": config_lib.to_dict(cfg)}
    if run_dir is None:
        # The same command continues the latest search with the same settings (--overwrite: a new one).
        earlier = [] if overwrite or tuner_id not in (None, "chief") else [
            path.parent for path in sorted((Path(runs_root) / task.name).glob("tune-*/tune.json"), reverse=True)
            if _read_json(path, {}) == settings]
        if earlier:
            run_dir = earlier[0]
        else:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            suffix = f"-{tuner_id}" if tuner_id not in (None, "chief") else ""
            run_dir = Path(runs_root) / task.name / f"tune-{stamp}{suffix}"
    run_dir = Path(run_dir)
    manifest = run_dir / "tune.json"
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite and tuner_id in (None, "chief"):
        if not manifest.exists():
            raise UserError(f"{run_dir} exists and is not a tuning directory; choose another --run-dir "
                            "or pass --overwrite")
        before = _read_json(manifest, {})
        for key in ("task", "tuner", "objective"):
            if before.get(key) != settings[key]:
                raise UserError(f"{run_dir} holds a search with {key} {before.get(key)!r}, not {settings[key]!r}; "
                                "resume with the same settings, or pass --overwrite to restart")
        changed = sorted(k for k, v in settings["config"].items() if before.get("config", {}).get(k) != v)
        if changed:
            raise UserError(f"{run_dir} was tuned with another config ({', '.join(changed)} differ); resume with "
                            "the same profile and --set values, or pass --overwrite to restart")
    if overwrite and tuner_id in (None, "chief") and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if tuner_id in (None, "chief"):
            write_json(manifest, settings)
    except OSError as err:
        raise UserError(f"cannot write to {run_dir} ({err.strerror}); choose another --run-dir") from None
    return run_dir


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


# ----------------------------------------------------------------------------- results
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
            if value.is_integer() and config_lib._base_type(fields[name])[0] is int:
                value = int(value)
        updates[name] = config_lib.coerce(task.Config, name, value)
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


def _summarise(task: Task, cfg, oracle, result: TuneResult, run_dir: Path, quiet: bool) -> None:
    """Ranked table (printed and trials.csv), plots, best_config.toml; fills `result`."""
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
    written = _plots(rows, metric, direction, space, weights, run_dir / "plots", task.name)
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


def _plots(rows, metric: str, direction: str, space: dict, weights: dict[str, float], plots_dir: Path,
           title: str) -> list[Path]:
    """Score by trial (with the best so far) and score against the most related hyperparameters."""
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


# ----------------------------------------------------------------------------- CLI
def run_cli(task: Task, cfg, runtime: Runtime, args) -> TuneResult:
    """`dlapps tune`: the parsed arguments to `tune`."""
    return tune(task, cfg, runtime, tuner=args.tuner, max_trials=args.max_trials,
                executions_per_trial=args.executions_per_trial, objective=args.objective,
                runs_root=args.runs_dir, run_dir=args.run_dir, overwrite=args.overwrite,
                train_best=args.train_best, chief=args.chief, worker=args.worker,
                chief_timeout=getattr(args, "chief_timeout", 60.0), quiet=args.quiet)
