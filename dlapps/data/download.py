"""Download a file once into the cache, verify its sha256, show a progress bar."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from dlapps.errors import UserError


def cache_dir() -> Path:
    """Where downloads are kept: $DLAPPS_DATA, else ~/.cache/dlapps."""
    root = Path(os.environ.get("DLAPPS_DATA") or Path.home() / ".cache" / "dlapps")
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256sum(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, sha256: str, filename: str | None = None, timeout: float = 30.0,
          hint: str = "pass a local copy with --data PATH") -> Path:
    """The cached path of `url`, downloading it first if needed; the file's sha256 must match.

    A partial download never lands in the cache (it is written to a temporary file and moved
    into place only once its checksum is right). No network gives a UserError that says so.
    """
    target = cache_dir() / (filename or Path(url.split("?")[0]).name)
    if target.exists():
        if sha256sum(target) == sha256:
            return target
        target.unlink()  # a stale or corrupt copy: download again
    tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp:
                total = int(response.headers.get("Content-Length") or 0)
                _copy_with_progress(response, tmp, total, target.name)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise UserError(f"cannot download {url} ({reason}); offline? {hint}") from None
        actual = sha256sum(Path(tmp.name))
        if actual != sha256:
            raise UserError(f"{url}: checksum mismatch (sha256 {actual[:12]}..., expected "
                            f"{sha256[:12]}...); the file changed upstream or was corrupted; {hint}")
        shutil.move(tmp.name, target)
        return target
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)


def _copy_with_progress(source, sink, total: int, label: str) -> None:
    """Copy a stream, drawing a one-line progress bar on stderr when it is a terminal."""
    done, show = 0, sys.stderr.isatty()
    while block := source.read(1 << 16):
        sink.write(block)
        done += len(block)
        if show:
            if total:
                filled = int(30 * done / total)
                sys.stderr.write(f"\r{label} [{'=' * filled:<30}] {done / 1e6:.1f}/{total / 1e6:.1f} MB")
            else:
                sys.stderr.write(f"\r{label} {done / 1e6:.1f} MB")
            sys.stderr.flush()
    if show:
        sys.stderr.write("\n")
