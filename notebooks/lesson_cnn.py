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
# # Lesson: inside the CNN, from a 3x3 kernel to ResNet
#
# A convolutional network is built from one operation: slide a small kernel over the image and
# take a weighted sum at every position. This lesson writes that operation in NumPy, checks it
# against Keras' `Conv2D`, and follows it up the history of CNNs: edge detectors, weight sharing,
# the feature maps of a trained network, pooling and shift invariance, LeNet-5 (LeCun et al.
# 1998), the skip connection of ResNet (He et al. 2016), what a trained network looks at
# (Grad-CAM, Selvaraju et al. 2017) and how easily it is fooled (FGSM, Goodfellow et al. 2015).
#
# Every sentence that states a result is checked by an `assert` on this run's numbers.

# %%
import os
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

import dlapps

QUICK = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo") == "smoke"
REPO = Path(dlapps.__file__).resolve().parents[1]
keras.utils.set_random_seed(0)


def upscale(images8, size):
    """scikit-learn's 8x8 digits (0-16) -> uint8 (n, size, size, 1), smoothly resized."""
    return np.stack([np.asarray(Image.fromarray((im * 15.9).astype(np.uint8)).resize((size, size), Image.BILINEAR))
                     for im in images8])[..., None]


digits = load_digits()
order = np.random.default_rng(0).permutation(len(digits.target))
train_idx, test_idx = order[:1300], order[1300:]
y_train, y_test = digits.target[train_idx], digits.target[test_idx]

# %% [markdown]
# ## 1. Convolution in NumPy, checked against `Conv2D`
# A `Conv2D` layer computes, at each output position, the sum of the kernel times the image patch
# under it (strictly a cross-correlation: the kernel is not flipped). `stride` is the step between
# positions; `padding="valid"` uses only positions where the kernel fits, `"same"` pads with zeros
# so that the output has `ceil(n / stride)` positions. The output size of a valid convolution is
# `floor((n + 2p - k) / s) + 1` for an n-pixel side, padding p, kernel k and stride s.

