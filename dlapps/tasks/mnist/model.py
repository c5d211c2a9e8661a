"""The MNIST CNN: raw uint8 images in, class probabilities out; metrics, plots, predictions.

Architecture (LeNet's conv/pool lineage with modern parts)::

    uint8 (28, 28, 1) -> Rescaling(1/255) -> [RandomRotation, RandomTranslation, RandomZoom]
    -> conv_blocks x ([Conv3x3 -> BatchNorm -> ReLU] x convs_per_block -> MaxPool 2x2 -> Dropout)
    -> Flatten -> Dense(dense_units, ReLU) named "features" -> Dropout -> Dense(classes, softmax)

Rescaling and augmentation live inside the model: the saved model takes raw uint8 images, and
the random layers are active only in training (`fit`), identity in `predict`/`evaluate`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from dlapps.errors import UserError
from dlapps.tasks.mnist.data import IMAGE_SIZE, Config
from dlapps.training import batched, make_optimizer

FEATURES_LAYER = "features"
"""Name of the penultimate layer: a stable embedding for other tasks (e.g. classifier FID)."""


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """A compiled CNN classifier; `hp` (KerasTuner) may choose depth, width, dropout, optimizer."""
    conv_blocks = hp.Int("conv_blocks", 1, 3, default=cfg.conv_blocks) if hp else cfg.conv_blocks
    filters = hp.Int("filters", 16, 64, step=16, default=cfg.filters) if hp else cfg.filters
    dense_units = hp.Int("dense_units", 64, 256, step=64, default=cfg.dense_units) if hp else cfg.dense_units
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=cfg.dropout) if hp else cfg.dropout
    batch_norm = hp.Boolean("batch_norm", default=cfg.batch_norm) if hp else cfg.batch_norm
    if conv_blocks < 1 or conv_blocks > 4:
        raise UserError(f"conv_blocks={conv_blocks}: choose 1 to 4 (each halves the 28x28 image)")
    if cfg.convs_per_block < 1 or filters < 1 or dense_units < 1:
        raise UserError("convs_per_block, filters and dense_units must be at least 1")

    height, width, channels = info.get("image_shape", [IMAGE_SIZE, IMAGE_SIZE, 1])
    inputs = keras.Input(shape=(height, width, channels), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if cfg.augment:
        # MNIST background is black: shifted/rotated-in pixels are filled with 0.
        if cfg.rotation > 0:
            x = keras.layers.RandomRotation(cfg.rotation, fill_mode="constant", name="random_rotation")(x)
        if cfg.translation > 0:
            x = keras.layers.RandomTranslation(cfg.translation, cfg.translation, fill_mode="constant",
                                               name="random_translation")(x)
        if cfg.zoom > 0:
            x = keras.layers.RandomZoom(cfg.zoom, cfg.zoom, fill_mode="constant", name="random_zoom")(x)
    for block in range(conv_blocks):
        width_here = filters * 2 ** block
        for i in range(cfg.convs_per_block):
            x = keras.layers.Conv2D(width_here, 3, padding="same", use_bias=not batch_norm,
                                    kernel_initializer="he_normal", name=f"block{block}_conv{i}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"block{block}_bn{i}")(x)
            x = keras.layers.Activation("relu", name=f"block{block}_relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout / 2, name=f"block{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal",
                           name=FEATURES_LAYER)(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(info["num_classes"], activation="softmax", dtype="float32",
                                 name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="mnist_cnn")
    model.compile(optimizer=make_optimizer(cfg, info, hp),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def feature_extractor(model: keras.Model) -> keras.Model:
    """A model from raw uint8 images to the penultimate "features" embedding of `model`."""
    return keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output, name="mnist_features")


# ----------------------------------------------------------------------------- metrics
def predictions(model: keras.Model, dataset, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8, true labels, predicted probabilities) over an unbatched dataset of any classifier."""
    images, labels, probabilities = [], [], []
    for x, y in batched(dataset, batch_size).as_numpy_iterator():
        images.append(x)
        labels.append(y)
        probabilities.append(np.asarray(model.predict_on_batch(x)))
    if not labels:
        raise UserError("no images to evaluate")
    return np.concatenate(images), np.concatenate(labels), np.concatenate(probabilities)


