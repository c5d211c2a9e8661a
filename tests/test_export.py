"""dlapps export: every task x format on a smoke-trained model, parity in the target runtime,
tampered exports caught, and one-line errors (unknown format, missing runtime, no --overwrite)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dlapps
from dlapps import export
from dlapps.errors import UserError

TASKS = ["mnist", "imagenet", "autoencoder", "gan", "spam", "sentiment", "tabular", "translation"]
STRING_INPUTS = {"spam", "sentiment", "translation"}  # and tabular when a column is categorical


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """task name -> a smoke-trained model.keras; each task trains once for the whole module."""
    root = tmp_path_factory.mktemp("export-models")
    cache: dict[str, object] = {}

    def get(task: str):
        if task not in cache:
            result = dlapps.train(task, profile="smoke", runs_root=root / "runs", run_dir=root / task, quiet=True)
            cache[task] = result.run_dir / "model.keras"
        return cache[task]

    return get


@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.parametrize("task", TASKS)
def test_export_matches_the_keras_model(trained, tmp_path, task, fmt):
    meta = export.export_model(task, trained(task), fmt, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / export.FILES[fmt]).exists()
    saved = json.loads((out / "export.json").read_text())
    assert saved["format"] == fmt and saved["parity"] == meta["parity"]
    report = meta["parity"]["task data"]
    assert report["passed"] and report["examples"] >= 2
    for name, figures in report["outputs"].items():
        if "max_abs_difference" in figures:
            assert figures["out_of_tolerance"] == 0, name  # within ATOL + RTOL * |keras|, elementwise
        else:
            assert figures["agreement"] == 1.0, name
    if "label_agreement" in report:
        assert report["label_agreement"] == 1.0
    assert set(meta["runtime"]) >= {"tensorflow", "keras"}
    numeric_part = (out / "preprocessing.json").exists()
    assert numeric_part == (fmt != "saved_model" and task in STRING_INPUTS) or task == "tabular"
    if numeric_part:
        assert all(spec["dtype"] != "string" for spec in meta["inputs"].values())
        assert "preprocessing.json" in meta["notes"]
    else:  # the raw inputs of the .keras model (images, texts, table columns; the GAN's latents)
        assert any(spec["dtype"] in ("string", "uint8", "float32") for spec in meta["inputs"].values())
    # Checked again from the files alone (a fresh runtime session).
    again = export.check_export(task, trained(task), out)
    assert again["task data"]["passed"]


def test_saved_model_serves_raw_strings(trained, tmp_path):
    import tensorflow as tf

    export.export_model("sentiment", trained("sentiment"), "saved_model", tmp_path / "sm")
    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    out = signature(text=tf.constant(["a wonderful film", "a dull mess"]))
    probabilities = next(iter(out.values())).numpy().reshape(-1)
    assert probabilities.shape == (2,) and np.all((probabilities >= 0) & (probabilities <= 1))


def test_translation_saved_model_decodes_in_the_graph(trained, tmp_path):
    import tensorflow as tf

    meta = export.export_model("translation", trained("translation"), "saved_model", tmp_path / "sm")
    assert meta["parity"]["task data"]["outputs"]["tokens"]["agreement"] == 1.0
    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    out = signature(source=tf.constant(["one two three"]))
    assert out["translation"].dtype == tf.string and out["tokens"].shape[0] == 1


def test_tampered_onnx_weights_fail_the_check(trained, tmp_path):
    import onnx

    out = tmp_path / "onnx"
    export.export_model("mnist", trained("mnist"), "onnx", out)
    graph = onnx.load(str(out / "model.onnx"))
    weights = max(graph.graph.initializer, key=lambda t: np.prod(t.dims))
    array = onnx.numpy_helper.to_array(weights).copy()
    array *= 1.5
    weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
    onnx.save(graph, str(out / "model.onnx"))
    with pytest.raises(UserError, match="disagrees with the .keras model"):
        export.check_export("mnist", trained("mnist"), out)


def test_tampered_litert_file_fails_the_check(trained, tmp_path):
    from dlapps.runs import load_model

    out = tmp_path / "litert"
    export.export_model("mnist", trained("mnist"), "litert", out)
    model, _ = load_model(trained("mnist"))
    kernel = np.asarray(model.get_layer("probabilities").kernel, np.float32)
    data = (out / "model.tflite").read_bytes()
    stored = next(k for k in (kernel.T, kernel) if np.ascontiguousarray(k).tobytes() in data)
    position = data.index(np.ascontiguousarray(stored).tobytes())
    tampered = np.ascontiguousarray(-stored).tobytes()  # the last layer's weights negated, nothing else
    (out / "model.tflite").write_bytes(data[:position] + tampered + data[position + len(tampered):])
    with pytest.raises(UserError, match="disagrees with the .keras model"):
        export.check_export("mnist", trained("mnist"), out)


def test_tampered_vocabulary_fails_the_check(trained, tmp_path):
    out = tmp_path / "onnx"
    export.export_model("spam", trained("spam"), "onnx", out)
    path = out / "preprocessing.json"
    preprocessing = json.loads(path.read_text())
    layer = next(iter(preprocessing["layers"].values()))["layer"]["config"]
    layer["vocabulary"] = list(reversed(layer["vocabulary"]))  # same words, wrong ids
    path.write_text(json.dumps(preprocessing))
    with pytest.raises(UserError, match="disagrees"):
        export.check_export("spam", trained("spam"), out)


def test_check_data_file_is_checked_too(trained, tmp_path):
    csv = tmp_path / "rows.csv"
    from dlapps.tasks.tabular.data import read_embedded
    from dlapps import get_task

    frame, _ = read_embedded(get_task("tabular").config())
    frame.head(20).to_csv(csv, index=False)
    meta = export.export_model("tabular", trained("tabular"), "onnx", tmp_path / "out", check_data=csv)
    assert meta["parity"]["check data"]["passed"] and meta["parity"]["check data"]["examples"] == 20


def test_errors_are_one_line(trained, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown format 'tflite'; choose saved_model, litert, onnx"):
        export.export_model("mnist", trained("mnist"), "tflite", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--overwrite"):
        export.export_model("mnist", trained("mnist"), "onnx", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(UserError, match=r"needs onnxruntime: pip install 'dlapps\[export\]'"):
        export.export_model("mnist", trained("mnist"), "onnx", tmp_path / "y")
    with pytest.raises(UserError, match="not found: not a onnx export"):
        monkeypatch.undo()
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "export.json").write_text(json.dumps({"format": "onnx"}))
        export.check_export("mnist", trained("mnist"), tmp_path / "empty")


def test_cli_export_prints_parity_and_exits_2_on_errors(trained, tmp_path, capsys):
    from dlapps.cli import main

    out = tmp_path / "cli"
    assert main(["export", "mnist", "--model", str(trained("mnist")), "--format", "litert", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model.tflite" in printed and "passed" in printed and "max |diff|" in printed
    assert main(["export", "mnist", "--model", str(trained("mnist")), "--format", "litert",
                 "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
