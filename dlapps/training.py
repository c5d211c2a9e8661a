"""The one training path: `train()` runs a task under a strategy; `fit_phases()` is its `model.fit` loop.

`train(task, cfg)` is what `dlapps train` and `dlapps.train` call::

    runs/<task>/<UTC time>/
        config.json  info.json  history.csv  metrics.json  model.keras  best.keras
        plots/learning_curves.png (+ the task's own plots)  tensorboard/  backup/

`fit_phases` also serves KerasTuner trials (`dlapps.tuning`) and the translation task's
accelerated path (token arrays on any Keras backend), so there is one fit loop.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlapps import config as config_lib
from dlapps import runs
from dlapps.errors import UserError
from dlapps.runtime import Runtime, is_chief, setup
from dlapps.task import Data, Phase, Task


@dataclass
class RunResult:
    """What `train` produced."""

    run_dir: Path
    model: Any
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    data: Data


def fit_phases(model, train, val, phases: list[Phase], cfg, callbacks: list, verbose: int = 0,
               initial_epoch: int = 0, jit: bool = False, **fit_kwargs) -> dict[str, list]:
    """`model.fit` over the phases of a run (e.g. a new head, then fine-tuning): one history.

    `train`/`val` are batched `tf.data.Dataset`s (shuffled by the pipeline), or `(x, y)` array
    tuples (shuffled by `fit` every epoch; `fit_kwargs` may hold `batch_size`). Each phase's
    `prepare(model, cfg)` runs before its epochs (it may recompile; `jit` is then set again).
    Epochs count on across phases from `initial_epoch`. A single-phase run stops early when a
    callback sets `model.stop_training`; later phases of a multi-phase run still run.
    Returns history: metric name -> per-epoch values, plus "phase".
    """
    if isinstance(train, tuple):
        fit_kwargs.update(x=train[0], y=train[1])
        fit_kwargs.setdefault("shuffle", True)
    else:
        fit_kwargs.update(x=train, shuffle=False)  # datasets come shuffled (data.pipeline)
    history: dict[str, list] = {}
    epoch = initial_epoch
    for phase in phases:
        if phase.prepare is not None:
            phase.prepare(model, cfg)
        if jit:
            model.jit_compile = True
        fit = model.fit(validation_data=val, initial_epoch=epoch, epochs=epoch + phase.epochs,
                        callbacks=callbacks, verbose=verbose, **fit_kwargs)
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).extend([phase.name] * len(fit.epoch))
        epoch += phase.epochs
        if model.stop_training and len(phases) == 1:
            break
    return history


def fit_callbacks(cfg, monitor: str, mode: str, restore_best_weights: bool) -> list:
    """Callbacks of every fit (a run or a tuning trial): NaN guard, early stopping, LR plateau."""
    import keras

    callbacks = [keras.callbacks.TerminateOnNaN()]
    if cfg.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=cfg.early_stopping_patience,
            restore_best_weights=restore_best_weights))
    if cfg.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, factor=0.5, patience=max(1, cfg.early_stopping_patience // 2)))
    return callbacks


def run_callbacks(run_dir: Path, monitor: str, mode: str, chief: bool, restore_from: Path | None = None) -> list:
    """Callbacks of a run directory: backup (resume; a resumed non-chief worker restores from
    `restore_from`, the chief's backup), CSV log, and on the chief TensorBoard and best.keras."""
    import keras

    from dlapps.recovery import SharedBackupAndRestore

    callbacks = [SharedBackupAndRestore(run_dir / "backup", restore_from),
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True)]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True))
    return callbacks


def worker_name() -> str:
    """'worker N' (TF_CONFIG's task) or 'this process' when training alone."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {})
    return f"{task.get('type', 'worker')} {task.get('index', 0)}" if task else "this process"


def restart_command(task: Task) -> str:
    """The command line this process was started with (for restart advice), or `dlapps train TASK`."""
    argv = [a for a in sys.argv[1:] if a not in ("--overwrite",)]
    if argv and argv[0] == "train":
        for option in ("--resume", "--run-dir"):  # --resume RUN_DIR names the directory
            while option in argv:
                index = argv.index(option)
                del argv[index:index + 2]
        return "dlapps " + " ".join(shlex.quote(a) for a in argv)
    return f"dlapps train {task.name}"


def verbosity(quiet: bool) -> int:
    """Keras' verbose: progress bars in a terminal, one line per epoch in a log, none when quiet."""
    return 0 if quiet else (1 if sys.stdout.isatty() else 2)


