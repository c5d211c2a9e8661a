"""Runs as artefacts: run directories, JSON files, model cards, hardware facts and `load_model`.

A run directory (written by `write_run`, whichever path trained the model)::

    runs/<task>/<UTC time>/
        config.json  info.json  history.csv  metrics.json  model.keras  plots/  (tensorboard/ backup/)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlapps import config as config_lib
from dlapps.errors import UserError


def utc_stamp() -> str:
    """The current UTC time as a directory name, e.g. 20261202-061214."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def writable_dir(path: Path, overwrite: bool, must_be_new: bool = True) -> Path:
    """Create `path`; a UserError if it exists (non-empty) without `overwrite`, or cannot be written."""
    path = Path(path)
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
    Path(path).write_text(json.dumps(value, indent=2, default=_json_default) + "\n", encoding="utf-8")


def read_json(path: Path, default: Any) -> Any:
    """The JSON in `path`, or `default` when it is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def readable(value: float) -> str:
    """A metric as people read it: 49,572 rather than 4.957e+04; 0.9812 rather than 0.98123456."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def short(metrics: dict[str, Any]) -> str:
    """`k=v, ...` of a metrics dict, floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def hardware() -> str:
    """What this process trains on: 'N GPU(s)' or 'CPU, N cores, <machine>'."""
    import platform

    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    except ImportError:  # a Keras backend without TensorFlow (the accelerated translation path)
        gpus = []
    return f"{len(gpus)} GPU(s)" if gpus else f"CPU, {os.cpu_count()} cores, {platform.machine()}"


def write_run(run_dir: Path, task, cfg, info: dict, metrics: dict, history: dict[str, list],
              runtime: dict[str, Any], replicas: int) -> None:
    """config.json, info.json, metrics.json, history.csv (if not logged during fit) and plots/."""
    from dlapps import plots

    run_dir = Path(run_dir)
    write_json(run_dir / "config.json", {"task": task.name, "config": config_lib.to_dict(cfg),
                                         "runtime": runtime, "replicas": replicas})
    write_json(run_dir / "info.json", info)
    write_json(run_dir / "metrics.json", metrics)
    if not (run_dir / "history.csv").exists() and history:
        keys = [k for k in history if len(history[k]) == len(history.get("phase", history[k]))]
        with open(run_dir / "history.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", *keys])
            for epoch, values in enumerate(zip(*(history[k] for k in keys))):
                writer.writerow([epoch, *values])
    (run_dir / "plots").mkdir(exist_ok=True)
    plots.learning_curves({k: v for k, v in history.items() if k not in ("phase", "seconds")},
                          run_dir / "plots" / "learning_curves.png", title=task.name)


def save_model_card(task, cfg, run_dir: Path, saved_dir: Path, metrics: dict, info: dict,
                    precision: str = "float32", trained_on: str | None = None, jit: bool = False) -> Path:
    """Copy a run's model into `saved_dir` with metrics.json, info.json, config files and a README card.

    The copy has no optimizer state (the run directory keeps the resumable one) and no machine
    paths: an absolute data path becomes relative to the current directory, or its file name and
    sha256.

    The card's Reproduce command repeats the run's `--precision` (and `--jit` when `jit`).
    The card's notes come from the task module (`task.model_notes`); `trained_on` names the
    machine when it is not this one (default: `hardware()`). When `saved_dir` already holds a
    model (`--save --overwrite`), the card gains a "What changed" section: the settings that differ
    from the replaced model's config.json and both models' validation figures (`changes_from`).
    """
    import dataclasses

    saved_dir = Path(saved_dir)
    replaced = {"config": read_json(saved_dir / "config.json", {}).get("config", {}),
                "metrics": read_json(saved_dir / "metrics.json", {})}
    saved_dir.mkdir(parents=True, exist_ok=True)
    copy_without_optimizer(Path(run_dir) / "model.keras", saved_dir / "model.keras")
    shutil.copy2(Path(run_dir) / "metrics.json", saved_dir / "metrics.json")
    data_file = cfg.data
    cfg = dataclasses.replace(cfg, data=portable_path(cfg.data))
    if data_file and data_file != cfg.data:  # no machine paths in what is committed
        info = json.loads(json.dumps(info, default=_json_default).replace(
            json.dumps(str(data_file))[1:-1], json.dumps(cfg.data)[1:-1]))
    run_config = read_json(Path(run_dir) / "config.json", {})
    write_json(saved_dir / "config.json", {**run_config, "config": config_lib.to_dict(cfg)})
    if cfg.data and Path(data_file).is_file() and cfg.data == Path(data_file).name:
        import hashlib

        digest = hashlib.sha256(Path(data_file).read_bytes()).hexdigest()
        info = {**info, "source_description": f"{info.get('source_description', cfg.data)} (sha256 {digest})"}
    write_json(saved_dir / "info.json", info)
    if (Path(run_dir) / "plots").exists():
        shutil.copytree(Path(run_dir) / "plots", saved_dir / "plots", dirs_exist_ok=True)
    (saved_dir / "config.toml").write_text(config_lib.to_toml(
        cfg, header=f"The configuration that trained saved_models/{task.name}/model.keras"), encoding="utf-8")
    rows = "\n".join(f"| {split} | {name} | {readable(value)} |" for split in ("val", "test")
                     for name, value in metrics.get(split, {}).items()
                     if isinstance(value, (int, float)) and not isinstance(value, bool))
    extra = "\n".join(f"- {name}: {readable(value) if isinstance(value, float) else value}"
                      for name, value in metrics.get("after_fit", {}).items())
    card = f"""# {task.name}: {task.summary}

