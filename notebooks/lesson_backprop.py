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
# # Lesson 2: backpropagation by hand
#
# Training a network means following the gradient of the loss with respect to every weight.
# **Backpropagation** (Rumelhart, Hinton & Williams 1986; Linnainmaa's 1970 reverse-mode
# automatic differentiation) computes all of them in one backward pass, by applying the chain
# rule from the loss back to the inputs.
#
# This lesson:
# 1. runs the backward pass on a five-node computation graph and draws it;
# 2. writes a two-layer MLP in NumPy, forward and backward, and checks its gradients against
#    finite differences and against `tf.GradientTape` (relative error < 1e-6);
# 3. trains it on real data (scikit-learn's 8x8 digits, the embedded data of the `mnist` task)
#    three ways: a NumPy loop, the same loop with `GradientTape`, and `model.fit`, and shows the
#    three end with the same weights.
#
# Everything is in float64 so that the comparisons measure the algorithm, not round-off.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

QUICK = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo") == "smoke"
keras.config.set_floatx("float64")
keras.utils.set_random_seed(0)


def relative_error(a, b):
    """‖a - b‖ / (‖a‖ + ‖b‖): 0 for equal arrays, 1 for opposite ones."""
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


# %% [markdown]
# ## 1. A computation graph and its backward pass
# One sigmoid neuron with a squared error, `L = (σ(w·x + b) - y)²`, is a chain of four simple
# operations: `u = w·x`, `z = u + b`, `a = σ(z)`, `L = (a - y)²`. The forward pass computes
# each node's value from left to right. The backward pass starts from `∂L/∂L = 1` and walks
# right to left; each node multiplies the gradient arriving from its output by its *local*
# derivative (`∂L/∂a = 2(a - y)`, `∂a/∂z = a(1 - a)`, `∂z/∂u = ∂z/∂b = 1`, `∂u/∂w = x`,
# `∂u/∂x = w`). A node whose output feeds several nodes adds the gradients coming back along
# each path: for `L = u + u²`, `∂L/∂u = 1 + 2u` (checked below with `tf.GradientTape`).

# %%
x_in, w_in, b_in, y_in = 1.5, 0.8, -0.5, 1.0
u = w_in * x_in
z = u + b_in
a = 1 / (1 + np.exp(-z))
L = (a - y_in) ** 2
dL_da = 2 * (a - y_in)
dL_dz = dL_da * a * (1 - a)
dL_du, dL_db = dL_dz, dL_dz
dL_dw, dL_dx = dL_du * x_in, dL_du * w_in

fig, ax = plt.subplots(figsize=(12, 3.4))
# name: (position, forward value, gradient of L with respect to it)
nodes = {"x": ((0, 1), x_in, dL_dx), "w": ((0, -1), w_in, dL_dw), "u = w·x": ((2.2, 0), u, dL_du),
         "b": ((2.2, -1.3), b_in, dL_db), "z = u + b": ((4.4, 0), z, dL_dz), "a = σ(z)": ((6.6, 0), a, dL_da),
         "L = (a - y)²": ((8.8, 0), L, 1.0)}
edges = [("x", "u = w·x"), ("w", "u = w·x"), ("u = w·x", "z = u + b"), ("b", "z = u + b"),
         ("z = u + b", "a = σ(z)"), ("a = σ(z)", "L = (a - y)²")]
for start, end in edges:
    (x0, y0), (x1, y1) = nodes[start][0], nodes[end][0]
    ax.annotate("", (x1 - 0.5, y1), (x0 + 0.35, y0), arrowprops=dict(arrowstyle="->", color="gray"))
for name, ((px, py), value, grad) in nodes.items():
    ax.text(px, py + 0.12, name, ha="center", va="bottom", fontsize=11,
            bbox=dict(boxstyle="round", facecolor="lightyellow", edgecolor="gray"))
    ax.text(px, py - 0.05, f"{value:.3f}", ha="center", va="top", color="black")
    ax.text(px, py - 0.4, f"∂L/∂· = {grad:.3f}", ha="center", va="top", color="crimson")
ax.text(-0.6, -2.45, f"y = {y_in}.  black: forward value of each node (left to right);  "
        "red: gradient of L with respect to it (right to left)", fontsize=10)
ax.set_xlim(-0.8, 9.8); ax.set_ylim(-2.6, 1.7); ax.axis("off")
plt.show()

