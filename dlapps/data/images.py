"""Image helpers shared by the vision tasks: read any image file, image folders, keras-style .npz.

- `read_image(path, channels, size)`: any file PIL can open (PNG, JPEG, GIF, BMP, TIFF, WebP...),
  any size and mode (1, L, P, RGB, RGBA, LA, CMYK, 16-bit), as a uint8 array (H, W, channels),
  turned upright by its EXIF orientation (what every viewer shows) and with transparency
  composited on a background that keeps the ink visible (`to_mode`).
- `is_blank(image)`: whether an image has no contrast left (a warning in predict, a skipped file
  in train/evaluate).
- `scan_image_folder(folder, read=...)`: one sub-folder per class -> file paths, labels, class
  names, and the files that were skipped (not images, corrupt, unreadable, blank once read with
  the model's preprocessing), counted by reason; `ImageFolder.report_skipped` prints them.
- `read_image_folder(folder, size, channels)`: the same, loaded into memory as uint8 arrays.
- `to_model_labels(labels, folder, class_names)`: a folder's labels as the model's class indices.
- `load_npz(path)`: arrays in the keras.datasets layout (`x_train, y_train, x_test, y_test`) or
  a single `x, y` pair.

Every problem a user can fix (missing path, no classes, one class, no readable image, wrong npz
keys) is a `UserError` that names the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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


def has_transparency(image) -> bool:
    """Whether a PIL image has an alpha channel or a transparent colour (palette/gray/RGB tRNS)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "1", "L", "RGB", "I") and image.info.get("transparency") is not None)


def background_for(rgba: np.ndarray) -> int:
    """The gray level (0 or 255) that transparent pixels of `rgba` (uint8 (H, W, 4)) are shown on.

    The visible pixels' luminance, weighted by their alpha, says what colour they are. When they
    are sparse (opaque in less than half of the image: ink on a transparent canvas), the
    background is the opposite of that colour, so the ink stays visible: white under dark ink,
    black under light ink. When they cover most of the image (a drawing on paper with transparent
    margins), they are mostly paper, and the background matches them. Fully transparent: white.
    """
    alpha = rgba[..., 3].astype(np.float64) / 255.0
    weight = alpha.sum()
    if weight == 0:
        return 255
    luminance = rgba[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    visible_is_dark = (luminance * alpha).sum() / weight < 128
    sparse = weight < 0.5 * alpha.size
    return 255 if visible_is_dark == sparse else 0


def to_mode(image, channels: int, background: int | None = None):
    """A PIL image converted to gray (channels=1) or RGB (channels=3), any mode in.

    Transparency (RGBA, LA, palette or gray with a transparent colour) is composited over a gray
    `background` level rather than dropped; by default (None) the level is chosen to keep the ink
    visible (`background_for`): black ink on a transparent canvas goes on white, white ink on
    black, instead of the ink vanishing into a background of its own colour.
    16-bit and float images are rescaled to 0-255.
    """
    Image, _ = _pil()
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F") and not has_transparency(image):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if has_transparency(image):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        level = background_for(rgba) if background is None else background
        alpha = rgba[..., 3:].astype(np.float32) / 255.0
        composite = rgba[..., :3].astype(np.float32) * alpha + float(level) * (1.0 - alpha)
        image = Image.fromarray(np.clip(np.round(composite), 0, 255).astype(np.uint8), mode="RGB")
    return image.convert("L" if channels == 1 else "RGB")


def is_blank(image: np.ndarray, min_contrast: int = 16) -> bool:
    """Whether uint8 pixels have no contrast: max - min below `min_contrast` (of 255).

    A uniform picture, a fully transparent one, or a digit with no ink left after
    `mnist_style` is blank: a model would only guess on it.
    """
    image = np.asarray(image)
    return image.size == 0 or int(image.max()) - int(image.min()) < min_contrast


def read_image(path: str | Path, channels: int = 3, size: tuple[int, int] | None = None,
               background: int | None = None) -> np.ndarray:
    """The image file at `path` as uint8 (H, W, channels), resized to `size` = (height, width).

    Any format and mode PIL reads; the first frame of an animation. The EXIF orientation is
    applied (a phone photo stored sideways comes out as every viewer shows it); transparency is
    composited as `to_mode` says (`background`: None chooses a level that keeps the ink visible).
    A missing or unreadable file is a UserError naming it.
    """
    from PIL import ImageOps

    Image, UnidentifiedImageError = _pil()
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"image {path} not found")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give an image file (PNG, JPEG, ...)")
    try:
        with Image.open(path) as opened:
            opened.seek(0)
            image = to_mode(ImageOps.exif_transpose(opened), channels, background)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{path}: not a readable image ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'unknown format'})") from None
    return array[..., None] if array.ndim == 2 else array


BLANK = "blank image (no contrast)"
"""The reason a file that reads as a uniform image is skipped (see `is_blank`)."""