# %%
def conv2d(image, kernel, stride=1, padding="valid"):
    """One channel in, one out: image (H, W), kernel (k, k) -> feature map."""
    k = kernel.shape[0]
    if padding == "same":  # TensorFlow's rule: pad so out = ceil(n / s), the extra pixel at the end
        pads = []
        for n in image.shape:
            out = -(-n // stride)
            total = max((out - 1) * stride + k - n, 0)
            pads.append((total // 2, total - total // 2))
        image = np.pad(image, pads)
    h = (image.shape[0] - k) // stride + 1
    w = (image.shape[1] - k) // stride + 1
    out = np.zeros((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            out[i, j] = np.sum(image[i * stride: i * stride + k, j * stride: j * stride + k] * kernel)
    return out


rng = np.random.default_rng(0)
image = rng.normal(size=(9, 9)).astype(np.float32)
rows = []
for k in (3, 5):
    kernel = rng.normal(size=(k, k)).astype(np.float32)
    for stride in (1, 2):
        for padding in ("valid", "same"):
            layer = keras.layers.Conv2D(1, k, strides=stride, padding=padding, use_bias=False)
            keras_out = layer(image[None, :, :, None]).numpy()  # builds the layer with random weights
            layer.set_weights([kernel[:, :, None, None]])
            keras_out = layer(image[None, :, :, None]).numpy()[0, :, :, 0]
            ours = conv2d(image, kernel, stride, padding)
            p = {"valid": 0, "same": (k - 1) / 2}[padding]
            formula = int(np.floor((9 + 2 * p - k) / stride) + 1) if padding == "valid" else int(np.ceil(9 / stride))
            rows.append((k, stride, padding, keras_out.shape[0], formula, float(np.abs(ours - keras_out).max())))
print(f"{'kernel':>6} {'stride':>6} {'padding':>8} {'Conv2D out':>10} {'formula':>8} {'max |NumPy - Keras|':>20}")
for row in rows:
    print(f"{row[0]:>6} {row[1]:>6} {row[2]:>8} {row[3]:>10} {row[4]:>8} {row[5]:>20.2e}")

# %% [markdown]
# For every kernel size, stride and padding the NumPy loop gives Keras' numbers (to float32
# round-off) and the output size the formula predicts.

# %%
assert all(r[3] == r[4] and r[5] < 1e-4 for r in rows)

# %% [markdown]
# ## 2. Kernels that detect edges
# Before networks learned their kernels, vision used hand-made ones. The Sobel kernels respond to
# a change of brightness from left to right (vertical edges) or from top to bottom (horizontal
# edges). A vertical bar lights up the first and barely the second.

# %%
sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
sobel_y = sobel_x.T
digit = upscale(digits.images[test_idx[:1]], 28)[0, :, :, 0].astype(np.float32) / 255
bar = np.zeros((28, 28), np.float32)
bar[4:24, 12:16] = 1.0
fig, axes = plt.subplots(2, 3, figsize=(8, 5.5))
for row, picture in zip(axes, (digit, bar)):
    row[0].imshow(picture, cmap="gray")
    row[1].imshow(np.abs(conv2d(picture, sobel_x, padding="same")), cmap="magma")
    row[2].imshow(np.abs(conv2d(picture, sobel_y, padding="same")), cmap="magma")
for ax, title in zip(axes[0], ("image", "|Sobel x|: vertical edges", "|Sobel y|: horizontal edges")):
    ax.set_title(title, fontsize=9)
for ax in axes.ravel():
    ax.axis("off")
plt.show()
vertical = np.abs(conv2d(bar, sobel_x, padding="same")).sum()
horizontal = np.abs(conv2d(bar, sobel_y, padding="same")).sum()
print(f"vertical bar: Sobel-x response {vertical:.0f}, Sobel-y response {horizontal:.0f}")
assert vertical > 4 * horizontal

# %% [markdown]
# ## 3. Weight sharing: a conv layer against a dense layer on the same image
# A dense layer from a 28x28 image to 784 units has a weight for every (pixel, unit) pair. A conv
# layer with 32 filters of 3x3 reuses the same 9 weights per filter at every position, so its
# size does not depend on the image's at all.

# %%
dense = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(784)])
conv = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, padding="same")])
print(f"dense 784 -> 784: {dense.count_params():,} weights;  conv 32 filters 3x3: {conv.count_params():,} weights")
assert dense.count_params() == 784 * 784 + 784 and conv.count_params() == 32 * 9 + 32

# %% [markdown]
# ## 4. Inside the trained mnist model
# `saved_models/mnist/model.keras` is the project's trained digit classifier (99.3% validation
# accuracy). Its first layer has 32 learned 3x3 kernels: many look like the edge and stroke
# detectors above. The feature maps (each filter's output over the image) become smaller and more
# numerous with depth: 28x28x32 after the first block, 14x14x64 after the second.

# %%
from dlapps.runs import load_model

mnist_model, mnist_info = load_model(REPO / "saved_models" / "mnist")
kernels = mnist_model.get_layer("block0_conv0").kernel.numpy()  # (3, 3, 1, 32)
fig, axes = plt.subplots(4, 8, figsize=(8, 4))
for i, ax in enumerate(axes.ravel()):
    ax.imshow(kernels[:, :, 0, i], cmap="bwr", vmin=-np.abs(kernels).max(), vmax=np.abs(kernels).max())
    ax.axis("off")
fig.suptitle("the 32 first-layer kernels of saved_models/mnist (red +, blue -)")
plt.show()

probe = upscale(digits.images[test_idx[:1]], 20)
probe = np.pad(probe, ((0, 0), (4, 4), (4, 4), (0, 0)))  # a 20x20 digit centred in 28x28, as MNIST
maps_model = keras.Model(mnist_model.inputs, [mnist_model.get_layer("block0_relu0").output,
                                              mnist_model.get_layer("block1_relu1").output])
early, late = (m.numpy()[0] for m in maps_model(probe))
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for i in range(8):
    axes[0, i].imshow(early[:, :, i], cmap="viridis")
    axes[1, i].imshow(late[:, :, i], cmap="viridis")
