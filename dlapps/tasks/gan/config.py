"""The gan task's configuration: network sizes, stabilisers, and how samples are evaluated."""

from __future__ import annotations

from dataclasses import dataclass

from dlapps.config import TrainConfig
from dlapps.data.digits import DigitDataset, DigitSource


@dataclass(frozen=True)
class Config(TrainConfig):
    """DCGAN on 28x28 digits: sizes, stabilisers, and how samples are evaluated."""

    source: DigitSource = "embedded"
    """Images from the shared digit sources (dlapps.data.digits): embedded (scikit-learn digits), tfds,
    keras, or file (--data)."""
    dataset: DigitDataset = "mnist"
    """mnist or fashion_mnist (tfds/keras sources or --data)."""
    batch_size: int = 64
    learning_rate: float = 2e-4
    """Both networks' Adam learning rate (DCGAN paper: 2e-4)."""
    beta_1: float = 0.5
    """Adam's first-moment decay for both networks (DCGAN: 0.5; Keras' default 0.9 oscillates more)."""
    early_stopping_patience: int = 0
    """0: off. GAN losses do not measure sample quality, so they make a poor stopping signal."""
    latent_dim: int = 64
    """Size of the noise vector z the generator maps to an image."""
    generator_filters: int = 64
    """Width of the generator: 2x this many channels at 7x7, this many at 14x14."""
    discriminator_filters: int = 64
    """Width of the discriminator: this many channels at 14x14, 2x at 7x7."""
    discriminator_dropout: float = 0.3
    """Dropout after each discriminator block (keeps D from winning too early)."""
    label_smoothing: float = 0.1
    """One-sided label smoothing: real images get target 1 - this (Salimans et al. 2016)."""
    instance_noise: float = 0.0
    """Std of Gaussian noise added to both real and fake images seen by D (in [-1, 1] units)."""
    augment: tuple = ()
    """DiffAugment policies applied to every image the discriminator sees, real and generated:
    translation, cutout (Zhao et al. 2020; keeps D from memorising a small training set)."""
    conditional: bool = False
    """Class-conditional GAN: the generator is asked for a digit, the discriminator judges
    (image, label) pairs (projection discriminator); needs labelled images."""
    ema: float = 0.0
    """Momentum of a moving average of the generator's weights used for sampling (e.g. 0.999); 0: off."""
    classifier: str = "saved_models/mnist/model.keras"
    """The digit classifier whose penultimate features give the classifier FID."""
    feature_layer: str = "features"
    """The classifier layer whose output is the FID feature vector."""
    fid_samples: int = 10_000
    """Generated images scored by the classifier FID and label statistics."""
    confidence: float = 0.9
    """A sample counts as 'confident' when the classifier's top probability exceeds this."""
    grid_every: int = 1
    """Save a grid of samples from a fixed latent batch every this many epochs (0: never)."""
