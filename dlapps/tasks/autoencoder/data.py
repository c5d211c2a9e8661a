"""Autoencoder data: the mnist task's images as (inputs, clean target) pairs, optional noise,
optional held-out class for anomaly detection.

Every element is `({"image": pixels, "label": class}, clean)`:
- `image`: float32 pixels 0..255 (28, 28, 1), with Gaussian noise added here, in the tf.data
  pipeline, when `noise > 0` (the denoising autoencoder);
- `label`: the digit, which the model never reads (its only input is `image`; Keras picks it out
  of the dict by name) but which travels with each image for the latent-space plot and the
  anomaly ROC AUC;
- `clean`: the noiseless image in [0, 1], the reconstruction target.
With `anomaly_class = k`, digit k is removed from the training and validation splits and kept in
the test split, where the reconstruction error should single it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlapps.config import TrainConfig
from dlapps.errors import UserError
from dlapps.task import Data


@dataclass(frozen=True)
class Config(TrainConfig):
    """(Denoising / variational) autoencoder for 28x28 images: architecture, code size, loss, noise."""

    source: str = "embedded"
    """Images from the mnist task's sources: embedded (scikit-learn digits), tfds, keras, or file (--data)."""
    dataset: str = "mnist"
    """mnist or fashion_mnist (tfds/keras sources or --data)."""
    architecture: str = "conv"
    """conv (strided convolutions / transposed convolutions) or dense (an MLP on the 784 pixels)."""
    variant: str = "ae"
    """ae (deterministic code) or vae (variational: the encoder outputs a Gaussian, KL term, sampling)."""
    code_dim: int = 32
    """Size of the code (latent vector) the image is squeezed through."""
    filters: int = 32
    """conv: channels of the first encoder convolution (the second has twice as many)."""
    units: int = 256
    """dense: width of the hidden layers of encoder and decoder."""
    loss: str = "bce"
    """Reconstruction loss per pixel: bce (binary cross-entropy, pixels as probabilities) or mse."""
    kl_weight: float = 1.0
    """vae: beta, the weight of the KL term relative to the summed per-pixel reconstruction loss."""
    noise: float = 0.0
    """Denoising: std of Gaussian noise added to the inputs (pixels in [0, 1] units); 0 = plain autoencoder."""
    anomaly_class: int | None = None
    """Leave this class out of training; the test split then reports the ROC AUC of detecting it."""
    cache: bool = False
    """Off by default: caching would freeze the first epoch's noise draw (data are in memory anyway)."""
    invert: str = "auto"
    """predict: invert dark-on-light images to MNIST's light-on-dark: auto (by the border), yes, no."""


def _noisy(images: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A fixed noisy copy (validation/test: the same noise every epoch and every run)."""
    rng = np.random.default_rng(seed)
    noisy = images.astype(np.float32) + rng.normal(0.0, noise * 255.0, images.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 255.0)


def make_dataset(images: np.ndarray, labels: np.ndarray, noise: float = 0.0, seed: int = 0,
                 fresh_noise: bool = False):
    """({"image", "label"}, clean) pairs; noise drawn per pass (`fresh_noise`) or fixed once."""
    import tensorflow as tf

    clean = images.astype(np.float32) / 255.0
    pixels = images.astype(np.float32) if (noise <= 0 or fresh_noise) else _noisy(images, noise, seed)
    dataset = tf.data.Dataset.from_tensor_slices(({"image": pixels, "label": labels.astype(np.int64)}, clean))
    if noise > 0 and fresh_noise:
        # One random seed per image, re-drawn on every pass over the data (every epoch), yet
        # reproducible from `seed`: stateless noise keyed by it.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def add_noise(example, pair):
            inputs, target = example
            draw = tf.random.stateless_normal(tf.shape(inputs["image"]), seed=pair, stddev=noise * 255.0)
            return {"image": tf.clip_by_value(inputs["image"] + draw, 0.0, 255.0), "label": inputs["label"]}, target

        dataset = tf.data.Dataset.zip(dataset, seeds).map(add_noise)
    return dataset


def load_data(cfg: Config) -> Data:
    """Train/val/test splits of the configured images (see the module docstring)."""
    from dlapps.tasks.mnist.data import IMAGE_SIZE, load_images

    if cfg.noise < 0:
        raise UserError(f"noise={cfg.noise}: the noise std must be >= 0 (e.g. 0.3)")
    splits = load_images(cfg)
    x_train, y_train, x_val, y_val = splits.x_train, splits.y_train, splits.x_val, splits.y_val
    if cfg.anomaly_class is not None:
        if cfg.anomaly_class not in set(np.unique(np.concatenate([splits.y_train, splits.y_test]))):
            raise UserError(f"anomaly_class={cfg.anomaly_class}: no image of that class in the data "
                            f"(classes: {', '.join(splits.class_names)})")
        x_train, y_train = x_train[y_train != cfg.anomaly_class], y_train[y_train != cfg.anomaly_class]
        x_val, y_val = x_val[y_val != cfg.anomaly_class], y_val[y_val != cfg.anomaly_class]
    info = {
        "image_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "class_names": splits.class_names,
        "dataset": cfg.dataset,
        "anomaly_class": cfg.anomaly_class,
        "source_description": splits.description + (
            f"; class {splits.class_names[cfg.anomaly_class]} left out of training (anomaly detection)"
            if cfg.anomaly_class is not None else ""),
        "train_size": int(len(x_train)),
        "model_notes": "The saved model takes raw pixels 0..255 (28, 28, 1) and returns the reconstruction "
                       "in [0, 1]; its sub-models `encoder` and `decoder` (model.get_layer) map images to "
                       "codes and codes to images.",
    }
    return Data(make_dataset(x_train, y_train, cfg.noise, cfg.seed, fresh_noise=True),
                make_dataset(x_val, y_val, cfg.noise, cfg.seed + 1) if len(x_val) else None,
                make_dataset(splits.x_test, splits.y_test, cfg.noise, cfg.seed + 2), info)
