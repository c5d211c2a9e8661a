"""Transfer learning (frozen base + new head, then fine-tuning) and ImageNet inference.

The transfer model::

    uint8 image -> [augmentation] -> backbone's preprocess_input -> backbone(training=False)
                -> Dropout -> Dense(classes, softmax)

`backbone(x, training=False)` keeps its batch-norm layers in inference mode for good: their
moving statistics, learned on millions of images, are not overwritten by a few small batches, even
when phase 2 unfreezes the top layers (the keras.io transfer-learning guide's advice).

Two phases, one history (`phases`): "head" trains only the new head (backbone frozen) at
`learning_rate`; "fine_tune" unfreezes the top `fine_tune_layers` of the backbone (batch-norm
layers stay frozen) and recompiles at `fine_tune_learning_rate`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from dlapps.errors import UserError
from dlapps.task import Phase
from dlapps.tasks.imagenet.backbones import (BACKBONE_LAYER, DIGITS, application, build_base, canonical,
                                             default_image_size, keras_application)
from dlapps.tasks.imagenet.data import Config
from dlapps.training import batched, make_optimizer


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
class ScratchBaseline(keras.callbacks.Callback):
    """After the last phase, trains the same network from random weights on the same labels.

    It gets the same number of epochs (head + fine-tune), everything trainable (batch norm in its
    normal training mode) at `scratch_learning_rate`, and is saved as `scratch_baseline.keras`; `evaluate` then reports its accuracy
    next to the transfer model's, and the difference as `transfer_gain`.
    """

    def __init__(self, cfg: Config, run_dir: Path, data, phase_count: int):
        super().__init__()
        self.cfg, self.run_dir, self.data, self.remaining = cfg, Path(run_dir), data, phase_count

    def on_train_end(self, logs=None):
        self.remaining -= 1
        if self.remaining > 0:
            return
        cfg, info = self.cfg, self.data.info
        epochs = cfg.head_epochs + cfg.fine_tune_epochs
        with self.model.distribute_strategy.scope():
            scratch = build_model(cfg, info, from_scratch=True)
        train = batched(self.data.train, info["global_batch_size"], shuffle=True, seed=cfg.seed)
        val = batched(self.data.val, info["global_batch_size"]) if self.data.val is not None else None
        scratch.fit(train, validation_data=val, epochs=epochs, verbose=0)
        path = self.run_dir / "scratch_baseline.keras"
        scratch.save(path)
        info["scratch_model"] = str(path)


def callbacks(cfg: Config, run_dir, data) -> list:
    """The from-scratch comparison when `compare_scratch` is on."""
    if not cfg.compare_scratch:
        return []
    return [ScratchBaseline(cfg, run_dir, data, len(phases(cfg)))]


# ----------------------------------------------------------------------------- metrics and plots
def _predictions(model: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, probabilities), in batches of 128 (ImageNet-sized inputs)."""
    from dlapps.tasks.mnist.model import predictions

    return predictions(model, dataset, batch_size=128)


def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Accuracy, top-k accuracy, macro F1; with `compare_scratch`, the scratch model's accuracy too."""
    from sklearn.metrics import f1_score

    _, y_true, probabilities = _predictions(model, data.test)
    y_pred = probabilities.argmax(axis=1)
    k = min(cfg.top_k, probabilities.shape[1])
    top_k = np.argsort(-probabilities, axis=1)[:, :k]
    out = {"accuracy": float(np.mean(y_pred == y_true)),
           "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
           "n": int(len(y_true))}
    if k < probabilities.shape[1]:  # top-k of k or fewer classes is always 1
        out[f"top{k}_accuracy"] = float(np.mean((top_k == y_true[:, None]).any(axis=1)))
    scratch_path = data.info.get("scratch_model")
    if scratch_path and Path(scratch_path).exists():
        from dlapps.training import load_model

        scratch, _ = load_model(scratch_path)
        _, _, scratch_probabilities = _predictions(scratch, data.test)
        out["scratch_accuracy"] = float(np.mean(scratch_probabilities.argmax(axis=1) == y_true))
        out["transfer_gain"] = out["accuracy"] - out["scratch_accuracy"]
    return out


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Confusion matrix and a grid of the most confident mistakes on the test split."""
    from dlapps import plots

    images, y_true, probabilities = _predictions(model, data.test)
    return plots.classification_report_plots(images, y_true, probabilities, data.info["class_names"],
                                             plots_dir, worst=24)


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


def load_image(path: str, shape: list[int]) -> np.ndarray:
    """An image file as uint8 (size, size, channels): shorter side resized, centre-cropped (ImageNet style)."""
    from PIL import Image

    from dlapps.data.images import read_image

    array = read_image(path, channels=shape[2])
    height, width = array.shape[:2]
    target = shape[0]
    scale = target / min(height, width)
    image = Image.fromarray(array[..., 0] if shape[2] == 1 else array)
    resized = image.resize((max(target, round(width * scale)), max(target, round(height * scale))),
                           Image.Resampling.BILINEAR)
    left, top = (resized.width - target) // 2, (resized.height - target) // 2
    cropped = np.asarray(resized.crop((left, top, left + target, top + target)), np.uint8)
    return cropped[..., None] if cropped.ndim == 2 else cropped


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


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config) -> list[str]:
    """Top-k classes with probabilities per image file: ImageNet classes, or the trained model's own."""
    if not inputs:
        raise UserError("give one or more image files to classify, e.g. dlapps predict imagenet photo.jpg")
    shape = info.get("image_shape") or list(model.input_shape[1:])
    batch = np.stack([load_image(path, shape) for path in inputs])
    if "imagenet_backbone" in info:  # a keras.applications classifier: its own preprocessing
        _, module = application(info["imagenet_backbone"])
        probabilities = np.asarray(model.predict(module.preprocess_input(batch.astype("float32")), verbose=0))
        decoded = decode_imagenet(probabilities, info["imagenet_backbone"], cfg.top_k, cfg.class_index)
        return [f"{path}: " + ", ".join(f"{label} ({p:.3f})" for _, label, p in row)
                for path, row in zip(inputs, decoded)]
    probabilities = np.asarray(model.predict(batch, verbose=0))
    names = info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    lines = []
    for path, row in zip(inputs, probabilities):
        top = np.argsort(-row)[: min(cfg.top_k, len(row))]
        lines.append(f"{path}: " + ", ".join(f"{names[i]} ({row[i]:.3f})" for i in top))
    return lines

