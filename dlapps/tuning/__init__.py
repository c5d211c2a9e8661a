"""KerasTuner glue: search a task's hyperparameters on one machine or many.

`tune(task, cfg, ...)` is what `dlapps tune` and `dlapps.tune` call. The search space is the
task's own `build_model(cfg, info, hp)` (each `hp.Int/Float/Choice/Boolean` it declares, with the
config value as default), widened, narrowed or pinned by the `[search]` table of its recipe
(`space.py`; `batch_size` there is tuned in `HyperModel.fit`). Hyperparameters that build_model
declares but [search] does not mention are searched over build_model's own ranges (KerasTuner's
`tune_new_entries`). Output, under `runs/<task>/tune-<UTC time>/` (KerasTuner's project
directory, so the same `--run-dir` resumes)::

    tune.json  trials.csv  best_config.toml  plots/score_by_trial.png  plots/score_vs_hyperparameters.png

The package: `space.py` (the [search] language, the objective), `hypermodel.py` (the task as a
HyperModel trained by `training.fit_phases`; the tuner), `distributed.py` (chief and workers over
KerasTuner's gRPC protocol), `report.py` (ranked trials, importance, plots, best_config.toml).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dlapps import config as config_lib
from dlapps import runs
from dlapps.errors import UserError
from dlapps.runtime import Runtime, setup
from dlapps.task import Task
from dlapps.tuning.distributed import check_port_free, parse_address, tuner_role, wait_for_chief, watch_workers
from dlapps.tuning.report import TuneResult, best_config, format_table, importance, summarise, trial_rows
from dlapps.tuning.space import declare, parse_search, resolve_objective, search_space

__all__ = ["TUNERS", "TuneResult", "best_config", "declare", "format_table", "importance", "parse_address",
           "parse_search", "resolve_objective", "search_space", "trial_rows", "tune", "wait_for_chief"]

TUNERS = ("random", "bayesian", "hyperband")


def tune(task: Task, cfg, *, runtime: Runtime = Runtime(), tuner: str = "random", max_trials: int = 10,
         executions_per_trial: int = 1, objective: str | None = None, runs_root: str | Path = "runs",
         run_dir: str | Path | None = None, overwrite: bool = False, train_best: bool = False,
         chief: str | None = None, worker: str | None = None, chief_timeout: float = 60.0,
         worker_timeout: float = 900.0,
         search: dict[str, Any] | None = None, quiet: bool = False) -> TuneResult:
    """Search `task`'s hyperparameters with KerasTuner; write the tuning directory; return the result.

    `tuner` is one of TUNERS; `objective` is 'NAME[:min|max]' (default the task's objective).
    `search` replaces the recipe's [search] table. `run_dir` of an earlier search resumes it
    (`overwrite` restarts); without it the latest matching search under `runs_root` continues.
    `chief='HOST:PORT'` alone runs the oracle for distributed workers; with `worker=ID` this
    process is a worker of that chief (waiting up to `chief_timeout` seconds for it). The chief
    stops with one line when a worker holding a trial is silent for `worker_timeout` seconds
    (see `distributed.watch_workers`).
    `train_best` retrains the best configuration into `<run_dir>/best`. Raises UserError for bad
    settings, a mismatched directory, or a search in which no trial completed; a search that
    fails before its first trial leaves no tuning directory behind.
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

    import keras
    import keras_tuner

    from dlapps import training
    from dlapps.data.pipeline import with_batch_facts
    from dlapps.tuning.hypermodel import TaskHyperModel, logged_metrics, make_tuner

    with tuner_role(chief, worker) as tuner_id, \
            _project_dir(task, cfg, tuner, metric, runs_root, run_dir, overwrite, tuner_id) as run_dir:
        seed = cfg.seed if runtime.seed is None else runtime.seed
        strategy = setup(dataclasses.replace(runtime, seed=seed))
        replicas = strategy.num_replicas_in_sync
        log = (lambda *a: None) if quiet else (lambda *a: print("dlapps:", *a, file=sys.stderr))

        data = task.load_data(cfg)
        if data.val is None:
            raise UserError("tuning scores trials on a validation split; set val_fraction > 0")
        data = with_batch_facts(data, cfg.batch_size * replicas)  # counts the training set once
        verbose = training.verbosity(quiet)
        hypermodel = TaskHyperModel(task, cfg, data, replicas, (metric, direction), "batch_size" in search,
                                    verbose, jit=runtime.jit)

        # One build with a recording HyperParameters: what build_model declares, what fit logs.
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
            check_port_free(*parse_address(chief))

        resumed = (run_dir / "oracle.json").exists() and not overwrite
        keras_tuner_obj = make_tuner(tuner, hypermodel, keras_tuner.Objective(metric, direction), max_trials,
                                     executions_per_trial, hyperparameters, run_dir,
                                     strategy if replicas > 1 else None, seed, cfg.epochs)
        progress = run_dir / (f"trials_run_by_{tuner_id}.json" if tuner_id else "trials_run.json")
        done_before = runs.read_json(progress, []) if resumed else []

        def record(trial):
            runs.write_json(progress, done_before + keras_tuner_obj.trials_run)
        keras_tuner_obj.on_trial_done = record

        role = {None: "", "chief": " (chief: runs the oracle, workers train)"}.get(tuner_id, f" (worker {tuner_id})")
        log(f"tuning {task.name}{role}: {tuner} search, up to {max_trials} trials, objective {metric} ({direction}), "
            f"{replicas} replica(s); {'resuming' if resumed else 'writing'} {run_dir}")
        if tuner_id == "chief":
            log(f"chief listening on {chief}; start workers with "
                f"`dlapps tune {task.name} --worker ID --chief {chief}` (same profile and settings)")
        if tuner_id == "chief":
            watch_workers(keras_tuner_obj.oracle, worker_timeout, run_dir, _this_command(task))
        try:
            keras_tuner_obj.search(verbose=verbose)
        except grpc_errors() as err:  # a worker whose chief went away
            raise UserError(f"the tuning chief at {chief} stopped answering ({type(err).__name__}); restart it "
                            "with its own command (the search continues from its directory), then this "
                            "worker with the same command") from None
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
        summarise(task, cfg, keras_tuner_obj.oracle, result, run_dir)
        if train_best:
            log(f"retraining the best configuration into {run_dir / 'best'}")
            result.train_result = training.train(task, result.best_config, runtime, run_dir=run_dir / "best",
                                                 overwrite=True, quiet=quiet)
        return result


def _this_command(task: Task) -> str:
    """The command line this process was started with, for restart advice."""
    import shlex

    argv = sys.argv[1:]
    return "dlapps " + " ".join(shlex.quote(a) for a in argv) if argv[:1] == ["tune"] else f"dlapps tune {task.name}"


def grpc_errors() -> tuple[type[BaseException], ...]:
    """The exception types of a gRPC call to a chief that is gone (none when grpc is absent)."""
    try:
        import grpc
    except ImportError:
        return ()
    return (grpc.RpcError,)


# ----------------------------------------------------------------------------- the tuning directory
@contextmanager
def _project_dir(task: Task, cfg, tuner: str, metric: str, runs_root, run_dir, overwrite: bool,
                 tuner_id: str | None) -> Iterator[Path]:
    """The search's project directory, created (with the chief's tune.json) for the search.

    Without `run_dir`: the latest runs/<task>/tune-* of a search with the same task, tuner,
    objective and config (so re-running a command continues it), else a new tune-<UTC time>.
    A reused directory must hold a matching search (`overwrite` empties it; never a worker's).
    If the search fails before any trial wrote to the directory, the folders created here go.
    """
    settings = {"task": task.name, "tuner": tuner, "objective": metric, "config": config_lib.to_dict(cfg)}
    owner = tuner_id in (None, "chief")
    if run_dir is None:
        # The same command continues the latest search with the same settings (--overwrite: a new one).
        earlier = [] if overwrite or not owner else [
            path.parent for path in sorted((Path(runs_root) / task.name).glob("tune-*/tune.json"), reverse=True)
            if runs.read_json(path, {}) == settings]
        suffix = "" if owner else f"-{tuner_id}"
        run_dir = earlier[0] if earlier else Path(runs_root) / task.name / f"tune-{runs.utc_stamp()}{suffix}"
    run_dir = Path(run_dir)
    manifest = run_dir / "tune.json"
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite and owner:
        if not manifest.exists():
            raise UserError(f"{run_dir} exists and is not a tuning directory; choose another --run-dir "
                            "or pass --overwrite")
        before = runs.read_json(manifest, {})
        for key in ("task", "tuner", "objective"):
            if before.get(key) != settings[key]:
                raise UserError(f"{run_dir} holds a search with {key} {before.get(key)!r}, not {settings[key]!r}; "
                                "resume with the same settings, or pass --overwrite to restart")
        changed = sorted(k for k, v in settings["config"].items() if before.get("config", {}).get(k) != v)
        if changed:
            raise UserError(f"{run_dir} was tuned with another config ({', '.join(changed)} differ); resume with "
                            "the same profile and --set values, or pass --overwrite to restart")
    if overwrite and owner and run_dir.exists():
        shutil.rmtree(run_dir)
    new = [path for path in (run_dir, *run_dir.parents) if not path.exists()]  # innermost first
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if owner:
            runs.write_json(manifest, settings)
    except OSError as err:
        raise UserError(f"cannot write to {run_dir} ({err.strerror}); choose another --run-dir") from None
    try:
        yield run_dir
    except BaseException:
        if run_dir in new and not any(run_dir.glob("trial_*")):
            shutil.rmtree(run_dir, ignore_errors=True)
            for parent in new[1:]:  # folders created on the way, while nothing else came into them
                try:
                    parent.rmdir()
                except OSError:
                    break
        raise
