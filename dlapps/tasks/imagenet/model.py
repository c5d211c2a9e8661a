"""Transfer learning (frozen base + new head, then fine-tuning) and ImageNet inference.

The transfer model::

    uint8 image -> [augmentation] -> backbone's preprocess_input -> backbone(training=False)
                -> Dropout -> Dense(classes, softmax)

`backbone(x, training=False)` keeps its batch-norm layers in inference mode for good: their
moving statistics, learned on millions of images, are not overwritten by a few small batches, even
when phase 2 unfreezes the top layers (the keras.io transfer-learning guide's advice).

Two phases, one history (`phases`): "head" trains only the new head (backbone frozen) at
`learning_rate`; "fine_tune" unfreezes the top `fine_tune_layers` of the backbone (batch-norm
layers stay frozen) and recompiles at `fine_tune_learning_rate`. With `compare_scratch`, the
task's `after_fit` hook then trains the same network from random weights on the same labels and
returns both test accuracies (the run's metrics.json shows them under "after_fit").
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from dlapps import metrics
from dlapps.data.images import is_blank, is_image_folder, to_model_labels
from dlapps.data.pipeline import batched
from dlapps.errors import UserError
from dlapps.optim import make_optimizer
from dlapps.runs import load_model
from dlapps.task import Phase
from dlapps.tasks.imagenet.backbones import (BACKBONE_LAYER, DIGITS, application, build_base, canonical,
                                             default_image_size, keras_application)
from dlapps.tasks.imagenet.config import Config
from dlapps.tasks.imagenet.data import load_image  # noqa: F401  (serve and explain import it from here)


def _compile(model: keras.Model, optimizer) -> None:
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def build_model(cfg: Config, info: dict, hp=None, from_scratch: bool = False) -> keras.Model:
    """The compiled transfer model, backbone frozen (phase 1); `hp` may choose dropout and learning rate.

    `from_scratch=True` builds the baseline instead: the same network with random weights, all of
    it trainable and its batch norm in the usual training mode, compiled at `scratch_learning_rate`.
    """
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=cfg.dropout) if hp else cfg.dropout
    name = canonical(cfg.backbone)
    shape = tuple(info["image_shape"])
    base, preprocess = build_base(name, "none" if from_scratch else cfg.weights, shape)
    base.trainable = from_scratch

    inputs = keras.Input(shape=shape, dtype="uint8", name="image")
    x = inputs
    if cfg.augment:
        x = keras.layers.Rescaling(1.0, name="to_float")(x)  # uint8 -> float for the random layers
        if cfg.flip:
            x = keras.layers.RandomFlip("horizontal", name="random_flip")(x)
        fill = "constant" if name == DIGITS else "reflect"  # digits sit on a black background
        x = keras.layers.RandomRotation(0.04, fill_mode=fill, name="random_rotation")(x)
        x = keras.layers.RandomTranslation(0.08, 0.08, fill_mode=fill, name="random_translation")(x)
        x = keras.layers.RandomZoom(0.1, fill_mode=fill, name="random_zoom")(x)
    x = preprocess(x)
    x = base(x) if from_scratch else base(x, training=False)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(info["num_classes"], activation="softmax", dtype="float32", name="head")(x)
    model = keras.Model(inputs, outputs, name=f"{name}_{'scratch' if from_scratch else 'transfer'}")
    if from_scratch:
        schedule = dataclasses.replace(cfg, epochs=cfg.head_epochs + cfg.fine_tune_epochs,
                                       learning_rate=cfg.scratch_learning_rate)
    else:  # phase 1's schedule spans the head epochs (`epochs` is not used: the phases set the length)
        schedule = dataclasses.replace(cfg, epochs=cfg.head_epochs)
    _compile(model, make_optimizer(schedule, info, hp))
    return model


def unfreeze_top(model: keras.Model, layers: int) -> int:
    """Make the top `layers` layers of the backbone trainable (batch norm stays frozen); the count unfrozen."""
    base = model.get_layer(BACKBONE_LAYER)
    base.trainable = True
    candidates = [layer for layer in base.layers if layer.weights]
    cut = max(0, len(candidates) - layers)
    unfrozen = 0
    for i, layer in enumerate(candidates):
        layer.trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
        unfrozen += int(layer.trainable)
    return unfrozen


def _fine_tune(model: keras.Model, cfg: Config) -> None:
    """Phase 2's preparation: unfreeze the top layers, recompile at the low learning rate."""
    unfreeze_top(model, cfg.fine_tune_layers)
    optimizer_cfg = dataclasses.replace(cfg, learning_rate=cfg.fine_tune_learning_rate, lr_schedule="constant")
    with model.distribute_strategy.scope():  # the new optimizer's variables belong to the model's strategy
        _compile(model, make_optimizer(optimizer_cfg))


