"""Serializable layers shared by tasks (importing this package registers them with Keras)."""

from dlapps.layers.generative import VAESampling  # noqa: F401
from dlapps.layers.tabular import ImputeMissing, Log1p, PeriodicEncoding, PiecewiseLinearEncoding  # noqa: F401
from dlapps.layers.text import DecisionThreshold, MaskedGlobalMaxPooling1D, TruncateSequence  # noqa: F401
from dlapps.layers.transformer import PositionalEmbedding, TransformerDecoderBlock, TransformerEncoderBlock  # noqa: F401
from dlapps.layers.vision import BackbonePreprocess  # noqa: F401
from dlapps.layers.wordpiece import WordPieceVectorizer  # noqa: F401
