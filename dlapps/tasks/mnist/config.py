"""The mnist task's configuration: data source, conv blocks, augmentation, regularisation."""

from __future__ import annotations

from dataclasses import dataclass

from dlapps.config import TrainConfig
from dlapps.data.digits import DigitDataset, DigitSource


@dataclass(frozen=True)
class Config(TrainConfig):
    """MNIST CNN: data source, conv blocks, augmentation, regularisation."""

    source: DigitSource = "embedded"
    """embedded (scikit-learn digits, offline), tfds, keras (keras.datasets), or file (--data .npz/folder)."""
    dataset: DigitDataset = "mnist"
    """mnist or fashion_mnist (Zalando's clothing images, same shape; tfds/keras sources or --data)."""
    conv_blocks: int = 2
    """Depth: LeNet-style blocks of [conv-BN-ReLU] x convs_per_block then 2x2 max-pooling."""
    convs_per_block: int = 2
    filters: int = 32
    """Width: filters of the first block; each further block doubles them."""
    dense_units: int = 128
    """Size of the penultimate 'features' layer (the embedding other tasks reuse)."""
    dropout: float = 0.3
    """Dropout before the classifier (and half of it after each conv block)."""
    batch_norm: bool = True
    augment: bool = True
    """Random distortions of the training batches (the amounts below), in the tf.data pipeline (not the model)."""
    rotation: float = 0.05
    """Max random rotation, as a fraction of a full turn (0.05 = 18 degrees)."""
    translation: float = 0.1
    """Max random shift, as a fraction of the image size."""
    zoom: float = 0.1
    """Max random zoom in or out, as a fraction."""
    elastic_alpha: float = 0.0
    """Elastic distortion (Simard et al. 2003) strength, in pixels of displacement; 0 = off."""
    elastic_sigma: float = 4.0
    """Smoothness of the elastic displacement field: the Gaussian's standard deviation, in pixels."""
    stroke_width: float = 0.0
    """Random stroke thickening/thinning: the largest step (0-1) towards a 3x3 dilation or erosion; 0 = off."""
