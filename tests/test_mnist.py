"""The mnist task: it learns, saves raw-uint8 models, reads every source offline, predicts image files."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from PIL import Image

import dlapps
from dlapps import config, training
from dlapps.errors import UserError
from dlapps.runtime import Runtime
from dlapps.tasks.mnist import FEATURES_LAYER, feature_extractor, load_images
from dlapps.tasks.mnist.data import Config, embedded_digits
from dlapps.tasks.mnist.model import mnist_style

TASK = dlapps.get_task("mnist")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One smoke-profile run on the embedded digits, shared by the tests below."""
    keras.utils.set_random_seed(7)
    root = tmp_path_factory.mktemp("mnist")
    cfg = config.resolve(TASK, "smoke")
    return training.train(TASK, cfg, runs_root=root / "runs", quiet=True)


def test_smoke_training_learns_on_embedded_digits(trained):
    history, metrics = trained.history, trained.metrics
    assert history["loss"][-1] < history["loss"][0]
    assert metrics["test"]["accuracy"] > 0.6  # chance is 0.1
    assert 0 <= metrics["test"]["precision_3"] <= 1 and "recall_9" in metrics["test"]
    plots = trained.run_dir / "plots"
    assert (plots / "confusion_matrix.png").exists() and (plots / "worst_mistakes.png").exists()


def test_saved_model_takes_raw_uint8_and_round_trips(trained):
    model, info = training.load_model(trained.run_dir / "model.keras")
    assert model.input.dtype == "uint8" and info["class_names"][3] == "3"
    images, _ = embedded_digits()
    batch = images[:16]
    np.testing.assert_allclose(model.predict_on_batch(batch), trained.model.predict_on_batch(batch),
                               rtol=1e-5, atol=1e-6)
    features = feature_extractor(model).predict_on_batch(batch)
    assert features.shape == (16, model.get_layer(FEATURES_LAYER).units)


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


def _as_photo(digit: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """An MNIST digit as a user would photograph it: dark ink on light paper, any size, margins."""
    ink = Image.fromarray(255 - digit[..., 0]).resize((size[0] // 2, size[1] // 2), Image.Resampling.BICUBIC)
    paper = Image.new("L", size, 235)
    paper.paste(ink, (size[0] // 5, size[1] // 3))
    return paper


def test_mnist_style_recovers_a_digit_from_a_photo():
    images, _ = embedded_digits()
    correlations = []
    for digit in images[:40]:
        restored = mnist_style(np.asarray(_as_photo(digit, (97, 61)))[..., None])
        assert restored.shape == (28, 28, 1) and restored.dtype == np.uint8
        correlations.append(np.corrcoef(restored.ravel().astype(float), digit.ravel().astype(float))[0, 1])
        # An image already in MNIST polarity (dark border) is not inverted by "auto".
        assert np.corrcoef(mnist_style(digit).ravel().astype(float), digit.ravel().astype(float))[0, 1] > 0.5
    # Inverted, rescaled, off-centre on grey paper -> back to (nearly) the original digit;
    # recentring by centre of mass shifts some digits by a pixel, hence not 1.0.
    assert np.mean(correlations) > 0.7 and np.min(correlations) > 0.5
    assert mnist_style(np.full((30, 30, 1), 200, np.uint8)).max() == 0  # blank paper -> blank image


def test_predict_image_files_of_odd_sizes_and_modes(trained, tmp_path):
    images, labels = embedded_digits()
    picked = list(range(1500, 1530))  # test-like images; the model's own answer on the array is the reference
    paths = []
    for n, i in enumerate(picked):
        photo = _as_photo(images[i], (57 + 7 * n, 43 + 5 * n))
        mode, suffix = [("L", "png"), ("RGB", "jpg"), ("RGBA", "png"), ("P", "gif"), ("RGB", "bmp")][n % 5]
        path = tmp_path / f"digit_{n}.{suffix}"
        photo.convert(mode).save(path, quality=95) if suffix == "jpg" else photo.convert(mode).save(path)
        paths.append(str(path))
    model, info = training.load_model(trained.run_dir)
    cfg = config.resolve(TASK, "smoke")
    lines = TASK.predict(model, paths, info, cfg)
    assert len(lines) == len(paths) and lines[0].startswith(paths[0] + ": ")
    top = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    probabilities = [float(line.split(" (")[1].split(")")[0]) for line in lines]
    assert all(0 <= p <= 1 for p in probabilities) and lines[0].count("(") == 3
    direct = model.predict(images[picked], verbose=0).argmax(axis=1)
    assert np.mean(np.array(top) == direct) >= 0.7
    assert np.mean(np.array(top) == labels[picked]) >= 0.5  # chance 0.1
    with pytest.raises(UserError, match="not a readable image"):
        (tmp_path / "x.png").write_text("text")
        TASK.predict(model, [str(tmp_path / "x.png")], info, cfg)
    with pytest.raises(UserError, match="give one or more image files"):
        TASK.predict(model, [], info, cfg)


def test_mirrored_strategy_on_two_logical_cpus(runs):
    # A smaller training split keeps this quick: multi-replica steps on CPU are slow.
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), epochs=3, batch_size=32, learning_rate=0.01,
                              val_fraction=0.2, test_fraction=0.4)
    result = training.train(TASK, cfg, Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2 and result.metrics["global_batch_size"] == 2 * cfg.batch_size
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert np.isfinite(result.metrics["test"]["loss"]) and result.metrics["test"]["accuracy"] > 0.2
