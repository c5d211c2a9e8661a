"""Labelled text shared by the text tasks (spam, sentiment): local label/text files, label
mapping, the checks a user's file needs, a seeded stratified split and tf.data conversion.

A labelled text file is a `.tsv`/`.csv` (or a headerless `label<TAB>text` file such as the
SMS Spam Collection's `SMSSpamCollection`) with a label column and a text column::

    label	text
    ham	Are we still on for lunch?
    spam	WINNER!! Claim your prize now

Labels are mapped to 0/1 by name (`ham`/`spam`, `negative`/`positive`, ...) or given as 0/1.
Rows whose text is empty are skipped and counted (`TextTable.skipped_empty`); every other
problem (missing column, unknown label, not UTF-8, one class only) is a `UserError`.
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dlapps.data.files import read_table, require_file, split_frame
from dlapps.errors import UserError


@dataclass
class TextTable:
    """Texts and 0/1 labels read from a file, with what was dropped on the way."""

    texts: list[str]
    labels: np.ndarray
    """int32, 0 or 1 (the index into `class_names`)."""
    skipped_empty: int = 0
    """Rows skipped because their text was empty or missing."""

    def __len__(self) -> int:
        return len(self.texts)


def label_mapping(class_names: Sequence[str], aliases: dict[str, int] | None = None) -> dict[str, int]:
    """Accepted spellings of each label (lower case) -> class index: names, indices, aliases."""
    mapping = {str(name).lower(): i for i, name in enumerate(class_names)}
    mapping.update({str(i): i for i in range(len(class_names))})
    mapping.update({f"{i}.0": i for i in range(len(class_names))})
    mapping.update({k.lower(): v for k, v in (aliases or {}).items()})
    return mapping


def _is_label(value: str, mapping: dict[str, int]) -> bool:
    return str(value).strip().lower() in mapping


def read_labelled_text(path: str | Path, class_names: Sequence[str], aliases: dict[str, int] | None = None,
                       text_columns: Sequence[str] = ("text",), label_column: str = "label",
                       require_both_classes: bool = True) -> TextTable:
    """The texts and 0/1 labels of a local `.tsv`/`.csv` file (see the module docstring).

    `text_columns` lists accepted names of the text column, first match wins. A headerless
    two-column file whose first field is a label (e.g. `spam<TAB>...`) is read as label, text.
    """
    path = require_file(path, "data file")
    if path.is_dir():
        raise UserError(f"{path} is a folder; expected a .tsv or .csv file with columns "
                        f"{label_column!r} and {text_columns[0]!r}")
    mapping = label_mapping(class_names, aliases)
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt", "") else ","
    frame = read_table(path, sep=sep, numbers=False)
    header = [str(c).strip().lower() for c in frame.columns]  # header names match in any case
    if label_column not in header and len(header) >= 2 and _is_label(header[0], mapping):
        # Headerless `label<TAB>text` (the SMS Spam Collection's own file).
        frame = read_table(path, sep=sep, header=False, names=[label_column, text_columns[0]], numbers=False)
        header = [label_column, text_columns[0]]
    frame.columns = header
    text_column = next((c for c in text_columns if c in header), None)
    if label_column not in header or text_column is None:
        wanted = f"{label_column!r} and {' or '.join(repr(c) for c in text_columns)}"
        raise UserError(f"{path}: needs columns {wanted}; found {', '.join(map(repr, header))} "
                        "(first line must be the header, e.g. 'label<TAB>text')")
    labels_raw = frame[label_column]
    missing_label = labels_raw.isna()
    if missing_label.any():
        line = int(np.flatnonzero(missing_label)[0]) + 2
        raise UserError(f"{path}: line {line} has no label; every row needs one of "
                        f"{', '.join(class_names)} (or 0/1)")
    keys = labels_raw.astype(str).str.strip().str.lower()
    unknown = sorted(set(keys) - set(mapping))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise UserError(f"{path}: unknown label(s) {shown}; use {', '.join(class_names)} (or 0/1)")
    texts = frame[text_column].fillna("").astype(str).str.strip()
    keep = texts != ""
    table = TextTable(texts[keep].tolist(), keys[keep].map(mapping).to_numpy(np.int32),
                      skipped_empty=int((~keep).sum()))
    if len(table) == 0:
        raise UserError(f"{path}: every text is empty")
    if require_both_classes:
        check_both_classes(table.labels, class_names, str(path))
    return table


def check_both_classes(labels: np.ndarray, class_names: Sequence[str], where: str) -> None:
    """A UserError when `labels` hold a single class (nothing to learn, AUC undefined)."""
    present = np.unique(labels)
    if len(present) < 2:
        only = class_names[int(present[0])] if len(present) else "none"
        raise UserError(f"{where}: every row is labelled {only!r}; a classifier needs examples of "
                        f"both {' and '.join(class_names)}")


def decode_utf8(raw: bytes, where: str) -> str:
    """`raw` as UTF-8 text, or a UserError naming the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{where}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from None


