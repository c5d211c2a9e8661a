"""The autoencoder task: learning, the encoder/decoder sub-models, VAE, denoising, anomaly AUC, predict."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest
from PIL import Image

import dlapps
from dlapps import config, training
from dlapps.data.pipeline import batched
from dlapps.errors import UserError
from dlapps.runs import load_model
from dlapps.runtime import Runtime
from dlapps.tasks.autoencoder.model import build_model, decoder_of, encoder_of

TASK = dlapps.get_task("autoencoder")
INFO = {"image_shape": [28, 28, 1]}


def smoke_config(**overrides):
    return dataclasses.replace(config.resolve(TASK, "smoke"), **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke conv autoencoder trained without digit 3 (anomaly detection on the test split)."""
    keras.utils.set_random_seed(1234)
    root = tmp_path_factory.mktemp("autoencoder")
    cfg = smoke_config(epochs=4, anomaly_class=3)
    return training.train(TASK, cfg, runs_root=root / "runs", saved_models_root=root / "saved", quiet=True), cfg


def test_smoke_training_learns_to_reconstruct(trained):
    result, cfg = trained
    history, test = result.history, result.metrics["test"]
    assert history["val_mse"][-1] < 0.8 * history["val_mse"][0]
    # Far better than the best constant guess, the mean training image.
    train_images = np.concatenate([x["image"] for x, _ in batched(result.data.train, 512).as_numpy_iterator()])
    test_clean = np.concatenate([y for _, y in batched(result.data.test, 512).as_numpy_iterator()])
    mean_image_mse = float(np.mean((test_clean - train_images.mean(axis=0) / 255.0) ** 2))
    assert test["mse"] < 0.6 * mean_image_mse
    # The left-out digit reconstructs worse than the trained ones.
    assert 0.5 < test["anomaly_auc"] <= 1.0 and test["mse_anomaly"] > test["mse_normal"]
    for name in ("reconstructions.png", "latent_space.png", "anomaly_scores.png"):
        assert (result.run_dir / "plots" / name).exists(), name


def test_anomaly_class_is_left_out_of_training_only(trained):
    result, cfg = trained

    def labels(dataset):
        return np.concatenate([x["label"] for x, _ in batched(dataset, 512).as_numpy_iterator()])

    assert cfg.anomaly_class not in labels(result.data.train)
    assert cfg.anomaly_class not in labels(result.data.val)
    assert cfg.anomaly_class in labels(result.data.test)
    # Evaluating a whole file (both fractions 0) keeps every image, the left-out class included.
    whole = TASK.load_data(smoke_config(anomaly_class=3, val_fraction=0.0, test_fraction=0.0))
    assert cfg.anomaly_class in labels(whole.train) and len(labels(whole.train)) == 1797
    with pytest.raises(UserError, match="anomaly_class=11"):
        TASK.load_data(smoke_config(anomaly_class=11))


def test_encoder_and_decoder_save_and_load_on_their_own(trained, tmp_path):
    result, cfg = trained
    images = np.concatenate([x["image"] for x, _ in batched(result.data.test, 16).take(1).as_numpy_iterator()])
    encoder, decoder = encoder_of(result.model), decoder_of(result.model)
    codes = np.asarray(encoder(images))
    assert codes.shape == (16, cfg.code_dim)
    # The autoencoder is exactly their composition.
    np.testing.assert_allclose(np.asarray(decoder(codes)), np.asarray(result.model(images)), atol=1e-6)
    encoder.save(tmp_path / "encoder.keras")
    decoder.save(tmp_path / "decoder.keras")
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "encoder.keras")(images)), codes, atol=1e-6)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "decoder.keras")(codes)),
                               np.asarray(decoder(codes)), atol=1e-6)
    loaded, info = load_model(result.run_dir / "model.keras")
    assert info["anomaly_class"] == 3
    np.testing.assert_allclose(np.asarray(encoder_of(loaded)(images)), codes, atol=1e-6)


def test_vae_samples_in_training_and_adds_the_kl_term(tmp_path):
    cfg = smoke_config(variant="vae", architecture="dense", units=64)
    model = build_model(cfg, INFO)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype(np.float32)
    encoder = encoder_of(model)
    # Inference: the mean code (deterministic); training: a sample around it.
    np.testing.assert_array_equal(np.asarray(encoder(images)), np.asarray(encoder(images)))
    assert not np.allclose(np.asarray(encoder(images, training=True)), np.asarray(encoder(images)))
    model(images, training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) > 0  # the KL divergence
    # The sampling layer is serializable: the VAE saves and loads with its KL weight.
    model.save(tmp_path / "vae.keras")
    loaded = load_model(tmp_path / "vae.keras")[0]
    assert encoder_of(loaded).get_layer("code").kl_weight == pytest.approx(cfg.kl_weight / 784)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), atol=1e-6)


def test_denoising_noise_is_added_in_the_pipeline():
    cfg = smoke_config(noise=0.3)
    data = TASK.load_data(cfg)

    def first(dataset):
        inputs, clean = next(iter(dataset.take(1)))
        return np.asarray(inputs["image"]), np.asarray(clean)

    noisy, clean = first(data.train)
    assert noisy.dtype == np.float32 and 0 <= noisy.min() and noisy.max() <= 255
    assert 0.1 < np.std(noisy / 255.0 - clean) < 0.35
    assert not np.array_equal(first(data.train)[0], noisy)  # a fresh draw on every pass
    np.testing.assert_array_equal(first(data.val)[0], first(data.val)[0])  # validation noise is fixed


