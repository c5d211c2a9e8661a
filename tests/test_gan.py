"""The gan task: the custom train_step, saving, distribution, resuming, and the classifier FID."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest

import dlapps
from dlapps import config, training
from dlapps.data.digits import embedded_digits
from dlapps.errors import UserError
from dlapps.runs import load_model
from dlapps.runtime import Runtime
from dlapps.tasks.gan import metrics as gan_metrics
from dlapps.tasks.gan.model import build_model, generate, predict

TASK = dlapps.get_task("gan")


def smoke_config(**overrides):
    return dataclasses.replace(config.resolve(TASK, "smoke"), **overrides)


def options(**overrides):
    """predict's options: the task's defaults with `overrides`."""
    return {**TASK.predict_options, **overrides}


@pytest.fixture(scope="module")
def digits():
    images, labels = embedded_digits()
    return images, labels


@pytest.fixture(scope="module")
def classifier_path(digits, tmp_path_factory):
    """A small digit classifier with a 'features' layer, trained here on the embedded digits."""
    keras.utils.set_random_seed(7)
    images, labels = digits
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu", name="features")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(images, labels, epochs=6, batch_size=64, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    path = tmp_path_factory.mktemp("classifier") / "model.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def trained(classifier_path, tmp_path_factory):
    """One smoke-size GAN trained on the embedded digits, evaluated with the test classifier."""
    keras.utils.set_random_seed(1234)
    root = tmp_path_factory.mktemp("gan")
    cfg = smoke_config(epochs=6, classifier=classifier_path, fid_samples=1000)
    return training.train(TASK, cfg, runs_root=root / "runs", saved_models_root=root / "saved", quiet=True), cfg


def _weights(model):
    return [np.array(w) for w in model.weights]


def _trainable(model):
    return [np.array(w) for w in model.trainable_weights]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_each_phase_updates_only_its_network(digits):
    cfg = smoke_config()
    model = build_model(cfg, {"image_shape": [28, 28, 1]})
    real = model.to_unit_range(digits[0][:32])
    generator_before, discriminator_before = _trainable(model.generator), _weights(model.discriminator)

    model.discriminator_step(real)
    # The discriminator learned; the generator's weights did not move (its batch-norm running
    # statistics may: it ran in training mode to make the fakes).
    assert not _same(_weights(model.discriminator), discriminator_before)
    assert _same(_trainable(model.generator), generator_before)

    generator_before, discriminator_before = _trainable(model.generator), _weights(model.discriminator)
    model.generator_step(32)
    assert not _same(_trainable(model.generator), generator_before)
    assert _same(_weights(model.discriminator), discriminator_before)  # every weight, trainable or not
    assert int(model.d_optimizer.iterations) == 1 and int(model.g_optimizer.iterations) == 1


def test_diff_augment_shifts_and_cuts_out_and_lets_gradients_through():
    import tensorflow as tf

    from dlapps.tasks.gan.adversarial import diff_augment

    seed = keras.random.SeedGenerator(3)
    square = -np.ones((16, 28, 28, 1), "float32")
    square[:, 10:18, 10:18] = 1.0
    shifted = np.asarray(diff_augment(square, ("translation",), seed))
    # Every image keeps its 8x8 square (shifts of at most 4 pixels cannot push it out), moved.
    assert ((shifted > 0).sum(axis=(1, 2, 3)) == 64).all()
    offsets = np.array([np.argwhere(image[..., 0] > 0).min(axis=0) - 10 for image in shifted])
    assert np.abs(offsets).max() <= 4 and len({tuple(o) for o in offsets}) > 3
    assert set(np.unique(shifted)) <= {-1.0, 1.0}  # borders filled with background, no blending
    cut = np.asarray(diff_augment(np.ones((16, 28, 28, 1), "float32"), ("cutout",), seed))
    blank = (cut == -1.0).sum(axis=(1, 2, 3))
    assert (blank > 0).all() and (blank <= 14 * 14).all()
    images = tf.Variable(square)
    with tf.GradientTape() as tape:
        total = keras.ops.sum(diff_augment(images, ("translation", "cutout"), seed))
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, images)))) > 0
    with pytest.raises(UserError, match="augment"):
        build_model(smoke_config(augment=("flip",)), {"image_shape": [28, 28, 1]})


def test_generator_average_follows_the_generator_and_is_saved(digits, tmp_path):
    model = build_model(smoke_config(ema=0.9, augment=("translation", "cutout")), {"image_shape": [28, 28, 1]})
    assert model.sampler is model.generator_ema
    real = model.to_unit_range(digits[0][:32])
    before = _weights(model.generator_ema)
    model.discriminator_step(real)
    model.generator_step(32)
    # After the first generator update (t = 1) the momentum is min(0.9, (1 + t) / (10 + t)) = 2 / 11.
    momentum = 2 / 11
    expected = [momentum * b + (1 - momentum) * g for b, g in zip(before, _weights(model.generator))]
    assert not _same(before, _weights(model.generator))
    for got, want in zip(_weights(model.generator_ema), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    model.save(tmp_path / "gan.keras")
    loaded, _ = load_model(tmp_path / "gan.keras")
    assert loaded.ema == 0.9 and loaded.augment == ("translation", "cutout")
    assert _same(_weights(loaded.generator_ema), _weights(model.generator_ema))
    assert np.array_equal(generate(loaded.sampler, 8, 0), generate(model.sampler, 8, 0))


def test_conditional_gan_draws_the_digit_asked_for(classifier_path, runs, tmp_path):
    keras.utils.set_random_seed(5)
    cfg = smoke_config(conditional=True, epochs=8, grid_every=4, classifier=classifier_path, fid_samples=500,
                       latent_dim=16, generator_filters=16, discriminator_filters=16)
    result = training.train(TASK, cfg, **runs)
    model = result.model
    assert model.num_classes == 10 and len(model.generator.inputs) == 2 and len(model.discriminator.inputs) == 2
    # The label steers the generator: the classifier reads the requested digit far above chance (0.1).
    assert result.metrics["test"]["label_agreement"] > 0.3, result.metrics["test"]
    loaded, info = load_model(result.run_dir / "model.keras")
    assert np.array_equal(generate(loaded.sampler, 20, 0), generate(model.sampler, 20, 0))
    assert "8 generated 7s" in predict(loaded, [str(tmp_path / "sevens.png")], info, cfg, options(n=8, digit=7))[0]
    with pytest.raises(UserError, match="labels 0..9"):
        predict(loaded, [str(tmp_path / "x.png")], info, cfg, options(digit=10))
    with pytest.raises(UserError, match="labelled images"):
        build_model(cfg, {"image_shape": [28, 28, 1]})


def test_unconditional_gan_cannot_be_asked_for_a_digit(trained, tmp_path):
    result, cfg = trained
    with pytest.raises(UserError, match="unconditional"):
        predict(result.model, [str(tmp_path / "x.png")], result.data.info, cfg, options(digit=3))


def test_smoke_training_beats_the_untrained_generator(trained):
    result, cfg = trained
    test = result.metrics["test"]
    for key in ("d_loss", "g_loss", "classifier_fid", "classifier_fid_real_floor",
                "classifier_fid_untrained_ceiling", "confident_share", "label_entropy"):
        assert math.isfinite(test[key]), key
    # Real digits against each other < trained samples < noise from an untrained generator.
    assert test["classifier_fid_real_floor"] < test["classifier_fid"] < 0.7 * test["classifier_fid_untrained_ceiling"]
    assert test["real_confident_share"] > 0.5
    assert result.metrics["epochs"] == cfg.epochs
    samples = sorted((result.run_dir / "samples").glob("epoch_*.png"))
    assert len(samples) == cfg.epochs and (result.run_dir / "samples" / "training.gif").exists()


def test_saved_gan_and_generator_reload(trained, tmp_path):
    result, cfg = trained
    loaded, _ = load_model(result.run_dir / "model.keras")
    latents = np.random.default_rng(0).standard_normal((8, cfg.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded.generator(latents)), np.asarray(result.model.generator(latents)),
                               atol=1e-6)
    assert loaded.d_optimizer is not None and float(loaded.g_optimizer.beta_1) == cfg.beta_1
    # The generator alone is a plain functional model: save it and load it without dlapps.
    result.model.generator.save(tmp_path / "generator.keras")
    generator = keras.saving.load_model(tmp_path / "generator.keras")
    np.testing.assert_allclose(np.asarray(generator(latents)), np.asarray(result.model.generator(latents)), atol=1e-6)


def test_predict_writes_a_reproducible_grid(trained, tmp_path):
    result, cfg = trained
    cfg = dataclasses.replace(cfg, seed=0)
    lines = predict(result.model, [str(tmp_path / "grid.png")], result.data.info, cfg, options(n=16))
    assert (tmp_path / "grid.png").stat().st_size > 0 and "16 generated digits" in lines[0]
    first, again = generate(result.model.generator, 16, 0), generate(result.model.generator, 16, 0)
    assert first.dtype == np.uint8 and first.shape == (16, 28, 28, 1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, generate(result.model.generator, 16, 1))
    with pytest.raises(UserError, match="PNG"):
        predict(result.model, [str(tmp_path / "grid.jpg")], result.data.info, cfg, options(n=16))


def test_predict_draws_with_the_averaged_generator_reproducibly(tmp_path):
    """predict's grid is the EMA generator's draw for the seed: same seed, same pixels; not the raw generator's."""
    from PIL import Image

    from dlapps import plots

    cfg = smoke_config(ema=0.9, seed=5)
    model = build_model(cfg, TASK.load_data(cfg).info)
    # The average differs from the generator (as after training), so drawing with the wrong one shows.
    model.generator_ema.set_weights([w * 0.5 + 0.1 for w in model.generator.get_weights()])
    assert model.sampler is model.generator_ema

    def pixels(path):
        return np.asarray(Image.open(path).convert("L"), dtype=np.int16)

    predict(model, [str(tmp_path / "a.png")], {}, cfg, options(n=8))
    predict(model, [str(tmp_path / "b.png")], {}, cfg, options(n=8))
    predict(model, [str(tmp_path / "c.png")], {}, dataclasses.replace(cfg, seed=6), options(n=8))
    np.testing.assert_array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "c.png"))
    plots.image_grid(generate(model.generator_ema, 8, 5), tmp_path / "ema.png", columns=8)
    plots.image_grid(generate(model.generator, 8, 5), tmp_path / "raw.png", columns=8)
    np.testing.assert_array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "ema.png"))
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "raw.png"))


