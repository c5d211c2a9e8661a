"""Image classification data for transfer learning: an image folder, tf_flowers, or embedded digits 5-9.

Sources (`--set source=...`):

| source     | what                                                                               |
|------------|------------------------------------------------------------------------------------|
| `embedded` | scikit-learn's handwritten digits 5-9 (offline): the classes the committed digits backbone never saw; `labels_per_class` keeps a few labelled images per class for training |
| `tf_flowers` | `tfds.load("tf_flowers")`: 3,670 photos of 5 flowers (download)                 |
| `file`     | `--data FOLDER`: one sub-folder of images per class (`FOLDER/cats/*.jpg`, `FOLDER/dogs/*.png`), as `keras.utils.image_dataset_from_directory` reads it |

Image folders: every file is checked first; files that are not images, are empty or corrupt, or
come out blank (no contrast) are skipped and counted, the count is printed in the run's data line
and on stderr (with the first names) and kept in `info["skipped_files"]`. The kept files are read
in tf.data by `load_image`, the reader `predict` uses (any format Pillow reads, EXIF orientation,
transparency, shorter side resized and centre-cropped), so training, evaluation and prediction see
the same pixels; the pre-check is what lets one bad file be skipped instead of stopping training
mid-epoch. A folder with fewer than two classes (one is enough to evaluate a whole folder), or a
class without one usable image, is an error. Evaluation maps the folder names to the model's
class names (a folder set with only some of the classes is scored against the right outputs).

Images reach the model as uint8 (image_size, image_size, channels); the channels and size follow the
backbone (3 and its ImageNet size for keras.applications, 1 and 28 for the digits backbone).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from dlapps.data.digits import embedded_digits
from dlapps.data.images import scan_image_folder
from dlapps.data.sources import pick
from dlapps.errors import UserError
from dlapps.task import Data
from dlapps.tasks.imagenet.config import Config

DEMO_CLASSES = (5, 6, 7, 8, 9)


def image_shape(cfg: Config) -> list[int]:
    """[size, size, channels] that the configured backbone takes.

    Raises UserError for an unknown backbone or a saved backbone file (weights=PATH.keras) not found.
    """
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


def load_image(path: str, shape: list[int]) -> np.ndarray:
    """An image file as uint8 (size, size, channels): shorter side resized, centre-cropped (ImageNet style).

    `dlapps.data.images.read_image` first (EXIF orientation applied, transparency composited so
    that the content stays visible). The one reader of this task: predict reads each file with
    it, and training and evaluation read a folder's files with it (in tf.data), so the model sees
    the same pixels in all three. Raises UserError for a missing or unreadable file.
    """
    from PIL import Image

    from dlapps.data.images import read_image

    array = read_image(path, channels=shape[2])
    height, width = array.shape[:2]
    target = shape[0]
    scale = target / min(height, width)
    image = Image.fromarray(array[..., 0] if shape[2] == 1 else array)
    resized = image.resize((max(target, round(width * scale)), max(target, round(height * scale))),
                           Image.Resampling.BILINEAR)
    left, top = (resized.width - target) // 2, (resized.height - target) // 2
    cropped = np.asarray(resized.crop((left, top, left + target, top + target)), np.uint8)
    return cropped[..., None] if cropped.ndim == 2 else cropped


class _Source(NamedTuple):
    """A loaded source: labels (N,), class names, a description, skipped files by reason, and
    `make(indices)` -> the unbatched (uint8 image, int64 label) dataset of those examples."""

    labels: np.ndarray
    class_names: list[str]
    description: str
    skipped: dict[str, int]
    make: Callable[[np.ndarray], Any]


def _in_memory(images: np.ndarray, labels: np.ndarray):
    import tensorflow as tf

    def make(idx):
        return tf.data.Dataset.from_tensor_slices((images[idx], labels[idx].astype(np.int64)))

    return make


def _embedded(cfg: Config, shape: list[int]) -> _Source:
    """Digits 5-9 of scikit-learn's embedded digits, labelled 0-4, fitted to the backbone's shape."""
    images, labels = embedded_digits()
    keep = np.isin(labels, DEMO_CLASSES)
    images, labels = _fit_channels(images[keep], shape), labels[keep] - DEMO_CLASSES[0]
    return _Source(labels, [str(c) for c in DEMO_CLASSES],
                   "scikit-learn handwritten digits 5-9 (embedded; classes the digits backbone was not "
                   "pretrained on)", {}, _in_memory(images, labels))


def _image_folder(cfg: Config, shape: list[int]) -> _Source:
    """The --data folder: files checked once (unreadable or blank ones skipped, reported on
    stderr), then read by tf.data with `load_image`, as `predict` reads a file."""
    import tensorflow as tf

    whole_file = cfg.val_fraction == 0 and cfg.test_fraction == 0  # evaluation: one class is enough
    scan = scan_image_folder(cfg.data, min_classes=1 if whole_file else 2,
                             read=lambda path: load_image(path, shape), keep_images=False)
    scan.report_skipped()
    paths, labels = np.asarray(scan.paths), scan.labels
    summary = scan.skipped_summary()

    def read(path):
        return load_image(path.decode(), shape)

    def decode(path, label):
        image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
        image.set_shape(shape)
        return image, label

    def make(idx):
        pairs = tf.data.Dataset.from_tensor_slices((paths[idx], labels[idx].astype(np.int64)))
        return pairs.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return _Source(labels, scan.class_names,
                   f"image folder {cfg.data} ({len(paths)} images, {len(scan.class_names)} classes"
                   f"{'; ' + summary if summary else ''})",
                   {reason: len(files) for reason, files in scan.skipped.items()}, make)


def _flowers(cfg: Config, shape: list[int]) -> _Source:
    images, labels = _tf_flowers(shape)
    return _Source(labels, ["dandelion", "daisy", "tulips", "sunflowers", "roses"],
                   f"tfds tf_flowers (downloaded, {len(labels)} photos)", {}, _in_memory(images, labels))


LOADERS = {"embedded": _embedded, "tf_flowers": _flowers, "file": _image_folder}


def load_data(cfg: Config) -> Data:
    """Unbatched datasets of (uint8 image of the backbone's shape, int64 label) and their info.

    `info`: image_shape [size, size, channels], class_names, num_classes, backbone,
    source_description, split sizes and skipped_files (count per reason). Raises UserError for an
    unknown backbone or source, a folder without two readable classes, a failed download, or too
    few images to split.
    """
    shape = image_shape(cfg)
    source = pick("imagenet", cfg, LOADERS, "a FOLDER with one sub-folder of images per class")(cfg, shape)
    train, val, test = split_indices(source.labels, cfg)
    if len(train) == 0 or len(test) == 0 and cfg.test_fraction > 0:
        raise UserError(f"{source.description}: too few images to split into train/val/test")
    info = {
        "image_shape": shape,
        "class_names": source.class_names,
        "num_classes": len(source.class_names),
        "backbone": cfg.backbone,
        "source_description": source.description + (
            f"; {cfg.labels_per_class} labelled images per class for training" if cfg.labels_per_class else ""),
        "train_size": int(len(train)),
        "val_size": int(len(val)),
        "test_size": int(len(test)),
        "skipped_files": source.skipped,
    }
    return Data(source.make(train), source.make(val) if len(val) else None, source.make(test), info)


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
