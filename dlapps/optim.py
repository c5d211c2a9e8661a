"""Optimizers and learning-rate schedules: the one place a config's optimizer is built.

`make_optimizer(cfg, info, hp)` is what every task's `build_model` calls; with a KerasTuner `hp` the
optimizer name and learning rate become tunable (the config values are the defaults).

Also here: the one-cycle policy (`OneCycle`, with the optimizer's momentum cycled inversely) and
the learning-rate range test (`LRRangeTest`, `suggest_learning_rate`) behind `dlapps lr-find`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from dlapps.errors import UserError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "nadam", "adamax")
SCHEDULES = ("constant", "cosine", "exponential", "plateau", "onecycle")


# ----------------------------------------------------------------------------- one-cycle
@keras.saving.register_keras_serializable(package="dlapps")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle learning rate (Smith & Topin 2019, "Super-convergence"), and its momentum.

    Over `total_steps` optimizer steps the rate rises from `max_learning_rate / div_factor` to
    `max_learning_rate` during the first `warmup_fraction` of the steps, then falls to
    `max_learning_rate / (div_factor * final_div_factor)`, both halves along a half cosine
    (the cosine variant of fastai's `fit_one_cycle` and PyTorch's `OneCycleLR`). With
    `a -> b` over a fraction `p` of a phase written `b + (a - b) (1 + cos(pi p)) / 2`:

        step <= w:  rate = cos_anneal(max / div, max, step / w)              w = warmup_fraction x total
        step >  w:  rate = cos_anneal(max, max / (div x final_div), (step - w) / (total - w))

    and the momentum (`momentum(step)`; SGD's momentum, Adam's beta_1) does the inverse between
    `momentum_range = (low, high)`: high -> low while the rate warms up, low -> high while it
    anneals (less momentum when the steps are large). Steps past `total_steps` keep the final
    values. Registered with Keras, so a saved model's optimizer config loads again.
    Raises ValueError for a non-positive rate or step count, or a fraction outside (0, 1).
    """

    def __init__(self, max_learning_rate: float, total_steps: int, warmup_fraction: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 momentum_range: tuple[float, float] = (0.85, 0.95), name: str = "onecycle"):
        if max_learning_rate <= 0 or total_steps < 1:
            raise ValueError(f"OneCycle needs max_learning_rate > 0 and total_steps >= 1, got "
                             f"{max_learning_rate} and {total_steps}")
        if not 0 < warmup_fraction < 1:
            raise ValueError(f"OneCycle warmup_fraction must be in (0, 1), got {warmup_fraction}")
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_fraction = float(warmup_fraction)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.momentum_range = (float(momentum_range[0]), float(momentum_range[1]))
        self.name = name

    def _phase(self, step):
        """(fraction of the current phase done, 1.0 in the warm-up phase else 0.0) at `step`, as tensors."""
        step = keras.ops.cast(step, "float32")
        warmup = max(1.0, self.warmup_fraction * self.total_steps)
        anneal = max(1.0, self.total_steps - warmup)
        in_warmup = keras.ops.cast(step <= warmup, "float32")
        fraction = keras.ops.where(step <= warmup, step / warmup,
                                   keras.ops.minimum(1.0, (step - warmup) / anneal))
        return fraction, in_warmup

    @staticmethod
    def _anneal(start, end, fraction):
        return end + (start - end) * 0.5 * (1.0 + keras.ops.cos(math.pi * fraction))

    def __call__(self, step):
        fraction, in_warmup = self._phase(step)
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        return (in_warmup * self._anneal(initial, self.max_learning_rate, fraction)
                + (1.0 - in_warmup) * self._anneal(self.max_learning_rate, final, fraction))

    def momentum(self, step):
        """The momentum at `step` (a float32 tensor): high -> low in the warm-up, low -> high after."""
        fraction, in_warmup = self._phase(step)
        low, high = self.momentum_range
        return in_warmup * self._anneal(high, low, fraction) + (1.0 - in_warmup) * self._anneal(low, high, fraction)

    def get_config(self) -> dict[str, Any]:
        return {"max_learning_rate": self.max_learning_rate, "total_steps": self.total_steps,
                "warmup_fraction": self.warmup_fraction, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor, "momentum_range": list(self.momentum_range),
                "name": self.name}


