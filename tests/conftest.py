"""Shared fixtures: every test seeded, TensorFlow with 2 logical CPUs, shared data when present."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the whole test process, so mirrored-strategy tests can run in-process
# (logical devices can only be configured before TensorFlow initialises them).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DLAPPS_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (`make test` runs `-n 2 --dist loadgroup`): a test file's tests stay on one
    worker, so its module-scoped fixtures (a model trained once) are built once; the notebooks, one
    independent kernel each, are spread over the workers one by one."""
    for item in items:
        if item.path.name != "test_notebooks.py":
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same seeds and a clean Keras session."""
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def shared_data() -> Path:
    """The ../shared/data folder of real datasets; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set DLAPPS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def runs(tmp_path) -> dict:
    """Keyword arguments for `training.train` that keep every output under tmp_path."""
    return {"runs_root": tmp_path / "runs", "saved_models_root": tmp_path / "saved_models", "quiet": True}
