"""The Transformer layers: causal masking, padding masks, shapes, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dlapps.layers.transformer import (PaddingMask, PositionalEmbedding, TokenSlice, TransformerDecoderBlock,
                                       TransformerEncoderBlock, sinusoids)
from dlapps.tasks.translation.config import Config
from dlapps.tasks.translation.model import build_transformer

TINY = Config(d_model=16, num_layers=2, num_heads=2, ff_dim=32, dropout=0.0, max_length=12)


@pytest.fixture(scope="module")
def transformer():
    keras.utils.set_random_seed(0)
    return build_transformer(TINY, source_vocab_size=30, target_vocab_size=25)


def test_causal_mask_hides_future_target_tokens(transformer):
    rng = np.random.default_rng(0)
    source = rng.integers(1, 30, size=(3, 10)).astype("int32")
    target = rng.integers(1, 25, size=(3, 12)).astype("int32")
    changed = target.copy()
    k = 5
    changed[:, k + 1:] = rng.integers(1, 25, size=(3, 12 - k - 1))  # new future tokens
    before = np.asarray(transformer([source, target]))
    after = np.asarray(transformer([source, changed]))
    # Positions 0..k only see tokens 0..k: identical logits. Later positions see the change.
    np.testing.assert_allclose(before[:, : k + 1], after[:, : k + 1], rtol=1e-5, atol=1e-5)
    assert np.abs(before[:, k + 1:] - after[:, k + 1:]).max() > 1e-3


def test_source_padding_is_ignored(transformer):
    rng = np.random.default_rng(1)
    source = rng.integers(1, 30, size=(2, 6)).astype("int32")
    padded = np.concatenate([source, np.zeros((2, 4), "int32")], axis=1)
    target = rng.integers(1, 25, size=(2, 7)).astype("int32")
    np.testing.assert_allclose(np.asarray(transformer([source, target])), np.asarray(transformer([padded, target])),
                               rtol=1e-5, atol=1e-5)
    # ... while a real source token does change the output.
    other = source.copy()
    other[:, 0] = (other[:, 0] % 29) + 1
    assert np.abs(np.asarray(transformer([source, target])) - np.asarray(transformer([other, target]))).max() > 1e-4


def test_shapes_and_position_codes():
    codes = sinusoids(50, 8)
    assert codes.shape == (50, 8)
    np.testing.assert_allclose(codes[0], [0, 1] * 4, atol=1e-7)  # sin(0)=0, cos(0)=1
    assert np.all(np.abs(codes) <= 1.0)
    embedding = PositionalEmbedding(vocab_size=10, max_length=20, d_model=8)
    assert tuple(embedding(np.ones((2, 7), "int32")).shape) == (2, 7, 8)
    assert np.asarray(PaddingMask()(np.array([[3, 1, 0, 0]]))).tolist() == [[True, True, False, False]]
    assert np.asarray(TokenSlice(0, -1)(np.arange(6).reshape(1, 6))).tolist() == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("layer", [
    PositionalEmbedding(vocab_size=10, max_length=20, d_model=8, dropout=0.1),
    TransformerEncoderBlock(d_model=8, num_heads=2, ff_dim=16, dropout=0.1),
    TransformerDecoderBlock(d_model=8, num_heads=2, ff_dim=16, dropout=0.2),
    TokenSlice(1, None),
])
def test_layers_round_trip_their_config(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)


def test_saved_transformer_gives_identical_logits(transformer, tmp_path):
    path = tmp_path / "transformer.keras"
    transformer.save(path)
    loaded = keras.saving.load_model(path)
    source = np.array([[4, 5, 6, 0, 0]], "int32")
    target = np.array([[1, 7, 8, 9]], "int32")
    np.testing.assert_allclose(np.asarray(transformer([source, target])), np.asarray(loaded([source, target])),
                               rtol=1e-6, atol=1e-6)


def test_block_returns_attention_scores():
    block = TransformerDecoderBlock(d_model=8, num_heads=2, ff_dim=16, dropout=0.0)
    y = np.random.default_rng(0).normal(size=(1, 3, 8)).astype("float32")
    context = np.random.default_rng(1).normal(size=(1, 5, 8)).astype("float32")
    context_mask = np.array([[True, True, True, False, False]])
    out, scores = block(y, context, np.ones((1, 3), bool), context_mask, return_attention_scores=True)
    scores = np.asarray(scores)
    assert tuple(out.shape) == (1, 3, 8) and scores.shape == (1, 2, 3, 5)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
    assert scores[..., 3:].max() < 1e-6  # padding positions get no attention
