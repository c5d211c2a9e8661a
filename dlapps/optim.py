"""Optimizers and learning-rate schedules: the one place a config's optimizer is built.

`make_optimizer(cfg, info, hp)` is what every task's `build_model` calls; with a KerasTuner `hp` the
optimizer name and learning rate become tunable (the config values are the defaults).
"""

from __future__ import annotations

from typing import Any

from dlapps.errors import UserError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "nadam", "adamax")
SCHEDULES = ("constant", "cosine", "exponential", "plateau")


def total_steps(cfg, info: dict | None) -> int:
    """Optimizer steps of the whole run: `info["steps_per_epoch"]` (set by training) x `cfg.epochs`."""
    return max(1, int((info or {}).get("steps_per_epoch", 100)) * max(1, cfg.epochs))


def learning_rate_schedule(name: str, learning_rate: float, steps: int):
    """The learning rate (a float, or a keras schedule over `steps` optimizer steps) for `name`.

    `plateau` is a callback (ReduceLROnPlateau, added by training), so it is a constant rate here.
    Raises UserError for an unknown name.
    """
    import keras

    if name not in SCHEDULES:
        raise UserError(f"lr_schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    if name == "exponential":  # a factor 10 smaller after the whole run
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=max(1, steps // 10), decay_rate=0.1 ** 0.1)
    return learning_rate


def make_optimizer(cfg, info: dict | None = None, hp=None):
    """The optimizer `cfg.optimizer` names, with its learning-rate schedule and gradient clipping.

    `momentum` and `nesterov` are SGD with momentum 0.9 (Polyak 1964; Nesterov 1983); `adamw` is
    Adam with decoupled weight decay (Loshchilov & Hutter 2019, default decay 0.004). `hp`, a
    KerasTuner HyperParameters, makes `optimizer` and `learning_rate` tunable. `cfg.clipnorm` /
    `cfg.clipvalue` (when the config has them and they are > 0) clip each gradient's norm / values.
    Raises UserError for an unknown optimizer or schedule.
    """
    import keras

    name = hp.Choice("optimizer", list(OPTIMIZERS), default=cfg.optimizer) if hp else cfg.optimizer
    learning_rate = (hp.Float("learning_rate", 1e-4, 3e-2, sampling="log", default=cfg.learning_rate)
                     if hp else cfg.learning_rate)
    if name not in OPTIMIZERS:
        raise UserError(f"optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    learning_rate = learning_rate_schedule(cfg.lr_schedule, learning_rate, total_steps(cfg, info))
    common: dict[str, Any] = {}
    for key in ("clipnorm", "clipvalue"):
        if getattr(cfg, key, 0.0):
            common[key] = getattr(cfg, key)
    decay = cfg.weight_decay or None
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, weight_decay=decay, **common)
    if name in ("momentum", "nesterov"):
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=name == "nesterov",
                                    weight_decay=decay, **common)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay or 0.004, **common)
    optimizer_class = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
                       "nadam": keras.optimizers.Nadam, "adamax": keras.optimizers.Adamax}[name]
    return optimizer_class(learning_rate, weight_decay=decay, **common)
