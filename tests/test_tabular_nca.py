"""tabular model=nca (ModernNCA): the soft-neighbour formula, self-masking, neighbourhood sampling,
the candidate rows written before training, and training, saving and tuning through the CLI paths."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pandas as pd
import pytest

import dlapps
from dlapps import config, training, tuning
from dlapps.runs import load_model
from dlapps.runtime import Runtime
from dlapps.tasks.tabular.nca import ModernNCA
from test_tabular import mixed_csv

TASK = dlapps.get_task("tabular")


def nca(**overrides):
    return config.resolve(TASK, "smoke", {"model": "nca", "units": 32, "depth": 0, "learning_rate": 0.01,
                                          "optimizer": "adamw", **overrides})


def identity_layer(candidates, targets, **kwargs) -> ModernNCA:
    """A ModernNCA over two 'other' columns whose embedding is the identity: distances are the inputs'."""
    layer = ModernNCA(len(candidates), numeric=0, other=2, units=2, **kwargs)
    layer.build((None, 2))
    layer.projection.set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    layer.set_candidates(np.asarray(candidates, "float32"), np.asarray(targets, "float32"))
    return layer


def soft_neighbours(query, candidates, targets, temperature=1.0):
    distances = np.linalg.norm(np.asarray(candidates) - np.asarray(query), axis=1)
    weights = np.exp(-distances / temperature)
    return float(weights @ np.asarray(targets) / weights.sum())


