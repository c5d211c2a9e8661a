"""MNIST-style 28x28 digit images shared by the image tasks (mnist, autoencoder, gan, imagenet).

- `load_images(cfg, task_name) -> ImageSplits`: uint8 images (N, 28, 28, 1) and int64 labels
  (N,) for train / validation / test, the class names and a line describing the source.
- `digit_data(cfg, task_name) -> Data`: the same as unbatched tf.data datasets of
  (uint8 image, int64 label), with the `info` every digit task reads.
- `embedded_digits()`: scikit-learn's handwritten digits upscaled and centred like MNIST.
- `mnist_style(image, invert, center)`: any gray image -> a 28x28 digit drawn as MNIST draws them.

`cfg` is any config with the fields `source`, `data`, `dataset`, `val_fraction`,
`test_fraction` and `seed` (the Configs of the mnist, autoencoder and gan tasks).

Sources (`--set source=...`, `--set dataset=mnist|fashion_mnist`):

| source     | what                                                                              |
|------------|-----------------------------------------------------------------------------------|
| `embedded` | scikit-learn's 1,797 handwritten digits (8x8, 17 gray levels), upscaled to 20x20 and centred in 28x28 like MNIST; offline |
| `tfds`     | `tfds.load("mnist" / "fashion_mnist")` (download, official 60k/10k split)         |
| `keras`    | `keras.datasets.mnist / fashion_mnist.load_data()` (download, same split)         |
| `file`     | `--data PATH`: a `.npz` (keras.datasets layout `x_train, y_train, x_test, y_test`, or `x, y`) or a folder with one sub-folder of images per class (any size/mode, read as `predict` reads a file: `read_digit`) |

Image folders are read exactly as `predict` reads a file (`read_digit`: EXIF orientation,
transparency, dark-on-light inverted by the `auto` rule, MNIST centring for mnist), so that a
model is trained, evaluated and used on the same pixels. Unreadable files and images that come
out blank are skipped, counted in the data description and reported on stderr. Evaluation
(`model_labels`) maps the folder names to the model's class names, so a folder set with only
some classes is scored against the right outputs; evaluating a whole folder (both fractions 0)
may hold a single class.

Splits: a source with an official test split keeps it as the test set and takes the validation
set from its training part; otherwise all images are split (stratified, seeded) into
train/val/test by `val_fraction` / `test_fraction`. With both fractions 0 (evaluating a whole
file) every image is in `train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from dlapps.data.images import as_image_batch, is_blank, is_image_folder, load_npz, scan_image_folder, to_model_labels
from dlapps.data.sources import pick
from dlapps.errors import UserError
from dlapps.task import Data

IMAGE_SIZE = 28
DigitSource = Literal["embedded", "tfds", "keras", "file"]
"""Where digit images come from (the table above): the type of the digit tasks' `source` field."""
DigitDataset = Literal["mnist", "fashion_mnist"]
"""Which MNIST-shaped dataset the downloads and class names are: the digit tasks' `dataset` field."""
DIGIT_NAMES = [str(i) for i in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot"]
CLASS_NAMES = {"mnist": DIGIT_NAMES, "fashion_mnist": FASHION_NAMES}
FILE_FORMAT = "a .npz file or a folder of class sub-folders"
INVERT_CHOICES = ("auto", "yes", "no")


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


class _Loaded(NamedTuple):
    """What a source loader returns: test arrays None without an official test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    description: str
    class_names: list[str] | None  # None: the dataset's own names


# ----------------------------------------------------------------------------- sources
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as MNIST-like images: uint8 (1797, 28, 28, 1), int64 labels (1797,).

    Each 8x8 digit (17 gray levels) is rescaled to 0..255, upscaled (bicubic) to 20x20 and
    centred in a 28x28 frame with a black 4-pixel border, as MNIST's digits are.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.zeros((len(small), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for i, image in enumerate(small):
        images[i, 4:24, 4:24] = np.asarray(Image.fromarray(image).resize((20, 20), Image.Resampling.BICUBIC))
    return images[..., None], digits.target.astype(np.int64)


def tfds_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of a tfds dataset (downloaded into tfds' data dir).

    Raises UserError (with the offline alternatives) when tfds cannot load it.
    """
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
    """(x_train, y_train, x_test, y_test) from keras.datasets (downloaded into ~/.keras/datasets).

    Raises UserError (with the offline alternatives) when the download fails.
    """
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # urllib errors, wrapped by keras as Exception(...)
        raise UserError(f"cannot download keras.datasets.{name} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:160]}); offline? use --set source=embedded or "
                        f"--data {name}.npz") from None
    return x_train, y_train, x_test, y_test


def file_arrays(path: str, center: bool = True, min_classes: int = 2, invert: str = "auto"
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str, list | None]:
    """(x_train, y_train, x_test, y_test, description, folder class names) from --data.

    A `.npz` (keras.datasets layout, or `x, y`) or a folder of class sub-folders. Each image of a
    folder goes through `read_digit`, exactly as `predict` reads a file (EXIF orientation,
    transparency, `invert` auto, MNIST centring when `center`), so that train, evaluate and
    predict see the same pixels; files that are unreadable or blank after it are skipped,
    counted in the description and reported on stderr. Class names are the folder names.
    Raises UserError for a missing path, another kind of file, or fewer than `min_classes` classes.
    """
    location = Path(path).expanduser()
    if not location.exists():
        raise UserError(f"--data {path}: not found (give {FILE_FORMAT})")
    if location.is_dir():
        scan = scan_image_folder(location, min_classes=min_classes,
                                 read=lambda file: read_digit(file, invert, center=center))
        scan.report_skipped()
        skipped = scan.skipped_summary()
        return (scan.images, scan.labels, None, None,
                f"image folder {path} ({len(scan.images)} images, {len(scan.class_names)} classes"
                f"{'; ' + skipped if skipped else ''})", scan.class_names)
    if location.suffix.lower() != ".npz":
        raise UserError(f"--data {path}: expected a .npz file (keras.datasets layout) or an image folder")
    x_train, y_train, x_test, y_test = load_npz(location)
    return x_train, y_train, x_test, y_test, f"local file {path}", None


def _embedded(cfg) -> _Loaded:
    if cfg.dataset != "mnist":
        raise UserError("fashion_mnist has no embedded copy: use --set source=tfds or source=keras "
                        "(download), or --data fashion_mnist.npz")
    x_train, y_train = embedded_digits()
    return _Loaded(x_train, y_train, None, None,
                   "scikit-learn handwritten digits (embedded, 1,797 images of 8x8 upscaled to 28x28; "
                   "not MNIST itself)", None)


def _tfds(cfg) -> _Loaded:
    return _Loaded(*tfds_arrays(cfg.dataset), f"tfds {cfg.dataset} (downloaded)", None)


def _keras(cfg) -> _Loaded:
    return _Loaded(*keras_arrays(cfg.dataset), f"keras.datasets.{cfg.dataset} (downloaded)", None)


def _whole_file(cfg) -> bool:
    """Both fractions 0: a file loaded whole, to be evaluated (one class is then enough)."""
    return cfg.val_fraction == 0 and cfg.test_fraction == 0


def _file(cfg) -> _Loaded:
    return _Loaded(*file_arrays(cfg.data, center=cfg.dataset == "mnist", min_classes=1 if _whole_file(cfg) else 2))


LOADERS = {"embedded": _embedded, "tfds": _tfds, "keras": _keras, "file": _file}


# ----------------------------------------------------------------------------- checks and splits
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


def load_images(cfg: Any, task_name: str = "mnist") -> ImageSplits:
    """Train/val/test uint8 images (N, 28, 28, 1) and int64 labels (N,) of `cfg`'s source.

    `task_name` names the task in the source errors. Raises UserError for fractions that do not
    leave a training set, an unknown dataset or source (see `dlapps.data.sources.pick`), a
    download that fails, an unreadable or inconsistent file, or labels of a single class.
    """
    val_fraction, test_fraction, seed = cfg.val_fraction, cfg.test_fraction, cfg.seed
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UserError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    if cfg.dataset not in CLASS_NAMES:
        raise UserError(f"unknown dataset {cfg.dataset!r}; choose one of {', '.join(CLASS_NAMES)}")
    loaded = pick(task_name, cfg, LOADERS, FILE_FORMAT)(cfg)
    names, description = loaded.class_names or CLASS_NAMES[cfg.dataset], loaded.description
    x_train, y_train = _check_pair(loaded.x_train, loaded.y_train, f"{description} (train)")
    x_test = y_test = None
    if loaded.x_test is not None:
        x_test, y_test = _check_pair(loaded.x_test, loaded.y_test, f"{description} (test)")
    n_classes = int(max(y_train.max(), y_test.max() if y_test is not None else 0)) + 1
    if n_classes > len(names):
        names = [str(i) for i in range(n_classes)]
    if len(np.unique(y_train)) < 2 and not _whole_file(cfg):
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


def digit_data(cfg: Any, task_name: str = "mnist") -> Data:
    """`load_images` as the Task contract's Data: unbatched datasets of (uint8 (28, 28, 1), int64 label).

    `info`: image_shape, class_names, num_classes, dataset, source_description and the split
    sizes. The validation dataset is None when `val_fraction` is 0. Raises what `load_images` raises.
    """
    import tensorflow as tf

    splits = load_images(cfg, task_name)

    def dataset(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y))

    info = {
        "image_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "class_names": splits.class_names,
        "num_classes": len(splits.class_names),
        "dataset": cfg.dataset,
        "source_description": splits.description,
        "train_size": int(len(splits.x_train)),
        "val_size": int(len(splits.x_val)),
        "test_size": int(len(splits.x_test)),
    }
    return Data(dataset(splits.x_train, splits.y_train),
                dataset(splits.x_val, splits.y_val) if len(splits.x_val) else None,
                dataset(splits.x_test, splits.y_test), info)


