"""The imagenet task's configuration: backbone, weights, the two training phases, the scratch baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlapps.config import TrainConfig


@dataclass(frozen=True)
class Config(TrainConfig):
    """Transfer learning with a pretrained backbone, and ImageNet inference."""

    source: Literal["embedded", "tf_flowers", "file"] = "embedded"
    """embedded (digits 5-9, offline), tf_flowers (tfds download), or file (--data FOLDER of class sub-folders)."""
    backbone: str = "mobilenet_v2"
    """A keras.applications network by name (mobilenet_v2, efficientnet_b0, resnet50, ...) or 'digits'.
    A free string, not a Literal: Keras' own spellings (MobileNetV2, mobilenet-v2) are accepted too;
    `backbones.canonical` checks it and lists the known names."""
    weights: str = "pretrained"
    """pretrained (the backbone's own: ImageNet for keras.applications, downloaded; the committed file for
    digits), imagenet, none (random init), a weights file path (.h5), or a saved backbone PATH.keras."""
    image_size: int = 0
    """Square input size; 0 = the backbone's own (224 for most keras.applications, 28 for digits)."""
    head_epochs: int = 5
    """Phase 1: epochs training only the new head on the frozen backbone."""
    fine_tune_epochs: int = 5
    """Phase 2: epochs fine-tuning the top `fine_tune_layers` of the backbone too (0 = no phase 2)."""
    fine_tune_layers: int = 20
    """How many of the backbone's top layers phase 2 unfreezes (batch-norm layers stay frozen)."""
    fine_tune_learning_rate: float = 1e-4
    """Phase 2 learning rate: small, so the pretrained features are adjusted, not destroyed."""
    dropout: float = 0.2
    """Dropout before the new classification head."""
    augment: bool = True
    """Random rotation/zoom/translation (and flips, see `flip`) inside the model, training only."""
    flip: bool = True
    """Random horizontal flips (turn off for digits and text, where mirroring changes the class)."""
    labels_per_class: int = 0
    """Keep only this many labelled training images per class (0 = all): the few-label setting."""
    compare_scratch: bool = False
    """Also train the same network from random weights on the same labels and report both accuracies."""
    scratch_learning_rate: float = 0.003
    """Learning rate of that from-scratch baseline (whole network trained, so a usual CNN rate)."""
    top_k: int = 5
    """How many classes `predict` prints per image, and the k of the top-k accuracy `evaluate` reports."""
