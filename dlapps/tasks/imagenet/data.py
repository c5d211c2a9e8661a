"""Image classification data for transfer learning: an image folder, tf_flowers, or embedded digits 5-9.

Sources (`--set source=...`):

| source     | what                                                                               |
|------------|------------------------------------------------------------------------------------|
| `embedded` | scikit-learn's handwritten digits 5-9 (offline): the classes the committed digits backbone never saw; `labels_per_class` keeps a few labelled images per class for training |
| `tf_flowers` | `tfds.load("tf_flowers")`: 3,670 photos of 5 flowers (download)                 |
| `file`     | `--data FOLDER`: one sub-folder of images per class (`FOLDER/cats/*.jpg`, `FOLDER/dogs/*.png`), as `keras.utils.image_dataset_from_directory` reads it |

Image folders: every file is checked first; files that are not images, are empty or corrupt, or
are in a format TensorFlow cannot decode (TensorFlow reads JPEG, PNG, GIF, BMP) are skipped and
counted, and the count is printed in the run's data line and kept in `info["skipped_files"]`. The
kept files are decoded and resized (bilinear) by tf.data as image_dataset_from_directory does;
the pre-check is what lets one bad file be skipped instead of stopping training mid-epoch. A
folder with fewer than two classes, or a class without one readable image, is an error.

Images reach the model as uint8 (image_size, image_size, channels); the channels and size follow the
backbone (3 and its ImageNet size for keras.applications, 1 and 28 for the digits backbone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlapps.config import TrainConfig
from dlapps.errors import UserError
from dlapps.task import Data

SOURCES = ("embedded", "tf_flowers", "file")
DEMO_CLASSES = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class Config(TrainConfig):
    """Transfer learning with a pretrained backbone, and ImageNet inference."""

    source: str = "embedded"
    """embedded (digits 5-9, offline), tf_flowers (tfds download), or file (--data FOLDER of class sub-folders)."""
    backbone: str = "mobilenet_v2"
    """A keras.applications network by name (mobilenet_v2, efficientnet_b0, resnet50, ...) or 'digits'."""
    weights: str = "pretrained"
    """pretrained (the backbone's own: ImageNet for keras.applications, downloaded; the committed file for
    digits), imagenet, none (random init), a weights file path (.h5), or a saved backbone PATH.keras."""
    image_size: int = 0
    """Square input size; 0 = the backbone's own (224 for most keras.applications, 28 for digits)."""
    head_epochs: int = 5
    """Phase 1: epochs training only the new head on the frozen backbone."""
    fine_tune_epochs: int = 5
    """Phase 2: epochs fine-tuning the top `fine_tune_layers` of the backbone too (0 = no phase 2)."""
    fine_tune_layers: int = 20
    """How many of the backbone's top layers phase 2 unfreezes (batch-norm layers stay frozen)."""
    fine_tune_learning_rate: float = 1e-4
    """Phase 2 learning rate: small, so the pretrained features are adjusted, not destroyed."""
    dropout: float = 0.2
    """Dropout before the new classification head."""
    augment: bool = True
    """Random rotation/zoom/translation (and flips, see `flip`) inside the model, training only."""
    flip: bool = True
    """Random horizontal flips (turn off for digits and text, where mirroring changes the class)."""
    labels_per_class: int = 0
    """Keep only this many labelled training images per class (0 = all): the few-label setting."""
    compare_scratch: bool = False
    """Also train the same network from random weights on the same labels and report both accuracies."""
    scratch_learning_rate: float = 0.003
    """Learning rate of that from-scratch baseline (whole network trained, so a usual CNN rate)."""
    top_k: int = 5
    """How many classes `predict` prints per image."""
    class_index: str | None = None
    """ImageNet inference: a local imagenet_class_index.json (decode_predictions downloads it otherwise)."""


def image_shape(cfg: Config) -> list[int]:
    """[size, size, channels] that the configured backbone takes."""
    from dlapps.tasks.imagenet.backbones import DIGITS, canonical, default_image_size

    name = canonical(cfg.backbone)
    size = cfg.image_size or default_image_size(name)
    channels = 1 if name == DIGITS else 3
    if cfg.weights.lower().endswith(".keras"):  # a saved backbone decides its own input
        from dlapps.tasks.imagenet.backbones import _weights_file, load_saved_backbone

        path = _weights_file(cfg.weights)
        if path is None:
            raise UserError(f"saved backbone {cfg.weights} not found")
        _, height, width, channels = load_saved_backbone(path).input_shape
        size = height or size
    return [int(size), int(size), int(channels)]