variables = {name: tf.Variable(value, dtype="float64") for name, value in
             [("x", x_in), ("w", w_in), ("b", b_in)]}
with tf.GradientTape() as tape:
    loss = (tf.sigmoid(variables["w"] * variables["x"] + variables["b"]) - y_in) ** 2
tape_grads = tape.gradient(loss, variables)
print(f"by hand: dL/dw={dL_dw:.6f} dL/db={dL_db:.6f} dL/dx={dL_dx:.6f}")
print("GradientTape:", {name: round(float(g), 6) for name, g in tape_grads.items()})
assert np.isclose(float(loss), L)
by_hand = {"w": dL_dw, "b": dL_db, "x": dL_dx}
assert all(np.isclose(float(tape_grads[k]), v, rtol=1e-12) for k, v in by_hand.items())
u_var = tf.Variable(u)
with tf.GradientTape() as tape:
    two_paths = u_var + u_var ** 2
assert np.isclose(float(tape.gradient(two_paths, u_var)), 1 + 2 * u)

# %% [markdown]
# ## 2. A two-layer MLP in NumPy
# Input `X` (n x 64 pixels), hidden layer `H = tanh(X W₁ + b₁)` (32 units), logits
# `Z = H W₂ + b₂` (10 classes), softmax `P`, and the mean cross-entropy
# `L = -1/n Σᵢ log P[i, yᵢ]`. The backward pass, one line per forward line, in reverse:
#
# | forward | backward (chain rule) |
# |---|---|
# | `L = -mean log P[i, yᵢ]`, `P = softmax(Z)` | `∂L/∂Z = (P - Y) / n` (Y one-hot: softmax and cross-entropy together) |
# | `Z = H W₂ + b₂` | `∂L/∂W₂ = Hᵀ ∂L/∂Z`, `∂L/∂b₂ = Σᵢ ∂L/∂Z`, `∂L/∂H = ∂L/∂Z W₂ᵀ` |
# | `H = tanh(A)` | `∂L/∂A = ∂L/∂H ⊙ (1 - H²)` |
# | `A = X W₁ + b₁` | `∂L/∂W₁ = Xᵀ ∂L/∂A`, `∂L/∂b₁ = Σᵢ ∂L/∂A` |
#
# A weight matrix's gradient is always (input of the layer)ᵀ x (gradient at its output), so it
# has the weight's shape. We use `tanh` rather than ReLU here only because finite differences
# need a smooth function (a ReLU kink between `θ - ε` and `θ + ε` spoils them).

# %%
digits = load_digits()
order = np.random.default_rng(0).permutation(len(digits.target))
X_all, y_all = digits.data[order] / 16.0, digits.target[order]
X_train, y_train, X_test, y_test = X_all[:1280], y_all[:1280], X_all[1280:], y_all[1280:]
print("train", X_train.shape, "test", X_test.shape, "classes", np.bincount(y_train).tolist())


def init_params(seed, n_in=64, n_hidden=32, n_out=10):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, np.sqrt(1 / n_in), (n_in, n_hidden)), np.zeros(n_hidden),
            rng.normal(0, np.sqrt(1 / n_hidden), (n_hidden, n_out)), np.zeros(n_out)]


def forward(params, X):
    W1, b1, W2, b2 = params
    H = np.tanh(X @ W1 + b1)
    Z = H @ W2 + b2
    return H, Z


def loss_and_grads(params, X, y):
    W1, b1, W2, b2 = params
    n = len(X)
    H, Z = forward(params, X)
    Z = Z - Z.max(axis=1, keepdims=True)          # softmax is shift-invariant; avoids overflow
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    loss = -np.log(P[np.arange(n), y]).mean()
    dZ = P.copy()
    dZ[np.arange(n), y] -= 1
    dZ /= n
    dW2, db2 = H.T @ dZ, dZ.sum(axis=0)
    dA = (dZ @ W2.T) * (1 - H ** 2)
    dW1, db1 = X.T @ dA, dA.sum(axis=0)
    return loss, [dW1, db1, dW2, db2]


params = init_params(seed=1)
X_batch, y_batch = X_train[:32], y_train[:32]
loss0, grads = loss_and_grads(params, X_batch, y_batch)
assert all(g.shape == p.shape for g, p in zip(grads, params))
print(f"initial loss {loss0:.4f}, near ln 10 = {np.log(10):.4f}, the loss of a uniform guess over 10 classes")
assert abs(loss0 - np.log(10)) < 0.5