def test_evaluate_without_classifier_reports_losses(trained, tmp_path, capsys):
    result, cfg = trained
    metrics = TASK.evaluate(result.model, result.data, dataclasses.replace(cfg, classifier=str(tmp_path / "none.keras")))
    assert "d_loss" in metrics and "classifier_fid" not in metrics
    assert "not found" in capsys.readouterr().err


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(digits, classifier_path):
    images = digits[0][:600]
    extractor = gan_metrics.feature_model(keras.saving.load_model(classifier_path), "features")
    rng = np.random.default_rng(0)
    assert gan_metrics.classifier_fid(extractor, images, images) < 1e-6

    def noisy(std):
        return np.clip(images + rng.normal(0, std, images.shape), 0, 255).astype(np.uint8)

    distances = [gan_metrics.classifier_fid(extractor, images, noisy(std)) for std in (10, 40, 100)]
    assert 0 < distances[0] < distances[1] < distances[2]
    with pytest.raises(UserError, match="no layer named"):
        gan_metrics.feature_model(keras.saving.load_model(classifier_path), "nope")


def test_frechet_distance_matches_the_gaussian_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, (40_000, 2))
    b = rng.normal([3.0, 0.0], [2.0, 1.0], (40_000, 2))
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sd_a - sd_b)^2 = 9 + 1 = 10.
    assert gan_metrics.frechet_distance(a, b) == pytest.approx(10.0, abs=0.3)


