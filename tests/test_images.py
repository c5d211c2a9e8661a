"""dlapps.data.images: any image file to uint8, image folders with bad files, keras-style npz."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dlapps.data import images
from dlapps.errors import UserError


def _gradient(height: int, width: int) -> np.ndarray:
    return (np.add.outer(np.arange(height), np.arange(width)) * 255 // (height + width)).astype(np.uint8)


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("RGB", ".jpg"), ("RGBA", ".png"), ("LA", ".png"),
                                         ("P", ".gif"), ("I;16", ".png"), ("CMYK", ".jpg"), ("1", ".bmp"),
                                         ("RGB", ".tiff"), ("RGB", ".webp")])
def test_read_image_any_mode_and_format(tmp_path, mode, suffix):
    gray = _gradient(37, 53)
    if mode == "I;16":
        image = Image.fromarray(gray.astype(np.uint16) * 257)
    else:
        image = Image.fromarray(gray).convert(mode)
    path = tmp_path / f"image{suffix}"
    image.save(path)
    for channels in (1, 3):
        array = images.read_image(path, channels=channels)
        assert array.dtype == np.uint8 and array.shape == (37, 53, channels)
        resized = images.read_image(path, channels=channels, size=(28, 20))
        assert resized.shape == (28, 20, channels)
    if mode in ("L", "RGB", "I;16", "LA", "RGBA"):  # lossless enough to keep the gradient's direction
        array = images.read_image(path, channels=1)[..., 0].astype(int)
        assert array[-1, -1] > array[0, 0] + 100


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black canvas...
    rgba[3:7, 3:7] = [0, 0, 0, 255]  # ...with an opaque black square of ink
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")
    gray = images.read_image(tmp_path / "ink.png", channels=1)[..., 0]
    assert gray[0, 0] == 255 and gray[5, 5] == 0


def test_read_image_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        images.read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not really a picture")
    with pytest.raises(UserError, match="not a readable image"):
        images.read_image(tmp_path / "notes.png")
    with pytest.raises(UserError, match="is a folder"):
        images.read_image(tmp_path)


def _folder(root, classes=("cats", "dogs"), per_class=3, size=(12, 9)):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_gradient(*size)).convert("RGB").save(root / name / f"{i}.png")
    return root


def test_scan_image_folder_skips_and_counts_bad_files(tmp_path):
    root = _folder(tmp_path / "pets")
    (root / "cats" / "readme.txt").write_text("hello")
    (root / "dogs" / "empty.jpg").write_bytes(b"")
    good = (root / "dogs" / "0.png").read_bytes()
    (root / "dogs" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dogs" / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored silently
    Image.fromarray(_gradient(12, 9)).save(root / "cats" / "scan.tiff")
    scan = images.scan_image_folder(root)
    assert scan.class_names == ["cats", "dogs"]
    assert len(scan.paths) == 7 and np.bincount(scan.labels).tolist() == [4, 3]
    assert scan.skipped_count == 3
    assert set(scan.skipped) == {"not an image", "empty file", "corrupt image"}
    assert "3 file(s) skipped" in scan.skipped_summary()
    # For TensorFlow's decoder, TIFF is skipped too, and said so.
    tf_scan = images.scan_image_folder(root, tf_decodable=True)
    assert len(tf_scan.paths) == 6 and any("TIFF" in reason for reason in tf_scan.skipped)

    x, y, _ = images.read_image_folder(root, (28, 28), channels=1)
    assert x.shape == (7, 28, 28, 1) and x.dtype == np.uint8 and y.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        images.scan_image_folder(tmp_path / "nowhere")
    one = _folder(tmp_path / "one", classes=("cats",))
    with pytest.raises(UserError, match=r"1 class sub-folder.*at least 2"):
        images.scan_image_folder(one)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(_gradient(5, 5)).save(flat / "a.png")
    with pytest.raises(UserError, match="found 0 class"):
        images.scan_image_folder(flat)
    with pytest.raises(UserError, match="is a file"):
        images.scan_image_folder(flat / "a.png")
    unreadable = _folder(tmp_path / "bad")
    for path in (unreadable / "dogs").iterdir():
        path.write_text("junk")
    with pytest.raises(UserError, match="no readable image"):
        images.scan_image_folder(unreadable)


def test_load_npz_layouts_and_errors(tmp_path):
    x, y = np.zeros((4, 28, 28), np.uint8), np.arange(4)
    np.savez(tmp_path / "keras.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    np.savez(tmp_path / "pair.npz", x=x, y=y)
    np.savez(tmp_path / "wrong.npz", images=x, labels=y)
    np.savez(tmp_path / "half.npz", x_train=x, y_train=y, x_test=x)
    x_train, y_train, x_test, y_test = images.load_npz(tmp_path / "keras.npz")
    assert x_train.shape == (4, 28, 28) and x_test.shape == (2, 28, 28) and y_test.tolist() == [0, 1]
    assert images.load_npz(tmp_path / "pair.npz")[2] is None
    with pytest.raises(UserError, match="found images, labels"):
        images.load_npz(tmp_path / "wrong.npz")
    with pytest.raises(UserError, match="only one of x_test/y_test"):
        images.load_npz(tmp_path / "half.npz")
    (tmp_path / "text.npz").write_text("no zip here")
    with pytest.raises(UserError, match="not a readable .npz"):
        images.load_npz(tmp_path / "text.npz")


def test_as_image_batch():
    assert images.as_image_batch(np.zeros((2, 5, 5), np.uint8)).shape == (2, 5, 5, 1)
    floats = images.as_image_batch(np.full((1, 3, 3, 1), 0.5, np.float32))
    assert floats.dtype == np.uint8 and floats.max() == 128
    with pytest.raises(UserError, match="expected shape"):
        images.as_image_batch(np.zeros((2, 5), np.uint8))
