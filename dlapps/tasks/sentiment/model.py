"""The sentiment classifier: raw string -> TextVectorization -> Embedding [+ pretrained vectors] -> (Bi)LSTM/GRU [+ 1-D CNN] -> p(positive)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import keras
import numpy as np

from dlapps.data.text import binary_metrics, has_words, probabilities, text_probabilities, texts_from_inputs
from dlapps.errors import UserError
from dlapps.layers import MaskedGlobalMaxPooling1D, TruncateSequence
from dlapps.layers.text import NotPadding, ZeroMasked
from dlapps.optim import make_optimizer
from dlapps.task import Phase
from dlapps.tasks.sentiment.config import Config

RNNS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}

# What the full-profile model is and how it compares (measured; the model card's notes).
MODEL_NOTES = (
    "The full profile's model (SST-2, --data ../shared/data/sst2/train.tsv): "
    "embedding (128, trained from scratch, no pretrained vectors) -> bidirectional LSTM (64 units per "
    "direction, padding masked) -> max over time, concatenated with a Kim-style 1-D CNN branch (64 "
    "filters each of widths 3, 4, 5, max over time) -> dropout -> sigmoid, trained on SST-2 phrases and "
    "sentences with whole held-out sentences for validation/test (sentence_holdout, see data.py); whole "
    "training sentences weigh 3x their sub-phrases in the loss (sentence_weight=3). "
    "On the same split, TF-IDF (1-2-grams) + LogisticRegression (C=10) scores 0.812 validation / "
    "0.860 test accuracy, so this validation split is harder than the test split (826 vs 551 sentences). "
    "The issue's target of 0.85 validation accuracy is NOT reached (best 0.837). Measured runs "
    "(validation accuracy, 826 sentences, so one standard error is about 0.013): BiLSTM alone 0.814 "
    "(final state, lr 2e-3), 0.808 (max pooling, lr 1e-3), 0.805 (128 units, 8000 words, batch 128); "
    "+ CNN branch and sentence_weight=3: 0.826 and 0.837 (this recipe, two runs); + weight decay 0.1, "
    "4 epochs: 0.816; with 64-d embeddings and 16000 words: 0.801; batch 32: 0.820; sentence_weight=6: "
    "0.833; 100 filters per width: 0.814. Every run peaks after two or three epochs, "
    "then overfits the phrases. Three more runs of this recipe from other initial weights (--seed 1, 2, 3) "
    "scored 0.810, 0.799 and 0.804, and the average of their three probabilities 0.803 (an ensemble does "
    "not help), so 0.837 is the top of this recipe's spread; its typical figure is about 0.81. "
    "Published figures of 0.85-0.87 on SST-2 use pretrained word vectors (GloVe); from-scratch LSTM/CNN "
    "results are about 0.82-0.84. With the GloVe 6B 50-d vectors (--set embeddings=glove.6B.50d) this recipe "
    "gains about one point at best (3 seeds: 0.817 with a frozen GloVe channel and its own dropout of 0.2, "
    "against 0.807 without; ablation table in tasks/sentiment.toml), so the committed model has none."
)


def build_model(cfg: Config, info: dict, hp=None) -> keras.Model:
    """A compiled recurrent classifier over raw strings; `hp` may choose rnn, units, dropout, embedding.

    Word representations (concatenated along the feature axis, all masking padding): the embedding
    learned from scratch (`embedding_dim`, 0 = none) and, with `embeddings`, the pretrained vectors
    as a frozen `static_vectors` copy and/or a `tuned_vectors` copy (`pretrained_channels`; both =
    Kim 2014's multichannel model). Pretrained tables hold the vocabulary's rows only
    (len(vocabulary) + 2, d), initialised by dlapps.data.vectors.embedding_matrix. With
    `fine_tune_embeddings` the tuned copy starts frozen; the "fine_tune" phase unfreezes it.
    Raises UserError for no word representation at all or unreadable vectors.
    """
    units = hp.Int("units", 16, 256, step=16, default=cfg.units) if hp else cfg.units
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.1, default=cfg.dropout) if hp else cfg.dropout
    embedding_dim = (hp.Int("embedding_dim", 32, 256, step=32, default=cfg.embedding_dim)
                     if hp and cfg.embedding_dim else cfg.embedding_dim)
    rnn = hp.Choice("rnn", list(RNNS), default=cfg.rnn) if hp else cfg.rnn
    if embedding_dim <= 0 and cfg.embeddings == "none":
        raise UserError("embedding_dim = 0 needs pretrained vectors: --set embeddings=glove.6B.50d (or a file)")

    texts = keras.Input(shape=(), dtype="string", name="text")
    # Tokenization lives in the model: the vocabulary was adapted on the training split only.
    # No fixed output length: each batch is padded to its longest text, then capped.
    token_ids = keras.layers.TextVectorization(vocabulary=info["vocabulary"], name="tokenize")(texts)
    token_ids = TruncateSequence(cfg.sequence_length, name="truncate")(token_ids)
    rows = len(info["vocabulary"]) + 2  # + padding (id 0) and out-of-vocabulary (id 1)
    channels, pretrained_layers = [], []
    if embedding_dim > 0:
        # mask_zero: padding (id 0) is masked, so the recurrent layer skips it (its state is carried over).
        x = keras.layers.Embedding(rows, embedding_dim, mask_zero=True, name="embedding")(token_ids)
        if dropout > 0:  # drop whole word vectors (noise shape broadcasts over the embedding axis)
            x = keras.layers.SpatialDropout1D(dropout, name="word_dropout")(x)
        channels.append(x)
    if cfg.embeddings != "none":
        from dlapps.data.vectors import embedding_matrix

        matrix = embedding_matrix(cfg.embeddings, info["vocabulary"], seed=cfg.seed).matrix
        copies = ["static_vectors", "tuned_vectors"] if cfg.pretrained_channels == "both" else [
            f"{cfg.pretrained_channels}_vectors"]
        vectors = []
        for name in copies:
            trainable = name == "tuned_vectors" and not cfg.fine_tune_embeddings
            layer = keras.layers.Embedding(rows, matrix.shape[1], mask_zero=True, trainable=trainable, name=name)
            vectors.append(layer(token_ids))
            pretrained_layers.append(layer)
        x = vectors[0] if len(vectors) == 1 else keras.layers.Concatenate(name="pretrained")(vectors)
        pretrained_dropout = dropout if cfg.pretrained_dropout < 0 else cfg.pretrained_dropout
        if pretrained_dropout > 0:
            x = keras.layers.SpatialDropout1D(pretrained_dropout, name="pretrained_dropout")(x)
        channels.append(x)
    x = channels[0] if len(channels) == 1 else keras.layers.Concatenate(name="word_channels")(channels)
    words = x
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
    for layer in pretrained_layers:
        layer.embeddings.assign(matrix)
    _compile(model, make_optimizer(cfg, info, hp))
    return model


def _compile(model: keras.Model, optimizer) -> None:
    model.compile(optimizer=optimizer, loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])


def _fine_tune(model: keras.Model, cfg: Config) -> None:
    """The "fine_tune" phase's preparation: the tuned copy of the vectors becomes trainable, and the
    whole network continues with a fresh optimizer at the constant `fine_tune_learning_rate`."""
    model.get_layer("tuned_vectors").trainable = True
    optimizer_cfg = dataclasses.replace(cfg, learning_rate=cfg.fine_tune_learning_rate, lr_schedule="constant")
    with model.distribute_strategy.scope():  # the new optimizer's variables belong to the model's strategy
        _compile(model, make_optimizer(optimizer_cfg))


def phases(cfg: Config) -> list[Phase]:
    """One phase of `epochs`; with a tuned copy of pretrained vectors and `fine_tune_embeddings`, a
    second, "fine_tune", of `fine_tune_epochs` (as in the image transfer task: frozen, then tuned)."""
    out = [Phase("train", cfg.epochs)]
    if (cfg.embeddings != "none" and cfg.pretrained_channels != "static" and cfg.fine_tune_embeddings
            and cfg.fine_tune_epochs > 0):
        out.append(Phase("fine_tune", cfg.fine_tune_epochs, _fine_tune))
    return out


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


def predict(model: keras.Model, inputs: list[str], info: dict, cfg: Config, options: dict) -> list[str]:
    """`positive  p(positive)=0.930  <text>` per text.

    Inputs are texts, or `.txt` (one text per line), `.tsv`/`.csv` (the `text` or `sentence`
    column, any case) UTF-8 files of texts (`dlapps.data.text.texts_from_inputs`). A text with no
    words (empty, ":)", "!!!") tokenizes to an empty sequence: it gets the model's answer for
    an empty text (its biases alone; the same for every such text), marked "(no words)".
    Raises UserError without texts, or for a file that is not UTF-8 or has no text column.
    """
    texts = texts_from_inputs(inputs, ("text", "sentence"))
    if not texts:
        raise UserError('give texts to classify, e.g. dlapps predict sentiment "not good at all"')
    names = info.get("class_names", ["negative", "positive"])
    prob = text_probabilities(model, texts)
    return [f"{names[int(p >= 0.5)]:<8}  p(positive)={p:.3f}  {text}{'' if has_words(text) else '  (no words)'}"
            for p, text in zip(prob, texts)]
