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


# ----------------------------------------------------------------------------- awkward inputs, by kind
# Each kind (EXIF orientation, transparency, blank images, folder preprocessing, partial class
# folders, overwriting) is one parametrized test: the shared case of ../shared/cases/robustness
# when it exists (skipped cleanly otherwise) and cases of our own, written here with Pillow. The
# trained models are the committed saved_models/mnist, saved_models/autoencoder and saved_models/gan.
import dataclasses  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CASES = Path(os.environ.get("DLAPPS_SHARED_CASES", REPO.parent / "shared" / "cases")) / "robustness"


def _case(name: str) -> Path:
    """A file or folder of the shared robustness cases; skips the test when they are absent."""
    path = CASES / name
    if not path.exists():
        pytest.skip(f"shared case {path} not found")
    return path


@pytest.fixture(scope="module")
def mnist_model():
    from dlapps import runs

    return runs.load_model(REPO / "saved_models" / "mnist")


@pytest.fixture(scope="module")
def reference_digits(mnist_model):
    """{digit: (MNIST-style uint8 (28, 28), label)}: for each class, the embedded digit that the
    committed model is most sure of, so that our own cases test the reading, not the model."""
    from dlapps.data.digits import embedded_digits

    model, _ = mnist_model
    x, y = embedded_digits()
    probabilities = np.asarray(model.predict(x, verbose=0))
    picked = {}
    for digit in range(10):
        candidates = np.flatnonzero((y == digit) & (probabilities.argmax(axis=1) == digit))
        picked[digit] = x[candidates[np.argmax(probabilities[candidates, digit])], ..., 0]
    return picked


def _top(model, image: np.ndarray) -> int:
    return int(np.asarray(model.predict(image[None], verbose=0))[0].argmax())


def _big(digit: np.ndarray, size=(84, 84)) -> np.ndarray:
    """An MNIST digit (light ink on black) as a larger uint8 ink map (1 = full ink)."""
    return np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.BICUBIC))


def _paper(digit: np.ndarray, size=(84, 84), margin=(10, 30)) -> np.ndarray:
    """Dark ink on white paper, larger and off-centre: what a phone photo of a digit looks like."""
    ink = _big(digit, size)
    canvas = np.zeros((size[1] + margin[0] * 2, size[0] + margin[1] + 5), np.uint8)
    canvas[margin[0]: margin[0] + size[1], margin[1]: margin[1] + size[0]] = ink
    return 255 - canvas


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


# --- EXIF orientation: a file stored sideways reads as every viewer shows it
EXIF_TRANSPOSE = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
"""How a camera stores an upright picture for each EXIF orientation (the inverse of what a viewer applies)."""


@pytest.mark.parametrize("case", ["shared", 6, 8, 3])
def test_exif_orientation_is_applied(case, tmp_path, mnist_model, reference_digits):
    from dlapps.data.digits import read_digit

    model, _ = mnist_model
    if case == "shared":
        rotated, upright, digit = _case("mnist_exif_rotated_7.jpg"), _case("mnist_upright_7.jpg"), 7
        with Image.open(rotated) as stored:
            assert stored.getexif().get(0x0112) == 6  # stored sideways; the tag turns it upright
        assert _corr(images.read_image(rotated, 1), images.read_image(upright, 1)) > 0.95
    else:
        digit = 4  # not symmetric under any rotation
        upright = tmp_path / "upright.png"
        Image.fromarray(_paper(reference_digits[digit])).save(upright)
        exif = Image.Exif()
        exif[0x0112] = case
        rotated = tmp_path / f"orientation_{case}.png"
        Image.open(upright).transpose(EXIF_TRANSPOSE[case]).save(rotated, exif=exif)
        np.testing.assert_array_equal(images.read_image(rotated, 1), images.read_image(upright, 1))
        np.testing.assert_array_equal(images.read_image(rotated, 3), images.read_image(upright, 3))
    assert _top(model, read_digit(rotated)) == digit == _top(model, read_digit(upright))


