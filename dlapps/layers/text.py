"""Layers for raw-text models: sequence truncation and a decision threshold saved with the model."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlapps")
class TruncateSequence(keras.layers.Layer):
    """Keeps the first `max_length` positions of a (batch, time, ...) tensor.

    After a `TextVectorization` without a fixed `output_sequence_length`, each batch is padded
    only to its own longest text, so batches of short texts run a recurrent layer for few steps;
    this layer caps the long ones (the cost of an LSTM grows with the number of time steps).
    A batch in which no text has a token ((batch, 0)) gets one padding step (id 0, masked
    downstream), so a recurrent layer never sees an empty sequence.
    """

    def __init__(self, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)

    def call(self, inputs):
        truncated = inputs[:, : self.max_length]
        shape = keras.ops.shape(truncated)

        def one_padding_step():
            return keras.ops.zeros((shape[0], 1, *shape[2:]), dtype=truncated.dtype)

        return keras.ops.cond(shape[1] > 0, lambda: truncated, one_padding_step)

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        return (input_shape[0], None if time is None else min(time, self.max_length), *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


@keras.saving.register_keras_serializable(package="dlapps")
class DecisionThreshold(keras.layers.Layer):
    """Passes probabilities through unchanged and carries the decision threshold in the model.

    A binary classifier trained on imbalanced classes (spam) decides best at a threshold other
    than 0.5: it is chosen on the validation split after training and stored here as a
    non-trainable weight, so it is saved in `model.keras` and travels with the model.
    Read it with `float(layer.threshold)`; `assign_threshold` sets it.
    """

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.initial_threshold = float(threshold)

    def build(self, input_shape):
        self.threshold = self.add_weight(
            name="threshold", shape=(), trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(self.initial_threshold))

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def assign_threshold(self, value: float) -> None:
        """Set the threshold (e.g. the best-F1 threshold found on validation data)."""
        self.threshold.assign(float(value))

    def get_config(self):
        return {**super().get_config(), "threshold": self.initial_threshold}


@keras.saving.register_keras_serializable(package="dlapps")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over time of (batch, time, features), ignoring masked (padding) steps.

    Keras' GlobalMaxPooling1D ignores the mask, so padding (zeros from a masked RNN) would take
    part in the max. A text with no unmasked step gives zeros.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
        lowest = ops.full_like(inputs, -1e9)
        pooled = ops.max(ops.where(valid, inputs, lowest), axis=1)
        return ops.where(ops.any(valid, axis=1), pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="dlapps")
class NotPadding(keras.layers.Layer):
    """True where a (batch, time) tensor of token ids is not padding (id 0), as a bool tensor.

    A mask passed explicitly: to layers after one that drops the Keras mask (such as Conv1D),
    or to the Transformer blocks, which take their padding masks as arguments.
    """

    def call(self, token_ids):
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="dlapps")
class ZeroMasked(keras.layers.Layer):
    """Sets masked (padding) steps of (batch, time, features) to zero and drops the mask.

    For layers that do not support masking (Conv1D): they then see zero vectors at padding,
    and Keras does not warn that the mask is lost.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs
        return inputs * ops.expand_dims(ops.cast(mask, inputs.dtype), -1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return input_shape