def _fit_channels(images: np.ndarray, shape: list[int]) -> np.ndarray:
    """uint8 (N, H, W, C) -> (N, size, size, channels): gray<->RGB and bilinear resize."""
    import tensorflow as tf

    if images.shape[-1] != shape[2]:
        images = (np.repeat(images, 3, axis=-1) if shape[2] == 3 else
                  np.round(images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
                  .astype(np.uint8))
    if images.shape[1:3] != tuple(shape[:2]):
        images = tf.cast(tf.round(tf.image.resize(images, shape[:2])), tf.uint8).numpy()
    return images


def _few_labels(indices: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """The first `per_class` indices of each class after a seeded shuffle (all when per_class=0)."""
    if per_class <= 0:
        return indices
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(indices)
    kept = np.concatenate([shuffled[labels[shuffled] == c][:per_class] for c in np.unique(labels)])
    return np.sort(kept)


def split_indices(labels: np.ndarray, cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified seeded train/val/test indices; train reduced to `labels_per_class` per class."""
    from sklearn.model_selection import train_test_split

    if not 0 <= cfg.val_fraction < 1 or not 0 <= cfg.test_fraction < 1 or cfg.val_fraction + cfg.test_fraction >= 1:
        raise UserError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    indices = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts.min() >= 3 else None

    def cut(idx, fraction):
        if fraction <= 0:
            return idx, idx[:0]
        return train_test_split(idx, test_size=fraction, random_state=cfg.seed,
                                stratify=None if stratify is None else labels[idx])

    rest, test = cut(indices, cfg.test_fraction)
    train, val = cut(rest, cfg.val_fraction / (1 - cfg.test_fraction))
    return _few_labels(np.sort(train), labels, cfg.labels_per_class, cfg.seed), np.sort(val), np.sort(test)


def load_data(cfg: Config) -> Data:
    """Unbatched datasets of (uint8 image of the backbone's shape, int64 label) and their info."""
    import tensorflow as tf

    shape = image_shape(cfg)
    source = "file" if cfg.data else cfg.source
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r} for imagenet; choose one of {', '.join(SOURCES)}")
    skipped: dict[str, int] = {}
    if source == "embedded":
        from dlapps.tasks.mnist.data import embedded_digits

        images, labels = embedded_digits()
        keep = np.isin(labels, DEMO_CLASSES)
        images, labels = _fit_channels(images[keep], shape), labels[keep] - DEMO_CLASSES[0]
        class_names = [str(c) for c in DEMO_CLASSES]
        description = ("scikit-learn handwritten digits 5-9 (embedded; classes the digits backbone "
                       "was not pretrained on)")

        def make(idx):
            return tf.data.Dataset.from_tensor_slices((images[idx], labels[idx].astype(np.int64)))
    elif source == "file":
        if not cfg.data:
            raise UserError("source=file needs --data FOLDER (one sub-folder of images per class)")
        from dlapps.data.images import scan_image_folder

        scan = scan_image_folder(cfg.data, tf_decodable=True)
        paths, labels, class_names = np.asarray(scan.paths), scan.labels, scan.class_names
        skipped = {reason: len(files) for reason, files in scan.skipped.items()}
        summary = scan.skipped_summary()
        description = (f"image folder {cfg.data} ({len(paths)} images, {len(class_names)} classes"
                       f"{'; ' + summary if summary else ''})")

        def decode(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=shape[2], expand_animations=False)
            image = tf.image.resize(image, shape[:2])  # bilinear, like image_dataset_from_directory
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

        def make(idx):
            pairs = tf.data.Dataset.from_tensor_slices((paths[idx], labels[idx].astype(np.int64)))
            return pairs.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        images, labels = _tf_flowers(shape)
        class_names = ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
        description = f"tfds tf_flowers (downloaded, {len(labels)} photos)"

        def make(idx):
            return tf.data.Dataset.from_tensor_slices((images[idx], labels[idx].astype(np.int64)))
    train, val, test = split_indices(labels, cfg)
    if len(train) == 0 or len(test) == 0 and cfg.test_fraction > 0:
        raise UserError(f"{description}: too few images to split into train/val/test")
    info = {
        "image_shape": shape,
        "class_names": class_names,
        "num_classes": len(class_names),
        "backbone": cfg.backbone,
        "source_description": description + (f"; {cfg.labels_per_class} labelled images per class for training"
                                             if cfg.labels_per_class else ""),
        "train_size": int(len(train)),
        "val_size": int(len(val)),
        "test_size": int(len(test)),
        "skipped_files": skipped,
    }
    return Data(make(train), make(val) if len(val) else None, make(test), info)


def _tf_flowers(shape: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """tf_flowers resized to `shape`, in memory (3,670 photos)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load("tf_flowers", split="train", as_supervised=True)
    except Exception as err:  # tfds raises many types (DownloadError, ConnectionError, ...)
        raise UserError(f"cannot load tfds tf_flowers ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
                        f"offline? use --profile demo (embedded digits) or --data FOLDER") from None
    dataset = dataset.map(lambda image, label: (
        tf.cast(tf.round(tf.image.resize(image, shape[:2])), tf.uint8), label))
    images, labels = [], []
    for image, label in tfds.as_numpy(dataset.batch(256)):
        images.append(image)
        labels.append(label)
    return _fit_channels(np.concatenate(images), shape), np.concatenate(labels).astype(np.int64)
