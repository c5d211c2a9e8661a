# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tabular regression with an MLP (and with neighbours)
#
# This tutorial trains a multilayer perceptron (MLP) to predict a number from a table: a
# patient's disease progression (scikit-learn's *diabetes* data, shipped with scikit-learn so it
# works offline) or, with the `full` profile, a California district's median house value.
#
# What you will see:
# 1. **Preprocessing inside the model**: `Normalization` for numbers, `StringLookup` for
#    categories, a missing-value flag — so the saved model takes *raw CSV rows*.
# 2. **The MLP toolbox**: depth and width, activations, dropout, L2, batch norm, optimizers.
# 3. **Losses and metrics**: the loss is the mean squared error on a standardised target;
#    RMSE, MAE and R² are reported in the target's own units.
# 4. **Early stopping** and learning curves that show over-fitting when it happens.
# 5. **ModernNCA**, a model that predicts from the training rows nearest in a learned embedding.

# %%
import os

import numpy as np

import dlapps
from dlapps import config, runs, training
from dlapps.data.pipeline import batched

PROFILE = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo")
task = dlapps.get_task("tabular")
cfg = config.resolve(task, PROFILE)
cfg

# %% [markdown]
# ## The data
# `load_data` returns *unbatched* `tf.data` datasets of `(columns, target)` and an `info` dict
# with everything the model needs to know about the data (column kinds, statistics of the
# training split only — never peek at validation data when fitting preprocessing).

# %%
data = task.load_data(cfg)
print(data.info["source_description"])
print("training rows:", data.info["train_size"])
features, target = next(iter(data.train))
{name: float(value[0]) for name, value in features.items()}, float(target)

# %% [markdown]
# ## The model
# Each numeric column goes through `Normalization` (z-score with the training mean and
# variance) and a missing-value flag; string columns are one-hot encoded (or embedded when
# they have many categories). The MLP is a stack of `Dense → activation (→ dropout)` layers
# ending in one linear unit, rescaled back to the target's units.

# %%
data.info["steps_per_epoch"] = 10
model = task.build_model(cfg, data.info)
model.summary(line_length=100)

# %% [markdown]
# ## Training
# `training.train` is what `dlapps train tabular` runs: it batches and shuffles the data,
# calls `model.fit` with early stopping, checkpoints, TensorBoard, a CSV log and
# `BackupAndRestore`, then evaluates and writes a run directory.

# %%
result = training.train(task, cfg, runs_root="runs", quiet=True)
result.metrics

# %% [markdown]
# Is the model any good? Compare the RMSE with the RMSE of always predicting the training mean
# (`rmse_predicting_mean`): R² = 1 − MSE/variance measures exactly that ratio.

# %%
from IPython.display import Image, display  # noqa: E402

display(Image(str(result.run_dir / "plots" / "learning_curves.png")))
display(Image(str(result.run_dir / "plots" / "predicted_vs_true.png")))
test = result.metrics["test"]
y_test = np.array([float(y) for _, y in data.test.as_numpy_iterator()])
print(f"test RMSE {test['rmse']:.1f} vs {test['rmse_predicting_mean']:.1f} for the training mean; R² {test['r2']:.3f}")
assert np.isclose(test["r2"], 1 - test["rmse"] ** 2 / y_test.var(), rtol=1e-3, atol=1e-4)  # R² = 1 - MSE/variance

# %% [markdown]
# ## Optimizers compared
# The same network with plain SGD, momentum, Nesterov and Adam, a few epochs each.
# Momentum accumulates a velocity along consistent gradient directions; Adam also rescales
# each parameter's step by a running estimate of the gradient's magnitude.

# %%
import dataclasses  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402

train_batches = batched(data.train, 32, shuffle=True, cache=True, seed=0)
val_batches = batched(data.val, 256, cache=True)
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ["sgd", "momentum", "nesterov", "adam"]:
    variant = dataclasses.replace(cfg, optimizer=name, learning_rate=0.003)
    fit = task.build_model(variant, data.info).fit(train_batches, validation_data=val_batches,
                                                   epochs=min(cfg.epochs, 30), verbose=0)
    ax.plot(fit.history["val_loss"], label=name)
