"""The MNIST CNN: raw uint8 images in, class probabilities out; metrics, plots, predictions.

Architecture (LeNet's conv/pool lineage with modern parts)::

    uint8 (28, 28, 1) -> Rescaling(1/255)
    -> conv_blocks x ([Conv3x3 -> (BatchNorm) -> ReLU] x convs_per_block -> MaxPool 2x2 -> Dropout)
    -> Flatten -> Dense(dense_units, ReLU) named "features" -> Dropout -> Dense(classes, softmax)

Rescaling lives inside the model: the saved model takes raw uint8 images. The augmentation
(random rotation, shift, zoom, stroke width and elastic distortion) runs in the training pipeline
(`dlapps.tasks.mnist.data`), beside the training step, so the model holds no random layers and
can be XLA-compiled (`dlapps train --jit`, for a GPU or TPU: on a 2-core CPU, XLA made this
model's training step 4-5 times slower than TensorFlow's own kernels).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from dlapps import metrics
from dlapps.data.digits import IMAGE_SIZE, model_labels, read_digits
from dlapps.data.images import is_blank
from dlapps.errors import UserError
from dlapps.optim import make_optimizer
from dlapps.tasks.mnist.config import Config

FEATURES_LAYER = "features"
"""Name of the penultimate layer: a stable embedding for other tasks (e.g. classifier FID)."""


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """A compiled CNN classifier: uint8 images (N, H, W, C) -> class probabilities (N, num_classes) float32.

    `info` gives image_shape (default 28x28x1) and num_classes; `hp` (KerasTuner) may choose depth,
    width, dropout, batch norm and the optimizer. Raises UserError for conv_blocks outside 1..4 or
    sizes below 1.
    """
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
    """A model from raw uint8 images (N, 28, 28, 1) to the penultimate "features" embedding (N, dense_units)."""
    return keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output, name="mnist_features")


# ----------------------------------------------------------------------------- metrics
def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Accuracy, loss, macro F1 and per-class precision/recall on the test split.

    The labels of an image folder are matched to the model's class names by folder name
    (`dlapps.data.digits.model_labels`); an unknown folder name is a UserError naming them.
    """
    _, y_true, probabilities = metrics.predictions(model, data.test)
    names = data.info["class_names"]
    return metrics.classification_scores(model_labels(y_true, cfg, names), probabilities, names)


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Confusion matrix and a grid of the most confident mistakes on the test split."""
    return metrics.classification_plots(model, data.test, data.info["class_names"], plots_dir, worst=32)


# ----------------------------------------------------------------------------- predict
PREDICT_OPTIONS = {"invert": "auto"}
"""predict only: invert dark-on-light images to MNIST's light-on-dark: auto (by the border), yes, no."""


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """Top-3 classes with probabilities for each image file (any size, RGB/RGBA/gray).

    Each file is read as train and evaluate read a folder's files (`dlapps.data.digits.read_digit`:
    EXIF orientation, transparency, MNIST style with `options["invert"]`; only resized, not
    recentred, for Fashion-MNIST). An image that comes out blank is still classified, with a
    warning on stderr and on its line. Raises UserError without inputs, or for a missing or
    unreadable file.
    """
    if not inputs:
        raise UserError("give one or more image files to classify, e.g. dlapps predict mnist digit.png")
    names = info.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    center = info.get("dataset", "mnist") == "mnist"
    batch, _ = read_digits(inputs, options["invert"], center=center)
    probabilities = np.asarray(model.predict(batch, verbose=0))
    lines = []
    for path, image, row in zip(inputs, batch, probabilities):
        top = np.argsort(-row)[:3]
        lines.append(f"{path}: " + ", ".join(f"{names[i]} ({row[i]:.3f})" for i in top)
                     + ("  [warning: blank image, a guess]" if is_blank(image) else ""))
    return lines
