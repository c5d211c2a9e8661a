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
