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
# # A DCGAN that draws digits, and how to tell whether it is any good
#
# A generative adversarial network (Goodfellow et al., 2014) trains two networks against each
# other: a **generator** turns random noise into images, a **discriminator** tells real images
# from generated ones. Each improves by exploiting the other's weaknesses.
#
# What you will see:
# 1. **DCGAN** (Radford et al., 2016): transposed convolutions, batch norm and LeakyReLU.
# 2. **A custom `train_step`**: a `keras.Model` subclass holding both networks, so that plain
#    `fit()` (with callbacks, checkpoints, BackupAndRestore and tf.distribute) trains a GAN.
# 3. **Stabilisers**: one-sided label smoothing, Adam with beta_1 = 0.5, dropout in D.
# 4. **Evaluation you can trust**: a Fréchet distance on features of a digit classifier
#    ("classifier FID") with its floor and ceiling, the share of confidently recognised samples,
#    and the entropy of the predicted labels (mode collapse shows up there).

# %%
import inspect
import os

import matplotlib.pyplot as plt
import numpy as np

import dlapps
from dlapps import config, training
from dlapps.tasks.gan.adversarial import GAN
from dlapps.tasks.gan.model import generate

PROFILE = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo")
task = dlapps.get_task("gan")
cfg = config.resolve(task, PROFILE)
cfg

# %% [markdown]
# ## The two networks
# The generator projects a `latent_dim` noise vector to 7x7 feature maps and upsamples twice
# with stride-2 transposed convolutions to 28x28, ending in `tanh` (pixels in [-1, 1]). The
# discriminator is a small strided CNN ending in one logit.

# %%
data = task.load_data(cfg)
model = task.build_model(cfg, data.info)
model.generator.summary()
model.discriminator.summary()
assert model.generator.output_shape[1:] == (28, 28, 1) and model.discriminator.output_shape[-1] == 1
assert model.generator.layers[-1].activation.__name__ == "tanh"

# %% [markdown]
# ## The training step
# One batch = one discriminator update (real images labelled `1 - label_smoothing`, fakes 0),
# then one generator update with the *non-saturating* loss: the generator is rewarded when the
# discriminator calls its fakes real. Each `GradientTape` differentiates only its own network's
# weights, and each optimizer updates only those. The losses are divided by the *global* batch
# size, so the same code is correct on several replicas.

# %%
print(inspect.getsource(GAN.train_step))
print(inspect.getsource(GAN.discriminator_step))
print(inspect.getsource(GAN.generator_step))

# %% [markdown]
# ## Training
# `training.train` calls `fit()`; the task adds a callback that draws the same 64 latent
# vectors after every epoch (`<run>/samples/epoch_001.png`, `epoch_002.png`, ..., and `training.gif` at the end).

# %%
result = training.train(task, cfg, runs_root="runs", quiet=True)
plt.plot(result.history["d_loss"], label="discriminator")
plt.plot(result.history["g_loss"], label="generator")
plt.xlabel("epoch")
plt.legend()
plt.show()

# %% [markdown]
# The two losses do not go to zero and do not tell you whether the digits are good: each
# network's loss depends on how good the *other* one is. Look at the samples instead.

# %%
samples = generate(result.model.generator, 32, seed=0)
fig, axes = plt.subplots(4, 8, figsize=(8, 4.3))
for ax, image in zip(axes.ravel(), samples):
    ax.imshow(image[..., 0], cmap="gray")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Measuring sample quality
# The FID (Heusel et al., 2017) fits a Gaussian to the features of real and of generated
# images and measures the Fréchet distance between the two Gaussians. The usual FID uses an
# ImageNet Inception network; for digits we use the penultimate layer of the project's MNIST
# classifier (`saved_models/mnist`), so we call it *classifier FID* and only compare it with
# its own reference points:
# - the **floor**: real held-out digits, half against half (what a perfect generator scores);
# - the **ceiling**: an untrained generator.
#
# The same classifier labels every sample: `confident_share` is the share it labels with
# probability > 0.9 (recognisable digits), `label_entropy` the entropy of the label histogram
# (ln 10 = 2.30 when all ten digits are drawn equally often).

# %%
metrics = result.metrics["test"]
if "classifier_fid" in metrics:  # the two reference points: real vs real far below untrained vs real
    assert metrics.get("classifier_fid_real_floor", 0.0) < metrics["classifier_fid_untrained_ceiling"]
    assert 0 <= metrics["label_entropy"] <= np.log(10) + 1e-6
{k: round(v, 3) for k, v in metrics.items() if "fid" in k or "share" in k or "entropy" in k}

# %% [markdown]
# (Without `saved_models/mnist/model.keras` only the losses are reported: train the classifier
# with `dlapps train mnist --profile full --data mnist_sample.npz --save`.)
#
# ## Stabilisers, and asking for a digit
# Three options change how the full profile trains:
# - `augment=["translation", "cutout"]` (DiffAugment, Zhao et al. 2020): the discriminator only
#   ever sees shifted, partly blanked images, real and generated alike. With 5,600 training digits
#   a discriminator otherwise memorises the real set (its accuracy on held-out real digits falls),
#   and the generator learns from a judge that no longer generalises.
# - `ema=0.999`: samples come from a moving average of the generator's weights, which smooths the
#   back-and-forth of adversarial training (`model.sampler`).
# - `conditional=true` (Mirza & Osindero 2014): the generator is told which digit to draw (a label
#   embedding beside z) and the discriminator judges (image, label) pairs through a projection
#   (Miyato & Koyama 2018). The unconditional DCGAN plateaus near 78% confident samples on the
#   shared sample; the committed conditional one reaches 98.8%, with 98.7% of its samples
#   labelled as the digit it was asked for (`label_agreement`; see `saved_models/gan/README.md`).
#
# %%
import json  # noqa: E402
from pathlib import Path  # noqa: E402

committed = json.loads((Path(dlapps.__file__).resolve().parents[1] / "saved_models" / "gan" / "metrics.json").read_text())
print({k: committed["val"][k] for k in ("confident_share", "label_agreement", "classifier_fid")})
assert round(committed["val"]["confident_share"], 3) == 0.988 and round(committed["val"]["label_agreement"], 3) == 0.987

# %% [markdown]
# ## From the command line
# ```
# dlapps train gan --profile full --data mnist_sample.npz --save
# dlapps evaluate gan --data mnist_sample.npz
# dlapps predict gan --set n=64 --set seed=0      # writes gan_samples.png
# dlapps predict gan sevens.png --set digit=7     # a conditional GAN draws only 7s
# ```
# Exercises: turn `label_smoothing` off, or set `beta_1=0.9`, and compare the classifier FID;
# add `instance_noise=0.1`; train with `--strategy mirrored --devices cpu:2`.