def split_texts(texts: Sequence[str], labels: np.ndarray, val_fraction: float, test_fraction: float,
                seed: int) -> tuple[TextTable, TextTable, TextTable]:
    """A seeded train/val/test split, stratified by label (so rare spam lands in every split)."""
    frame = pd.DataFrame({"text": list(texts), "label": np.asarray(labels, np.int32)})
    try:
        parts = split_frame(frame, val_fraction, test_fraction, seed, stratify=frame["label"].to_numpy())
    except ValueError:  # too few examples of a class to stratify (tiny files): a plain split
        parts = split_frame(frame, val_fraction, test_fraction, seed)
    return tuple(TextTable(p["text"].tolist(), p["label"].to_numpy(np.int32)) for p in parts)


def to_dataset(table: TextTable):
    """An unbatched tf.data.Dataset of (text: tf.string scalar, label: float32 scalar)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(table.texts, dtype=tf.string), np.asarray(table.labels, np.float32)))


def vocabulary(texts: Sequence[str], max_tokens: int, ngrams: int | None = None, split: str = "whitespace",
               standardize: str = "lower_and_strip_punctuation", tf_idf: bool = False
               ) -> tuple[list[str], list[float] | None]:
    """(vocabulary, idf weights or None) of a TextVectorization adapted on `texts` (training split).

    Computed once in `load_data` and stored in `info`, so `build_model` needs no data and the
    saved model carries its own vocabulary.
    """
    import keras

    layer = keras.layers.TextVectorization(max_tokens=max_tokens, ngrams=ngrams, split=split,
                                           standardize=standardize,
                                           output_mode="tf_idf" if tf_idf else "int")
    layer.adapt(np.asarray(texts, dtype=object), batch_size=1024)
    vocab = [str(t) for t in layer.get_vocabulary(include_special_tokens=False)]
    if not tf_idf:
        return vocab, None
    # idf weights of the vocabulary terms (index 0 is the OOV bucket, whose weight Keras keeps apart).
    weights = np.asarray(layer._lookup_layer.idf_weights)[1:]
    return vocab, [float(w) for w in weights]


def read_text_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file (for `predict` on a file of texts)."""
    path = require_file(path)
    return [line.strip() for line in decode_utf8(path.read_bytes(), str(path)).splitlines() if line.strip()]


TEXT_FILE_SUFFIXES = (".txt", ".tsv", ".csv")


