"""The one training path: tf.data batching, model.fit with callbacks, the run directory, saving.

`train(task, cfg)` is what `dlapps train` and `dlapps.train` call::

    runs/<task>/<UTC time>/
        config.json  info.json  history.csv  metrics.json  model.keras
        plots/learning_curves.png (+ the task's own plots)  tensorboard/  backup/
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlapps import config as config_lib
from dlapps.errors import UserError
from dlapps.runtime import Runtime, is_chief, setup
from dlapps.task import Data, Phase, Task

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "nadam", "adamax")
SCHEDULES = ("constant", "cosine", "exponential", "plateau")


# ----------------------------------------------------------------------------- optimizers
def make_optimizer(cfg, info: dict | None = None, hp=None):
    """The optimizer the config names (tunable through `hp`), with its learning-rate schedule.

    `info["steps_per_epoch"]` (set by `train`) sizes the cosine and exponential schedules.
    """
    import keras

    name = hp.Choice("optimizer", list(OPTIMIZERS), default=cfg.optimizer) if hp else cfg.optimizer
    learning_rate = (hp.Float("learning_rate", 1e-4, 3e-2, sampling="log", default=cfg.learning_rate)
                     if hp else cfg.learning_rate)
    if name not in OPTIMIZERS:
        raise UserError(f"optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    if cfg.lr_schedule not in SCHEDULES:
        raise UserError(f"lr_schedule {cfg.lr_schedule!r}: choose one of {', '.join(SCHEDULES)}")
    steps = max(1, int((info or {}).get("steps_per_epoch", 100)) * max(1, cfg.epochs))
    if cfg.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    elif cfg.lr_schedule == "exponential":
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=max(1, steps // 10), decay_rate=0.1 ** 0.1)
    decay = cfg.weight_decay or None
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, weight_decay=decay)
    if name in ("momentum", "nesterov"):
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=name == "nesterov",
                                    weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay or 0.004)
    optimizer_class = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
                       "nadam": keras.optimizers.Nadam, "adamax": keras.optimizers.Adamax}[name]
    return optimizer_class(learning_rate, weight_decay=decay)


# ----------------------------------------------------------------------------- tf.data
def batched(dataset, batch_size: int, shuffle: bool = False, cache: bool = False,
            shuffle_buffer: int = 10_000, seed: int | None = None, drop_remainder: bool = False):
    """`dataset` cached, shuffled, batched and prefetched: the one place batching happens."""
    import tensorflow as tf

    options = tf.data.Options()
    # In-memory datasets cannot be sharded by file across workers: shard by element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder,
                         num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def count(dataset) -> int:
    """Number of elements of a dataset (cardinality when known, else by iterating)."""
    import tensorflow as tf

    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))


# ----------------------------------------------------------------------------- run directories
def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def _writable_dir(path: Path, overwrite: bool, must_be_new: bool = True) -> Path:
    """Create `path` (a UserError if it exists without `overwrite`, or cannot be written)."""
    if path.exists() and must_be_new and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"{path} already exists; pass --overwrite to replace it")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to {path} ({err.strerror}); choose another --runs-dir") from None
    return path


def write_json(path: Path, value: Any) -> None:
    """`value` as indented JSON (NumPy values and paths converted)."""
    path.write_text(json.dumps(value, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


@dataclass
class RunResult:
    """What `train` produced."""

    run_dir: Path
    model: Any
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    data: Data


# ----------------------------------------------------------------------------- training
def train(task: Task, cfg, runtime: Runtime = Runtime(), runs_root: str | Path = "runs",
          run_dir: str | Path | None = None, resume: str | Path | None = None, save: bool = False,
          saved_models_root: str | Path = "saved_models", overwrite: bool = False,
          quiet: bool = False) -> RunResult:
    """Train `task` with `cfg` under `runtime`; write the run directory; return the result.

    `resume` continues a killed run from its `backup/` (same config, same directory).
    `save` also writes `saved_models/<task>/` (model, metrics, info, model card).
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").exists():
            raise UserError(f"--resume {run_dir}: not a run directory (no config.json)")
        cfg = config_lib.coerce_all(task.Config, json.loads((run_dir / "config.json").read_text())["config"])
    chief = is_chief()
    if chief:
        if run_dir is None:
            run_dir = Path(runs_root) / task.name / _utc_stamp()
        run_dir = _writable_dir(Path(run_dir), overwrite, must_be_new=resume is None)
    else:  # other workers of a multi-worker run write to a scratch directory
        run_dir = Path(tempfile.mkdtemp(prefix=f"dlapps-{task.name}-worker-"))
    saved_dir = Path(saved_models_root) / task.name
    if save and chief and (saved_dir / "model.keras").exists() and not overwrite:
        raise UserError(f"{saved_dir} already holds a model; pass --overwrite to replace it")

    strategy = setup(dataclasses.replace(runtime, seed=cfg.seed if runtime.seed is None else runtime.seed))
    replicas = strategy.num_replicas_in_sync
    global_batch_size = cfg.batch_size * replicas
    data = task.load_data(cfg)
    info = dict(data.info)
    if "train_size" not in info:  # count only when the loader did not say (counting may read it all)
        info["train_size"] = count(data.train)
    train_size = info["train_size"]
    info["steps_per_epoch"] = max(1, -(-train_size // global_batch_size))
    info["global_batch_size"] = global_batch_size
    data = dataclasses.replace(data, info=info)
    train_ds = batched(data.train, global_batch_size, shuffle=True, cache=cfg.cache,
                       shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed)
    val_ds = batched(data.val, global_batch_size, cache=cfg.cache) if data.val is not None else None

    write_json(run_dir / "config.json", {"task": task.name, "config": config_lib.to_dict(cfg),
                                          "runtime": dataclasses.asdict(runtime), "replicas": replicas})
    write_json(run_dir / "info.json", info)
    if not quiet:
        print(f"dlapps: training {task.name} ({task.summary}); data: {info.get('source_description', cfg.source)}; "
              f"{replicas} replica(s), global batch {global_batch_size}; run dir {run_dir}", file=sys.stderr)

    with strategy.scope():
        model = task.build_model(cfg, info)
    if runtime.jit:
        model.jit_compile = True

    phases = task.phases(cfg) if task.phases else [Phase("train", cfg.epochs)]
    monitor, mode = task.objective
    if val_ds is None:
        monitor = monitor.removeprefix("val_")
    callbacks = _callbacks(task, cfg, run_dir, data, monitor, mode, chief)
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    history: dict[str, list[float]] = {}
    start, epoch = time.perf_counter(), 0
    for phase in phases:
        if phase.prepare is not None:
            phase.prepare(model, cfg)
            if runtime.jit:
                model.jit_compile = True
        fit = model.fit(train_ds, validation_data=val_ds, initial_epoch=epoch,
                        epochs=epoch + phase.epochs, callbacks=callbacks, verbose=verbose,
                        shuffle=False)  # the dataset is shuffled by `batched`
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("phase", []).extend([phase.name] * len(fit.epoch))
        epoch += phase.epochs
        if model.stop_training and len(phases) == 1:
            break
    seconds = time.perf_counter() - start

    model.save(run_dir / "model.keras")
    # A model built under a multi-replica strategy runs predict_on_batch on every replica (and
    # every worker) and concatenates the copies; evaluate a local copy of it instead.
    eval_model = load_model(run_dir / "model.keras")[0] if replicas > 1 else model
    metrics = {"test": task.evaluate(eval_model, data, cfg)}
    if data.val is not None:
        metrics["val"] = task.evaluate(eval_model, dataclasses.replace(data, test=data.val), cfg)
    metrics.update(epochs=len(history.get("phase", [])), train_seconds=round(seconds, 1),
                   replicas=replicas, global_batch_size=global_batch_size)
    write_json(run_dir / "metrics.json", metrics)
    from dlapps import plots

    (run_dir / "plots").mkdir(exist_ok=True)
    plots.learning_curves(history, run_dir / "plots" / "learning_curves.png", title=task.name)
    if task.make_plots:
        task.make_plots(eval_model, data, cfg, run_dir / "plots")
    if save and chief:
        save_model_card(task, cfg, run_dir, saved_dir, metrics, info, runtime)
    if not quiet:
        print(f"dlapps: {task.name} test metrics: {_short(metrics['test'])}", file=sys.stderr)
        print(f"dlapps: wrote {run_dir}", file=sys.stderr)
    return RunResult(run_dir, model, metrics, history, data)


def _short(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _callbacks(task: Task, cfg, run_dir: Path, data: Data, monitor: str, mode: str, chief: bool) -> list:
    """Keras callbacks of every run: backup, CSV log, TensorBoard, early stopping, LR plateau."""
    import keras

    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True))
    if cfg.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=cfg.early_stopping_patience, restore_best_weights=True))
    if cfg.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, factor=0.5, patience=max(1, cfg.early_stopping_patience // 2)))
    if task.callbacks:
        callbacks.extend(task.callbacks(cfg, run_dir, data))
    return callbacks


# ----------------------------------------------------------------------------- saved models
def save_model_card(task: Task, cfg, run_dir: Path, saved_dir: Path, metrics: dict, info: dict,
                    runtime: Runtime) -> Path:
    """Copy a run's model into saved_models/<task>/ with metrics.json, info.json and a README card."""
    saved_dir.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "metrics.json", "info.json", "config.json"):
        shutil.copy2(run_dir / name, saved_dir / name)
    if (run_dir / "plots").exists():
        shutil.copytree(run_dir / "plots", saved_dir / "plots", dirs_exist_ok=True)
    (saved_dir / "config.toml").write_text(config_lib.to_toml(
        cfg, header=f"The configuration that trained saved_models/{task.name}/model.keras"), encoding="utf-8")
    rows = "\n".join(f"| {split} | {name} | {readable(value)} |" for split in ("val", "test")
                     for name, value in metrics.get(split, {}).items() if isinstance(value, (int, float)))
    card = f"""# {task.name}: {task.summary}

Trained by `dlapps train {task.name}`; model file `model.keras` (Keras 3), which takes raw inputs.

## Data
{info.get('source_description', cfg.source)}; {info.get('train_size', '?')} training examples.

## Metrics
| split | metric | value |
|---|---|---|
{rows}

{metrics.get('epochs')} epochs, {metrics.get('train_seconds')} s on {metrics.get('replicas')} replica(s)
({_hardware()}), global batch {metrics.get('global_batch_size')}.

## Notes
{info.get('model_notes', '')}

## Reproduce
```
dlapps train {task.name} --config {saved_dir.as_posix()}/config.toml --precision {runtime.precision} --save --overwrite
```
(`config.toml` holds every setting, the data path included; `config.json` adds the runtime.)
"""
    (saved_dir / "README.md").write_text(card, encoding="utf-8")
    return saved_dir


