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


def test_command_line_train_options_reach_the_run(tmp_path, monkeypatch, capsys):
    """README claims, from the command line on the tiny task: list, list --keys, --config, --set, --seed,
    --deterministic, --strategy mirrored --devices cpu:2, --precision, --overwrite, best.keras, tensorboard/."""
    import json

    import numpy as np
    import tiny_task

    from dlapps import cli
    from dlapps.runs import load_model

    tiny_task.register(monkeypatch)
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "tiny" in listing and "mnist" in listing and TINY.summary in listing
    assert cli.main(["list", "--keys", "tiny"]) == 0
    assert "units" in capsys.readouterr().out

    settings = tmp_path / "tuned.toml"
    settings.write_text("[config]\nunits = 3\nepochs = 3\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    command = ["train", "tiny", "--profile", "smoke", "--config", str(settings), "--set", "learning_rate=0.02",
               "--seed", "7", "--deterministic", "--strategy", "mirrored", "--devices", "cpu:2",
               "--run-dir", str(run_dir), "--quiet"]
    assert cli.main(command) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["units"] == 3 and saved["config"]["epochs"] == 3  # the file beats the profile
    assert saved["config"]["learning_rate"] == 0.02  # --set beats the file
    assert saved["runtime"]["seed"] == 7 and saved["runtime"]["deterministic"] is True
    assert saved["runtime"]["strategy"] == "mirrored" and saved["replicas"] == 2
    first = json.loads((run_dir / "metrics.json").read_text())
    assert (run_dir / "best.keras").exists() and any((run_dir / "tensorboard").rglob("events.out.tfevents*"))

    # The same run directory again: refused (exit 2, one line) unless --overwrite; same seed, same metrics.
    capsys.readouterr()
    assert cli.main(command) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(command + ["--overwrite"]) == 0
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["test"] == first["test"]

    # --precision: the saved model computes in float16 with float32 variables; best.keras is the best epoch.
    other = tmp_path / "mixed"
    assert cli.main(["train", "tiny", "--profile", "smoke", "--precision", "mixed_float16", "--run-dir", str(other),
                     "--quiet"]) == 0
    model, _ = load_model(other / "model.keras")
    dense = [layer for layer in model.layers if layer.weights][0]
    assert dense.dtype_policy.name == "mixed_float16" and dense.compute_dtype == "float16"
    best, _ = load_model(other / "best.keras")
    history = json.loads((other / "metrics.json").read_text())
    val = tiny_task.load_data(None).val.batch(8)
    val_loss = best.evaluate(val, verbose=0, return_dict=True)["loss"]
    losses = [float(line.split(",")[header.index("val_loss")]) for header in
              [(other / "history.csv").read_text().splitlines()[0].split(",")]
              for line in (other / "history.csv").read_text().splitlines()[1:]]
    assert val_loss == pytest.approx(min(losses), rel=1e-2) and np.isfinite(history["test"]["loss"])


EXPECTED_OPTIMIZERS = {  # name -> (class, SGD momentum, nesterov), written from the README's list
    "sgd": ("SGD", 0.0, False), "momentum": ("SGD", 0.9, False), "nesterov": ("SGD", 0.9, True),
    "rmsprop": ("RMSprop", None, None), "adam": ("Adam", None, None), "adamw": ("AdamW", None, None),
    "nadam": ("Nadam", None, None), "adamax": ("Adamax", None, None)}


@pytest.mark.parametrize("schedule", ["constant", "cosine", "exponential", "plateau", "onecycle"])
def test_every_optimizer_and_schedule_builds_and_steps(schedule):
    import numpy as np

    from dlapps import optim

    assert set(EXPECTED_OPTIMIZERS) == set(optim.OPTIMIZERS) and schedule in optim.SCHEDULES
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    for name, (class_name, momentum, nesterov) in EXPECTED_OPTIMIZERS.items():
        cfg = TinyConfig(optimizer=name, lr_schedule=schedule, learning_rate=0.05)
        optimizer = optim.make_optimizer(cfg, {"steps_per_epoch": 4})
        # The keras class named (its OneCycle subclass under onecycle, for those with a momentum).
        assert any(base.__name__ == class_name and base.__module__.startswith("keras")
                   for base in type(optimizer).__mro__), (name, type(optimizer))
        if momentum is not None:
            assert optimizer.momentum == pytest.approx(momentum) and optimizer.nesterov is nesterov, name
        if schedule in ("cosine", "exponential", "onecycle"):
            assert isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule), name
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros")])
        model.compile(optimizer, "mse")
        first = float(model.train_on_batch(x, y))
        for _ in range(3):
            last = float(model.train_on_batch(x, y))
        assert np.isfinite(last) and last < first, (name, schedule, first, last)


def test_python_api_wrappers(tmp_path, monkeypatch):
    """dlapps.train / evaluate / tune: a profile and --set-like overrides, as the README shows."""
    import tiny_task

    import dlapps

    tiny_task.register(monkeypatch)
    result = dlapps.train("tiny", "smoke", sets={"units": "3"}, runs_root=tmp_path / "runs", quiet=True)
    assert result.run_dir.parent == tmp_path / "runs" / "tiny"
    assert result.model.layers[1].units == 3 and len(result.history["loss"]) == 2  # smoke: 2 epochs
    metrics = dlapps.evaluate("tiny", model_path=result.run_dir)
    assert metrics["loss"] == pytest.approx(result.metrics["test"]["loss"], rel=1e-5)
    tuned = dlapps.tune("tiny", "smoke", max_trials=2, run_dir=tmp_path / "tune", quiet=True)
    assert len(tuned.trials) == 2 and 2 <= tuned.best_config.units <= 16


def test_the_model_card_repeats_the_runtime_flags_that_trained_it(runs):
    cfg = dataclasses.replace(TinyConfig(), epochs=1)
    training.train(TINY, cfg, Runtime(precision="mixed_bfloat16", jit=True), save=True, **runs)
    card = (runs["saved_models_root"] / "tiny" / "README.md").read_text()
    assert "--config saved_models/tiny/config.toml --precision mixed_bfloat16 --jit --save --overwrite" in card