Trained by `dlapps train {task.name}`; model file `model.keras` (Keras 3), which takes raw inputs.

## Data
{info.get('source_description', cfg.source)}; {info.get('train_size', '?')} training examples.

## Metrics
| split | metric | value |
|---|---|---|
{rows}
{extra}

{metrics.get('epochs')} epochs, {metrics.get('train_seconds')} s on {metrics.get('replicas')} replica(s)
({trained_on or hardware()}), global batch {metrics.get('global_batch_size')}.

## Notes
{task.model_notes}
{changes_from(replaced, config_lib.to_dict(cfg), metrics, config_lib.to_dict(type(cfg)()))}
## Reproduce
```
dlapps train {task.name} --config saved_models/{task.name}/config.toml --precision {precision}{" --jit" if jit else ""} --save --overwrite
```
(`config.toml` holds every setting, the data path included; `config.json` adds the runtime.)
"""
    (saved_dir / "README.md").write_text(card, encoding="utf-8")
    return saved_dir


def changes_from(replaced: dict, config: dict, metrics: dict, defaults: dict) -> str:
    """A "What changed" card section against the replaced model: differing settings and val figures.

    `replaced` holds the old model's "config" (its config.json's settings) and "metrics"
    (metrics.json); a key the old config lacks counts as its default (`defaults`, the task's
    Config defaults). An empty string when there was no model before.
    """
    old, old_metrics = replaced.get("config") or {}, replaced.get("metrics") or {}
    if not old:
        return ""
    old = {**{key: value for key, value in defaults.items() if key in config}, **old}
    settings = [f"`{key}` {old.get(key)} -> {value}" for key, value in config.items()
                if key != "data" and old.get(key) != value]
    settings += [f"`{key}` {value} -> (removed)" for key, value in old.items() if key not in config]
    figures = [f"val {name} {readable(old_metrics['val'][name])} -> {readable(value)}"
               for name, value in metrics.get("val", {}).items()
               if isinstance(value, float) and isinstance(old_metrics.get("val", {}).get(name), float)][:3]
    figures += [f"{name} {readable(old_metrics[name])} -> {readable(metrics[name])}"
                for name in ("epochs", "train_seconds") if name in old_metrics and name in metrics]
    return ("\n## What changed\nThis model replaced an earlier one: "
            + ("; ".join(settings) or "same settings") + ". " + "; ".join(figures) + ".\n")


def load_model(path: str | Path):
    """(model, info) from a `.keras` file (or a folder holding model.keras) and its info.json.

    Imports the task named in the neighbouring config.json first, so that the functions it
    registers as serializable (losses, standardizers) are known. Raises UserError when the file
    is missing or not a Keras model.
    """
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

        name = read_json(run_config, {}).get("task")
        if name in list_tasks():
            get_task(name)  # imports the task, which registers its own serializable functions (losses, ...)
    import warnings

    try:
        with warnings.catch_warnings():  # committed models carry no optimizer state (copy_without_optimizer)
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = keras.saving.load_model(path)
    except (ValueError, OSError) as err:
        raise UserError(f"cannot load model {path}: {str(err).splitlines()[0]}") from None
    info = read_json(path.with_name("info.json"), {})
    return model, info


def model_search_path(task_name: str) -> list[Path]:
    """Where a task's default model is looked for, in order.

    `saved_models/TASK` under the current directory, then `$DLAPPS_MODELS/TASK`, then the
    `saved_models/TASK` of the checkout this dlapps is imported from (an editable install).
    """
    candidates = [Path("saved_models") / task_name]
    if os.environ.get("DLAPPS_MODELS"):
        candidates.append(Path(os.environ["DLAPPS_MODELS"]) / task_name)
    checkout = Path(__file__).resolve().parents[1] / "saved_models" / task_name
    if checkout.resolve() != candidates[0].resolve():
        candidates.append(checkout)
    return candidates


def find_model(task_name: str, model: str | Path | None = None) -> Path | None:
    """The `.keras` file to use: `model` when given (a file or a folder with model.keras), else the
    first default location of `model_search_path` holding a model.keras; None when there is none.

    Raises UserError when `model` is given but does not exist.
    """
    if model is not None:
        path = Path(model)
        path = path / "model.keras" if path.is_dir() else path
        if not path.exists():
            raise UserError(f"model {path} not found; train one with `dlapps train` (or pass --model PATH)")
        return path
    for folder in model_search_path(task_name):
        if (folder / "model.keras").exists():
            return folder / "model.keras"
    return None


def model_config(task, model_path: Path | None, overrides: dict[str, Any] | None = None):
    """The Config a model was trained with (its neighbouring config.json), with inference-time overrides.

    `overrides` (e.g. from `--set`) may name only the task's `inference_keys`, its
    `predict_options` (returned apart) and the data source keys (`data`, `source`); any other key
    is a UserError naming the allowed ones. Keys of an older saved config that the Config no
    longer has (predict options saved by earlier versions) are ignored. Without a config.json the
    task's defaults are used. Returns (cfg, predict options with defaults filled in).
    """
    overrides = dict(overrides or {})
    allowed = set(task.inference_keys) | set(task.predict_options) | {"data", "source"}
    rejected = sorted(set(overrides) - allowed)
    if rejected:
        raise UserError(f"--set {', '.join(rejected)}: not an inference-time setting of {task.name} "
                        f"(a trained model keeps its training config); allowed: {', '.join(sorted(allowed))}")
    saved = read_json(model_path.with_name("config.json"), {}) if model_path is not None else {}
    fields = config_lib.field_types(task.Config)
    values = {k: v for k, v in saved.get("config", {}).items() if k in fields}
    cfg = config_lib.coerce_all(task.Config, values)
    options = dict(task.predict_options)
    updates = {}
    for key, value in overrides.items():
        if key in task.predict_options and key not in fields:
            options[key] = _option_value(task.predict_options[key], key, value)
        else:
            updates[key] = config_lib.coerce(task.Config, key, value)
    if updates.get("data") and "source" not in updates:
        updates["source"] = "file"
    elif cfg.data and model_path is not None and "data" not in updates:
        updates["data"] = _repository_path(cfg.data, model_path)
    import dataclasses

    return dataclasses.replace(cfg, **updates), options


def _repository_path(data: str, model_path: Path) -> str:
    """A saved config's data path (relative to the repository that holds saved_models/TASK/),
    made usable from the current directory when it is not found from here."""
    if Path(data).is_absolute() or Path(data).exists():
        return data
    repository = Path(model_path).resolve().parents[2]
    return str(repository / data) if (repository / data).exists() else data


def portable_path(data: str | None) -> str | None:
    """`data` as a saved config records it: relative to the current directory (the repository)
    when it lies within reach of it, else the file name alone (its sha256 goes in the card)."""
    if not data:
        return data
    path = Path(data)
    if not path.is_absolute():
        return data
    relative = Path(os.path.relpath(path, Path.cwd()))
    return relative.as_posix() if relative.parts[:3].count("..") <= 1 else path.name


def _option_value(default: Any, key: str, value: Any) -> Any:
    """A predict option from `--set` text, typed like its default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            text = value.strip().lower()
            if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(text)
            return text in ("1", "true", "yes", "on")
        return type(default)(value)
    except ValueError:
        raise UserError(f"--set {key}={value}: expected a {type(default).__name__}") from None


def copy_without_optimizer(source: Path, target: Path) -> None:
    """Copy a `.keras` file without its optimizer state (smaller; nothing to resume from).

    A `.keras` file is a zip of config.json, metadata.json and model.weights.h5 (Keras 3 saving
    format); the optimizers' slots are its top-level groups named "optimizer" (or "*_optimizer",
    as a GAN's two), which are left out. The
    model still loads compiled (its compile config stays), with a fresh optimizer.
    """
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = io.BytesIO(members["model.weights.h5"])
    slim = io.BytesIO()
    with h5py.File(weights, "r") as old, h5py.File(slim, "w") as new:
        for key, value in old.attrs.items():
            new.attrs[key] = value
        for key in old:
            if not key.endswith("optimizer"):  # "optimizer"; a GAN's "d_optimizer", "g_optimizer"
                old.copy(old[key], new, name=key)
    members["model.weights.h5"] = slim.getvalue()
    partial = Path(str(target) + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    partial.replace(target)