# --- transparency and modes: the ink stays visible in every mode
def _ink_file(kind: str, digit: np.ndarray, path_stem: Path) -> Path:
    ink = _big(digit)  # 0..255, 255 = full ink
    height, width = ink.shape
    if kind in ("RGBA dark ink", "RGBA light ink", "LA dark ink", "LA light ink"):
        level = 0 if "dark" in kind else 255
        # Transparent pixels carry the ink's own colour: dropping alpha would hide the digit.
        if kind.startswith("RGBA"):
            pixels = np.dstack([np.full_like(ink, level)] * 3 + [ink])
            image = Image.fromarray(pixels, "RGBA")
        else:
            image = Image.fromarray(np.dstack([np.full_like(ink, level), ink]), "LA")
        path = path_stem.with_suffix(".png")
        image.save(path)
    elif kind == "P transparent, white ink":
        indices = (ink > 100).astype(np.uint8)  # 0: transparent background, 1: ink; both white
        image = Image.fromarray(indices, "P")
        image.putpalette([255, 255, 255, 255, 255, 255] + [0] * 762)
        path = path_stem.with_suffix(".png")
        image.save(path, transparency=0)
    elif kind == "RGBA paper with transparent margins":
        pixels = np.zeros((height + 20, width + 20, 4), np.uint8)  # transparent black margins...
        pixels[10:-10, 10:-10, :3] = (255 - ink)[..., None]  # ...around opaque paper with dark ink
        pixels[10:-10, 10:-10, 3] = 255
        path = path_stem.with_suffix(".png")
        Image.fromarray(pixels, "RGBA").save(path)
    elif kind == "1":
        path = path_stem.with_suffix(".bmp")
        Image.fromarray(255 - ink).convert("1").save(path)
    elif kind == "L":
        path = path_stem.with_suffix(".png")
        Image.fromarray(255 - ink).save(path)
    elif kind == "RGB blue on yellow":
        share = ink[..., None].astype(np.float32) / 255
        pixels = (1 - share) * np.array([250, 230, 60], np.float32) + share * np.array([20, 30, 160], np.float32)
        path = path_stem.with_suffix(".jpg")
        Image.fromarray(pixels.round().astype(np.uint8), "RGB").save(path, quality=95)
    elif kind == "I;16":
        path = path_stem.with_suffix(".png")
        Image.fromarray((255 - ink).astype(np.uint16) * 257).save(path)
    else:
        raise AssertionError(kind)
    return path


TRANSPARENCY_CASES = ["RGBA dark ink", "RGBA light ink", "LA dark ink", "LA light ink", "P transparent, white ink",
                      "RGBA paper with transparent margins", "1", "L", "RGB blue on yellow", "I;16"]


@pytest.mark.parametrize("kind", TRANSPARENCY_CASES)
def test_transparency_and_modes_keep_the_ink_visible(kind, tmp_path, mnist_model, reference_digits):
    from dlapps.data.digits import mnist_style, read_digit

    model, _ = mnist_model
    digit = 7
    path = _ink_file(kind, reference_digits[digit], tmp_path / "seven")
    with Image.open(path) as opened:
        assert opened.mode == kind.split()[0].rstrip(",") or kind.startswith("RGB blue")
    read = read_digit(path)
    assert not images.is_blank(read)
    assert read[..., 0].mean() < 128  # light ink on a dark background, as MNIST draws digits
    assert _corr(read, mnist_style(reference_digits[digit][..., None])) > 0.7
    assert _top(model, read) == digit


def test_background_for_transparent_pixels():
    dark_ink = np.zeros((10, 10, 4), np.uint8)
    dark_ink[4:6, 2:8, 3] = 255
    light_ink = dark_ink.copy()
    light_ink[..., :3] = 255
    assert images.background_for(dark_ink) == 255 and images.background_for(light_ink) == 0
    paper = np.full((10, 10, 4), 255, np.uint8)  # white paper covering most of the image...
    paper[0] = 0  # ...with a transparent black top row: the margin becomes paper, not ink
    assert images.background_for(paper) == 255
    assert images.background_for(np.zeros((4, 4, 4), np.uint8)) == 255  # nothing visible: white


