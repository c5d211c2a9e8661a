"""Readers for local tables (CSV/TSV) with errors a user can act on, and a seeded split.

Accepted tables: UTF-8 text (a BOM is fine), a header row, the delimiter sniffed among `,` `;`
tab and `|` (a `.tsv`/`.tab` file is tab-separated). Numbers may carry thousands separators
(`"2,100"`, `2 100`) and, in files whose delimiter is not a comma, decimal commas (`8,3252`).
A column is numeric when every non-empty cell reads as a number under those rules.
"""

from __future__ import annotations

import csv
import re
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


DELIMITERS = ",;\t|"
_PLAIN = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}([, \u00a0\u202f]\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[-+]?\d{1,3}([. \u00a0\u202f]\d{3})*,\d+$|^[-+]?\d+,\d+$")


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a text table: a tab for .tsv/.tab files, else sniffed among `,;<tab>|`
    from its first lines (csv.Sniffer), a comma when nothing else is consistent."""
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        sample = "".join(handle.readline() for _ in range(20))
    header = sample.splitlines()[0] if sample else ""
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ","
    if found != "," and header.count(found) == 0:
        return ","
    # A comma-separated header has more commas than the sniffed delimiter (decimal commas fool it less).
    if found != "," and header.count(",") > header.count(found):
        return ","
    return found


def parse_numbers(values: pd.Series, decimal_comma: bool) -> tuple[pd.Series, pd.Series]:
    """(float64 numbers, mask of non-empty cells that are not numbers) of `values`, cell by cell.

    Each cell is read as in `to_number`; empty cells and cells that are not numbers are NaN.
    """
    text = values.astype("string").str.strip()
    present = (text.notna() & (text != "")).fillna(False).astype(bool)
    numbers = pd.Series(np.nan, index=values.index, dtype="float64")
    cells = text[present]
    if cells.empty:
        return numbers, present
    plain = cells.str.fullmatch(_PLAIN).astype(bool)
    comma_like = cells.str.fullmatch(_DECIMAL_COMMA).astype(bool)
    thousands = ~plain & cells.str.fullmatch(_THOUSANDS).astype(bool) & ~(decimal_comma & comma_like)
    comma = ~plain & ~thousands & comma_like if decimal_comma else plain & False
    good = plain | thousands | comma
    converted = cells.where(~thousands, cells.str.replace(r"[, \u00a0\u202f]", "", regex=True))
    converted = converted.where(~comma, converted.str.replace(r"[. \u00a0\u202f]", "", regex=True)
                                .str.replace(",", ".", regex=False))
    numbers[good[good].index] = converted[good].astype("float64")
    bad = pd.Series(False, index=values.index)
    bad[present] = ~good
    return numbers, bad


def to_number(values: pd.Series, decimal_comma: bool) -> pd.Series | None:
    """`values` (strings) as float64 when every non-empty cell is a number, else None.

    Plain numbers (`-122.23`, `1e5`), thousands separators (`2,100`, `2 100`, `1,234.5`) and,
    with `decimal_comma`, decimal commas (`8,3252`, `1.234,5`) are read; empty cells are NaN.
    """
    numbers, bad = parse_numbers(values, decimal_comma)
    if bool(bad.any()) or numbers.isna().all():
        return None
    return numbers


def read_table(path: str | Path, sep: str | None = None, header: bool = True,
               names: list[str] | None = None, numbers: bool = True) -> pd.DataFrame:
    """A CSV/TSV file as a DataFrame (see the module docstring for the accepted layouts).

    `sep` None sniffs the delimiter. With `numbers`, columns whose every non-empty cell is a
    number (thousands separators and decimal commas allowed, see `to_number`) become float64;
    other columns stay strings, empty cells NaN. Errors (missing, empty, not UTF-8, not
    parseable) are UserErrors that name the file.
    """
    path = require_file(path)
    if sep is None:
        sep = sniff_delimiter(path)
    try:
        frame = pd.read_csv(path, sep=sep, header=0 if header else None, names=names,
                            encoding="utf-8-sig", quoting=3 if sep == "\t" else 0, dtype=str,
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
    if numbers:
        for column in frame.columns:
            converted = to_number(frame[column], decimal_comma=sep != ",")
            if converted is not None:
                frame[column] = converted
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
