"""Layers for raw tabular inputs."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlapps")
class ImputeMissing(keras.layers.Layer):
    """Replaces NaN by `fill_value` and appends a 0/1 'was missing' indicator column.

    Input (batch, 1) float; output (batch, 2): [value or fill_value, missing indicator].
    """

    def __init__(self, fill_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.fill_value = float(fill_value)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        missing = ops.isnan(inputs)
        filled = ops.where(missing, ops.full_like(inputs, self.fill_value), inputs)
        return ops.concatenate([filled, ops.cast(missing, self.compute_dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package="dlapps")
class Log1p(keras.layers.Layer):
    """log(1 + max(x, 0)): tames long-tailed non-negative columns (counts, sizes); NaN stays NaN."""

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        return ops.log1p(ops.maximum(inputs, 0.0)) + ops.where(ops.isnan(inputs), inputs, 0.0)


@keras.saving.register_keras_serializable(package="dlapps")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """Piecewise-linear encoding of a number over fixed bin edges (Gorishniy et al., 2022).

    With edges b_0 < ... < b_T (training quantiles), bin t gives 1 when x >= b_t, 0 when
    x < b_{t-1}, and the fraction (x - b_{t-1}) / (b_t - b_{t-1}) in between: an MLP then sees
    where a value lies in the distribution, which helps it far more than one standardised
    number. A last column flags missing values (NaN), which encode as all zeros.
    Input (batch, 1); output (batch, T + 1).
    """

    def __init__(self, edges, **kwargs):
        super().__init__(**kwargs)
        self.edges = [float(e) for e in edges]

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        missing = ops.isnan(x)
        x = ops.where(missing, ops.zeros_like(x), x)
        low = ops.convert_to_tensor(self.edges[:-1], self.compute_dtype)
        width = ops.maximum(ops.convert_to_tensor(self.edges[1:], self.compute_dtype) - low, 1e-12)
        encoded = ops.clip((x - low) / width, 0.0, 1.0)
        encoded = ops.where(missing, ops.zeros_like(encoded), encoded)
        return ops.concatenate([encoded, ops.cast(missing, self.compute_dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.edges))

    def get_config(self):
        return {**super().get_config(), "edges": self.edges}


def periodic_waves(x, coefficients):
    """[cos(2 pi c x), sin(2 pi c x)] along the last axis, for `x` broadcast against the frequencies
    `coefficients` (..., k): (..., 2k). The waves of PeriodicEncoding and of ModernNCA's embedding."""
    angles = 2.0 * math.pi * x * coefficients
    return ops.concatenate([ops.cos(angles), ops.sin(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="dlapps")
class PeriodicEncoding(keras.layers.Layer):
    """Periodic features of a standardised number with trainable frequencies (Gorishniy et al., 2022).

    v(x) = [cos(2 pi c_1 x), ..., cos(2 pi c_k x), sin(2 pi c_1 x), ..., sin(2 pi c_k x)] with the
    k frequencies c_i initialised from N(0, sigma^2) and learned. Followed by a Dense + ReLU per
    column (the paper's "PLR" embedding), it lets an MLP draw sharp, local functions of one column
    (a price jump at one latitude) that a single standardised input makes hard to learn. `sigma`
    sets the initial frequency scale and matters most: too small is smooth, too large is noise.
    Input (batch, 1) standardised (NaN is encoded as 0, the mean: ImputeMissing flags it); output (batch, 2k).
    """

    def __init__(self, frequencies: int = 16, sigma: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.frequencies = int(frequencies)
        self.sigma = float(sigma)

    def build(self, input_shape):
        self.coefficients = self.add_weight(
            shape=(self.frequencies,), name="coefficients",
            initializer=keras.initializers.RandomNormal(stddev=self.sigma))

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return periodic_waves(ops.where(ops.isnan(x), ops.zeros_like(x), x), self.coefficients)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * self.frequencies)

    def get_config(self):
        return {**super().get_config(), "frequencies": self.frequencies, "sigma": self.sigma}