# --- blank images: a warning in predict, a skipped and counted file in train/evaluate folders
def _blank_file(kind: str, folder: Path) -> Path:
    if kind == "white PNG":
        path = folder / "white.png"
        Image.new("L", (40, 30), 255).save(path)
    elif kind == "fully transparent RGBA":
        path = folder / "transparent.png"
        Image.new("RGBA", (30, 30), (0, 0, 0, 0)).save(path)
    elif kind == "uniform gray JPEG":
        path = folder / "gray.jpg"
        Image.new("RGB", (50, 50), (120, 120, 120)).save(path, quality=70)
    elif kind == "faint smudge":  # a contrast of 5 gray levels: nothing a digit is made of
        path = folder / "smudge.png"
        pixels = np.full((40, 40), 200, np.uint8)
        pixels[15:25, 15:25] = 195
        Image.fromarray(pixels).save(path)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind", ["white PNG", "fully transparent RGBA", "uniform gray JPEG", "faint smudge"])
def test_blank_image_is_a_warning_in_predict_and_skipped_in_folders(kind, tmp_path, capsys, mnist_model,
                                                                     reference_digits):
    from dlapps.data.digits import load_images
    from dlapps.tasks.mnist import TASK

    model, info = mnist_model
    blank = _blank_file(kind, tmp_path)
    good = tmp_path / "three.png"
    Image.fromarray(_paper(reference_digits[3])).save(good)
    lines = TASK.predict(model, [str(good), str(blank)], info, TASK.config(), {"invert": "auto", "overwrite": False})
    assert "[warning" not in lines[0] and lines[0].split(": ")[1].startswith("3 (")
    assert lines[1].endswith("[warning: blank image, a guess]")
    assert f"{blank}: blank image" in capsys.readouterr().err

    root = tmp_path / "digits"
    for digit in (3, 8):
        (root / str(digit)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_paper(reference_digits[digit], margin=(5 + i, 10 + 5 * i))).save(
                root / str(digit) / f"{i}.png")
    shutil.copy(blank, root / "8" / blank.name)
    splits = load_images(TASK.config(data=str(root), val_fraction=0.0, test_fraction=0.0))
    assert len(splits.x_train) == 6 and np.bincount(splits.y_train).tolist() == [3, 3]
    assert "1 file(s) skipped (1 blank image (no contrast))" in splits.description
    err = capsys.readouterr().err
    assert "1 file(s) skipped" in err and f"8/{blank.name}" in err  # on the console, with its name
    for name in ("0", "1"):  # a class folder with nothing but blank images is an error
        (root / name).mkdir()
        shutil.copy(blank, root / name / blank.name)
    with pytest.raises(UserError, match=r"no usable image.*every image is blank"):
        load_images(TASK.config(data=str(root), val_fraction=0.0, test_fraction=0.0))


# --- train/evaluate read a folder exactly as predict reads its files
def _own_folder(kind: str, root: Path, reference_digits, digits=range(10)) -> Path:
    for digit in digits:
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for i in range(2):
            stem = folder / f"{digit}_{i}"
            if kind == "dark on light PNG, off-centre":
                Image.fromarray(_paper(reference_digits[digit], size=(60 + 8 * i, 60), margin=(4, 20 + 9 * i))
                                ).save(stem.with_suffix(".png"))
            elif kind == "mixed modes: RGB JPEG, RGBA, LA":
                _ink_file(["RGB blue on yellow", "RGBA light ink"][i], reference_digits[digit], stem)
            else:
                raise AssertionError(kind)
    return root


def _predicted_accuracy(model, info, folder: Path) -> tuple[float, int]:
    from dlapps.tasks.mnist import TASK

    files = sorted(p for p in folder.glob("*/*") if p.is_file())
    lines = TASK.predict(model, [str(p) for p in files], info, TASK.config(), {"invert": "auto", "overwrite": False})
    right = [line.split(": ")[1].split(" (")[0] == Path(line.split(": ")[0]).parent.name for line in lines]
    return float(np.mean(right)), len(files)


