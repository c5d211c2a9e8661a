"""DCGAN for 28x28 digits: functional generator and discriminator, the GAN training model,
evaluation with a digit classifier, a sample-grid callback, and predict (a PNG grid of digits)."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from dlapps.data.pipeline import batched
from dlapps.errors import UserError
from dlapps.optim import make_optimizer
from dlapps.tasks.gan import metrics as gan_metrics
from dlapps.tasks.gan.adversarial import AUGMENTATIONS, GAN
from dlapps.tasks.gan.config import Config


# ----------------------------------------------------------------------------- networks
def build_generator(latent_dim: int, filters: int, channels: int = 1, num_classes: int = 0) -> keras.Model:
    """z (latent_dim,) -> image (28, 28, channels) in [-1, 1]: project to 7x7, upsample twice.

    Radford et al. (2016)'s recipe: transposed convolutions with stride 2 instead of upsampling
    + pooling, batch normalization and ReLU-family activations inside, tanh at the output.
    Conditional (`num_classes` > 0): inputs [z, label]; a learned label embedding joins z.
    """
    latent = keras.Input((latent_dim,), name="latent")
    inputs, x = latent, latent
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        embedded = keras.layers.Embedding(num_classes, latent_dim, name="label_embedding")(label)
        inputs, x = [latent, label], keras.layers.Concatenate(name="latent_and_label")([latent, embedded])
    x = keras.layers.Dense(7 * 7 * 2 * filters, use_bias=False, name="project")(x)
    x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.LeakyReLU(0.2, name="project_act")(x)
    x = keras.layers.Reshape((7, 7, 2 * filters), name="to_7x7")(x)
    x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name="up_14x14")(x)
    x = keras.layers.BatchNormalization(name="up_14x14_bn")(x)
    x = keras.layers.LeakyReLU(0.2, name="up_14x14_act")(x)
    x = keras.layers.Conv2DTranspose(max(8, filters // 2), 4, strides=2, padding="same", use_bias=False,
                                     name="up_28x28")(x)
    x = keras.layers.BatchNormalization(name="up_28x28_bn")(x)
    x = keras.layers.LeakyReLU(0.2, name="up_28x28_act")(x)
    image = keras.layers.Conv2D(channels, 3, padding="same", activation="tanh", dtype="float32",
                                name="image")(x)
    return keras.Model(inputs, image, name="generator")


def build_discriminator(filters: int, dropout: float, shape=(28, 28, 1), num_classes: int = 0) -> keras.Model:
    """image in [-1, 1] -> one logit: strided convolutions, LeakyReLU, dropout, no pooling.

    Conditional (`num_classes` > 0): inputs [image, label] and a projection discriminator
    (Miyato & Koyama 2018): logit = w.h + embed(label).h over the image features h, so the
    score also says whether the image looks like its label.
    """
    image = keras.Input(shape, name="image")
    x = image
    for i, width in enumerate((filters, 2 * filters)):
        x = keras.layers.Conv2D(width, 4, strides=2, padding="same", name=f"conv_{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"conv_{i}_act")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"conv_{i}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    if not num_classes:
        return keras.Model(image, logit, name="discriminator")
    label = keras.Input((), dtype="int32", name="label")
    embedded = keras.layers.Embedding(num_classes, x.shape[-1], name="label_projection")(label)
    matches = keras.layers.Dot(axes=1, name="label_match")([embedded, x])
    logit = keras.layers.Add(dtype="float32", name="conditional_logit")([logit, matches])
    return keras.Model([image, label], logit, name="discriminator")


def _optimizer(cfg: Config, info: dict, hp=None):
    optimizer = make_optimizer(cfg, info, hp)
    if hasattr(optimizer, "beta_1"):
        optimizer.beta_1 = cfg.beta_1  # DCGAN's 0.5 (read when the optimizer updates)
    return optimizer


def _augmentations(augment) -> tuple[str, ...]:
    names = tuple(augment.split(",") if isinstance(augment, str) else augment)
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise UserError(f"augment {unknown}: choose among {', '.join(AUGMENTATIONS)}")
    return names


def build_model(cfg: Config, info: dict, hp=None) -> GAN:
    """The compiled GAN (generator + discriminator, two Adam optimizers); `hp` may tune the sizes."""
    latent_dim = hp.Int("latent_dim", 16, 128, step=16, default=cfg.latent_dim) if hp else cfg.latent_dim
    g_filters = hp.Int("generator_filters", 16, 128, step=16, default=cfg.generator_filters) if hp else cfg.generator_filters
    d_filters = (hp.Int("discriminator_filters", 16, 128, step=16, default=cfg.discriminator_filters)
                 if hp else cfg.discriminator_filters)
    dropout = (hp.Float("discriminator_dropout", 0.0, 0.5, step=0.1, default=cfg.discriminator_dropout)
               if hp else cfg.discriminator_dropout)
    shape = tuple(info.get("image_shape", (28, 28, 1)))
    if shape[:2] != (28, 28):
        raise UserError(f"the DCGAN draws 28x28 images; the data has shape {shape}")
    classes = 0
    if cfg.conditional:
        classes = int(info.get("num_classes") or len(info.get("class_names") or []))
        if classes < 2:
            raise UserError("conditional=true needs labelled images (at least two classes); the data has none")
    gan = GAN(build_generator(latent_dim, g_filters, shape[-1], classes),
              build_discriminator(d_filters, dropout, shape, classes),
              latent_dim=latent_dim, label_smoothing=cfg.label_smoothing, instance_noise=cfg.instance_noise,
              seed=cfg.seed, augment=_augmentations(cfg.augment), ema=cfg.ema, num_classes=classes, name="dcgan")
    gan.compile(d_optimizer=_optimizer(cfg, info, hp), g_optimizer=_optimizer(cfg, info, hp))
    return gan


# ----------------------------------------------------------------------------- sampling
def generator_classes(generator: keras.Model) -> int:
    """How many labels a conditional generator knows (0 for an unconditional one)."""
    return generator.get_layer("label_embedding").input_dim if len(generator.inputs) > 1 else 0


def sample_labels(generator: keras.Model, n: int, digit: int | None = None) -> np.ndarray | None:
    """Labels to draw with: every class in turn (0, 1, ..., 9, 0, ...) or only `digit`.

    None for an unconditional generator.
    """
    classes = generator_classes(generator)
    if not classes:
        return None
    if digit is not None and not 0 <= digit < classes:
        raise UserError(f"digit={digit}: this generator draws labels 0..{classes - 1}")
    return np.full(n, digit, np.int32) if digit is not None else (np.arange(n) % classes).astype(np.int32)


def generate(generator: keras.Model, n: int, seed: int, batch_size: int = 500,
             digit: int | None = None) -> np.ndarray:
    """`n` uint8 images (n, 28, 28, C) from latents drawn with numpy's generator seeded by `seed`.

    A conditional generator draws every class in turn (or only `digit`): see `sample_labels`.
    """
    latent_dim = generator.inputs[0].shape[-1]
    latents = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
    labels = sample_labels(generator, n, digit)
    images = []
    for i in range(0, n, batch_size):
        z = latents[i: i + batch_size]
        inputs = z if labels is None else [z, labels[i: i + batch_size]]
        images.append(np.asarray(GAN.to_pixels(generator(inputs, training=False))))
    return np.round(np.concatenate(images)).astype(np.uint8)


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of samples from one fixed latent batch every `every` epochs; a GIF at the end.

    The latent batch never changes, so the grids show the same 'digits' sharpening over training.
    """

    def __init__(self, folder: Path, n: int = 64, every: int = 1, seed: int = 0):
        super().__init__()
        self.folder = Path(folder)
        self.every = every
        self.n, self.seed = n, seed

    def on_epoch_end(self, epoch, logs=None):
        if self.every and (epoch + 1) % self.every == 0:
            from dlapps import plots

            sampler = self.model.sampler
            classes = generator_classes(sampler)  # conditional: one column per digit
            images = generate(sampler, self.n if not classes else 6 * classes, self.seed)
            plots.image_grid(images, self.folder / f"epoch_{epoch + 1:03d}.png", columns=classes or 8)

    def on_train_end(self, logs=None):
        frames = sorted(self.folder.glob("epoch_*.png"))
        if frames:
            from PIL import Image

            images = [Image.open(frame).convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
            images[0].save(self.folder / "training.gif", save_all=True, append_images=images[1:],
                           duration=300, loop=0)


def callbacks(cfg: Config, run_dir: Path, data) -> list:
    """The sample-grid callback (grids in <run>/samples/, an animated GIF at the end)."""
    if cfg.grid_every <= 0:
        return []
    return [SampleGrid(Path(run_dir) / "samples", every=cfg.grid_every, seed=cfg.seed)]


# ----------------------------------------------------------------------------- evaluation
def _images(dataset) -> np.ndarray:
    batches = [x for x, _ in batched(dataset, 1024).as_numpy_iterator()]
    if not batches:
        raise UserError("no images to evaluate")
    return np.concatenate(batches)


def evaluate(model: GAN, data, cfg: Config) -> dict[str, float]:
    """GAN losses on the test split and, with the MNIST classifier, the classifier FID and label stats.

    classifier_fid: `fid_samples` generated digits against the real test digits.
    classifier_fid_real_floor: two halves of the real test digits against each other.
    classifier_fid_untrained_ceiling: a freshly initialised generator against the real test digits.
    label_agreement (conditional GANs): share of samples the classifier labels as the digit asked for.
    """
    results = model.evaluate(batched(data.test, 256), verbose=0, return_dict=True)
    out = {f"test_{k}" if not k.startswith("d_") and not k.startswith("g_") else k: float(v)
           for k, v in results.items()}
    classifier = gan_metrics.load_classifier(cfg.classifier)
    if classifier is None:
        print(f"dlapps: gan: classifier {cfg.classifier} not found, so no classifier FID; train it with "
              f"`dlapps train mnist --save` or pass --set classifier=PATH", file=sys.stderr)
        return out
    extractor = gan_metrics.feature_model(classifier, cfg.feature_layer)
    real = _images(data.test)
    samples = generate(model.sampler, cfg.fid_samples, cfg.seed)
    real_features, real_probabilities = gan_metrics.features_and_probabilities(extractor, real)
    sample_features, sample_probabilities = gan_metrics.features_and_probabilities(extractor, samples)
    out["classifier_fid"] = gan_metrics.frechet_distance(sample_features, real_features)
    order = np.random.default_rng(cfg.seed).permutation(len(real))
    half = len(real) // 2
    if half >= 2:
        out["classifier_fid_real_floor"] = gan_metrics.frechet_distance(
            real_features[order[:half]], real_features[order[half:]])
    untrained = keras.models.clone_model(model.generator)  # same architecture, fresh weights
    untrained_features, _ = gan_metrics.features_and_probabilities(
        extractor, generate(untrained, min(cfg.fid_samples, 2000), cfg.seed))
    out["classifier_fid_untrained_ceiling"] = gan_metrics.frechet_distance(untrained_features, real_features)
    for prefix, probabilities in (("", sample_probabilities), ("real_", real_probabilities)):
        for key, value in gan_metrics.label_statistics(probabilities, cfg.confidence).items():
            out[prefix + key] = value
    requested = sample_labels(model.sampler, len(samples))
    if requested is not None:  # conditional: does the classifier read the digit that was asked for?
        out["label_agreement"] = float(np.mean(sample_probabilities.argmax(axis=1) == requested))
    out["fid_samples"] = int(len(samples))
    out["fid_real_images"] = int(len(real))
    return out


def make_plots(model: GAN, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """64 samples, labelled by the MNIST classifier (with its confidence) when it is available."""
    from dlapps import plots

    samples = generate(model.sampler, 64, cfg.seed)
    titles = None
    classifier = gan_metrics.load_classifier(cfg.classifier)
    if classifier is not None:
        _, probabilities = gan_metrics.features_and_probabilities(
            gan_metrics.feature_model(classifier, cfg.feature_layer), samples)
        names = data.info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
        titles = [f"{names[p.argmax()]} {p.max():.2f}" for p in probabilities]
    columns = generator_classes(model.sampler) or 8  # conditional: one column per digit
    return [plots.image_grid(samples, Path(plots_dir) / "samples.png", titles=titles, columns=columns)]


# ----------------------------------------------------------------------------- predict
PREDICT_OPTIONS = {"n": 64, "digit": -1, "output": "gan_samples.png"}
"""predict only: how many digits to draw (n); with a conditional GAN only this digit (-1: every
digit in turn); where to write the PNG grid when no path is given as the input (output)."""


def predict(model: GAN, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """Draw `options["n"]` new digits (seeded by `cfg.seed`) into a PNG grid.

    The grid goes to the input path when one is given, else to `options["output"]`; an existing
    file is replaced only with `options["overwrite"]` (the CLI's --overwrite).
    Raises UserError for more than one input, n < 1, a path not ending in .png, an existing file
    without overwrite, or a digit that the
    generator cannot be asked for (an unconditional GAN, or a label outside its classes).
    """
    from dlapps import plots

    if len(inputs) > 1:
        raise UserError("gan predict takes at most one input: the PNG file to write "
                        "(e.g. dlapps predict gan samples.png --set n=64 --set seed=0)")
    n = int(options["n"])
    if n < 1:
        raise UserError(f"n={n}: draw at least one digit")
    generator = model.sampler if isinstance(model, GAN) else model
    path = Path(inputs[0] if inputs else options["output"])
    if path.suffix.lower() != ".png":
        raise UserError(f"{path}: the grid is written as PNG; give a path ending in .png")
    replaced = path.exists()
    if replaced and not options.get("overwrite", False):
        raise UserError(f"{path} exists already; pass --overwrite to replace it, or give another .png path")
    digit = None if int(options["digit"]) < 0 else int(options["digit"])
    if digit is not None and not generator_classes(generator):
        raise UserError(f"digit={digit}: this GAN is unconditional (trained without labels), so it cannot be "
                        "asked for a digit; train with --set conditional=true")
    images = generate(generator, n, cfg.seed, digit=digit)
    classes = generator_classes(generator)
    plots.image_grid(images, path, columns=min(classes if classes and digit is None else 8, n))
    what = f"generated {'digits' if digit is None else f'{digit}s'}"
    return [f"wrote {path}: {n} {what} (seed {cfg.seed}){' (replaced the old file)' if replaced else ''}"]