def phases(cfg: Config) -> list[Phase]:
    """Head training on the frozen backbone, then fine-tuning of its top layers."""
    out = [Phase("head", cfg.head_epochs)]
    if cfg.fine_tune_epochs > 0:
        out.append(Phase("fine_tune", cfg.fine_tune_epochs, _fine_tune))
    return out


# ----------------------------------------------------------------------------- from-scratch baseline
def after_fit(model: keras.Model, data, cfg: Config, run_dir: Path) -> dict:
    """With `compare_scratch`: train the same network from random weights on the same labels.

    The baseline gets the same number of epochs (head + fine-tune), everything trainable (batch
    norm in its normal training mode) at `scratch_learning_rate`, and is saved as
    `run_dir/scratch_baseline.keras`. Returns the test accuracies of both networks and their
    difference: {"scratch_accuracy", "transfer_accuracy", "transfer_gain"} (transfer_accuracy is
    the test accuracy that `evaluate` reports too); {} without `compare_scratch`.
    """
    if not cfg.compare_scratch:
        return {}
    info = data.info
    with model.distribute_strategy.scope():
        scratch = build_model(cfg, info, from_scratch=True)
    train = batched(data.train, info["global_batch_size"], shuffle=True, seed=cfg.seed)
    val = batched(data.val, info["global_batch_size"]) if data.val is not None else None
    scratch.fit(train, validation_data=val, epochs=cfg.head_epochs + cfg.fine_tune_epochs, verbose=0)
    path = Path(run_dir) / "scratch_baseline.keras"
    scratch.save(path)
    # Scored on local copies: a model built under a multi-replica strategy would run
    # predict_on_batch on every replica and concatenate the copies.
    scratch_accuracy = _test_accuracy(load_model(path)[0], data.test)
    if model.distribute_strategy.num_replicas_in_sync > 1:
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "transfer.keras")
            transfer_accuracy = _test_accuracy(load_model(Path(folder) / "transfer.keras")[0], data.test)
    else:
        transfer_accuracy = _test_accuracy(model, data.test)
    return {"scratch_accuracy": scratch_accuracy, "transfer_accuracy": transfer_accuracy,
            "transfer_gain": transfer_accuracy - scratch_accuracy}


def _test_accuracy(model: keras.Model, dataset) -> float:
    _, y_true, probabilities = metrics.predictions(model, dataset, batch_size=128)
    return metrics.accuracy(y_true, probabilities)


# ----------------------------------------------------------------------------- metrics and plots
def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Accuracy, macro F1, n and (with more than `top_k` classes) the top-k accuracy on the test split.

    The labels of an image folder are matched to the model's class names by folder name
    (`dlapps.data.images.to_model_labels`); an unknown folder name is a UserError naming them.
    """
    _, y_true, probabilities = metrics.predictions(model, data.test, batch_size=128)  # ImageNet-sized inputs
    if cfg.data and is_image_folder(cfg.data) and data.info.get("class_names"):
        y_true = to_model_labels(y_true, cfg.data, data.info["class_names"])
    out = {"accuracy": metrics.accuracy(y_true, probabilities),
           "macro_f1": metrics.macro_f1(y_true, probabilities),
           "n": int(len(y_true))}
    k = min(cfg.top_k, probabilities.shape[1])
    if k < probabilities.shape[1]:  # top-k of k or fewer classes is always 1
        out[f"top{k}_accuracy"] = metrics.top_k_accuracy(y_true, probabilities, k)
    return out


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Confusion matrix and a grid of the most confident mistakes on the test split."""
    return metrics.classification_plots(model, data.test, data.info["class_names"], plots_dir, worst=24,
                                        batch_size=128)


