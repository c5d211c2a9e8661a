"""Multi-worker runs that survive a lost worker: one clear line, then every worker resumes alike."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dlapps import recovery
from test_multiworker import free_ports
from dlapps.errors import UserError

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 12


def start_workers(tmp_path: Path, run_dir: Path, resume: bool) -> list[subprocess.Popen]:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = ["train", "tabular", "--profile", "smoke", "--quiet", "--strategy", "multiworker",
                "--set", f"epochs={EPOCHS}", "--set", "early_stopping_patience=0"]
        args += ["--resume", str(run_dir)] if resume else ["--run-dir", str(run_dir)]
        processes.append(subprocess.Popen([sys.executable, "-m", "dlapps", *args], cwd=tmp_path, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def finish(processes: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            results.append((process.returncode, out, err))
    finally:  # bounded in time, cleaned up by PID whatever happened
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def wait_for_epochs(history: Path, epochs: int, processes, timeout: float = 480) -> None:
    deadline = time.monotonic() + timeout
    while recovery.logged_epochs(history) < epochs:
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            finish(processes, 5)
            pytest.fail(f"the run did not reach epoch {epochs} in time")
        time.sleep(0.2)


def final_weights(run_dir: Path, out: str):
    from dlapps.runs import load_model

    return load_model(Path(json.loads(out)["run_dir"]) / "model.keras")[0].get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("whole")
    results = finish(start_workers(tmp_path, tmp_path / "run", resume=False), timeout=600)
    for code, _, err in results:
        assert code == 0, err[-2000:]
    return json.loads(results[0][1])


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("killed", [1, 0], ids=["worker-lost", "chief-lost"])
def test_lost_worker_then_resume_on_every_worker(tmp_path, killed, uninterrupted):
    run_dir = tmp_path / "run"
    processes = start_workers(tmp_path, run_dir, resume=False)
    wait_for_epochs(run_dir / "history.csv", 2, processes)
    processes[killed].send_signal(signal.SIGKILL)
    started = time.monotonic()
    survivor = processes[1 - killed]
    code, _, err = finish([survivor], timeout=120)[0]
    processes[killed].wait()
    assert time.monotonic() - started < 120
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == recovery.PEER_LOST_EXIT_CODE, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "was lost" in lines[0] and f"--resume {run_dir}" in lines[0] and "last completed epoch" in lines[0]

    results = finish(start_workers(tmp_path, run_dir, resume=True), timeout=600)
    for code, _, err in results:
        assert code == 0, err[-3000:]
    weights = [final_weights(run_dir, out) for _, out, _ in results]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    epochs = [row.split(",")[0] for row in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(EPOCHS)]  # each epoch exactly once
    resumed = json.loads(results[0][1])
    assert resumed["val"]["rmse"] == pytest.approx(uninterrupted["val"]["rmse"], rel=0.15)


def test_a_worker_that_cannot_read_the_chiefs_backup_refuses(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"task": "tabular", "config": {}}))
    (run_dir / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    with pytest.raises(UserError, match="cannot read the chief's backup"):
        recovery.resume_plan(run_dir, chief=False, worker="worker 1")
    with pytest.raises(UserError, match="storage every worker can read"):
        recovery.resume_plan(tmp_path / "elsewhere", chief=False, worker="worker 1")
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    assert recovery.resume_plan(run_dir, chief=False, worker="worker 1") == run_dir / "backup"
    assert recovery.resume_plan(run_dir, chief=True, worker="worker 0") is None


def test_history_is_trimmed_to_the_restored_epoch(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.4\n")
    recovery.trim_history(history, 2)
    assert history.read_text().splitlines() == ["epoch,loss", "0,1.0", "1,0.5"]
    assert recovery.read_history(history) == {"loss": [1.0, 0.5]}


def test_peer_lost_names_the_worker_and_the_restart(tmp_path):
    import tensorflow as tf

    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    error = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: The tasks have crashed: "
                                       "/job:worker/replica:0/task:1 unreachable")
    lost = recovery.peer_lost(error, tmp_path, "dlapps train tabular")
    assert isinstance(lost, UserError) and lost.exit_code == 3
    assert "worker 1" in str(lost) and "last completed epoch: 3" in str(lost)
    assert f"dlapps train tabular --resume {tmp_path}" in str(lost)
    assert recovery.peer_lost(ValueError("shapes differ"), tmp_path, "x") is None


def test_tuning_chief_stops_when_a_worker_goes_silent():
    """The chief's watchdog: contact stamps per worker; silence past the timeout stops it with one line."""
    from types import SimpleNamespace

    from dlapps.tuning.distributed import watch_workers

    class Oracle:
        def __init__(self):
            self.ongoing_trials = {}

        def create_trial(self, tuner_id):
            trial = SimpleNamespace(trial_id=f"t{len(self.ongoing_trials)}")
            self.ongoing_trials[tuner_id] = trial
            return trial

        def update_trial(self, trial_id, metrics, step=0):
            return trial_id

        def end_trial(self, trial):
            self.ongoing_trials = {k: v for k, v in self.ongoing_trials.items() if v is not trial}

    now = [0.0]
    stopped = []
    oracle = Oracle()
    watchdog = watch_workers(oracle, 60, "runs/x", "dlapps tune tabular --chief h:1",
                             clock=lambda: now[0], stop=stopped.append)
    trial1 = oracle.create_trial("worker1")
    oracle.create_trial("worker2")
    now[0] = 50.0
    oracle.update_trial(trial1.trial_id, {"loss": 1.0})  # worker1 reports, worker2 stays silent
    assert not watchdog.check()
    now[0] = 70.0
    assert watchdog.check() and len(stopped) == 1
    assert "worker2" in stopped[0] and "trial t1" in stopped[0] and "re-run" in stopped[0]
    oracle.end_trial(oracle.ongoing_trials["worker2"])  # a restarted worker2 finishes its trial
    stopped.clear()
    now[0] = 100.0
    assert not watchdog.check() and not stopped  # worker1 reported at 50 s: 50 s of silence < 60