for ax in axes.ravel():
    ax.axis("off")
fig.suptitle(f"feature maps of a {y_test[0]}: block 0 (top, 28x28) and block 1 (bottom, 14x14)")
plt.show()
predicted = int(np.argmax(mnist_model(probe)))
print("maps", early.shape, late.shape, "prediction", predicted, "true", y_test[0])
assert early.shape == (28, 28, 32) and late.shape == (14, 14, 64) and predicted == y_test[0]

# %% [markdown]
# ## 5. Pooling and shift invariance
# Two small CNNs on 16x16 digits, identical except that one has a 2x2 max-pooling after each of
# its two conv layers. Then every test digit is shifted by one or two pixels and we count how often
# the prediction stays the same. Max-pooling keeps the strongest response in each 2x2 window, so a
# feature that moves by a pixel often lands in the same window: the pooled network's predictions
# move less.

# %%
x16_train = upscale(digits.images[train_idx], 16).astype(np.float32) / 255
x16_test = upscale(digits.images[test_idx], 16).astype(np.float32) / 255


def small_cnn(pooling):
    layers = [keras.Input((16, 16, 1))]
    for filters in (16, 32):
        layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
        if pooling:
            layers.append(keras.layers.MaxPooling2D(2))
    layers += [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x16_train, y_train, epochs=4 if QUICK else 10, batch_size=32, verbose=0)
    return model


def shifted(images, dy, dx):
    out = np.roll(images, (dy, dx), axis=(1, 2))
    if dy > 0: out[:, :dy] = 0
    if dy < 0: out[:, dy:] = 0
    if dx > 0: out[:, :, :dx] = 0
    if dx < 0: out[:, :, dx:] = 0
    return out


SHIFTS = [(dy, dx) for dy in (-2, -1, 0, 1, 2) for dx in (-2, -1, 0, 1, 2) if (dy, dx) != (0, 0)]
stability = {}
for pooling in (False, True):
    model = small_cnn(pooling)
    base = model.predict(x16_test, verbose=0).argmax(axis=1)
    same = [np.mean(model.predict(shifted(x16_test, dy, dx), verbose=0).argmax(axis=1) == base) for dy, dx in SHIFTS]
    stability["with pooling" if pooling else "no pooling"] = (np.mean(same), np.mean(base == y_test),
                                                              model.count_params())
for name, (share, accuracy, params) in stability.items():
    print(f"{name:<13} accuracy {accuracy:.3f}, prediction unchanged under a 1-2 pixel shift: {share:.1%} "
          f"({params:,} weights)")
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(stability), [v[0] for v in stability.values()], color=["grey", "tab:blue"])
ax.set(ylim=(0, 1), ylabel="share of predictions unchanged", title="shifting test digits by 1-2 pixels")
plt.show()
assert stability["with pooling"][0] > stability["no pooling"][0] + 0.03

# %% [markdown]
# ## 6. LeNet-5
# LeCun et al. (1998): two convolution + subsampling (average pooling) stages, then three dense
# layers, tanh throughout, for 32x32 digits: 61,706 weights (with full connections between the
# 6 and 16 feature maps, as usually rebuilt today). Trained here on the scikit-learn digits
# scaled to 32x32, it classifies the held-out digits with more than 90% accuracy.

# %%
lenet = keras.Sequential([
    keras.Input((32, 32, 1)),
    keras.layers.Conv2D(6, 5, activation="tanh", name="C1"),
    keras.layers.AveragePooling2D(2, name="S2"),
    keras.layers.Conv2D(16, 5, activation="tanh", name="C3"),
    keras.layers.AveragePooling2D(2, name="S4"),
    keras.layers.Flatten(),
    keras.layers.Dense(120, activation="tanh", name="C5"),
    keras.layers.Dense(84, activation="tanh", name="F6"),
    keras.layers.Dense(10, activation="softmax", name="output"),
], name="lenet5")
lenet.summary()
x32_train = upscale(digits.images[train_idx], 32).astype(np.float32) / 255
x32_test = upscale(digits.images[test_idx], 32).astype(np.float32) / 255
lenet.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
lenet.fit(x32_train, y_train, epochs=6 if QUICK else 15, batch_size=32, verbose=0)
lenet_accuracy = lenet.evaluate(x32_test, y_test, verbose=0)[1]
print(f"LeNet-5: {lenet.count_params():,} weights, test accuracy {lenet_accuracy:.3f}")
assert lenet.count_params() == 61706 and lenet_accuracy > 0.9

