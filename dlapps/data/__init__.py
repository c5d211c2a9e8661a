"""Data helpers shared by tasks: cached downloads with pinned checksums, local table readers."""

from dlapps.data.download import cache_dir, fetch
from dlapps.data.files import read_table, require_file, split_frame

__all__ = ["cache_dir", "fetch", "read_table", "require_file", "split_frame"]
