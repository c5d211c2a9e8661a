"""The Task contract, checked on every registered task with its smoke profile."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import dlapps
from dlapps import config, training
from dlapps.runs import load_model
from dlapps.data import pipeline
from dlapps.task import Task


@pytest.mark.parametrize("name", dlapps.list_tasks())
def test_task_contract(name, runs):
    task = dlapps.get_task(name)
    assert isinstance(task, Task) and task.name == name and task.summary
    assert dataclasses.is_dataclass(task.Config)
    cfg = config.resolve(task, "smoke")
    data = task.load_data(cfg)
    # Unbatched datasets whose element spec the model accepts; info is JSON-serialisable.
    assert data.train is not None and data.test is not None
    json.dumps(data.info)
    result = training.train(task, cfg, **runs)
    for split in ("test", "val"):
        for key, value in result.metrics.get(split, {}).items():
            if isinstance(value, float):
                assert math.isfinite(value), (split, key, value)
    for name_ in ("config.json", "info.json", "history.csv", "metrics.json", "model.keras",
                  "plots/learning_curves.png"):
        assert (result.run_dir / name_).exists(), name_
    # Save/load round trip: identical predictions on the same raw batch.
    loaded, _ = load_model(result.run_dir / "model.keras")
    batch = next(iter(pipeline.batched(data.test.map(lambda *xs: xs[0]), 8)))
    np.testing.assert_allclose(np.asarray(result.model.predict_on_batch(batch)),
                               np.asarray(loaded.predict_on_batch(batch)), rtol=1e-5, atol=1e-5)


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("name", dlapps.list_tasks())
def test_recipe_profiles_resolve(name):
    """Each profile gives the values its recipe sets, and the task's defaults for everything else."""
    task = dlapps.get_task(name)
    profiles = config.load_recipe(name)["profiles"]
    assert set(config.PROFILES) <= set(profiles)
    defaults = task.Config()
    for profile, values in profiles.items():
        cfg = config.resolve(task, profile)
        assert isinstance(cfg, task.Config)
        for key, value in values.items():
            assert _plain(getattr(cfg, key)) == _plain(value), (profile, key)
        implied = {"source"} if values.get("data") else set()  # a data path means a local file source
        for field in dataclasses.fields(task.Config):
            if field.name not in values and field.name not in implied:
                assert getattr(cfg, field.name) == getattr(defaults, field.name), (profile, field.name)
