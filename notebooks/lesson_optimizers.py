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
# # Lesson 3: gradient descent and the optimizers
#
# Lesson 2 computed the gradient `g = ∂L/∂θ`. Training is what we do with it. Gradient descent
# (Cauchy 1847) steps against it, `θ ← θ - lr · g`; every optimizer in `keras.optimizers` is a
# variation on that line. This lesson:
# 1. runs gradient descent on two classic test functions at three learning rates (too small,
#    right, too large), and shows the noise of mini-batch and single-example (stochastic) steps;
# 2. writes momentum, Nesterov, AdaGrad, RMSProp and Adam in a few lines each, checks them
#    against `keras.optimizers` step by step, and races them on the Rosenbrock valley;
# 3. sweeps the learning rate of every optimizer on a real task (the 8x8 digits) and compares
#    them each at its **own** best rate, with error bars over seeds;
# 4. plots the learning-rate schedules (constant, step, exponential, cosine, warm-up, one-cycle).

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from dlapps import optim

QUICK = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo") == "smoke"
keras.utils.set_random_seed(0)


def descend(grad, start, lr, steps):
    """Plain gradient descent; returns the path, one row per step (steps + 1 rows)."""
    theta, path = np.array(start, dtype="float64"), [np.array(start, dtype="float64")]
    with np.errstate(all="ignore"):
        for _ in range(steps):
            theta = theta - lr * grad(theta)
            path.append(theta)
    return np.array(path)


# %% [markdown]
# ## 1. Gradient descent and the learning rate
# ### An ill-conditioned quadratic
# `f(θ) = ½(θ₁² + κθ₂²)` with condition number κ = 10: the valley is ten times steeper across
# (θ₂) than along (θ₁). Gradient descent multiplies θ₁ by `1 - lr` and θ₂ by `1 - κ·lr` at each
# step, so it converges only when `|1 - κ·lr| < 1`, i.e. `lr < 2/κ = 0.2`; the steep direction sets
# the largest usable rate and the flat one then crawls. The best constant rate, `2/(1 + κ)`,
# balances the two (it zigzags across the valley). At 0.02 the run is stable but after 40 steps
# still far away; at 0.205 it diverges.

# %%
KAPPA = 10.0
quadratic = lambda t: 0.5 * (t[..., 0] ** 2 + KAPPA * t[..., 1] ** 2)  # noqa: E731
quadratic_grad = lambda t: np.array([t[0], KAPPA * t[1]])  # noqa: E731
RATES = {"too small (0.02)": 0.02, f"right (2/(1+κ) = {2 / (1 + KAPPA):.3f})": 2 / (1 + KAPPA),
         "too large (0.205)": 0.205}
quad_paths = {name: descend(quadratic_grad, [-9.0, 1.5], lr, 40) for name, lr in RATES.items()}

# %% [markdown]
# ### The Rosenbrock function
# `f(x, y) = (1 - x)² + 100(y - x²)²` (Rosenbrock 1960) has its minimum at (1, 1) at the bottom
# of a long, curved, flat-bottomed valley. From (-1.2, 1) gradient descent at 1e-4 barely enters
# the valley in 2,000 steps, 1.5e-3 follows it most of the way, and 7e-3 blows up. Both
# functions are plotted below.

# %%


def rosenbrock(t):
    return (1 - t[..., 0]) ** 2 + 100 * (t[..., 1] - t[..., 0] ** 2) ** 2


def rosenbrock_grad(t):
    return np.array([-2 * (1 - t[0]) - 400 * t[0] * (t[1] - t[0] ** 2), 200 * (t[1] - t[0] ** 2)])


ROSEN_START, ROSEN_STEPS = [-1.2, 1.0], 2000
ROSEN_RATES = {"too small (1e-4)": 1e-4, "right (1.5e-3)": 1.5e-3, "too large (7e-3)": 7e-3}
rosen_paths = {name: descend(rosenbrock_grad, ROSEN_START, lr, ROSEN_STEPS) for name, lr in ROSEN_RATES.items()}


