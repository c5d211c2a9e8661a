"""Autoencoder data: the shared digit images (`dlapps.data.digits`) as (inputs, clean target)
pairs, optional noise, optional held-out class for anomaly detection.

Every element is `({"image": pixels, "label": class}, clean)`:
- `image`: float32 pixels 0..255 (28, 28, 1), with Gaussian noise added here, in the tf.data
  pipeline, when `noise > 0` (the denoising autoencoder);
- `label`: the digit, which the model never reads (its only input is `image`; Keras picks it out
  of the dict by name) but which travels with each image for the latent-space plot and the
  anomaly ROC AUC;
- `clean`: the noiseless image in [0, 1], the reconstruction target.
With `anomaly_class = k`, digit k is removed from the training and validation splits and kept in
the test split, where the reconstruction error should single it out (evaluating a whole file,
with both fractions 0, keeps it: every image is then in the one split evaluated).
"""

from __future__ import annotations

import numpy as np

from dlapps.data.digits import IMAGE_SIZE, load_images
from dlapps.errors import UserError
from dlapps.task import Data
from dlapps.tasks.autoencoder.config import Config


def _noisy(images: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A fixed noisy copy (validation/test: the same noise every epoch and every run)."""
    rng = np.random.default_rng(seed)
    noisy = images.astype(np.float32) + rng.normal(0.0, noise * 255.0, images.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 255.0)


def make_dataset(images: np.ndarray, labels: np.ndarray, noise: float = 0.0, seed: int = 0,
                 fresh_noise: bool = False):
    """Unbatched ({"image": float32 (28, 28, 1) 0..255, "label": int64}, clean float32 [0, 1]) pairs.

    `images` uint8 (N, 28, 28, 1), `labels` (N,). With `noise` > 0 (std in [0, 1] pixel units)
    the inputs get Gaussian noise, drawn anew on every pass (`fresh_noise`, for training) or fixed
    once from `seed` (validation and test).
    """
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
    """Train/val/test splits of the configured images (see the module docstring).

    `info`: image_shape, class_names, dataset, anomaly_class, source_description, train_size.
    Raises UserError for a negative `noise`, an `anomaly_class` absent from the data, or what
    `dlapps.data.digits.load_images` raises.
    """
    if cfg.noise < 0:
        raise UserError(f"noise={cfg.noise}: the noise std must be >= 0 (e.g. 0.3)")
    splits = load_images(cfg, "autoencoder")
    x_train, y_train, x_val, y_val = splits.x_train, splits.y_train, splits.x_val, splits.y_val
    # Evaluating a whole file (both fractions 0: every image in `train`) keeps the left-out class,
    # so that `dlapps evaluate` reports the anomaly ROC AUC over the whole file. Its labels are
    # matched to the model's classes in `evaluate` (an image folder may hold only some of them),
    # so the left-out class need not be there.
    whole_file = cfg.val_fraction == 0 and cfg.test_fraction == 0
    if cfg.anomaly_class is not None and not whole_file:
        if cfg.anomaly_class not in set(np.unique(np.concatenate([splits.y_train, splits.y_test]))):
            raise UserError(f"anomaly_class={cfg.anomaly_class}: no image of that class in the data "
                            f"(classes: {', '.join(splits.class_names)})")
    if cfg.anomaly_class is not None and not whole_file:
        x_train, y_train = x_train[y_train != cfg.anomaly_class], y_train[y_train != cfg.anomaly_class]
        x_val, y_val = x_val[y_val != cfg.anomaly_class], y_val[y_val != cfg.anomaly_class]
    info = {
        "image_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "class_names": splits.class_names,
        "dataset": cfg.dataset,
        "anomaly_class": cfg.anomaly_class,
        "source_description": splits.description + (
            f"; class {splits.class_names[cfg.anomaly_class]} left out of training (anomaly detection)"
            if cfg.anomaly_class is not None and not whole_file else ""),
        "train_size": int(len(x_train)),
    }
    return Data(make_dataset(x_train, y_train, cfg.noise, cfg.seed, fresh_noise=True),
                make_dataset(x_val, y_val, cfg.noise, cfg.seed + 1) if len(x_val) else None,
                make_dataset(splits.x_test, splits.y_test, cfg.noise, cfg.seed + 2), info)