def _evaluate(task_name: str, folder: Path) -> dict:
    from dlapps import get_task, runs, training

    task = get_task(task_name)
    path = runs.find_model(task.name, str(REPO / "saved_models" / task_name))
    cfg, _ = runs.model_config(task, path, {"data": str(folder)})
    return training.evaluate(task, path, cfg)


@pytest.mark.parametrize("case", ["shared", "dark on light PNG, off-centre", "mixed modes: RGB JPEG, RGBA, LA"])
def test_folder_evaluation_preprocesses_as_predict(case, tmp_path, mnist_model, reference_digits):
    from dlapps.data.digits import load_images, read_digit
    from dlapps.tasks.mnist import TASK

    model, info = mnist_model
    folder = (_case("mnist_folder_dark_on_light") if case == "shared"
              else _own_folder(case, tmp_path / "digits", reference_digits))
    # The very pixels predict gives the model...
    splits = load_images(TASK.config(data=str(folder), val_fraction=0.0, test_fraction=0.0))
    files = [p for name in splits.class_names for p in sorted((folder / name).iterdir())]
    np.testing.assert_array_equal(splits.x_train, np.stack([read_digit(p) for p in files]))
    # ...so the same accuracy from `dlapps evaluate` (the model's saved config) as from predict.
    predicted, n = _predicted_accuracy(model, info, folder)
    metrics = _evaluate("mnist", folder)
    assert metrics["n"] == n == 20
    assert metrics["accuracy"] == pytest.approx(predicted) and predicted >= 0.9


# --- class folders mapped to the model's class names
@pytest.mark.parametrize("case", ["shared 3 and 7", "shared 2 and 7, autoencoder", "only 5",
                                  "1, 4 and 9 in mixed modes", "unknown folder name"])
def test_partial_class_folders_are_scored_against_the_models_classes(case, tmp_path, mnist_model,
                                                                      reference_digits):
    model, info = mnist_model
    root = tmp_path / "digits"
    if case.startswith("shared"):
        digits = [d for d in "0123456789" if d in case.split(",")[0]]
        for digit in digits:
            shutil.copytree(_case("mnist_folder_dark_on_light") / digit, root / digit)
    elif case == "only 5":
        _own_folder("dark on light PNG, off-centre", root, reference_digits, digits=[5])
    elif case == "1, 4 and 9 in mixed modes":
        _own_folder("mixed modes: RGB JPEG, RGBA, LA", root, reference_digits, digits=[1, 4, 9])
    else:
        _own_folder("dark on light PNG, off-centre", root, reference_digits, digits=[3])
        shutil.copytree(root / "3", root / "seven")
        with pytest.raises(UserError, match=r"class folder\(s\) seven are not classes of this model.*"
                                            r"0, 1, 2, 3, 4, 5, 6, 7, 8, 9"):
            _evaluate("mnist", root)
        return
    if case.endswith("autoencoder"):  # the committed autoencoder left class 2 out: the anomaly AUC needs it
        metrics = _evaluate("autoencoder", root)
        assert metrics["n"] == 4 and "anomaly_auc" in metrics and metrics["mse_anomaly"] > 0
        return
    predicted, n = _predicted_accuracy(model, info, root)
    metrics = _evaluate("mnist", root)
    assert metrics["n"] == n and metrics["accuracy"] == pytest.approx(predicted) and predicted >= 0.75
    present = sorted(int(p.name) for p in root.iterdir())
    assert all(metrics[f"recall_{d}"] > 0 for d in present)  # scored as their own classes, not as 0, 1, ...