# %% [markdown]
# ### Gradient check 1: finite differences
# For every one of the 2,410 parameters θ, nudge it by ±ε and measure
# `(L(θ + ε) - L(θ - ε)) / 2ε`, whose error is O(ε²). This is slow (two forward passes per
# parameter) but needs no calculus, so it catches mistakes in the backward pass. A correct
# backward pass agrees to a relative error far below 1e-6; a backward pass that forgets the
# tanh derivative `(1 - H²)` is caught at once.

# %%
def numerical_grads(params, X, y, eps=1e-6):
    result = []
    for p in params:
        g = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + eps
            plus = loss_and_grads(params, X, y)[0]
            p[index] = saved - eps
            minus = loss_and_grads(params, X, y)[0]
            p[index] = saved
            g[index] = (plus - minus) / (2 * eps)
        result.append(g)
    return result


numeric = numerical_grads(params, X_batch, y_batch)
names = ["W1", "b1", "W2", "b2"]
errors_fd = {n: relative_error(g, ng) for n, g, ng in zip(names, grads, numeric)}
print("relative error vs finite differences:", {n: f"{e:.1e}" for n, e in errors_fd.items()})

W1, b1, W2, b2 = params
H = np.tanh(X_batch @ W1 + b1)
dZ = np.exp(H @ W2 + b2)
dZ = dZ / dZ.sum(axis=1, keepdims=True)
dZ[np.arange(32), y_batch] -= 1
buggy_dW1 = X_batch.T @ (dZ / 32 @ W2.T)        # forgot "* (1 - H**2)"
print(f"a backward pass without the tanh derivative: relative error {relative_error(buggy_dW1, numeric[0]):.2f}")

assert sum(p.size for p in params) == 2410
assert max(errors_fd.values()) < 1e-6
assert relative_error(buggy_dW1, numeric[0]) > 1e-2

# %% [markdown]
# ### Gradient check 2: `tf.GradientTape`
# TensorFlow records the forward operations on a tape and runs the same reverse pass
# automatically. Its gradients agree with ours to round-off (relative error below 1e-12).

# %%
tf_params = [tf.Variable(p) for p in params]
with tf.GradientTape() as tape:
    logits = tf.tanh(X_batch @ tf_params[0] + tf_params[1]) @ tf_params[2] + tf_params[3]
    tf_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y_batch, logits))
tape_grads = tape.gradient(tf_loss, tf_params)
errors_tape = {n: relative_error(g, tg.numpy()) for n, g, tg in zip(names, grads, tape_grads)}
print("relative error vs GradientTape:", {n: f"{e:.1e}" for n, e in errors_tape.items()})

fig, ax = plt.subplots(figsize=(6, 3.2))
position = np.arange(4)
ax.bar(position - 0.2, [errors_fd[n] for n in names], 0.4, label="vs finite differences")
ax.bar(position + 0.2, [max(errors_tape[n], 1e-18) for n in names], 0.4, label="vs GradientTape")
ax.axhline(1e-6, color="crimson", linestyle=":", label="threshold 1e-6")
ax.set_xticks(position, names); ax.set_yscale("log"); ax.set_ylabel("relative error"); ax.legend(fontsize=8)
ax.set_title("our backward pass against two references")
plt.show()

assert np.isclose(float(tf_loss), loss0, rtol=1e-12)
assert max(errors_tape.values()) < 1e-12

# %% [markdown]
# ## 3. Training three ways
# Mini-batch stochastic gradient descent: for each batch of 64 images, `θ ← θ - lr · ∂L/∂θ`.
# The batches are taken in the same fixed order by all three loops, every run starts from the
# same weights, and there is no randomness left, so the three must agree.
#
# **(a) NumPy**: our `loss_and_grads` from above.

# %%
EPOCHS, BATCH, LR = (3 if QUICK else 30), 64, 0.5


def accuracy(params, X, y):
    return float((forward(params, X)[1].argmax(axis=1) == y).mean())


numpy_params = init_params(seed=2)
start_params = [p.copy() for p in numpy_params]
numpy_losses = []
for epoch in range(EPOCHS):
    batch_losses = []
    for start in range(0, len(X_train), BATCH):
        loss, grads = loss_and_grads(numpy_params, X_train[start:start + BATCH], y_train[start:start + BATCH])
        numpy_params = [p - LR * g for p, g in zip(numpy_params, grads)]
        batch_losses.append(loss)
    numpy_losses.append(np.mean(batch_losses))
