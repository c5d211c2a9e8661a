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
# # Lesson 1: neurons, perceptrons and the hidden space
#
# Every network in dlapps is built from one part: a unit that takes a weighted sum of its inputs
# and passes it through a function. This lesson builds that unit up in six steps:
# 1. the **McCulloch-Pitts neuron** (1943): fixed weights and a threshold compute logic gates;
# 2. the **perceptron learning rule** (Rosenblatt 1958) finds those weights for AND and OR;
# 3. it can never learn **XOR** (Minsky & Papert 1969): no line separates XOR's classes;
# 4. a **multilayer perceptron** with two hidden units solves XOR, because its hidden layer maps
#    the four points to a space where a line does separate them;
# 5. without an activation function the same network is one linear map, stuck at chance;
# 6. the **activation functions**, **softmax** and the **losses** every later lesson uses.
#
# Every sentence that states a result is checked by an `assert` in the cell below it, so the
# text cannot drift from what the code shows (the tests execute this notebook).

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

keras.utils.set_random_seed(0)
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
GATES = {"AND": np.array([0, 0, 0, 1]), "OR": np.array([0, 1, 1, 1]), "XOR": np.array([0, 1, 1, 0])}

# %% [markdown]
# ## 1. The McCulloch-Pitts neuron
# McCulloch & Pitts (1943) modelled a neuron as a threshold unit: it fires (outputs 1) when the
# weighted sum of its binary inputs reaches a threshold, `y = [w·x + b ≥ 0]`. With weights chosen
# by hand, one unit computes AND (both inputs needed: `x1 + x2 - 1.5`), OR (`x1 + x2 - 0.5`) and
# NOT (`-x + 0.5`).

# %%
def threshold_unit(x, w, b):
    return (x @ np.asarray(w, dtype="float32") + b >= 0).astype(int)


assert np.array_equal(threshold_unit(X, [1, 1], -1.5), GATES["AND"])
assert np.array_equal(threshold_unit(X, [1, 1], -0.5), GATES["OR"])
assert np.array_equal(threshold_unit(np.array([[0.0], [1.0]]), [-1], 0.5), [1, 0])
print("AND", threshold_unit(X, [1, 1], -1.5), " OR", threshold_unit(X, [1, 1], -0.5))

# %% [markdown]
# ## 2. The perceptron learning rule
# Rosenblatt (1958) made the weights learnable. Show the examples one at a time; when the unit
# gets one wrong, move the weights towards it: `w += lr (y - ŷ) x`, `b += lr (y - ŷ)`. The
# perceptron convergence theorem (Novikoff 1962) says that when a separating line exists, the rule
# makes only finitely many mistakes. We start from small random weights, count the mistakes of
# each epoch (one pass over the four examples) and keep the line `w·x + b = 0` after each epoch.
# The rule stops at the first line that separates the classes, which may pass close to a point:
# it does not look for the widest margin.

