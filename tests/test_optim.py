"""dlapps.optim: the one-cycle schedule (rates and momentum against the formula, inside fit,
saved and loaded) and the learning-rate range test (its suggestion on a problem with a known
good rate, the files it writes)."""

from __future__ import annotations

import math
import tomllib

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlapps import config
from dlapps.config import TrainConfig
from dlapps.errors import UserError
from dlapps.optim import (LRRangeTest, OneCycle, OneCycleAdam, OneCycleSGD, make_optimizer, suggest_learning_rate,
                          write_lr_find)


def one_cycle_reference(step: int, peak: float, total: int, warmup: float = 0.3, div: float = 25.0,
                        final_div: float = 1e4, low: float = 0.85, high: float = 0.95) -> tuple[float, float]:
    """(rate, momentum) at `step`, written from Smith & Topin's description (PyTorch OneCycleLR, cos)."""
    start, end = peak / div, peak / div / final_div
    warm = warmup * total
    step = min(step, total)
    if step <= warm:
        t = step / warm  # rate start -> peak, momentum high -> low, along half a cosine
        cosine = (1 + math.cos(math.pi * t)) / 2
        return peak + (start - peak) * cosine, low + (high - low) * cosine
    t = (step - warm) / (total - warm)
    cosine = (1 + math.cos(math.pi * t)) / 2
    return end + (peak - end) * cosine, high + (low - high) * cosine


def test_one_cycle_rates_and_momentum_follow_the_formula():
    schedule = OneCycle(0.2, total_steps=250)
    steps = list(range(0, 260, 3)) + [75, 250]
    rates = [float(schedule(step)) for step in steps]
    momenta = [float(schedule.momentum(step)) for step in steps]
    expected = [one_cycle_reference(step, 0.2, 250) for step in steps]
    np.testing.assert_allclose(rates, [r for r, _ in expected], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(momenta, [m for _, m in expected], rtol=1e-5)
    assert float(schedule(75)) == pytest.approx(0.2)  # the peak at 30% of the steps
    assert float(schedule.momentum(75)) == pytest.approx(0.85)  # ... where momentum is lowest
    assert float(schedule(0)) == pytest.approx(0.2 / 25)
    assert float(schedule(250)) == pytest.approx(0.2 / 25 / 1e4)
    with pytest.raises(ValueError):
        OneCycle(0.1, total_steps=0)


def test_one_cycle_is_a_config_choice_and_gives_cycled_optimizers():
    assert config.coerce(TrainConfig, "lr_schedule", "onecycle") == "onecycle"
    info = {"steps_per_epoch": 10}
    for name, expected in [("momentum", OneCycleSGD), ("adam", OneCycleAdam), ("sgd", keras.optimizers.SGD),
                           ("rmsprop", keras.optimizers.RMSprop)]:
        optimizer = make_optimizer(TrainConfig(optimizer=name, lr_schedule="onecycle", epochs=3), info)
        assert type(optimizer) is expected
        assert optimizer._learning_rate.total_steps == 30
    # outside a gradient update the momentum is the configured float (what get_config saves)
    adam = make_optimizer(TrainConfig(optimizer="adam", lr_schedule="onecycle"), info)
    assert adam.beta_1 == 0.9 and adam.get_config()["beta_1"] == 0.9


def test_one_cycle_sgd_uses_the_cycled_momentum_inside_fit():
    """Full-batch SGD on y = 3x (one weight, no bias) against the same updates done by hand."""
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(-1, 1)
    y = 3.0 * x
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inputs))
    steps = 12
    schedule = OneCycle(0.5, total_steps=steps)
    model.compile(OneCycleSGD(schedule, momentum=0.9), "mse")
    model.fit(x, y, batch_size=16, epochs=steps, shuffle=False, verbose=0)

    w, velocity = 0.0, 0.0
    for step in range(steps):
        rate, momentum = one_cycle_reference(step, 0.5, steps)
        gradient = float(np.mean(2 * (w * x - y) * x))  # d/dw of the mean squared error
        velocity = momentum * velocity - rate * gradient  # keras.optimizers.SGD's momentum update
        w += velocity
    assert float(model.get_weights()[0][0, 0]) == pytest.approx(w, rel=1e-4)
    # with the configured 0.9 throughout, the weight would differ: the cycling is in the graph
    w_fixed, velocity = 0.0, 0.0
    for step in range(steps):
        rate, _ = one_cycle_reference(step, 0.5, steps)
        velocity = 0.9 * velocity - rate * float(np.mean(2 * (w_fixed * x - y) * x))
        w_fixed += velocity
    assert abs(w_fixed - w) > 1e-3


