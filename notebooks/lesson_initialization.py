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
# # Lesson 4: initialization and gradient flow
#
# Backpropagation multiplies, layer after layer, by a weight matrix and an activation's
# derivative. In a deep network that product can shrink to nothing (**vanishing gradients**) or
# blow up (**exploding gradients**), and where it starts is decided by the initial weights. This
# lesson:
# 1. shows why weights cannot start equal: zero or constant initialization keeps every hidden
#    unit identical forever (the symmetry is never broken);
# 2. follows the activation variance through a 25-layer network for Glorot and He
#    initialization;
# 3. measures the gradient reaching each layer of a 20-layer network for five activations;
# 4. makes gradients explode and tames them with gradient clipping (`clipnorm`);
# 5. shows what batch normalization does to the same deep network.
#
# The data is scikit-learn's 8x8 digits (the embedded data of the `mnist` task).

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from dlapps import optim
from dlapps.config import TrainConfig

QUICK = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo") == "smoke"
keras.utils.set_random_seed(0)
digits = load_digits()
order = np.random.default_rng(0).permutation(len(digits.target))
X_all = ((digits.data - digits.data.mean(axis=0)) / (digits.data.std(axis=0) + 1e-8))[order].astype("float32")
y_all = digits.target[order]
X_train, y_train, X_val, y_val = X_all[:1280], y_all[:1280], X_all[1280:], y_all[1280:]


