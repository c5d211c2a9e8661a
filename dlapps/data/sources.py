"""Which loader a config picks: the one rule for `source` and `--data`, and its errors.

Every task has loaders keyed by source name: "embedded" (offline default), canonical download
names (e.g. "california_housing"), and "file" (a local file or folder given with `--data`).
A `data` path always means source "file".
"""

from __future__ import annotations

from typing import Any, Callable

from dlapps.errors import UserError


def source_of(cfg) -> str:
    """The effective source of `cfg`: "file" whenever `cfg.data` is set, else `cfg.source`."""
    return "file" if cfg.data else cfg.source


def pick(task_name: str, cfg, loaders: dict[str, Callable[..., Any]], file_format: str) -> Callable[..., Any]:
    """The loader of `cfg`'s source among `loaders` (source name -> callable).

    `file_format` says what `--data` takes (e.g. "a CSV file"); it is named in the errors.
    Raises UserError for an unknown source, or source "file" without `--data`.
    """
    source = source_of(cfg)
    if source not in loaders:
        names = ", ".join(name if name != "file" else f"file (--data: {file_format})" for name in loaders)
        raise UserError(f"unknown source {source!r} for {task_name}; use {names}")
    if source == "file" and not cfg.data:
        raise UserError(f"source=file needs --data PATH ({file_format})")
    return loaders[source]