def readable(value: float) -> str:
    """A metric as people read it: 49,572 rather than 4.957e+04; 0.9812 rather than 0.98123456."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _hardware() -> str:
    import platform

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else f"CPU, {os.cpu_count()} cores, {platform.machine()}"


def load_model(path: str | Path):
    """(model, info) from a `.keras` file (or a folder holding model.keras) and its info.json."""
    import keras

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.exists():
        raise UserError(f"model {path} not found; train one with `dlapps train` (or pass --model PATH)")
    import dlapps.layers  # noqa: F401  (registers the project's serializable layers)

    run_config = path.with_name("config.json")  # a run's or saved model's: names its task
    if run_config.exists():
        from dlapps.task import get_task, list_tasks

        name = json.loads(run_config.read_text()).get("task")
        if name in list_tasks():
            get_task(name)  # imports the task, which registers its own serializable functions (losses, ...)
    try:
        model = keras.saving.load_model(path)
    except (ValueError, OSError) as err:
        raise UserError(f"cannot load model {path}: {str(err).splitlines()[0]}") from None
    info_path = path.with_name("info.json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return model, info


def evaluate(task: Task, model_path: str | Path, cfg, whole_file: bool | None = None) -> dict[str, float]:
    """The task's metrics of a saved model on the test split of `cfg`'s data.

    With a local file (`cfg.data`), the whole file is the evaluation set (`whole_file`).
    """
    model, saved_info = load_model(model_path)
    if whole_file is None:
        whole_file = cfg.data is not None
    if whole_file:
        data = task.load_data(dataclasses.replace(cfg, val_fraction=0.0, test_fraction=0.0))
        data = Data(None, None, data.train, data.info)
    else:
        data = task.load_data(cfg)
    data = dataclasses.replace(data, info={**data.info, **saved_info})
    return task.evaluate(model, data, cfg)