@dataclass
class ImageFolder:
    """An image folder scanned: one entry per usable image, and what was skipped and why."""

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """reason -> skipped file paths (e.g. 'not an image', 'format TIFF not decodable by TF')."""
    images: np.ndarray | None = None
    """The images as `read` returned them (N, ...) when the scan read them, else None."""
    folder: str = ""
    """The folder scanned."""

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

    def report_skipped(self, stream=None, names: int = 3) -> str:
        """Print one line about the skipped files (count, reasons, the first `names` of them) to
        stderr (or `stream`); returns it ('' and nothing printed when none was skipped)."""
        import sys

        if not self.skipped:
            return ""
        files = [path for reason in sorted(self.skipped) for path in self.skipped[reason]]
        root = Path(self.folder) if self.folder else None

        def short(path: str) -> str:
            try:
                return str(Path(path).relative_to(root)) if root else path
            except ValueError:
                return path

        shown = ", ".join(short(path) for path in files[:names]) + (", ..." if len(files) > names else "")
        line = (f"dlapps: warning: {self.folder or 'image folder'}: {self.skipped_summary()} "
                f"of {self.skipped_count + len(self.paths)}: {shown}")
        print(line, file=stream or sys.stderr)
        return line


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


def class_folders(folder: str | Path) -> list[Path]:
    """The class sub-folders of `folder` (not hidden), sorted by name: label i is the i-th."""
    folder = Path(folder).expanduser()
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_image_folder(folder: str | Path, tf_decodable: bool = False, min_classes: int = 2,
                      read: Callable[[str], np.ndarray] | None = None, keep_images: bool = True) -> ImageFolder:
    """The images of `folder/<class>/*` with integer labels (class names sorted).

    Files that are not images or cannot be decoded are skipped and counted by reason (hidden
    files too, silently). With `tf_decodable`, only formats tf.io.decode_image reads are kept.
    With `read` (path -> uint8 array, the preprocessing the model's inputs get), every file is
    read, and those that come out blank (`is_blank`) are skipped too; the arrays are kept in
    `images` (unless `keep_images` is False). Fewer than `min_classes` classes, or a class with
    no usable image, is a UserError.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"image folder {folder} not found")
    if not folder.is_dir():
        raise UserError(f"{folder} is a file; give a folder with one sub-folder of images per class")
    class_dirs = class_folders(folder)
    if len(class_dirs) < min_classes:
        found = f"only {class_dirs[0].name!r}" if class_dirs else "none"
        raise UserError(f"{folder}: found {len(class_dirs)} class sub-folder(s) ({found}); a classifier needs "
                        f"at least {min_classes}: put each class's images in its own sub-folder, "
                        f"e.g. {folder}/cats/*.jpg and {folder}/dogs/*.jpg")
    paths, labels, skipped, arrays = [], [], {}, []
    for label, class_dir in enumerate(class_dirs):
        kept = 0
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            reason = _check_image(path, tf_decodable)
            if reason is None and read is not None:
                try:
                    array = read(str(path))
                except UserError:
                    reason = "unreadable image"
                else:
                    if is_blank(array):
                        reason = BLANK
                    elif keep_images:
                        arrays.append(array)
            if reason:
                skipped.setdefault(reason, []).append(str(path))
                continue
            paths.append(str(path))
            labels.append(label)
            kept += 1
        if kept == 0:
            blank = any(class_dir in Path(p).parents for p in skipped.get(BLANK, []))
            raise UserError(f"{class_dir}: no {'usable' if blank else 'readable'} image in this class folder"
                            f"{' (every image is blank)' if blank else ''}; add images or remove it")
    return ImageFolder(paths, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs], skipped,
                       np.stack(arrays) if read is not None and keep_images else None, str(folder))


def read_image_folder(folder: str | Path, size: tuple[int, int], channels: int = 1,
                      min_classes: int = 2) -> tuple[np.ndarray, np.ndarray, ImageFolder]:
    """(images uint8 (N, H, W, channels) resized to `size`, labels int64 (N,), the scan).

    Blank images are skipped and counted like unreadable ones.
    """
    scan = scan_image_folder(folder, min_classes=min_classes,
                             read=lambda path: read_image(path, channels, size))
    return scan.images, scan.labels, scan


def to_model_labels(labels: np.ndarray, folder: str | Path, model_class_names: list[str]) -> np.ndarray:
    """Labels of `folder`'s class sub-folders (indices into its sorted folder names) as indices
    into the model's class names, matched by name: a folder set holding only some of the
    classes (only 3/ and 7/) is scored against the right outputs.

    Raises UserError naming the model's classes when a folder name is not one of them.
    """
    names = [d.name for d in class_folders(folder)]
    index = {str(name): i for i, name in enumerate(model_class_names)}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise UserError(f"{folder}: class folder(s) {', '.join(unknown)} are not classes of this model; "
                        f"name each sub-folder after one of its classes: {', '.join(map(str, model_class_names))}")
    mapping = np.asarray([index[name] for name in names], dtype=np.int64)
    return mapping[np.asarray(labels, dtype=np.int64)]


def is_image_folder(path: str | Path | None) -> bool:
    """Whether `path` (e.g. a config's `data`) is an existing folder (of class sub-folders)."""
    return bool(path) and Path(path).expanduser().is_dir()


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
