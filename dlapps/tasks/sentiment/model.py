"""The sentiment classifier: raw string -> TextVectorization -> Embedding -> (Bi)LSTM/GRU [+ 1-D CNN] -> p(positive)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import keras
import numpy as np

from dlapps.data.text import binary_metrics, probabilities, read_text_lines, text_probabilities
from dlapps.errors import UserError
from dlapps.layers import MaskedGlobalMaxPooling1D, TruncateSequence
from dlapps.layers.text import NotPadding, ZeroMasked
from dlapps.tasks.sentiment.data import Config
from dlapps.training import make_optimizer

RNNS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """A compiled recurrent classifier over raw strings; `hp` may choose rnn, units, dropout, embedding."""
    units = hp.Int("units", 16, 256, step=16, default=cfg.units) if hp else cfg.units
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.1, default=cfg.dropout) if hp else cfg.dropout
    embedding_dim = hp.Int("embedding_dim", 32, 256, step=32, default=cfg.embedding_dim) if hp else cfg.embedding_dim
    rnn = hp.Choice("rnn", list(RNNS), default=cfg.rnn) if hp else cfg.rnn
    if rnn not in RNNS:
        raise UserError(f"rnn {rnn!r}: choose lstm or gru")

    texts = keras.Input(shape=(), dtype="string", name="text")
    # Tokenization lives in the model: the vocabulary was adapted on the training split only.
    # No fixed output length: each batch is padded to its longest text, then capped.
    token_ids = keras.layers.TextVectorization(vocabulary=info["vocabulary"], name="tokenize")(texts)
    token_ids = TruncateSequence(cfg.sequence_length, name="truncate")(token_ids)
    # mask_zero: padding (id 0) is masked, so the recurrent layer skips it (its state is carried over).
    x = keras.layers.Embedding(len(info["vocabulary"]) + 2, embedding_dim, mask_zero=True, name="embedding")(token_ids)
    if dropout > 0:  # drop whole word vectors (noise shape broadcasts over the embedding axis)
        x = keras.layers.SpatialDropout1D(dropout, name="word_dropout")(x)
    words = x
    if cfg.pooling not in ("last", "max"):
        raise UserError(f"pooling {cfg.pooling!r}: choose last or max")
    for i in range(cfg.rnn_layers):
        last = i == cfg.rnn_layers - 1
        sequences = not last or cfg.pooling == "max"
        layer = RNNS[rnn](units, return_sequences=sequences, name=f"{rnn}_{i}")
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{rnn}_{i}")
        x = layer(x)
    if cfg.pooling == "max":
        x = MaskedGlobalMaxPooling1D(name="max_over_time")(x)
    if cfg.conv_filters:  # Kim (2014): n-gram detectors over the word vectors, max over time
        not_padding = NotPadding(name="not_padding")(token_ids)  # the mask Conv1D does not carry
        branches, words = [x], ZeroMasked(name="zero_padding")(words)
        for width in cfg.conv_widths:
            conv = keras.layers.Conv1D(cfg.conv_filters, int(width), padding="same", activation="relu",
                                       name=f"conv_{width}")(words)
            branches.append(MaskedGlobalMaxPooling1D(name=f"conv_{width}_max")(conv, mask=not_padding))
        x = keras.layers.Concatenate(name="rnn_and_cnn")(branches)
    if cfg.dense_units:
        x = keras.layers.Dense(cfg.dense_units, activation="relu", name="hidden")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="p_positive")(x)
    model = keras.Model(texts, keras.layers.Reshape((), name="probability")(probability), name="sentiment_rnn")
    model.compile(optimizer=make_optimizer(cfg, info, hp), loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
    return model


def evaluate(model: keras.Model, data, cfg: Config) -> dict[str, float]:
    """Accuracy, F1 (positive class), precision, recall and ROC AUC on the test split."""
    y_true, prob = probabilities(model, data.test)
    return binary_metrics(y_true, prob, 0.5)


def make_plots(model: keras.Model, data, cfg: Config, plots_dir: Path) -> list[Path]:
    """The most positive and most negative scored test texts, and the score histogram by class."""
    import matplotlib.pyplot as plt

    from dlapps import plots

    texts = [t.decode("utf-8", errors="replace") for t, _ in data.test.as_numpy_iterator()]
    y_true, prob = probabilities(model, data.test)
    order = np.argsort(prob)
    k = min(8, len(order) // 2)
    picks = list(order[:k]) + list(order[-k:])
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(13, 0.45 * 2 * k + 1.5), gridspec_kw={"width_ratios": [3, 1]})
    labels = [textwrap.shorten(texts[i], 70, placeholder=" ...") for i in picks]
    colors = ["tab:green" if y_true[i] == 1 else "tab:red" for i in picks]
    bars.barh(range(len(picks)), [prob[i] for i in picks], color=colors)
    bars.set_yticks(range(len(picks)), labels, fontsize=7)
    bars.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    bars.set_xlim(0, 1)
    bars.set_xlabel("p(positive)  (bar colour = true label: green positive, red negative)")
    bars.set_title("most negative (top) and most positive (bottom) scored test texts")
    for label, name in ((0, "negative"), (1, "positive")):
        hist.hist(prob[y_true == label], bins=20, range=(0, 1), alpha=0.6, label=name)
    hist.set_xlabel("p(positive)")
    hist.set_title("scores by true class")
    hist.legend()
    return [plots.save_figure(fig, Path(plots_dir) / "most_positive_negative.png")]


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config) -> list[str]:
    """`positive 0.93  <text>` per text (a `.txt` file argument: one text per line)."""
    texts = []
    for item in inputs:
        texts.extend(read_text_lines(item) if item.endswith(".txt") and Path(item).is_file() else [item])
    if not texts:
        raise UserError('give texts to classify, e.g. dlapps predict sentiment "not good at all"')
    names = info.get("class_names", ["negative", "positive"])
    prob = text_probabilities(model, texts)
    return [f"{names[int(p >= 0.5)]:<8}  p(positive)={p:.3f}  {text}" for p, text in zip(prob, texts)]
