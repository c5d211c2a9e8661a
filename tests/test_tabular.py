"""The tabular task: learning, raw-row round trip, CSV handling and every data error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import dlapps
from dlapps import config, training
from dlapps.errors import UserError
from dlapps.runs import load_model
from dlapps.runtime import Runtime

TASK = dlapps.get_task("tabular")


def smoke(**overrides):
    return config.resolve(TASK, "smoke", overrides)


def mixed_csv(path, rows=300, seed=0):
    """A CSV with a numeric target that depends on a number, a category and a column with gaps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    gappy = rng.normal(size=rows)
    target = 3 * x + np.select([colour == "red", colour == "green"], [5.0, -5.0], 0.0) + gappy
    gappy[rng.random(rows) < 0.2] = np.nan
    frame = pd.DataFrame({"x": x, "colour": colour, "gappy": gappy, "price": 100 + 10 * target})
    frame.to_csv(path, index=False)
    return path


def test_smoke_training_learns(runs):
    result = training.train(TASK, smoke(), **runs)
    history = result.history
    assert history["val_loss"][-1] < 0.8 * history["val_loss"][0]
    test = result.metrics["test"]
    assert test["rmse"] < 0.85 * test["rmse_predicting_mean"]
    assert (result.run_dir / "plots" / "predicted_vs_true.png").exists()


@pytest.mark.parametrize("encoding", ["standardize", "periodic"])
def test_csv_with_categories_and_missing_values_round_trips_raw_rows(tmp_path, runs, encoding):
    path = mixed_csv(tmp_path / "prices.csv")
    cfg = smoke(data=str(path), target="price", epochs=60, learning_rate=0.01, numeric_encoding=encoding,
                periodic_sigma="0.1")
    result = training.train(TASK, cfg, **runs)
    test = result.metrics["test"]
    assert test["r2"] > 0.8, test  # the category and the gaps are used, not ignored
    rows = ["0.5,red,,", "0.5,blue,1.0", "-1,green,"]
    before = TASK.predict(result.model, rows, result.data.info, cfg, {})
    loaded, info = load_model(result.run_dir / "model.keras")
    after = TASK.predict(loaded, rows, info, cfg, {})
    assert before == after and len(after) == 3
    red, blue = (float(line.split("=")[1].replace(",", "")) for line in after[:2])
    assert red - blue > 20  # 'red' adds +5 * 10 to the price in the generator


def test_periodic_encoding_waves_and_gaps():
    from dlapps.layers import PeriodicEncoding

    layer = PeriodicEncoding(frequencies=4, sigma=0.5)
    waves = np.asarray(layer(np.array([[0.0], [1.0], [np.nan]], "float32")))
    assert waves.shape == (3, 8) and np.isfinite(waves).all()
    np.testing.assert_allclose(waves[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-6)  # cos 0, sin 0
    np.testing.assert_allclose(waves[2], waves[0])  # a gap encodes as the mean (0); ImputeMissing flags it
    coefficients = np.asarray(layer.coefficients)
    np.testing.assert_allclose(waves[1], np.concatenate([np.cos(2 * np.pi * coefficients),
                                                         np.sin(2 * np.pi * coefficients)]), atol=1e-5)
    assert layer.coefficients.trainable
    with pytest.raises(UserError, match="numeric_encoding"):
        TASK.build_model(smoke(numeric_encoding="fourier"), {})


def test_same_seed_deterministic_runs_give_identical_metrics(runs, tmp_path):
    runtime = Runtime(deterministic=True, seed=7)
    first = training.train(TASK, smoke(epochs=5), runtime, **{**runs, "runs_root": tmp_path / "a"})
    second = training.train(TASK, smoke(epochs=5), runtime, **{**runs, "runs_root": tmp_path / "b"})
    assert first.metrics["test"] == second.metrics["test"]


def test_mirrored_strategy_on_two_logical_cpus(runs):
    result = training.train(TASK, smoke(epochs=5), Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2
    assert result.metrics["global_batch_size"] == 2 * smoke().batch_size
    assert result.metrics["test"]["rmse"] < result.metrics["test"]["rmse_predicting_mean"]


def test_evaluate_a_saved_model_on_a_whole_file(tmp_path, runs):
    path = mixed_csv(tmp_path / "prices.csv")
    cfg = smoke(data=str(path), target="price", epochs=30)
    result = training.train(TASK, cfg, **runs)
    other = mixed_csv(tmp_path / "other.csv", rows=50, seed=1)
    metrics = training.evaluate(TASK, result.run_dir / "model.keras", dataclasses.replace(cfg, data=str(other)))
    assert metrics["n"] == 50 and np.isfinite(metrics["rmse"])


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("a,b\n", "no rows"),
    ("a,b\n1,2\n", "target column 'price' not in the data"),
    ("a,price\n1,cheap\n2,dear\n", "not numeric"),
    ("a,b,price\n1,,3\n2,,4\n", "column 'b' has no values"),
    ("price\n1\n2\n", "no feature columns"),
])
def test_bad_csv_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        TASK.load_data(smoke(data=str(path), target="price"))


