"""Readers for local tables (CSV/TSV) with errors a user can act on, and a seeded split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dlapps.errors import UserError


def require_file(path: str | Path, what: str = "file") -> Path:
    """`path` as a Path that exists and is readable, else a UserError naming it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{what} {path} not found")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"{path} is empty")
    return path


def read_table(path: str | Path, sep: str | None = None, header: bool = True,
               names: list[str] | None = None) -> pd.DataFrame:
    """A CSV/TSV file as a DataFrame; the separator is a tab for .tsv/.tab files, else a comma.

    Errors (missing, empty, not text, not parseable) are UserErrors that name the file.
    """
    path = require_file(path)
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        frame = pd.read_csv(path, sep=sep, header=0 if header else None, names=names,
                            encoding="utf-8", quoting=3 if sep == "\t" else 0,
                            keep_default_na=True, skipinitialspace=True)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty") from None
    except pd.errors.ParserError as err:
        raise UserError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'} "
                        f"({str(err).splitlines()[0]})") from None
    if frame.empty:
        raise UserError(f"{path} has a header but no rows")
    return frame


def split_frame(frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int,
                stratify: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A seeded (optionally stratified) train/val/test split of a DataFrame."""
    from sklearn.model_selection import train_test_split

    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UserError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
    rest, test = (frame, frame.iloc[:0]) if test_fraction == 0 else train_test_split(
        frame, test_size=test_fraction, random_state=seed, stratify=stratify)
    if val_fraction == 0:
        return rest, rest.iloc[:0], test
    rest_stratify = None if stratify is None else stratify[frame.index.get_indexer(rest.index)]
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  random_state=seed, stratify=rest_stratify)
    return train, val, test
