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


def evaluate(task: str | Task, model_path: str | Path, profile: str = "demo",
             sets: dict[str, Any] | None = None) -> dict[str, float]:
    """A saved model's metrics on the task's test split (or on the whole of `sets['data']`)."""
    from dlapps import training

    task, cfg = _task_and_config(task, profile, sets)
    return training.evaluate(task, model_path, cfg)


def tune(task: str | Task, profile: str = "demo", sets: dict[str, Any] | None = None, **kwargs):
    """Hyperparameter search over the task's search space; see `dlapps.tuning.tune`."""
    from dlapps import tuning

    task, cfg = _task_and_config(task, profile, sets)
    return tuning.tune(task, cfg, **kwargs)