def test_label_statistics():
    uniform = np.eye(10)[np.arange(1000) % 10]
    stats = gan_metrics.label_statistics(uniform)
    assert stats["label_entropy"] == pytest.approx(math.log(10)) and stats["confident_share"] == 1.0
    collapsed = np.full((100, 10), 0.02)
    collapsed[:, 3] = 0.82
    stats = gan_metrics.label_statistics(collapsed)
    assert stats["label_entropy"] == 0.0 and stats["confident_share"] == 0.0


def test_mirrored_strategy_on_two_logical_cpus(runs):
    cfg = smoke_config(epochs=1, grid_every=0, fid_samples=64, ema=0.99, augment=("translation", "cutout"))
    start = {}
    capture = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: start.update(weights=_weights(capture.model.generator_ema)))
    task = dataclasses.replace(TASK, callbacks=lambda *_: [capture])
    result = training.train(task, cfg, Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2
    assert all(math.isfinite(v) for v in result.history["d_loss"] + result.history["g_loss"])
    # The weight average was updated on the replicas (in a cross-replica merge_call), not left as it began.
    assert not _same(_weights(result.model.generator_ema), start["weights"])


class _Interrupt(keras.callbacks.Callback):
    """Raises after `epoch` epochs, like a killed job; remembers the weights at that moment."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.weights = _weights(self.model)
            self.steps = int(self.model.d_optimizer.iterations)
            raise KeyboardInterrupt("simulated kill")


class _Capture(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = _weights(self.model)
        self.steps = int(self.model.d_optimizer.iterations)


def test_backup_and_restore_resumes_a_killed_run(runs):
    cfg = smoke_config(epochs=2, grid_every=0, fid_samples=64)
    interrupt, capture = _Interrupt(epoch=1), _Capture()
    killed = dataclasses.replace(TASK, callbacks=lambda *_: [interrupt])
    run_dir = runs["runs_root"] / "resumed"
    with pytest.raises(KeyboardInterrupt):
        training.train(killed, cfg, run_dir=run_dir, **runs)
    assert (run_dir / "backup").exists() and not (run_dir / "model.keras").exists()

    resumed = dataclasses.replace(TASK, callbacks=lambda *_: [capture])
    result = training.train(resumed, cfg, resume=run_dir, **runs)
    # Training continued from the state at the kill (weights and optimizer steps), for the last epoch.
    assert capture.steps == interrupt.steps > 0
    assert _same(capture.weights, interrupt.weights)
    assert len(result.history["phase"]) == 1 and (run_dir / "model.keras").exists()  # only the last epoch ran
    assert len(result.history["d_loss"]) == cfg.epochs  # the run's history lists each epoch once


def test_saved_model_draws_every_digit(shared_data):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    if not (repo / "saved_models" / "gan" / "model.keras").exists() or not (repo / "saved_models" / "mnist" / "model.keras").exists():
        pytest.skip("needs saved_models/gan and saved_models/mnist (train both with the full profile and --save)")
    cfg = config.resolve(TASK, "full", {"data": str(shared_data / "mnist-sample" / "mnist_sample.npz"),
                                        "fid_samples": "3000", "classifier": str(repo / "saved_models/mnist/model.keras")})
    model, _ = load_model(repo / "saved_models" / "gan")
    metrics = TASK.evaluate(model, TASK.load_data(cfg), cfg)
    assert metrics["label_entropy"] >= 2.2  # all ten digits, no mode collapse
    assert metrics["confident_share"] >= 0.9 and metrics.get("label_agreement", 1.0) >= 0.9
    # The FID's scale depends on the classifier's features: judge it against that classifier's own
    # real-vs-real floor and untrained ceiling (3000 samples against 1200 real images).
    floor, ceiling = metrics["classifier_fid_real_floor"], metrics["classifier_fid_untrained_ceiling"]
    assert floor < metrics["classifier_fid"] < min(3 * floor, 0.1 * ceiling), (floor, metrics["classifier_fid"], ceiling)