def contours(ax, f, xlim, ylim, levels):
    xs, ys = np.linspace(*xlim, 300), np.linspace(*ylim, 300)
    grid = np.stack(np.meshgrid(xs, ys), -1)
    ax.contour(xs, ys, f(grid), levels=levels, colors="gray", linewidths=0.5)
    ax.set_xlim(*xlim); ax.set_ylim(*ylim)


fig, axes = plt.subplots(1, 3, figsize=(15, 4))
contours(axes[0], quadratic, (-10, 10), (-3, 3), np.geomspace(0.05, 200, 12))
contours(axes[1], rosenbrock, (-2, 2), (-1, 3), np.geomspace(0.05, 800, 14))
for ax, paths in [(axes[0], quad_paths), (axes[1], rosen_paths)]:
    for name, path in paths.items():
        shown = path[np.all(np.abs(path) < 50, axis=1)]
        ax.plot(shown[:, 0], shown[:, 1], ".-", markersize=3, linewidth=0.8, label=name)
    ax.legend(fontsize=8, loc="upper left")
axes[0].set_title(f"quadratic, κ = {KAPPA:.0f}: 40 steps of gradient descent")
axes[1].plot(1, 1, "k*", markersize=12); axes[1].set_title("Rosenbrock: 2,000 steps")
for name, path in rosen_paths.items():
    with np.errstate(all="ignore"):
        axes[2].semilogy(np.minimum(rosenbrock(path), 1e6), label=name)
axes[2].set_xlabel("step"); axes[2].set_ylabel("f (capped at 1e6)"); axes[2].legend(fontsize=8)
axes[2].set_title("Rosenbrock: loss per step")
plt.tight_layout(); plt.show()

final = {name: float(quadratic(path[-1])) for name, path in quad_paths.items()}
with np.errstate(all="ignore"):
    final_rosen = {name: float(rosenbrock(path[-1])) for name, path in rosen_paths.items()}
print("quadratic after 40 steps:", {k: f"{v:.3g}" for k, v in final.items()}, "(start 51.75)")
print("Rosenbrock after 2,000 steps:", {k: f"{v:.3g}" for k, v in final_rosen.items()}, "(start 24.2)")
small, right, large = final.values()
one_step = descend(quadratic_grad, [-9.0, 1.5], 0.02, 1)[1]
assert np.allclose(one_step, [-9.0 * (1 - 0.02), 1.5 * (1 - KAPPA * 0.02)])
assert large > quadratic(quad_paths["too small (0.02)"][0]) and right < 1e-4 and small > 1
zigzag = np.sign(quad_paths[list(RATES)[1]][:10, 1])
assert np.all(zigzag[1:] == -zigzag[:-1])                 # θ₂ changes sign at every step
assert rosenbrock(np.array([1.0, 1.0])) == 0
assert abs(1 - KAPPA * 0.205) > 1 > abs(1 - KAPPA * 2 / (1 + KAPPA))
small, right, large = final_rosen.values()
assert small > 1 and right < 0.05 and not np.isfinite(large)

# %% [markdown]
# ### Batch, mini-batch and stochastic gradients
# On real data the loss is a mean over examples, and the gradient of a **mini-batch** is a noisy,
# cheap estimate of the full-batch gradient (Robbins & Monro 1951; Bottou 2010). We fit a line
# `y = w·x + b` to 200 noisy points with the mean squared error, from the same start and at the
# same rate, with the full batch, batches of 20 and single examples (SGD), for the same number of
# steps. The full batch converges to the least-squares solution; the smaller the batch, the
# more the iterates keep jittering around it (we measure their mean distance to the solution
# over the last 100 steps). A decaying rate removes most of that noise: SGD with
# `lr = 0.1 / (1 + step/50)` ends closer than SGD at a constant 0.1 (section 4 has the usual
# schedules).

# %%
rng = np.random.default_rng(0)
x_line = rng.uniform(-1, 1, 200)
y_line = 2 * x_line + 1 + rng.normal(0, 0.5, 200)
A = np.stack([x_line, np.ones_like(x_line)], axis=1)
solution = np.linalg.lstsq(A, y_line, rcond=None)[0]
line_loss = lambda t: ((t[..., :1] * x_line + t[..., 1:] - y_line) ** 2).mean(-1)  # noqa: E731


