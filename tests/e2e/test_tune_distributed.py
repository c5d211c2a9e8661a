"""Distributed tuning end to end: one chief (the oracle) and two workers on 127.0.0.1.

Three real `dlapps tune` processes speak KerasTuner's gRPC protocol; every process is bounded
by a timeout and killed at the end, whatever happens.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 420  # seconds for the whole search; typically a minute or two on 2 cores


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chief_and_two_workers_share_the_trials(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO),
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    search = [sys.executable, "-m", "dlapps", "tune", "tabular", "--profile", "smoke", "--set", "epochs=5",
              "--max-trials", "6", "--quiet"]
    processes, logs = {}, {}

    def start(name: str, *args: str) -> None:
        logs[name] = open(tmp_path / f"{name}.log", "w")
        processes[name] = subprocess.Popen([*search, "--run-dir", str(tmp_path / name), *args], cwd=tmp_path,
                                           env=env, stdout=logs[name], stderr=subprocess.STDOUT)

    try:
        # Workers first: they wait (bounded) for the chief, so both are ready when the oracle opens.
        for worker in ("1", "2"):
            start(f"worker{worker}", "--worker", worker, "--chief", address, "--chief-timeout", "300")
        start("chief", "--chief", address)
        codes = {name: process.wait(timeout=TIMEOUT) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        for handle in logs.values():
            handle.close()
    output = {name: (tmp_path / f"{name}.log").read_text() for name in processes}
    assert codes == {"worker1": 0, "worker2": 0, "chief": 0}, output

    # Every trial ran exactly once, on one of the workers, and each worker ran some.
    ran = {name: json.loads((tmp_path / name / f"trials_run_by_{name}.json").read_text())
           for name in ("worker1", "worker2")}
    assert ran["worker1"] and ran["worker2"], ran
    assert not set(ran["worker1"]) & set(ran["worker2"]), ran
    assert len(ran["worker1"]) + len(ran["worker2"]) == 6
    with open(tmp_path / "chief" / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert sorted(t["trial"] for t in trials) == sorted(ran["worker1"] + ran["worker2"])
    assert all(t["status"] == "COMPLETED" for t in trials)

    # The chief reports the best trial and writes its configuration.
    best = min(trials, key=lambda t: float(t["val_rmse"]))
    match = re.search(r"best val_rmse = (\S+) \(trial (\w+)\)", output["chief"])
    assert match, output["chief"]
    assert match.group(2) == best["trial"] and float(match.group(1)) == float(f"{float(best['val_rmse']):.6g}")
    assert "[config]" in (tmp_path / "chief" / "best_config.toml").read_text()


def _long_trials(max_trials: int) -> tuple[str, dict, list[str]]:
    """(chief address, environment, command) of a search whose trials last long enough to kill one."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO),
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    search = [sys.executable, "-m", "dlapps", "tune", "tabular", "--profile", "smoke", "--set", "epochs=30",
              "--set", "early_stopping_patience=0", "--max-trials", str(max_trials), "--quiet"]
    return f"127.0.0.1:{_free_port()}", env, search


def test_a_worker_killed_mid_trial_and_restarted_lets_the_search_finish(tmp_path):
    """KerasTuner's protocol: a worker restarted with its own id gets its interrupted trial again."""
    import time

    address, env, search = _long_trials(max_trials=3)
    worker = [*search, "--run-dir", str(tmp_path / "worker1"), "--worker", "1", "--chief", address,
              "--chief-timeout", "300"]
    processes = []
    try:
        processes.append(subprocess.Popen(worker, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        chief = subprocess.Popen([*search, "--run-dir", str(tmp_path / "chief"), "--chief", address,
                                  "--worker-timeout", "300"], cwd=tmp_path, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(chief)
        deadline = time.monotonic() + TIMEOUT
        while not list((tmp_path / "worker1").glob("trial_*")):  # the worker has started a trial
            assert time.monotonic() < deadline and processes[0].poll() is None
            time.sleep(0.5)
        time.sleep(3)
        processes[0].kill()  # mid-trial
        processes[0].wait()
        restarted = subprocess.run(worker, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert restarted.returncode == 0, restarted.stderr[-3000:]
        output, _ = chief.communicate(timeout=120)
        assert chief.returncode == 0, output[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    with open(tmp_path / "chief" / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials), trials


def test_the_chief_does_not_wait_forever_for_a_dead_worker(tmp_path):
    import time

    address, env, search = _long_trials(max_trials=2)
    worker = subprocess.Popen([*search, "--run-dir", str(tmp_path / "worker1"), "--worker", "1", "--chief", address,
                               "--chief-timeout", "300"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chief = subprocess.Popen([*search, "--run-dir", str(tmp_path / "chief"), "--chief", address,
                              "--worker-timeout", "20"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not list((tmp_path / "worker1").glob("trial_*")):
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.5)
        worker.kill()
        worker.wait()
        _, err = chief.communicate(timeout=180)
    finally:
        for process in (worker, chief):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    lines = [line for line in err.splitlines() if line.startswith("dlapps: error")]
    assert chief.returncode == 3 and len(lines) == 1, err[-3000:]
    assert "worker1" in lines[0] and "re-run" in lines[0]
