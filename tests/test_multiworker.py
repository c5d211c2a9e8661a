"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train the smoke task together."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(tmp_path: Path, extra_env: dict | None = None, timeout: float = 240, sets: tuple = (),
                task: str = "tabular"):
    """Start two workers with TF_CONFIG training `task` (`sets`: more `--set` values); returns (code, stdout, stderr)s."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               **(extra_env or {})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dlapps", "train", task, "--profile", "smoke", "--quiet",
             "--strategy", "multiworker", "--runs-dir", str(tmp_path / "runs"), "--set", "epochs=3",
             *(arg for value in sets for arg in ("--set", value))],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:  # bounded in time and cleaned up, whatever happened
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("task, sets", [("tabular", ()), ("tabular", ("model=nca", "depth=0")),
                                        ("mnist", ("batch_norm=false", "batch_size=32", "val_fraction=0.2", "test_fraction=0.5"))],
                         ids=["mlp", "nca", "mnist"])
def test_two_workers_train_together_to_identical_weights(tmp_path, task, sets):
    """model=nca also writes its training rows into the model on each worker before training; mnist
    augments its training batches in each worker's tf.data pipeline. No batch norm in any: each
    worker would keep the moving statistics of its own batches."""
    from dlapps.runs import load_model

    results = run_workers(tmp_path, sets=sets, task=task)
    for code, _, err in results:
        assert code == 0, err[-3000:]
    outputs = [json.loads(out) for _, out, _ in results]
    assert all(o["replicas"] == 2 and o["global_batch_size"] == 64 for o in outputs)
    assert outputs[0]["test"] == outputs[1]["test"]
    chief_dir, worker_dir = (Path(o["run_dir"]) for o in outputs)
    assert chief_dir.is_relative_to(tmp_path / "runs")  # the chief writes the real run directory
    weights = [load_model(d / "model.keras")[0].get_weights() for d in (chief_dir, worker_dir)]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_upstream_multiworker_bug_still_present(tmp_path):
    """keras-team/keras#20585: fails once Keras fixes it; then delete dlapps/compat.py."""
    results = run_workers(tmp_path, {"DLAPPS_NO_COMPAT": "1"}, timeout=120)
    failures = [err for code, _, err in results if code != 0]
    assert failures, "Keras now trains under MultiWorkerMirroredStrategy without dlapps.compat: remove it"
    assert any("PerReplica" in err or "axis" in err for err in failures), failures[0][-2000:]