def line_descent(batch_size, lr=0.1, steps=400, seed=0, decay=None):
    order_rng, theta, path = np.random.default_rng(seed), np.array([-1.5, -1.0]), []
    for step in range(steps):
        batch = order_rng.choice(200, batch_size, replace=False)
        residual = A[batch] @ theta - y_line[batch]
        rate = lr / (1 + step / decay) if decay else lr
        theta = theta - rate * 2 * A[batch].T @ residual / batch_size
        path.append(theta)
    return np.array(path)


noise_paths = {f"batch {b}" if b > 1 else "SGD (batch 1)": line_descent(b) for b in (200, 20, 1)}
noise_paths["SGD, decaying rate"] = line_descent(1, decay=50)
jitter = {name: float(np.linalg.norm(path[-100:] - solution, axis=1).mean()) for name, path in noise_paths.items()}

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
xs, ys = np.linspace(-2, 3.5, 100), np.linspace(-1.5, 2.5, 100)
left.contour(xs, ys, line_loss(np.stack(np.meshgrid(xs, ys), -1)), levels=15, colors="gray", linewidths=0.5)
for name, path in noise_paths.items():
    left.plot(path[:, 0], path[:, 1], linewidth=0.8, label=name)
left.plot(*solution, "k*", markersize=12, label="least squares")
left.set_xlabel("w"); left.set_ylabel("b"); left.legend(fontsize=8); left.set_title("paths at lr = 0.1")
for name, path in noise_paths.items():
    right.semilogy(np.linalg.norm(path - solution, axis=1), linewidth=0.8, label=name)
right.set_xlabel("step"); right.set_ylabel("distance to the solution"); right.legend(fontsize=8)
plt.tight_layout(); plt.show()
print("mean distance to the solution over the last 100 steps:", {k: f"{v:.3g}" for k, v in jitter.items()})
assert jitter["batch 200"] < 1e-6 < jitter["batch 20"] < jitter["SGD (batch 1)"]
assert jitter["SGD, decaying rate"] < jitter["SGD (batch 1)"] / 2

# %% [markdown]
# ## 2. The optimizers, a few lines each
# Each function takes the parameters `θ`, the gradient `g` and a dict `s` for its running state,
# and returns the new `θ`; the defaults are those of `keras.optimizers`.
# - **Momentum** (Polyak 1964): a velocity that accumulates consistent gradient directions and
#   cancels oscillating ones, `v ← βv - lr·g; θ ← θ + v`.
# - **Nesterov** (Nesterov 1983; Sutskever et al. 2013): the same velocity, applied as if after
#   a look-ahead step, `θ ← θ + βv - lr·g`.
# - **AdaGrad** (Duchi et al. 2011): each parameter's rate divided by the root of the sum of all
#   its past squared gradients (Keras starts that sum at 0.1), so the steps only ever shrink.
# - **RMSProp** (Tieleman & Hinton 2012): the same, with an exponential moving average of the
#   squared gradients instead of a sum, so the rate no longer decays to zero.
# - **Adam** (Kingma & Ba 2015): momentum on the gradient (`m`) and RMSProp on its square (`v`),
#   both bias-corrected for their start at zero (written, as Keras does, with the correction
#   folded into the rate).

# %%
def sgd(theta, g, s, lr):
    return theta - lr * g


def momentum(theta, g, s, lr, beta=0.9):
    s["v"] = beta * s.get("v", 0.0) - lr * g
    return theta + s["v"]


def nesterov(theta, g, s, lr, beta=0.9):
    s["v"] = beta * s.get("v", 0.0) - lr * g
    return theta + beta * s["v"] - lr * g


def adagrad(theta, g, s, lr, eps=1e-7):
    s["G"] = s.get("G", 0.1) + g ** 2
    return theta - lr * g / np.sqrt(s["G"] + eps)


def rmsprop(theta, g, s, lr, rho=0.9, eps=1e-7):
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g ** 2
    return theta - lr * g / np.sqrt(s["v"] + eps)


