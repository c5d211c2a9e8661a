"""The time-to-quality benchmark's plumbing with tiny settings (never a timed test: no time is asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("time_to_quality", REPO / "benchmarks" / "time_to_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task", ["tabular", "mnist"])
def test_time_to_quality_prints_the_table_and_writes_the_json(task, tmp_path, capsys):
    benchmark = load_benchmark()
    result = benchmark.main(["--task", task, "--smoke", "--set", "epochs=2", "--reference-epochs", "1",
                             "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "results")])
    printed = capsys.readouterr().out
    written = json.loads(Path(result["path"]).read_text())
    assert written["task"] == task and written["dlapps"][0]["name"] == "dlapps smoke"
    for side in [written["reference"], *written["dlapps"]]:
        assert side["seconds"] > 0 and side["cpu_seconds"] > 0 and side["examples_per_second"] > 0
        assert side["val"] == side["val"] and side["test"] == side["test"]  # finite scores on both splits
    assert set(written["machine"]) >= {"cpu", "cores", "tensorflow", "keras", "scikit-learn", "load_average_at_end"}
    ratio = written["ratios"]["dlapps smoke"]["time"]
    assert ratio == pytest.approx(written["dlapps"][0]["seconds"] / written["reference"]["seconds"])
    assert "dlapps smoke / reference: time x" in printed and written["table"] in printed
    (run_dir,) = (tmp_path / "runs" / task).iterdir()  # the recipe's run directory, as `dlapps train` writes it
    assert (run_dir / "metrics.json").exists() and written["dlapps"][0]["seeds"][0]["run_dir"] == str(run_dir)
    # both sides were scored on the same split
    assert written["split"]["train_size"] == written["reference"]["seeds"][0]["n_train"]


def test_tabular_reference_scores_hgb_with_native_categories():
    """HGB on a small table with a string column: the category must help (it carries the signal)."""
    import numpy as np
    import pandas as pd

    from dlapps.task import Data
    from dlapps.tasks.tabular.data import to_dataset

    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"x": rng.normal(size=n), "kind": rng.choice(["a", "b", "c"], size=n)})
    y = (frame["x"] + frame["kind"].map({"a": -5.0, "b": 0.0, "c": 5.0})).to_numpy(np.float32)
    kinds = {"x": "numeric", "kind": "string"}
    parts = [to_dataset(frame.iloc[s], y[s], kinds) for s in (slice(0, 400), slice(400, 500), slice(500, n))]
    result = load_benchmark().tabular_reference(Data(*parts, {"kinds": kinds}), seed=0, max_iter=100)
    assert result["n_train"] == 400 and result["val"] < 0.5 and result["test"] < 0.5  # the target's std is ~4


def test_precision_and_xla_reach_the_dlapps_side_only(tmp_path, capsys):
    benchmark = load_benchmark()
    result = benchmark.main(["--task", "tabular", "--smoke", "--set", "epochs=1", "--precision", "mixed_bfloat16",
                             "--jit", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "results")])
    (recipe,) = result["dlapps"]
    assert recipe["name"] == "dlapps smoke mixed_bfloat16 xla" and recipe["precision"] == "mixed_bfloat16"
    assert "dlapps smoke mixed_bfloat16 xla / reference" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs" / "tabular").iterdir()
    runtime = json.loads((run_dir / "config.json").read_text())["runtime"]
    assert runtime["precision"] == "mixed_bfloat16" and runtime["jit"] is True
