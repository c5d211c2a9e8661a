"""dlapps.explain: attributions land where the label comes from; the command's files and errors.

Each method is checked on a tiny model trained here on synthetic data whose label depends on one
known place (an image region, a token, a column), so the right answer is known.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from dlapps import explain

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- images
def _pattern_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16x16 uint8 noise with a bright 4x4 square somewhere (both labels) and, for label 1 only, a
    bright 5x5 plus sign elsewhere: only the plus decides the label. Returns (images, labels, masks),
    masks (n, 16, 16) bool marking the plus's 7x7 neighbourhood (about a fifth of the image)."""
    images = rng.integers(0, 50, size=(n, 16, 16, 1)).astype(np.uint8)
    labels = rng.integers(0, 2, size=n)
    masks = np.zeros((n, 16, 16), bool)
    for image, label, mask in zip(images, labels, masks):
        while True:
            (sy, sx), (py, px) = rng.integers(0, 12, size=2), rng.integers(0, 11, size=2)
            if abs(int(sy) - int(py)) > 5 or abs(int(sx) - int(px)) > 5:
                break
        image[sy: sy + 4, sx: sx + 4] = 255
        if label:
            image[py + 2, px: px + 5] = 255
            image[py: py + 5, px + 2] = 255
            mask[max(0, py - 1): py + 6, max(0, px - 1): px + 6] = True
    return images, labels, masks


@pytest.fixture(scope="module")
def pattern_model():
    """A small conv net (global average pooling, as Grad-CAM assumes) that tells the plus apart."""
    keras.utils.set_random_seed(0)
    images, labels, _ = _pattern_images(800, np.random.default_rng(0))
    inputs = keras.Input((16, 16, 1), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=15, batch_size=32, verbose=0)
    test_images, test_labels, test_masks = _pattern_images(200, np.random.default_rng(1))
    accuracy = model.evaluate(test_images, test_labels, verbose=0)[1]
    assert accuracy > 0.9, accuracy
    positive = test_labels == 1
    return model, test_images[positive][:20], test_masks[positive][:20]


def test_last_conv_layer_is_the_last_feature_map(pattern_model):
    model, _, _ = pattern_model
    assert explain.last_conv_layer(model).name == "conv_b"


@pytest.mark.parametrize("method", [explain.grad_cam, explain.saliency], ids=["gradcam", "saliency"])
def test_image_attribution_lands_on_the_deciding_pattern(pattern_model, method):
    model, positives, masks = pattern_model
    maps, classes, probabilities = method(model, positives)
    assert maps.shape == (len(positives), 16, 16) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.reshape(len(maps), -1).max(axis=1), 1.0)
    assert (classes == probabilities.argmax(axis=1)).all()
    # The plus's neighbourhood is about a fifth of the image; the explanation puts most of its mass there.
    share = float(maps[masks].sum() / maps.sum())
    assert share > 0.5, share


def test_grad_cam_reaches_into_a_nested_keras_applications_backbone():
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False,
                                              pooling="avg", alpha=0.35)
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = backbone(x, training=False)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    assert explain.last_conv_layer(model).name == "out_relu"
    images = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)
    for method in (explain.grad_cam, explain.saliency):
        maps, _, _ = method(model, images)
        assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()


# ----------------------------------------------------------------------------- texts
WORDS = "the a cat dog sat ran on under mat tree big small red blue".split()


