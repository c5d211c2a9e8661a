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
# # Autoencoders: compression, denoising, anomalies and a variational model
#
# An autoencoder is trained to copy its input to its output through a narrow **code** (the
# bottleneck). Copying is trivial; copying through 32 numbers is not, so the network has to
# learn what matters in a digit. This tutorial uses the `autoencoder` task of dlapps on
# handwritten digits (scikit-learn's digits by default, offline; MNIST with the `full` profile).
#
# What you will see:
# 1. **Encoder and decoder as two functional models**, the autoencoder as their composition.
# 2. **Reconstruction losses**: per-pixel binary cross-entropy (pixels as probabilities) or MSE.
# 3. **The code space**: test digits mapped to codes, projected to 2-D, coloured by class —
#    the autoencoder never saw a label, yet the classes form regions.
# 4. **Anomaly detection**: train without one digit; its reconstruction error is higher, and the
#    ROC AUC measures how well that error singles it out.
# 5. **Denoising**: noisy inputs, clean targets (the noise is added in the `tf.data` pipeline).
# 6. **The variational autoencoder (VAE)**: a Gaussian code, the reparameterization trick, the
#    KL term, and new digits decoded from random codes.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import numpy as np

import dlapps
from dlapps import config, training
from dlapps.tasks.autoencoder.model import decoder_of, encoder_of, reconstruct

PROFILE = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo")
task = dlapps.get_task("autoencoder")
cfg = config.resolve(task, PROFILE)
if cfg.anomaly_class is None:  # the smoke profile trains on every digit; leave one out here
    cfg = dataclasses.replace(cfg, anomaly_class=2)
cfg

# %% [markdown]
# ## The data
# Each example is `({"image": pixels 0..255, "label": digit}, clean image in [0, 1])`. The model
# reads only `image`; the label rides along for the plots and the anomaly AUC. The recipe leaves
# one digit (`anomaly_class`) out of the training and validation splits.

# %%
data = task.load_data(cfg)
print(data.info["source_description"])
print("training images:", data.info["train_size"], "| left-out class:", cfg.anomaly_class)
inputs, target = next(iter(data.train))
inputs["image"].shape, inputs["image"].dtype, target.shape, float(target.numpy().max())

# %% [markdown]
# ## The model
# The convolutional encoder halves the resolution twice with strided convolutions
# (28 → 14 → 7) and ends in a `Dense` layer of `code_dim` units; the decoder mirrors it with
# transposed convolutions and a sigmoid, so every output pixel is in [0, 1]. `Rescaling`
# inside the encoder means the saved model takes raw pixels.

# %%
result = training.train(task, cfg, runs_root="runs", quiet=True)
model = result.model
encoder, decoder = encoder_of(model), decoder_of(model)
encoder.summary()
decoder.summary()
assert type(encoder.layers[1]).__name__ == "Rescaling"  # raw pixels 0..255 in: the encoder rescales them
if cfg.architecture == "conv":  # 28 -> 14 -> 7
    assert {layer.output.shape[1] for layer in encoder.layers if len(layer.output.shape) == 4} >= {14, 7}
result.metrics["test"]

# %% [markdown]
# `mse` is the per-pixel squared error on the test split; `anomaly_auc` is the ROC AUC of the
# per-image reconstruction error as a detector of the left-out digit (0.5 = chance, 1 = perfect).

# %%
plt.plot(result.history["loss"], label="train")
plt.plot(result.history["val_loss"], label="validation")
plt.xlabel("epoch")
plt.ylabel(cfg.loss)
plt.legend()
plt.show()

# %% [markdown]
# ## Reconstructions
# Top: inputs. Bottom: what the decoder redraws from 32 (or `code_dim`) numbers. Details such
# as stroke thickness survive; noise and odd flourishes do not.

# %%
parts = reconstruct(model, data.test)
fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
for i in range(8):
    axes[0, i].imshow(parts["inputs"][i, ..., 0], cmap="gray")
    axes[1, i].imshow(parts["reconstruction"][i, ..., 0], cmap="gray")
    axes[0, i].set_title(str(parts["label"][i]))
for ax in axes.ravel():
    ax.axis("off")
plt.show()
assert 0 <= parts["reconstruction"].min() and parts["reconstruction"].max() <= 1  # the sigmoid's range

# %% [markdown]
# ## The code space
# Codes of the test digits, reduced to two dimensions with PCA. No label was used in training.

# %%
from sklearn.decomposition import PCA  # noqa: E402