def adam(theta, g, s, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
    s["t"] = s.get("t", 0) + 1
    s["m"] = beta_1 * s.get("m", 0.0) + (1 - beta_1) * g
    s["v"] = beta_2 * s.get("v", 0.0) + (1 - beta_2) * g ** 2
    rate = lr * np.sqrt(1 - beta_2 ** s["t"]) / (1 - beta_1 ** s["t"])
    return theta - rate * s["m"] / (np.sqrt(s["v"]) + eps)


OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "nesterov": nesterov,
              "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}
KERAS_OPTIMIZERS = {
    "sgd": lambda lr: keras.optimizers.SGD(lr),
    "momentum": lambda lr: keras.optimizers.SGD(lr, momentum=0.9),
    "nesterov": lambda lr: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
    "adagrad": lambda lr: keras.optimizers.Adagrad(lr),
    "rmsprop": lambda lr: keras.optimizers.RMSprop(lr),
    "adam": lambda lr: keras.optimizers.Adam(lr),
}

# %% [markdown]
# ### Checked against Keras, step by step
# From the same start on the Rosenbrock function, each of our functions and the matching Keras
# optimizer (on a float64 `keras.Variable`, with Keras' float type set to float64) take 100
# steps, each fed the gradient at its own current point. Keras turns its constants (momentum,
# β₁, β₂) into float32 numbers before casting them to float64 (0.9 becomes 0.8999999762), a
# relative difference of ~3e-8 per step, so the two paths agree to ~1e-6 rather than to
# round-off; we require 1e-5. A real mistake is far larger: Adam without its bias correction is
# off by more than 1e-2 within the 100 steps.

# %%
CHECK_RATES = {"sgd": 1e-3, "momentum": 1e-3, "nesterov": 1e-3, "adagrad": 0.3, "rmsprop": 3e-3, "adam": 0.03}


def adam_without_bias_correction(theta, g, s, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
    s["m"] = beta_1 * s.get("m", 0.0) + (1 - beta_1) * g
    s["v"] = beta_2 * s.get("v", 0.0) + (1 - beta_2) * g ** 2
    return theta - lr * s["m"] / (np.sqrt(s["v"]) + eps)


keras.config.set_floatx("float64")
largest_gap = {}
for name, step in [*OPTIMIZERS.items(), ("adam", adam_without_bias_correction)]:
    lr = CHECK_RATES[name]
    theta, state = np.array(ROSEN_START), {}
    variable = keras.Variable(np.array(ROSEN_START), dtype="float64")
    optimizer = KERAS_OPTIMIZERS[name](lr)
    gaps = []
    for _ in range(100):
        theta = step(theta, rosenbrock_grad(theta), state, lr)
        optimizer.apply_gradients([(tf.constant(rosenbrock_grad(variable.numpy())), variable)])
        gaps.append(np.abs(theta - variable.numpy()).max())
    largest_gap[name if step is OPTIMIZERS.get(name) else "adam, no bias correction"] = max(gaps)
print("largest |ours - keras| over 100 steps:", {k: f"{v:.1e}" for k, v in largest_gap.items()})
assert all(largest_gap[name] < 1e-5 for name in OPTIMIZERS)
assert largest_gap["adam, no bias correction"] > 1e-2

# %% [markdown]
# ### The race through the Rosenbrock valley
# 2,000 steps each. With the *same* rate as gradient descent (1e-3), momentum and Nesterov get
# through the valley: their velocity builds up along its floor, where the gradient is small but
# consistent, and they end more than 1,000 times closer in loss than plain gradient descent.
# The adaptive methods (rates chosen by hand for this function) rescale each coordinate's step,
# and Adam reaches the minimum to 1e-3 in loss.

# %%
def run(name, grad, start, lr, steps):
    theta, state, path = np.array(start, dtype="float64"), {}, [np.array(start, dtype="float64")]
    for _ in range(steps):
        theta = OPTIMIZERS[name](theta, grad(theta), state, lr)
        path.append(theta)
    return np.array(path)


race = {name: run(name, rosenbrock_grad, ROSEN_START, CHECK_RATES[name], ROSEN_STEPS) for name in OPTIMIZERS}
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
contours(left, rosenbrock, (-1.6, 1.6), (-0.5, 1.6), np.geomspace(0.05, 800, 14))
for name, path in race.items():
    left.plot(path[:, 0], path[:, 1], linewidth=1, label=f"{name} (lr {CHECK_RATES[name]:g})")
    right.semilogy(rosenbrock(path) + 1e-16, label=name)
left.plot(1, 1, "k*", markersize=12); left.legend(fontsize=8); left.set_title("paths from (-1.2, 1)")
right.set_xlabel("step"); right.set_ylabel("f"); right.legend(fontsize=8); right.set_title("loss per step")
plt.tight_layout(); plt.show()

race_final = {name: float(rosenbrock(path[-1])) for name, path in race.items()}
print("f after 2,000 steps:", {k: f"{v:.2g}" for k, v in race_final.items()})
assert race_final["momentum"] < race_final["sgd"] / 1000 and race_final["nesterov"] < race_final["sgd"] / 1000
assert race_final["adam"] < 1e-3

# %% [markdown]
# ## 3. A learning-rate sweep on real data
# Comparing optimizers at one shared learning rate says more about the rate than about the
# optimizers: every optimizer has its own scale (Adam's first step is `lr` per parameter
# whatever the gradient's size, 1e-2 or 1e3; SGD's is `lr` times the gradient). A fair
# comparison gives each optimizer its own best rate (Wilson et al. 2017; Choi et al. 2019).
#
# The task: the digits (scikit-learn's 8x8 images, the embedded data of the `mnist` task; 1,280
# for training, 517 for validation), the lesson-2 MLP (64 → 32 tanh → 10) with the lesson-2
# backward pass, trained with each optimizer above at learning rates 10⁻⁴ ... 10^0.5, from several
# seeds (each seed: its own initial weights and batch order). Score: validation cross-entropy
# after a fixed number of epochs (a diverged run scores ∞).

# %%
digits = load_digits()
order = np.random.default_rng(0).permutation(len(digits.target))
X_all, y_all = digits.data[order] / 16.0, digits.target[order]
X_train, y_train, X_val, y_val = X_all[:1280], y_all[:1280], X_all[1280:], y_all[1280:]


def loss_and_grads(params, X, y):
    """Mean cross-entropy of the 64-32-10 tanh MLP and its gradients (lesson 2)."""
    W1, b1, W2, b2 = params
    H = np.tanh(X @ W1 + b1)
    Z = H @ W2 + b2
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    loss = -np.log(P[np.arange(len(y)), y] + 1e-300).mean()
    dZ = P
    dZ[np.arange(len(y)), y] -= 1
    dZ /= len(y)
    dA = (dZ @ W2.T) * (1 - H ** 2)
    return loss, [X.T @ dA, dA.sum(axis=0), H.T @ dZ, dZ.sum(axis=0)]


def train(name, lr, seed, epochs, batch_size=32):
    rng = np.random.default_rng(seed)
    params = [rng.normal(0, np.sqrt(1 / 64), (64, 32)), np.zeros(32),
              rng.normal(0, np.sqrt(1 / 32), (32, 10)), np.zeros(10)]
    states = [{} for _ in params]
    with np.errstate(all="ignore"):
        for _ in range(epochs):
            batches = rng.permutation(len(X_train))
            for start in range(0, len(batches), batch_size):
                batch = batches[start:start + batch_size]
                _, grads = loss_and_grads(params, X_train[batch], y_train[batch])
                params = [OPTIMIZERS[name](p, g, s, lr) for p, g, s in zip(params, grads, states)]
        val_loss = loss_and_grads(params, X_val, y_val)[0]
    return float(val_loss) if np.isfinite(val_loss) else np.inf


SWEEP_EPOCHS, SEEDS = (2, 2) if QUICK else (8, 3)
SWEEP_RATES = 10 ** np.arange(-4, 0.51, 1.0 if QUICK else 0.5)
sweep = {name: np.array([[train(name, lr, seed, SWEEP_EPOCHS) for seed in range(SEEDS)] for lr in SWEEP_RATES])
         for name in OPTIMIZERS}
mean = {name: scores.mean(axis=1) for name, scores in sweep.items()}  # inf if any seed diverged
best_rate = {name: float(SWEEP_RATES[np.argmin(m)]) for name, m in mean.items()}
best_loss = {name: float(m.min()) for name, m in mean.items()}
best_std = {name: float(sweep[name][np.argmin(mean[name])].std()) for name in OPTIMIZERS}

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 2]})
CAP = 2.5
for name, scores in sweep.items():
    shown = np.minimum(scores, CAP)
    left.errorbar(SWEEP_RATES, shown.mean(axis=1), yerr=shown.std(axis=1), marker="o", capsize=3, label=name)