def _texts(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Filler sentences; label 1 exactly when the word 'zorp' is in them (at a random place)."""
    texts, labels = [], rng.integers(0, 2, size=n)
    for label in labels:
        words = list(rng.choice(WORDS, size=rng.integers(4, 9)))
        if label:
            words.insert(int(rng.integers(0, len(words) + 1)), "zorp")
        texts.append(" ".join(words))
    return texts, labels


def _text_model(kind: str):
    keras.utils.set_random_seed(0)
    texts, labels = _texts(800, np.random.default_rng(0))
    strings = keras.Input(shape=(), dtype="string")
    if kind == "embedding":
        ids = keras.layers.TextVectorization(vocabulary=WORDS + ["zorp"], name="tokenize")(strings)
        x = keras.layers.Embedding(len(WORDS) + 3, 8, mask_zero=True, name="embedding")(ids)
        x = keras.layers.GlobalAveragePooling1D()(x)
    else:  # TF-IDF bag of words, no embedding: occlusion's case
        vectorize = keras.layers.TextVectorization(output_mode="tf_idf")
        vectorize.adapt(texts)
        x = vectorize(strings)
    p = keras.layers.Reshape(())(keras.layers.Dense(1, activation="sigmoid")(x))
    model = keras.Model(strings, p)
    model.compile(keras.optimizers.Adam(0.03), "binary_crossentropy", metrics=["accuracy"])
    import tensorflow as tf

    model.fit(tf.data.Dataset.from_tensor_slices((texts, labels)).batch(64), epochs=20, verbose=0)
    return model


def test_integrated_gradients_credit_the_deciding_token():
    model = _text_model("embedding")
    results = explain.integrated_gradients(model, ["the cat zorp sat on the mat", "a big dog ran under a tree"])
    hit, miss = results
    assert hit.tokens == "the cat zorp sat on the mat".split()
    assert hit.probability > 0.9 and miss.probability < 0.1
    zorp = hit.scores[hit.tokens.index("zorp")]
    assert zorp > 0 and abs(zorp) > 0.5 * np.abs(hit.scores).sum()
    # Completeness: the scores add up to p(text) - p(baseline), up to the midpoint rule's error.
    for result in results:
        assert abs(result.gap) < 0.05, result.gap
    assert "zorp[+" in hit.line()


def test_occlusion_credits_the_deciding_word_of_a_tfidf_model():
    model = _text_model("tfidf")
    import tensorflow as tf

    predict = lambda batch: np.asarray(model(tf.constant(batch))).ravel()  # noqa: E731
    (result,) = explain.text_occlusion(predict, ["the cat zorp sat on the mat"])
    assert result.tokens[int(np.argmax(result.scores))] == "zorp"
    assert result.scores.max() > 0.5 * np.abs(result.scores).sum()


def test_integrated_gradients_need_an_embedding():
    model = _text_model("tfidf")
    with pytest.raises(explain.UserError, match="occlusion"):
        explain.integrated_gradients(model, ["the cat"])


def test_text_outputs(tmp_path):
    result = explain.TokenScores("a <b>", ["a", "<b>"], np.array([0.2, -0.1]), 0.7)
    page = explain.text_html([result], "t", tmp_path / "x.html").read_text()
    assert "&lt;b&gt;" in page and "rgba(220,40,40,1.00)" in page
    assert explain.text_figure([result], "t", tmp_path / "x.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- tables
def test_permutation_importance_and_row_occlusion_find_the_used_column():
    rng = np.random.default_rng(0)
    columns = {name: rng.normal(size=(500, 1)).astype(np.float32) for name in ("a", "b", "c")}
    y = 3 * columns["a"].ravel() + 0.5 * columns["b"].ravel()
    predict = lambda cols: 3 * cols["a"].ravel() + 0.5 * cols["b"].ravel()  # noqa: E731
    importance = explain.permutation_importance(predict, columns, y)
    assert importance["a"][0] > 5 * importance["b"][0] > 0
    assert importance["c"] == (0.0, 0.0)
    row = {"a": np.array([[2.0]]), "b": np.array([[2.0]]), "c": np.array([[9.0]])}
    value, effects = explain.row_occlusion(predict, row, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert value == pytest.approx(7.0) and effects == pytest.approx({"a": 6.0, "b": 1.0, "c": 0.0})


# ----------------------------------------------------------------------------- the command
def _digit(path: Path) -> Path:
    from PIL import Image

    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12:16] = 255  # a "1"
    Image.fromarray(image).save(path)
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    from dlapps.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_overlays_next_to_the_image_and_never_overwrites(tmp_path, capsys):
    image = _digit(tmp_path / "one.png")
    model = str(REPO / "saved_models" / "mnist")
    code, out, _ = _run(capsys, "explain", "mnist", str(image), "--model", model)
    assert code == 0, out
    assert ": 1 (" in out.splitlines()[0]
    for method in ("gradcam", "saliency"):
        assert (tmp_path / f"one.{method}.png").stat().st_size > 2000
    code, _, err = _run(capsys, "explain", "mnist", str(image), "--model", model, "--method", "gradcam")
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err
    code, _, _ = _run(capsys, "explain", "mnist", str(image), "--model", model, "--method", "gradcam", "--overwrite")
    assert code == 0


@pytest.mark.parametrize("argv, message", [
    (["mnist", "missing.png"], "not found"),
    (["mnist", "x.png", "--method", "ig"], "choose gradcam, saliency"),
    (["tabular", "--method", "permutation"], "--data"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "explain", *argv, "--model", str(REPO / "saved_models" / argv[0]))
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_cli_text_attribution_of_the_committed_sentiment_model(tmp_path, capsys):
    page = tmp_path / "why.html"
    code, out, _ = _run(capsys, "explain", "sentiment", "not good at all", "a wonderful film",
                        "--model", str(REPO / "saved_models" / "sentiment"), "--output", str(page))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("p=") and "good[" in lines[0] and "wonderful[+" in lines[1]
    assert page.exists() and "wonderful" in page.read_text()


def test_roc_pr_and_per_class_pr_plots(tmp_path):
    """The curves the spam, mnist and imagenet runs write next to their confusion matrices."""
    from dlapps import plots

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = y + rng.normal(0, 0.8, 200)
    assert plots.roc_pr_curves(y, scores, tmp_path / "roc_pr.png", threshold=0.5).stat().st_size > 5000
    labels = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet(np.ones(3), 300)
    written = plots.classification_report_plots(np.zeros((300, 8, 8), np.uint8), labels, probabilities,
                                                ["a", "b", "c"], tmp_path)
    assert tmp_path / "precision_recall.png" in written and (tmp_path / "precision_recall.png").exists()
