"""Translate raw strings with a trained model; BLEU/chrF/exact match; the attention heatmap."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from dlapps.data.text import texts_from_inputs
from dlapps.errors import UserError
from dlapps.tasks.translation import subword
from dlapps.tasks.translation.config import Config
from dlapps.tasks.translation.decoding import decode, ids_to_tokens
from dlapps.tasks.translation.text import END, START


class TruncationWarning(UserWarning):
    """A sentence had more tokens than the model's max_length and was cut."""


def _vocabularies(model):
    source_vectorizer = model.get_layer("source_vectorizer")
    target_vocabulary = model.get_layer("target_vectorizer").get_vocabulary()
    return source_vectorizer, target_vocabulary


def translate(model, sentences: list[str], beam_size: int = 1, length_penalty: float = 0.6,
              batch_size: int = 128) -> list[str]:
    """Translations of raw `sentences` by a trained translator model (greedy or beam search).

    The model file alone is enough: its vectorizers hold the vocabularies. Generated ids become
    tokens, WordPiece pieces are glued into words, and `text.detokenize` spaces the words.
    """
    if not sentences:
        return []
    for sentence in sentences:
        if not sentence.strip():
            raise UserError("empty sentence: give at least one word to translate")
    source_vectorizer, target_vocabulary = _vocabularies(model)
    max_length = subword.sequence_length(source_vectorizer)
    too_long = [s for s, n in zip(sentences, subword.token_counts(source_vectorizer, sentences)) if n > max_length]
    if too_long:
        warnings.warn(f"{len(too_long)} sentence(s) longer than max_length={max_length} tokens were truncated "
                      f"(e.g. {too_long[0][:60]!r}...)", TruncationWarning, stacklevel=2)
    source_ids = np.asarray(source_vectorizer(np.array(sentences, dtype=object))).astype("int32")
    start_id, end_id = target_vocabulary.index(START), target_vocabulary.index(END)
    ids = decode(model.get_layer("transformer"), source_ids, start_id, end_id, max_length,
                 beam_size=beam_size, length_penalty=length_penalty, batch_size=batch_size)
    tokenizer = subword.kind(source_vectorizer)
    return [subword.tokens_to_text(tokens, tokenizer) for tokens in ids_to_tokens(ids, target_vocabulary, end_id)]


def texts(dataset) -> tuple[list[str], list[str]]:
    """(source sentences, target sentences) of a translation dataset, as Python strings."""
    sources, targets = [], []
    for inputs, _ in dataset.batch(4096):
        sources += [s.decode("utf-8") for s in inputs["source"].numpy()]
        targets += [s.decode("utf-8") for s in inputs["target"].numpy()]
    return sources, targets


def evaluate(model, data, cfg: Config) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu, detokenized output vs raw references), exact match, on data.test.

    The embedded task reports exact match and chrF only (its answers are single tokens).
    """
    import sacrebleu

    sources, references = texts(data.test)
    if not sources:
        raise UserError("no sentence pairs to evaluate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        hypotheses = translate(model, sources, cfg.beam_size, cfg.length_penalty, cfg.decode_batch_size)
    metrics = {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
               "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
               "exact_match": float(np.mean([h == " ".join(r.split()) for h, r in zip(hypotheses, references)])),
               "n": len(sources)}
    if data.info.get("embedded"):
        del metrics["bleu"]  # one-word answers ("702") have no 4-grams: BLEU says nothing here
    return metrics


def predict(model, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """One translation per source sentence, decoded with `cfg.beam_size` and `cfg.length_penalty`;
    a truncation warning is printed to stderr.

    Inputs are sentences, or `.txt` (one sentence per line), `.tsv`/`.csv` (the column named
    `source`, the source language's code such as `en`, `text` or `sentence`, any case) UTF-8 files
    of sentences (`dlapps.data.text.texts_from_inputs`). Raises UserError without sentences, for
    an empty one, or for a file that is not UTF-8 or has no such column.
    """
    if not inputs:
        raise UserError('give sentences to translate, e.g. dlapps predict translation "a man is riding a bicycle ."')
    sentences = texts_from_inputs(inputs, ("source", cfg.source_lang, "text", "sentence"))
    if not sentences:
        raise UserError("no sentences to translate in the files given")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncationWarning)
        outputs = translate(model, sentences, cfg.beam_size, cfg.length_penalty, cfg.decode_batch_size)
    for warning in caught:
        print(f"dlapps: warning: {warning.message}", file=sys.stderr)
    return outputs


def cross_attention(model, sentence: str, beam_size: int = 1) -> tuple[list[str], list[str], np.ndarray]:
    """(source tokens, output tokens, (output, source) attention averaged over heads, last block)."""
    from keras import ops

    translation = translate(model, [sentence], beam_size)[0]
    source_vectorizer, target_vocabulary = _vocabularies(model)
    source_ids = np.asarray(source_vectorizer(np.array([sentence], dtype=object))).astype("int32")
    output_ids = np.asarray(model.get_layer("target_vectorizer")(np.array([translation], dtype=object)))
    output_ids = output_ids[:, :-1].astype("int32")
    transformer = model.get_layer("transformer")
    encoder, decoder = transformer.get_layer("encoder"), transformer.get_layer("decoder")
    context = encoder(source_ids)
    y = decoder.get_layer("target_embedding")(output_ids)
    target_mask, context_mask = ops.not_equal(output_ids, 0), ops.not_equal(source_ids, 0)
    blocks = [layer for layer in decoder.layers if layer.name.startswith("decoder_block_")]
    for block in blocks:
        y, scores = block(y, context, target_mask, context_mask, return_attention_scores=True)
    scores = np.asarray(scores)[0].mean(axis=0)  # (target, source)
    n_source = int((source_ids[0] > 0).sum())
    source_tokens = [source_vectorizer.get_vocabulary()[i] for i in source_ids[0, :n_source]]
    # Row t is the step that produced output token t+1 (row 0 reads [start]).
    outputs = [target_vocabulary[i] for i in output_ids[0, 1:] if i > 0] + [END]
    return source_tokens, outputs, scores[: len(outputs), :n_source]


def make_plots(model, data, cfg: Config, plots_dir) -> list[Path]:
    """Cross-attention heatmap (last decoder block, mean over heads) for the first test sentence."""
    from dlapps import plots  # selects the Agg backend before pyplot loads

    import matplotlib.pyplot as plt  # noqa: I001

    sources = [inputs["source"].numpy().decode("utf-8") for inputs, _ in data.test.take(1)]
    if not sources:
        return []
    source_tokens, output_tokens, weights = cross_attention(model, sources[0])
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(source_tokens), 1.0 + 0.4 * len(output_tokens)))
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(output_tokens)), output_tokens)
    ax.set_xlabel("source tokens")
    ax.set_ylabel("generated tokens")
    ax.set_title("cross-attention (last decoder block, mean of heads)")
    return [plots.save_figure(fig, Path(plots_dir) / "attention.png")]