def mlp(depth, width, activation, initializer, batch_norm=False, name=None):
    """`depth` hidden Dense layers (named dense_1 ... dense_depth) and a 10-class logit layer."""
    inputs = keras.Input(shape=(64,))
    x = inputs
    for i in range(1, depth + 1):
        x = keras.layers.Dense(width, kernel_initializer=initializer, use_bias=not batch_norm,
                               name=f"dense_{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation(activation)(x)
    outputs = keras.layers.Dense(10, kernel_initializer="glorot_uniform", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def compile_and_fit(model, optimizer, epochs, **fit_options):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(X_train, y_train, batch_size=64, epochs=epochs, verbose=0, **fit_options)
    return history, model.evaluate(X_val, y_val, verbose=0)[1]


# %% [markdown]
# ## 1. Zero and constant initialization: the symmetry that never breaks
# Take the 64 → 32 tanh → 10 network of lesson 2 and start every weight at the same value.
# - **All zeros**: the hidden activations are `tanh(0) = 0`, so the gradients of both weight
#   matrices are zero (`∂L/∂W₂ = Hᵀ ∂L/∂Z = 0`, `∂L/∂W₁` goes through `W₂ = 0`). Both stay
#   exactly zero; only the output biases learn, so the network gives every image the same
#   output: chance accuracy.
# - **All 0.1**: every hidden unit computes the same function and gets the same gradient, so the
#   32 units stay copies of one unit for the whole of training: a 1-unit network.
# - **Random** (Glorot uniform, Keras' default) breaks the symmetry.

# %%
SYMMETRY_EPOCHS = 5 if QUICK else 20
symmetry = {}
for name, initializer in [("zeros", "zeros"), ("constant 0.1", keras.initializers.Constant(0.1)),
                          ("random (Glorot)", "glorot_uniform")]:
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(64,))
    hidden = keras.layers.Dense(32, activation="tanh", kernel_initializer=initializer, name="hidden")(inputs)
    outputs = keras.layers.Dense(10, kernel_initializer=initializer, name="logits")(hidden)
    model = keras.Model(inputs, outputs)
    history, accuracy = compile_and_fit(model, keras.optimizers.SGD(0.1), SYMMETRY_EPOCHS)
    W1 = model.get_layer("hidden").kernel.numpy()
    symmetry[name] = {"accuracy": accuracy, "loss": history.history["loss"], "W1": W1,
                      "W2": model.get_layer("logits").kernel.numpy(),
                      "prediction spread": float(model(X_val).numpy().std(axis=0).max()),
                      "spread across units": float(W1.std(axis=1).max()),
                      "rank of W1": int(np.linalg.matrix_rank(W1, tol=1e-5))}

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, (name, result) in zip(axes, symmetry.items()):
    scale = np.abs(result["W1"]).max() or 1.0
    ax.imshow(result["W1"].T, cmap="coolwarm", vmin=-scale, vmax=scale, aspect="auto")
    ax.set_title(f"{name}: W₁ after training\nval accuracy {result['accuracy']:.2f}", fontsize=9)
    ax.set_xlabel("input pixel"); ax.set_ylabel("hidden unit")
for name, result in symmetry.items():
    axes[3].plot(result["loss"], label=name)
axes[3].set_xlabel("epoch"); axes[3].set_ylabel("training loss"); axes[3].legend(fontsize=8)
plt.tight_layout(); plt.show()
for name, result in symmetry.items():
    print(f"{name:16s} val accuracy {result['accuracy']:.3f}  rank of W1 {result['rank of W1']:2d}  "
          f"largest spread of a weight across hidden units {result['spread across units']:.2g}")

assert not symmetry["zeros"]["W1"].any() and not symmetry["zeros"]["W2"].any()
assert symmetry["zeros"]["prediction spread"] < 1e-6   # the same output for every image
assert symmetry["zeros"]["accuracy"] < 0.2
assert symmetry["constant 0.1"]["spread across units"] < 1e-6 and symmetry["constant 0.1"]["rank of W1"] == 1
assert symmetry["random (Glorot)"]["rank of W1"] == 32
assert symmetry["random (Glorot)"]["accuracy"] > symmetry["constant 0.1"]["accuracy"] + 0.2

# %% [markdown]
# ## 2. Glorot and He initialization: keeping the variance through depth
# A layer `z = W x` with `n` inputs of variance `v` and weights of variance `σ²` outputs variance
# `n σ² v` (plus what the activation does). Keeping it constant from layer to layer needs:
# - **Glorot / Xavier** (Glorot & Bengio 2010): `σ² = 2 / (n_in + n_out)` (= 1/n for square
#   layers), right for activations that are linear around 0 (tanh);
# - **He** (He et al. 2015): `σ² = 2 / n_in`, because ReLU zeroes half of its inputs and so
#   halves the second moment at every layer.
#
# We push 1,000 standard normal inputs through 25 layers of width 256 (weights drawn with the
# Keras initializers, no training) and plot the variance of each layer's pre-activation `z`.
# ReLU with Glorot loses half the variance per layer (a factor 2²⁵ ≈ 3·10⁷ over the stack);
# ReLU with He keeps it of the same order at every layer (between a quarter and four times the
# first layer's); tanh with Glorot loses variance slowly (tanh is contracting: |tanh z| < |z|),
# by a factor below 100 over the 25 layers, far less than ReLU with Glorot.

# %%
DEPTH, WIDTH = 25, 256
x0 = np.random.default_rng(0).normal(size=(1000, WIDTH)).astype("float32")
SETUPS = {"ReLU + Glorot": ("relu", "glorot_normal"), "ReLU + He": ("relu", "he_normal"),
          "tanh + Glorot": ("tanh", "glorot_normal")}
variances = {}
for name, (activation, initializer) in SETUPS.items():
    x, per_layer = x0, []
    for layer in range(DEPTH):  # a seeded Keras initializer repeats itself, so one seed per layer
        W = keras.initializers.get({"class_name": initializer, "config": {"seed": layer}})((WIDTH, WIDTH))
        z = x @ W.numpy()
        per_layer.append(float(z.var()))
        x = np.maximum(z, 0) if activation == "relu" else np.tanh(z)
    variances[name] = np.array(per_layer)

fig, ax = plt.subplots(figsize=(7, 4))
for name, v in variances.items():
    ax.semilogy(range(1, DEPTH + 1), v, marker="o", markersize=3, label=name)
ax.set_xlabel("layer"); ax.set_ylabel("variance of the pre-activation z"); ax.legend()
ax.set_title(f"{DEPTH} layers of width {WIDTH} at initialization")
plt.show()
ratios = {name: float(v[-1] / v[0]) for name, v in variances.items()}
print("variance at layer 25 / layer 1:", {k: f"{v:.2g}" for k, v in ratios.items()})
assert ratios["ReLU + Glorot"] < 1e-6
he = variances["ReLU + He"]
assert np.all((he > he[0] / 4) & (he < 4 * he[0]))
assert 1e-2 < ratios["tanh + Glorot"] < 1

# %% [markdown]
# ## 3. Vanishing gradients, activation by activation
# Now the gradients. A 20-layer network of width 64, each activation with the initialization
# made for it (sigmoid and tanh: Glorot; ReLU and GELU: He; SELU: LeCun normal, Klambauer et al.
# 2017), on a batch of 256 digits with the cross-entropy loss; `tf.GradientTape` gives the
# gradient of every layer's kernel at initialization. We plot its norm per layer and report the
# ratio first layer / last layer (1 = the signal reaches the input layer intact), as the median
# over a few seeds.

# %%
GRAD_DEPTH = 20
GRAD_SEEDS = 2 if QUICK else 5
ACTIVATIONS = {"sigmoid": "glorot_uniform", "tanh": "glorot_uniform", "relu": "he_normal",
               "gelu": "he_normal", "selu": "lecun_normal"}
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def gradient_norms(model, X, y):
    kernels = [model.get_layer(f"dense_{i}").kernel for i in range(1, GRAD_DEPTH + 1)]
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(X, training=True))
    return np.array([float(tf.norm(g)) for g in tape.gradient(loss, kernels)])


