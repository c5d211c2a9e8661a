"""WordPiece tokenization as a serializable Keras layer (tensorflow_text's FastWordpieceTokenizer).

Raw strings in, (batch, sequence_length) int ids out, so a saved model tokenizes by itself:

    "Ein Mann fährt Fahrrad."  ─split_rules─►  Ein Mann fährt Fahrrad .  ─split at spaces─►  words
                               ─WordPiece───►  Ein | Mann | fährt | Fahr ##rad | .  ─►  ids (0-padded)

`split_rules` are (regex, replacement) pairs applied in order before splitting at spaces (the
translation task passes the ones of its word-level standardization, so both tokenizers see the
same words); each word is then cut into the longest pieces of `vocabulary`, continuation pieces
marked "##"; a word with a character outside the vocabulary becomes [UNK]. The config holds the
vocabulary and the rules: the `.keras` file alone is enough (importing this module, as
`dlapps.layers` does, registers the layer; building one imports tensorflow_text, which registers
its ops, so other models load without paying for that import).
"""

from __future__ import annotations

import keras

SUFFIX = "##"
UNKNOWN = "[UNK]"
_PAD = "[PAD]"  # id 0 inside tensorflow_text (it needs a non-empty token); "" to the outside, as TextVectorization


@keras.saving.register_keras_serializable(package="dlapps")
class WordPieceVectorizer(keras.layers.Layer):
    """Raw strings -> (batch, sequence_length) WordPiece ids, 0-padded and truncated.

    Ids: 0 padding, 1 [UNK], then `vocabulary` in order (as TextVectorization numbers its words).
    `markers=(start, end)` frames every sequence by those two tokens (e.g. a decoder's
    [start] ... [end]); both must be in `vocabulary`.
    """

    def __init__(self, vocabulary: list[str], sequence_length: int, split_rules=(), markers=None, **kwargs):
        kwargs.pop("trainable", None)
        super().__init__(trainable=False, **kwargs)
        import tensorflow as tf

        try:  # also registers tensorflow_text's ops, before the tokenizer is traced into a graph
            import tensorflow_text
        except ImportError:  # pragma: no cover
            raise ImportError("WordPieceVectorizer needs tensorflow-text: "
                              "pip install 'tensorflow-text>=2.21,<2.22'") from None
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.split_rules = [(str(pattern), str(replacement)) for pattern, replacement in split_rules]
        self.markers = tuple(markers) if markers else None
        if self.markers and any(m not in self.vocabulary for m in self.markers):
            raise ValueError(f"markers {self.markers} must be in the vocabulary")
        with tf.init_scope():  # the tokenizer's model is a constant: make it eagerly, outside any traced graph
            self._tokenizer = tensorflow_text.FastWordpieceTokenizer(
                vocab=[_PAD, UNKNOWN] + self.vocabulary, suffix_indicator=SUFFIX, max_bytes_per_word=100,
                token_out_type=tf.int64, unknown_token=UNKNOWN, no_pretokenization=True,
                support_detokenization=False)

    def get_vocabulary(self) -> list[str]:
        """Id -> token, like TextVectorization.get_vocabulary() ("" is padding)."""
        return ["", UNKNOWN] + self.vocabulary

    def vocabulary_size(self) -> int:
        return len(self.vocabulary) + 2

    def split(self, text):
        """(batch, None) ragged words: the split rules, then cut at spaces."""
        import tensorflow as tf

        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank == 2:  # (batch, 1) from a Keras Input of shape (1,)
            text = tf.squeeze(text, axis=-1)
        for pattern, replacement in self.split_rules:
            text = tf.strings.regex_replace(text, pattern, replacement)
        words = tf.strings.split(tf.strings.strip(text), sep=" ")
        return tf.ragged.boolean_mask(words, tf.strings.length(words) > 0)

    def pieces(self, text):
        """(batch, None) ragged int64 ids, before markers, padding and truncation."""
        return self._tokenizer.tokenize(self.split(text)).merge_dims(-2, -1)  # (batch, words, pieces) -> flat

    def call(self, text):
        import tensorflow as tf

        ids = self.pieces(text)
        if self.markers:
            rows = ids.nrows()
            start, end = (tf.fill([rows, 1], tf.constant(self.vocabulary.index(m) + 2, tf.int64))
                          for m in self.markers)
            ids = tf.concat([start, ids, end], axis=1)
        return ids.to_tensor(default_value=0, shape=[None, self.sequence_length])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.sequence_length)

    def compute_output_spec(self, text):
        return keras.KerasTensor((text.shape[0], self.sequence_length), dtype="int64")

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "sequence_length": self.sequence_length,
                "split_rules": [list(rule) for rule in self.split_rules],
                "markers": list(self.markers) if self.markers else None}
