"""Sentiment task: word order matters (LSTM vs bag of words), every data source, SST-2 holdout, CLI."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import keras
import numpy as np
import pytest

import dlapps
from dlapps import cli, config, runs, training
from dlapps.data.pipeline import batched, count
from dlapps.data.text import TextTable, text_probabilities, to_dataset
from dlapps.errors import UserError
from dlapps.runtime import Runtime
from dlapps.tasks.sentiment import data as sentiment_data

TASK = dlapps.get_task("sentiment")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke-profile BiLSTM trained with MirroredStrategy on 2 logical CPUs, saved with its card."""
    keras.utils.set_random_seed(1234)
    root = tmp_path_factory.mktemp("sentiment")
    cfg = config.resolve(TASK, "smoke")
    result = training.train(TASK, cfg, Runtime(strategy="mirrored", devices="cpu:2"), runs_root=root / "runs",
                            saved_models_root=root / "saved", save=True, quiet=True)
    return result, cfg, root


def bag_of_words_accuracy(data, info) -> float:
    """Validation accuracy of a non-linear bag-of-words model (multi-hot -> MLP) on the same data."""
    texts = keras.Input(shape=(), dtype="string")
    x = keras.layers.TextVectorization(vocabulary=info["vocabulary"], output_mode="multi_hot")(texts)
    x = keras.layers.Dense(64, activation="relu")(x)
    model = keras.Model(texts, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(batched(data.train, 32, shuffle=True, seed=0), epochs=6, verbose=0, shuffle=False,
                        validation_data=batched(data.val, 256))
    return max(history.history["val_accuracy"])


def test_lstm_learns_word_order_that_a_bag_of_words_cannot(trained):
    result, _, _ = trained
    assert result.metrics["replicas"] == 2
    lstm = result.metrics["val"]["accuracy"]
    bow = bag_of_words_accuracy(result.data, result.data.info)
    assert lstm > 0.9, lstm
    assert bow < 0.62, bow  # the generated data is built so that any bag of words is at chance
    assert result.metrics["test"]["roc_auc"] > 0.95
    assert (result.run_dir / "plots" / "most_positive_negative.png").exists()


def test_generated_sentences_carry_no_label_in_single_words():
    table = sentiment_data.generate_sentences(4000, seed=5)
    by_word = defaultdict(list)
    for text, label in zip(table.texts, table.labels):
        for word in set(text.split()):
            by_word[word].append(int(label))
    # Every word (sentiment words and cues included) appears as often in positive as in negative
    # sentences: the label lives in the order, not in the words.
    for word, labels in by_word.items():
        if len(labels) >= 100:
            assert abs(np.mean(labels) - 0.5) < 0.1, word
    assert 0.45 < np.mean(table.labels) < 0.55
    assert {"not", "hardly", "good", "bad"} <= set(by_word)


def test_saved_model_predicts_raw_strings(trained, capsys):
    result, _, root = trained
    saved = root / "saved" / "sentiment"
    texts = ["the movie was not bad but great", "the plot was not good but awful"]
    assert cli.main(["predict", "sentiment", *texts, "--model", str(saved)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("positive") and lines[1].startswith("negative")
    assert "p(positive)=" in lines[0]
    loaded, _ = runs.load_model(saved)
    np.testing.assert_allclose(text_probabilities(result.model, texts), text_probabilities(loaded, texts),
                               rtol=1e-5, atol=1e-6)


def test_evaluate_on_a_user_file(trained, tmp_path, capsys):
    _, _, root = trained
    table = sentiment_data.generate_sentences(200, seed=77)
    path = tmp_path / "reviews.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{['neg', 'pos'][y]}\n"
                                                 for t, y in zip(table.texts, table.labels)), encoding="utf-8")
    assert cli.main(["evaluate", "sentiment", "--model", str(root / "saved" / "sentiment"),
                     "--data", str(path)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 200 and metrics["accuracy"] > 0.85
    single = tmp_path / "single.tsv"
    single.write_text("label\ttext\npositive\tgreat\npositive\tsuperb\n", encoding="utf-8")
    assert cli.main(["evaluate", "sentiment", "--model", str(root / "saved" / "sentiment"), "--data", str(single)]) == 2
    assert "every row is labelled 'positive'" in capsys.readouterr().err


def test_gru_option_builds_and_runs():
    cfg = config.resolve(TASK, "smoke", {"rnn": "gru", "pooling": "max", "embedded_size": "200"})
    data = TASK.load_data(cfg)
    model = TASK.build_model(cfg, {**data.info, "steps_per_epoch": 5})
    assert any(isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer, keras.layers.GRU)
               for layer in model.layers)
    assert model.predict_on_batch(np.asarray(["not good at all", ""], dtype=object)).shape == (2,)
    with pytest.raises(UserError, match="rnn = 'transformer': choose one of lstm, gru"):
        TASK.build_model(config.resolve(TASK, "smoke", {"rnn": "transformer"}), data.info)


# ----------------------------------------------------------------------------- other sources, offline
def test_imdb_reviews_from_tfds_mock():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        data = TASK.load_data(config.resolve(TASK, "smoke", {"source": "imdb", "val_fraction": "0.25"}))
    assert data.info["source_description"].startswith("IMDB")
    assert data.info["train_size"] == 30 and count(data.val) == 10 and count(data.test) == 40
    text, label = next(iter(data.train))
    assert text.dtype.name == "string" and float(label) in (0.0, 1.0)


def test_aclimdb_folder_layout(tmp_path):
    for split, n in (("train", 6), ("test", 3)):
        for label, word in (("neg", "awful"), ("pos", "great")):
            folder = tmp_path / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}_1.txt").write_text(f"review {i}: a {word} film<br />", encoding="utf-8")
    (tmp_path / "aclImdb" / "train" / "unsup").mkdir()  # ignored, as in the real archive
    (tmp_path / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("unlabelled", encoding="utf-8")
    data = TASK.load_data(config.resolve(TASK, "smoke", {"data": str(tmp_path / "aclImdb"), "val_fraction": "0.25"}))
    assert data.info["train_size"] == 9 and count(data.val) == 3 and count(data.test) == 6
    texts = {t.decode(): y for t, y in data.test.as_numpy_iterator()}
    assert all((y == 1.0) == ("great" in t) for t, y in texts.items())
    with pytest.raises(UserError, match="aclImdb layout"):
        TASK.load_data(config.resolve(TASK, "smoke", {"data": str(tmp_path / "aclImdb" / "train" / "unsup")}))


def test_sentence_holdout_keeps_subphrases_of_held_out_sentences_out_of_training():
    sentences = [f"w{i} w{i + 1} w{i + 2} film" for i in range(0, 60, 3)]
    rows = sentences + [s.rsplit(" ", 1)[0] for s in sentences] + ["film"]  # + a shared phrase
    table = TextTable(rows, np.asarray([i % 2 for i in range(len(rows))], np.int32))
    train, val, test, stats = sentiment_data.sentence_holdout_split(table, 0.2, 0.1, seed=0)
    assert stats["sentences"] == 20 and stats["phrases"] == 21
    assert len(val) == 4 and len(test) == 2 and set(val.texts) <= set(sentences)
    held = val.texts + test.texts
    for phrase in train.texts:
        assert not any(phrase in sentence for sentence in held) or phrase == "film"
    assert "film" in train.texts  # also a span of training sentences: kept
    assert len(train) == len(rows) - 6 - 6


def test_sentence_weight_and_cnn_branch(tmp_path):
    """sentence_weight weights whole training sentences over phrases; the CNN branch saves and reloads."""
    sentences = [f"w{i} w{i + 1} w{i + 2} film" for i in range(0, 60, 3)]
    rows = sentences + [s.rsplit(" ", 1)[0] for s in sentences]
    path = tmp_path / "phrases.tsv"
    path.write_text("label\tsentence\n" + "".join(f"{i % 2}\t{r}\n" for i, r in enumerate(rows)), encoding="utf-8")
    overrides = {"data": str(path), "sentence_holdout": "true", "val_fraction": "0.2", "test_fraction": "0.1",
                 "sentence_weight": "3", "conv_filters": "4", "conv_widths": "[2, 3]"}
    cfg = config.resolve(TASK, "smoke", overrides)
    data = TASK.load_data(cfg)
    weight = {t.decode(): float(w) for t, _, w in data.train.as_numpy_iterator()}
    assert len(weight) == 40 - 6 - 6 and data.info["sentence_weight_rows"] == 14
    assert {round(weight[s] / weight[s.rsplit(" ", 1)[0]], 4) for s in sentences if s in weight} == {3.0}
    assert abs(np.mean(list(weight.values())) - 1.0) < 1e-6  # mean weight 1
    model = TASK.build_model(cfg, {**data.info, "steps_per_epoch": 1})
    # The CNN branch is there: one Conv1D of conv_filters per width, max-pooled, joined to the RNN's output.
    convs = {layer.name: (layer.filters, layer.kernel_size) for layer in model.layers
             if isinstance(layer, keras.layers.Conv1D)}
    assert convs == {"conv_2": (4, (2,)), "conv_3": (4, (3,))}
    joined = model.get_layer("rnn_and_cnn").output.shape[-1]
    assert joined == 2 * cfg.units + 2 * 4 and model.get_layer("p_positive").kernel.shape[0] == joined
    without = TASK.build_model(dataclasses.replace(cfg, conv_filters=0), {**data.info, "steps_per_epoch": 1})
    assert not [layer for layer in without.layers if isinstance(layer, keras.layers.Conv1D)]
    model.fit(batched(data.train, 8), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    texts = ["w0 w1 w2 film", "film", ""]
    np.testing.assert_allclose(text_probabilities(runs.load_model(tmp_path / "m.keras")[0], texts),
                               text_probabilities(model, texts), atol=1e-6)


def test_real_sst2_holdout(shared_data):
    table = sentiment_data.read_labelled_text(shared_data / "sst2" / "train.tsv", sentiment_data.CLASS_NAMES,
                                              text_columns=("text", "sentence"))
    train, val, _, stats = sentiment_data.sentence_holdout_split(table, 0.12, 0.08, seed=42)
    assert 6500 < stats["sentences"] < 7500 and len(val) == round(0.12 * stats["sentences"])
    assert not set(val.texts) & set(train.texts)


def test_unknown_source():
    with pytest.raises(UserError, match="source = 'yelp': choose one of embedded, imdb, file"):
        config.resolve(TASK, "smoke", {"source": "yelp"})
    with pytest.raises(UserError, match="unknown source 'yelp'"):
        TASK.load_data(TASK.config(source="yelp"))
    assert to_dataset(TextTable(["x"], np.asarray([1], np.int32))).cardinality() == 1


# ----------------------------------------------------------------------------- pretrained word vectors
def _vector_file(path, words, dim=8, seed=0):
    """A GloVe-layout text file with a random vector for each of `words`."""
    rng = np.random.default_rng(seed)
    path.write_text("".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=dim)) + "\n" for w in words),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def with_vectors(tmp_path_factory):
    """Smoke data, a vector file covering all but 3 of its words, and a config using it in both channels."""
    root = tmp_path_factory.mktemp("vectors")
    cfg = config.resolve(TASK, "smoke", {"embedded_size": "400"})
    data = TASK.load_data(cfg)
    words = data.info["vocabulary"][:-3]
    path = _vector_file(root / "vectors.txt", ["unrelated"] + words)
    cfg = config.resolve(TASK, "smoke", {"embedded_size": "400", "embeddings": str(path), "epochs": "1",
                                         "pretrained_channels": "both", "fine_tune_epochs": "1"})
    return cfg, TASK.load_data(cfg), path


def test_vectors_fill_the_embedding_rows_and_coverage_is_recorded(with_vectors):
    cfg, data, path = with_vectors
    vocabulary = data.info["vocabulary"]
    coverage = data.info["embeddings"]
    assert coverage["vocabulary_words"] == len(vocabulary) and coverage["words_found"] == len(vocabulary) - 3
    assert 0 < coverage["tokens"] < 1 and "word vectors" in data.info["source_description"]
    model = TASK.build_model(cfg, {**data.info, "steps_per_epoch": 1})
    first = {line.split(" ")[0]: np.float32(line.split(" ")[1:]) for line in path.read_text().splitlines()}
    for name in ("static_vectors", "tuned_vectors"):
        table = model.get_layer(name).embeddings.numpy()
        assert table.shape == (len(vocabulary) + 2, 8)  # only the vocabulary's rows
        np.testing.assert_array_equal(table[2 + 5], first[vocabulary[5]])
    assert model.get_layer("embedding").embeddings.shape == (len(vocabulary) + 2, cfg.embedding_dim)


def test_frozen_then_fine_tuned_phases_move_the_right_weights(with_vectors, tmp_path):
    cfg, data, _ = with_vectors
    model = TASK.build_model(cfg, {**data.info, "steps_per_epoch": 10})
    phases = TASK.phases(cfg)
    assert [p.name for p in phases] == ["train", "fine_tune"]

    def tables():
        return {name: model.get_layer(name).embeddings.numpy().copy()
                for name in ("embedding", "static_vectors", "tuned_vectors")}

    def moved(before, after):
        return {name for name in before if not np.array_equal(before[name], after[name])}

    train = batched(data.train, 32, shuffle=True, seed=0)
    before = tables()
    history = training.fit_phases(model, train, batched(data.val, 256), phases[:1], cfg, callbacks=[])
    middle = tables()
    assert moved(before, middle) == {"embedding"}  # phase 1: the pretrained channels stay frozen
    history2 = training.fit_phases(model, train, None, phases[1:], cfg, callbacks=[], initial_epoch=1)
    assert moved(middle, tables()) == {"embedding", "tuned_vectors"}  # phase 2: the tuned copy moves, static never
    assert float(model.optimizer.learning_rate) == pytest.approx(cfg.fine_tune_learning_rate)
    assert history["phase"] + history2["phase"] == ["train", "fine_tune"]


def test_model_with_vectors_saves_and_takes_raw_strings(with_vectors, tmp_path):
    cfg, data, _ = with_vectors
    model = TASK.build_model(cfg, {**data.info, "steps_per_epoch": 1})
    model.fit(batched(data.train, 32), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded, _ = runs.load_model(tmp_path / "m.keras")
    texts = ["the movie was not good but awful", "qqq unknown words", ""]
    np.testing.assert_allclose(text_probabilities(loaded, texts), text_probabilities(model, texts), rtol=1e-5, atol=1e-6)
    assert not loaded.get_layer("static_vectors").trainable


def test_bad_vector_settings_end_with_one_line(tmp_path, capsys):
    assert cli.main(["train", "sentiment", "--profile", "smoke", "--runs-dir", str(tmp_path),
                     "--set", f"embeddings={tmp_path / 'nothing.vec'}"]) == 2
    assert "no such file; use none, glove.6B.50d" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("good 0.1 0.2\nbad 0.3\n", encoding="utf-8")
    assert cli.main(["train", "sentiment", "--profile", "smoke", "--runs-dir", str(tmp_path),
                     "--set", f"embeddings={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 2 has 1 values, line 1 has 2" in err and len(err.splitlines()) == 1
    with pytest.raises(UserError, match="pretrained_channels = 'dynamic': choose one of static, tuned, both"):
        config.resolve(TASK, "smoke", {"pretrained_channels": "dynamic"})
    with pytest.raises(UserError, match="embedding_dim = 0 needs pretrained vectors"):
        TASK.build_model(config.resolve(TASK, "smoke", {"embedding_dim": "0"}), {"vocabulary": ["a"]})


def bucket_of(words: int, edges: list[int]) -> int:
    """Index of the length range [edges[i], edges[i + 1]) holding a text of `words` words."""
    return next(i for i in range(len(edges) - 1) if edges[i] <= words < edges[i + 1])


def test_length_buckets_batch_texts_of_similar_length_and_still_cover_every_example_once():
    from dlapps.data import pipeline

    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), length_buckets=3, batch_size=16, sentence_weight=1.0)
    data = TASK.load_data(cfg)
    boundaries = data.length_boundaries
    words = [len(t.decode().split()) for t, _ in data.train.as_numpy_iterator()]
    # The boundaries are the training split's word-count terciles, computed here with NumPy's default rule.
    assert boundaries == sorted({int(b) for b in np.quantile(words, [1 / 3, 2 / 3]) if b > 1}) and boundaries
    train, _ = pipeline.fit_datasets(data, cfg, 16)
    seen, edges = [], [0, *boundaries, 10**9]
    for texts, labels in train.as_numpy_iterator():
        lengths = [len(t.decode().split()) for t in texts]
        buckets = {bucket_of(n, edges) for n in lengths}
        assert len(buckets) == 1, (lengths, boundaries)  # one length range per batch
        assert len(texts) <= 16
        seen += [t.decode() for t in texts]
    assert sorted(seen) == sorted(t.decode() for t, _ in data.train.as_numpy_iterator())
    # Without buckets, random batches mix the length ranges.
    plain, _ = pipeline.fit_datasets(dataclasses.replace(data, length=None), cfg, 16)
    mixed = [len({bucket_of(len(t.split()), edges) for t in texts}) for texts, _ in plain.as_numpy_iterator()]
    assert max(mixed) > 1


def test_length_buckets_keep_the_datas_training_batch_augmentation():
    import tensorflow as tf

    from dlapps.data import pipeline

    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), length_buckets=3, batch_size=16)
    data = dataclasses.replace(TASK.load_data(cfg), augment=lambda texts, *rest: (tf.strings.upper(texts), *rest))
    assert data.length_boundaries
    train, _ = pipeline.fit_datasets(data, cfg, 16)
    seen = [t.decode() for texts, *_ in train.as_numpy_iterator() for t in texts]
    assert sorted(seen) == sorted(t.decode().upper() for t, *_ in data.train.as_numpy_iterator())


def test_length_buckets_tell_keras_and_the_schedule_the_true_number_of_steps(recwarn):
    from dlapps.data import pipeline

    cfg = dataclasses.replace(config.resolve(TASK, "smoke"), length_buckets=4, batch_size=16)
    data = pipeline.with_batch_facts(TASK.load_data(cfg), 16)
    train, _ = pipeline.fit_datasets(data, cfg, 16)
    batches = sum(1 for _ in train)
    assert int(train.cardinality()) == batches == data.info["steps_per_epoch"]
    # Each bucket's last batch may be partial: counted here from Python word counts.
    edges = [0, *data.length_boundaries, 10**9]
    sizes = defaultdict(int)
    for text, *_ in data.train.as_numpy_iterator():
        sizes[bucket_of(len(text.decode().split()), edges)] += 1
    assert batches == sum(-(-size // 16) for size in sizes.values()) and len(sizes) > 1
    model = TASK.build_model(cfg, data.info)
    model.fit(train, epochs=2, verbose=0)
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