CANDIDATES, TARGETS = [[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], [1.0, 2.0, 4.0]


def test_prediction_is_the_softmax_of_negative_distances_over_every_candidate():
    layer = identity_layer(CANDIDATES, TARGETS, temperature=0.5)
    queries = np.array([[0.2, 0.1], [0.0, 2.0]], "float32")
    predicted = np.asarray(layer(queries, training=False)).ravel()
    expected = [soft_neighbours(q, CANDIDATES, TARGETS, 0.5) for q in queries]
    np.testing.assert_allclose(predicted, expected, rtol=1e-4)


def test_in_training_a_row_is_not_its_own_neighbour():
    layer = identity_layer(CANDIDATES, TARGETS, sample_rate=1.0)
    row = np.array([CANDIDATES[0]], "float32")
    trained = float(np.asarray(layer(row, training=True))[0, 0])
    assert trained == pytest.approx(soft_neighbours(CANDIDATES[0], CANDIDATES[1:], TARGETS[1:]), rel=1e-4)
    # Evaluation keeps every candidate, the row itself included (it is nearest: its target weighs most).
    evaluated = float(np.asarray(layer(row, training=False))[0, 0])
    assert evaluated == pytest.approx(soft_neighbours(CANDIDATES[0], CANDIDATES, TARGETS), rel=1e-4)
    assert evaluated < trained


def test_each_training_step_compares_with_a_fresh_sample_of_the_candidates():
    """sample_rate=0.5 of 4 candidates: with a huge temperature (equal weights) each training output is
    the mean of the targets of 2 distinct candidates, and the pair changes from step to step."""
    candidates = [[10.0, 0.0], [20.0, 0.0], [30.0, 0.0], [40.0, 0.0]]
    targets = [0.0, 1.0, 10.0, 100.0]
    layer = identity_layer(candidates, targets, sample_rate=0.5, temperature=1e6, seed=3)
    pair_means = np.array([(a + b) / 2 for i, a in enumerate(targets) for b in targets[i + 1:]])
    seen = [float(np.asarray(layer(np.zeros((1, 2), "float32"), training=True))[0, 0]) for _ in range(30)]
    nearest = [pair_means[np.argmin(np.abs(pair_means - value))] for value in seen]
    np.testing.assert_allclose(seen, nearest, atol=0.01)
    assert len(set(nearest)) > 2


def test_candidates_of_the_wrong_shape_are_refused_and_the_layer_round_trips():
    layer = identity_layer(CANDIDATES, TARGETS, temperature=0.7)
    with pytest.raises(ValueError, match="holds"):
        layer.set_candidates(np.zeros((2, 2), "float32"), np.zeros(2, "float32"))
    copy = ModernNCA.from_config(layer.get_config())
    copy.build((None, 2))
    copy.set_weights(layer.get_weights())
    queries = np.array([[0.5, 0.5]], "float32")
    np.testing.assert_allclose(np.asarray(copy(queries)), np.asarray(layer(queries)))


@pytest.mark.parametrize("encoding", ["periodic", "piecewise"])
def test_trains_on_categories_and_gaps_stores_the_training_rows_and_round_trips(tmp_path, runs, encoding):
    path = mixed_csv(tmp_path / "prices.csv")
    cfg = nca(data=str(path), target="price", epochs=40, numeric_encoding=encoding, periodic_sigma=0.1)
    result = training.train(TASK, cfg, **runs)
    test = result.metrics["test"]
    assert test["r2"] > 0.8, test  # the category and the gaps are used, not ignored
    # The candidates are the training rows: their standardised targets, in the training set's order.
    info = result.data.info
    train_targets = np.concatenate([y for _, y in result.data.train.batch(512).as_numpy_iterator()])
    layer = result.model.get_layer("neighbours")
    np.testing.assert_allclose(np.asarray(layer.candidate_targets) * info["target_std"] + info["target_mean"],
                               train_targets, rtol=1e-5, atol=1e-3)
    assert layer.candidate_features.shape == (info["train_size"], layer.width)

    rows = ["0.5,red,,", "0.5,blue,1.0", "-1,green,"]
    before = TASK.predict(result.model, rows, info, cfg, {})
    loaded, loaded_info = load_model(result.run_dir / "model.keras")
    assert TASK.predict(loaded, rows, loaded_info, cfg, {}) == before
    red, blue = (float(line.split("=")[1].replace(",", "")) for line in before[:2])
    assert red - blue > 20  # 'red' adds +5 * 10 to the price in the generator


def test_many_category_columns_are_embedded_ids(tmp_path, runs):
    rng = np.random.default_rng(5)
    rows = 600
    effect = {f"city{k:02d}": (60.0 if k % 2 else -60.0) for k in range(30)}
    city = rng.choice(sorted(effect), size=rows)
    x = rng.normal(size=rows)
    price = 100 + 30 * x + np.array([effect[c] for c in city]) + rng.normal(size=rows)
    path = tmp_path / "cities.csv"
    pd.DataFrame({"x": x, "city": city, "price": price}).to_csv(path, index=False)
    result = training.train(TASK, nca(data=str(path), target="price", epochs=40), **runs)
    layer = result.model.get_layer("neighbours")
    assert layer.vocabularies == [30] and layer.id_embeddings[0].input_dim == 31  # 30 cities + unknown
    assert result.metrics["test"]["r2"] > 0.9, result.metrics["test"]  # the cities' +-60 are learned


def test_two_replicas_train_the_same_model(runs):
    result = training.train(TASK, nca(epochs=10), Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2
    assert result.metrics["test"]["rmse"] < 0.9 * result.metrics["test"]["rmse_predicting_mean"]


def test_mixed_precision_and_xla_keep_the_neighbour_search_in_float32(runs):
    result = training.train(TASK, nca(epochs=10, depth=1), Runtime(precision="mixed_bfloat16", jit=True), **runs)
    layer = result.model.get_layer("neighbours")
    assert result.model.jit_compile and result.model.dtype_policy.name == "mixed_bfloat16"
    assert layer.projection.compute_dtype == layer.residual[0][1].compute_dtype == "float32"
    assert result.metrics["test"]["rmse"] < 0.9 * result.metrics["test"]["rmse_predicting_mean"]


def test_a_tuning_trial_gets_the_training_rows_too(tmp_path):
    """KerasTuner builds the models of a search: `before_fit` must fill each trial's candidates, or
    every prediction is the mean (all candidate targets zero)."""
    cfg = nca(epochs=15)
    result = tuning.tune(TASK, cfg, max_trials=1, run_dir=tmp_path / "tune", quiet=True,
                         search={"units": {"type": "fixed", "value": 32}})
    val = TASK.load_data(cfg).val
    targets = np.concatenate([y for _, y in val.batch(512).as_numpy_iterator()])
    predicting_mean = math.sqrt(np.mean((targets - np.mean(targets)) ** 2))
    assert result.best_score < 0.9 * predicting_mean


def test_bad_settings_are_user_errors():
    info = TASK.load_data(nca()).info
    for key, value in (("sample_rate", 0.0), ("sample_rate", 1.5), ("temperature", 0.0), ("ensemble", 4)):
        with pytest.raises(dlapps.UserError, match=key):
            TASK.build_model(dataclasses.replace(nca(), **{key: value}), info)
    assert isinstance(keras.saving.get_registered_object("dlapps>ModernNCA"), type)
