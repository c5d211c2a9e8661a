"""Runs that survive a lost process: backups every worker restores the same, and one clear line
when a peer of a multi-worker run is lost.

As TensorFlow's multi-worker guide assumes, the run directory lives on storage every worker can
read (a shared filesystem or bucket). The chief writes `RUN_DIR/backup/` at the end of every epoch
(Keras' BackupAndRestore: weights, optimizer state, epoch); the other workers write their own
backups to temporary folders and, on `--resume RUN_DIR`, restore from the chief's, so that every
replica continues from the same weights, optimizer step (hence learning-rate schedule position)
and epoch.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import keras

from dlapps.errors import UserError

PEER_LOST_EXIT_CODE = 3
"""Exit code of a worker that stopped because a peer was lost (2 is a user error, 0 success)."""
_PEER_LOST_PATTERNS = ("crashed", "socket closed", "connection reset", "unavailable", "failed to connect",
                       "connection refused", "peer", "heartbeat", "collective ops is aborted",
                       "deadline exceeded", "cancelled")


class PeerLost(UserError):
    """A worker of a multi-worker run was lost; the message says how to continue."""

    exit_code = PEER_LOST_EXIT_CODE


class SharedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that restores from the chief's backup on every worker.

    `backup_dir` is where this process writes (the chief: RUN_DIR/backup; other workers: a
    temporary folder, so that no two processes write one file). `restore_from` (on a resumed
    non-chief worker: RUN_DIR/backup) is copied into `backup_dir` before the usual restore.
    """

    def __init__(self, backup_dir: str | Path, restore_from: str | Path | None = None):
        super().__init__(str(backup_dir))
        self.restore_from = Path(restore_from) if restore_from else None

    def on_train_begin(self, logs=None):
        if self.restore_from is not None and (self.restore_from / "training_metadata.json").exists():
            Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
            for name in ("latest.weights.h5", "training_metadata.json"):
                shutil.copy2(self.restore_from / name, Path(self.backup_dir) / name)
        super().on_train_begin(logs)


def backup_epoch(backup_dir: Path) -> int | None:
    """Epochs completed according to a BackupAndRestore folder, or None when it holds no backup."""
    try:
        return int(json.loads((Path(backup_dir) / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return None


def logged_epochs(history_csv: Path) -> int:
    """Number of epoch rows in a CSVLogger file (0 when absent)."""
    try:
        with open(history_csv, newline="", encoding="utf-8") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    except OSError:
        return 0


def trim_history(history_csv: Path, epochs: int) -> None:
    """Keep the header and the first `epochs` rows of a CSVLogger file (a resumed run logs the rest
    again, so each epoch is listed once)."""
    if not Path(history_csv).exists():
        return
    with open(history_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    keep = rows[:1] + [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epochs]
    with open(history_csv, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(keep)


def read_history(history_csv: Path) -> dict[str, list]:
    """A CSVLogger file as metric -> per-epoch values (the whole run, across resumes)."""
    with open(history_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    history: dict[str, list] = {}
    for row in rows:
        for key, value in row.items():
            if key != "epoch":
                history.setdefault(key, []).append(float(value) if value not in ("", None) else float("nan"))
    return history


def resume_plan(resume: Path, chief: bool, worker: str) -> Path | None:
    """The backup a resumed process restores from (None: start from epoch 0, as the chief does).

    Raises UserError when this worker cannot read the chief's run directory or its backup although
    the run had completed epochs: it must not train from scratch while the others continue.
    """
    if not (resume / "config.json").exists():
        where = "" if chief else (f"; {worker} must read the chief's run directory: keep it on storage "
                                  "every worker can read (see the README's scale-out section)")
        raise UserError(f"--resume {resume}: not a run directory (no config.json){where}")
    done = logged_epochs(resume / "history.csv")
    if backup_epoch(resume / "backup") is None and done > 0:
        raise UserError(f"--resume {resume}: {worker} cannot read the chief's backup ({resume / 'backup'}) "
                        f"although {done} epoch(s) were logged; the run directory must be on storage every "
                        "worker can read, and the run not already finished")
    return None if chief else resume / "backup"


def peer_lost(error: Exception, run_dir: Path, command: str) -> PeerLost | None:
    """A PeerLost naming the lost worker, the last completed epoch and the restart command, when
    `error` (raised by fit under a multi-worker strategy) says a peer is gone; else None."""
    import tensorflow as tf

    text = str(error)
    if not isinstance(error, tf.errors.OpError) and "collective" not in text.lower():
        return None
    if not any(pattern in text.lower() for pattern in _PEER_LOST_PATTERNS):
        return None
    own = str(json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {}).get("index", ""))
    tasks = sorted(set(re.findall(r"/job:(?:worker|chief)/replica:\d+/task:(\d+)", text)) - {own})
    who = f"worker {', '.join(tasks)}" if tasks else "a peer worker"
    done = backup_epoch(Path(run_dir) / "backup")
    return PeerLost(f"{who} of this multi-worker run was lost (its collective operations failed); last "
                    f"completed epoch: {done or 0}; restart every worker with `{command} --resume {run_dir}` "
                    "(--verbose shows TensorFlow's error)")