norms = {}
for activation, initializer in ACTIVATIONS.items():
    per_seed = []
    for seed in range(GRAD_SEEDS):
        keras.utils.set_random_seed(seed)
        model = mlp(GRAD_DEPTH, 64, activation, initializer)
        per_seed.append(gradient_norms(model, X_train[:256], y_train[:256]))
    norms[activation] = np.median(per_seed, axis=0)

fig, ax = plt.subplots(figsize=(7, 4))
for activation, n in norms.items():
    ax.semilogy(range(1, GRAD_DEPTH + 1), n, marker="o", markersize=3,
                label=f"{activation} + {ACTIVATIONS[activation]}")
ax.set_xlabel("layer (1 = next to the input)"); ax.set_ylabel("‖∂L/∂W‖ at initialization")
ax.legend(fontsize=8)
ax.set_title(f"gradient per layer, {GRAD_DEPTH} layers, median of {GRAD_SEEDS} seeds")
plt.show()
first_over_last = {a: float(n[0] / n[-1]) for a, n in norms.items()}
print("gradient norm, first layer / last layer:", {k: f"{v:.2g}" for k, v in first_over_last.items()})

# %% [markdown]
# The measurements say:
# - **sigmoid** loses the gradient: by the first layer it is more than 1,000 times smaller than
#   at the last (its derivative is at most 1/4, and its outputs are not centred on zero);
# - **tanh** with Glorot initialization does not vanish at initialization: its inputs sit in
#   the near-linear part around 0, where the derivative is close to 1, and the first layer gets
#   about the gradient the last one gets (ratio between 0.5 and 2), at least as much as ReLU
#   keeps (its trouble comes later, when weights grow and units saturate);
# - **ReLU** with He, **GELU** with He and **SELU** with LeCun keep the first-layer gradient
#   within a factor 10 of the last layer's.

# %%
assert first_over_last["sigmoid"] < 1e-3
assert all(0.1 < first_over_last[a] < 10 for a in ["tanh", "relu", "gelu", "selu"])
assert 0.5 < first_over_last["tanh"] < 2 and first_over_last["tanh"] >= first_over_last["relu"]
assert first_over_last["sigmoid"] < min(first_over_last[a] for a in ["tanh", "relu", "gelu", "selu"]) / 100

# %% [markdown]
# ## 4. Exploding gradients and clipping
# The opposite failure: weights that are too large. We take a 10-layer ReLU network and draw its
# weights from He's distribution scaled up by 1.5, so each layer multiplies the variance by 2.25
# (2.25¹⁰ ≈ 3,300 over the stack). Against the same network at He's scale (same seed), its
# logits and its largest gradient norm come out more than ten times larger, and plain SGD at rate
# 0.05 takes such large steps that the loss becomes `nan`.
#
# **Gradient clipping** (Pascanu, Mikolov & Bengio 2013) rescales a gradient whose norm exceeds a
# threshold `c`: `g ← g · c / ‖g‖`. Keras optimizers take `clipnorm=c` (each variable's gradient
# clipped separately), `global_clipnorm=c` (all together) or `clipvalue=c` (each element to
# [-c, c]). With `clipnorm=1` the same network at the same rate trains: the loss stays finite,
# falls more than tenfold, and accuracy climbs far above chance (0.1). (Clipping keeps training
# alive; it does not fix the badly scaled weights, which is the job of initialization.)

