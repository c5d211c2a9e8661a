"""Backbones: keras.applications networks by name, and the project's small digits backbone.

A backbone maps an image to a feature vector. Two kinds:

- `keras.applications` networks (mobilenet_v2, efficientnet_b0, resnet50, ... see `KERAS_BACKBONES`),
  built with `include_top=False, pooling="avg"`; weights `imagenet` (downloaded once into
  ~/.keras/models), a local weights file (`.h5` / `.weights.h5`, the "notop" file for transfer
  learning), or `none` (random initialisation). Their own `preprocess_input` goes in front
  (dlapps.layers.BackbonePreprocess).
`weights=pretrained` means each backbone's own pretrained weights: ImageNet for keras.applications,
the committed file for `digits`.

- `digits`: a small CNN that dlapps pretrains on handwritten digits 0-4 (scikit-learn's digits,
  embedded) and commits to `saved_models/digits_backbone/backbone.keras`; it takes float pixels in
  [0, 1], so a Rescaling(1/255) goes in front. Any `.keras` backbone saved the same way can be given
  with `--set weights=PATH.keras`.

Rebuild the committed digits backbone with::

    python -m dlapps.tasks.imagenet.backbones --out saved_models/digits_backbone
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dlapps.errors import UserError

# name -> (keras.applications class, module whose preprocess_input/decode_predictions it uses)
KERAS_BACKBONES: dict[str, tuple[str, str]] = {
    "mobilenet": ("MobileNet", "mobilenet"),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3"),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3"),
    **{f"efficientnet_b{i}": (f"EfficientNetB{i}", "efficientnet") for i in range(8)},
    **{f"efficientnet_v2_{s.lower()}": (f"EfficientNetV2{s}", "efficientnet_v2")
       for s in ("B0", "B1", "B2", "B3", "S", "M", "L")},
    "resnet50": ("ResNet50", "resnet50"),
    "resnet101": ("ResNet101", "resnet"),
    "resnet152": ("ResNet152", "resnet"),
    "resnet50_v2": ("ResNet50V2", "resnet_v2"),
    "resnet101_v2": ("ResNet101V2", "resnet_v2"),
    "resnet152_v2": ("ResNet152V2", "resnet_v2"),
    "vgg16": ("VGG16", "vgg16"),
    "vgg19": ("VGG19", "vgg19"),
    "inception_v3": ("InceptionV3", "inception_v3"),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2"),
    "xception": ("Xception", "xception"),
    "densenet121": ("DenseNet121", "densenet"),
    "densenet169": ("DenseNet169", "densenet"),
    "densenet201": ("DenseNet201", "densenet"),
    "nasnet_mobile": ("NASNetMobile", "nasnet"),
    "nasnet_large": ("NASNetLarge", "nasnet"),
    **{f"convnext_{s}": (f"ConvNeXt{s.capitalize()}", "convnext") for s in ("tiny", "small", "base", "large")},
    "convnext_xlarge": ("ConvNeXtXLarge", "convnext"),
}
DIGITS = "digits"
REPO = Path(__file__).resolve().parents[3]
DIGITS_BACKBONE = REPO / "saved_models" / "digits_backbone" / "backbone.keras"
BACKBONE_LAYER = "backbone"


def known_backbones() -> list[str]:
    """Every backbone name `--set backbone=` accepts."""
    return sorted(KERAS_BACKBONES) + [DIGITS]


def canonical(name: str) -> str:
    """A backbone name in our spelling: 'MobileNetV2', 'mobilenet-v2', 'mobilenet_v2' -> 'mobilenet_v2'."""
    key = name.strip().lower().replace("-", "_")
    if key in KERAS_BACKBONES or key == DIGITS:
        return key
    by_class = {cls.lower(): ours for ours, (cls, _) in KERAS_BACKBONES.items()}
    squashed = key.replace("_", "")
    if squashed in by_class:
        return by_class[squashed]
    raise UserError(f"unknown backbone {name!r}; known: {', '.join(known_backbones())}")


def application(name: str):
    """(the keras.applications constructor, its module) for a canonical backbone name."""
    import importlib

    import keras

    class_name, module = KERAS_BACKBONES[name]
    return getattr(keras.applications, class_name), importlib.import_module(f"keras.applications.{module}")


def default_image_size(name: str) -> int:
    """The input size the ImageNet weights were trained at (224 for most, 299 for Inception...)."""
    sizes = {"inception_v3": 299, "inception_resnet_v2": 299, "xception": 299, "nasnet_large": 331,
             "efficientnet_b1": 240, "efficientnet_b2": 260, "efficientnet_b3": 300, "efficientnet_b4": 380,
             "efficientnet_b5": 456, "efficientnet_b6": 528, "efficientnet_b7": 600,
             "efficientnet_v2_b1": 240, "efficientnet_v2_b2": 260, "efficientnet_v2_b3": 300,
             "efficientnet_v2_s": 384, "efficientnet_v2_m": 480, "efficientnet_v2_l": 480, DIGITS: 28}
    return sizes.get(name, 224)


def _weights_file(weights: str) -> Path | None:
    """The local file `weights` names (relative to the working directory or the repository), if any."""
    for candidate in (Path(weights).expanduser(), REPO / weights):
        if candidate.is_file():
            return candidate
    return None


def _offline_error(name: str, err: Exception, include_top: bool) -> UserError:
    kind = "" if include_top else " (the 'notop' file, for transfer learning)"
    return UserError(f"cannot download ImageNet weights for {name} ({type(err).__name__}: "
                     f"{str(err).splitlines()[0][:120] if str(err) else 'no network'}); offline? download the "
                     f"weights file{kind} once on a connected machine (keras saves it in ~/.keras/models) and "
                     f"pass --set weights=PATH, or use the offline demo: --profile demo")


def keras_application(name: str, weights: str, input_shape: tuple | None, include_top: bool):
    """A keras.applications model; weights 'imagenet', 'none' or a local weights file."""
    constructor, _ = application(name)
    kwargs = dict(include_top=include_top, input_shape=input_shape)
    if not include_top:
        kwargs["pooling"] = "avg"
    if weights.lower() in ("none", "random", ""):
        return constructor(weights=None, **kwargs)
    if weights.lower() in ("imagenet", "pretrained"):  # a keras.applications network's pretrained = ImageNet
        try:
            return constructor(weights="imagenet", **kwargs)
        except ValueError:
            raise
        except Exception as err:  # urllib/OS errors wrapped by keras' get_file
            raise _offline_error(name, err, include_top) from None
    path = _weights_file(weights)
    if path is None:
        raise UserError(f"weights {weights!r}: no such file; give 'imagenet', 'none' or a path to a "
                        f"weights file (.h5 / .weights.h5)")
    try:
        return constructor(weights=str(path), **kwargs)
    except (ValueError, OSError) as err:
        top = "with" if include_top else "without ('notop')"
        raise UserError(f"{path}: not {name} weights {top} the classifier "
                        f"({str(err).splitlines()[0][:160]})") from None


def load_saved_backbone(path: Path):
    """A saved dlapps backbone (.keras): float pixels in [0, 1] -> a feature vector."""
    from dlapps.runs import load_model

    model, _ = load_model(path)
    if len(model.output_shape) != 2:
        raise UserError(f"{path}: a backbone must output a feature vector (batch, features); "
                        f"this model outputs {model.output_shape}")
    return model


def build_base(name: str, weights: str, image_shape: tuple[int, int, int]):
    """(the feature-extractor base, its preprocessing layer) for `name` and `weights`."""
    import keras

    from dlapps.layers.vision import BackbonePreprocess

    if weights.lower().endswith(".keras") or (name == DIGITS and weights.lower() == "pretrained"):
        path = _weights_file(weights) if weights.lower() != "pretrained" else DIGITS_BACKBONE
        if path is None or not path.exists():
            hint = ("rebuild it with python -m dlapps.tasks.imagenet.backbones --out saved_models/digits_backbone"
                    if weights.lower() == "pretrained" else "give the path of a backbone .keras file")
            raise UserError(f"saved backbone {path or weights} not found; {hint}")
        base = load_saved_backbone(path)
        preprocess = keras.layers.Rescaling(1.0 / 255, name="preprocess")
    elif name == DIGITS:
        if weights.lower() not in ("none", "random"):
            raise UserError(f"the digits backbone has no {weights!r} weights; use --set weights=pretrained "
                            f"(the committed one), none (random init) or PATH.keras")
        base = digits_backbone(image_shape)
        preprocess = keras.layers.Rescaling(1.0 / 255, name="preprocess")
    else:
        base = keras_application(name, weights, image_shape, include_top=False)
        preprocess = BackbonePreprocess(KERAS_BACKBONES[name][1], name="preprocess")
    base.name = BACKBONE_LAYER
    return base, preprocess


def digits_backbone(image_shape=(28, 28, 1), filters: int = 32, blocks: int = 3):
    """The project's small backbone: [conv-BN-ReLU x2, max-pool] x blocks, global average pool."""
    import keras

    inputs = keras.Input(shape=tuple(image_shape), name="pixels")
    x = inputs
    for block in range(blocks):
        for i in range(2):
            x = keras.layers.Conv2D(filters * 2 ** block, 3, padding="same", use_bias=False,
                                    kernel_initializer="he_normal", name=f"block{block}_conv{i}")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{i}")(x)
            x = keras.layers.Activation("relu", name=f"block{block}_relu{i}")(x)
        if block < blocks - 1:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, x, name="digits_backbone")


