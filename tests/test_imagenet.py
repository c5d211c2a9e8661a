"""The imagenet task: transfer learning in two phases, the transfer gain, ImageNet inference offline, bad input."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
from PIL import Image

import dlapps
from dlapps import config, training
from dlapps.data.digits import embedded_digits
from dlapps.errors import UserError
from dlapps.runs import load_model
from dlapps.runtime import Runtime
from dlapps.tasks.imagenet.backbones import DIGITS_BACKBONE, canonical, known_backbones, pretrain_digits_backbone
from dlapps.tasks.imagenet.model import unfreeze_top

TASK = dlapps.get_task("imagenet")


def _offline(monkeypatch):
    """Every keras download fails as it does without a network."""
    import keras.src.utils.file_utils as file_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", no_network)


def test_committed_backbone_transfers_to_unseen_digits(runs):
    """The demo's claim, shortened: fine-tuning the digits-0-4 backbone beats scratch on 5-9."""
    assert DIGITS_BACKBONE.exists(), "saved_models/digits_backbone/backbone.keras is part of the repository"
    cfg = dataclasses.replace(config.resolve(TASK, "demo"), head_epochs=10, fine_tune_epochs=6,
                              fine_tune_learning_rate=0.0003)
    result = training.train(TASK, cfg, **runs)
    test, baseline = result.metrics["test"], result.metrics["after_fit"]
    assert result.data.info["train_size"] == 50  # 10 labels for each of the 5 classes
    assert result.history["phase"] == ["head"] * 10 + ["fine_tune"] * 6
    assert test["accuracy"] > 0.5  # chance 0.2
    assert baseline["transfer_gain"] > 0.15 and baseline["scratch_accuracy"] < test["accuracy"]
    assert baseline["transfer_accuracy"] == pytest.approx(test["accuracy"])  # the same model, the same split
    assert "scratch_model" not in result.data.info  # the comparison is a result, not a fact about the data
    assert (result.run_dir / "scratch_baseline.keras").exists()
    assert (result.run_dir / "plots" / "confusion_matrix.png").exists()


def test_phases_freeze_then_fine_tune_top_layers(runs):
    cfg = config.resolve(TASK, "smoke")
    data = TASK.load_data(cfg)
    info = {**data.info, "steps_per_epoch": 10}
    model = TASK.build_model(cfg, info)
    backbone = model.get_layer("backbone")
    assert not backbone.trainable and len(model.trainable_weights) == 2  # only the head's kernel and bias
    phase_names = [phase.name for phase in TASK.phases(cfg)]
    assert phase_names == ["head", "fine_tune"]
    unfrozen = unfreeze_top(model, 4)
    trainable = [layer.name for layer in backbone.layers if layer.trainable and layer.weights]
    assert unfrozen == len(trainable) == 2 and all("conv" in name for name in trainable)  # BN stays frozen
    assert all(not layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_pretraining_a_backbone_and_loading_it_by_path(tmp_path, runs):
    metrics = pretrain_digits_backbone(tmp_path / "bb", epochs=1, quiet=True)
    assert (tmp_path / "bb" / "backbone.keras").exists() and (tmp_path / "bb" / "README.md").exists()
    assert metrics["pretraining_classes"] == [0, 1, 2, 3, 4] and metrics["train_size"] == 720
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), backbone="digits",
                              weights=str(tmp_path / "bb" / "backbone.keras"), head_epochs=1, fine_tune_epochs=0,
                              val_fraction=0.1, test_fraction=0.1)
    result = training.train(TASK, cfg, **runs)
    assert result.history["phase"] == ["head"] * cfg.head_epochs
    # The backbone in the model is the saved one, weight for weight (frozen in the head phase, so still equal).
    saved = keras.saving.load_model(tmp_path / "bb" / "backbone.keras")
    in_model = result.model.get_layer("backbone")
    assert [w.path for w in saved.weights] == [w.path for w in in_model.weights]
    for expected, actual in zip(saved.get_weights(), in_model.get_weights(), strict=True):
        np.testing.assert_array_equal(expected, actual)


def test_committed_backbone_is_loaded_weight_for_weight():
    cfg = dataclasses.replace(config.resolve(TASK, "demo"), backbone="digits", weights="pretrained")
    model = TASK.build_model(cfg, {"image_shape": [28, 28, 1], "num_classes": 5, "steps_per_epoch": 2})
    saved = keras.saving.load_model(DIGITS_BACKBONE)
    for expected, actual in zip(saved.get_weights(), model.get_layer("backbone").get_weights(), strict=True):
        np.testing.assert_array_equal(expected, actual)


