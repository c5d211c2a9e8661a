"""MNIST-style 28x28 images: tfds, keras.datasets, a local .npz or image folder, embedded digits.

The public entry points (also used by the autoencoder and GAN tasks):

- `load_images(cfg) -> ImageSplits`: uint8 images (N, 28, 28, 1) and int64 labels (N,) for
  train / validation / test, the class names and a line describing the source. `cfg` is any
  object with the attributes `source`, `data`, `dataset`, `val_fraction`, `test_fraction`,
  `seed` (missing ones take the defaults of `Config` below).
- `load_data(cfg) -> Data`: the same as unbatched tf.data datasets, for the Task contract.

Sources (`--set source=...`, `--set dataset=mnist|fashion_mnist`):

| source     | what                                                                              |
|------------|-----------------------------------------------------------------------------------|
| `embedded` | scikit-learn's 1,797 handwritten digits (8x8, 17 gray levels), upscaled to 20x20 and centred in 28x28 like MNIST; offline |
| `tfds`     | `tfds.load("mnist" / "fashion_mnist")` (download, official 60k/10k split)         |
| `keras`    | `keras.datasets.mnist / fashion_mnist.load_data()` (download, same split)         |
| `file`     | `--data PATH`: a `.npz` (keras.datasets layout `x_train, y_train, x_test, y_test`, or `x, y`) or a folder with one sub-folder of images per class (any size/mode; resized to 28x28 gray) |

Splits: a source with an official test split keeps it as the test set and takes the validation
set from its training part; otherwise all images are split (stratified, seeded) into
train/val/test by `val_fraction` / `test_fraction`. With both fractions 0 (evaluating a whole
file) every image is in `train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dlapps.config import TrainConfig
from dlapps.data.images import as_image_batch, load_npz, read_image_folder
from dlapps.errors import UserError
from dlapps.task import Data

IMAGE_SIZE = 28
SOURCES = ("embedded", "tfds", "keras", "file")
DATASETS = ("mnist", "fashion_mnist")
DIGIT_NAMES = [str(i) for i in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot"]


@dataclass(frozen=True)
class Config(TrainConfig):
    """MNIST CNN: data source, conv blocks, augmentation, regularisation."""

    source: str = "embedded"
    """embedded (scikit-learn digits, offline), tfds, keras (keras.datasets), or file (--data .npz/folder)."""
    dataset: str = "mnist"
    """mnist or fashion_mnist (Zalando's clothing images, same shape; tfds/keras sources or --data)."""
    conv_blocks: int = 2
    """Depth: LeNet-style blocks of [conv-BN-ReLU] x convs_per_block then 2x2 max-pooling."""
    convs_per_block: int = 2
    filters: int = 32
    """Width: filters of the first block; each further block doubles them."""
    dense_units: int = 128
    """Size of the penultimate 'features' layer (the embedding other tasks reuse)."""
    dropout: float = 0.3
    """Dropout before the classifier (and half of it after each conv block)."""
    batch_norm: bool = True
    augment: bool = True
    """Random rotation/translation/zoom layers inside the model (active in training only)."""
    rotation: float = 0.05
    """Max random rotation, as a fraction of a full turn (0.05 = 18 degrees)."""
    translation: float = 0.1
    """Max random shift, as a fraction of the image size."""
    zoom: float = 0.1
    """Max random zoom in or out, as a fraction."""
    invert: str = "auto"
    """predict only: invert dark-on-light images to MNIST's light-on-dark: auto (by the border), yes, no."""


class ImageSplits(NamedTuple):
    """Images uint8 (N, 28, 28, 1), labels int64 (N,), class names and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    description: str


def _get(cfg: Any, name: str) -> Any:
    return getattr(cfg, name, getattr(Config, name))


# ----------------------------------------------------------------------------- sources
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as MNIST-like uint8 (N, 28, 28, 1): 20x20 digit centred in 28x28."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.zeros((len(small), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for i, image in enumerate(small):
        images[i, 4:24, 4:24] = np.asarray(Image.fromarray(image).resize((20, 20), Image.Resampling.BICUBIC))
    return images[..., None], digits.target.astype(np.int64)


def tfds_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of a tfds dataset (downloaded into tfds' data dir)."""
    import tensorflow_datasets as tfds

    try:
        splits = tfds.load(name, split=["train", "test"], as_supervised=True, batch_size=4096)
    except Exception as err:  # tfds raises many types (DownloadError, ConnectionError, ...)
        raise UserError(f"cannot load tfds {name!r} ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
                        f"offline? use the embedded digits (--set source=embedded) or a local copy "
                        f"(--data {name}.npz)") from None
    arrays = []
    for split in splits:  # batches of 4,096 joined (batch_size=-1 would build one huge tensor)
        batches = list(tfds.as_numpy(split))
        arrays += [np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])]
    return tuple(arrays)


