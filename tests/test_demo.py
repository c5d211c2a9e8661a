"""`make demo` (python -m dlapps.demo): one row per task with its test metrics and run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlapps import config, demo


def test_demo_trains_each_task_and_prints_its_test_metrics_and_run_directory(tmp_path, monkeypatch, capsys):
    resolve, asked = config.resolve, []

    def smoke_instead(task, profile="demo", *args, **kwargs):  # the demo profile, shortened to the smoke one
        asked.append(profile)
        return resolve(task, "smoke", *args, **kwargs)

    monkeypatch.setattr(config, "resolve", smoke_instead)
    assert demo.main(["tabular", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert asked == ["demo"]
    out = capsys.readouterr().out
    assert "| task | test metrics (embedded data) | time | run directory |" in out
    rows = [line for line in out.splitlines() if line.startswith("| tabular |")]
    assert len(rows) == 1, out
    _, name, figures, seconds, run_dir, _ = (cell.strip() for cell in rows[0].split("|"))
    run_dir = Path(run_dir)
    assert run_dir.is_dir() and run_dir.parent == tmp_path / "runs" / "tabular"
    assert seconds.endswith("s") and seconds[:-1].isdigit()
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    shown = dict(item.split("=") for item in figures.split(", "))
    assert {"rmse", "mae", "r2"} <= set(shown)
    for key, value in shown.items():  # printed to 3 significant digits
        assert float(value) == pytest.approx(test[key], rel=5e-3, abs=5e-4), key


def test_demo_unknown_task_is_one_line_and_exit_2_before_any_training(tmp_path, capsys):
    code = demo.main(["tabular", "nosuchtask", "--runs-dir", str(tmp_path / "runs")])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("dlapps: error: unknown task 'nosuchtask'"), err
    assert "known tasks: " in err[0] and "tabular" in err[0]
    assert not (tmp_path / "runs").exists() and "===" not in captured.out  # tabular was not trained first
