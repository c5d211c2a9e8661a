"""The Task contract and the explicit task registry."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from dlapps.errors import UserError

if TYPE_CHECKING:  # tensorflow is imported lazily: `dlapps list` stays fast
    import tensorflow as tf


@dataclass
class Data:
    """What `load_data` returns: unbatched datasets of (inputs, targets) and facts about them.

    `info` must stay JSON-serialisable (numbers, strings, lists, dicts): it is written next to
    the model as `info.json` so that `predict` and `evaluate` find it again without the data.
    `train`/`val` may be None when a file is loaded only for evaluation.
    """

    train: tf.data.Dataset | None
    val: tf.data.Dataset | None
    test: tf.data.Dataset
    info: dict[str, Any]


@dataclass(frozen=True)
class Phase:
    """One stage of a multi-stage fit (e.g. train a new head, then fine-tune the backbone).

    `prepare(model, cfg)` changes what is trainable and recompiles; `epochs` counts this phase only.
    """

    name: str
    epochs: int
    prepare: Callable[[Any, Any], None] | None = None


@dataclass(frozen=True)
class Task:
    """A deep-learning application: its config, data, model, metrics and predictions."""

    name: str
    summary: str
    Config: type
    load_data: Callable[[Any], Data]
    build_model: Callable[..., Any]
    evaluate: Callable[[Any, Data, Any], dict[str, float]]
    predict: Callable[[Any, list[str], dict, Any], list[str]]
    # Optional hooks.
    make_plots: Callable[[Any, Data, Any, Any], list] | None = None
    """(model, data, cfg, plots_dir) -> written files: task-specific figures after training."""
    phases: Callable[[Any], list[Phase]] | None = None
    """(cfg) -> phases of one training run; default: one phase of cfg.epochs."""
    pretrained: Callable[[Any], tuple[Any, dict]] | None = None
    """(cfg) -> (model, info) usable by `predict` without a trained run (e.g. ImageNet weights)."""
    callbacks: Callable[[Any, Any, Any], list] | None = None
    """(cfg, run_dir, data) -> extra keras callbacks for fit (e.g. a GAN's sample grids)."""
    objective: tuple[str, str] = ("val_loss", "min")
    """The validation metric that early stopping, checkpoints and tuning follow, and its direction."""

    def config(self, **overrides: Any) -> Any:
        """The task's default Config with `overrides` applied."""
        return dataclasses.replace(self.Config(), **overrides)


# The registry: task name -> module that defines TASK. Explicit, imported lazily so that
# `dlapps list` does not import every model.
_REGISTRY: dict[str, str] = {
    "tabular": "dlapps.tasks.tabular",
    "translation": "dlapps.tasks.translation",
    "autoencoder": "dlapps.tasks.autoencoder",
    "gan": "dlapps.tasks.gan",
    "spam": "dlapps.tasks.spam",
    "sentiment": "dlapps.tasks.sentiment",
    "mnist": "dlapps.tasks.mnist",
    "imagenet": "dlapps.tasks.imagenet",
}


def list_tasks() -> list[str]:
    """Names of all registered tasks."""
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    """The Task registered under `name`; a UserError listing the known tasks otherwise."""
    if name not in _REGISTRY:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return importlib.import_module(_REGISTRY[name]).TASK