def train(task: Task, cfg, runtime: Runtime = Runtime(), runs_root: str | Path = "runs",
          run_dir: str | Path | None = None, resume: str | Path | None = None, save: bool = False,
          saved_models_root: str | Path = "saved_models", overwrite: bool = False,
          quiet: bool = False) -> RunResult:
    """Train `task` with `cfg` under `runtime`; write the run directory; return the result.

    `resume` continues a killed run from its `backup/` (same config, same directory; every worker
    of a multi-worker run restores the chief's backup, see `dlapps.recovery`).
    `save` also writes `saved_models/<task>/` (model, metrics, info, model card).
    Raises UserError for an existing run directory or saved model without `overwrite`, and
    `recovery.PeerLost` when a worker of a multi-worker run is lost.
    """
    from dlapps import recovery
    from dlapps.data.pipeline import fit_datasets, with_batch_facts

    chief, restore_from = is_chief(), None
    shared_dir = Path(resume or run_dir) if (resume or run_dir) else None  # the chief's, known to all
    if resume is not None:
        restore_from = recovery.resume_plan(Path(resume), chief, worker_name())
        cfg = config_lib.coerce_all(task.Config, json.loads((Path(resume) / "config.json").read_text())["config"])
        if chief:
            recovery.trim_history(Path(resume) / "history.csv", recovery.backup_epoch(Path(resume) / "backup") or 0)
    if chief:
        run_dir = Path(resume or run_dir or Path(runs_root) / task.name / runs.utc_stamp())
        run_dir = runs.writable_dir(run_dir, overwrite, must_be_new=resume is None)
        shared_dir = run_dir
    else:  # other workers of a multi-worker run write to a scratch directory
        run_dir = Path(tempfile.mkdtemp(prefix=f"dlapps-{task.name}-worker-"))
    saved_dir = Path(saved_models_root) / task.name
    if save and chief and (saved_dir / "model.keras").exists() and not overwrite:
        raise UserError(f"{saved_dir} already holds a model; pass --overwrite to replace it")

    strategy = setup(dataclasses.replace(runtime, seed=cfg.seed if runtime.seed is None else runtime.seed))
    replicas = strategy.num_replicas_in_sync
    global_batch_size = cfg.batch_size * replicas
    data = with_batch_facts(task.load_data(cfg), global_batch_size)
    info = data.info
    train_ds, val_ds = fit_datasets(data, cfg, global_batch_size)
    runtime_facts = dataclasses.asdict(runtime)
    runs.write_json(run_dir / "config.json", {"task": task.name, "config": config_lib.to_dict(cfg),
                                              "runtime": runtime_facts, "replicas": replicas})
    if not quiet:
        print(f"dlapps: training {task.name} ({task.summary}); data: {info.get('source_description', cfg.source)}; "
              f"{replicas} replica(s), global batch {global_batch_size}; run dir {run_dir}", file=sys.stderr)

    with strategy.scope():
        model = task.build_model(cfg, info)
    task.before_fit(model, data, cfg)
    monitor, mode = task.objective
    if val_ds is None:
        monitor = monitor.removeprefix("val_")
    callbacks = (run_callbacks(run_dir, monitor, mode, chief, restore_from)
                 + fit_callbacks(cfg, monitor, mode, restore_best_weights=True)
                 + task.callbacks(cfg, run_dir, data))
    start = time.perf_counter()
    try:
        history = fit_phases(model, train_ds, val_ds, task.phases(cfg), cfg, callbacks,
                             verbose=verbosity(quiet), jit=runtime.jit)
    except Exception as err:  # noqa: BLE001  (a lost peer becomes one line; anything else propagates)
        lost = recovery.peer_lost(err, shared_dir or "RUN_DIR", restart_command(task)) if replicas > 1 else None
        if lost is None:
            raise
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":  # --verbose: TensorFlow's own error too
            print(f"dlapps: TensorFlow said: {err}", file=sys.stderr)
        raise lost from None
    seconds = time.perf_counter() - start
    if resume is not None and chief:  # the whole run's history, not only the resumed epochs
        history = {**recovery.read_history(run_dir / "history.csv"), "phase": history.get("phase", [])}
    after_fit = task.after_fit(model, data, cfg, run_dir)

    model.save(run_dir / "model.keras")
    # A model built under a multi-replica strategy runs predict_on_batch on every replica (and
    # every worker) and concatenates the copies; evaluate a local copy of it instead.
    eval_model = runs.load_model(run_dir / "model.keras")[0] if replicas > 1 else model
    metrics = evaluate_splits(task, eval_model, data, cfg)
    metrics.update(epochs=max((len(v) for v in history.values()), default=0), train_seconds=round(seconds, 1),
                   replicas=replicas, global_batch_size=global_batch_size)
    if after_fit:
        metrics["after_fit"] = after_fit
    runs.write_run(run_dir, task, cfg, info, metrics, history, runtime_facts, replicas)
    task.make_plots(eval_model, data, cfg, run_dir / "plots")
    if save and chief:
        runs.save_model_card(task, cfg, run_dir, saved_dir, metrics, info, precision=runtime.precision,
                             jit=runtime.jit)
    if not quiet:
        print(f"dlapps: {task.name} test metrics: {runs.short(metrics['test'])}", file=sys.stderr)
        print(f"dlapps: wrote {run_dir}", file=sys.stderr)
    return RunResult(run_dir, model, metrics, history, data)


def evaluate_splits(task: Task, model, data: Data, cfg) -> dict[str, Any]:
    """{"test": metrics on data.test, "val": metrics on data.val (when there is one)}."""
    metrics = {"test": task.evaluate(model, data, cfg)}
    if data.val is not None:
        metrics["val"] = task.evaluate(model, dataclasses.replace(data, test=data.val), cfg)
    return metrics


def evaluate(task: Task, model_path: str | Path, cfg, whole_file: bool | None = None) -> dict[str, float]:
    """The task's metrics of a saved model on the test split of `cfg`'s data.

    With `whole_file` (a data file given for evaluation), the whole of `cfg.data` is the
    evaluation set; by default only when `cfg.data` is set (a model's saved config also names
    the file it was trained on: callers that start from it say `whole_file=False`).
    """
    model, saved_info = runs.load_model(model_path)
    if whole_file is None:
        whole_file = cfg.data is not None
    if whole_file:
        data = task.load_data(dataclasses.replace(cfg, val_fraction=0.0, test_fraction=0.0))
        data = Data(None, None, data.train, data.info)
    else:
        data = task.load_data(cfg)
    data = dataclasses.replace(data, info={**data.info, **saved_info})
    return task.evaluate(model, data, cfg)
