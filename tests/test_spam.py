"""Spam task: learning on the embedded data (2 replicas), the saved threshold, every data source, the CLI."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
import zipfile

import numpy as np
import pytest

import dlapps
from dlapps import cli, config, runs, training
from dlapps.data.download import sha256sum
from dlapps.data.pipeline import count
from dlapps.data.text import best_f1_threshold, probabilities, text_probabilities
from dlapps.errors import UserError
from dlapps.runtime import Runtime
from dlapps.tasks.spam import data as spam_data
from dlapps.tasks.spam.model import threshold_of

TASK = dlapps.get_task("spam")
MESSAGES = ["WINNER!! Claim your £1000 prize now, call 09061701461", "are we still on for lunch tomorrow?"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke-profile spam model trained with MirroredStrategy on 2 logical CPUs."""
    import keras

    keras.utils.set_random_seed(1234)
    root = tmp_path_factory.mktemp("spam")
    cfg = config.resolve(TASK, "smoke")
    result = training.train(TASK, cfg, Runtime(strategy="mirrored", devices="cpu:2"), runs_root=root / "runs",
                            saved_models_root=root / "saved", save=True, quiet=True)
    return result, cfg, root


def test_learns_on_embedded_data_with_two_replicas(trained):
    result, _, _ = trained
    assert result.metrics["replicas"] == 2
    test = result.metrics["test"]
    assert test["f1"] > 0.9 and test["roc_auc"] > 0.95 and test["accuracy"] > 0.95
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert (result.run_dir / "plots" / "confusion_matrix.png").exists()
    assert "synthetic" in result.data.info["source_description"]


def test_threshold_is_chosen_on_validation_and_saved_in_the_model(trained, tmp_path):
    result, _, _ = trained
    model = result.model
    y_true, prob = probabilities(model, result.data.val)
    assert threshold_of(model) == pytest.approx(best_f1_threshold(y_true, prob))
    # The task's after_fit hook chose it; its result is in the run's metrics.
    assert result.metrics["after_fit"]["threshold"] == pytest.approx(threshold_of(model))
    assert result.metrics["after_fit"]["val_f1_at_threshold"] == pytest.approx(result.metrics["val"]["f1"])
    # A different threshold survives save/load: it is a weight of the model, not a side file.
    model.get_layer("decision_threshold").assign_threshold(0.8125)
    model.save(tmp_path / "m.keras")
    loaded, _ = runs.load_model(tmp_path / "m.keras")
    assert threshold_of(loaded) == pytest.approx(0.8125)
    np.testing.assert_allclose(text_probabilities(model, MESSAGES), text_probabilities(loaded, MESSAGES), rtol=1e-6)