# ----------------------------------------------------------------------------- styling
def mnist_style(image: np.ndarray, invert: str = "auto", center: bool = True) -> np.ndarray:
    """Any gray uint8 image (H, W, 1) -> uint8 (28, 28, 1) as MNIST draws digits.

    MNIST digits are light on a dark background, fit in a 20x20 box and are centred by their
    centre of mass in 28x28 (LeCun et al. 1998). `invert`: "auto" inverts when the border is
    lighter than 127 (dark ink on paper), "yes"/"no" force it. `center=False` just resizes
    (e.g. Fashion-MNIST). A blank image gives a black one. Raises UserError for another `invert`.
    """
    from PIL import Image

    gray = image[..., 0].astype(np.float32)
    if invert not in INVERT_CHOICES:
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


def read_digit(path: str | Path, invert: str = "auto", center: bool = True) -> np.ndarray:
    """The image file at `path` (any size and mode) as a uint8 (28, 28, 1) MNIST-style digit.

    `dlapps.data.images.read_image` first (EXIF orientation applied, transparency composited so
    that the ink stays visible), then `mnist_style` (`invert`, `center`). The one path by which
    predict, train and evaluate read digit image files. Raises UserError for a missing or
    unreadable file.
    """
    from dlapps.data.images import read_image

    return mnist_style(read_image(path, channels=1), invert, center)


