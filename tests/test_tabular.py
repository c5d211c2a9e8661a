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


# ----------------------------------------------------------------------------- column encodings, by hand
def _layer_outputs(model, names, columns):
    """{layer name: output} of `model`'s inner layers for raw `columns` ({column: (n, 1) array})."""
    import keras
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    feed = {name: tf.constant(values) for name, values in columns.items()}
    outputs = probe(feed)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {name: np.asarray(out) for name, out in zip(names, outputs)}


def test_piecewise_encoding_uses_training_quantiles_and_fills_bins_below(tmp_path):
    """numeric_encoding=piecewise: edges are the training quantiles; a value in bin k encodes as 1s for
    the bins below, its fraction of bin k, 0s above, and a last column flags a missing value."""
    rng = np.random.default_rng(0)
    x = rng.permutation(17).astype(float)  # 0..16: with 4 bins the quartiles are 0, 4, 8, 12, 16
    path = tmp_path / "x.csv"
    pd.DataFrame({"x": x, "y": 2 * x + 1}).to_csv(path, index=False)
    cfg = smoke(data=str(path), target="y", numeric_encoding="piecewise", bins=4, val_fraction=0.0,
                test_fraction=0.0)
    data = TASK.load_data(cfg)
    assert data.info["stats"]["x"]["edges"] == [0.0, 4.0, 8.0, 12.0, 16.0]
    model = TASK.build_model(cfg, data.info)
    assert not any(layer.name.startswith("x_norm") for layer in model.layers)  # no z-score in this encoding
    values = np.array([[-3.0], [0.0], [2.0], [4.0], [5.0], [11.0], [16.0], [20.0], [np.nan]], np.float32)
    encoded = _layer_outputs(model, ["x_piecewise"], {"x": values})["x_piecewise"]
    expected = [  # bins [0,4) [4,8) [8,12) [12,16], then the missing flag; written by hand
        [0, 0, 0, 0, 0],        # -3: below the first edge
        [0, 0, 0, 0, 0],        # 0: at the first edge, nothing of bin 1 yet
        [0.5, 0, 0, 0, 0],      # 2: half of bin 1
        [1, 0, 0, 0, 0],        # 4: bin 1 full
        [1, 0.25, 0, 0, 0],     # 5: a quarter of bin 2
        [1, 1, 0.75, 0, 0],     # 11: three quarters of bin 3
        [1, 1, 1, 1, 0],        # 16: the last edge
        [1, 1, 1, 1, 0],        # 20: above it, clipped
        [0, 0, 0, 0, 1],        # missing: all zeros and the flag
    ]
    np.testing.assert_allclose(encoded, expected, atol=1e-6)


def test_piecewise_encoding_learns_and_round_trips_raw_rows(tmp_path, runs):
    path = mixed_csv(tmp_path / "prices.csv")
    cfg = smoke(data=str(path), target="price", epochs=60, learning_rate=0.01, numeric_encoding="piecewise", bins=8)
    result = training.train(TASK, cfg, **runs)
    assert {"x_piecewise", "gappy_piecewise"} <= {layer.name for layer in result.model.layers}
    assert result.metrics["test"]["r2"] > 0.8, result.metrics["test"]
    rows = ["0.5,red,,", "0.5,blue,1.0", "-1,green,"]
    loaded, info = load_model(result.run_dir / "model.keras")
    after = TASK.predict(loaded, rows, info, cfg, {})
    assert after == TASK.predict(result.model, rows, result.data.info, cfg, {})
    red, blue, green = (float(line.split("=")[1].replace(",", "")) for line in after)
    assert red - blue > 20 and blue - green > 20  # red +50, blue 0, green -50 (and x -1: -30) in the generator