def keras_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from keras.datasets (downloaded into ~/.keras/datasets)."""
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # urllib errors, wrapped by keras as Exception(...)
        raise UserError(f"cannot download keras.datasets.{name} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:160]}); offline? use --set source=embedded or "
                        f"--data {name}.npz") from None
    return x_train, y_train, x_test, y_test


def file_arrays(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str, list | None]:
    """(x_train, y_train, x_test, y_test, description, folder class names) from --data."""
    location = Path(path).expanduser()
    if not location.exists():
        raise UserError(f"--data {path}: not found (give a .npz file or a folder of class sub-folders)")
    if location.is_dir():
        images, labels, scan = read_image_folder(location, (IMAGE_SIZE, IMAGE_SIZE), channels=1)
        skipped = scan.skipped_summary()
        return (images, labels, None, None,
                f"image folder {path} ({len(images)} images, {len(scan.class_names)} classes"
                f"{'; ' + skipped if skipped else ''})", scan.class_names)
    if location.suffix.lower() != ".npz":
        raise UserError(f"--data {path}: expected a .npz file (keras.datasets layout) or an image folder")
    x_train, y_train, x_test, y_test = load_npz(location)
    return x_train, y_train, x_test, y_test, f"local file {path}", None


def _resized(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> (N, 28, 28, 1) gray (averaging RGB, resizing other sizes)."""
    if x.shape[-1] == 3:
        x = np.round(x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)[..., None]
    if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        from PIL import Image

        x = np.stack([np.asarray(Image.fromarray(image[..., 0]).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                        Image.Resampling.BILINEAR))
                      for image in x])[..., None]
    return x


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise UserError(f"{what}: labels must be integers 0..K-1, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise UserError(f"{what}: labels must be integers 0..K-1, found {y.min()}")
    return y.astype(np.int64)


def _check_pair(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = _resized(as_image_batch(x, what))
    y = _labels(y, what)
    if len(x) != len(y):
        raise UserError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise UserError(f"{what}: no images")
    return x, y


def _split(x, y, fraction: float, seed: int):
    """(rest, part) with `fraction` of the examples in part, stratified when every class allows it."""
    from sklearn.model_selection import train_test_split

    if fraction <= 0:
        return (x, y), (x[:0], y[:0])
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and round(fraction * len(y)) >= len(counts[counts > 0]) else None
    x_rest, x_part, y_rest, y_part = train_test_split(x, y, test_size=fraction, random_state=seed,
                                                      stratify=stratify)
    return (x_rest, y_rest), (x_part, y_part)


def load_images(cfg: Any = None) -> ImageSplits:
    """Train/val/test uint8 images (N, 28, 28, 1) and int64 labels of the configured source."""
    cfg = cfg if cfg is not None else Config()
    source, data, dataset = _get(cfg, "source"), _get(cfg, "data"), _get(cfg, "dataset")
    val_fraction, test_fraction, seed = _get(cfg, "val_fraction"), _get(cfg, "test_fraction"), _get(cfg, "seed")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UserError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if data:
        source = "file"
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    names = FASHION_NAMES if dataset == "fashion_mnist" else DIGIT_NAMES
    x_test = y_test = None
    if source == "embedded":
        if dataset != "mnist":
            raise UserError("fashion_mnist has no embedded copy: use --set source=tfds or source=keras "
                            "(download), or --data fashion_mnist.npz")
        x_train, y_train = embedded_digits()
        description = ("scikit-learn handwritten digits (embedded, 1,797 images of 8x8 upscaled to 28x28; "
                       "not MNIST itself)")
    elif source == "tfds":
        x_train, y_train, x_test, y_test = tfds_arrays(dataset)
        description = f"tfds {dataset} (downloaded)"
    elif source == "keras":
        x_train, y_train, x_test, y_test = keras_arrays(dataset)
        description = f"keras.datasets.{dataset} (downloaded)"
    else:
        if not data:
            raise UserError("source=file needs --data PATH (a .npz file or a folder of class sub-folders)")
        x_train, y_train, x_test, y_test, description, folder_names = file_arrays(data)
        if folder_names is not None:
            names = folder_names
    x_train, y_train = _check_pair(x_train, y_train, f"{description} (train)")
    if x_test is not None:
        x_test, y_test = _check_pair(x_test, y_test, f"{description} (test)")
    n_classes = int(max(y_train.max(), y_test.max() if y_test is not None else 0)) + 1
    if n_classes > len(names):
        names = [str(i) for i in range(n_classes)]
    if len(np.unique(y_train)) < 2:
        raise UserError(f"{description}: all images have the same label; a classifier needs at least 2 classes")

    if x_test is None or (val_fraction == 0 and test_fraction == 0):
        if x_test is not None:  # evaluating a whole file: every image counts
            x_train, y_train = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
        (rest_x, rest_y), (x_test, y_test) = _split(x_train, y_train, test_fraction, seed)
        rest_fraction = val_fraction / (1 - test_fraction) if test_fraction < 1 else 0
        (x_train, y_train), (x_val, y_val) = _split(rest_x, rest_y, rest_fraction, seed)
    else:
        (x_train, y_train), (x_val, y_val) = _split(x_train, y_train, val_fraction, seed)
    return ImageSplits(x_train, y_train, x_val, y_val, x_test, y_test, list(names[:n_classes]), description)


def load_data(cfg: Config) -> Data:
    """The Task contract's Data: unbatched tf.data datasets of (uint8 image, int64 label)."""
    import tensorflow as tf

    splits = load_images(cfg)

    def dataset(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y))

    info = {
        "image_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "class_names": splits.class_names,
        "num_classes": len(splits.class_names),
        "dataset": _get(cfg, "dataset"),
        "source_description": splits.description,
        "train_size": int(len(splits.x_train)),
        "val_size": int(len(splits.x_val)),
        "test_size": int(len(splits.x_test)),
        "model_notes": ("Input: raw uint8 images (N, 28, 28, 1), light digit on dark background as in MNIST "
                        "(Rescaling and augmentation are inside the model). The penultimate layer, named "
                        "'features', is a stable embedding (dlapps.tasks.mnist.feature_extractor)."),
    }
    return Data(dataset(splits.x_train, splits.y_train),
                dataset(splits.x_val, splits.y_val) if len(splits.x_val) else None,
                dataset(splits.x_test, splits.y_test), info)
