"""Tokenizers of the translation task: word level (TextVectorization) or WordPiece subwords.

Both start from the same words: `text.standardize` splits punctuation and digits off and keeps
case, then the text is cut at spaces. "word" maps every word to one id (rare words -> [UNK]);
"wordpiece" cuts every word into pieces of a vocabulary learned on the training split, so a
word never seen in training is still spelt out (pieces learned on Multi30k's German side):

    "Zwei Skateboardfahrerinnen springen." -> standardize -> Zwei | Skateboardfahrerinnen | springen | .
                  -> word        -> Zwei | [UNK] | springen | .        (never seen in training)
                  -> WordPiece   -> Zwei | Skateboardfahrer ##innen | springen | .

`vectorizer(...)` builds the layer for either kind; the model (model.py), the label arrays
(data.target_ids) and the accelerator export (accelerated.py) all call it, so the ids always agree.
The WordPiece layer (dlapps.layers.wordpiece.WordPieceVectorizer) is a registered Keras layer whose
config holds its vocabulary and splitting rules: the saved `.keras` file alone tokenizes raw strings.
"""

from __future__ import annotations

from collections import Counter

import keras

from dlapps.errors import UserError
from dlapps.layers.wordpiece import SUFFIX, UNKNOWN, WordPieceVectorizer
from dlapps.tasks.translation.text import END, SPLIT_RULES, START, standardize

TOKENIZERS = ("word", "wordpiece")


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


def vectorizer(tokenizer: str, vocabulary: list[str], sequence_length: int, target: bool = False, name=None):
    """The layer turning raw strings into `sequence_length` ids: word-level TextVectorization or WordPiece.

    `target=True` frames sentences by [start] ... [end] (the decoder input and labels).
    """
    check_tokenizer(tokenizer)
    if tokenizer == "wordpiece":  # the same words as TextVectorization: text.standardize's rules, then spaces
        return WordPieceVectorizer(vocabulary, sequence_length, split_rules=SPLIT_RULES,
                                   markers=(START, END) if target else None, name=name)
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