def test_missing_file_and_bad_source():
    with pytest.raises(UserError, match="not found"):
        TASK.load_data(smoke(data="/nonexistent/file.csv"))
    with pytest.raises(UserError, match="source = 'nowhere': choose one of embedded, california_housing, file"):
        smoke(source="nowhere")
    with pytest.raises(UserError, match="unknown source 'nowhere'"):
        TASK.load_data(TASK.config(source="nowhere"))


def test_predict_rejects_rows_of_the_wrong_width(runs):
    result = training.train(TASK, smoke(epochs=1), **runs)
    with pytest.raises(UserError, match="fields"):
        TASK.predict(result.model, ["1,2"], result.data.info, smoke(), {})


def test_mixed_precision_and_xla_still_learn(runs):
    result = training.train(TASK, smoke(), Runtime(precision="mixed_bfloat16", jit=True), **runs)
    assert result.model.dtype_policy.name == "mixed_bfloat16" and result.model.jit_compile
    assert result.model.output.dtype == "float32"  # the regression head stays in float32
    assert result.metrics["test"]["rmse"] < 0.9 * result.metrics["test"]["rmse_predicting_mean"]


def test_mirrored_with_a_first_batch_that_splits_unevenly(runs):
    """Validation and test splits of 67 rows reach the replicas as 34 + 33 (keras failed with AddN)."""
    result = training.train(TASK, smoke(epochs=2, batch_size=256), Runtime(strategy="mirrored", devices="cpu:2"),
                            **runs)
    assert result.metrics["replicas"] == 2 and result.metrics["test"]["n"] == 67


def test_packed_ensemble_trains_each_member_on_its_own_error_and_round_trips(tmp_path, runs):
    """ensemble=k: k MLPs in one model; the training loss is the mean of the members' own losses."""
    import keras

    from dlapps.tasks.tabular.model import EnsembleMean

    members = np.array([[1.0, 3.0], [0.0, 4.0]], np.float32)
    layer = EnsembleMean()
    np.testing.assert_allclose(np.asarray(layer(members, training=False)), [[2.0], [2.0]])
    layer(members, training=True)
    # spread = mean (p_i - mean)^2 = 2.5; + error(mean)^2 for y = 0 (4.0) = mean member error 6.5
    assert float(layer.losses[-1]) == pytest.approx(2.5)
    assert 4.0 + 2.5 == pytest.approx(float(np.mean(members ** 2)))

    path = mixed_csv(tmp_path / "prices.csv")
    cfg = smoke(data=str(path), target="price", epochs=40, learning_rate=0.01, ensemble=4, batch_norm=True,
                numeric_encoding="periodic", periodic_sigma="0.1")
    result = training.train(TASK, cfg, **runs)
    assert result.model.get_layer("dense_1").kernel.shape == (4, cfg.units, cfg.units)  # 4 members' weights
    assert result.metrics["test"]["r2"] > 0.8, result.metrics["test"]
    loaded, info = load_model(result.run_dir / "model.keras")
    rows = ["0.5,red,,", "0.5,blue,1.0"]
    assert TASK.predict(loaded, rows, info, cfg, {}) == TASK.predict(result.model, rows, result.data.info, cfg, {})
    with pytest.raises(dlapps.UserError, match="ensemble"):
        TASK.build_model(dataclasses.replace(cfg, ensemble=0), result.data.info)
    assert isinstance(keras.saving.get_registered_object("dlapps>EnsembleMean"), type)