left.axhline(np.log(10), color="gray", linestyle=":", label="ln 10 (uniform guess)")
left.set_xscale("log"); left.set_ylim(0, CAP + 0.1); left.set_xlabel("learning rate")
left.set_ylabel(f"validation cross-entropy (capped at {CAP})"); left.legend(fontsize=8)
left.set_title(f"{SWEEP_EPOCHS} epochs, mean ± std over {SEEDS} seeds")
names = list(OPTIMIZERS)
right.bar(names, [best_loss[n] for n in names], yerr=[best_std[n] for n in names], capsize=4)
for i, n in enumerate(names):
    right.text(i, best_loss[n] / 2, f"lr\n{best_rate[n]:.2g}", ha="center", color="white", fontsize=8)
right.set_ylabel("validation cross-entropy"); right.set_title("each at its own best rate")
right.tick_params(axis="x", labelrotation=30)
plt.tight_layout(); plt.show()
print("best rate per optimizer:", {k: f"{v:.2g}" for k, v in best_rate.items()})
print("validation loss at the best rate:", {k: f"{v:.3f} ± {best_std[k]:.3f}" for k, v in best_loss.items()})

# %% [markdown]
# What the sweep shows:
# - the best rates span orders of magnitude: plain SGD's is at least 10 times Adam's;
# - at Adam's best rate, plain SGD is much worse than at its own best rate (the handicap of a
#   same-rate comparison, 0.3 or more in validation loss);
# - no single rate is fair to all six: at every rate of the sweep, at least one optimizer
#   scores 0.2 or more worse than at its own best rate.