def texts_from_inputs(inputs: Sequence[str], text_columns: Sequence[str] = ("text",)) -> list[str]:
    """The texts of `predict`'s inputs: each is a text, or a file of texts.

    A `.txt` file gives one text per non-empty line; a `.tsv`/`.csv` file the column named like one
    of `text_columns` (any case; the only column of a one-column file). Files must be UTF-8. A
    file name that is not a file (`reviews.txt` mistyped) is read as a text, with a warning.
    Raises UserError for a table without such a column, a file that is not UTF-8, or no texts.
    """
    texts: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() not in TEXT_FILE_SUFFIXES or not path.is_file():
            if path.suffix.lower() in TEXT_FILE_SUFFIXES and not any(ch.isspace() for ch in item):
                print(f"dlapps: warning: no file {item}: read as a text itself", file=sys.stderr)
            texts.append(item)
            continue
        if path.suffix.lower() == ".txt":
            texts.extend(read_text_lines(path))
            continue
        decode_utf8(path.read_bytes(), str(path))
        frame = read_table(path, numbers=False)
        header = {str(c).strip().lower(): c for c in frame.columns}
        column = next((header[c] for c in text_columns if c in header), None)
        if column is None and len(frame.columns) == 1:
            column = frame.columns[0]
        if column is None:
            raise UserError(f"{path}: no text column; name one of {', '.join(text_columns)} "
                            f"(found {', '.join(map(str, frame.columns))})")
        texts.extend(t.strip() for t in frame[column].fillna("").astype(str) if t.strip())
    return texts


# ----------------------------------------------------------------------------- predictions, metrics
_SCORERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
NONEMPTY_TEXT = "a"
"""A text of one word: what `_scorer` appends to every batch (and drops) so none is empty."""


def has_words(text: str) -> bool:
    """Whether `text` holds a letter or a digit. `predict` marks texts without ("", ":)", "!!!")
    "(no words)": a word-level model reads them as an empty sequence and answers from its biases
    alone (the same answer for every such text)."""
    return any(ch.isalnum() for ch in text)


def _scorer(model):
    """A compiled `texts -> probabilities` function of `model` (one trace for any batch size).

    Called directly rather than through `predict_on_batch`, which under a MirroredStrategy gives
    every replica the whole (undistributed) batch and returns the outputs once per replica.
    """
    import tensorflow as tf

    if model in _SCORERS:
        return _SCORERS[model]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def score(texts):
        # One extra text with a word, so that a batch never tokenizes to zero time steps (a batch
        # of texts without tokens, such as ":)", would give an LSTM or a Conv1D an empty sequence);
        # its score is dropped. The others' scores do not change: they are padded to the batch's
        # longest text anyway, and padding is masked. A text without tokens thus always gets the
        # model's answer for an empty sequence, alone or in a batch.
        padded = tf.concat([texts, tf.constant([NONEMPTY_TEXT])], axis=0)
        return tf.reshape(model(padded, training=False), [-1])[:-1]

    _SCORERS[model] = score
    return score


def probabilities(model, dataset, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(true 0/1 labels, predicted probabilities) of a binary text model on an unbatched dataset."""
    from dlapps.data.pipeline import batched

    score = _scorer(model)
    labels, scores = [], []
    for texts, y in batched(dataset, batch_size):
        labels.append(np.asarray(y).ravel())
        scores.append(score(texts).numpy())
    if not labels:
        raise UserError("no texts to evaluate")
    return np.concatenate(labels).astype(np.int32), np.concatenate(scores).astype(np.float64)


def text_probabilities(model, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
    """Predicted probabilities of a binary text model for raw strings."""
    import tensorflow as tf

    score = _scorer(model)
    out = [score(tf.constant(list(texts[i:i + batch_size]), tf.string)).numpy()
           for i in range(0, len(texts), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class at `threshold`, and ROC AUC."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    y_pred = (prob >= threshold).astype(np.int32)
    both = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, prob)) if both else float("nan"),
        "threshold": float(threshold),
        "n": int(len(y_true)),
    }


def best_f1_threshold(y_true: np.ndarray, prob: np.ndarray) -> float:
    """The decision threshold with the best F1 of the positive class (midpoint between scores)."""
    from sklearn.metrics import precision_recall_curve

    if len(np.unique(y_true)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, prob)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    # Halfway to the next lower score, so a borderline example is not decided by rounding.
    lower = prob[prob < thresholds[best]]
    return float((thresholds[best] + lower.max()) / 2) if len(lower) else float(thresholds[best])
