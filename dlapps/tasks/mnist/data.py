"""MNIST-style 28x28 images for the classifier: the shared digit sources of `dlapps.data.digits`.

Sources (`--set source=embedded|tfds|keras|file`, `--set dataset=mnist|fashion_mnist`) and the
split rules are documented in `dlapps/data/digits.py`; `--data` takes a keras.datasets-layout
`.npz` or a folder of class sub-folders. Training batches are augmented in the tf.data pipeline
(`augmentation`), not inside the model.
"""

from __future__ import annotations

import dataclasses

from dlapps.data.digits import digit_data
from dlapps.task import Data
from dlapps.tasks.mnist.config import Config


def augmentation(cfg: Config):
    """The training batches' random rotation, shift and zoom (`Data.augment`), or None when off.

    A function of a batch `(images uint8 (B, H, W, C), labels)` to the same shapes and dtypes:
    Keras' RandomRotation, RandomTranslation and RandomZoom (each only when its amount is above
    0), with the shifted-in border filled with 0 (MNIST's black background) and the pixels
    rounded back to uint8, so the model sees what it sees in prediction: raw uint8 images. The
    draws follow the Keras random seed (`dlapps train --seed`) and differ in every epoch.
    Running in tf.data (with parallel calls) instead of inside the model keeps the saved model
    free of random layers: the training step can then be XLA-compiled (`dlapps train --jit`).
    """
    if not cfg.augment:
        return None
    import keras
    import tensorflow as tf

    layers = []
    if cfg.rotation > 0:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="constant"))
    if cfg.translation > 0:
        layers.append(keras.layers.RandomTranslation(cfg.translation, cfg.translation, fill_mode="constant"))
    if cfg.zoom > 0:
        layers.append(keras.layers.RandomZoom(cfg.zoom, cfg.zoom, fill_mode="constant"))
    if not layers:
        return None

    def augment(images, labels):
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), images.dtype), labels

    return augment


def load_data(cfg: Config) -> Data:
    """The Task contract's Data: unbatched datasets of (uint8 image (28, 28, 1), int64 label).

    `info`: image_shape, class_names, num_classes, dataset, source_description, split sizes.
    `augment`: `augmentation(cfg)`. Raises UserError for a bad source, file or split (see
    `dlapps.data.digits.load_images`).
    """
    return dataclasses.replace(digit_data(cfg, "mnist"), augment=augmentation(cfg))