# %%
adam_rate_index = int(np.argmin(mean["adam"]))
handicap = [max(mean[n][i] - best_loss[n] for n in OPTIMIZERS) for i in range(len(SWEEP_RATES))]
print(f"SGD at Adam's best rate ({best_rate['adam']:.2g}): {mean['sgd'][adam_rate_index]:.3f}; at its own: {best_loss['sgd']:.3f}")
print("largest loss above an optimizer's own best, per shared rate:",
      {f"{lr:.2g}": f"{h:.2f}" for lr, h in zip(SWEEP_RATES, handicap)})
assert best_rate["sgd"] >= 10 * best_rate["adam"]
assert np.allclose(adam(np.zeros(3), np.array([1e-2, 1.0, 1e3]), {}, 0.01), -0.01, rtol=1e-3)  # first step: lr
assert mean["sgd"][adam_rate_index] > best_loss["sgd"] + 0.3
assert min(handicap) > 0.2

# %% [markdown]
# ## 4. Learning-rate schedules
# A rate that is right at the start is too large at the end, where SGD's noise keeps the
# iterates jittering (section 1). Schedules lower it over the `T` steps of the run:
# - **step**: divide by 10 at fixed points (here 50% and 75% of the run; He et al. 2016);
# - **exponential**: multiply by a constant factor each step (here down to 1/100 at the end);
# - **cosine** (Loshchilov & Hutter 2017): `lr₀ · ½(1 + cos(π t/T))`, half the rate at mid-run and
#   zero at the end;
# - **warm-up** (Goyal et al. 2017): start from 0, rise linearly for the first 10% of steps, then
#   cosine; it protects Adam and large batches from the huge early updates of random weights;
# - **one-cycle** (Smith & Topin 2019, "super-convergence"): rise from `lr_max/25` to `lr_max`
#   over the first 30% of the steps, then fall to `lr_max/25/10⁴`, both halves along a half
#   cosine (fastai's and PyTorch's variant of the paper's linear ramps).
#
# The first five come from `keras.optimizers.schedules`; one-cycle we compute from its definition
# and compare with `dlapps.optim`'s (`--set lr_schedule=onecycle`), which must match.

