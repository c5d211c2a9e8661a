"""Shared labelled-text helpers: file formats, label mapping, every bad-input error, metrics, layers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dlapps.data.text import (best_f1_threshold, binary_metrics, read_labelled_text, split_texts,
                              to_dataset, vocabulary)
from dlapps.errors import UserError
from dlapps.layers import DecisionThreshold, TruncateSequence

SPAM = ["ham", "spam"]


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_tsv_with_named_labels(tmp_path):
    path = write(tmp_path, "a.tsv", "label\ttext\nham\thello there\nspam\tWIN £100 now!\nHAM\t\"quoted\" text\n")
    table = read_labelled_text(path, SPAM)
    assert table.texts == ["hello there", "WIN £100 now!", '"quoted" text']
    assert table.labels.tolist() == [0, 1, 0]
    assert table.skipped_empty == 0


def test_csv_with_numeric_labels_and_sentence_column(tmp_path):
    path = write(tmp_path, "b.csv", 'sentence,label\n"good, really",1\nbad,0\n')
    table = read_labelled_text(path, ["negative", "positive"], text_columns=("text", "sentence"))
    assert table.texts == ["good, really", "bad"] and table.labels.tolist() == [1, 0]


def test_headerless_label_tab_text(tmp_path):
    path = write(tmp_path, "SMSSpamCollection", "ham\tsee you soon\nspam\tFREE entry txt WIN\nham\tok\n")
    table = read_labelled_text(path, SPAM)
    assert table.labels.tolist() == [0, 1, 0] and table.texts[1] == "FREE entry txt WIN"


def test_empty_texts_are_skipped_and_counted(tmp_path):
    path = write(tmp_path, "c.tsv", "label\ttext\nham\thi\nspam\t\nspam\twin cash\nham\t   \n")
    table = read_labelled_text(path, SPAM)
    assert len(table) == 2 and table.skipped_empty == 2


@pytest.mark.parametrize("content, message", [
    ("label\tbody\nham\thi\nspam\twin\n", "needs columns 'label' and 'text'"),
    ("kind\ttext\nham\thi\nspam\twin\n", "needs columns"),
    ("label\ttext\nham\thi\nmaybe\twin\n", "unknown label(s) 'maybe'"),
    ("label\ttext\nham\thi\nham\tsee you\n", "every row is labelled 'ham'"),
    ("label\ttext\nham\t\nspam\t\n", "every text is empty"),
    ("label\ttext\n", "has a header but no rows"),
    ("", "is empty"),
])
def test_bad_files_get_clear_errors(tmp_path, content, message):
    path = write(tmp_path, "bad.tsv", content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_labelled_text(path, SPAM)


def test_non_utf8_bytes_are_rejected(tmp_path):
    path = write(tmp_path, "latin1.tsv", "label\ttext\nham\tcaf\xe9\nspam\twin\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_labelled_text(path, SPAM)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_labelled_text(tmp_path / "nope.tsv", SPAM)
    with pytest.raises(UserError, match="is a folder"):
        read_labelled_text(tmp_path, SPAM)


def test_split_is_stratified_and_seeded():
    texts = [f"text {i}" for i in range(200)]
    labels = np.asarray([1] * 20 + [0] * 180)
    train, val, test = split_texts(texts, labels, 0.2, 0.2, seed=3)
    assert (len(train), len(val), len(test)) == (120, 40, 40)
    assert val.labels.sum() == 4 and test.labels.sum() == 4  # 10% spam in every split
    again = split_texts(texts, labels, 0.2, 0.2, seed=3)
    assert again[1].texts == val.texts
    assert set(train.texts).isdisjoint(val.texts) and set(val.texts).isdisjoint(test.texts)


def test_dataset_and_vocabulary():
    train, *_ = split_texts(["a b", "b c", "c d", "d e"], np.asarray([0, 1, 0, 1]), 0.0, 0.0, seed=0)
    texts, labels = next(iter(to_dataset(train).batch(4)))
    assert texts.dtype.name == "string" and labels.dtype.name == "float32"
    vocab, idf = vocabulary(["b a", "b c"], 10, tf_idf=True)
    assert vocab[0] == "b" and len(idf) == len(vocab) == 3


def test_best_f1_threshold_and_metrics():
    y = np.asarray([0, 0, 0, 0, 1, 1])
    prob = np.asarray([0.1, 0.2, 0.3, 0.35, 0.4, 0.9])  # separable, but below 0.5
    threshold = best_f1_threshold(y, prob)
    assert 0.35 < threshold <= 0.4
    assert binary_metrics(y, prob, threshold)["f1"] == 1.0
    assert binary_metrics(y, prob, 0.5)["recall"] == 0.5
    assert binary_metrics(y, prob)["roc_auc"] == 1.0


def test_text_layers_serialize(tmp_path):
    inputs = keras.Input(shape=(5,))
    x = TruncateSequence(3)(inputs)
    x = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(x)  # sums what is kept
    x = keras.layers.Reshape(())(x)
    outputs = DecisionThreshold(0.5, name="decision_threshold")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("decision_threshold").assign_threshold(0.25)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    batch = np.asarray([[1.0, 2.0, 3.0, 4.0, 5.0]])
    assert float(loaded.predict_on_batch(batch)[0]) == 6.0  # only the first 3 tokens
    assert float(loaded.get_layer("decision_threshold").threshold) == pytest.approx(0.25)


def test_idf_weights_match_document_frequencies():
    """idf(t) = log(1 + N / (1 + df(t))) (Keras' TF-IDF smoothing), computed here from the documents."""
    import math

    texts = ["the cat sat", "the dog sat", "the cat ran", "a bird", "the the the cat"]
    vocab, idf = vocabulary(texts, 20, ngrams=2, tf_idf=True)
    documents = []
    for text in texts:
        words = text.split()
        documents.append(set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])})
    assert set(vocab) == set().union(*documents)
    for term, weight in zip(vocab, idf, strict=True):
        df = sum(term in document for document in documents)
        assert weight == pytest.approx(math.log(1 + len(texts) / (1 + df)), rel=1e-5), term


def _brute_force(y, prob):
    """F1 and accuracy of 'positive when prob >= t' at every midpoint between distinct scores."""
    scores = np.unique(prob)
    candidates = np.concatenate([[scores[0] - 1e-3], (scores[:-1] + scores[1:]) / 2, [scores[-1] + 1e-3]])
    table = []
    for t in candidates:
        tp = sum(1 for label, p in zip(y, prob) if label == 1 and p >= t)
        fp = sum(1 for label, p in zip(y, prob) if label == 0 and p >= t)
        fn = sum(1 for label, p in zip(y, prob) if label == 1 and p < t)
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        table.append((t, f1, (len(y) - fp - fn) / len(y)))
    return table


def test_threshold_maximises_f1_not_accuracy_on_an_imbalanced_sample():
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=400) < 0.08).astype(int)  # 8% positives
    prob = 1 / (1 + np.exp(-(1.5 * y - 2.0 + rng.normal(scale=1.0, size=400))))
    table = _brute_force(y, prob)
    best_f1 = max(f1 for _, f1, _ in table)
    by_accuracy = max(table, key=lambda row: row[2])
    assert by_accuracy[1] < best_f1 - 0.1  # the sample tells the two criteria apart (F1 0.40 vs 0.53)

    threshold = best_f1_threshold(y, prob)
    predicted = prob >= threshold
    tp, fp, fn = np.sum(predicted & (y == 1)), np.sum(predicted & (y == 0)), np.sum(~predicted & (y == 1))
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(best_f1)
    assert binary_metrics(y, prob, threshold)["f1"] == pytest.approx(best_f1)