# %%
EXPLODE_EPOCHS = 3 if QUICK else 10


def ten_layer_relu(gain):
    """10 ReLU layers of width 64, weights from He's distribution times `gain`, always the same seed."""
    keras.utils.set_random_seed(2)
    initializer = keras.initializers.VarianceScaling(scale=2.0 * gain ** 2, mode="fan_in",
                                                     distribution="truncated_normal")
    return mlp(10, 64, "relu", initializer)


def at_start(model):
    """(mean |logit|, largest gradient norm of a variable, loss) on 256 training images."""
    with tf.GradientTape() as tape:
        logits = model(X_train[:256])
        loss = loss_fn(y_train[:256], logits)
    largest = max(float(tf.norm(g)) for g in tape.gradient(loss, model.trainable_variables))
    return float(np.abs(logits).mean()), largest, float(loss)


class BatchLoss(keras.callbacks.Callback):
    """The loss after every training step (Keras logs the running mean of the epoch so far)."""

    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


start = {"He": at_start(ten_layer_relu(1.0)), "1.5 x He": at_start(ten_layer_relu(1.5))}
explode = {}
for name, clipnorm in [("SGD", None), ("SGD, clipnorm=1", 1.0)]:
    steps = BatchLoss()
    history, accuracy = compile_and_fit(ten_layer_relu(1.5), keras.optimizers.SGD(0.05, clipnorm=clipnorm),
                                        EXPLODE_EPOCHS, callbacks=[steps])
    explode[name] = {"loss": history.history["loss"], "accuracy": accuracy, "steps": np.array(steps.losses)}

fig, ax = plt.subplots(figsize=(8, 3.8))
for name, result in explode.items():
    losses = result["steps"]
    line, = ax.semilogy(np.arange(1, len(losses) + 1), np.where(np.isfinite(losses), losses, np.nan), label=name)
    if not np.isfinite(losses).all():
        first_nan = max(1, int(np.argmin(np.isfinite(losses))))
        ax.plot(first_nan, losses[first_nan - 1], "x", color=line.get_color(), markersize=12)
        ax.annotate(f"nan from step {first_nan + 1}", (first_nan, losses[first_nan - 1]), textcoords="offset points",
                    xytext=(10, -4))
ax.set_xlabel("training step"); ax.set_ylabel("training loss (running mean of the epoch)"); ax.legend()
ax.set_title("10-layer ReLU net, weights 1.5 x He")
plt.show()
for name, (logit_scale, largest_gradient, loss) in start.items():
    print(f"{name:9s} at the start: mean |logit| {logit_scale:.3g}, largest gradient norm {largest_gradient:.3g}, "
          f"loss {loss:.3g}")
for name, result in explode.items():
    print(f"{name:16s} final training loss {result['loss'][-1]:.3g}, val accuracy {result['accuracy']:.3f}")

assert start["1.5 x He"][0] > 10 * start["He"][0] and start["1.5 x He"][1] > 10 * start["He"][1]
assert not np.isfinite(explode["SGD"]["loss"][-1])
clipped = explode["SGD, clipnorm=1"]
assert np.isfinite(clipped["loss"]).all() and clipped["loss"][-1] < start["1.5 x He"][2] / 10
assert clipped["accuracy"] > 0.25

# %% [markdown]
# Clipping bounds each step: with `clipnorm=1` and rate 0.01, SGD moves no variable by more than
# 0.01, however large its gradient: a gradient (300, -400, 0, 0, 0) of norm 500 becomes
# (0.6, -0.8, 0, 0, 0) and the step is (-0.006, 0.008, 0, 0, 0). In dlapps every task's config
# has the keys `clipnorm` and `clipvalue` (`dlapps train TASK --set clipnorm=1.0`), which
# `dlapps.optim.make_optimizer` hands to the Keras optimizer.

