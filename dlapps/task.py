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

    `length` (optional, for sequences): a TensorFlow function of one training element's parts
    (e.g. `text, label`) to its length as a scalar int32; with `length_boundaries` (ascending
    lengths) `dlapps.data.pipeline.fit_datasets` batches training examples of similar length
    together (fewer padded time steps for a recurrent layer).

    `augment` (optional): a TensorFlow function of one training batch's parts (e.g. `images,
    labels`) to the same parts randomly transformed, e.g. Keras random image layers. The
    training pipeline maps it over every batch, one batch at a time so that a seed repeats the
    draws, and prefetches (`dlapps.data.pipeline`), so on a CPU it runs beside the training step
    and the model itself keeps no random layers (and can be XLA-compiled). Validation, test and
    prediction data are never augmented.
    """

    train: tf.data.Dataset | None
    val: tf.data.Dataset | None
    test: tf.data.Dataset
    info: dict[str, Any]
    length: Callable[..., Any] | None = None
    length_boundaries: list[int] | None = None
    augment: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Phase:
    """One stage of a multi-stage fit (e.g. train a new head, then fine-tune the backbone).

    `prepare(model, cfg)` changes what is trainable and recompiles; `epochs` counts this phase only.
    """

    name: str
    epochs: int
    prepare: Callable[[Any, Any], None] | None = None


def _no_plots(model, data, cfg, plots_dir) -> list:
    return []


def _one_phase(cfg) -> list[Phase]:
    return [Phase("train", cfg.epochs)]


def _no_pretrained(cfg) -> None:
    return None


def _no_callbacks(cfg, run_dir, data) -> list:
    return []


def _nothing_before_fit(model, data, cfg) -> None:
    return None


def _nothing_after_fit(model, data, cfg, run_dir) -> dict:
    return {}


@dataclass(frozen=True)
class Task:
    """A deep-learning application: its config, data, model, metrics and predictions.

    Required: `load_data(cfg) -> Data`, `build_model(cfg, info, hp=None) -> compiled keras.Model`,
    `evaluate(model, data, cfg) -> dict[str, float]` (on `data.test`) and
    `predict(model, inputs, info, cfg, options) -> list[str]` (raw inputs from the command line;
    `options` holds the task's `predict_options`, defaults filled in). The optional hooks have
    no-op defaults, so callers never branch on them.
    """

    name: str
    summary: str
    Config: type
    load_data: Callable[[Any], Data]
    build_model: Callable[..., Any]
    evaluate: Callable[[Any, Data, Any], dict[str, float]]
    predict: Callable[[Any, list[str], dict, Any, dict], list[str]]
    make_plots: Callable[[Any, Data, Any, Any], list] = _no_plots
    """(model, data, cfg, plots_dir) -> written files: task-specific figures after training."""
    phases: Callable[[Any], list[Phase]] = _one_phase
    """(cfg) -> phases of one training run; default: one phase of cfg.epochs."""
    pretrained: Callable[[Any], tuple[Any, dict] | None] = _no_pretrained
    """(cfg) -> (model, info) usable by `predict` without a trained run (e.g. ImageNet weights), or None."""
    callbacks: Callable[[Any, Any, Any], list] = _no_callbacks
    """(cfg, run_dir, data) -> extra keras callbacks for fit (e.g. a GAN's sample grids)."""
    before_fit: Callable[[Any, Data, Any], None] = _nothing_before_fit
    """(model, data, cfg) -> None: work on the built model that needs the data before training
    (tabular model=nca writes the training rows into the model); runs in `dlapps train`, in every
    tuning trial and in `dlapps lr-find`."""
    after_fit: Callable[[Any, Data, Any, Any], dict] = _nothing_after_fit
    """(model, data, cfg, run_dir) -> dict: post-training work (a threshold chosen on validation, a
    comparison run); runs before evaluation, its result joins the metrics under "after_fit"."""
    objective: tuple[str, str] = ("val_loss", "min")
    """The validation metric that early stopping, checkpoints and tuning follow, and its direction."""
    predict_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Options of `predict` only (name -> default, e.g. top_k=3); `--set` passes them, never saved."""
    inference_keys: tuple[str, ...] = ()
    """Config keys that evaluate/predict may override on a trained model (e.g. beam_size)."""
    model_notes: str = ""
    """What a model card says about the model (inputs it takes, what it returns, caveats)."""

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