# ----------------------------------------------------------------------------- inference
def pretrained(cfg: Config) -> tuple[keras.Model, dict]:
    """A keras.applications ImageNet classifier (with its top) and the info `predict` needs."""
    name = canonical(cfg.backbone)
    if name == DIGITS:
        raise UserError("the digits backbone has no classifier of its own; train one with "
                        "`dlapps train imagenet --profile demo` and pass --model RUN_DIR/model.keras")
    size = cfg.image_size or default_image_size(name)
    model = keras_application(name, cfg.weights, (size, size, 3) if cfg.image_size else None, include_top=True)
    return model, {"imagenet_backbone": name, "image_shape": list(model.input_shape[1:])}


def decode_imagenet(probabilities: np.ndarray, backbone: str, top: int, class_index: str | None):
    """[(wordnet id, class name, probability), ...] per image, via decode_predictions or a local index."""
    if class_index:
        path = Path(class_index).expanduser()
        try:
            index = json.loads(path.read_text())
            names = [index[str(i)] for i in range(probabilities.shape[1])]
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"class_index {path}: not an imagenet_class_index.json with "
                            f"{probabilities.shape[1]} classes ({type(err).__name__})") from None
        return [[(*names[i], float(row[i])) for i in np.argsort(-row)[:top]] for row in probabilities]
    _, module = application(backbone)
    try:
        return module.decode_predictions(probabilities, top=top)
    except Exception as err:  # it downloads imagenet_class_index.json on first use
        raise UserError(f"cannot get the ImageNet class names ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:120] if str(err) else 'no network'}); offline? pass "
                        f"--set class_index=PATH to a copy of imagenet_class_index.json") from None


PREDICT_OPTIONS = {"class_index": ""}
"""predict only: class_index, a local imagenet_class_index.json for ImageNet inference ("": let
decode_predictions download it)."""


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """Top-k classes (`cfg.top_k`) with probabilities per image file.

    The classes are ImageNet's for a pretrained keras.applications classifier (`pretrained`),
    else the trained model's own (`info["class_names"]`).
    Images of any size and mode are read as training reads a folder's files (`load_image`: EXIF
    orientation, transparency, shorter side resized, centre crop); a blank one is still classified,
    with a warning on stderr and on its line. Raises UserError without inputs, for an unreadable
    file, or when ImageNet class names are needed offline without `options["class_index"]`.
    """
    if not inputs:
        raise UserError("give one or more image files to classify, e.g. dlapps predict imagenet photo.jpg")
    shape = info.get("image_shape") or list(model.input_shape[1:])
    batch = np.stack([load_image(path, shape) for path in inputs])
    blank = [is_blank(image) for image in batch]
    for path, empty in zip(inputs, blank):
        if empty:
            print(f"dlapps: warning: {path}: blank image (no contrast); the prediction for it is a guess",
                  file=sys.stderr)
    note = {path: "  [warning: blank image, a guess]" for path, empty in zip(inputs, blank) if empty}
    if "imagenet_backbone" in info:  # a keras.applications classifier: its own preprocessing
        _, module = application(info["imagenet_backbone"])
        probabilities = np.asarray(model.predict(module.preprocess_input(batch.astype("float32")), verbose=0))
        decoded = decode_imagenet(probabilities, info["imagenet_backbone"], cfg.top_k,
                                  options.get("class_index") or None)
        return [f"{path}: " + ", ".join(f"{label} ({p:.3f})" for _, label, p in row) + note.get(path, "")
                for path, row in zip(inputs, decoded)]
    probabilities = np.asarray(model.predict(batch, verbose=0))
    names = info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    lines = []
    for path, row in zip(inputs, probabilities):
        top = np.argsort(-row)[: min(cfg.top_k, len(row))]
        lines.append(f"{path}: " + ", ".join(f"{names[i]} ({row[i]:.3f})" for i in top) + note.get(path, ""))
    return lines
