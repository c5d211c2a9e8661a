"""Word-level tokenization that keeps punctuation and case, its inverse, and the embedded task.

Standardization (inside the saved model, in TensorFlow ops): punctuation marks and digits become
tokens of their own ("Männer." -> "Männer ."; "2019" -> "2 0 1 9"), whitespace is collapsed,
case is kept (German nouns are capitalised, and BLEU is case-sensitive). `detokenize` undoes
it for display and scoring, so BLEU is computed on ordinary text against the raw references.
"""

from __future__ import annotations

import random
import re

import keras

# Punctuation that becomes a separate token. Hyphens and apostrophes stay inside words
# ("T-Shirt", "man's"); square brackets are reserved for the [start]/[end] markers.
PUNCTUATION = r"""[.,!?;:"()…«»„“”¿¡]"""
START, END = "[start]", "[end]"
# The standardization as (regex, replacement) steps, applied in order, then stripped: the word-level
# TextVectorization (standardize below) and the WordPiece layer (dlapps.layers.wordpiece) both use them.
SPLIT_RULES = ((f"({PUNCTUATION})", r" \1 "), (r"([0-9])", r" \1 "), (r"\s+", " "))


def _tf():
    import tensorflow as tf

    return tf


@keras.saving.register_keras_serializable(package="dlapps", name="translation_standardize")
def standardize(text):
    """Source-side standardization (TensorFlow strings): split punctuation and digits, keep case."""
    tf = _tf()
    for pattern, replacement in SPLIT_RULES:
        text = tf.strings.regex_replace(text, pattern, replacement)
    return tf.strings.strip(text)


@keras.saving.register_keras_serializable(package="dlapps", name="translation_standardize_target")
def standardize_target(text):
    """Target-side standardization: as `standardize`, framed by the [start] and [end] markers."""
    tf = _tf()
    return tf.strings.join([START, standardize(text), END], separator=" ")


def python_tokens(text: str) -> list[str]:
    """The tokens `standardize` produces, computed in Python (for counting and warnings)."""
    text = re.sub(f"({PUNCTUATION})", r" \1 ", text)
    text = re.sub(r"([0-9])", r" \1 ", text)
    return text.split()


_NO_SPACE_BEFORE = set(".,!?;:)…»“”")
_NO_SPACE_AFTER = set("(«„¿¡")


def detokenize(tokens: list[str]) -> str:
    """Tokens back to text: no space before closing punctuation, digits joined into numbers."""
    out = ""
    quote_open = False
    previous = ""
    for token in tokens:
        if token in ("", START, END):
            continue
        glue = not out or previous in _NO_SPACE_AFTER or token in _NO_SPACE_BEFORE
        if token == '"':  # straight quotes: an opening one sticks to the next word, a closing one to the last
            glue = True if quote_open else not out
            quote_open = not quote_open
        elif previous == '"' and quote_open:
            glue = True
        if token.isdigit() and previous.isdigit():
            glue = True
        if token.isdigit() and previous in (".", ",", ":") and len(out) > 1 and out[-2].isdigit():
            glue = True  # 3.5, 1,000, 12:30
        out += token if glue else " " + token
        previous = token
    return out


# ------------------------------------------------------------------------------- embedded task
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _below_thousand(n: int, rng: random.Random) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
        if rest and rng.random() < 0.3:
            words.append("and")  # British style: "three hundred and five"
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_in_words(n: int, rng: random.Random | None = None) -> str:
    """0 <= n < 1,000,000 written in English words ("forty-two thousand and seven")."""
    rng = rng or random.Random(0)
    thousands, rest = divmod(n, 1000)
    words = (_below_thousand(thousands, rng) + ["thousand"]) if thousands else []
    if rest or not words:
        if thousands and rest < 100 and rng.random() < 0.3:
            words.append("and")
        words += _below_thousand(rest, rng)
    return " ".join(words)


def generated_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """The embedded task: numbers written in English words -> digits ("seven hundred and two" -> "702").

    Sizes are drawn log-uniformly, so short and long numbers are both common.
    """
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        digits = rng.randint(1, 6)
        n = rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)
        pairs.append((number_in_words(n, rng), str(n)))
    return pairs
