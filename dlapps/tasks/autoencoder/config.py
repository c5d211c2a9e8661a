"""The autoencoder task's configuration: architecture, code size, loss, noise, anomaly class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlapps.config import TrainConfig
from dlapps.data.digits import DigitDataset, DigitSource


@dataclass(frozen=True)
class Config(TrainConfig):
    """(Denoising / variational) autoencoder for 28x28 images: architecture, code size, loss, noise."""

    source: DigitSource = "embedded"
    """Images from the shared digit sources (dlapps.data.digits): embedded (scikit-learn digits), tfds,
    keras, or file (--data)."""
    dataset: DigitDataset = "mnist"
    """mnist or fashion_mnist (tfds/keras sources or --data)."""
    architecture: Literal["conv", "dense"] = "conv"
    """conv (strided convolutions / transposed convolutions) or dense (an MLP on the 784 pixels)."""
    variant: Literal["ae", "vae"] = "ae"
    """ae (deterministic code) or vae (variational: the encoder outputs a Gaussian, KL term, sampling)."""
    code_dim: int = 32
    """Size of the code (latent vector) the image is squeezed through."""
    filters: int = 32
    """conv: channels of the first encoder convolution (the second has twice as many)."""
    units: int = 256
    """dense: width of the hidden layers of encoder and decoder."""
    loss: Literal["bce", "mse"] = "bce"
    """Reconstruction loss per pixel: bce (binary cross-entropy, pixels as probabilities) or mse."""
    kl_weight: float = 1.0
    """vae: beta, the weight of the KL term relative to the summed per-pixel reconstruction loss."""
    noise: float = 0.0
    """Denoising: std of Gaussian noise added to the inputs (pixels in [0, 1] units); 0 = plain autoencoder."""
    anomaly_class: int | None = None
    """Leave this class out of training; the test split then reports the ROC AUC of detecting it."""
    cache: bool = False
    """Off by default: caching would freeze the first epoch's noise draw (data are in memory anyway)."""
