"""training.train on a tiny task of its own: what really reaches the model at each step under a strategy."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from dlapps import training
from dlapps.config import TrainConfig
from dlapps.runtime import Runtime
from dlapps.task import Data, Task

TRAIN_SIZE = 40


@dataclasses.dataclass(frozen=True)
class TinyConfig(TrainConfig):
    epochs: int = 2
    batch_size: int = 4
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


def _load_data(cfg):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(TRAIN_SIZE + 16, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5], "float32"))[:, None]
    part = lambda a, b: tf.data.Dataset.from_tensor_slices((x[a:b], y[a:b]))  # noqa: E731
    return Data(part(0, TRAIN_SIZE), part(TRAIN_SIZE, TRAIN_SIZE + 8), part(TRAIN_SIZE + 8, None),
                {"train_size": TRAIN_SIZE})


def _build_model(cfg, info, hp=None):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(0.01), "mse", metrics=[ExamplesSeen()])
    return model


def _evaluate(model, data, cfg):
    return {"loss": float(model.evaluate(data.test.batch(8), verbose=0)[0])}


TINY = Task(name="tiny", summary="a linear regression for training tests", Config=TinyConfig,
            load_data=_load_data, build_model=_build_model, evaluate=_evaluate,
            predict=lambda model, inputs, info, cfg, options: [])


class StepRecorder(keras.callbacks.Callback):
    """Examples seen at the end of every training step (the metric is a running total per epoch)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.totals: list[float] = [0.0]

    def on_train_batch_end(self, batch, logs=None):
        self.totals.append(float(logs["examples_seen"]))

    def per_step(self) -> list[int]:
        return [int(round(b - a)) for a, b in zip(self.totals, self.totals[1:])]


@pytest.mark.parametrize("strategy, devices, replicas", [("default", None, 1), ("mirrored", "cpu:2", 2)])
def test_each_step_sees_the_global_batch(strategy, devices, replicas, runs, monkeypatch):
    recorder = StepRecorder()
    task = dataclasses.replace(TINY, callbacks=lambda cfg, run_dir, data: [recorder])
    cfg = TinyConfig()
    result = training.train(task, cfg, Runtime(strategy=strategy, devices=devices), **runs)
    assert result.metrics["replicas"] == replicas
    global_batch = cfg.batch_size * replicas
    # Counted at each step of the last epoch: every step got batch_size x replicas examples.
    assert recorder.per_step() == [global_batch] * (TRAIN_SIZE // global_batch)
    assert result.metrics["global_batch_size"] == global_batch
    assert result.data.info["steps_per_epoch"] == TRAIN_SIZE // global_batch