# %%
T, LR0 = 1000, 0.1
steps = np.arange(T + 1)
schedules = {
    "constant": np.full(T + 1, LR0),
    "step": keras.optimizers.schedules.PiecewiseConstantDecay([T // 2, 3 * T // 4], [LR0, LR0 / 10, LR0 / 100]),
    "exponential": keras.optimizers.schedules.ExponentialDecay(LR0, decay_steps=T, decay_rate=0.01),
    "cosine": keras.optimizers.schedules.CosineDecay(LR0, decay_steps=T),
    "warm-up + cosine": keras.optimizers.schedules.CosineDecay(0.0, decay_steps=T - T // 10, warmup_target=LR0,
                                                               warmup_steps=T // 10),
}
curves = {name: (s if isinstance(s, np.ndarray) else np.array([float(s(t)) for t in steps]))
          for name, s in schedules.items()}


def one_cycle(t, lr_max, total, warmup_fraction=0.3, div=25.0, final_div=1e4):
    """Smith & Topin (2019), cosine ramps: lr_max/div -> lr_max -> lr_max/(div * final_div)."""
    anneal = lambda start, end, fraction: end + (start - end) * (1 + np.cos(np.pi * fraction)) / 2  # noqa: E731
    warmup = warmup_fraction * total
    return np.where(t <= warmup, anneal(lr_max / div, lr_max, t / warmup),
                    anneal(lr_max, lr_max / (div * final_div), np.minimum(1, (t - warmup) / (total - warmup))))


curves["one-cycle"] = one_cycle(steps, LR0, T)
library = None
if "onecycle" in optim.SCHEDULES:
    library_schedule = optim.learning_rate_schedule("onecycle", LR0, T)
    library = np.array([float(library_schedule(t)) for t in steps])

fig, ax = plt.subplots(figsize=(9, 4))
for name, curve in curves.items():
    ax.plot(steps, curve, label=name)
if library is not None:
    ax.plot(steps[::25], library[::25], "k.", label="dlapps.optim onecycle")
ax.set_xlabel("step"); ax.set_ylabel("learning rate"); ax.legend(fontsize=8)
ax.set_title(f"schedules over T = {T} steps, peak rate {LR0}")
plt.show()

print({name: f"end {curve[-1]:.3g}" for name, curve in curves.items()})
assert np.allclose(curves["step"][[0, T // 2 + 1, 3 * T // 4 + 1]], [LR0, LR0 / 10, LR0 / 100])
assert np.isclose(curves["exponential"][-1], LR0 / 100, rtol=1e-4)
assert np.isclose(curves["cosine"][T // 2], LR0 / 2, rtol=1e-4) and curves["cosine"][-1] < 1e-7
assert curves["warm-up + cosine"][0] == 0 and int(np.argmax(curves["warm-up + cosine"])) == T // 10
assert np.isclose(curves["one-cycle"][0], LR0 / 25) and int(np.argmax(curves["one-cycle"])) == int(0.3 * T)
assert np.isclose(curves["one-cycle"][-1], LR0 / 25 / 1e4)
if library is not None:
    assert np.allclose(library, curves["one-cycle"], rtol=1e-4, atol=1e-9)

# %% [markdown]
# ## Summary
# The learning rate is the first hyperparameter to tune, separately for every optimizer (a
# sweep on a log scale, or `dlapps lr-find`, the range test of Smith 2017). Momentum fixes
# gradient descent's crawl along flat valleys; the adaptive methods rescale each parameter; a
# decaying schedule removes the end-of-training noise. In dlapps these are config keys of every
# task: `--set optimizer=nesterov --set learning_rate=0.05 --set lr_schedule=cosine`.
#
# Next: `lesson_initialization.py` — making sure there is a gradient to follow in a deep network.