def test_log1p_only_for_long_tailed_non_negative_columns(tmp_path):
    """The model's normalisation of each numeric column, against numpy on the training values."""
    rng = np.random.default_rng(3)
    rows = 400
    counts = np.round(rng.lognormal(2.0, 1.5, size=rows))          # non-negative, long right tail
    signed = rng.lognormal(2.0, 1.5, size=rows) - 3.0               # as long-tailed, but has negatives
    plain = rng.uniform(0, 10, size=rows)                           # non-negative, not long-tailed
    frame = pd.DataFrame({"counts": counts, "signed": signed, "plain": plain, "y": rng.normal(size=rows)})
    assert signed.min() < 0 and pd.Series(signed).skew() > 2 and pd.Series(counts).skew() > 2
    path = tmp_path / "tails.csv"
    frame.to_csv(path, index=False)
    cfg = smoke(data=str(path), target="y", val_fraction=0.0, test_fraction=0.0)  # every row is training
    data = TASK.load_data(cfg)
    model = TASK.build_model(cfg, data.info)
    names = {layer.name for layer in model.layers}
    assert "counts_log1p" in names and "signed_log1p" not in names and "plain_log1p" not in names

    probe = {"counts": [0.0, 1.0, 20.0, 5000.0], "signed": [-2.0, 0.0, 7.0, 300.0], "plain": [0.0, 2.5, 5.0, 9.9]}
    feed = {c: np.array(v, np.float32).reshape(-1, 1) for c, v in probe.items()}
    out = _layer_outputs(model, ["counts_norm", "signed_norm", "plain_norm"], feed)
    logged = np.log1p(counts)
    np.testing.assert_allclose(out["counts_norm"].ravel(),
                               (np.log1p(probe["counts"]) - logged.mean()) / logged.std(), rtol=1e-4, atol=1e-4)
    for column, values in (("signed", signed), ("plain", plain)):
        np.testing.assert_allclose(out[f"{column}_norm"].ravel(), (np.array(probe[column]) - values.mean())
                                   / values.std(), rtol=1e-4, atol=1e-4)
    # log_skewed=false turns it off.
    plain_cfg = dataclasses.replace(cfg, log_skewed=False)
    model = TASK.build_model(plain_cfg, TASK.load_data(plain_cfg).info)
    assert not any(layer.name.endswith("_log1p") for layer in model.layers)


def test_many_category_columns_are_embedded_few_are_one_hot_and_raw_rows_round_trip(tmp_path, runs):
    """A string column of more than `one_hot_max` categories gets an Embedding; up to it, one-hot."""
    import keras

    rng = np.random.default_rng(5)
    limit = TASK.Config().one_hot_max
    rows = 600
    city_effect = {f"city{k:02d}": (60.0 if k % 2 else -60.0) for k in range(30)}
    city = rng.choice(sorted(city_effect), size=rows)
    at_limit = rng.choice([f"kind{k}" for k in range(limit)], size=rows)      # exactly one_hot_max categories
    over = rng.choice([f"zone{k}" for k in range(limit + 1)], size=rows)      # one more
    x = rng.normal(size=rows)
    price = 100 + 30 * x + np.array([city_effect[c] for c in city]) + rng.normal(size=rows)
    path = tmp_path / "cities.csv"
    pd.DataFrame({"x": x, "city": city, "kind": at_limit, "zone": over, "price": price}).to_csv(path, index=False)
    cfg = smoke(data=str(path), target="price", epochs=40, learning_rate=0.01)
    result = training.train(TASK, cfg, **runs)
    model = result.model
    embedding = model.get_layer("city_embedding")
    assert isinstance(embedding, keras.layers.Embedding)
    assert (embedding.input_dim, embedding.output_dim) == (31, cfg.embedding_dim)  # 30 cities + unknown
    assert isinstance(model.get_layer("zone_embedding"), keras.layers.Embedding)
    one_hot = _layer_outputs(model, ["kind_onehot"], {"x": np.zeros((2, 1), np.float32),
                                                      "city": np.array([["city00"], ["city01"]]),
                                                      "kind": np.array([["kind3"], ["nope"]]),
                                                      "zone": np.array([["zone0"], ["zone1"]])})["kind_onehot"]
    assert one_hot.shape == (2, limit + 1) and (one_hot.sum(axis=1) == 1).all()  # one column per kind + unknown
    assert one_hot[0].argmax() != one_hot[1].argmax()
    for name in ("city", "zone"):
        assert not any(layer.name == f"{name}_onehot" for layer in model.layers)

    assert result.metrics["test"]["r2"] > 0.9, result.metrics["test"]  # the cities' +-60 are learned
    rows_in = ["0.0,city01,kind0,zone0", "0.0,city02,kind0,zone0", "1.0,city03,kind5,zone12"]
    loaded, info = load_model(result.run_dir / "model.keras")
    after = TASK.predict(loaded, rows_in, info, cfg, {})
    assert after == TASK.predict(model, rows_in, result.data.info, cfg, {})
    odd, even, _ = (float(line.split("=")[1].replace(",", "")) for line in after)
    assert odd - even > 60  # city01 +60, city02 -60