# %% [markdown]
# ## 7. Why ResNet adds the input back
# Stack 20 conv layers and the plain network trains worse than a shallower one, on the training set
# itself (He et al. 2016): not overfitting, but optimisation. A residual block computes
# `x + F(x)`: the identity path carries the signal and the gradient through every block unchanged,
# so F only has to learn a correction. Below, two 20-layer CNNs (a stem conv, 9 blocks of 2 convs,
# global average pooling, a dense output; no batch norm, He initialisation, Adam), one plain and
# one with a skip connection around each block. The last conv of each residual branch starts at
# zero, so each block starts as the identity (Goyal et al. 2017; Zhang et al. 2019, "Fixup"): the
# network begins as a shallow one and grows into its depth. The plain network cannot do that, as
# zero weights there would cut the signal.

# %%
def deep_cnn(residual):
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    for block in range(9):
        y = keras.layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer="he_normal")(x)
        y = keras.layers.Conv2D(16, 3, padding="same", kernel_initializer="zeros" if residual else "he_normal")(y)
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]) if residual else y)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def first_layer_gradient_norm(model):
    with tf.GradientTape() as tape:  # the mean inside the tape, or the tape has not seen it
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y_train[:128], model(x16_train[:128])))
    grads = tape.gradient(loss, model.trainable_weights)
    return float(tf.norm(grads[0]))  # the stem's kernel, the model's first weight


deep = {}
for residual in (False, True):
    keras.utils.set_random_seed(0)
    model = deep_cnn(residual)
    norm = first_layer_gradient_norm(model)
    history = model.fit(x16_train, y_train, epochs=6 if QUICK else 15, batch_size=32, verbose=0).history
    deep["residual" if residual else "plain"] = {"gradient": norm, "loss": history["loss"]}
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, values in deep.items():
    ax.plot(range(1, len(values["loss"]) + 1), values["loss"], marker="o", label=name)
ax.set(xlabel="epoch", ylabel="training loss", title="20-layer CNNs, plain vs residual")
ax.legend()
plt.show()
for name, values in deep.items():
    print(f"{name:<9} gradient norm at the first layer (initial weights): {values['gradient']:.2e}; "
          f"training loss after the last epoch {values['loss'][-1]:.3f}")

# %% [markdown]
# At initialization the gradient that reaches the first layer is several times (more than 3x)
# larger with the skip connections, which pass it straight through the blocks, and after the last
# epoch the residual network's training loss is far below (by more than 0.5) the plain one's.

# %%
assert deep["residual"]["gradient"] > 3 * deep["plain"]["gradient"]
assert deep["residual"]["loss"][-1] < deep["plain"]["loss"][-1] - 0.5

# %% [markdown]
# ## 8. What the trained network looks at: `dlapps explain`
# Grad-CAM weights the last conv block's feature maps by how much each raises the predicted
# class's score; saliency is the gradient of that score with respect to each pixel. The command
# writes both as PNG overlays next to the image:
#
# ```
# dlapps explain mnist digit.png            # digit.gradcam.png, digit.saliency.png
# ```

# %%
from scipy.ndimage import binary_dilation

from dlapps.cli import main as dlapps_cli
from dlapps.explain import grad_cam, saliency

Image.fromarray(probe[0, :, :, 0]).save("digit.png")
assert dlapps_cli(["explain", "mnist", "digit.png", "--model", str(REPO / "saved_models" / "mnist"), "--overwrite"]) == 0
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.imshow(plt.imread("digit.gradcam.png"))
ax.axis("off")
plt.show()

