"""The spam task's configuration: data source, text features, the classifier and its threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlapps.config import TrainConfig


@dataclass(frozen=True)
class Config(TrainConfig):
    """Spam filter: data source, text features, the classifier and its decision threshold."""

    source: Literal["embedded", "sms_spam_collection", "file"] = "embedded"
    """embedded (generated messages), sms_spam_collection (UCI download), or file (--data TSV/CSV)."""
    embedded_size: int = 3000
    """Number of generated messages for source=embedded."""
    model: Literal["ngrams", "sequence"] = "ngrams"
    """ngrams: TF-IDF of word 1-2-grams and character 2-5-grams, pooled, into a small dense head.
    sequence: token embeddings read by a bidirectional GRU (no convolution)."""
    max_tokens: int = 20_000
    """Word (and word-bigram) vocabulary size."""
    char_tokens: int = 30_000
    """Character n-gram vocabulary size (ngrams model); 0 turns the character branch off."""
    char_ngrams: tuple = (2, 3, 4, 5)
    """Character n-gram lengths (ngrams model)."""
    hidden_units: int = 32
    """Dense layer on the pooled features (ngrams) or on the sequence summary (sequence); 0 = none."""
    embedding_dim: int = 64
    """Token embedding size (sequence model)."""
    units: int = 32
    """GRU units per direction (sequence model)."""
    sequence_length: int = 80
    """Tokens read per message (sequence model)."""
    dropout: float = 0.3
    threshold: float | None = None
    """Decision threshold on p(spam). None (default): after training, the threshold with the best
    spam F1 on the validation split is stored in the model, and evaluate/predict use the model's.
    A number: stored in the model at training, or applied to a trained model by evaluate/predict
    (`--set threshold=0.7`)."""
