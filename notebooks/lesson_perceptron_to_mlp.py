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
# # Lesson: from the perceptron to the MLP
#
# Three small experiments that every later task in dlapps builds on:
# 1. A **perceptron** (one linear unit + threshold) learns AND but can never learn XOR:
#    XOR is not linearly separable.
# 2. A **multilayer perceptron** with one hidden layer learns XOR: the hidden layer bends the
#    input space so that a line separates the classes.
# 3. **Activations and initialisation** decide whether gradients survive a deep stack.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo") == "smoke"
keras.utils.set_random_seed(0)
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
AND = np.array([0, 0, 0, 1], dtype="float32")
XOR = np.array([0, 1, 1, 0], dtype="float32")

# %% [markdown]
# ## 1. The perceptron rule
# Rosenblatt's rule: for each misclassified example, move the weights towards it,
# `w += lr * (y - ŷ) * x`. It converges whenever a separating line exists.

# %%
def perceptron(X, y, epochs=20, lr=0.1):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        for xi, yi in zip(X, y):
            error = yi - float(w @ xi + b > 0)
            w, b = w + lr * error * xi, b + lr * error
    return (X @ w + b > 0).astype("float32")


print("AND learned:", np.array_equal(perceptron(X, AND), AND))
print("XOR learned:", np.array_equal(perceptron(X, XOR), XOR))

# %% [markdown]
# ## 2. An MLP solves XOR
# Two hidden `tanh` units are enough; we train with binary cross-entropy and Adam.

# %%
inputs = keras.Input(shape=(2,))
hidden = keras.layers.Dense(4, activation="tanh")(inputs)
outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
mlp = keras.Model(inputs, outputs)
mlp.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
history = mlp.fit(X, XOR, epochs=300, verbose=0)
print("XOR predictions:", mlp.predict(X, verbose=0).ravel().round(2))
assert np.array_equal(mlp.predict(X, verbose=0).ravel() > 0.5, XOR > 0.5)

# %% [markdown]
# The decision surface: the hidden layer has folded the plane so that (0,1) and (1,0) land
# on one side and (0,0), (1,1) on the other.

# %%
grid = np.stack(np.meshgrid(np.linspace(-0.5, 1.5, 100), np.linspace(-0.5, 1.5, 100)), -1).reshape(-1, 2)
surface = mlp.predict(grid, verbose=0).reshape(100, 100)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
left.contourf(np.linspace(-0.5, 1.5, 100), np.linspace(-0.5, 1.5, 100), surface, levels=20, cmap="RdBu_r")
left.scatter(X[:, 0], X[:, 1], c=XOR, cmap="RdBu_r", edgecolors="black", s=120)
left.set_title("MLP decision surface on XOR")
right.plot(history.history["loss"])
right.set_title("training loss"); right.set_xlabel("epoch")
plt.show()

# %% [markdown]
# ## 3. Activations, initialisation and vanishing gradients
# We stack 20 dense layers and look at the gradient norm reaching the first layer.
# Sigmoid squashes gradients (its derivative is at most 1/4); ReLU with He initialisation
# keeps their scale; SELU with LeCun-normal initialisation self-normalises.

# %%
import tensorflow as tf  # noqa: E402

x = np.random.default_rng(0).normal(size=(256, 32)).astype("float32")
y = np.random.default_rng(1).normal(size=(256, 1)).astype("float32")
depth = 8 if QUICK else 20
results = {}
for activation, initializer in [("sigmoid", "glorot_uniform"), ("tanh", "glorot_uniform"),
                                ("relu", "he_normal"), ("selu", "lecun_normal")]:
    layers = [keras.layers.Dense(64, activation=activation, kernel_initializer=initializer) for _ in range(depth)]
    model = keras.Sequential([keras.Input(shape=(32,)), *layers, keras.layers.Dense(1)])
    with tf.GradientTape() as tape:
        loss = keras.losses.mean_squared_error(y, model(x))
    gradients = tape.gradient(loss, [layer.kernel for layer in layers])
    results[activation] = [float(tf.norm(g)) for g in gradients]

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, norms in results.items():
    ax.semilogy(range(1, depth + 1), norms, marker="o", label=name)
ax.set_xlabel("layer (1 = nearest the input)"); ax.set_ylabel("gradient norm"); ax.legend()
plt.show()
print({name: f"first/last layer gradient ratio {norms[0] / norms[-1]:.2g}" for name, norms in results.items()})

# %% [markdown]
# Next: `notebooks/tabular.py` puts these pieces (depth, activations, dropout, L2, batch
# norm, optimizers, early stopping) to work on real data.
