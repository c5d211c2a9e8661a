"""The tabular task's configuration: data source, target column, MLP shape and regularisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlapps.config import TrainConfig


@dataclass(frozen=True)
class Config(TrainConfig):
    """Tabular regression: data source, target column, MLP shape and regularisation."""

    source: Literal["embedded", "california_housing", "file"] = "embedded"
    """embedded (scikit-learn diabetes), california_housing (download), or file (--data CSV)."""
    target: str = "target"
    """Name of the column to predict."""
    model: Literal["mlp", "nca"] = "mlp"
    """mlp (a multilayer perceptron on the encoded columns) or nca (ModernNCA, Ye et al. 2024: the
    mean target of the training rows nearest in a learned embedding; see tasks/tabular/nca.py)."""
    units: int = 128
    """Hidden width (mlp), or the width of the learned embedding (nca)."""
    depth: int = 3
    """Hidden layers (mlp), or residual blocks after the embedding's projection (nca; 0 = linear)."""
    ensemble: int = 1
    """Members of a packed MLP ensemble (k MLPs of `units` x `depth` on the shared column encodings,
    computed as one batched layer, each trained on its own error, predicting their mean; TabM-style,
    Gorishniy et al. 2024). 1: one MLP."""
    activation: str = "relu"
    """Any Keras activation name (relu, gelu, selu, elu, tanh, swish, ...)."""
    dropout: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    """L1 penalty λ·Σ|w| on the hidden layers' kernels, as `l2` (both may be set); it drives weights the
    data do not defend to about zero (lesson_regularization §3)."""
    batch_norm: bool = False
    loss: Literal["mse", "huber"] = "mse"
    """mse or huber (both on the standardised target)."""
    embedding_dim: int = 8
    """String columns with more than `one_hot_max` categories are embedded with this size."""
    one_hot_max: int = 12
    kernel_initializer: str = "he_normal"
    log_skewed: bool = True
    """Feed log(1 + x) of non-negative numeric columns whose skewness exceeds 2 (counts, sizes)."""
    numeric_encoding: Literal["standardize", "piecewise", "periodic"] = "standardize"
    """standardize (z-score + missing flag); piecewise (piecewise-linear encoding over quantile bins);
    or periodic (z-score + missing flag + a learned periodic embedding per column, see PeriodicEncoding)."""
    periodic_frequencies: int = 16
    """numeric_encoding=periodic: frequencies per column (each gives a cosine and a sine)."""
    periodic_sigma: float = 1.0
    """numeric_encoding=periodic: std of the initial frequencies (in units of the standardised column)."""
    periodic_dim: int = 16
    """numeric_encoding=periodic: size of each column's embedding (Dense + ReLU over its waves)."""
    bins: int = 16
    """Quantile bins per numeric column for numeric_encoding=piecewise."""
    sample_rate: float = 0.3
    """model=nca: the share of training rows each training step compares a batch with (stochastic
    neighbourhood sampling; evaluation and prediction use them all)."""
    temperature: float = 1.0
    """model=nca: softmax temperature over negative embedding distances."""
