# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Handwritten digits with a convolutional network
#
# This tutorial trains the `mnist` task of **dlapps**: a small convolutional neural network (CNN)
# that reads a 28x28 gray image and says which digit it shows. Along the way it shows the ideas
# that made CNNs work on images:
#
# - **local receptive fields and weight sharing**: a 3x3 convolution looks at a small patch and
#   applies the same filter everywhere, so a stroke is detected wherever it is;
# - **pooling**: 2x2 max-pooling halves the resolution, so deeper filters see larger patterns
#   (LeNet-5, 1998, already stacked conv and pooling layers this way);
# - **batch normalisation** and **dropout**, which make the deeper version train fast and
#   generalise;
# - **data augmentation**: random small rotations, shifts and zooms of every training batch, made
#   in the tf.data input pipeline, teach the network that a slightly moved digit is the same digit;
# - **preprocessing inside the model**: the saved model takes raw uint8 pixels (0-255); the
#   `Rescaling(1/255)` layer is part of it, so nobody has to remember to divide by 255.

# %%
import os

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import dlapps
from dlapps import config, training

PROFILE = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo")
task = dlapps.get_task("mnist")

# %% [markdown]
# ## The data
#
# Offline, the task uses scikit-learn's 1,797 handwritten digits. They are 8x8 images with 17
# gray levels; `load_images` upscales each to 20x20 and centres it in a 28x28 frame, which is how
# MNIST itself was made (digits size-normalised to 20x20, centred by centre of mass). With a
# network you would use `--set source=tfds` (the 70,000 MNIST digits) or `--data mnist.npz`.

# %%
from dlapps.tasks.mnist import load_images

cfg = config.resolve(task, PROFILE)
splits = load_images(cfg)
print(splits.description)
print("train", splits.x_train.shape, splits.x_train.dtype, "val", splits.x_val.shape, "test", splits.x_test.shape)
print("images per class in validation:", np.bincount(splits.y_val))

# %%
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for ax, image, label in zip(axes.ravel(), splits.x_train[:16], splits.y_train[:16]):
    ax.imshow(image[..., 0], cmap="gray")
    ax.set_title(str(label))
    ax.axis("off")
plt.show()
assert splits.x_train.dtype == np.uint8 and splits.x_train.shape[1:] == (28, 28, 1)

# %% [markdown]
# ### Augmentation
#
# Each epoch, every training digit is rotated (up to `rotation` of a turn), shifted (up to
# `translation` of the image size) and zoomed (up to `zoom`) at random, with black filling what
# moves in. This happens in the tf.data pipeline (`Data.augment`), on batches of raw uint8 images,
# so the network hardly ever sees the same image twice, and the saved model holds no random
# layers. Below, one digit and five of its draws: the label stays, the pixels change.

# %%
from dlapps.tasks.mnist.data import augmentation

augment = augmentation(cfg)  # what load_data puts in Data.augment
digit, label = splits.x_train[:1], splits.y_train[:1]
draws = [augment(digit, label) for _ in range(5)]
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for ax, (image, title) in zip(axes, [(digit, "original"), *((d[0].numpy(), f"draw {i + 1}") for i, d in enumerate(draws))]):
    ax.imshow(image[0, ..., 0], cmap="gray")
    ax.set_title(title)
    ax.axis("off")
plt.show()
changed = [float(np.mean(d[0].numpy() != digit)) for d in draws]
print(f"pixels changed per draw: {', '.join(f'{c:.0%}' for c in changed)}")
assert all(d[0].dtype == np.uint8 and d[0].shape == digit.shape and np.asarray(d[1])[0] == label[0] for d in draws)
assert min(changed) > 0.02

# %% [markdown]
# ## The model
#
# `build_model` writes the network with the Functional API. Count the parameters: the
# convolutions are cheap (a 3x3 filter has 9 weights per input channel); most weights sit in the
# dense "features" layer. That layer's `dense_units` numbers (128 in the full profile) are the
# network's own description of the digit; the GAN task reuses it to judge generated digits. The
# model's input is raw uint8 pixels: `Rescaling(1/255)` is its first layer.