class _CycledMomentum:
    """Optimizer mixin: while `apply` runs, the momentum attribute follows the `OneCycle` schedule.

    The optimizer's update step reads its momentum (SGD's `momentum`, Adam's `beta_1`) from an
    attribute that the subclass makes a `_cycled_attribute`. During `apply` (traced into the train
    step) it is `schedule.momentum(iterations)`, a tensor of the current step; everywhere else
    (get_config, build) it is the configured float, so saving and loading see plain values. With
    another learning rate it is the float throughout.
    """

    _in_apply = False

    def apply(self, grads, trainable_variables=None):
        object.__setattr__(self, "_in_apply", True)
        try:
            return super().apply(grads, trainable_variables)
        finally:
            object.__setattr__(self, "_in_apply", False)

    def _current_momentum(self):
        schedule = getattr(self, "_learning_rate", None)
        if self._in_apply and isinstance(schedule, OneCycle):
            return schedule.momentum(self.iterations)
        return self._configured_momentum


def _cycled_attribute(name: str) -> property:
    def get(self):
        return self._current_momentum()

    def set(self, value):
        object.__setattr__(self, "_configured_momentum", value)

    return property(get, set, doc=f"`{name}`: cycled by the OneCycle schedule while gradients are applied.")


@keras.saving.register_keras_serializable(package="dlapps")
class OneCycleSGD(_CycledMomentum, keras.optimizers.SGD):
    """SGD with (Nesterov) momentum whose momentum follows `OneCycle.momentum` (see `_CycledMomentum`)."""

    momentum = _cycled_attribute("momentum")

    def build(self, variables):
        if self.built:
            return
        keras.optimizers.Optimizer.build(self, variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        # keras.optimizers.SGD.update_step with momentum always on (its `momentum != 0` test
        # would compare a tensor in graph mode).
        ops = keras.ops
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, variable.dtype)
        self.assign(m, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        else:
            self.assign_add(variable, m)


@keras.saving.register_keras_serializable(package="dlapps")
class OneCycleAdam(_CycledMomentum, keras.optimizers.Adam):
    """Adam whose beta_1 follows `OneCycle.momentum` (see `_CycledMomentum`)."""

    beta_1 = _cycled_attribute("beta_1")


@keras.saving.register_keras_serializable(package="dlapps")
class OneCycleAdamW(_CycledMomentum, keras.optimizers.AdamW):
    """AdamW whose beta_1 follows `OneCycle.momentum` (see `_CycledMomentum`)."""

    beta_1 = _cycled_attribute("beta_1")


@keras.saving.register_keras_serializable(package="dlapps")
class OneCycleNadam(_CycledMomentum, keras.optimizers.Nadam):
    """Nadam whose beta_1 follows `OneCycle.momentum` (see `_CycledMomentum`)."""

    beta_1 = _cycled_attribute("beta_1")


@keras.saving.register_keras_serializable(package="dlapps")
class OneCycleAdamax(_CycledMomentum, keras.optimizers.Adamax):
    """Adamax whose beta_1 follows `OneCycle.momentum` (see `_CycledMomentum`)."""

    beta_1 = _cycled_attribute("beta_1")


# Optimizer name -> its class when the learning rate is a OneCycle (rmsprop and sgd have no momentum here).
ONECYCLE_OPTIMIZERS = {"momentum": OneCycleSGD, "nesterov": OneCycleSGD, "adam": OneCycleAdam,
                       "adamw": OneCycleAdamW, "nadam": OneCycleNadam, "adamax": OneCycleAdamax}


def total_steps(cfg, info: dict | None) -> int:
    """Optimizer steps of the whole run: `info["steps_per_epoch"]` (set by training) x `cfg.epochs`."""
    return max(1, int((info or {}).get("steps_per_epoch", 100)) * max(1, cfg.epochs))


def learning_rate_schedule(name: str, learning_rate: float, steps: int):
    """The learning rate (a float, or a keras schedule over `steps` optimizer steps) for `name`.

    `plateau` is a callback (ReduceLROnPlateau, added by training), so it is a constant rate here.
    `onecycle` is `OneCycle` with `learning_rate` as its peak (momentum cycling: `make_optimizer`).
    Raises UserError for an unknown name.
    """
    if name not in SCHEDULES:
        raise UserError(f"lr_schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    if name == "onecycle":
        return OneCycle(learning_rate, steps)
    if name == "exponential":  # a factor 10 smaller after the whole run
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=max(1, steps // 10), decay_rate=0.1 ** 0.1)
    return learning_rate


def make_optimizer(cfg, info: dict | None = None, hp=None):
    """The optimizer `cfg.optimizer` names, with its learning-rate schedule and gradient clipping.

    `momentum` and `nesterov` are SGD with momentum 0.9 (Polyak 1964; Nesterov 1983); `adamw` is
    Adam with decoupled weight decay (Loshchilov & Hutter 2019, default decay 0.004). With
    `lr_schedule = "onecycle"` the optimizers with a momentum (all but sgd and rmsprop) are their
    `OneCycle*` subclasses, whose momentum / beta_1 cycles inversely to the rate. `hp`, a
    KerasTuner HyperParameters, makes `optimizer` and `learning_rate` tunable. `cfg.clipnorm` /
    `cfg.clipvalue` (when the config has them and they are > 0) clip each gradient's norm / values.
    Raises UserError for an unknown optimizer or schedule.
    """
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
    cycled = isinstance(learning_rate, OneCycle)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, weight_decay=decay, **common)
    if name in ("momentum", "nesterov"):
        sgd_class = OneCycleSGD if cycled else keras.optimizers.SGD
        return sgd_class(learning_rate, momentum=0.9, nesterov=name == "nesterov", weight_decay=decay, **common)
    if name == "adamw":
        adamw_class = OneCycleAdamW if cycled else keras.optimizers.AdamW
        return adamw_class(learning_rate, weight_decay=cfg.weight_decay or 0.004, **common)
    optimizer_class = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam,
                       "nadam": keras.optimizers.Nadam, "adamax": keras.optimizers.Adamax}[name]
    if cycled and name in ONECYCLE_OPTIMIZERS:
        optimizer_class = ONECYCLE_OPTIMIZERS[name]
    return optimizer_class(learning_rate, weight_decay=decay, **common)


# ----------------------------------------------------------------------------- learning-rate range test
class LRRangeTest(keras.callbacks.Callback):
    """The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
    Networks", section 3.3; fastai's `lr_find`) as a callback inside one `model.fit`.

    Batch k of `steps` (k = 0 .. steps-1) trains at the rate `min_lr * (max_lr / min_lr) ** (k / (steps - 1))`,
    an exponential sweep; run it as one epoch of `steps_per_epoch=steps` batches of a repeated
    dataset. The model's metrics are reset before each batch, so `logs["loss"]` after it is that
    batch's loss rather than the epoch's running mean. An exponential moving average
    (`smoothing`, bias-corrected) follows it online, and the fit stops when it is not finite or
    exceeds `divergence` x its minimum (the loss has blown up).

    After the fit: `rates` and `losses` (per batch, float lists) and `stopped_early`.
    The model's optimizer must have a constant (variable) learning rate; raises UserError if not.
    """

    def __init__(self, min_lr: float = 1e-6, max_lr: float = 10.0, steps: int = 300,
                 smoothing: float = 0.9, divergence: float = 4.0):
        super().__init__()
        if not 0 < min_lr < max_lr or steps < 10:
            raise UserError(f"lr range test: need 0 < min_lr < max_lr and steps >= 10 "
                            f"(got {min_lr}, {max_lr}, {steps})")
        self.min_lr, self.max_lr, self.steps = float(min_lr), float(max_lr), int(steps)
        self.smoothing, self.divergence = float(smoothing), float(divergence)
        self.rates: list[float] = []
        self.losses: list[float] = []
        self.stopped_early = False

    def rate(self, step: int) -> float:
        """The learning rate of batch `step` of the sweep."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))

    def on_train_begin(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or isinstance(getattr(optimizer, "_learning_rate", None),
                                           keras.optimizers.schedules.LearningRateSchedule):
            raise UserError("lr-find needs a model compiled with one optimizer at a constant learning rate")
        self.rates, self.losses, self.stopped_early = [], [], False
        self._average, self._best = 0.0, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()  # logs["loss"] at the batch's end is then this batch's loss
        self.model.optimizer.learning_rate = self.rate(min(len(self.rates), self.steps - 1))

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.rates.append(self.rate(min(len(self.rates), self.steps - 1)))
        self.losses.append(loss)
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** len(self.losses))
        if not math.isfinite(smoothed) or smoothed > self.divergence * self._best:
            self.stopped_early = True
            self.model.stop_training = True
        self._best = min(self._best, smoothed)


def smooth(values, window: int) -> np.ndarray:
    """A centred moving average of `values` over `window` points (shorter at the ends): no lag.

    Non-finite values are replaced by the largest finite one first. Returns a float64 array.
    """
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return values
    values = np.where(finite, values, values[finite].max())
    half = max(0, window // 2)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(len(values))
    low, high = np.maximum(0, index - half), np.minimum(len(values), index + half + 1)
    return (cumulative[high] - cumulative[low]) / (high - low)


def suggest_learning_rate(rates, losses, window: int | None = None) -> dict[str, float]:
    """The learning rate a range test suggests: the rate of the lowest smoothed loss, divided by 10.

    `rates` and `losses` are the per-batch values of an exponential sweep (`LRRangeTest`). The loss
    is smoothed with a centred moving average over `window` batches (default 5% of them, at least
    3). The minimum's rate is where training is about to become unstable; one tenth of it is
    Smith's (2017) and fastai's rule for a rate that still falls fast but safely. Also returned:
    `steepest`, the rate where the smoothed loss falls fastest against log(rate), the other common
    reading of the curve. Returns {"suggested", "minimum", "steepest", "min_loss"} (floats).
    Raises UserError when fewer than 10 finite losses were recorded.
    """
    rates, losses = np.asarray(rates, np.float64), np.asarray(losses, np.float64)
    if np.isfinite(losses).sum() < 10:
        raise UserError("the lr range test recorded fewer than 10 finite losses; "
                        "lower --min-lr or raise --steps")
    window = window or max(3, len(losses) // 20)
    smoothed = smooth(losses, window)
    best = int(np.argmin(smoothed))
    slopes = np.gradient(smoothed, np.log(rates)) if len(rates) > 1 else np.zeros(1)
    start = min(window, best)  # the first batches' slope is mostly the smoothing's edge
    steepest = start + int(np.argmin(slopes[start: best + 1]))
    return {"suggested": float(rates[best] / 10), "minimum": float(rates[best]),
            "steepest": float(rates[steepest]), "min_loss": float(smoothed[best])}


def lr_range_test(task, cfg, runtime=None, steps: int = 300, min_lr: float = 1e-6, max_lr: float = 10.0,
                  verbose: int = 0) -> tuple[LRRangeTest, dict[str, float]]:
    """Run the range test of `task` with `cfg` through `training.fit_phases` (one `model.fit`).

    The model is built as the recipe builds it (optimizer, clipping, weight decay) but with a
    constant rate the callback sweeps; the training split is cached, shuffled, batched by the
    global batch and repeated. For a multi-phase task the first phase is used.
    Returns (the callback with its per-batch rates and losses, `suggest_learning_rate`'s dict).
    """
    import dataclasses

    from dlapps.data.pipeline import batched, with_batch_facts
    from dlapps.runtime import Runtime, setup
    from dlapps.task import Phase
    from dlapps.training import fit_phases

    runtime = runtime or Runtime()
    strategy = setup(dataclasses.replace(runtime, seed=cfg.seed if runtime.seed is None else runtime.seed))
    global_batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    cfg = dataclasses.replace(cfg, lr_schedule="constant", learning_rate=min_lr)
    data = with_batch_facts(task.load_data(cfg), global_batch_size)
    train = batched(data.train, global_batch_size, shuffle=True, cache=cfg.cache, shuffle_buffer=cfg.shuffle_buffer,
                    seed=cfg.seed, augment=data.augment).repeat()
    with strategy.scope():
        model = task.build_model(cfg, data.info)
    task.before_fit(model, data, cfg)
    first = task.phases(cfg)[0]
    finder = LRRangeTest(min_lr, max_lr, steps)
    fit_phases(model, train, None, [Phase("lr-find", 1, first.prepare)], cfg,
               [finder, keras.callbacks.TerminateOnNaN()], verbose=verbose, jit=runtime.jit, steps_per_epoch=steps)
    return finder, suggest_learning_rate(finder.rates, finder.losses)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    import json

    return json.dumps(str(value))


def write_lr_find(out_dir, finder: LRRangeTest, suggestion: dict[str, float], command: str,
                  config_table: dict[str, Any] | None = None, use: str = "") -> dict[str, Any]:
    """Write a range test's lr_find.csv, lr_find.png and lr_find.toml into `out_dir`.

    lr_find.toml is a `--config` file: a `[config]` table with `config_table`'s entries (e.g. those of
    the `--config` file the test ran with) and `learning_rate` = the suggested rate; `command` and
    `use` (how to train with it) are written as comments. Returns {"csv", "plot", "toml"} paths.
    """
    from pathlib import Path

    from dlapps import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = max(3, len(finder.losses) // 20)
    smoothed = smooth(finder.losses, window)
    csv_path = out_dir / "lr_find.csv"
    with csv_path.open("w", encoding="utf-8") as handle:
        handle.write("step,learning_rate,loss,smoothed_loss\n")
        for step, (rate, loss, smooth_loss) in enumerate(zip(finder.rates, finder.losses, smoothed)):
            handle.write(f"{step},{rate:.6g},{loss:.6g},{smooth_loss:.6g}\n")

    fig, ax = plots.plt.subplots(figsize=(6, 4))
    ax.plot(finder.rates, finder.losses, color="0.75", linewidth=0.8, label="loss per batch")
    ax.plot(finder.rates, smoothed, color="C0", label=f"smoothed ({window} batches)")
    ax.axvline(suggestion["minimum"], color="C3", linestyle=":", label=f"lowest loss {suggestion['minimum']:.2g}")
    ax.axvline(suggestion["suggested"], color="C2", linestyle="--", label=f"suggested {suggestion['suggested']:.2g}")
    finite = np.asarray(smoothed)[np.isfinite(smoothed)]
    if len(finite):  # keep the blow-up from flattening the interesting part
        low, high = finite.min(), finite[: max(1, len(finite) // 10)].max()
        ax.set_ylim(low - 0.1 * (high - low + 1e-12), high + 0.3 * (high - low + 1e-12))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plot_path = plots.save_figure(fig, out_dir / "lr_find.png")

    table = dict(config_table or {})
    table["learning_rate"] = float(f"{suggestion['suggested']:.3g}")
    lines = [f"# {command}",
             f"# Learning-rate range test: {len(finder.rates)} batches from {finder.min_lr:g} to {finder.max_lr:g}"
             f"{' (stopped: the loss diverged)' if finder.stopped_early else ''}; lowest smoothed loss "
             f"{suggestion['min_loss']:.4g} at rate {suggestion['minimum']:.3g}; suggested = that / 10.",
             f"# Use: {use or 'dlapps train TASK --profile PROFILE --config lr_find.toml'}", "[config]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    toml_path = out_dir / "lr_find.toml"
    toml_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"csv": csv_path, "plot": plot_path, "toml": toml_path}


def find_learning_rate(task, cfg, runtime=None, runs_root="runs", steps: int = 300, min_lr: float = 1e-6,
                       max_lr: float = 10.0, config_file=None, command: str = "", profile: str = "PROFILE",
                       verbose: int = 0) -> dict[str, Any]:
    """`dlapps lr-find`: the range test of `task` with `cfg`, written to `runs_root/<task>/lr-find-<UTC time>/`.

    The folder gets lr_find.csv, lr_find.png and lr_find.toml (a `--config` file: the entries of
    `config_file`'s [config] table, if given, plus the suggested `learning_rate`); `command` and
    `profile` only go into its comments.
    Returns `suggest_learning_rate`'s dict plus "dir", "toml", "plot", "steps" (batches run) and
    "diverged".
    """
    import tomllib
    from pathlib import Path

    from dlapps import runs

    finder, suggestion = lr_range_test(task, cfg, runtime, steps=steps, min_lr=min_lr, max_lr=max_lr, verbose=verbose)
    out_dir = runs.writable_dir(Path(runs_root) / task.name / f"lr-find-{runs.utc_stamp()}", overwrite=False)
    table = tomllib.loads(Path(config_file).read_text(encoding="utf-8")).get("config", {}) if config_file else {}
    paths = write_lr_find(out_dir, finder, suggestion, command or f"dlapps lr-find {task.name}", table,
                          use=f"dlapps train {task.name} --profile {profile} --config {out_dir / 'lr_find.toml'}")
    return {**suggestion, "dir": out_dir, "toml": paths["toml"], "plot": paths["plot"],
            "steps": len(finder.rates), "diverged": finder.stopped_early}
