"""Layers for raw tabular inputs."""

from __future__ import annotations

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