# %%
def train_perceptron(X, y, epochs=20, lr=0.1, seed=0):
    """Returns the per-epoch mistake counts and the (w, b) at the end of each epoch."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(0, 0.1, X.shape[1]), rng.normal(0, 0.1)
    mistakes, lines = [], []
    for _ in range(epochs):
        wrong = 0
        for xi, yi in zip(X, y):
            error = yi - float(w @ xi + b >= 0)
            w, b = w + lr * error * xi, b + lr * error
            wrong += error != 0
        mistakes.append(wrong)
        lines.append((w.copy(), b))
    return np.array(mistakes), lines


EPOCHS = 20
runs = {name: train_perceptron(X, y, EPOCHS) for name, y in GATES.items()}

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
xs = np.linspace(-0.5, 1.5, 2)
for ax, name in zip(axes[:2], ["AND", "OR"]):
    mistakes, lines = runs[name]
    last = int(np.nonzero(mistakes)[0].max()) + 1  # the line stops moving after the last mistake
    for epoch, (w, b) in enumerate(lines[:last]):
        if abs(w[1]) > 1e-9:
            ax.plot(xs, -(w[0] * xs + b) / w[1], color=plt.cm.viridis(epoch / max(1, last - 1)),
                    label=f"epoch {epoch + 1}")
    ax.scatter(X[:, 0], X[:, 1], c=GATES[name], cmap="coolwarm", edgecolors="black", s=120, zorder=3)
    ax.set_xlim(-0.5, 1.5); ax.set_ylim(-0.5, 1.5); ax.set_title(f"{name}: decision line per epoch")
    ax.legend(fontsize=7, loc="upper right")
for name, (mistakes, _) in runs.items():
    axes[2].plot(range(1, EPOCHS + 1), mistakes, marker="o", label=name)
axes[2].set_xlabel("epoch"); axes[2].set_ylabel("mistakes in the epoch"); axes[2].legend()
axes[2].set_title("perceptron mistakes per epoch")
plt.tight_layout(); plt.show()

for name, (mistakes, _) in runs.items():
    print(f"{name}: mistakes per epoch {mistakes.tolist()}")

# %% [markdown]
# AND and OR are linearly separable: the mistakes fall to zero within a few epochs and stay
# there. XOR is not (the two points of class 1 sit on one diagonal of the square, the two of
# class 0 on the other, and no line puts the diagonals on different sides), so every epoch
# has at least one mistake, however long we train. The line cycles: within every epoch it moves
# and moves back, and from the third epoch on it ends each epoch exactly where it ended the
# one before.

# %%
for name in ["AND", "OR"]:
    mistakes, _ = runs[name]
    first_clean = int(np.argmax(mistakes == 0))
    assert mistakes[first_clean] == 0 and first_clean < 10 and not mistakes[first_clean:].any(), name
assert runs["XOR"][0].min() >= 1
xor_states = np.array([[*w, b] for w, b in runs["XOR"][1]])
assert np.allclose(xor_states[2:], xor_states[-1], atol=1e-9)
assert train_perceptron(X, GATES["XOR"], epochs=200)[0].min() >= 1  # ten times longer: still no clean epoch

# %% [markdown]
# ## 3. An MLP solves XOR
# A hidden layer of **two** `tanh` units and one sigmoid output unit, trained with binary
# cross-entropy and Adam (Kingma & Ba 2015) on the four points; backpropagation (Rumelhart,
# Hinton & Williams 1986; lesson 2) computes the gradients. Each epoch shows the four points 25
# times, in batches of all four.
#
# Two hidden units are just enough, and gradient descent can stall: from some random starts it
# gets two points right and leaves the other two at 0.5, a loss of ln 2 / 2 ≈ 0.347. So we
# retry from a new random start until XOR is solved (try `HIDDEN = 4` and count the stalls).

# %%
HIDDEN = 2
X_epoch, y_epoch = np.tile(X, (25, 1)), np.tile(GATES["XOR"], 25)


def xor_mlp(activation):
    inputs = keras.Input(shape=(2,))
    hidden = keras.layers.Dense(HIDDEN, activation=activation, name="hidden")(inputs)
    logit = keras.layers.Dense(1, name="output")(hidden)
    model = keras.Model(inputs, logit)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


stalled = []
for seed in range(10):
    keras.utils.set_random_seed(seed)
    mlp = xor_mlp("tanh")
    history = mlp.fit(X_epoch, y_epoch, batch_size=4, epochs=20, shuffle=False, verbose=0)
    predictions = keras.ops.sigmoid(mlp(X)).numpy().ravel()
    if np.array_equal(predictions > 0.5, GATES["XOR"] > 0.5):
        break
    stalled.append(history.history["loss"][-1])
print(f"random starts that stalled: {len(stalled)}, their final losses {np.round(stalled, 4).tolist()}")
print(f"seed {seed}: XOR predictions {predictions.round(3)}, final loss {history.history['loss'][-1]:.4f}")

assert mlp.get_layer("hidden").units == 2
assert np.array_equal(predictions > 0.5, GATES["XOR"] > 0.5)
assert history.history["loss"][-1] < 0.05
assert all(abs(loss - np.log(2) / 2) < 0.01 for loss in stalled)

# %% [markdown]
# ### The hidden space
# Plot each input by its two hidden activations `h = tanh(W₁x + b₁)` instead of by `x`. In that
# space the two classes *are* linearly separable, and the output unit is just a perceptron on
# `h`: its line `w₂·h + b₂ = 0` is drawn on the right. We check it twice: the output unit
# separates the hidden points, and the perceptron rule of section 2, run on the hidden points,
# reaches an epoch with zero mistakes (on the raw inputs it never did).

# %%
H = mlp.get_layer("hidden")(X).numpy()          # the hidden activations of the four inputs
w2, b2 = mlp.get_layer("output").get_weights()

grid_1d = np.linspace(-0.5, 1.5, 120)
grid = np.stack(np.meshgrid(grid_1d, grid_1d), -1).reshape(-1, 2)
surface = keras.ops.sigmoid(mlp(grid)).numpy().reshape(120, 120)
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8))
left.contourf(grid_1d, grid_1d, surface, levels=20, cmap="coolwarm")
left.scatter(X[:, 0], X[:, 1], c=GATES["XOR"], cmap="coolwarm", edgecolors="black", s=120)
left.set_title("input space: the MLP's decision surface")
middle.plot(history.history["loss"]); middle.set_title("training loss"); middle.set_xlabel("epoch")
right.scatter(H[:, 0], H[:, 1], c=GATES["XOR"], cmap="coolwarm", edgecolors="black", s=120, zorder=3)
for (x1, x2), h, offset in zip(X.astype(int), H, [(-62, 4), (6, 6), (6, 6), (6, -14)]):
    right.annotate(f"x = ({x1},{x2})", h, textcoords="offset points", xytext=offset, fontsize=8)
hs = np.linspace(-1.1, 1.1, 2)
right.plot(hs, -(w2[0, 0] * hs + b2[0]) / w2[1, 0], "k--", label="output unit: w₂·h + b₂ = 0")
right.set_xlim(-1.1, 1.1); right.set_ylim(-1.1, 1.1); right.legend(fontsize=8)
right.set_xlabel("hidden unit 1"); right.set_ylabel("hidden unit 2"); right.set_title("hidden space")
plt.tight_layout(); plt.show()

hidden_mistakes, _ = train_perceptron(H.astype("float64"), GATES["XOR"], epochs=200)
print("perceptron on the hidden points, mistakes per epoch:", hidden_mistakes[:15].tolist(), "...")
assert np.array_equal((H @ w2 + b2).ravel() > 0, GATES["XOR"] > 0)
assert hidden_mistakes.min() == 0

# %% [markdown]
# ## 4. Without an activation the network is linear
# Remove the `tanh`: `W₂(W₁x + b₁) + b₂ = (W₂W₁)x + (W₂b₁ + b₂)` is one linear map, so the
# hidden layer adds nothing and the model is a logistic regression, which cannot do better on XOR
# than predicting 0.5 everywhere (binary cross-entropy ln 2 ≈ 0.693, accuracy at chance). We
# train it the same way (same seed), check that the collapsed map reproduces its logits, and
# that its loss never gets below ln 2.

# %%
keras.utils.set_random_seed(seed)
linear_mlp = xor_mlp(None)                     # Dense without activation: the identity
linear_history = linear_mlp.fit(X_epoch, y_epoch, batch_size=4, epochs=20, shuffle=False, verbose=0)

W1, b1 = linear_mlp.get_layer("hidden").get_weights()
W2, b2_lin = linear_mlp.get_layer("output").get_weights()
collapsed = X @ (W1 @ W2) + (b1 @ W2 + b2_lin)
linear_logits = linear_mlp(X).numpy()
linear_probabilities = 1 / (1 + np.exp(-linear_logits.ravel()))
print("probabilities:", linear_probabilities.round(3), " loss:", round(linear_history.history["loss"][-1], 4),
      " ln 2 =", round(np.log(2), 4))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(history.history["loss"], label="tanh hidden layer")
ax.plot(linear_history.history["loss"], label="no activation")
ax.axhline(np.log(2), color="gray", linestyle=":", label="ln 2 (predict 0.5 everywhere)")
ax.set_xlabel("epoch"); ax.set_ylabel("binary cross-entropy"); ax.set_title("XOR"); ax.legend()
plt.show()

assert np.allclose(collapsed, linear_logits, atol=1e-5)
assert min(linear_history.history["loss"]) > np.log(2) - 1e-3
assert np.all(np.abs(linear_probabilities - 0.5) < 0.05)

# %% [markdown]
# ## 5. Activation functions and their derivatives
# The derivative is what backpropagation multiplies by at every layer, so it matters as much as
# the function:
# - **sigmoid** `1/(1+e^-x)` and **tanh** saturate: their derivatives peak at 1/4 and 1 at x = 0
#   and are below 0.01 once |x| ≥ 5, so a saturated unit passes almost no gradient back;
# - **ReLU** `max(0, x)` (Nair & Hinton 2010) has derivative exactly 1 for x > 0 and 0 for x < 0
#   (a unit that is always negative is "dead");
# - **leaky ReLU** keeps a slope (0.2 in Keras) for x < 0; **ELU** (Clevert et al. 2016) is
#   smooth and tends to -1;
# - **GELU** `x·Φ(x)` (Hendrycks & Gimpel 2016, the Transformers' choice) dips below zero, to
#   about -0.17, so its derivative is negative there;
# - **SELU** (Klambauer et al. 2017) is a scaled ELU, slope λ ≈ 1.0507 for x > 0, floor
#   -λα ≈ -1.758, chosen so that activations keep mean 0 and variance 1 through a deep stack
#   (with LeCun-normal weights; checked below on 20 random layers of width 256).

# %%
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "selu"]
x = tf.constant(np.linspace(-5, 5, 2001), dtype="float32")
values, derivatives = {}, {}
for name in ACTIVATIONS:
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = keras.activations.get(name)(x)
    values[name], derivatives[name] = y.numpy(), tape.gradient(y, x).numpy()

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for name in ACTIVATIONS:
    left.plot(x, values[name], label=name)
    right.plot(x, derivatives[name], label=name)
left.set_ylim(-2, 3); left.set_title("activation f(x)"); left.legend(fontsize=8)
right.set_ylim(-0.3, 1.9); right.set_title("derivative f'(x)"); right.legend(fontsize=8)
for ax in (left, right):
    ax.axhline(0, color="gray", linewidth=0.5); ax.set_xlabel("x")
plt.show()

xn = x.numpy()
at = lambda value: int(np.argmin(np.abs(xn - value)))  # noqa: E731
print({name: round(float(derivatives[name].max()), 4) for name in ACTIVATIONS})
assert np.isclose(derivatives["sigmoid"].max(), 0.25, atol=1e-4)
assert abs(xn[derivatives["sigmoid"].argmax()]) < 0.01
assert np.isclose(derivatives["tanh"].max(), 1.0, atol=1e-4)
assert derivatives["sigmoid"][at(5)] < 0.01 and derivatives["tanh"][at(5)] < 0.01
assert derivatives["sigmoid"][at(-5)] < 0.01 and derivatives["tanh"][at(-5)] < 0.01
assert np.all(derivatives["relu"][xn > 0.01] == 1) and np.all(derivatives["relu"][xn < -0.01] == 0)
assert np.allclose(derivatives["leaky_relu"][xn < -0.01], 0.2)
assert np.isclose(values["elu"][0], np.expm1(-5.0), atol=1e-5) and values["elu"].min() > -1
assert np.isclose(values["gelu"].min(), -0.17, atol=0.005) and derivatives["gelu"].min() < 0
assert np.allclose(derivatives["selu"][xn > 0.01], 1.0507, atol=1e-4)
assert np.isclose(float(keras.activations.selu(tf.constant(-50.0))), -1.0507 * 1.6733, atol=1e-3)

h = np.random.default_rng(0).normal(size=(1000, 256)).astype("float32")
for layer in range(20):
    h = keras.activations.selu(h @ keras.initializers.LecunNormal(seed=layer)((256, 256))).numpy()
print(f"SELU after 20 layers: mean {h.mean():.3f}, variance {h.var():.3f}")
assert abs(h.mean()) < 0.2 and 0.5 < h.var() < 2

# %% [markdown]
# ## 6. Softmax and the losses
# For `K` classes the network outputs `K` scores (logits) `z`, and **softmax**
# `p_k = e^{z_k} / Σ_j e^{z_j}` turns them into probabilities: positive, summing to 1, unchanged
# when the same constant is added to every logit (that is why implementations subtract the
# maximum first: `e^1000` overflows, softmax of `(1000, 999)` does not). For two classes softmax
# of `(0, z)` is the sigmoid of `z`.

# %%
logits = np.array([2.0, 1.0, -1.0], dtype="float32")
p = keras.ops.softmax(logits).numpy()
print("softmax", p.round(4))
assert np.isclose(p.sum(), 1) and np.all(p > 0)
assert np.allclose(keras.ops.softmax(logits + 100.0).numpy(), p)
with np.errstate(over="ignore"):
    assert not np.isfinite(np.exp(np.float32(1000)))
assert np.allclose(keras.ops.softmax(np.array([1000.0, 999.0], "float32")).numpy(), [0.7311, 0.2689], atol=1e-4)
assert np.isclose(keras.ops.softmax(np.array([0.0, 1.5], "float32")).numpy()[1], 1 / (1 + np.exp(-1.5)))

# %% [markdown]
# The loss scores a prediction. With `p` the probability the model gives to the true class:
# - **mean squared error** `(1 - p)²` (regression's loss; bounded by 1 here);
# - **binary cross-entropy** `-[y log p + (1 - y) log(1 - p)]`, which is `-log p` for `y = 1`;
# - **categorical cross-entropy** `-Σ_k y_k log p_k`, which is also `-log p` of the true class.
#
# Cross-entropy is the negative log-likelihood: it grows without bound as `p → 0`. That matters
# for learning. With a sigmoid output `p = σ(z)`, the gradient with respect to the logit is
# `p - 1` for cross-entropy but `-2(1 - p)·p(1 - p)` for MSE: when the model is confidently wrong
# (p = 0.01) cross-entropy pushes with strength 0.99 while MSE's push is below 0.02, because the
# sigmoid's derivative has vanished. We compute the losses with `keras.losses` and the gradients
# with `tf.GradientTape`.

# %%
probabilities = np.linspace(0.005, 0.995, 199).astype("float32")
ones = np.ones_like(probabilities)
mse = keras.losses.MeanSquaredError(reduction=None)(ones[:, None], probabilities[:, None]).numpy()
bce = keras.losses.BinaryCrossentropy(reduction=None)(ones[:, None], probabilities[:, None]).numpy()
three_class = np.stack([probabilities, (1 - probabilities) / 2, (1 - probabilities) / 2], axis=1)
cce = keras.losses.CategoricalCrossentropy(reduction=None)(np.tile([1.0, 0, 0], (199, 1)), three_class).numpy()

z = tf.Variable(np.log(probabilities / (1 - probabilities)))  # the logits giving those probabilities
with tf.GradientTape(persistent=True) as tape:
    p_z = tf.sigmoid(z)
    mse_z, bce_z = tf.reduce_sum((1 - p_z) ** 2), tf.reduce_sum(-tf.math.log(p_z))
grad_mse, grad_bce = tape.gradient(mse_z, z).numpy(), tape.gradient(bce_z, z).numpy()

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
left.plot(probabilities, mse, label="MSE (1-p)²")
left.plot(probabilities, bce, label="binary cross-entropy -log p")
left.plot(probabilities, cce, "--", label="categorical cross-entropy (3 classes)")
left.set_xlabel("predicted probability of the true class"); left.set_ylabel("loss"); left.legend()
right.plot(probabilities, np.abs(grad_mse), label="MSE through a sigmoid")
right.plot(probabilities, np.abs(grad_bce), label="cross-entropy through a sigmoid")
right.set_xlabel("predicted probability of the true class"); right.set_ylabel("|d loss / d logit|")
right.legend()
plt.show()

wrong = int(np.argmin(np.abs(probabilities - 0.01)))
print(f"at p = {probabilities[wrong]:.3f}: |dBCE/dz| = {abs(grad_bce[wrong]):.3f}, |dMSE/dz| = {abs(grad_mse[wrong]):.4f}")
assert np.allclose(mse, (1 - probabilities) ** 2, rtol=1e-5)
assert np.allclose(bce, -np.log(probabilities), rtol=1e-3)
assert np.allclose(cce, -np.log(probabilities), rtol=1e-3)
assert np.allclose(grad_bce, probabilities - 1, atol=1e-5)
assert np.allclose(grad_mse, -2 * (1 - probabilities) ** 2 * probabilities, atol=1e-5)
assert abs(grad_bce[wrong]) > 0.98 and abs(grad_mse[wrong]) < 0.02

# %% [markdown]
# ## Summary
# One unit draws one line; a hidden layer with a nonlinearity re-maps the data until a line is
# enough; the activation's derivative and the loss decide how well gradients flow back.
#
# Next: `lesson_backprop.py` computes those gradients by hand, `lesson_optimizers.py` follows
# them downhill, `lesson_initialization.py` keeps them alive through deep stacks, and
# `notebooks/tabular.py` puts an MLP to work on real data.
