"""The download helper against a local HTTP server on 127.0.0.1: good file, bad checksum, no server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading

import pytest

from dlapps.data import fetch
from dlapps.errors import UserError

PAYLOAD = b"longitude,latitude\n-122.23,37.88\n" * 1000


@pytest.fixture
def server(tmp_path):
    """A static HTTP server on a free 127.0.0.1 port serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.csv").write_bytes(PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_good_file_is_downloaded_once_and_cached(server, cache):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    path = fetch(f"{server}/data.csv", digest)
    assert path.read_bytes() == PAYLOAD and path.parent == cache
    mtime = path.stat().st_mtime_ns
    assert fetch(f"{server}/data.csv", digest).stat().st_mtime_ns == mtime  # no second download


def test_wrong_checksum_is_rejected_and_nothing_is_left_in_the_cache(server, cache):
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch(f"{server}/data.csv", "0" * 64)
    assert list(cache.iterdir()) == []


def test_corrupt_cached_copy_is_downloaded_again(server, cache):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "data.csv").write_bytes(b"truncated")
    assert fetch(f"{server}/data.csv", digest).read_bytes() == PAYLOAD


def test_server_down_says_offline_and_how_to_pass_data():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=r"offline\? pass a local copy with --data"):
        fetch(f"http://127.0.0.1:{port}/data.csv", "0" * 64, timeout=5)


def test_missing_file_on_server(server):
    with pytest.raises(UserError, match="cannot download"):
        fetch(f"{server}/nothing.csv", "0" * 64)