# %%
info = {"num_classes": len(splits.class_names), "image_shape": [28, 28, 1], "steps_per_epoch": 10}
model = task.build_model(cfg, info)
model.summary()
conv_weights = sum(layer.count_params() for layer in model.layers if "conv" in layer.name)
features_weights = model.get_layer("features").count_params()
print(f"conv layers: {conv_weights:,} weights; dense features layer: {features_weights:,}")
assert features_weights > conv_weights and features_weights > model.count_params() / 2
assert model.inputs[0].dtype == "uint8" and model.layers[1].name == "rescale"

# %% [markdown]
# ## Training
#
# `training.train` is what `dlapps train mnist --profile demo` runs: it batches with tf.data,
# calls `fit` with early stopping, checkpoints and TensorBoard, then computes the task's metrics:
# accuracy, macro F1 and per-class precision and recall.

# %%
result = training.train(task, cfg, runs_root="runs_notebook", quiet=True)
test = result.metrics["test"]
print(f"test accuracy {test['accuracy']:.3f}, macro F1 {test['macro_f1']:.3f} on {test['n']} digits")
print("recall per digit:", {name: round(test[f"recall_{name}"], 2) for name in splits.class_names})

# %% [markdown]
# The run directory's `plots/` holds the learning curves, the confusion matrix (rows: the true
# digit, columns: what the network said; everything off the diagonal is a mistake) and a grid of
# the most confident mistakes, titled `true->predicted p`. Here they are:

# %%
plots_dir = result.run_dir / "plots"
for name in ("learning_curves.png", "confusion_matrix.png", "worst_mistakes.png"):
    if (plots_dir / name).exists():  # worst_mistakes.png only when there is a mistake
        fig, ax = plt.subplots(figsize=(10, 6))
        ax.imshow(plt.imread(plots_dir / name))
        ax.set_title(name)
        ax.axis("off")
        plt.show()
mistakes = int(round((1 - test["accuracy"]) * test["n"]))
print(f"{mistakes} mistakes on {test['n']} test digits")
assert (plots_dir / "confusion_matrix.png").exists() and (plots_dir / "learning_curves.png").exists()
assert (plots_dir / "worst_mistakes.png").exists() == (mistakes > 0)

# %% [markdown]
# ## Predicting on your own image
#
# `dlapps predict mnist digit.png` takes any image file. A digit photographed or drawn on paper is
# dark on light, larger, and off-centre; `mnist_style` inverts it, crops the ink, scales it into a
# 20x20 box and centres it by its centre of mass, the way MNIST was prepared. Without that step a
# network trained on MNIST sees something it has never seen.

# %%
from PIL import Image

digit = splits.x_test[0]
paper = Image.new("L", (120, 90), 230)
paper.paste(Image.fromarray(255 - digit[..., 0]).resize((50, 50)), (40, 20))
paper.save("my_digit.png")
from dlapps.data.digits import read_digit

fig, axes = plt.subplots(1, 2, figsize=(6, 2.5))
axes[0].imshow(np.asarray(paper), cmap="gray", vmin=0, vmax=255)
axes[0].set_title("my_digit.png")
axes[1].imshow(read_digit("my_digit.png")[..., 0], cmap="gray")
axes[1].set_title("what the model sees")
for ax in axes:
    ax.axis("off")
plt.show()
print(task.predict(result.model, ["my_digit.png"], result.data.info, cfg, task.predict_options))
print("true label:", splits.y_test[0])
assert read_digit("my_digit.png").mean() < 128  # inverted: light ink on a dark background, like MNIST

# %% [markdown]
# ## Going further
#
# - Real MNIST: `dlapps train mnist --profile full --data ../shared/data/mnist-sample/mnist_sample.npz`
#   reaches about 99% validation accuracy (the committed `saved_models/mnist/`, checked below).
# - Why did it say that? `dlapps explain mnist my_digit.png` writes Grad-CAM and saliency overlays
#   (`lesson_cnn` § 8).
# - Fashion-MNIST: `--set dataset=fashion_mnist --set source=tfds`.
# - Tune depth and width: `dlapps tune mnist` searches the `[search]` table of `tasks/mnist.toml`.

# %%
committed = json.loads((Path(dlapps.__file__).resolve().parents[1] / "saved_models" / "mnist" / "metrics.json").read_text())
print("committed model, validation accuracy:", committed["val"]["accuracy"])
assert 0.985 < committed["val"]["accuracy"] < 0.995