class _LearningRates(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.rates = getattr(self, "rates", [])
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_fine_tune_phase_trains_only_the_top_layers_at_the_lower_rate():
    """After a head epoch and a fine-tune epoch, exactly the top fine_tune_layers' weights (not BN) moved."""
    from dlapps.data.pipeline import fit_datasets, with_batch_facts

    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), head_epochs=1, fine_tune_epochs=1, fine_tune_layers=3,
                              labels_per_class=8, augment=False)
    data = with_batch_facts(TASK.load_data(cfg), cfg.batch_size)
    model = TASK.build_model(cfg, data.info)
    backbone = model.get_layer("backbone")
    layers = [layer for layer in backbone.layers if layer.weights]
    before = {layer.name: layer.get_weights() for layer in layers}
    rates = _LearningRates()
    train, val = fit_datasets(data, cfg, cfg.batch_size)
    training.fit_phases(model, train, val, TASK.phases(cfg), cfg, [rates])

    moved = {layer.name for layer in layers
             if any(not np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))}
    top = layers[-cfg.fine_tune_layers:]
    expected = {layer.name for layer in top if not isinstance(layer, keras.layers.BatchNormalization)}
    assert expected and moved == expected, (moved, expected)
    assert rates.rates[0] == pytest.approx(cfg.learning_rate)
    assert rates.rates[1] == pytest.approx(cfg.fine_tune_learning_rate) and cfg.fine_tune_learning_rate < cfg.learning_rate


def test_keras_application_backbone_round_trip(runs):
    """A keras.applications backbone with its preprocess_input inside the saved model."""
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), backbone="mobilenet", weights="none",
                              image_size=32, labels_per_class=8, head_epochs=1, fine_tune_epochs=0,
                              flip=True, val_fraction=0.1, test_fraction=0.1)
    result = training.train(TASK, cfg, **runs)
    assert result.data.info["image_shape"] == [32, 32, 3]
    loaded, info = load_model(result.run_dir)
    assert loaded.get_layer("preprocess").get_config()["module"] == "mobilenet"
    batch = np.stack([image for image, _ in result.data.test.take(4).as_numpy_iterator()])
    assert batch.dtype == np.uint8
    np.testing.assert_allclose(loaded.predict_on_batch(batch), result.model.predict_on_batch(batch),
                               rtol=1e-5, atol=1e-5)


def _digit_folder(root, classes=(5, 6), per_class=12, bad_files=True):
    images, labels = embedded_digits()
    for digit in classes:
        folder = root / f"digit_{digit}"
        folder.mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            picture = Image.fromarray(images[i, ..., 0]).resize((30 + n, 41 + 2 * n)).convert("RGB")
            picture.save(folder / f"{n}.{'png' if n % 2 else 'jpg'}")
    if bad_files:
        (root / f"digit_{classes[0]}" / "notes.txt").write_text("not an image")
        (root / f"digit_{classes[1]}" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_folder_source_skips_and_counts_bad_files(tmp_path, runs):
    folder = _digit_folder(tmp_path / "digits")
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), data=str(folder), source="file",
                              val_fraction=0.25, test_fraction=0.25)
    data = TASK.load_data(cfg)
    assert data.info["class_names"] == ["digit_5", "digit_6"]
    assert sum(data.info["skipped_files"].values()) == 2
    assert "2 file(s) skipped" in data.info["source_description"]
    image, label = next(iter(data.train))
    assert image.dtype == "uint8" and tuple(image.shape) == (28, 28, 1)
    result = training.train(TASK, cfg, **runs)
    lines = TASK.predict(result.model, [str(folder / "digit_5" / "0.jpg")], result.data.info, cfg,
                         dict(TASK.predict_options))
    assert lines[0].split(": ")[1].split(" (")[0] in ("digit_5", "digit_6") and lines[0].count("(") == 2


def test_bad_input(tmp_path, monkeypatch):
    smoke = config.resolve(TASK, "smoke")
    one = tmp_path / "one"
    (one / "cats").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(one / "cats" / "a.png")
    with pytest.raises(UserError, match=r"1 class sub-folder.*at least 2"):
        TASK.load_data(dataclasses.replace(smoke, data=str(one)))
    junk = tmp_path / "junk"
    for name in ("a", "b"):
        (junk / name).mkdir(parents=True)
        (junk / name / "x.jpg").write_text("text, not JPEG")
    with pytest.raises(UserError, match="no readable image"):
        TASK.load_data(dataclasses.replace(smoke, data=str(junk)))
    with pytest.raises(UserError, match=r"unknown backbone 'alexnet'; known: .*mobilenet_v2.*resnet50"):
        TASK.load_data(dataclasses.replace(smoke, backbone="alexnet"))
    assert canonical("MobileNetV2") == canonical("mobilenet-v2") == "mobilenet_v2"
    assert {"efficientnet_b0", "resnet50", "digits", "convnext_tiny"} <= set(known_backbones())
    with pytest.raises(UserError, match="unknown source"):
        TASK.load_data(dataclasses.replace(smoke, source="imagenet21k"))
    with pytest.raises(UserError, match="no 'imagenet' weights"):
        TASK.build_model(dataclasses.replace(smoke, weights="imagenet"), TASK.load_data(smoke).info)
    _offline(monkeypatch)
    imagenet_cfg = dataclasses.replace(smoke, backbone="mobilenet_v2", weights="imagenet")
    with pytest.raises(UserError, match=r"cannot download ImageNet weights for mobilenet_v2.*--set weights=PATH"):
        TASK.pretrained(imagenet_cfg)
    with pytest.raises(UserError, match=r"weights file \(the 'notop' file.*--set weights=PATH"):
        TASK.build_model(dataclasses.replace(imagenet_cfg, image_size=32),
                         {"image_shape": [32, 32, 3], "num_classes": 2, "steps_per_epoch": 1})
    with pytest.raises(UserError, match="no such file"):
        TASK.pretrained(dataclasses.replace(imagenet_cfg, weights=str(tmp_path / "missing.h5")))


