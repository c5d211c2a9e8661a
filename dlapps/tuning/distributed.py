"""Distributed tuning with KerasTuner's own protocol: one chief, many workers.

The chief runs the oracle (a gRPC server; it trains nothing); every worker asks it for trials,
trains them and reports back. KerasTuner reads the roles from KERASTUNER_TUNER_ID,
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT, which `tuner_role` sets for the length of a
search. Before KerasTuner starts, a worker checks that the chief answers and a chief that its
port is free, so that both fail with one clear line instead of hanging.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator

from dlapps.errors import UserError

ENV_NAMES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def parse_address(address: str, flag: str = "--chief") -> tuple[str, int]:
    """'HOST:PORT' -> (host, port), a UserError otherwise."""
    host, sep, port = (address or "").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{flag} {address!r}: expected HOST:PORT, e.g. {flag} 10.0.0.1:8000")
    return host, int(port)


def wait_for_chief(host: str, port: int, timeout: float) -> None:
    """Return once the chief's oracle answers at host:port; a UserError after `timeout` seconds.

    KerasTuner's client waits up to an hour per call when the chief is absent: check first.
    """
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise UserError(
            f"no tuning chief answered at {host}:{port} within {timeout:g} s; start "
            f"`dlapps tune TASK --chief {host}:{port}` on that host first (or check the address, "
            f"port and firewall; --chief-timeout waits longer)") from None
    finally:
        channel.close()


def check_port_free(host: str, port: int) -> None:
    """A UserError unless this process can listen on host:port (where the chief's oracle will)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise UserError(f"--chief {host}:{port}: cannot listen there ({err.strerror}); "
                            "choose a free port of an address of this machine") from None


@contextmanager
def tuner_role(chief: str | None, worker: str | None) -> Iterator[str | None]:
    """Set KerasTuner's KERASTUNER_* variables for a chief or a worker; restore them afterwards.

    Yields the tuner id: 'chief' (`chief` alone), the worker's id (`worker` with `chief`; a
    numeric id N becomes 'workerN'), or None when tuning alone (both None: the variables are
    cleared). A UserError for a worker without a chief, a malformed address or worker id.
    """
    saved = {name: os.environ.get(name) for name in ENV_NAMES}
    try:
        if chief is None:
            if worker is not None:
                raise UserError("--worker ID needs --chief HOST:PORT (the address of the chief's oracle)")
            for name in ENV_NAMES:
                os.environ.pop(name, None)
            yield None
            return
        host, port = parse_address(chief)
        if worker is None:
            tuner_id = "chief"
        else:
            worker = str(worker).strip()
            if not worker or "chief" in worker or not all(ch.isalnum() or ch in "-_" for ch in worker):
                raise UserError(f"--worker {worker!r}: use a short id of letters, digits, - or _ "
                                "(not containing 'chief'), unique per worker")
            tuner_id = f"worker{worker}" if worker.isdigit() else worker
        os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host,
                          KERASTUNER_ORACLE_PORT=str(port))
        yield tuner_id
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def watch_workers(oracle, timeout: float, run_dir, command: str, clock=None, stop=None) -> "threading.Thread":
    """Start a daemon thread on the chief that stops it when a worker goes silent.

    Every call a worker makes (create, update or end a trial) stamps its tuner id. When a worker
    that holds a running trial has made none for `timeout` seconds, the chief prints one line
    (which worker, which trial, how to continue) and exits with code 3: KerasTuner's chief would
    otherwise wait forever for that trial. The oracle's state is on disk (`run_dir`), so the same
    command continues the search; a worker restarted with its own command (same --worker ID)
    re-runs its interrupted trial, as KerasTuner's `create_trial` returns it again.
    `clock`/`stop` (callables) exist for tests; `stop(message)` replaces the exit.
    """
    import sys
    import threading
    import time

    clock = clock or time.monotonic
    seen: dict[str, float] = {}

    def stamp(method_name: str, tuner_of):
        original = getattr(oracle, method_name)

        def wrapped(*args, **kwargs):
            who = tuner_of(*args, **kwargs)
            if who is not None:
                seen[who] = clock()
            return original(*args, **kwargs)

        setattr(oracle, method_name, wrapped)

    def tuner_holding(trial_id) -> str | None:
        trial_id = getattr(trial_id, "trial_id", trial_id)
        return next((t for t, trial in list(oracle.ongoing_trials.items()) if trial.trial_id == trial_id), None)

    stamp("create_trial", lambda tuner_id, *a, **k: tuner_id)
    stamp("update_trial", lambda trial_id, *a, **k: tuner_holding(trial_id))
    stamp("end_trial", lambda trial, *a, **k: tuner_holding(trial))

    def exit_now(message: str) -> None:
        print(f"dlapps: error: {message}", file=sys.stderr, flush=True)
        os._exit(3)

    def check() -> bool:
        now = clock()
        for tuner_id, trial in list(oracle.ongoing_trials.items()):
            silent = now - seen.setdefault(tuner_id, now)
            if silent > timeout:
                (stop or exit_now)(
                    f"tuning worker {tuner_id} has not reported on trial {trial.trial_id} for {silent:.0f} s "
                    f"(--worker-timeout {timeout:g}); restart that worker with its own command to re-run the "
                    f"trial, and this chief with `{command}`: the search continues from {run_dir}")
                return True
        return False

    def loop() -> None:
        while not check():
            time.sleep(min(5.0, max(0.2, timeout / 10)))

    thread = threading.Thread(target=loop, name="dlapps-worker-watchdog", daemon=True)
    thread.check = check  # for tests: one check, without the thread
    if stop is None:
        thread.start()
    return thread
