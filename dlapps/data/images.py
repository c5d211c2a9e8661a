"""Image helpers shared by the vision tasks: read any image file, image folders, keras-style .npz.

- `read_image(path, channels, size)`: any file PIL can open (PNG, JPEG, GIF, BMP, TIFF, WebP...),
  any size and mode (gray, RGB, RGBA, palette, 16-bit), as a uint8 array (H, W, channels).
- `scan_image_folder(folder)`: one sub-folder per class -> file paths, labels, class names, and
  the files that were skipped (not images, corrupt, unreadable), counted by reason.
- `read_image_folder(folder, size, channels)`: the same, loaded into memory as uint8 arrays.
- `load_npz(path)`: arrays in the keras.datasets layout (`x_train, y_train, x_test, y_test`) or
  a single `x, y` pair.

Every problem a user can fix (missing path, no classes, one class, no readable image, wrong npz
keys) is a `UserError` that names the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlapps.errors import UserError

# What TensorFlow's decode_image (and so keras.utils.image_dataset_from_directory) can decode.
TF_DECODABLE = ("JPEG", "PNG", "GIF", "BMP")


def _pil():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - pillow is a dependency of matplotlib
        raise UserError("reading image files needs Pillow: pip install pillow") from None
    return Image, UnidentifiedImageError


def to_mode(image, channels: int, background: int = 255):
    """A PIL image converted to gray (channels=1) or RGB (channels=3).

    Transparency (RGBA, LA, palette with alpha) is composited over a `background` gray level
    (white by default, as a drawing program shows it), rather than dropped, so that a digit
    drawn in black ink on a transparent canvas does not turn into a black square.
    16-bit and float images are rescaled to 0-255.
    """
    Image, _ = _pil()
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (background, background, background, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def read_image(path: str | Path, channels: int = 3, size: tuple[int, int] | None = None,
               background: int = 255) -> np.ndarray:
    """The image file at `path` as uint8 (H, W, channels), resized to `size` = (height, width).

    Any format and mode PIL reads; the first frame of an animation. A missing or unreadable
    file is a UserError naming it.
    """
    Image, UnidentifiedImageError = _pil()
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"image {path} not found")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give an image file (PNG, JPEG, ...)")
    try:
        with Image.open(path) as opened:
            opened.seek(0)
            image = to_mode(opened, channels, background)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{path}: not a readable image ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'unknown format'})") from None
    return array[..., None] if array.ndim == 2 else array


@dataclass
class ImageFolder:
    """An image folder scanned: one entry per readable image, and what was skipped and why."""

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """reason -> skipped file paths (e.g. 'not an image', 'format TIFF not decodable by TF')."""

    @property
    def skipped_count(self) -> int:
        """How many files were skipped."""
        return sum(len(files) for files in self.skipped.values())

    def skipped_summary(self) -> str:
        """A short human line, e.g. '3 files skipped (2 not an image, 1 empty file)'; '' if none."""
        if not self.skipped:
            return ""
        parts = ", ".join(f"{len(files)} {reason}" for reason, files in sorted(self.skipped.items()))
        return f"{self.skipped_count} file(s) skipped ({parts})"


def _check_image(path: Path, tf_decodable: bool) -> str | None:
    """None if `path` is a readable image, else the reason it is skipped."""
    Image, UnidentifiedImageError = _pil()
    if path.stat().st_size == 0:
        return "empty file"
    try:
        with Image.open(path) as image:
            image_format = image.format or "?"
            image.verify()  # checks the file structure without decoding all pixels
        with Image.open(path) as image:
            image.load()  # a truncated file passes verify() but fails here
    except (UnidentifiedImageError, SyntaxError):
        return "not an image"
    except (OSError, ValueError):
        return "corrupt image"
    if tf_decodable and image_format not in TF_DECODABLE:
        return f"{image_format} format (TensorFlow reads {'/'.join(TF_DECODABLE)})"
    return None


def scan_image_folder(folder: str | Path, tf_decodable: bool = False, min_classes: int = 2) -> ImageFolder:
    """The images of `folder/<class>/*` with integer labels (class names sorted).

    Files that are not images or cannot be decoded are skipped and counted by reason (hidden
    files too, silently). With `tf_decodable`, only formats tf.io.decode_image reads are kept.
    Fewer than `min_classes` classes, or a class with no readable image, is a UserError.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"image folder {folder} not found")
    if not folder.is_dir():
        raise UserError(f"{folder} is a file; give a folder with one sub-folder of images per class")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < min_classes:
        found = f"only {class_dirs[0].name!r}" if class_dirs else "none"
        raise UserError(f"{folder}: found {len(class_dirs)} class sub-folder(s) ({found}); a classifier needs "
                        f"at least {min_classes}: put each class's images in its own sub-folder, "
                        f"e.g. {folder}/cats/*.jpg and {folder}/dogs/*.jpg")
    paths, labels, skipped = [], [], {}
    for label, class_dir in enumerate(class_dirs):
        kept = 0
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            reason = _check_image(path, tf_decodable)
            if reason:
                skipped.setdefault(reason, []).append(str(path))
                continue
            paths.append(str(path))
            labels.append(label)
            kept += 1
        if kept == 0:
            raise UserError(f"{class_dir}: no readable image in this class folder; add images or remove it")
    return ImageFolder(paths, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs], skipped)


def read_image_folder(folder: str | Path, size: tuple[int, int], channels: int = 1,
                      min_classes: int = 2) -> tuple[np.ndarray, np.ndarray, ImageFolder]:
    """(images uint8 (N, H, W, channels) resized to `size`, labels int64 (N,), the scan)."""
    scan = scan_image_folder(folder, min_classes=min_classes)
    images = np.stack([read_image(p, channels, size) for p in scan.paths])
    return images, scan.labels, scan


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x_train, y_train, x_test, y_test) from a keras.datasets-layout .npz; test is None for `x, y`."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path} not found")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            keys = set(arrays.files)
            if {"x_train", "y_train"} <= keys:
                x_test = arrays["x_test"] if "x_test" in keys else None
                y_test = arrays["y_test"] if "y_test" in keys else None
                if (x_test is None) != (y_test is None):
                    raise UserError(f"{path}: has only one of x_test/y_test; give both or neither")
                return arrays["x_train"], arrays["y_train"], x_test, y_test
            if {"x", "y"} <= keys:
                return arrays["x"], arrays["y"], None, None
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: not a readable .npz file ({str(err).splitlines()[0]})") from None
    raise UserError(f"{path}: expected arrays x_train, y_train[, x_test, y_test] (keras.datasets layout) "
                    f"or x, y; found {', '.join(sorted(keys)) or 'none'}")


def as_image_batch(x: np.ndarray, what: str = "images") -> np.ndarray:
    """`x` as uint8 (N, H, W, C): adds the channel axis to (N, H, W); rescales [0, 1] floats."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise UserError(f"{what}: expected shape (N, H, W) or (N, H, W, 1|3), got {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number):
            raise UserError(f"{what}: expected numeric pixels, got dtype {x.dtype}")
        high = float(np.nanmax(x)) if x.size else 0.0
        x = np.clip(np.nan_to_num(x * 255.0 if high <= 1.0 else x), 0, 255).round().astype(np.uint8)
    return x
