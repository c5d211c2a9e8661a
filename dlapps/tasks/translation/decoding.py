"""Greedy and beam-search decoding, batched, with a maximum length (any Keras backend).

The encoder runs once per batch; the decoder runs once per generated position on the prefix
so far (its causal mask makes later positions irrelevant). Prefixes are cut to a multiple of
8 tokens, so short sentences stay cheap (and a compiled backend sees few shapes).
"""

from __future__ import annotations

import numpy as np
from keras import ops

BUCKET = 8


def parts(transformer):
    """(encoder, decoder, logits projection) of the token-level `transformer` model."""
    return transformer.get_layer("encoder"), transformer.get_layer("decoder"), transformer.get_layer("logits")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype("float64")
    logits = logits - logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def _step_logits(decoder, projection, tokens: np.ndarray, context, source_ids: np.ndarray, t: int) -> np.ndarray:
    """Logits for position t given tokens[:, :t+1] (batch, vocab)."""
    width = min(tokens.shape[1], -(-(t + 1) // BUCKET) * BUCKET)
    inputs = [ops.convert_to_tensor(x) for x in (tokens[:, :width], context, source_ids)]
    hidden = decoder(inputs, training=False)
    return np.array(projection(hidden[:, t, :]), dtype="float32")  # a writable copy


def greedy(transformer, source_ids: np.ndarray, start_id: int, end_id: int, max_length: int) -> np.ndarray:
    """(batch, max_length) generated ids (without [start]; 0 after [end]) by picking the best token."""
    encoder, decoder, projection = parts(transformer)
    source_ids = np.asarray(source_ids, "int32")
    batch = len(source_ids)
    context = encoder(source_ids, training=False)
    tokens = np.zeros((batch, max_length + 1), "int32")
    tokens[:, 0] = start_id
    done = np.zeros(batch, bool)
    for t in range(max_length):
        logits = _step_logits(decoder, projection, tokens[:, :max_length], context, source_ids, t)
        logits[:, 0] = -np.inf  # never emit padding
        choice = np.where(done, 0, logits.argmax(axis=-1))
        tokens[:, t + 1] = choice
        done |= choice == end_id
        if done.all():
            break
    return tokens[:, 1:]


def beam_search(transformer, source_ids: np.ndarray, start_id: int, end_id: int, max_length: int,
                beam_size: int = 4, length_penalty: float = 0.6) -> np.ndarray:
    """(batch, max_length) ids of the best of `beam_size` hypotheses kept at every step.

    Finished hypotheses (ended by [end]) keep their score; hypotheses are ranked at the end by
    log-probability / length**length_penalty. With beam_size=1 this is exactly greedy decoding.
    """
    encoder, decoder, projection = parts(transformer)
    source_ids = np.asarray(source_ids, "int32")
    batch, beams = len(source_ids), beam_size
    context = np.asarray(encoder(source_ids, training=False))
    context = np.repeat(context, beams, axis=0)
    repeated_ids = np.repeat(source_ids, beams, axis=0)
    tokens = np.zeros((batch * beams, max_length + 1), "int32")
    tokens[:, 0] = start_id
    scores = np.full((batch, beams), -np.inf)
    scores[:, 0] = 0.0  # all beams start identical: keep one, or the top-k would hold duplicates
    done = np.zeros((batch, beams), bool)
    lengths = np.zeros((batch, beams), "int32")
    for t in range(max_length):
        logits = _step_logits(decoder, projection, tokens[:, :max_length], context, repeated_ids, t)
        logits[:, 0] = -np.inf
        vocab = logits.shape[-1]
        log_probs = _log_softmax(logits).reshape(batch, beams, vocab)
        # A finished beam extends only with padding, at no cost.
        log_probs = np.where(done[:, :, None], -np.inf, log_probs)
        log_probs[:, :, 0] = np.where(done, 0.0, -np.inf)
        candidates = (scores[:, :, None] + log_probs).reshape(batch, beams * vocab)
        best = np.argsort(-candidates, axis=-1, kind="stable")[:, :beams]
        origin, token = best // vocab, best % vocab
        scores = np.take_along_axis(candidates, best, axis=-1)
        flat_origin = (origin + np.arange(batch)[:, None] * beams).reshape(-1)
        tokens = tokens[flat_origin]
        done = np.take_along_axis(done, origin, axis=-1)
        lengths = np.take_along_axis(lengths, origin, axis=-1) + (~done)
        tokens[:, t + 1] = token.reshape(-1)
        done = done | (token == end_id)
        if done.all():
            break
    ranked = scores / np.maximum(lengths, 1) ** length_penalty
    ranked = np.where(np.isfinite(scores), ranked, -np.inf)
    pick = ranked.argmax(axis=-1) + np.arange(batch) * beams
    return tokens[pick, 1:]


def decode(transformer, source_ids: np.ndarray, start_id: int, end_id: int, max_length: int,
           beam_size: int = 1, length_penalty: float = 0.6, batch_size: int = 128) -> np.ndarray:
    """Generated ids for every row of `source_ids`, `batch_size` sentences at a time."""
    outputs = []
    for begin in range(0, len(source_ids), batch_size):
        chunk = source_ids[begin:begin + batch_size]
        if beam_size <= 1:
            outputs.append(greedy(transformer, chunk, start_id, end_id, max_length))
        else:
            outputs.append(beam_search(transformer, chunk, start_id, end_id, max_length, beam_size, length_penalty))
    if not outputs:
        return np.zeros((0, max_length), "int32")
    return np.concatenate(outputs)


def ids_to_tokens(ids: np.ndarray, vocabulary: list[str], end_id: int) -> list[list[str]]:
    """Each row's tokens up to (not including) [end], padding dropped."""
    out = []
    for row in np.asarray(ids):
        words = []
        for i in row:
            if i == end_id:
                break
            if i > 0:
                words.append(vocabulary[i])
        out.append(words)
    return out