# %%
optimizer = optim.make_optimizer(TrainConfig(optimizer="sgd", learning_rate=0.01, clipnorm=1.0))
variable = keras.Variable(np.zeros(5, dtype="float32"))
optimizer.apply_gradients([(tf.constant([300.0, -400.0, 0.0, 0.0, 0.0]), variable)])  # norm 500
print(type(optimizer).__name__, "clipnorm =", optimizer.clipnorm, "; step taken:", variable.numpy(),
      f"(norm {float(tf.norm(variable)):.4f})")
assert optimizer.clipnorm == 1.0
assert np.isclose(float(tf.norm(variable)), 0.01, rtol=1e-5)
assert np.allclose(variable.numpy()[:2], [-0.006, 0.008], rtol=1e-5)

# %% [markdown]
# ## 5. Batch normalization
# Batch normalization (Ioffe & Szegedy 2015) standardizes each unit's pre-activation over the
# mini-batch, `ẑ = (z - mean) / std`, then rescales it with a learned `γ` and `β`. Whatever the
# weights, every layer's input starts at mean 0 and variance 1, so the sigmoid stays out of its
# flat tails. We train the 20-layer sigmoid network of section 3 (Glorot, the worst case there)
# with and without a `BatchNormalization` layer before every activation, same optimizer (Adam,
# 1e-3), same epochs: without it the network stays at chance; with it, it learns (validation
# accuracy above 0.8), and at initialization its first layer gets a gradient of the same order
# as its last (ratio above 0.1, against ~1e-12 without). The running averages that batch norm
# uses at evaluation get momentum 0.9 here instead of Keras' 0.99, so that they catch up within
# our few hundred steps.

# %%
BN_EPOCHS = 4 if QUICK else 15
batch_norm = {}
for name, use_bn in [("plain", False), ("batch norm", True)]:
    keras.utils.set_random_seed(3)
    model = mlp(GRAD_DEPTH, 64, "sigmoid", "glorot_uniform", batch_norm=use_bn)
    grads = gradient_norms(model, X_train[:256], y_train[:256])
    history, accuracy = compile_and_fit(model, keras.optimizers.Adam(1e-3), BN_EPOCHS)
    batch_norm[name] = {"grads": grads, "accuracy": accuracy, "loss": history.history["loss"]}

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
for name, result in batch_norm.items():
    left.semilogy(range(1, GRAD_DEPTH + 1), result["grads"], marker="o", markersize=3, label=name)
    right.plot(range(1, BN_EPOCHS + 1), result["loss"], marker="o", label=f"{name} (val acc {result['accuracy']:.2f})")
left.set_xlabel("layer"); left.set_ylabel("‖∂L/∂W‖ at initialization"); left.legend()
left.set_title("20-layer sigmoid network")
right.axhline(np.log(10), color="gray", linestyle=":", label="ln 10 (chance)")
right.set_xlabel("epoch"); right.set_ylabel("training loss"); right.legend()
plt.tight_layout(); plt.show()
bn_ratio = {name: float(r["grads"][0] / r["grads"][-1]) for name, r in batch_norm.items()}
print({name: f"val accuracy {r['accuracy']:.3f}, gradient first/last layer {bn_ratio[name]:.2g}"
       for name, r in batch_norm.items()})

assert batch_norm["plain"]["accuracy"] < 0.3
assert batch_norm["batch norm"]["accuracy"] > 0.8
assert bn_ratio["batch norm"] > 0.1 and bn_ratio["plain"] < 1e-6

# %% [markdown]
# ## Summary
# Start weights random, at the scale the activation needs (Glorot for tanh and sigmoid, He for
# ReLU-like units, LeCun for SELU: Keras' `kernel_initializer`); check the gradient per layer
# when a deep network does not learn; clip gradients when they spike (`--set clipnorm=1.0`); and
# normalize (batch norm in the CNNs of the `mnist` and `gan` tasks, layer norm in the
# Transformer of `translation`) to make depth trainable. Residual connections (He et al. 2016)
# are the other half of that story.
