"""Tokenizers of the translation task: word level (TextVectorization) or WordPiece subwords.

Both start from the same words: `text.standardize` splits punctuation and digits off and keeps
case, then the text is cut at spaces. "word" maps every word to one id (rare words -> [UNK]);
"wordpiece" cuts every word into pieces of a vocabulary learned on the training split, so a
word never seen in training is still spelt out ("Fahrradhelm" -> "Fahrrad ##helm"):

    "Ein Mann fährt Fahrrad."  -> standardize -> Ein | Mann | fährt | Fahrrad | .
                               -> WordPiece   -> Ein | Mann | fährt | Fahr ##rad | .

`vectorizer(...)` builds the layer for either kind; the model (model.py), the label arrays
(data.target_ids) and the accelerator export (accelerated.py) all call it, so the ids always agree.
The WordPiece layer is a registered Keras layer whose config holds its vocabulary: the saved
`.keras` file alone tokenizes raw strings (tensorflow_text is imported here, before loading).
"""

from __future__ import annotations

from collections import Counter

import keras

from dlapps.errors import UserError
from dlapps.tasks.translation.text import END, START, standardize

TOKENIZERS = ("word", "wordpiece")
SUFFIX = "##"  # marks a piece that continues the previous one
UNKNOWN = "[UNK]"
_PAD = "[PAD]"  # id 0 inside tensorflow_text (which needs a non-empty token); "" to the outside, as in TextVectorization

try:  # registers tensorflow_text's ops before a saved model that uses them is loaded
    import tensorflow_text as _tf_text  # noqa: F401
except ImportError:  # pragma: no cover - a dependency in pyproject.toml; "word" works without it
    _tf_text = None


def check_tokenizer(name: str) -> None:
    if name not in TOKENIZERS:
        raise UserError(f"tokenizer {name!r}: choose word (whole words) or wordpiece (learned subwords), "
                        "e.g. --set tokenizer=wordpiece")


def words(sentences: list[str]) -> list[list[str]]:
    """The words both tokenizers start from: `text.standardize` (TensorFlow), split at spaces."""
    import tensorflow as tf

    out = []
    for start in range(0, len(sentences), 4096):
        for line in standardize(tf.constant(sentences[start:start + 4096])).numpy():
            out.append([w for w in line.decode("utf-8").split(" ") if w])
    return out


def minimum_vocabulary(sentences: list[str], reserved: tuple[str, ...] = ()) -> int:
    """The smallest WordPiece vocabulary for `sentences`: every character, alone and as '##' + character."""
    chars = {c for line in words(sentences) for word in line for c in word}
    return len(reserved) + 2 * len(chars)


