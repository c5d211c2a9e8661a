"""dlapps: deep-learning applications with Keras 3 / TensorFlow that run, scale and teach.

    import dlapps
    task = dlapps.get_task("tabular")
    result = dlapps.train("tabular", profile="demo")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlapps.errors import UserError
from dlapps.task import Data, Task, get_task, list_tasks

__all__ = ["Data", "Task", "UserError", "evaluate", "get_task", "list_tasks", "train", "tune"]
__version__ = "0.1.0"


def _task_and_config(task: str | Task, profile: str, sets: dict[str, Any] | None, config_file=None):
    from dlapps import config

    task = get_task(task) if isinstance(task, str) else task
    return task, config.resolve(task, profile, sets, config_file)


def train(task: str | Task, profile: str = "demo", sets: dict[str, Any] | None = None,
          config_file: str | Path | None = None, **kwargs):
    """Train a task with a recipe profile and overrides; see `dlapps.training.train` for kwargs."""
    from dlapps import training

    task, cfg = _task_and_config(task, profile, sets, config_file)
    return training.train(task, cfg, **kwargs)


def evaluate(task: str | Task, model_path: str | Path | None = None,
             sets: dict[str, Any] | None = None) -> dict[str, float]:
    """A trained model's metrics with the configuration saved beside it (config.json).

    Without `model_path`, the task's default model (see `dlapps.runs.find_model`). `sets` may
    change only inference-time keys and the data (`data`: the whole file is evaluated).
    Raises UserError when no model is found or a key may not be changed.
    """
    from dlapps import runs, training

    task = get_task(task) if isinstance(task, str) else task
    path = runs.find_model(task.name, model_path)
    if path is None:
        raise UserError(f"no trained {task.name} model found in {', '.join(map(str, runs.model_search_path(task.name)))}")
    cfg, _ = runs.model_config(task, path, sets)
    return training.evaluate(task, path, cfg, whole_file="data" in (sets or {}))


def tune(task: str | Task, profile: str = "demo", sets: dict[str, Any] | None = None, **kwargs):
    """Hyperparameter search over the task's search space; see `dlapps.tuning.tune` for kwargs."""
    from dlapps import tuning

    task, cfg = _task_and_config(task, profile, sets)
    return tuning.tune(task, cfg, **kwargs)