# ----------------------------------------------------------------------------- pretraining
def pretrain_digits_backbone(out_dir: str | Path, classes=(0, 1, 2, 3, 4), epochs: int = 40,
                             seed: int = 42, quiet: bool = False) -> dict:
    """Train the digits backbone on embedded digits of `classes` only; write backbone.keras + card.

    The classes left out (5-9 by default) are what the imagenet task's demo fine-tunes on, so the
    demo measures transfer to classes the backbone has never seen.
    """
    import keras
    from sklearn.model_selection import train_test_split

    from dlapps.data.digits import embedded_digits

    keras.utils.set_random_seed(seed)
    images, labels = embedded_digits()
    keep = np.isin(labels, classes)
    images, labels = images[keep], np.searchsorted(np.asarray(classes), labels[keep])
    x_train, x_val, y_train, y_val = train_test_split(images, labels, test_size=0.2, random_state=seed,
                                                      stratify=labels)
    backbone = digits_backbone()
    inputs = keras.Input(shape=(28, 28, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.RandomRotation(0.04, fill_mode="constant")(x)
    x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(x)
    x = keras.layers.RandomZoom(0.1, fill_mode="constant")(x)
    x = backbone(x)
    outputs = keras.layers.Dense(len(classes), activation="softmax")(keras.layers.Dropout(0.3)(x))
    classifier = keras.Model(inputs, outputs)
    steps = epochs * -(-len(x_train) // 32)
    classifier.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
                       "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = classifier.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_data=(x_val, y_val),
                             verbose=0 if quiet else 2)
    accuracy = float(classifier.evaluate(x_val, y_val, verbose=0)[1])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backbone.save(out_dir / "backbone.keras")
    metrics = {"pretraining_classes": list(classes), "val_accuracy": accuracy, "train_size": len(x_train),
               "val_size": len(x_val), "epochs": epochs, "seed": seed,
               "final_train_accuracy": float(history.history["accuracy"][-1])}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "README.md").write_text(f"""# digits_backbone: a small CNN pretrained by dlapps on digits {classes[0]}-{classes[-1]}

`backbone.keras` maps float pixels in [0, 1], shape (28, 28, 1), to a {backbone.output_shape[-1]}-d feature
vector (global average pool after 3 blocks of [conv-BN-ReLU x2]). It was trained, with a softmax head
that is not kept, on the {len(x_train)} images of classes {list(classes)} among scikit-learn's embedded
handwritten digits (8x8 upscaled to 28x28), with rotation/shift/zoom augmentation, {epochs} epochs.

Accuracy of backbone + head on {len(x_val)} held-out images of those classes: {accuracy:.4f}.

It exists so that the imagenet task's offline demo shows real transfer learning: fine-tune it on
the digits it has never seen ({sorted(set(range(10)) - set(classes))}) with a few labels each, and
compare with the same network trained from scratch on the same labels:

    dlapps train imagenet --profile demo

Rebuild: `python -m dlapps.tasks.imagenet.backbones --out {out_dir}` (seed {seed}).
""")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Command line: pretrain the digits backbone."""
    parser = argparse.ArgumentParser(description=pretrain_digits_backbone.__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DIGITS_BACKBONE.parent))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    metrics = pretrain_digits_backbone(args.out, epochs=args.epochs, seed=args.seed)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