def test_saved_model_predicts_raw_strings_from_the_cli(trained, capsys):
    _, _, root = trained
    model_dir = root / "saved" / "spam"
    assert (model_dir / "README.md").exists()
    assert cli.main(["predict", "spam", *MESSAGES, "--model", str(model_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("spam") and "p(spam)=" in lines[0] and "threshold" in lines[0]
    assert lines[1].startswith("ham")


def test_threshold_is_an_inference_key(trained, capsys):
    _, _, root = trained
    model_dir = str(root / "saved" / "spam")
    assert cli.main(["predict", "spam", MESSAGES[1], "--model", model_dir, "--set", "threshold=0.0"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("spam") and "(threshold 0.00)" in line  # p(spam) >= 0: everything is spam
    assert cli.main(["predict", "spam", MESSAGES[1], "--model", model_dir, "--set", "max_tokens=5"]) == 2
    assert "not an inference-time setting" in capsys.readouterr().err


def test_evaluate_on_a_user_file(trained, tmp_path, capsys):
    _, _, root = trained
    generated = spam_data.generate_messages(300, seed=99)
    path = tmp_path / "mine.csv"
    import pandas as pd

    pd.DataFrame({"text": generated.texts, "label": generated.labels}).to_csv(path, index=False)
    assert cli.main(["evaluate", "spam", "--model", str(root / "saved" / "spam"),
                     "--data", str(path)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 300 and metrics["f1"] > 0.85
    bad = tmp_path / "bad.tsv"
    bad.write_text("label\ttext\nham\thi\nmaybe\tWIN\n")
    assert cli.main(["evaluate", "spam", "--model", str(root / "saved" / "spam"), "--data", str(bad)]) == 2
    assert "unknown label" in capsys.readouterr().err


def test_generated_messages_are_imbalanced_and_seeded():
    a, b = spam_data.generate_messages(500, seed=1), spam_data.generate_messages(500, seed=1)
    assert a.texts == b.texts
    assert 0.08 < a.labels.mean() < 0.25


# ----------------------------------------------------------------------------- the UCI archive, offline
COLLECTION = "ham\tOk lar... Joking wif u oni...\nspam\tFree entry in 2 a wkly comp to win FA Cup\n" * 10 + \
             "ham\tU dun say so early hor\nspam\tWINNER!! As a valued network customer\n"


@pytest.fixture
def archive_server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving a small SMS Spam Collection zip."""
    served = tmp_path / "served"
    served.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("SMSSpamCollection", COLLECTION)
        zipped.writestr("readme", "SMS Spam Collection v.1")
    (served / "smsspamcollection.zip").write_bytes(buffer.getvalue())
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(spam_data, "SMS_URL", f"http://127.0.0.1:{server.server_port}/smsspamcollection.zip")
    monkeypatch.setattr(spam_data, "SMS_SHA256", sha256sum(served / "smsspamcollection.zip"))
    yield served
    server.shutdown()


def test_download_unzip_and_split(archive_server, tmp_path):
    cfg = config.resolve(TASK, "smoke", {"source": "sms_spam_collection", "val_fraction": "0.2",
                                         "test_fraction": "0.2"})
    data = TASK.load_data(cfg)
    assert data.info["source_description"].startswith("SMS Spam Collection")
    sizes = [data.info["train_size"], count(data.val), count(data.test)]
    assert sum(sizes) == 22 and min(sizes) >= 4  # every message of the archive, in three splits
    assert min(data.info["class_counts_train"]) >= 5
    assert (tmp_path / "cache" / "sms_spam_collection.zip").exists()
    texts = [t.decode() for t, _ in data.val.as_numpy_iterator()]
    assert all(t for t in texts)


def test_download_with_a_wrong_checksum_is_refused(archive_server, monkeypatch):
    monkeypatch.setattr(spam_data, "SMS_SHA256", "0" * 64)
    with pytest.raises(UserError, match="checksum mismatch"):
        TASK.load_data(config.resolve(TASK, "smoke", {"source": "sms_spam_collection"}))


def test_unknown_source_and_missing_file():
    # A choice field: the config names the choices; a Config made in code reaches the loader's rule.
    with pytest.raises(UserError, match="source = 'enron': choose one of embedded, sms_spam_collection, file"):
        config.resolve(TASK, "smoke", {"source": "enron"})
    with pytest.raises(UserError, match="unknown source 'enron'"):
        TASK.load_data(TASK.config(source="enron"))
    with pytest.raises(UserError, match="source=file needs --data"):
        TASK.load_data(TASK.config(source="file"))
    with pytest.raises(UserError, match="not found"):
        TASK.load_data(config.resolve(TASK, "smoke", {"data": "/nonexistent/spam.tsv"}))


def test_real_sms_file_loads(shared_data):
    cfg = config.resolve(TASK, "full", {"data": str(shared_data / "sms-spam" / "train.tsv"),
                                        "char_tokens": "0", "max_tokens": "500"})
    data = TASK.load_data(cfg)
    assert data.info["train_size"] == 3122 and data.info["class_counts_train"][1] == 418


def test_after_fit_picks_the_best_f1_threshold_not_the_best_accuracy(monkeypatch):
    """On an imbalanced validation sample whose F1- and accuracy-optimal thresholds differ, the stored
    threshold reaches the best F1 of a brute-force scan."""
    import dataclasses

    import keras

    from dlapps.layers import DecisionThreshold
    from dlapps.tasks.spam import model as spam_model

    rng = np.random.default_rng(1)
    y = (rng.uniform(size=400) < 0.08).astype(int)  # 8% spam
    prob = 1 / (1 + np.exp(-(1.5 * y - 2.0 + rng.normal(scale=1.0, size=400))))
    monkeypatch.setattr(spam_model, "probabilities", lambda model, dataset: (y, prob))

    def counts(t):
        predicted = prob >= t
        return np.sum(predicted & (y == 1)), np.sum(predicted & (y == 0)), np.sum(~predicted & (y == 1))

    def f1(t):
        tp, fp, fn = counts(t)
        return 2 * tp / (2 * tp + fp + fn)

    scores = np.unique(prob)
    candidates = (scores[:-1] + scores[1:]) / 2
    best_f1 = max(f1(t) for t in candidates)
    by_accuracy = max(candidates, key=lambda t: len(y) - sum(counts(t)[1:]))
    assert f1(by_accuracy) < best_f1 - 0.1  # the two criteria disagree on this sample

    inputs = keras.Input((1,))
    model = keras.Model(inputs, DecisionThreshold(name=spam_model.THRESHOLD_LAYER)(inputs))
    data = dlapps.task.Data(train=None, val="validation split (probabilities are patched)", test=None, info={})
    result = TASK.after_fit(model, data, dataclasses.replace(TASK.Config(), threshold=None), None)
    assert threshold_of(model) == pytest.approx(result["threshold"])
    assert f1(result["threshold"]) == pytest.approx(best_f1)
    assert result["val_f1_at_threshold"] == pytest.approx(best_f1)


# ----------------------------------------------------------------------------- model=sequence (embedding + BiGRU)
@pytest.fixture(scope="module")
def trained_sequence(tmp_path_factory):
    """A smoke-profile run of the alternative model: token embeddings read by a bidirectional GRU."""
    import keras

    keras.utils.set_random_seed(1234)
    root = tmp_path_factory.mktemp("spam_sequence")
    cfg = config.resolve(TASK, "smoke", {"model": "sequence"})
    result = training.train(TASK, cfg, Runtime(), runs_root=root / "runs", saved_models_root=root / "saved",
                            save=True, quiet=True)
    return result, cfg, root


def test_sequence_model_is_an_embedding_and_bidirectional_gru(trained_sequence):
    import keras

    result, _, _ = trained_sequence
    layers = result.model.layers
    recurrent = [layer for layer in layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(recurrent) == 1 and isinstance(recurrent[0].forward_layer, keras.layers.GRU)
    assert any(isinstance(layer, keras.layers.Embedding) for layer in layers)
    vectorizers = [layer for layer in layers if isinstance(layer, keras.layers.TextVectorization)]
    assert vectorizers and all(layer.get_config()["output_mode"] == "int" for layer in vectorizers)  # no TF-IDF


def test_sequence_model_learns_and_its_saved_model_reads_raw_strings(trained_sequence, capsys):
    import tensorflow as tf

    result, _, root = trained_sequence
    texts, labels = zip(*((t.decode(), int(y)) for t, y in result.data.test.as_numpy_iterator()))
    labels = np.array(labels)
    prob = np.asarray(result.model(tf.constant(list(texts)), training=False)).ravel()
    threshold = float(np.asarray(result.model.get_layer("decision_threshold").threshold))
    spam = prob >= threshold
    accuracy = float(np.mean(spam == (labels == 1)))
    tp, fp, fn = np.sum(spam & (labels == 1)), np.sum(spam & (labels == 0)), np.sum(~spam & (labels == 1))
    f1 = 2 * tp / (2 * tp + fp + fn)
    majority = max(labels.mean(), 1 - labels.mean())  # always answering the common class
    assert accuracy > majority + 0.5 * (1 - majority), (accuracy, majority)  # half the baseline's errors, or fewer
    assert f1 > 0.8, f1  # guessing spam at its base rate gives F1 ~ the spam share (< 0.25)
    assert result.metrics["test"]["f1"] == pytest.approx(f1, abs=1e-6)

    model_dir = root / "saved" / "spam"
    loaded, _ = runs.load_model(model_dir)
    np.testing.assert_allclose(np.asarray(loaded(tf.constant(MESSAGES), training=False)).ravel(),
                               np.asarray(result.model(tf.constant(MESSAGES), training=False)).ravel(), rtol=1e-5)
    assert cli.main(["predict", "spam", *MESSAGES, "--model", str(model_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("spam ") and lines[1].startswith("ham ")
