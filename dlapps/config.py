"""Typed run configuration: task defaults < recipe profile < config file < CLI `--set`.

Every task has a frozen dataclass `Config` that extends `TrainConfig`. Recipes are TOML files,
one per task (`tasks/<name>.toml`), with named profiles::

    [profiles.smoke]      # tests: seconds
    epochs = 2
    [profiles.demo]       # embedded data, minutes on a laptop CPU
    [profiles.full]       # the real dataset, the full schedule
    source = "california_housing"
    [search]              # KerasTuner search space overrides (see dlapps/tuning/space.py)
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dlapps.errors import UserError

PROFILES = ("smoke", "demo", "full")


@dataclass(frozen=True)
class TrainConfig:
    """Knobs every task shares; a task's Config subclasses this and adds its own."""

    source: str = "embedded"
    """Where data comes from: 'embedded' (offline default), a canonical download name, or 'file'."""
    data: str | None = None
    """A local file or folder (sets source='file'); its format is documented by the task."""
    epochs: int = 10
    batch_size: int = 32
    """Per replica; the global batch is batch_size x number of replicas."""
    optimizer: Literal["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "nadam", "adamax"] = "adam"
    """The optimizer (see `dlapps.optim.make_optimizer`)."""
    learning_rate: float = 1e-3
    lr_schedule: Literal["constant", "cosine", "exponential", "plateau", "onecycle"] = "constant"
    """constant, cosine (decay to 0 over the run), exponential, plateau (ReduceLROnPlateau), or onecycle (dlapps.optim.OneCycle)."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW-style) applied by the optimizer; 0 disables."""
    clipnorm: float = 0.0
    """Clip each gradient to this L2 norm (Pascanu et al. 2013); 0 disables."""
    clipvalue: float = 0.0
    """Clip each gradient element to [-clipvalue, clipvalue]; 0 disables."""
    early_stopping_patience: int = 5
    """Epochs without improvement of the objective before stopping; 0 disables early stopping."""
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    shuffle_buffer: int = 10_000
    cache: bool = True
    seed: int = 42


def recipe_path(task_name: str) -> Path:
    """The recipe file of a task: the repository's tasks/ folder, or the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for folder in (here / "recipes", here.parent / "tasks"):
        if (folder / f"{task_name}.toml").exists():
            return folder / f"{task_name}.toml"
    raise UserError(f"no recipe tasks/{task_name}.toml found next to the dlapps package")


def load_recipe(task_name: str) -> dict[str, Any]:
    """The parsed TOML recipe of a task."""
    path = recipe_path(task_name)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML ({err})") from None


def field_types(config_cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(the concrete type, whether None is allowed) of an annotation like `int | None` or `Literal[...]`."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        concrete = [a for a in args if a is not type(None)]
        return _base_type(concrete[0])[0], len(concrete) < len(args)
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0]), False
    return (typing.get_origin(annotation) or annotation), False


def choices(annotation: Any) -> tuple[Any, ...]:
    """The allowed values of a `Literal[...]` field (also inside `X | None`); () for free fields."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((choices(a) for a in typing.get_args(annotation) if choices(a)), ())
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()


def coerce(config_cls: type, key: str, value: Any) -> Any:
    """`value` (a string from the CLI or a TOML value) converted to the type of field `key`.

    A `Literal[...]` field accepts only its choices: the one place choice fields are checked.
    Raises UserError for an unknown key, a value of the wrong type, or a value outside the choices.
    """
    value = _coerce_type(config_cls, key, value)
    allowed = choices(field_types(config_cls)[key])
    if allowed and value is not None and value not in allowed:
        raise UserError(f"{key} = {value!r}: choose one of {', '.join(map(str, allowed))}")
    return value


def _coerce_type(config_cls: type, key: str, value: Any) -> Any:
    types_by_name = field_types(config_cls)
    if key not in types_by_name:
        raise UserError(
            f"unknown config key {key!r} for {config_cls.__module__.split('.')[-1]}; "
            f"valid keys: {', '.join(sorted(types_by_name))}"
        )
    kind, optional = _base_type(types_by_name[key])
    if isinstance(value, str):
        text = value.strip()
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            if kind is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
            if kind is tuple:
                return tuple(json.loads(text)) if text.startswith("[") else tuple(
                    _auto(part) for part in text.split(",") if part.strip())
            return text
        except ValueError:
            raise UserError(f"--set {key}={value}: expected a {kind.__name__}") from None
    if value is None and optional:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{key} = {value!r}: expected a {kind.__name__}")
    return value


def _auto(text: str) -> Any:
    """A comma-separated item as int, float or string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def coerce_all(config_cls: type, values: dict[str, Any]) -> Any:
    """A Config built from a dict (e.g. a run's config.json), every value type-checked."""
    return config_cls(**{key: coerce(config_cls, key, value) for key, value in values.items()})


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`, with a clear error for a missing '='."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def resolve(task, profile: str = "demo", sets: dict[str, Any] | None = None,
            config_file: str | Path | None = None) -> Any:
    """The task's Config: defaults < recipe profile < config file < `sets` (CLI --set)."""
    recipe = load_recipe(task.name)
    profiles = recipe.get("profiles", {})
    if profile not in profiles:
        raise UserError(f"unknown profile {profile!r} for {task.name}; known: {', '.join(profiles)}")
    values: dict[str, Any] = {}
    layers = [profiles[profile]]
    if config_file is not None:
        path = Path(config_file)
        if not path.exists():
            raise UserError(f"config file {path} not found")
        try:
            layers.append(tomllib.loads(path.read_text(encoding="utf-8")).get("config", {}))
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: not valid TOML ({err})") from None
    layers.append(sets or {})
    for layer in layers:
        for key, value in layer.items():
            values[key] = coerce(task.Config, key, value)
        if layer.get("data") and "source" not in layer:
            values["source"] = "file"  # a local file given at this layer wins over the profile's source
    return task.Config(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as a JSON-ready dict."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def to_toml(cfg: Any, header: str = "") -> str:
    """A config as a TOML `[config]` table that `--config FILE` reads back."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[config]"]
    for key, value in to_dict(cfg).items():
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
