"""The translation task's configuration: data, languages, vocabulary, model and decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlapps.config import TrainConfig


@dataclass(frozen=True)
class Config(TrainConfig):
    """Translation with an encoder-decoder Transformer: data, languages, vocabulary, model, decoding.

    Note: `source` is the data source (as in every task); the languages are `source_lang` and
    `target_lang` (`--set source_lang=en target_lang=de`).
    """

    source: Literal["embedded", "multi30k", "ted_hrlr", "file"] = "embedded"
    """embedded (number words -> digits, generated), multi30k (download), ted_hrlr (tfds TED talks),
    or file (--data: a folder with train.<lang>[.gz], two parallel files 'a.en,a.de', or a TSV)."""
    source_lang: str = "en"
    """Language code of the input side (multi30k: en, de, fr; ted_hrlr: pt, es, ru, ... or en)."""
    target_lang: str = "de"
    """Language code of the output side."""
    tsv_order: Literal["source_target", "target_source"] = "source_target"
    """Column order of a TSV without a language header: source_target or target_source
    (an Anki/Tatoeba file such as deu.txt is English<TAB>German)."""
    max_length: int = 40
    """Tokens per sentence (the target counts its [end] marker); longer ones are truncated, with a warning."""
    tokenizer: Literal["word", "wordpiece"] = "word"
    """word (TextVectorization: one id per word, rare words -> [UNK]) or wordpiece (subword pieces
    learned on the training split, one vocabulary per language; unseen words are spelt in pieces)."""
    max_vocab: int = 20_000
    """tokenizer=word: most frequent words kept per language (plus padding and [UNK])."""
    min_count: int = 2
    """tokenizer=word: words seen fewer times in the training split become [UNK]."""
    subword_vocab: int = 8000
    """tokenizer=wordpiece: pieces per language (characters, '##' continuations and learned pieces)."""
    max_pairs: int = 0
    """Use only the first N training pairs (0 = all), e.g. for a quick look at a big corpus."""
    embedded_pairs: int = 20_000
    """Size of the generated embedded data set (before the val/test split)."""
    d_model: int = 256
    """Width of every token representation."""
    num_layers: int = 3
    """Encoder blocks, and as many decoder blocks."""
    num_heads: int = 8
    ff_dim: int = 512
    """Hidden units of each block's feed-forward net."""
    dropout: float = 0.1
    label_smoothing: float = 0.1
    warmup_steps: int = 1000
    """Linear learning-rate warm-up steps before the schedule (0 disables)."""
    beam_size: int = 1
    """1 = greedy decoding; > 1 = beam search with this many beams."""
    length_penalty: float = 0.6
    """Beam search ranks hypotheses by log-probability / length**length_penalty."""
    decode_batch_size: int = 128
    """Sentences decoded at once by evaluate/predict."""