def learn_wordpiece(sentences: list[str], vocab_size: int, reserved: tuple[str, ...] = ()) -> list[str]:
    """A WordPiece vocabulary of about `vocab_size` pieces learned on `sentences` (the training split).

    Returned without padding and [UNK] (like the word vocabularies; the layer adds them), `reserved`
    first. Uses tensorflow_text's learner (the one behind `bert_vocab_from_dataset`) on our own word
    counts, so the pieces are cut from exactly the words the model sees (case kept, hyphens kept).
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    counts: Counter = Counter(w for line in words(sentences) for w in line)
    counts.pop(UNKNOWN, None)
    chars = {c for word in counts for c in word}
    needed = 2 + len(reserved) + 2 * len(chars)
    if vocab_size < needed:
        raise UserError(f"subword_vocab={vocab_size} is too small: the training text has {len(chars)} different "
                        f"characters, which alone need {needed} pieces (each alone and as '##' continuation, plus "
                        f"padding, [UNK] and markers); use --set subword_vocab={max(needed, 1000)} or more")
    # lower_thresh=2: Multi30k-sized corpora only reach ~8k pieces when pieces seen twice may enter.
    vocabulary = learner.learn(sorted(counts.items()), vocab_size - 2, list(reserved), lower_thresh=2,
                               max_unique_chars=len(chars), joiner=SUFFIX)
    # The learner may overshoot a little; a cut keeps every character (alone and as '##' + character),
    # so any word made of training characters can still be spelt, and drops the rarest longer pieces.
    essential = list(reserved) + sorted(chars) + [SUFFIX + c for c in sorted(chars)]
    kept = set(essential)
    rest = [piece for piece in vocabulary if piece not in kept and piece not in ("", UNKNOWN)]
    return essential + rest[: vocab_size - 2 - len(essential)]


def wordpieces_to_words(tokens: list[str]) -> list[str]:
    """WordPiece tokens back to words: '##' pieces are glued to the piece before them."""
    out: list[str] = []
    for token in tokens:
        if token.startswith(SUFFIX) and out:
            out[-1] += token[len(SUFFIX):]
        elif token.startswith(SUFFIX):
            out.append(token[len(SUFFIX):])
        else:
            out.append(token)
    return out


@keras.saving.register_keras_serializable(package="dlapps")
class WordPieceVectorizer(keras.layers.Layer):
    """Raw strings -> (batch, sequence_length) WordPiece ids, 0-padded; the vocabulary is in the config.

    Words come from `text.standardize` (the same words as the word-level TextVectorization); each
    is cut into the longest pieces of `vocabulary` (tensorflow_text.FastWordpieceTokenizer),
    continuation pieces start with '##', a word that cannot be spelt becomes [UNK].
    With `markers`, the sequence is framed by [start] ... [end] (the decoder side).
    Ids: 0 padding, 1 [UNK], then `vocabulary` in order (as TextVectorization numbers its words).
    """

    def __init__(self, vocabulary: list[str], sequence_length: int, markers: bool = False, **kwargs):
        super().__init__(trainable=False, **{k: v for k, v in kwargs.items() if k != "trainable"})
        self.vocabulary = list(vocabulary)
        self.sequence_length = int(sequence_length)
        self.markers = bool(markers)
        if self.markers and (START not in self.vocabulary or END not in self.vocabulary):
            raise ValueError(f"a vectorizer with markers needs {START} and {END} in its vocabulary")
        import tensorflow as tf
        import tensorflow_text as tf_text

        with tf.init_scope():  # the tokenizer's model is a constant: make it eagerly, outside any traced graph
            self._tokenizer = tf_text.FastWordpieceTokenizer(
                vocab=[_PAD, UNKNOWN] + self.vocabulary, suffix_indicator=SUFFIX, max_bytes_per_word=100,
                token_out_type=tf.int64, unknown_token=UNKNOWN, no_pretokenization=True,
                support_detokenization=False)

    def get_vocabulary(self) -> list[str]:
        """Id -> token, like TextVectorization.get_vocabulary() ("" is padding)."""
        return ["", UNKNOWN] + self.vocabulary

    def vocabulary_size(self) -> int:
        return len(self.vocabulary) + 2

    def pieces(self, text):
        """(batch, None) ragged int64 ids of each sentence, before [start]/[end], padding and truncation."""
        import tensorflow as tf

        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank == 2:  # (batch, 1) from a Keras Input of shape (1,)
            text = tf.squeeze(text, axis=-1)
        split = tf.strings.split(standardize(text), sep=" ")  # (batch, words)
        split = tf.ragged.boolean_mask(split, tf.strings.length(split) > 0)
        return self._tokenizer.tokenize(split).merge_dims(-2, -1)  # (batch, words, pieces) -> (batch, pieces)

    def call(self, text):
        import tensorflow as tf

        ids = self.pieces(text)
        if self.markers:
            batch = ids.nrows()
            start = tf.fill([batch, 1], tf.constant(self.vocabulary.index(START) + 2, tf.int64))
            end = tf.fill([batch, 1], tf.constant(self.vocabulary.index(END) + 2, tf.int64))
            ids = tf.concat([start, ids, end], axis=1)
        return ids.to_tensor(default_value=0, shape=[None, self.sequence_length])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.sequence_length)

    def compute_output_spec(self, text):
        return keras.KerasTensor((text.shape[0], self.sequence_length), dtype="int64")

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "sequence_length": self.sequence_length,
                "markers": self.markers}


def vectorizer(tokenizer: str, vocabulary: list[str], sequence_length: int, target: bool = False, name=None):
    """The layer turning raw strings into `sequence_length` ids: word-level TextVectorization or WordPiece.

    `target=True` frames sentences by [start] ... [end] (the decoder input and labels).
    """
    check_tokenizer(tokenizer)
    if tokenizer == "wordpiece":
        return WordPieceVectorizer(vocabulary, sequence_length, markers=target, name=name)
    from dlapps.tasks.translation.text import standardize_target

    return keras.layers.TextVectorization(
        vocabulary=vocabulary, standardize=standardize_target if target else standardize, split="whitespace",
        output_sequence_length=sequence_length, name=name)


def sequence_length(layer) -> int:
    """The number of ids a vectorizer layer (either kind) outputs per sentence."""
    if isinstance(layer, WordPieceVectorizer):
        return layer.sequence_length
    return int(layer.get_config()["output_sequence_length"])


def token_counts(layer, sentences: list[str]) -> list[int]:
    """Tokens per sentence before truncation (pieces for WordPiece, words otherwise), without markers."""
    if isinstance(layer, WordPieceVectorizer):
        import numpy as np

        return [int(n) for n in np.asarray(layer.pieces(sentences).row_lengths())]
    from dlapps.tasks.translation.text import python_tokens

    return [len(python_tokens(sentence)) for sentence in sentences]


def tokens_to_text(tokens: list[str], tokenizer: str = "word") -> str:
    """Generated target tokens (without markers) -> display text (pieces glued, then `text.detokenize`)."""
    from dlapps.tasks.translation.text import detokenize

    if tokenizer == "wordpiece":
        tokens = wordpieces_to_words(tokens)
    return detokenize(tokens)


def kind(layer) -> str:
    """"wordpiece" or "word": the tokenizer a (loaded) vectorizer layer implements."""
    return "wordpiece" if isinstance(layer, WordPieceVectorizer) else "word"