# %% [markdown]
# The same two methods on six test digits, through the Python API (`dlapps.explain`). For each we
# measure how much of the map's mass lies near the ink (within 2 pixels of a stroke) and inside
# the 20x20 box that holds the digit.

# %%
six = np.pad(upscale(digits.images[test_idx[:6]], 20), ((0, 0), (4, 4), (4, 4), (0, 0)))
heat, classes, _ = grad_cam(mnist_model, six)
sal, _, _ = saliency(mnist_model, six)
box = np.zeros((28, 28), bool)
box[4:24, 4:24] = True
fig, axes = plt.subplots(3, 6, figsize=(10, 5.2))
rows = []
for i in range(6):
    near = binary_dilation(six[i, :, :, 0] > 64, iterations=2)
    rows.append((near.mean(), sal[i][near].sum() / sal[i].sum(), heat[i][box].sum() / heat[i].sum()))
    for row, overlay in enumerate((None, heat[i], sal[i])):
        axes[row, i].imshow(six[i, :, :, 0], cmap="gray")
        if overlay is not None:
            axes[row, i].imshow(overlay, cmap="jet", alpha=0.5)
        axes[row, i].axis("off")
    axes[0, i].set_title(f"true {y_test[i]}, said {classes[i]}", fontsize=8)
axes[1, 0].set_title("Grad-CAM", loc="left", fontsize=8)
axes[2, 0].set_title("saliency", loc="left", fontsize=8)
plt.show()
for i, (area, near_share, box_share) in enumerate(rows):
    print(f"digit {y_test[i]}: ink neighbourhood {area:.0%} of the image, {near_share:.0%} of the saliency; "
          f"Grad-CAM inside the digit's box {box_share:.0%} (the box is 51% of the image)")

# %% [markdown]
# Saliency sits on and around the strokes: for every one of the six digits the ink's neighbourhood
# holds a larger share of the saliency than of the image. Grad-CAM is coarser (the last block's
# maps are 14x14) and, for some digits, puts most of its mass *outside* the digit's box: empty
# parts of the frame are evidence too, since a stroke that is absent rules classes out.

# %%
assert all(near_share > area for area, near_share, _ in rows)
assert any(box_share < 0.5 for _, _, box_share in rows)

# %% [markdown]
# ## 9. Fooling it: the fast gradient sign method
# Goodfellow et al. (2015): move every pixel by ±ε in the direction that raises the loss,
# `x' = clip(x + ε·sign(∇ₓ loss), 0, 1)`. The change is small per pixel but aligned with the
# gradient in all 1,024 of them, so LeNet-5's accuracy falls fast as ε grows.

# %%
def fgsm(model, images, labels, epsilon):
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, model(images)))
    return tf.clip_by_value(images + epsilon * tf.sign(tape.gradient(loss, images)), 0, 1).numpy()


EPSILONS = [0.0, 0.02, 0.05, 0.1, 0.2]
accuracy = [float(np.mean(lenet.predict(fgsm(lenet, x32_test, y_test, eps), verbose=0).argmax(axis=1) == y_test))
            for eps in EPSILONS]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [2, 1]})
axes[0].plot(EPSILONS, accuracy, marker="o")
axes[0].set(xlabel="ε (pixel scale 0-1)", ylabel="test accuracy", title="LeNet-5 under FGSM", ylim=(0, 1))
axes[1].imshow(fgsm(lenet, x32_test[:1], y_test[:1], 0.1)[0, :, :, 0], cmap="gray")
axes[1].set_title(f"ε = 0.1: predicted {int(lenet.predict(fgsm(lenet, x32_test[:1], y_test[:1], 0.1), verbose=0).argmax())}, "
                  f"true {y_test[0]}", fontsize=9)
axes[1].axis("off")
plt.show()
print({eps: round(acc, 3) for eps, acc in zip(EPSILONS, accuracy)})

# %% [markdown]
# Accuracy falls with every step of ε, and at ε = 0.1 (a tenth of the pixel range) it is less than
# half the clean accuracy.

# %%
assert all(a > b for a, b in zip(accuracy, accuracy[1:])) and accuracy[3] < accuracy[0] / 2