def test_imagenet_inference_offline_with_local_weights_and_class_index(tmp_path, monkeypatch):
    """`dlapps predict imagenet photo.jpg --set weights=PATH --set class_index=PATH`, no network."""
    _offline(monkeypatch)
    weights = tmp_path / "mobilenet_v2.weights.h5"
    keras.applications.MobileNetV2(weights=None).save_weights(weights)
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    (tmp_path / "imagenet_class_index.json").write_text(json.dumps(index))
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), backbone="mobilenet_v2", weights=str(weights))
    options = {**TASK.predict_options, "class_index": str(tmp_path / "imagenet_class_index.json")}
    model, info = TASK.pretrained(cfg)
    assert info["image_shape"] == [224, 224, 3]
    rng = np.random.default_rng(0)
    photos = []
    for n, (mode, size, suffix) in enumerate([("RGB", (300, 200), "jpg"), ("L", (97, 331), "png"),
                                              ("RGBA", (640, 480), "png"), ("P", (50, 50), "gif")]):
        path = tmp_path / f"photo_{n}.{suffix}"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path)
        photos.append(str(path))
    lines = TASK.predict(model, photos, info, cfg, options)
    assert len(lines) == 4
    for line in lines:
        entries = line.split(": ", 1)[1].split(", ")
        assert len(entries) == 5 and all(entry.startswith("class_") for entry in entries)
        probabilities = [float(entry.split("(")[1].rstrip(")")) for entry in entries]
        assert probabilities == sorted(probabilities, reverse=True)
    # Without a local class index, decode_predictions needs the network: a clear error.
    with pytest.raises(UserError, match="--set class_index=PATH"):
        TASK.predict(model, photos[:1], info, cfg, dict(TASK.predict_options))


def test_mirrored_strategy_with_both_phases(runs):
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), labels_per_class=20, head_epochs=1,
                              fine_tune_epochs=1, val_fraction=0.1, test_fraction=0.1)
    result = training.train(TASK, cfg, Runtime(strategy="mirrored", devices="cpu:2"), **runs)
    assert result.metrics["replicas"] == 2 and result.history["phase"] == ["head", "fine_tune"]
    assert np.isfinite(result.metrics["test"]["accuracy"])


def test_tf_flowers_source_offline_with_mock_data():
    import tensorflow_datasets as tfds

    cfg = dataclasses.replace(config.resolve(TASK, "full"), image_size=32, val_fraction=0.2, test_fraction=0.2)
    with tfds.testing.mock_data(num_examples=25):
        data = TASK.load_data(cfg)
    assert data.info["image_shape"] == [32, 32, 3] and data.info["class_names"][0] == "dandelion"
    assert data.info["train_size"] + data.info["val_size"] + data.info["test_size"] == 25
    image, label = next(iter(data.train))
    assert image.dtype == "uint8" and tuple(image.shape) == (32, 32, 3) and 0 <= int(label) < 5


@pytest.mark.parametrize("name, cls, module", [("resnet50", "ResNet50", "resnet50"),
                                               ("efficientnet_b0", "EfficientNetB0", "efficientnet"),
                                               ("mobilenet_v3_small", "MobileNetV3Small", "mobilenet_v3")])
def test_keras_application_backbones_by_name(name, cls, module):
    """Backbones named in the README build (weights=none) as that network with its own preprocessing."""
    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), backbone=name, weights="none", augment=False)
    model = TASK.build_model(cfg, {"image_shape": [32, 32, 3], "num_classes": 3, "steps_per_epoch": 1})
    backbone = model.get_layer("backbone")
    assert backbone.name == "backbone" and len(backbone.output.shape) == 2  # a feature vector per image
    reference = getattr(keras.applications, cls)(weights=None, include_top=False, pooling="avg",
                                                 input_shape=(32, 32, 3))
    assert backbone.count_params() == reference.count_params()
    assert model.get_layer("preprocess").get_config()["module"] == module
    probs = model.predict_on_batch(np.zeros((2, 32, 32, 3), "uint8"))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
