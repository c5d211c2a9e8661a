"""Autoencoders for 28x28 images: encoder and decoder as functional models, the autoencoder as
their composition; deterministic (ae) or variational (vae); dense or convolutional.

    image (0..255) -> encoder -> code (code_dim) -> decoder -> reconstruction in [0, 1]

The bottleneck forces the network to keep only what it needs to redraw the image: the code is
a compressed description, the reconstruction error says how typical an image is (anomaly
detection), and with noisy inputs and clean targets the network learns to denoise.
The variational version (Kingma & Welling 2014) makes the encoder output a Gaussian
N(mean, exp(log_var)) per image and samples the code from it (reparameterization trick, in
`dlapps.layers.VAESampling`), with a KL term pulling every Gaussian towards N(0, I), so that
decoding codes drawn from N(0, I) gives new images.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from dlapps.data.digits import model_labels, read_digits
from dlapps.data.images import is_blank
from dlapps.data.pipeline import batched
from dlapps.errors import UserError
from dlapps.layers import VAESampling
from dlapps.optim import make_optimizer
from dlapps.tasks.autoencoder.config import Config

SHAPE = (28, 28, 1)
PIXELS = SHAPE[0] * SHAPE[1] * SHAPE[2]


# ----------------------------------------------------------------------------- networks
def build_encoder(architecture: str, code_dim: int, filters: int, units: int, variant: str,
                  kl_weight: float = 1.0, seed: int | None = None) -> keras.Model:
    """Raw pixels (28, 28, 1), 0..255 -> code (code_dim,); for a VAE the code is sampled in training.

    Raises UserError for an architecture other than conv/dense or a variant other than ae/vae.
    """
    image = keras.Input(SHAPE, name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="to_unit_range")(image)
    if architecture == "conv":
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name="conv_14x14")(x)
        x = keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu", name="conv_7x7")(x)
        x = keras.layers.Flatten(name="flatten")(x)
    elif architecture == "dense":
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(units, activation="relu", name="hidden_0")(x)
        x = keras.layers.Dense(units // 2, activation="relu", name="hidden_1")(x)
    else:
        raise UserError(f"architecture={architecture!r}: choose conv or dense")
    if variant == "ae":
        code = keras.layers.Dense(code_dim, name="code")(x)
    elif variant == "vae":
        mean = keras.layers.Dense(code_dim, name="code_mean")(x)
        log_var = keras.layers.Dense(code_dim, name="code_log_var")(x)
        code = VAESampling(kl_weight=kl_weight, seed=seed, name="code")([mean, log_var])
    else:
        raise UserError(f"variant={variant!r}: choose ae or vae")
    return keras.Model(image, code, name="encoder")


def build_decoder(architecture: str, code_dim: int, filters: int, units: int) -> keras.Model:
    """Code (code_dim,) -> image (28, 28, 1) in [0, 1] (sigmoid): the encoder's mirror image."""
    code = keras.Input((code_dim,), name="code")
    if architecture == "conv":
        x = keras.layers.Dense(7 * 7 * 2 * filters, activation="relu", name="project")(code)
        x = keras.layers.Reshape((7, 7, 2 * filters), name="to_7x7")(x)
        x = keras.layers.Conv2DTranspose(2 * filters, 3, strides=2, padding="same", activation="relu",
                                         name="up_14x14")(x)
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu",
                                         name="up_28x28")(x)
        image = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", dtype="float32",
                                    name="pixels")(x)
    else:
        x = keras.layers.Dense(units // 2, activation="relu", name="hidden_0")(code)
        x = keras.layers.Dense(units, activation="relu", name="hidden_1")(x)
        x = keras.layers.Dense(PIXELS, activation="sigmoid", dtype="float32", name="pixels")(x)
        image = keras.layers.Reshape(SHAPE, name="image")(x)
    return keras.Model(code, image, name="decoder")


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """The compiled autoencoder decoder(encoder(image)); `hp` may tune code size, width, learning rate.

    Input: pixels (N, 28, 28, 1) 0..255 (float or uint8); output: reconstructions in [0, 1], float32.
    Raises UserError for a loss other than bce/mse, a bad architecture/variant, or images that
    are not 28x28x1 (`info["image_shape"]`).
    """
    code_dim = hp.Int("code_dim", 2, 64, default=cfg.code_dim) if hp else cfg.code_dim
    filters = hp.Int("filters", 16, 64, step=16, default=cfg.filters) if hp else cfg.filters
    units = hp.Int("units", 64, 512, step=64, default=cfg.units) if hp else cfg.units
    if cfg.loss not in ("bce", "mse"):
        raise UserError(f"loss={cfg.loss!r}: choose bce or mse")
    if tuple(info.get("image_shape", SHAPE)) != SHAPE:
        raise UserError(f"the autoencoder takes 28x28 gray images; the data has shape {info['image_shape']}")
    # The reconstruction loss is a mean over the 784 pixels, so the KL term (a sum over the code)
    # is divided by 784 too: the ELBO, up to a constant factor.
    encoder = build_encoder(cfg.architecture, code_dim, filters, units, cfg.variant,
                            kl_weight=cfg.kl_weight / PIXELS, seed=cfg.seed)
    decoder = build_decoder(cfg.architecture, code_dim, filters, units)
    image = keras.Input(SHAPE, name="image")
    # A list of one named input: the dataset's {"image", "label"} dict feeds it by name (the
    # label stays out of the model), and a plain image batch works too.
    model = keras.Model([image], decoder(encoder(image)), name=f"{cfg.architecture}_{cfg.variant}")
    loss = keras.losses.BinaryCrossentropy() if cfg.loss == "bce" else keras.losses.MeanSquaredError()
    model.compile(optimizer=make_optimizer(cfg, info, hp), loss=loss,
                  metrics=[keras.metrics.MeanSquaredError(name="mse"),
                           keras.metrics.BinaryCrossentropy(name="bce")])
    return model


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder sub-model (raw image -> code) of a built or loaded autoencoder."""
    return model.get_layer("encoder")


def decoder_of(model: keras.Model) -> keras.Model:
    """The decoder sub-model (code -> image in [0, 1]) of a built or loaded autoencoder."""
    return model.get_layer("decoder")


# ----------------------------------------------------------------------------- evaluation
def reconstruct(model: keras.Model, dataset) -> dict[str, np.ndarray]:
    """inputs (pixels 0..255), clean targets, reconstructions (both in [0, 1]) and labels of a split.

    `dataset`: unbatched pairs as `make_dataset` builds them; arrays (N, 28, 28, 1), labels (N,).
    Raises UserError for an empty split.
    """
    parts: dict[str, list] = {"inputs": [], "clean": [], "reconstruction": [], "label": []}
    for inputs, clean in batched(dataset, 512).as_numpy_iterator():
        parts["inputs"].append(inputs["image"])
        parts["label"].append(inputs["label"])
        parts["clean"].append(clean)
        parts["reconstruction"].append(np.asarray(model.predict_on_batch(inputs["image"])))
    if not parts["inputs"]:
        raise UserError("no images to evaluate")
    return {key: np.concatenate(values) for key, values in parts.items()}


def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Per-pixel MSE and binary cross-entropy on the test split; the anomaly ROC AUC when a class
    was left out of training (score: the image's reconstruction MSE)."""
    from sklearn.metrics import roc_auc_score

    parts = reconstruct(model, data.test)
    names = data.info.get("class_names")
    if names:  # an image folder's labels as the model's classes (the anomaly class is one of them)
        parts["label"] = model_labels(parts["label"], cfg, names)
    clean, recon = parts["clean"], np.clip(parts["reconstruction"], 1e-7, 1 - 1e-7)
    per_image = np.mean((recon - clean) ** 2, axis=(1, 2, 3))
    bce = -(clean * np.log(recon) + (1 - clean) * np.log(1 - recon))
    out = {"mse": float(per_image.mean()), "bce": float(bce.mean()), "n": int(len(clean))}
    if cfg.noise > 0:  # how much the model removed: the error of just passing the noisy input on
        out["mse_noisy_input"] = float(np.mean((parts["inputs"] / 255.0 - clean) ** 2))
    anomaly = cfg.anomaly_class if cfg.anomaly_class is not None else data.info.get("anomaly_class")
    if anomaly is not None:
        is_anomaly = parts["label"] == anomaly
        if is_anomaly.any() and not is_anomaly.all():
            out["anomaly_auc"] = float(roc_auc_score(is_anomaly, per_image))
            out["mse_normal"] = float(per_image[~is_anomaly].mean())
            out["mse_anomaly"] = float(per_image[is_anomaly].mean())
    return out


# ----------------------------------------------------------------------------- plots
def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Reconstructions, the code space in 2-D coloured by class, anomaly scores, VAE samples."""
    import matplotlib.pyplot as plt

    from dlapps import plots

    plots_dir = Path(plots_dir)
    parts = reconstruct(model, data.test)
    names = data.info.get("class_names") or [str(i) for i in range(int(parts["label"].max()) + 1)]
    # Reconstructions: rows of inputs, (clean targets,) reconstructions.
    k = 8
    rows = [parts["inputs"][:k] / 255.0] + ([parts["clean"][:k]] if cfg.noise > 0 else []) + [parts["reconstruction"][:k]]
    row_names = ["noisy input" if cfg.noise > 0 else "input"] + (["clean"] if cfg.noise > 0 else []) + ["reconstruction"]
    titles = [f"{name}: {names[label]}" if row == 0 else name for row, name in enumerate(row_names)
              for label in parts["label"][:k]]
    written = [plots.image_grid(np.concatenate(rows), plots_dir / "reconstructions.png", titles=titles, columns=k)]

    # The code space: the codes themselves when 2-D, else their first two principal components.
    codes = np.asarray(encoder_of(model).predict(parts["inputs"], batch_size=512, verbose=0))
    if codes.shape[1] > 2:
        from sklearn.decomposition import PCA

        points, axis_name = PCA(2, random_state=0).fit_transform(codes), "principal component"
    else:
        points, axis_name = codes, "code"
    fig, ax = plt.subplots(figsize=(6, 5))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=parts["label"], cmap="tab10", s=6, alpha=0.7,
                         vmin=-0.5, vmax=9.5 if len(names) <= 10 else len(names) - 0.5)
    colorbar = fig.colorbar(scatter, ax=ax, ticks=range(len(names)))
    colorbar.ax.set_yticklabels(names)
    ax.set_xlabel(f"{axis_name} 1")
    ax.set_ylabel(f"{axis_name} 2")
    ax.set_title(f"test images in the {codes.shape[1]}-d code space" + (" (PCA)" if codes.shape[1] > 2 else ""))
    written.append(plots.save_figure(fig, plots_dir / "latent_space.png"))

    anomaly = cfg.anomaly_class if cfg.anomaly_class is not None else data.info.get("anomaly_class")
    if anomaly is not None and (parts["label"] == anomaly).any():
        errors = np.mean((parts["reconstruction"] - parts["clean"]) ** 2, axis=(1, 2, 3))
        fig, ax = plt.subplots(figsize=(6, 3.6))
        bins = np.linspace(0, np.quantile(errors, 0.995), 50)
        ax.hist(errors[parts["label"] != anomaly], bins=bins, alpha=0.6, density=True, label="trained classes")
        ax.hist(errors[parts["label"] == anomaly], bins=bins, alpha=0.6, density=True,
                label=f"left-out class {names[anomaly]}")
        ax.set_xlabel("reconstruction MSE per image (the anomaly score)")
        ax.set_ylabel("density")
        ax.legend()
        written.append(plots.save_figure(fig, plots_dir / "anomaly_scores.png"))

    if cfg.variant == "vae":  # new images: decode codes drawn from the prior N(0, I)
        decoder = decoder_of(model)
        codes = np.random.default_rng(cfg.seed).standard_normal((32, decoder.inputs[0].shape[-1])).astype(np.float32)
        written.append(plots.image_grid(np.asarray(decoder.predict(codes, verbose=0)),
                                        plots_dir / "samples_from_prior.png"))
    return written


# ----------------------------------------------------------------------------- predict
PREDICT_OPTIONS = {"invert": "auto"}
"""predict only: invert dark-on-light images to MNIST's light-on-dark: auto (by the border), yes, no."""


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """Reconstruct each image file; write `<name>.reconstruction.png` next to it (28x28 gray).

    Each file is read as train and evaluate read a folder's files (`dlapps.data.digits.read_digit`,
    `options["invert"]`); a blank one is reconstructed with a warning. Nothing is overwritten
    unless `options["overwrite"]` (the CLI's --overwrite). Raises UserError without inputs, for a
    missing or unreadable file, when an output exists already (before anything is written), or
    when the PNG cannot be written.
    """
    from PIL import Image

    if not inputs:
        raise UserError("give one or more image files, e.g. dlapps predict autoencoder digit.png")
    paths = list(map(Path, inputs))
    targets = [path.with_name(f"{path.stem}.reconstruction.png") for path in paths]
    existing = [str(target) for target in targets if target.exists()]
    if existing and not options.get("overwrite", False):
        raise UserError(f"{existing[0]}{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''} "
                        f"exists already; pass --overwrite to replace it, or move it away")
    images, _ = read_digits(inputs, options["invert"], center=info.get("dataset", "mnist") == "mnist")
    reconstructions = np.asarray(model.predict(images.astype(np.float32), verbose=0))
    lines = []
    for path, target, image, reconstruction in zip(paths, targets, images, reconstructions):
        error = float(np.mean((reconstruction - image / 255.0) ** 2))
        replaced = target.exists()
        try:
            Image.fromarray(np.round(reconstruction[..., 0] * 255).astype(np.uint8), mode="L").save(target)
        except OSError as err:
            raise UserError(f"cannot write {target} ({err.strerror}); copy the image to a writable folder") from None
        lines.append(f"{path} -> {target} (per-pixel MSE {error:.4f} against the 28x28 MNIST-style input)"
                     + (" (replaced the old file)" if replaced else "")
                     + ("  [warning: blank image]" if is_blank(image) else ""))
    return lines
