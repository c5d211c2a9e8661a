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
# # Lesson: overfitting and regularization, measured
#
# A network with far more weights than training examples can memorise its training set: the
# training accuracy goes to 100% while the accuracy on new data stays well below. That difference,
# the **generalization gap**, is what regularization fights. This lesson stages an overfit on
# purpose and then measures, over several seeds, what each remedy does to the gap and to the
# validation accuracy:
#
# | remedy | what it does | in dlapps |
# |---|---|---|
# | L2 penalty | adds λ·Σw² to the loss: pulls every weight towards 0 in proportion to its size | `--set l2=...` (tabular) |
# | L1 penalty | adds λ·Σ\|w\|: a constant pull that sets many weights exactly to ~0 (sparse) | `--set l1=...` (tabular) |
# | dropout | zeroes a random half of the hidden units at each step (Srivastava et al. 2014) | `--set dropout=...` |
# | batch normalization | normalises each unit over the batch; the batch noise regularises a little (Ioffe & Szegedy 2015) | `--set batch_norm=true` |
# | early stopping | stops when the validation loss stops improving, keeps the best weights | `early_stopping_patience` |
# | data augmentation | trains on randomly shifted copies of the images | `augment`, `translation` (mnist) |
# | weight decay | AdamW shrinks weights directly, outside the gradient (Loshchilov & Hutter 2019) | `--set optimizer=adamw` |
#
# Every sentence below that states a result is checked by an `assert` on this run's numbers.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

QUICK = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo") == "smoke"
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
EPOCHS = 30 if QUICK else 100

digits = load_digits()
# scikit-learn's 8x8 digits, smoothly resized to 16x16 (so that a one-pixel shift is a small one)
images = np.stack([np.asarray(Image.fromarray((im * 15.9).astype(np.uint8)).resize((16, 16), Image.BILINEAR))
                   for im in digits.images]).reshape(len(digits.images), 256).astype("float32") / 255
order = np.random.default_rng(0).permutation(len(digits.target))
train_idx, val_idx = order[:100], order[100:]
x_train, y_train = images[train_idx], digits.target[train_idx]
x_val, y_val = images[val_idx], digits.target[val_idx]
print(f"train {x_train.shape}, validation {x_val.shape}")

# %% [markdown]
# ## 1. Stage an overfit
# 100 training digits (16x16 pixels), a network of two 256-unit hidden layers: about 135,000
# weights, 1,350 per training example. Adam, no regularization.

# %%
def build(l2=0.0, l1=0.0, dropout=0.0, batch_norm=False, augment=False, weight_decay=0.0):
    """An MLP on the 64 pixels; each argument switches on one remedy."""
    regularizer = (keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None)
    inputs = keras.Input((256,))
    x = inputs
    if augment:  # shift the 16x16 image by up to one pixel each way, only while training
        x = keras.layers.Reshape((16, 16, 1))(x)
        x = keras.layers.RandomTranslation(1 / 16, 1 / 16, fill_mode="constant", interpolation="nearest")(x)
        x = keras.layers.Flatten()(x)
    for _ in range(2):
        x = keras.layers.Dense(256, kernel_regularizer=regularizer, use_bias=not batch_norm)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(10, activation="softmax", kernel_regularizer=regularizer)(x)
    model = keras.Model(inputs, outputs)
    optimizer = (keras.optimizers.AdamW(1e-3, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(1e-3))
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run(seed, early_stopping=False, curves=False, **options):
    """Train one variant; its final accuracies, losses, loss gap (validation - training), history and model.

    The validation split is scored every epoch only when the curves or early stopping need it."""
    keras.utils.set_random_seed(seed)
    model = build(**options)
    callbacks = ([keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True)]
                 if early_stopping else [])
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val) if curves or early_stopping else None,
                        epochs=EPOCHS, batch_size=10, callbacks=callbacks, verbose=0)
    train_loss, train_acc = model.evaluate(x_train, y_train, verbose=0)[:2]  # no dropout, no augmentation
    val_loss, val_acc = model.evaluate(x_val, y_val, verbose=0)[:2]
    return {"train_acc": train_acc, "val_acc": val_acc, "gap": val_loss - train_loss, "val_loss": val_loss,
            "history": history.history, "model": model}