print("NumPy loop: loss per epoch", np.round(numpy_losses, 4).tolist(),
      f"test accuracy {accuracy(numpy_params, X_test, y_test):.4f}")

# %% [markdown]
# **(b) `tf.GradientTape`**: the forward pass in TensorFlow, the backward pass automatic, the
# update by hand.

# %%
tape_params = [tf.Variable(p) for p in start_params]
tape_losses = []
for epoch in range(EPOCHS):
    batch_losses = []
    for start in range(0, len(X_train), BATCH):
        X_b, y_b = X_train[start:start + BATCH], y_train[start:start + BATCH]
        with tf.GradientTape() as tape:
            logits = tf.tanh(X_b @ tape_params[0] + tape_params[1]) @ tape_params[2] + tape_params[3]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y_b, logits))
        for variable, gradient in zip(tape_params, tape.gradient(loss, tape_params)):
            variable.assign_sub(LR * gradient)
        batch_losses.append(float(loss))
    tape_losses.append(np.mean(batch_losses))
print("GradientTape loop: loss per epoch", np.round(tape_losses, 4).tolist())

# %% [markdown]
# **(c) `model.fit`**: a Keras model with the same layers and the same starting weights, plain
# `SGD`, batches in order (`shuffle=False`). `fit` runs exactly loop (b) for us, plus the
# bookkeeping (metrics, callbacks, distribution) that every dlapps task relies on.

# %%
inputs = keras.Input(shape=(64,))
hidden = keras.layers.Dense(32, activation="tanh")(inputs)
outputs = keras.layers.Dense(10)(hidden)
model = keras.Model(inputs, outputs)
model.set_weights(start_params)
model.compile(optimizer=keras.optimizers.SGD(LR),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(X_train, y_train, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
keras_accuracy = model.evaluate(X_test, y_test, verbose=0)[1]
print("model.fit: loss per epoch", np.round(history.history["loss"], 4).tolist(), f"test accuracy {keras_accuracy:.4f}")

# %% [markdown]
# The three loss curves lie on top of each other, and the final weights agree to round-off
# (relative difference below 1e-10), and so do the test accuracies:

# %%
differences = {
    "GradientTape vs NumPy": max(relative_error(t.numpy(), p) for t, p in zip(tape_params, numpy_params)),
    "model.fit vs NumPy": max(relative_error(k, p) for k, p in zip(model.get_weights(), numpy_params)),
}
numpy_accuracy = accuracy(numpy_params, X_test, y_test)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
epochs = np.arange(1, EPOCHS + 1)
left.plot(epochs, numpy_losses, "o-", linewidth=4, alpha=0.4, label="NumPy loop")
left.plot(epochs, tape_losses, "s--", label="GradientTape loop")
left.plot(epochs, history.history["loss"], "x:", color="black", label="model.fit")
left.set_xlabel("epoch"); left.set_ylabel("training loss (cross-entropy)"); left.legend()
sample = np.arange(16)
predicted = forward(numpy_params, X_test[sample])[1].argmax(axis=1)
right.imshow(np.hstack([X_test[i].reshape(8, 8) for i in sample]), cmap="gray_r")
right.set_xticks(np.arange(16) * 8 + 3.5, [str(p) for p in predicted]); right.set_yticks([])
right.set_title("test digits and the NumPy network's predictions")
plt.tight_layout(); plt.show()
print({k: f"{v:.1e}" for k, v in differences.items()})
print(f"test accuracy: NumPy {numpy_accuracy:.4f}, model.fit {keras_accuracy:.4f} (chance 0.10)")

assert max(differences.values()) < 1e-10
assert np.allclose(numpy_losses, tape_losses, rtol=1e-10)
assert np.allclose(numpy_losses, history.history["loss"], rtol=1e-10)
assert np.isclose(numpy_accuracy, keras_accuracy)
assert numpy_losses[-1] < numpy_losses[0] < np.log(10)
assert numpy_accuracy > (0.85 if QUICK else 0.95)

# %% [markdown]
# ## Summary
# Backpropagation is the chain rule applied in reverse order, one local derivative per
# operation; for a layer `Y = X W` it always reads `∂L/∂W = Xᵀ ∂L/∂Y`. Check a hand-written
# backward pass against finite differences before trusting it; `GradientTape` and `model.fit`
# do exactly this computation for you, so dlapps' tasks only write forward passes.
#
# Next: `lesson_optimizers.py` — what to do with the gradient once you have it.
