"""The mnist task: it learns, saves raw-uint8 models, predicts image files (its sources: test_digits.py)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from PIL import Image

import dlapps
from dlapps import config, training
from dlapps.data.digits import embedded_digits, mnist_style
from dlapps.errors import UserError
from dlapps.runs import load_model
from dlapps.runtime import Runtime
from dlapps.tasks.mnist import FEATURES_LAYER, feature_extractor

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
    model, info = load_model(trained.run_dir / "model.keras")
    assert model.input.dtype == "uint8" and info["class_names"][3] == "3"
    images, _ = embedded_digits()
    batch = images[:16]
    np.testing.assert_allclose(model.predict_on_batch(batch), trained.model.predict_on_batch(batch),
                               rtol=1e-5, atol=1e-6)
    features = feature_extractor(model).predict_on_batch(batch)
    assert features.shape == (16, model.get_layer(FEATURES_LAYER).units)


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
    model, info = load_model(trained.run_dir)
    cfg = config.resolve(TASK, "smoke")
    options = dict(TASK.predict_options)
    lines = TASK.predict(model, paths, info, cfg, options)
    assert len(lines) == len(paths) and lines[0].startswith(paths[0] + ": ")
    top = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    probabilities = [float(line.split(" (")[1].split(")")[0]) for line in lines]
    assert all(0 <= p <= 1 for p in probabilities) and lines[0].count("(") == 3
    direct = model.predict(images[picked], verbose=0).argmax(axis=1)
    assert np.mean(np.array(top) == direct) >= 0.7
    assert np.mean(np.array(top) == labels[picked]) >= 0.5  # chance 0.1
    with pytest.raises(UserError, match="not a readable image"):
        (tmp_path / "x.png").write_text("text")
        TASK.predict(model, [str(tmp_path / "x.png")], info, cfg, options)
    with pytest.raises(UserError, match="give one or more image files"):
        TASK.predict(model, [], info, cfg, options)


def test_mirrored_strategy_on_two_logical_cpus(runs):
    # A smaller training split keeps this quick: multi-replica steps on CPU are slow.
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), epochs=3, batch_size=32, learning_rate=0.01,
                              val_fraction=0.2, test_fraction=0.4)
    result = training.train(TASK, cfg, Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2 and result.metrics["global_batch_size"] == 2 * cfg.batch_size
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert np.isfinite(result.metrics["test"]["loss"]) and result.metrics["test"]["accuracy"] > 0.2


def test_training_batches_are_augmented_in_the_pipeline_as_raw_uint8():
    """Rotation, shift and zoom happen in tf.data: training sees changed uint8 images, labels kept."""
    from dlapps.data.pipeline import fit_datasets

    cfg = config.resolve(TASK, "smoke")
    data = TASK.load_data(cfg)
    raw = {image.tobytes() for image, _ in data.train.as_numpy_iterator()}
    train, _ = fit_datasets(data, cfg, 64)
    images, labels = (np.concatenate(parts) for parts in zip(*train.as_numpy_iterator()))
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
    assert sorted(labels) == sorted(label for _, label in data.train.as_numpy_iterator())
    assert np.mean([image.tobytes() in raw for image in images]) < 0.2

    epochs = []
    for _ in range(2):  # as in a run: the seed set, then the data loaded; the draws come in a fixed order
        keras.utils.set_random_seed(5)
        train, _ = fit_datasets(TASK.load_data(cfg), cfg, 64)
        epochs.append([np.concatenate([x for x, _ in train.as_numpy_iterator()]) for _ in range(2)])
    assert np.array_equal(epochs[0][0], epochs[1][0]) and np.array_equal(epochs[0][1], epochs[1][1])
    assert not np.array_equal(epochs[0][0], epochs[0][1])  # every epoch draws anew

    off = dataclasses.replace(cfg, augment=False)
    data_off = TASK.load_data(off)
    assert data_off.augment is None
    train_off, _ = fit_datasets(data_off, off, 64)
    assert all(image.tobytes() in raw for image, _ in train_off.unbatch().as_numpy_iterator())


def test_the_model_holds_no_random_layers_so_training_compiles_with_xla(runs):
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), epochs=1)
    result = training.train(TASK, cfg, Runtime(jit=True), **runs)
    assert result.model.jit_compile  # Keras turns XLA off (with a warning) for a model with random layers
    assert np.isfinite(result.history["loss"][0])


def test_elastic_distortion_moves_each_pixel_by_its_own_smooth_field_per_image_and_axis():
    """Images whose two channels are the x and y coordinates: bilinear resampling of a linear ramp is
    exact, so inside the frame the output is where each pixel was read from, i.e. the field itself."""
    from dlapps.tasks.mnist.data import elastic_distortion

    keras.utils.set_random_seed(3)
    ys, xs = np.meshgrid(np.arange(28.0), np.arange(28.0), indexing="ij")
    ramps = np.repeat(np.stack([xs, ys], -1)[None].astype("float32"), 8, axis=0)  # 8 identical images
    assert np.array_equal(np.asarray(elastic_distortion(ramps, 0.0, 4.0)), ramps)
    out = np.asarray(elastic_distortion(ramps, 3.0, 4.0))
    assert out.shape == ramps.shape and out.dtype == np.float32
    inner = (slice(None), slice(6, 22), slice(6, 22))
    dx = (out[..., 0] - ramps[..., 0])[inner]
    dy = (out[..., 1] - ramps[..., 1])[inner]
    assert 0.05 < np.abs(dx).mean() < 3 and 0.05 < np.abs(dy).mean() < 3  # moved, by at most alpha pixels
    assert not np.allclose(dx, dy, atol=0.05)  # one field per axis
    assert not np.allclose(dx[0], dx[1], atol=0.05)  # one field per image
    assert np.abs(np.diff(dx, axis=2)).mean() < 0.5 * np.abs(dx).mean()  # smooth: neighbours move alike

    blank = np.full((2, 28, 28, 1), 100.0, np.float32)  # the weights of the four neighbours sum to 1
    assert np.allclose(np.asarray(elastic_distortion(blank, 2.0, 4.0))[:, 5:23, 5:23], 100.0, atol=1e-3)


def test_stroke_width_thickens_or_thins_each_image_by_its_own_draw():
    from dlapps.tasks.mnist.data import stroke_width

    bar = np.zeros((64, 28, 28, 1), np.float32)
    bar[:, 8:20, 12:15] = 200.0  # a vertical stroke 3 pixels wide
    assert np.array_equal(np.asarray(stroke_width(bar, 0.0)), bar)
    keras.utils.set_random_seed(2)
    out = np.asarray(stroke_width(bar, 1.0))
    assert out.shape == bar.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 200.0
    ink = out.sum(axis=(1, 2, 3)) / bar[0].sum()  # > 1: thicker, < 1: thinner
    assert ink.max() > 1.3 and ink.min() < 0.7 and len(np.unique(np.round(ink, 3))) > 32
    thick = out[np.argmax(ink), ..., 0]
    assert thick[14, 11] > 0 and thick[14, 15] > 0 and thick[14, 10] == 0  # one pixel wider on each side
    thin = out[np.argmin(ink), ..., 0]
    assert thin[14, 13] == 200.0 and thin[14, 12] < 200.0 and thin[14, 14] < 200.0  # the centre column stays


def test_negative_augmentation_amounts_are_one_line_errors():
    from dlapps.tasks.mnist.data import augmentation

    with pytest.raises(UserError, match="stroke_width=1.5"):
        augmentation(dataclasses.replace(config.resolve(TASK, "smoke"), stroke_width=1.5))
    for key, value in (("rotation", -0.1), ("elastic_alpha", -1.0), ("elastic_sigma", 0.0), ("stroke_width", -0.2)):
        with pytest.raises(UserError, match=key):
            augmentation(dataclasses.replace(config.resolve(TASK, "smoke"), **{key: value}))