def scores(y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Accuracy, cross-entropy, macro F1 and per-class precision/recall."""
    from sklearn.metrics import precision_recall_fscore_support

    y_pred = probabilities.argmax(axis=1)
    labels = list(range(len(class_names)))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    picked = probabilities[np.arange(len(y_true)), y_true]
    out = {"accuracy": float(np.mean(y_pred == y_true)),
           "loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))),
           "macro_f1": float(np.mean(f1)), "n": int(len(y_true))}
    for i, name in enumerate(class_names):
        out[f"precision_{name}"] = float(precision[i])
        out[f"recall_{name}"] = float(recall[i])
    return out


def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Accuracy, loss, macro F1 and per-class precision/recall on the test split."""
    _, y_true, probabilities = predictions(model, data.test)
    return scores(y_true, probabilities, data.info["class_names"])


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Confusion matrix and a grid of the most confident mistakes on the test split."""
    from dlapps import plots

    images, y_true, probabilities = predictions(model, data.test)
    return plots.classification_report_plots(images, y_true, probabilities, data.info["class_names"],
                                             plots_dir, worst=32)


# ----------------------------------------------------------------------------- predict
def mnist_style(image: np.ndarray, invert: str = "auto", center: bool = True) -> np.ndarray:
    """Any gray uint8 image (H, W, 1) -> (28, 28, 1) as MNIST draws digits.

    MNIST digits are light on a dark background, fit in a 20x20 box and are centred by their
    centre of mass in 28x28. `invert`: "auto" inverts when the border is lighter than the middle
    (dark ink on paper), "yes"/"no" force it. `center=False` just resizes (e.g. Fashion-MNIST).
    """
    from PIL import Image

    gray = image[..., 0].astype(np.float32)
    if invert not in ("auto", "yes", "no"):
        raise UserError(f"invert={invert!r}: choose auto, yes or no")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if invert == "yes" or (invert == "auto" and border.mean() > 127):
        gray = 255.0 - gray
    if not center:
        resized = Image.fromarray(gray.astype(np.uint8)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(resized, np.uint8)[..., None]
    background = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    gray = np.clip(gray - background, 0, 255)  # paper texture / uneven light -> 0
    ink = gray > 0.25 * gray.max() if gray.max() > 0 else np.zeros_like(gray, bool)
    if not ink.any():
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = gray[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    scale = 20.0 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS), np.float32)
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    total = digit.sum()
    cy, cx = ((np.indices(digit.shape) * digit).reshape(2, -1).sum(axis=1) / total) if total else (0, 0)
    top = int(np.clip(round(IMAGE_SIZE / 2 - cy), 0, IMAGE_SIZE - digit.shape[0]))
    left = int(np.clip(round(IMAGE_SIZE / 2 - cx), 0, IMAGE_SIZE - digit.shape[1]))
    canvas[top: top + digit.shape[0], left: left + digit.shape[1]] = digit
    return np.clip(canvas, 0, 255).astype(np.uint8)[..., None]


def prepare_image(path: str, info: dict, cfg: Config) -> np.ndarray:
    """The image file at `path` ready for the model: (28, 28, 1) uint8 in MNIST style."""
    from dlapps.data.images import read_image

    image = read_image(path, channels=1)
    return mnist_style(image, cfg.invert, center=info.get("dataset", "mnist") == "mnist")


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config) -> list[str]:
    """Top-3 classes with probabilities for each image file (any size, RGB/RGBA/gray)."""
    if not inputs:
        raise UserError("give one or more image files to classify, e.g. dlapps predict mnist digit.png")
    names = info.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    batch = np.stack([prepare_image(path, info, cfg) for path in inputs])
    probabilities = np.asarray(model.predict(batch, verbose=0))
    lines = []
    for path, row in zip(inputs, probabilities):
        top = np.argsort(-row)[:3]
        lines.append(f"{path}: " + ", ".join(f"{names[i]} ({row[i]:.3f})" for i in top))
    return lines