codes = encoder.predict(parts["inputs"], verbose=0)
points = PCA(2).fit_transform(codes) if codes.shape[1] > 2 else codes
plt.figure(figsize=(6, 5))
plt.scatter(points[:, 0], points[:, 1], c=parts["label"], cmap="tab10", s=6)
plt.colorbar(label="digit")
plt.title(f"{codes.shape[1]}-d codes of the test digits (PCA)")
plt.show()

# %% [markdown]
# ## Anomaly detection
# The reconstruction error of each test image is its anomaly score. The left-out digit, never
# seen in training, should score higher.

# %%
errors = np.mean((parts["reconstruction"] - parts["clean"]) ** 2, axis=(1, 2, 3))
is_anomaly = parts["label"] == cfg.anomaly_class
plt.hist(errors[~is_anomaly], bins=40, alpha=0.6, density=True, label="trained digits")
plt.hist(errors[is_anomaly], bins=40, alpha=0.6, density=True, label=f"left-out digit {cfg.anomaly_class}")
plt.xlabel("reconstruction MSE")
plt.legend()
plt.show()
print("ROC AUC:", round(result.metrics["test"]["anomaly_auc"], 3),
      f"| mean error: left-out {errors[is_anomaly].mean():.4f}, trained digits {errors[~is_anomaly].mean():.4f}")
assert errors[is_anomaly].mean() > errors[~is_anomaly].mean() and result.metrics["test"]["anomaly_auc"] > 0.5

# %% [markdown]
# ## Denoising
# With `noise > 0` the inputs get Gaussian noise (in the data pipeline, a fresh draw every
# epoch), while the targets stay clean: the network learns to remove noise.
# `mse_noisy_input` is the error of just returning the noisy input, for comparison.

# %%
denoising_cfg = dataclasses.replace(cfg, noise=0.3, anomaly_class=None)
denoising = training.train(task, denoising_cfg, runs_root="runs", quiet=True)
print({k: round(v, 4) for k, v in denoising.metrics["test"].items() if "mse" in k})
assert denoising.metrics["test"]["mse"] < denoising.metrics["test"]["mse_noisy_input"]  # it removes noise
noisy = reconstruct(denoising.model, denoising.data.test)
fig, axes = plt.subplots(3, 8, figsize=(10, 4))
for i in range(8):
    for row, image in enumerate((noisy["inputs"][i] / 255, noisy["reconstruction"][i], noisy["clean"][i])):
        axes[row, i].imshow(image[..., 0], cmap="gray")
        axes[row, i].axis("off")
axes[0, 0].set_title("noisy input", loc="left")
axes[1, 0].set_title("denoised", loc="left")
axes[2, 0].set_title("clean", loc="left")
plt.show()

# %% [markdown]
# ## The variational autoencoder
# A VAE's encoder outputs a mean and a log-variance per code dimension; the code is *sampled*,
# `z = mean + exp(log_var / 2) * eps` with `eps ~ N(0, I)` (the reparameterization trick: the
# randomness is an input, so gradients flow to mean and log_var). A KL term, added by the
# `VAESampling` layer with `add_loss`, pulls every code distribution towards N(0, I); so codes
# drawn from N(0, I) decode into plausible digits. With a 2-d code we can draw the whole space.

# %%
vae_cfg = dataclasses.replace(cfg, variant="vae", code_dim=2, anomaly_class=None)
vae = training.train(task, vae_cfg, runs_root="runs", quiet=True)
vae_decoder = decoder_of(vae.model)
grid = np.linspace(-2, 2, 10)
codes = np.array([[x, y] for y in grid[::-1] for x in grid], dtype="float32")
digits = vae_decoder.predict(codes, verbose=0)
fig, axes = plt.subplots(10, 10, figsize=(7, 7))
for ax, image in zip(axes.ravel(), digits):
    ax.imshow(image[..., 0], cmap="gray")
    ax.axis("off")
fig.suptitle("decoding a 10x10 grid of the 2-d VAE code space")
plt.show()

# %% [markdown]
# ## From the command line
# ```
# dlapps train autoencoder --profile full --data mnist_sample.npz --save
# dlapps train autoencoder --set variant=vae --set code_dim=2
# dlapps predict autoencoder digit.png     # writes digit.reconstruction.png next to it
# ```
# Exercises: compare `architecture=dense` with `conv` at the same code size; find the smallest
# `code_dim` that keeps the MSE under 0.01; leave out each digit in turn and compare the AUCs.
