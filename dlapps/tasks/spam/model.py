"""The spam classifier over raw strings, with its decision threshold saved inside the model.

Two models (`--set model=...`), compared on the SMS Spam Collection in the model card:

- `ngrams` (default): TF-IDF bags of word 1-2-grams and character 2-5-grams (the vocabularies and
  idf weights come from the training split), concatenated, into a small dense head. Character
  n-grams catch what spam looks like ("£1000", "0906...", "txt", "W1N") even for unseen words.
- `sequence`: token embeddings read by a 1-D convolution and a bidirectional GRU.

The output is p(spam). Spam is the rare class, so after training the threshold with the best
spam F1 on the validation split is stored in the model's `DecisionThreshold` layer.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from dlapps.data.text import (best_f1_threshold, binary_metrics, probabilities, read_text_lines,
                              text_probabilities)
from dlapps.errors import UserError
from dlapps.layers import DecisionThreshold, TruncateSequence
from dlapps.tasks.spam.data import Config
from dlapps.training import make_optimizer

THRESHOLD_LAYER = "decision_threshold"


def _ngram_features(texts, cfg: Config, info: dict):
    """Pooled TF-IDF n-gram features of raw texts (word bigrams + character n-grams)."""
    words = keras.layers.TextVectorization(vocabulary=info["word_vocabulary"], idf_weights=info["word_idf"],
                                           ngrams=2, output_mode="tf_idf", name="word_ngrams")(texts)
    if not info.get("char_vocabulary"):
        return words
    chars = keras.layers.TextVectorization(vocabulary=info["char_vocabulary"], idf_weights=info["char_idf"],
                                           split="character", standardize="lower", ngrams=tuple(cfg.char_ngrams),
                                           output_mode="tf_idf", name="char_ngrams")(texts)
    return keras.layers.Concatenate(name="ngram_features")([words, chars])


def _sequence_features(texts, cfg: Config, info: dict, embedding_dim: int, units: int):
    """A sequence summary: embeddings -> Conv1D -> bidirectional GRU."""
    ids = keras.layers.TextVectorization(vocabulary=info["word_vocabulary"], name="tokenize")(texts)
    ids = TruncateSequence(cfg.sequence_length, name="truncate")(ids)
    x = keras.layers.Embedding(len(info["word_vocabulary"]) + 2, embedding_dim, mask_zero=True, name="embedding")(ids)
    x = keras.layers.Bidirectional(keras.layers.GRU(units), name="bi_gru")(x)
    return x


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """A compiled binary classifier over raw strings; `hp` may choose hidden_units, dropout, units."""
    hidden = hp.Int("hidden_units", 0, 128, step=16, default=cfg.hidden_units) if hp else cfg.hidden_units
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.1, default=cfg.dropout) if hp else cfg.dropout
    texts = keras.Input(shape=(), dtype="string", name="text")
    if cfg.model == "ngrams":
        x = _ngram_features(texts, cfg, info)
    elif cfg.model == "sequence":
        units = hp.Int("units", 16, 128, step=16, default=cfg.units) if hp else cfg.units
        x = _sequence_features(texts, cfg, info, cfg.embedding_dim, units)
    else:
        raise UserError(f"model {cfg.model!r}: choose ngrams or sequence")
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="feature_dropout")(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
    p_spam = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="p_spam")(x)
    p_spam = keras.layers.Reshape((), name="probability")(p_spam)
    output = DecisionThreshold(0.5, name=THRESHOLD_LAYER)(p_spam)
    model = keras.Model(texts, output, name=f"spam_{cfg.model}")
    model.compile(optimizer=make_optimizer(cfg, info, hp), loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc"),
                           keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")])
    return model


def threshold_of(model: keras.Model) -> float:
    """The decision threshold saved in the model (0.5 for a model without the layer)."""
    try:
        return float(np.asarray(model.get_layer(THRESHOLD_LAYER).threshold))
    except ValueError:
        return 0.5


class ChooseThreshold(keras.callbacks.Callback):
    """At the end of training, store the best-F1 threshold on the validation split in the model."""

    def __init__(self, val_dataset):
        super().__init__()
        self.val_dataset = val_dataset

    def on_train_end(self, logs=None):
        if self.val_dataset is None:
            return
        y_true, prob = probabilities(self.model, self.val_dataset)
        self.model.get_layer(THRESHOLD_LAYER).assign_threshold(best_f1_threshold(y_true, prob))


def callbacks(cfg: Config, run_dir, data) -> list:
    """The threshold chooser (runs after early stopping restored the best weights)."""
    return [ChooseThreshold(data.val)]


def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Spam precision, recall, F1 at the saved threshold, ROC AUC and accuracy on the test split."""
    y_true, prob = probabilities(model, data.test)
    metrics = binary_metrics(y_true, prob, threshold_of(model))
    metrics["f1_at_0.5"] = binary_metrics(y_true, prob, 0.5)["f1"]
    return metrics


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """Confusion matrix on the test split at the saved threshold."""
    from dlapps import plots

    y_true, prob = probabilities(model, data.test)
    threshold = threshold_of(model)
    return [plots.confusion_matrix(y_true, (prob >= threshold).astype(int), data.info["class_names"],
                                   Path(plots_dir) / "confusion_matrix.png",
                                   title=f"spam filter, test split (threshold {threshold:.2f})")]


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config) -> list[str]:
    """`spam  p(spam)=0.97  <text>` per message (a `.txt` file argument: one message per line)."""
    texts = []
    for item in inputs:
        texts.extend(read_text_lines(item) if item.endswith(".txt") and Path(item).is_file() else [item])
    if not texts:
        raise UserError('give messages to classify, e.g. dlapps predict spam "WINNER!! Claim your prize"')
    threshold = threshold_of(model)
    names = info.get("class_names", ["ham", "spam"])
    prob = text_probabilities(model, texts)
    return [f"{names[int(p >= threshold)]:<4}  p(spam)={p:.3f} (threshold {threshold:.2f})  {text}"
            for p, text in zip(prob, texts)]
