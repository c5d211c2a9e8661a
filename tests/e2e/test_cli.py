"""The `dlapps` command end to end: real subprocesses for the main paths, every user error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlapps import cli

REPO = Path(__file__).resolve().parents[2]


def dlapps_cmd(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "dlapps", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_train_save_evaluate_predict_in_subprocesses(tmp_path):
    train = dlapps_cmd("train", "tabular", "--profile", "smoke", "--save", "--quiet", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    result = json.loads(train.stdout)
    run_dir = tmp_path / result["run_dir"]
    assert (run_dir / "model.keras").exists() and (tmp_path / "saved_models/tabular/README.md").exists()
    card = (tmp_path / "saved_models/tabular/README.md").read_text()
    assert "## Reproduce" in card and "rmse" in card

    evaluate = dlapps_cmd("evaluate", "tabular", cwd=tmp_path)  # the model's own (smoke) config
    assert evaluate.returncode == 0, evaluate.stderr
    assert json.loads(evaluate.stdout)["rmse"] == pytest.approx(result["test"]["rmse"], rel=1e-5)

    # A raw row in the diabetes column order (age, sex, bmi, bp, s1..s6).
    predict = dlapps_cmd("predict", "tabular", "59,2,32.1,101,157,93.2,38,4,4.8598,87", cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.startswith("target = ")

    again = dlapps_cmd("train", "tabular", "--profile", "smoke", "--save", "--quiet", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr

    # Replacing it: the card says which settings changed and how the validation figures moved.
    old_rmse = json.loads((tmp_path / "saved_models/tabular/metrics.json").read_text())["val"]["rmse"]
    replace = dlapps_cmd("train", "tabular", "--profile", "smoke", "--set", "units=8", "--save", "--overwrite",
                         "--quiet", cwd=tmp_path)
    assert replace.returncode == 0, replace.stderr
    new_rmse = json.loads(replace.stdout)["val"]["rmse"]
    card = (tmp_path / "saved_models/tabular/README.md").read_text()
    changed = card.split("## What changed\n")[1].split("\n")[0]
    units = json.loads((run_dir / "config.json").read_text())["config"]["units"]
    assert f"`units` {units} -> 8" in changed and "`epochs`" not in changed, changed
    assert f"val rmse {old_rmse:.4g} -> {new_rmse:.4g}" in changed, changed


def _one_line_error(capsys, argv: list[str], expected: str) -> None:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("dlapps: error: "), err
    assert expected in err[0], err[0]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("argv, expected", [
    (["train", "nosuchtask"], "known tasks: "),
    (["train", "tabular", "--data", "/no/such/file.csv"], "not found"),
    (["train", "tabular", "--profile", "smoke", "--set", "unitz=3"], "unknown config key 'unitz'"),
    (["train", "tabular", "--profile", "smoke", "--set", "epochs=many"], "expected a int"),
    (["train", "tabular", "--profile", "smoke", "--set", "epochs"], "expected KEY=VALUE"),
    (["train", "tabular", "--devices", "gpu:x"], "expected cpu:N"),
    (["evaluate", "tabular", "--model", "/no/model.keras"], "not found"),
])
def test_user_errors_are_one_line_exit_2(capsys, argv, expected):
    _one_line_error(capsys, argv, expected)


def test_file_errors(capsys, tmp_path):
    _one_line_error(capsys, ["train", "tabular", "--data", write(tmp_path / "e.csv", "")], "is empty")
    no_target = write(tmp_path / "t.csv", "a,b\n1,2\n3,4\n")
    _one_line_error(capsys, ["train", "tabular", "--data", no_target, "--set", "target=price"],
                    "target column 'price' not in the data")
    text_target = write(tmp_path / "n.csv", "a,price\n1,x\n2,y\n")
    _one_line_error(capsys, ["train", "tabular", "--data", text_target, "--set", "target=price"], "not numeric")
    empty_column = write(tmp_path / "c.csv", "a,b,price\n1,,1\n2,,2\n")
    _one_line_error(capsys, ["train", "tabular", "--data", empty_column, "--set", "target=price"],
                    "column 'b' has no values")


def test_unwritable_output_and_existing_run_dir(capsys, tmp_path):
    blocker = Path(write(tmp_path / "file", "not a folder"))
    _one_line_error(capsys, ["train", "tabular", "--profile", "smoke", "--runs-dir", str(blocker / "runs")],
                    "cannot write to")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_text("precious")
    _one_line_error(capsys, ["train", "tabular", "--profile", "smoke", "--run-dir", str(run_dir)],
                    "already exists; pass --overwrite")
    assert (run_dir / "model.keras").read_text() == "precious"  # nothing lost


def test_download_impossible_says_offline(capsys, tmp_path, monkeypatch):
    import socket

    from dlapps.tasks.tabular import data

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(data, "CALIFORNIA_URL", f"http://127.0.0.1:{port}/cal_housing.tgz")
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path / "cache"))
    _one_line_error(capsys, ["train", "tabular", "--profile", "full", "--runs-dir", str(tmp_path)],
                    "offline? pass a local copy of housing.csv with --data PATH")


def test_help_is_complete(capsys):
    for command in ("train", "evaluate", "predict", "tune"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert "--set" in out and "--data" in out and "--verbose" in out
        # A trained model is used with its own config: evaluate and predict take no profile.
        assert ("--profile" in out) == (command in ("train", "tune")), command


def test_killed_run_resumes_from_its_backup(tmp_path):
    """A training process killed (SIGKILL) after epoch 2 continues with --resume and completes."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "dlapps", "train", "tabular", "--profile", "smoke", "--quiet",
            "--run-dir", str(run_dir), "--set", "epochs=10", "--set", "batch_size=4"]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = run_dir / "history.csv"
    deadline = time.time() + 120
    while time.time() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        if process.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done = len(history.read_text().splitlines()) - 1
    assert 2 <= done < 10 and not (run_dir / "metrics.json").exists()

    resumed = dlapps_cmd("train", "tabular", "--quiet", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]]
    assert epochs[-1] == 9 and epochs[0] == 0
    assert min(epochs[done:]) >= done - 1  # continued from the backup, not from epoch 0
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["rmse"] > 0