baseline = run(0, curves=True)
train_acc, val_acc, history = baseline["train_acc"], baseline["val_acc"], baseline["history"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(history["loss"], label="train")
axes[0].plot(history["val_loss"], label="validation")
axes[0].set(title="loss", xlabel="epoch")
axes[1].plot(history["accuracy"], label="train")
axes[1].plot(history["val_accuracy"], label="validation")
axes[1].set(title="accuracy", xlabel="epoch")
for ax in axes:
    ax.legend()
plt.show()
best_epoch = int(np.argmin(history["val_loss"]))
print(f"train accuracy {train_acc:.3f}, validation accuracy {val_acc:.3f}, gap {train_acc - val_acc:.3f}; "
      f"validation loss lowest at epoch {best_epoch + 1} of {EPOCHS}")

# %% [markdown]
# The training accuracy reaches 100% while the validation accuracy stays more than 5 points
# lower: the network has memorised the 100 examples. The validation loss reaches its lowest
# point well before the last epoch and rises afterwards, while the training loss keeps falling:
# the later epochs make the model more confident on training digits, not better on new ones.

# %%
assert train_acc == 1.0 and train_acc - val_acc > 0.05
assert best_epoch < EPOCHS - 5 and history["val_loss"][-1] > min(history["val_loss"])
assert history["loss"][-1] < history["loss"][best_epoch]

# %% [markdown]
# ## 2. Each remedy, over several seeds
# Every variant is trained from the same seeds; the bars show the mean and the error bars the
# standard deviation over seeds. A difference smaller than the error bars is not a finding. The
# gap is measured on the loss (validation cross-entropy minus training cross-entropy): accuracy
# hides most of it, since a memorising network and a regularized one often pick the same class
# with very different confidence.

# %%
VARIANTS = {
    "none": {},
    "L2 1e-2": {"l2": 1e-2},
    "L1 1e-3": {"l1": 1e-3},
    "dropout 0.5": {"dropout": 0.5},
    "batch norm": {"batch_norm": True},
    "early stopping": {"early_stopping": True},
    "augmentation": {"augment": True},
    "AdamW wd 2": {"weight_decay": 2.0},
}
results, models = {}, {}
for name, options in VARIANTS.items():
    runs = [run(seed, **options) for seed in SEEDS]
    results[name] = {"gap": np.array([r["gap"] for r in runs]), "val": np.array([r["val_acc"] for r in runs]),
                     "train_acc": np.array([r["train_acc"] for r in runs])}
    models[name] = runs[0]["model"]
    print(f"{name:<15} loss gap {results[name]['gap'].mean():.3f} ± {results[name]['gap'].std():.3f}   "
          f"val accuracy {results[name]['val'].mean():.3f} ± {results[name]['val'].std():.3f}   "
          f"train accuracy {results[name]['train_acc'].mean():.3f}")

# %%
names = list(VARIANTS)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for ax, key, title in ((axes[0], "gap", "validation - training loss (lower is better)"),
                       (axes[1], "val", "validation accuracy (higher is better)")):
    ax.bar(names, [results[n][key].mean() for n in names], yerr=[results[n][key].std() for n in names],
           capsize=4, color=["grey"] + ["tab:blue"] * (len(names) - 1))
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=40)
axes[1].set_ylim(min(results[n]["val"].mean() for n in names) - 0.05, 1.0)
plt.show()

# %% [markdown]
# What the bars show (the asserts below hold the text to them):
# - The two weight penalties shrink the loss gap the most: L2 and L1 each by more than 0.04, far
#   more than the spread between seeds.
# - Dropout, early stopping and weight decay (AdamW) shrink it too, by less.
# - Batch normalization is not a regularizer first: it makes training faster and better
#   conditioned, and any regularizing effect depends on the batch noise. Augmentation needs epochs
#   to pay off, since each epoch now shows shifted copies instead of the same 100 images: compare
#   its bars between the smoke run and the default one (100 epochs, 5 seeds).
# - The validation *accuracy* moves far less than the gap: every variant stays within 3 points of
#   the unregularized network. With 100 training digits the penalties make the network less
#   over-confident on new digits more often than they change its answers.

