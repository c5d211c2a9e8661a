"""A tiny task of the tests' own (linear regression on 56 rows) for training and tuning tests.

It follows the Task contract like the real tasks, costs a fraction of a second per epoch, and its
model counts the examples each training step receives (`examples_seen`, summed over replicas).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from dlapps.config import TrainConfig
from dlapps.task import Data, Task

TRAIN_SIZE = 40


@dataclasses.dataclass(frozen=True)
class TinyConfig(TrainConfig):
    epochs: int = 2
    batch_size: int = 4
    learning_rate: float = 0.01
    units: int = 4
    early_stopping_patience: int = 0
    cache: bool = False


@keras.saving.register_keras_serializable(package="dlapps_tests")  # a multi-replica run reloads its model
class ExamplesSeen(keras.metrics.Metric):
    """The number of examples the train step received (summed over the replicas by the strategy)."""

    def __init__(self, name="examples_seen", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", aggregation="sum")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(keras.ops.cast(keras.ops.shape(y_true)[0], "float32"))

    def result(self):
        return self.total


def load_data(cfg) -> Data:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(TRAIN_SIZE + 16, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5], "float32") + 0.1 * rng.normal(size=TRAIN_SIZE + 16))[:, None]
    y = y.astype("float32")

    def part(a, b):
        return tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b]))
    return Data(part(0, TRAIN_SIZE), part(TRAIN_SIZE, TRAIN_SIZE + 8), part(TRAIN_SIZE + 8, None),
                {"train_size": TRAIN_SIZE})


def build_model(cfg, info, hp=None):
    units = hp.Int("units", 2, 16, default=cfg.units) if hp is not None else cfg.units
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(keras.optimizers.SGD(cfg.learning_rate), "mse", metrics=[ExamplesSeen()])
    return model


def evaluate(model, data, cfg):
    return {"loss": float(model.evaluate(data.test.batch(8), verbose=0)[0])}


TINY = Task(name="tiny", summary="a linear regression for training and tuning tests", Config=TinyConfig,
            load_data=load_data, build_model=build_model, evaluate=evaluate,
            predict=lambda model, inputs, info, cfg, options: [])

TASK = TINY  # what dlapps.task's registry looks for in a task module

RECIPE = {"profiles": {"smoke": {"epochs": 2}, "demo": {"epochs": 3}},
          "search": {"units": {"type": "int", "min": 2, "max": 16}}}


def register(monkeypatch) -> None:
    """Make `tiny` a registered task with a recipe, for the CLI and the API (undone after the test)."""
    from dlapps import config, task

    monkeypatch.setitem(task._REGISTRY, "tiny", "tiny_task")
    real = config.load_recipe
    monkeypatch.setattr(config, "load_recipe", lambda name: RECIPE if name == "tiny" else real(name))