def test_predict_writes_the_reconstruction_next_to_the_input(trained, tmp_path):
    result, cfg = trained
    digit = np.concatenate([x["image"] for x, _ in batched(result.data.test, 1).take(1).as_numpy_iterator()])
    # Dark ink on white paper at another size, as a user would draw it: predict brings it to MNIST style.
    Image.fromarray(255 - digit[0, ..., 0].astype(np.uint8)).resize((56, 56)).save(tmp_path / "digit.png")
    options = dict(TASK.predict_options)
    lines = TASK.predict(result.model, [str(tmp_path / "digit.png")], result.data.info, cfg, options)
    written = tmp_path / "digit.reconstruction.png"
    assert written.exists() and "digit.reconstruction.png" in lines[0]
    assert np.asarray(Image.open(written)).shape == (28, 28)

    # Two files at once: each PNG holds the model's own reconstruction of that file, pixel for pixel.
    from dlapps.data.digits import read_digits

    others = np.concatenate([x["image"] for x, _ in batched(result.data.test, 1).skip(1).take(2).as_numpy_iterator()])
    paths = []
    for n, image in enumerate(others):
        paths.append(str(tmp_path / f"other{n}.png"))
        Image.fromarray(image[..., 0].astype(np.uint8)).save(paths[-1])
    TASK.predict(result.model, paths, result.data.info, cfg, options)
    images, _ = read_digits(paths, options["invert"])
    expected = np.round(np.asarray(result.model.predict_on_batch(images.astype(np.float32)))[..., 0] * 255)
    for n in range(2):
        pixels = np.asarray(Image.open(tmp_path / f"other{n}.reconstruction.png")).astype(float)
        assert np.abs(pixels - expected[n]).max() <= 1.0, n  # the reconstruction, not the input
        assert np.abs(pixels - images[n, ..., 0]).mean() > 5.0
    assert np.abs(expected[0] - expected[1]).mean() > 5.0  # two different digits: a mix-up would show
    with pytest.raises(UserError, match="image files"):
        TASK.predict(result.model, [], result.data.info, cfg, options)
    with pytest.raises(UserError, match="not found"):
        TASK.predict(result.model, [str(tmp_path / "missing.png")], result.data.info, cfg, options)


def test_bad_choices_are_user_errors():
    with pytest.raises(UserError, match="architecture"):
        build_model(smoke_config(architecture="rnn"), INFO)
    with pytest.raises(UserError, match="variant"):
        build_model(smoke_config(variant="gan"), INFO)
    with pytest.raises(UserError, match="loss"):
        build_model(smoke_config(loss="l1"), INFO)


def test_mirrored_strategy_on_two_logical_cpus(runs):
    result = training.train(TASK, smoke_config(epochs=1, variant="vae", noise=0.2),
                            Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2
    assert all(math.isfinite(v) for v in result.history["loss"])


def test_saved_model_meets_the_quality_bar(shared_data):
    from pathlib import Path

    saved = Path(__file__).resolve().parents[1] / "saved_models" / "autoencoder"
    if not (saved / "model.keras").exists():
        pytest.skip("no saved autoencoder (train one with the full profile and --save)")
    cfg = config.resolve(TASK, "full", {"data": str(shared_data / "mnist-sample" / "mnist_sample.npz")})
    model, info = load_model(saved)
    data = TASK.load_data(cfg)
    val = TASK.evaluate(model, dataclasses.replace(data, test=data.val, info={**data.info, **info}), cfg)
    assert val["mse"] <= 0.01  # the bar: per-pixel MSE on the validation split
    test = TASK.evaluate(model, dataclasses.replace(data, info={**data.info, **info}), cfg)
    assert test["anomaly_auc"] > 0.8


def test_dense_plain_autoencoder_with_mse_loss():
    """architecture=dense, variant=ae, loss=mse: no convolution, no sampling, and the loss it minimises is the MSE."""
    cfg = smoke_config(architecture="dense", variant="ae", loss="mse", units=32, code_dim=8)
    model = build_model(cfg, INFO)

    def all_layers(layer):
        for inner in getattr(layer, "layers", []):
            yield inner
            yield from all_layers(inner)

    kinds = {type(layer).__name__ for layer in all_layers(model)}
    assert "Dense" in kinds and not {"Conv2D", "Conv2DTranspose", "VAESampling"} & kinds, kinds
    images = np.random.default_rng(0).integers(0, 256, size=(16, 28, 28, 1)).astype("float32")
    clean = images / 255.0
    scores = model.evaluate(images, clean, batch_size=16, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(scores["mse"], rel=1e-5) and abs(scores["loss"] - scores["bce"]) > 0.1
    first = model.train_on_batch(images, clean, return_dict=True)["loss"]
    for _ in range(5):
        last = model.train_on_batch(images, clean, return_dict=True)["loss"]
    assert last < first
