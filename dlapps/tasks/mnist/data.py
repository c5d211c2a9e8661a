"""MNIST-style 28x28 images for the classifier: the shared digit sources of `dlapps.data.digits`.

Sources (`--set source=embedded|tfds|keras|file`, `--set dataset=mnist|fashion_mnist`) and the
split rules are documented in `dlapps/data/digits.py`; `--data` takes a keras.datasets-layout
`.npz` or a folder of class sub-folders. Training batches are augmented in the tf.data pipeline
(`augmentation`), not inside the model.
"""

from __future__ import annotations

import dataclasses

from dlapps.data.digits import digit_data
from dlapps.errors import UserError
from dlapps.task import Data
from dlapps.tasks.mnist.config import Config


def elastic_distortion(images, alpha: float, sigma: float):
    """Random elastic distortions of a batch of images (Simard, Steinkraus & Platt 2003, "Best
    practices for convolutional neural networks applied to visual document analysis", section 2).

    Every pixel moves by its own displacement: a uniform(-1, 1) random field per image and axis,
    smoothed by a Gaussian of standard deviation `sigma` pixels and scaled by `alpha` pixels; the
    image is resampled there bilinearly, and what comes from outside the frame is 0. The paper
    used alpha 34, sigma 4 on 28x28 MNIST; a small `sigma` gives random jitter, a large one an
    almost rigid shift. `images`: float32 (B, H, W, C); returns the same shape and dtype. Draws
    come from TensorFlow's random ops (seeded by `keras.utils.set_random_seed`). Keras'
    RandomElasticTransform is not used: it draws the same field for both axes, and on batches of
    unknown size (as in tf.data) it puts a distortion of the batch's first image in place of
    every image it distorts.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    field = tf.random.uniform(tf.stack([batch, height, width, 2]), -1.0, 1.0)
    radius = max(1, int(round(3 * sigma)))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * (taps / sigma) ** 2)
    kernel = tf.tile(tf.reshape(kernel / tf.reduce_sum(kernel), [-1, 1, 1, 1]), [1, 1, 2, 1])
    field = tf.nn.depthwise_conv2d(field, kernel, [1, 1, 1, 1], "SAME")  # separable blur: rows,
    field = tf.nn.depthwise_conv2d(field, tf.transpose(kernel, [1, 0, 2, 3]), [1, 1, 1, 1], "SAME")  # columns
    field = alpha * field
    y = tf.cast(tf.range(height), tf.float32)[None, :, None] + field[..., 0]  # (B, H, W): where each
    x = tf.cast(tf.range(width), tf.float32)[None, None, :] + field[..., 1]  # output pixel reads from
    y0, x0 = tf.floor(y), tf.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    rows = tf.broadcast_to(tf.range(batch)[:, None, None], tf.shape(y))

    def pixels(yi, xi):  # images[b, yi, xi, :], 0 outside the frame
        yi, xi = tf.cast(yi, tf.int32), tf.cast(xi, tf.int32)
        inside = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
        index = tf.stack([rows, tf.clip_by_value(yi, 0, height - 1), tf.clip_by_value(xi, 0, width - 1)], -1)
        return tf.gather_nd(images, index) * tf.cast(inside, images.dtype)[..., None]

    return ((1 - wy) * ((1 - wx) * pixels(y0, x0) + wx * pixels(y0, x0 + 1))
            + wy * ((1 - wx) * pixels(y0 + 1, x0) + wx * pixels(y0 + 1, x0 + 1)))


def stroke_width(images, amount: float):
    """Random thickening or thinning of the strokes of a batch of images (grey-level dilation and
    erosion, as in Wigington et al. 2017, "Data augmentation for recognition of handwritten words
    and lines using a CNN-LSTM network", ICDAR).

    Each image draws t ~ uniform(-amount, amount) and moves t of the way towards its 3x3 grey
    dilation (t > 0: every pixel becomes the brightest of its neighbourhood, strokes about two
    pixels wider) or its 3x3 erosion (t < 0: the darkest, strokes about two pixels thinner).
    `images`: float32 (B, H, W, C), bright strokes on a dark background; returns the same shape
    and dtype. `amount` in [0, 1].
    """
    import tensorflow as tf

    t = tf.random.uniform(tf.stack([tf.shape(images)[0], 1, 1, 1]), -amount, amount)
    dilated = tf.nn.max_pool2d(images, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    return images + tf.nn.relu(t) * (dilated - images) + tf.nn.relu(-t) * (eroded - images)


def augmentation(cfg: Config):
    """The training batches' random distortions (`Data.augment`), or None when off.

    A function of a batch `(images uint8 (B, H, W, C), labels)` to the same shapes and dtypes:
    `elastic_distortion` (when `elastic_alpha` > 0), `stroke_width` (when `stroke_width` > 0),
    then Keras' RandomRotation, RandomTranslation and RandomZoom (each only when its amount is
    above 0), with what moves in filled with 0 (MNIST's black background) and the pixels rounded
    back to uint8, so the model sees what it sees in prediction: raw uint8 images. The draws
    follow the Keras random seed (`dlapps train --seed`; the pipeline maps one batch at a time,
    so a seed repeats them) and differ in every epoch. Running in tf.data instead of inside the
    model keeps the saved model free of random layers, which Keras requires before it
    XLA-compiles a training step (`dlapps train --jit`). Raises UserError for a negative
    amount, a stroke_width above 1 or an elastic_sigma that is not positive.
    """
    amounts = {"rotation": cfg.rotation, "translation": cfg.translation, "zoom": cfg.zoom,
               "elastic_alpha": cfg.elastic_alpha, "stroke_width": cfg.stroke_width}
    negative = [name for name, value in amounts.items() if value < 0]
    if negative or cfg.elastic_sigma <= 0:
        raise UserError(f"{', '.join(negative) or 'elastic_sigma'}: augmentation amounts must be >= 0 and "
                        "elastic_sigma > 0 (e.g. --set rotation=0.05 --set elastic_sigma=4)")
    if cfg.stroke_width > 1:
        raise UserError(f"stroke_width={cfg.stroke_width}: give a step from 0 (off) to 1 (a full 3x3 dilation "
                        "or erosion), e.g. --set stroke_width=0.6")
    if not cfg.augment:
        return None
    import keras
    import tensorflow as tf

    layers = []
    if cfg.elastic_alpha > 0:
        layers.append(lambda x, training: elastic_distortion(x, cfg.elastic_alpha, cfg.elastic_sigma))
    if cfg.stroke_width > 0:
        layers.append(lambda x, training: stroke_width(x, cfg.stroke_width))
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
