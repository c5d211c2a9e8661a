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

    `train`/`val` are batched `tf.data.Dataset`s, or `(x, y)` array tuples (then `fit_kwargs`
    may hold `batch_size`). Each phase's `prepare(model, cfg)` runs before its epochs (it may
    recompile; `jit` is then set again). Epochs count on across phases from `initial_epoch`.
    A single-phase run stops early when a callback sets `model.stop_training`; later phases of a
    multi-phase run still run. Returns history: metric name -> per-epoch values, plus "phase".
    """
    if isinstance(train, tuple):
        fit_kwargs.update(x=train[0], y=train[1])
    else:
        fit_kwargs.update(x=train)
    history: dict[str, list] = {}
    epoch = initial_epoch
    for phase in phases:
        if phase.prepare is not None:
            phase.prepare(model, cfg)
        if jit:
            model.jit_compile = True
        fit = model.fit(validation_data=val, initial_epoch=epoch, epochs=epoch + phase.epochs,
                        callbacks=callbacks, verbose=verbose, shuffle=False,  # datasets come shuffled
                        **fit_kwargs)
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


def run_callbacks(run_dir: Path, monitor: str, mode: str, chief: bool) -> list:
    """Callbacks of a run directory: backup (resume), CSV log, and on the chief TensorBoard and best.keras."""
    import keras

    callbacks = [keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True)]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True))
    return callbacks


def verbosity(quiet: bool) -> int:
    """Keras' verbose: progress bars in a terminal, one line per epoch in a log, none when quiet."""
    return 0 if quiet else (1 if sys.stdout.isatty() else 2)


def train(task: Task, cfg, runtime: Runtime = Runtime(), runs_root: str | Path = "runs",
          run_dir: str | Path | None = None, resume: str | Path | None = None, save: bool = False,
          saved_models_root: str | Path = "saved_models", overwrite: bool = False,
          quiet: bool = False) -> RunResult:
    """Train `task` with `cfg` under `runtime`; write the run directory; return the result.

    `resume` continues a killed run from its `backup/` (same config, same directory).
    `save` also writes `saved_models/<task>/` (model, metrics, info, model card).
    Raises UserError for an existing run directory or saved model without `overwrite`.
    """
    from dlapps.data.pipeline import fit_datasets, with_batch_facts

    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").exists():
            raise UserError(f"--resume {run_dir}: not a run directory (no config.json)")
        cfg = config_lib.coerce_all(task.Config, json.loads((run_dir / "config.json").read_text())["config"])
    chief = is_chief()
    if chief:
        if run_dir is None:
            run_dir = Path(runs_root) / task.name / runs.utc_stamp()
        run_dir = runs.writable_dir(Path(run_dir), overwrite, must_be_new=resume is None)
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
    monitor, mode = task.objective
    if val_ds is None:
        monitor = monitor.removeprefix("val_")
    callbacks = (run_callbacks(run_dir, monitor, mode, chief)
                 + fit_callbacks(cfg, monitor, mode, restore_best_weights=True)
                 + task.callbacks(cfg, run_dir, data))
    start = time.perf_counter()
    history = fit_phases(model, train_ds, val_ds, task.phases(cfg), cfg, callbacks,
                         verbose=verbosity(quiet), jit=runtime.jit)
    seconds = time.perf_counter() - start
    after_fit = task.after_fit(model, data, cfg, run_dir)

    model.save(run_dir / "model.keras")
    # A model built under a multi-replica strategy runs predict_on_batch on every replica (and
    # every worker) and concatenates the copies; evaluate a local copy of it instead.
    eval_model = runs.load_model(run_dir / "model.keras")[0] if replicas > 1 else model
    metrics = evaluate_splits(task, eval_model, data, cfg)
    metrics.update(epochs=len(history.get("phase", [])), train_seconds=round(seconds, 1),
                   replicas=replicas, global_batch_size=global_batch_size)
    if after_fit:
        metrics["after_fit"] = after_fit
    runs.write_run(run_dir, task, cfg, info, metrics, history, runtime_facts, replicas)
    task.make_plots(eval_model, data, cfg, run_dir / "plots")
    if save and chief:
        runs.save_model_card(task, cfg, run_dir, saved_dir, metrics, info, precision=runtime.precision)
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

    With a local file (`cfg.data`), the whole file is the evaluation set (`whole_file`).
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