# %%
gap = {n: results[n]["gap"].mean() for n in names}
val = {n: results[n]["val"].mean() for n in names}
spread = max(results[n]["gap"].std() for n in names)
assert gap["none"] - gap["L2 1e-2"] > max(0.04, 2 * spread) and gap["none"] - gap["L1 1e-3"] > max(0.04, 2 * spread)
assert all(gap[n] < gap["none"] for n in ("dropout 0.5", "early stopping", "AdamW wd 2")), gap
assert all(abs(val[n] - val["none"]) < 0.03 for n in names), val

# %% [markdown]
# ## 3. L1 and L2 leave different weights
# Both penalties shrink the weights, but differently. L2's pull is proportional to the weight
# (gradient 2λw), so small weights are barely pushed and end small but not zero. L1's pull has the
# same size λ for every weight (gradient λ·sign(w)), so a weight that the data do not defend is
# pushed all the way to about zero: L1 makes the network **sparse**.

# %%
def first_layer(model):
    return next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense)).kernel.numpy().ravel()


weights = {n: first_layer(models[n]) for n in ("none", "L2 1e-2", "L1 1e-3")}
fig, ax = plt.subplots(figsize=(7, 3.5))
for n, w in weights.items():
    ax.hist(w, bins=np.linspace(-0.3, 0.3, 121), histtype="step", label=n, linewidth=1.5)
ax.set(yscale="log", xlabel="first-layer weight", ylabel="count", title="first-layer weights after training")
ax.legend()
plt.show()
near_zero = {n: float(np.mean(np.abs(w) < 1e-3)) for n, w in weights.items()}
print({n: f"{share:.1%} of weights below 1e-3 in size" for n, share in near_zero.items()})

# %% [markdown]
# L1 sets far more weights to about zero (|w| < 0.001) than L2 (more than twice L2's share) and
# than no penalty at all (more than ten times).

# %%
assert near_zero["L1 1e-3"] > 2 * near_zero["L2 1e-2"] and near_zero["L1 1e-3"] > 10 * near_zero["none"]

# %% [markdown]
# ## 4. Bonus: dropout at prediction time (MC dropout)
# Gal & Ghahramani (2016): keep dropout on at prediction time and average many passes. The spread
# of the passes is an estimate of the model's uncertainty: on digits the network gets wrong, the
# averaged prediction is much less certain (its entropy more than 1.5 times higher) than on digits
# it gets right.

# %%
dropout_model = models["dropout 0.5"]
passes = np.stack([dropout_model(x_val, training=True).numpy() for _ in range(20 if QUICK else 50)])
mean = passes.mean(axis=0)
entropy = -(mean * np.log(mean + 1e-9)).sum(axis=1)
right = mean.argmax(axis=1) == y_val
print(f"MC-dropout accuracy {right.mean():.3f}; mean entropy right {entropy[right].mean():.3f}, "
      f"wrong {entropy[~right].mean():.3f} nats")
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist([entropy[right], entropy[~right]], bins=20, density=True, label=["right", "wrong"])
ax.set(xlabel="entropy of the averaged prediction (nats)", title="MC dropout: uncertainty")
ax.legend()
plt.show()
assert entropy[~right].mean() > 1.5 * entropy[right].mean()

# %% [markdown]
# ## Where this is in dlapps
# - `dlapps list --keys tabular` shows `l2`, `l1`, `dropout`, `batch_norm`, `early_stopping_patience`
#   and `optimizer` (adamw for weight decay); `dlapps list --keys mnist` shows `augment`,
#   `rotation`, `translation`, `zoom`, `dropout`, `batch_norm`.
# - The tuning lesson searches over these keys instead of setting them by hand.

# %%
import dataclasses

import dlapps

keys = {name: {f.name for f in dataclasses.fields(dlapps.get_task(name).Config)} for name in ("tabular", "mnist")}
assert {"l2", "l1", "dropout", "batch_norm", "early_stopping_patience", "optimizer"} <= keys["tabular"]
assert {"augment", "rotation", "translation", "zoom", "dropout", "batch_norm"} <= keys["mnist"]
