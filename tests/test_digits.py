"""dlapps.data.digits: the digit sources shared by the image tasks (embedded, tfds, keras, file), offline."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

import dlapps
from dlapps.data.digits import embedded_digits, load_images
from dlapps.errors import UserError
from dlapps.tasks.mnist.config import Config  # a config with every field load_images reads

TASK = dlapps.get_task("mnist")


def test_embedded_digits_look_like_mnist():
    images, labels = embedded_digits()
    assert images.shape == (1797, 28, 28, 1) and images.dtype == np.uint8 and labels.max() == 9
    assert images[:, :4].max() == 0 and images[:, 24:].max() == 0  # the 4-pixel MNIST border
    assert images.max() == 255


def test_splits_are_stratified_and_whole_file_mode(tmp_path):
    splits = load_images(Config(val_fraction=0.2, test_fraction=0.1))
    total = sum(len(a) for a in (splits.x_train, splits.x_val, splits.x_test))
    assert total == 1797 and abs(len(splits.x_val) - 359) <= 1
    assert np.bincount(splits.y_val).min() > 25  # every digit present in validation
    whole = load_images(Config(val_fraction=0.0, test_fraction=0.0))
    assert len(whole.x_train) == 1797 and len(whole.x_val) == 0 == len(whole.x_test)


def test_local_npz_both_layouts(tmp_path):
    images, labels = embedded_digits()
    np.savez(tmp_path / "keras.npz", x_train=images[:300, ..., 0], y_train=labels[:300],
             x_test=images[300:400, ..., 0], y_test=labels[300:400])
    np.savez(tmp_path / "pair.npz", x=images[:200], y=labels[:200].astype(np.uint8))
    splits = load_images(Config(data=str(tmp_path / "keras.npz")))
    assert len(splits.x_test) == 100 and len(splits.x_train) + len(splits.x_val) == 300  # official test kept
    assert splits.x_train.shape[1:] == (28, 28, 1)
    splits = load_images(Config(data=str(tmp_path / "pair.npz"), val_fraction=0.25, test_fraction=0.25))
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (100, 50, 50)
    assert splits.y_train.dtype == np.int64


def test_image_folder_source_any_size_and_mode(tmp_path):
    images, labels = embedded_digits()
    root = tmp_path / "digits"
    for i in range(60):
        folder = root / f"class_{labels[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(images[i, ..., 0]).resize((40 + i, 31 + i))
        picture.convert("RGB" if i % 2 else "L").save(folder / f"{i}.{'jpg' if i % 3 else 'png'}")
    (root / "class_0" / "notes.txt").write_text("not an image")
    cfg = Config(data=str(root), val_fraction=0.0, test_fraction=0.0)
    splits = load_images(cfg)
    assert splits.x_train.shape == (60, 28, 28, 1) and splits.class_names[0] == "class_0"
    assert "1 file(s) skipped (1 not an image)" in splits.description


def test_tfds_source_offline_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):
        splits = load_images(Config(source="tfds", val_fraction=0.2))
        data = TASK.load_data(Config(source="tfds", dataset="fashion_mnist"))
    assert splits.x_train.shape == (24, 28, 28, 1) and splits.x_test.shape == (30, 28, 28, 1)
    assert splits.x_train.dtype == np.uint8 and "tfds mnist" in splits.description
    assert data.info["class_names"][9] == "Ankle boot"
    image, label = next(iter(data.train))
    assert image.dtype == "uint8" and image.shape == (28, 28, 1) and label.dtype == "int64"


def test_keras_datasets_source_offline_with_stubbed_download(tmp_path, monkeypatch):
    import keras.src.datasets.mnist as keras_mnist

    rng = np.random.default_rng(0)
    fake = tmp_path / "mnist.npz"
    np.savez(fake, x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), y_train=np.arange(50) % 10,
             x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=np.arange(20) % 10)
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append(origin)
        return str(fake)

    # keras.datasets.mnist calls the get_file it imported; stub both names (the public one too).
    monkeypatch.setattr(keras_mnist, "get_file", get_file)
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    splits = load_images(Config(source="keras", val_fraction=0.2))
    assert calls and calls[0].endswith("mnist.npz")
    assert splits.x_test.shape == (20, 28, 28, 1) and len(splits.x_train) == 40
    assert splits.description == "keras.datasets.mnist (downloaded)"

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras_mnist, "get_file", offline)
    with pytest.raises(UserError, match="cannot download keras.datasets.mnist.*offline"):
        load_images(Config(source="keras"))


@pytest.mark.parametrize("overrides,message", [
    ({"source": "mnist_org"}, "unknown source"),
    ({"dataset": "cifar10"}, "unknown dataset"),
    ({"dataset": "fashion_mnist"}, "no embedded copy"),
    ({"source": "file"}, "needs --data"),
    ({"data": "/nowhere/digits.npz"}, "not found"),
    ({"val_fraction": 0.7, "test_fraction": 0.5}, "sum to less than 1"),
])
def test_bad_configuration(overrides, message):
    with pytest.raises(UserError, match=message):
        load_images(Config(**overrides))


def test_bad_files(tmp_path):
    images, labels = embedded_digits()
    np.savez(tmp_path / "mismatch.npz", x=images[:10], y=labels[:9])
    np.savez(tmp_path / "one_class.npz", x=images[:10], y=np.zeros(10, int))
    np.savez(tmp_path / "float_labels.npz", x=images[:10], y=np.linspace(0, 1, 10))
    np.savez(tmp_path / "flat.npz", x=images[:10].reshape(10, -1), y=labels[:10])
    (tmp_path / "digits.csv").write_text("a,b\n1,2\n")
    for name, message in [("mismatch.npz", "10 images but 9 labels"), ("one_class.npz", "same label"),
                          ("float_labels.npz", "labels must be integers"), ("flat.npz", "expected shape"),
                          ("digits.csv", "expected a .npz file")]:
        with pytest.raises(UserError, match=message):
            load_images(Config(data=str(tmp_path / name)))