# --- nothing is overwritten without --overwrite
def _digest(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.parametrize("case", ["shared autoencoder", "autoencoder", "autoencoder, second input's output exists",
                                  "gan"])
def test_nothing_is_overwritten_without_overwrite(case, tmp_path, reference_digits):
    from dlapps import get_task, runs

    task = get_task("gan" if case == "gan" else "autoencoder")
    model, info = runs.load_model(REPO / "saved_models" / task.name)
    options = dict(task.predict_options, overwrite=False)
    if case == "shared autoencoder":
        source = _case("ae_overwrite/digit_7.png")
        existing = source.with_name("digit_7.reconstruction.png")
        before = _digest(existing)
        with pytest.raises(UserError, match="exists already; pass --overwrite"):
            task.predict(model, [str(source)], info, task.config(), options)
        # As a new user runs it: exit 2, one line naming --overwrite, no traceback, nothing written.
        done = subprocess.run([sys.executable, "-m", "dlapps", "predict", "autoencoder", str(source)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "--overwrite" in done.stderr and "Traceback" not in done.stderr
        assert _digest(existing) == before
        return
    if case == "gan":
        target = tmp_path / "samples.png"
        Image.new("L", (5, 5), 17).save(target)
        before = _digest(target)
        with pytest.raises(UserError, match="exists already; pass --overwrite"):
            task.predict(model, [str(target)], info, task.config(), dict(options, n=4))
        assert _digest(target) == before
        lines = task.predict(model, [str(target)], info, task.config(), dict(options, n=4, overwrite=True))
        assert "replaced" in lines[0] and _digest(target) != before
        return
    first, second = tmp_path / "seven.png", tmp_path / "three.png"
    Image.fromarray(_paper(reference_digits[7])).save(first)
    Image.fromarray(_paper(reference_digits[3])).save(second)
    existing = (second if "second" in case else first).with_name(
        f"{(second if 'second' in case else first).stem}.reconstruction.png")
    Image.new("L", (28, 28), 99).save(existing)
    before = _digest(existing)
    inputs = [str(first), str(second)]
    with pytest.raises(UserError, match=f"{existing.name} exists already; pass --overwrite"):
        task.predict(model, inputs, info, task.config(), options)
    assert _digest(existing) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["seven.png", "three.png", existing.name])  # nothing
    lines = task.predict(model, inputs, info, task.config(), dict(options, overwrite=True))
    assert _digest(existing) != before and sum("replaced the old file" in line for line in lines) == 1


def test_imagenet_folder_reads_as_predict(tmp_path, reference_digits, capsys):
    """The imagenet task's folders go through `load_image`, the reader predict uses: EXIF orientation,
    transparency, blank files skipped and reported, the same pixels in tf.data as in predict."""
    from dlapps import config
    from dlapps.tasks.imagenet import TASK
    from dlapps.tasks.imagenet.data import load_image

    root = tmp_path / "pictures"
    for digit in (3, 8):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        Image.fromarray(_paper(reference_digits[digit])).save(folder / "paper.png")
        _ink_file("RGBA light ink", reference_digits[digit], folder / "transparent")
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(_paper(reference_digits[digit])).transpose(EXIF_TRANSPOSE[6]).save(
            folder / "sideways.png", exif=exif)
    shutil.copy(_blank_file("fully transparent RGBA", tmp_path), root / "8" / "empty_canvas.png")
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), data=str(root), source="file",
                              val_fraction=0.0, test_fraction=0.0)
    data = TASK.load_data(cfg)
    assert "1 file(s) skipped (1 blank image (no contrast))" in data.info["source_description"]
    assert "8/empty_canvas.png" in capsys.readouterr().err  # reported on the console, by name
    shape = data.info["image_shape"]
    files = [p for name in ("3", "8") for p in sorted((root / name).iterdir()) if p.name != "empty_canvas.png"]
    pairs = list(data.train.as_numpy_iterator())
    assert len(pairs) == len(files) == 6
    for (image, label), path in zip(pairs, files):
        np.testing.assert_array_equal(image, load_image(str(path), shape))
        assert label == ["3", "8"].index(path.parent.name)
    np.testing.assert_array_equal(load_image(str(root / "3" / "sideways.png"), shape),
                                  load_image(str(root / "3" / "paper.png"), shape))