def read_digits(paths: list[str], invert: str = "auto", center: bool = True) -> tuple[np.ndarray, list[str]]:
    """(uint8 (N, 28, 28, 1) of `read_digit`, warnings): one warning line per image that comes out
    blank (no contrast left: a uniform, fully transparent or empty picture), printed to stderr
    too, since the model can only guess on it."""
    import sys

    batch, warnings = [], []
    for path in paths:
        image = read_digit(path, invert, center)
        if is_blank(image):
            warnings.append(f"dlapps: warning: {path}: blank image (no contrast after preprocessing); "
                            f"the prediction for it is a guess")
            print(warnings[-1], file=sys.stderr)
        batch.append(image)
    return np.stack(batch), warnings


def model_labels(labels: np.ndarray, cfg: Any, class_names: list[str]) -> np.ndarray:
    """Labels from `cfg`'s data as indices into the model's `class_names`.

    For an image folder (`--data FOLDER`), its class sub-folders are matched to the model's
    class names by name (`dlapps.data.images.to_model_labels`: a folder set with only 3/ and 7/
    is scored as 3s and 7s; an unknown name is a UserError naming the model's classes); other
    sources are labelled by index already.
    """
    if getattr(cfg, "data", None) and is_image_folder(cfg.data):
        return to_model_labels(labels, cfg.data, list(class_names))
    return np.asarray(labels)