def test_one_cycle_model_saves_and_loads(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    cfg = TrainConfig(optimizer="adamw", lr_schedule="onecycle", learning_rate=0.01, epochs=2)
    model.compile(make_optimizer(cfg, {"steps_per_epoch": 4}), "mse")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    model.fit(x, x.sum(axis=1, keepdims=True), batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer).__name__ == "OneCycleAdamW"
    assert isinstance(loaded.optimizer._learning_rate, OneCycle)
    assert loaded.optimizer._learning_rate.get_config() == model.optimizer._learning_rate.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def range_test_on_linear_regression(scale: float) -> tuple[LRRangeTest, dict]:
    """The range test of minibatch SGD on noise-free linear regression with inputs N(0, scale^2).

    The mean squared error's Hessian is 2 scale^2 I, so the fastest stable rate is
    1 / (2 scale^2) (one step to the minimum) and rates above 1 / scale^2 diverge.
    """
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4096, 8)) * scale).astype(np.float32)
    y = x @ rng.standard_normal((8, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4096, seed=0).batch(32).repeat()
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(inputs))
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    finder = LRRangeTest(min_lr=1e-5, max_lr=100.0, steps=300)
    model.fit(dataset, epochs=1, steps_per_epoch=300, callbacks=[finder], verbose=0, shuffle=False)
    return finder, suggest_learning_rate(finder.rates, finder.losses)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_range_test_finds_the_known_good_rate(scale):
    finder, suggestion = range_test_on_linear_regression(scale)
    best_rate, divergent_rate = 1 / (2 * scale ** 2), 1 / scale ** 2
    assert finder.stopped_early  # the sweep reached divergence and stopped there
    assert finder.rates[-1] < 10 * divergent_rate and len(finder.rates) < 300
    assert best_rate / 2 <= suggestion["minimum"] <= 2 * best_rate
    assert suggestion["suggested"] == pytest.approx(suggestion["minimum"] / 10)
    assert suggestion["steepest"] < suggestion["minimum"]
    assert np.all(np.diff(np.log(finder.rates)) > 0)  # an exponential sweep
    np.testing.assert_allclose(np.diff(np.log(finder.rates)), math.log(1e7) / 299, rtol=1e-6)


def test_suggestion_needs_enough_losses_and_a_constant_rate():
    with pytest.raises(UserError, match="fewer than 10"):
        suggest_learning_rate([1e-3, 1e-2], [1.0, 0.5])
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 10)), "mse")
    with pytest.raises(UserError, match="constant learning rate"):
        model.fit(np.zeros((8, 1)), np.zeros((8, 1)), epochs=1, verbose=0, callbacks=[LRRangeTest(steps=10)])


def test_range_test_writes_a_config_snippet_plot_and_table(tmp_path):
    finder, suggestion = range_test_on_linear_regression(1.0)
    paths = write_lr_find(tmp_path, finder, suggestion, "dlapps lr-find synthetic",
                          config_table={"epochs": 5, "optimizer": "sgd"})
    snippet = tomllib.loads(paths["toml"].read_text())
    assert snippet["config"] == {"epochs": 5, "optimizer": "sgd",
                                 "learning_rate": pytest.approx(suggestion["suggested"], rel=1e-2)}
    assert paths["plot"].stat().st_size > 1000
    rows = paths["csv"].read_text().splitlines()
    assert rows[0] == "step,learning_rate,loss,smoothed_loss" and len(rows) == len(finder.rates) + 1


def test_cli_lr_find_writes_a_config_file_that_train_accepts(tmp_path, capsys):
    from dlapps import get_task
    from dlapps.cli import main

    base = tmp_path / "base.toml"
    base.write_text("[config]\nepochs = 3\n")
    code = main(["lr-find", "tabular", "--profile", "smoke", "--config", str(base), "--steps", "40",
                 "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "suggested learning_rate = " in out
    (folder,) = (tmp_path / "runs" / "tabular").glob("lr-find-*")
    assert {p.name for p in folder.iterdir()} >= {"lr_find.toml", "lr_find.png", "lr_find.csv"}
    snippet = tomllib.loads((folder / "lr_find.toml").read_text())["config"]
    assert snippet["epochs"] == 3 and 1e-6 < snippet["learning_rate"] < 10
    assert f"{snippet['learning_rate']:.3g}" in out
    cfg = config.resolve(get_task("tabular"), "smoke", config_file=folder / "lr_find.toml")
    assert cfg.learning_rate == snippet["learning_rate"] and cfg.epochs == 3
