"""training.train on a tiny task of the tests' own: what really reaches the model at each step."""

from __future__ import annotations

import dataclasses

import keras
import pytest
from tiny_task import TINY, TRAIN_SIZE, TinyConfig

from dlapps import training
from dlapps.runtime import Runtime


class StepRecorder(keras.callbacks.Callback):
    """Examples seen at the end of every training step (the metric is a running total per epoch)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.totals: list[float] = [0.0]

    def on_train_batch_end(self, batch, logs=None):
        self.totals.append(float(logs["examples_seen"]))

    def per_step(self) -> list[int]:
        return [int(round(b - a)) for a, b in zip(self.totals, self.totals[1:])]


@pytest.mark.parametrize("strategy, devices, replicas", [("default", None, 1), ("mirrored", "cpu:2", 2)])
def test_each_step_sees_the_global_batch(strategy, devices, replicas, runs):
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
