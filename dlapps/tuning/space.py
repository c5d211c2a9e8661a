"""What a search looks for: the recipe's `[search]` table as KerasTuner hyperparameters, and the objective.

A `[search]` entry widens, narrows or pins a hyperparameter that the task's `build_model` declares
(`batch_size` is tuned in `fit` instead)::

    units = { type = "int", min = 64, max = 512, step = 64 }
    learning_rate = { type = "float", min = 3e-4, max = 1e-2, sampling = "log" }
    optimizer = { type = "choice", values = ["adam", "nadam"] }
    batch_norm = { type = "boolean" }
    activation = { type = "fixed", value = "gelu" }      # pinned: not searched
"""

from __future__ import annotations

from typing import Any

from dlapps import config as config_lib
from dlapps.errors import UserError
from dlapps.task import Task

SEARCH_TYPES = ("int", "float", "choice", "boolean", "fixed")
FIT_HYPERPARAMETERS = ("batch_size",)
"""Hyperparameters that [search] may declare although build_model does not: they act in `fit`."""


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


def resolve_objective(task: Task, name: str | None) -> tuple[str, str]:
    """(metric, direction) from `--objective NAME[:min|max]`, default the task's objective.

    Without a direction, a name like the task's objective takes its direction, and names of
    losses and errors are minimised, of accuracies and scores maximised; otherwise a UserError.
    """
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