ax.set_xlabel("epoch"); ax.set_ylabel("validation loss"); ax.set_yscale("log"); ax.legend()
plt.show()

# %% [markdown]
# ## Predicting raw rows
# The saved model takes the raw columns, in the CSV's order (the target may be left out).

# %%
loaded, info = runs.load_model(result.run_dir / "model.keras")
lines = task.predict(loaded, ["59,2,32.1,101,157,93.2,38,4,4.8598,87"], info, cfg, {})
assert len(lines) == 1 and lines[0].startswith(info["target"])
lines

# %% [markdown]
# ## Neighbours instead of layers: ModernNCA
# `model=nca` predicts a row's target as a weighted mean of the *training rows'* targets, weighted
# by closeness in an embedding the network learns (Ye et al. 2024, "ModernNCA": neighbourhood
# component analysis, Goldberger et al. 2004, with periodic embeddings and modern training).
# For a row $x$ with embedding $\phi(x)$, the weight of training row $i$ is
# $w_i = \mathrm{softmax}_i(-\lVert \phi(x) - \phi(x_i) \rVert)$ and the prediction is
# $\sum_i w_i y_i$. The training rows are stored in the model, so it is a *retrieval* model: a row
# of its own training set would find itself, which is why training masks it and why it must be
# judged on held-out rows only.

# %%
nca_cfg = dataclasses.replace(cfg, model="nca", units=64, depth=0, learning_rate=0.01, optimizer="adamw")
nca_result = training.train(task, nca_cfg, runs_root="runs", quiet=True)
print(f"test RMSE: MLP {test['rmse']:.1f}, ModernNCA {nca_result.metrics['test']['rmse']:.1f} "
      f"(training mean {test['rmse_predicting_mean']:.1f})")

# %% [markdown]
# Which training rows does one held-out row listen to? The layer's `embed` is $\phi$; the bars are
# the 20 largest weights, coloured by those rows' targets, and the prediction is their weighted mean.

# %%
import keras  # noqa: E402

layer = nca_result.model.get_layer("neighbours")
assert layer.candidate_features.shape[0] == data.info["train_size"]  # the training rows, stored
encoder = keras.Model(nca_result.model.input, layer.input)
row, _ = next(iter(batched(data.test, 1)))
query = layer.embed(encoder(row))
keys = layer.embed(layer.candidate_features)
distances = np.linalg.norm(np.asarray(keys) - np.asarray(query), axis=1)
weights = np.exp(-(distances - distances.min()) / layer.temperature)
weights /= weights.sum()
targets = np.asarray(layer.candidate_targets) * data.info["target_std"] + data.info["target_mean"]
top = np.argsort(weights)[::-1][:20]
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(range(20), weights[top], color=plt.cm.viridis((targets[top] - targets.min()) / np.ptp(targets)))
ax.set_xlabel("nearest training rows"); ax.set_ylabel("weight")
ax.set_title(f"20 rows carry {weights[top].sum():.0%} of the weight")
plt.show()
predicted = float(np.asarray(nca_result.model.predict_on_batch(row)).ravel()[0])
print(f"prediction {predicted:.1f} = weighted mean of the training targets {weights @ targets:.1f}")
assert np.isclose(predicted, weights @ targets, rtol=1e-3)  # the prediction is that weighted mean

# %% [markdown]
# On a few hundred patients the comparison above is one short run of each, and can go either way.
# On California housing,
# where districts near each other on the map have similar prices, ModernNCA (the `full` profile)
# beats both the tuned MLP and gradient-boosted trees; the committed model's card has the table.

# %%
from pathlib import Path  # noqa: E402

card = (Path(dlapps.__file__).resolve().parents[1] / "saved_models" / "tabular" / "README.md").read_text()
assert "**43,278**" in card and "**47,293**" in card and "**48,120**" in card  # ModernNCA, trees, MLP (val RMSE)

# %% [markdown]
# ## Your own CSV
# `dlapps train tabular --data my.csv --set target=COLUMN` — numbers, strings and missing
# values are handled. For California housing: `--profile full --data housing.csv`.
