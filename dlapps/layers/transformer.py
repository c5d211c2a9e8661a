"""Transformer building blocks (Vaswani et al., 2017): positional embedding, encoder and decoder blocks.

Written with `keras.ops` only, so they run on every Keras backend (TensorFlow, JAX, PyTorch).
Masks are explicit: each block receives the token ids' padding masks (True = a real token)
instead of relying on Keras mask propagation, which keeps the data flow visible.

    ids ──PositionalEmbedding──► x ──[EncoderBlock × N]──► context
    target ids ──PositionalEmbedding──► y ──[DecoderBlock(y, context) × N]──► hidden states

Blocks use pre-layer-normalisation (`x + sublayer(norm(x))`, Xiong et al., 2020), which trains
reliably with a short warm-up; the stacks end with one more LayerNormalization.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dlapps.layers.text import NotPadding


def sinusoids(length: int, depth: int) -> np.ndarray:
    """The (length, depth) sinusoidal position codes: sin on even, cos on odd channels."""
    positions = np.arange(length)[:, None]
    rates = 1.0 / np.power(10_000.0, (2 * (np.arange(depth) // 2)) / depth)
    angles = positions * rates[None, :]
    codes = np.zeros((length, depth), dtype="float32")
    codes[:, 0::2] = np.sin(angles[:, 0::2])
    codes[:, 1::2] = np.cos(angles[:, 1::2])
    return codes


@keras.saving.register_keras_serializable(package="dlapps")
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding x sqrt(d_model) + fixed sinusoidal position codes, then dropout.

    Input: int token ids (batch, length <= max_length). Output: (batch, length, d_model).
    """

    def __init__(self, vocab_size: int, max_length: int, d_model: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_length, self.d_model = int(vocab_size), int(max_length), int(d_model)
        self.dropout = float(dropout)
        self.token_embedding = keras.layers.Embedding(self.vocab_size, self.d_model, name="tokens")
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        self._codes = sinusoids(self.max_length, self.d_model)

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.built = True

    def call(self, ids, training=None):
        length = ops.shape(ids)[1]
        x = self.token_embedding(ids) * ops.cast(ops.sqrt(float(self.d_model)), self.compute_dtype)
        codes = ops.cast(ops.convert_to_tensor(self._codes), self.compute_dtype)[:length]
        return self.dropout_layer(x + codes[None, :, :], training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.d_model)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "max_length": self.max_length,
                "d_model": self.d_model, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="dlapps")
class PaddingMask(NotPadding):
    """`NotPadding` under the name the Transformer's saved models use: (batch, length) bool."""


def _feed_forward(d_model: int, ff_dim: int, dropout: float, name: str) -> keras.Sequential:
    return keras.Sequential([keras.layers.Dense(ff_dim, activation="relu", name="expand"),
                             keras.layers.Dropout(dropout),
                             keras.layers.Dense(d_model, name="project")], name=name)


@keras.saving.register_keras_serializable(package="dlapps")
class TransformerEncoderBlock(keras.layers.Layer):
    """Self-attention over the source, then a position-wise feed-forward net; residual + LayerNorm.

    call(x, padding_mask): x (batch, length, d_model), padding_mask (batch, length) bool.
    """

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.ff_dim, self.dropout = int(d_model), int(num_heads), int(ff_dim), float(dropout)
        self.attention = keras.layers.MultiHeadAttention(num_heads, self.d_model // self.num_heads,
                                                         dropout=self.dropout, name="self_attention")
        self.feed_forward = _feed_forward(self.d_model, self.ff_dim, self.dropout, "feed_forward")
        self.norm_attention = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_attention")
        self.norm_feed_forward = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_feed_forward")
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        self.norm_attention.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm_feed_forward.build(input_shape)
        self.feed_forward.build(input_shape)
        self.built = True

    def call(self, x, padding_mask, training=None, return_attention_scores=False):
        # Every query may look at every real (non-padding) source token: mask (batch, 1, length).
        attention_mask = padding_mask[:, None, :]
        h = self.norm_attention(x)
        h, scores = self.attention(h, h, attention_mask=attention_mask, training=training,
                                   return_attention_scores=True)
        x = x + self.drop(h, training=training)
        x = x + self.drop(self.feed_forward(self.norm_feed_forward(x), training=training), training=training)
        return (x, scores) if return_attention_scores else x

    def compute_output_shape(self, x_shape, padding_mask_shape):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="dlapps")
class TransformerDecoderBlock(keras.layers.Layer):
    """Causal self-attention, cross-attention to the encoder output, feed-forward; residual + LayerNorm.

    call(y, context, target_mask, context_mask): y (batch, T, d), context (batch, S, d),
    masks (batch, T) and (batch, S) bool. Position t attends only to target positions <= t
    (the causal mask), so training with teacher forcing never lets a position see its answer.
    """

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.ff_dim, self.dropout = int(d_model), int(num_heads), int(ff_dim), float(dropout)
        key_dim = self.d_model // self.num_heads
        self.self_attention = keras.layers.MultiHeadAttention(num_heads, key_dim, dropout=self.dropout,
                                                              name="causal_self_attention")
        self.cross_attention = keras.layers.MultiHeadAttention(num_heads, key_dim, dropout=self.dropout,
                                                               name="cross_attention")
        self.feed_forward = _feed_forward(self.d_model, self.ff_dim, self.dropout, "feed_forward")
        self.norm_self = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_self_attention")
        self.norm_cross = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_cross_attention")
        self.norm_feed_forward = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_feed_forward")
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        context_shape = (*input_shape[:-2], None, self.d_model)  # the context has the same width
        self.norm_self.build(input_shape)
        self.self_attention.build(input_shape, input_shape)
        self.norm_cross.build(input_shape)
        self.cross_attention.build(input_shape, context_shape)
        self.norm_feed_forward.build(input_shape)
        self.feed_forward.build(input_shape)
        self.built = True

    def call(self, y, context, target_mask, context_mask, training=None, return_attention_scores=False):
        h = self.norm_self(y)
        # use_causal_mask adds the lower-triangular mask to the target padding mask.
        h = self.self_attention(h, h, attention_mask=target_mask[:, None, :], use_causal_mask=True,
                                training=training)
        y = y + self.drop(h, training=training)
        h, scores = self.cross_attention(self.norm_cross(y), context, attention_mask=context_mask[:, None, :],
                                         training=training, return_attention_scores=True)
        y = y + self.drop(h, training=training)
        y = y + self.drop(self.feed_forward(self.norm_feed_forward(y), training=training), training=training)
        return (y, scores) if return_attention_scores else y

    def compute_output_shape(self, y_shape, context_shape, target_mask_shape, context_mask_shape):
        return y_shape

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="dlapps")
class TokenSlice(keras.layers.Layer):
    """ids[:, begin:end] along the time axis (e.g. drop the last token to make decoder inputs)."""

    def __init__(self, begin: int = 0, end: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.begin, self.end = int(begin), (None if end is None else int(end))

    def call(self, ids):
        return ids[:, self.begin:self.end]

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        new = None if length is None else len(range(length)[self.begin:self.end])
        return (input_shape[0], new, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "begin": self.begin, "end": self.end}
