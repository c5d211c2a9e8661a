"""What tabular's `predict` and `evaluate` read, checked against the model's own columns.

`predict` takes CSV rows (quoted, one argument each) and CSV/TSV files:

- A row holds the model's feature columns in the training file's order, optionally with the
  target: a row of one field more is read with the target in its place in the training file
  (a row copied from that file) or, failing that, appended at the end; the field read as the
  target must be a number or empty, else the row is an error (never a shifted row). The row's
  delimiter is `,` (or `;`, tab or `|` when that gives the right width); fields may be quoted,
  and numbers may carry thousands separators (`"2,100"`) or, with another delimiter, decimal
  commas. A number column whose field is not a number is an error.
- A file is read by `dlapps.data.files.read_table` (delimiter sniffed, thousands separators,
  decimal commas); its header names match the model's columns in any case. A file missing model
  columns is an error naming them; extra columns are ignored with a note; cells of a number column
  that are not numbers are read as missing, with a warning naming the column.

Categories the model did not see in training are counted in a warning (the model reads them as
its out-of-vocabulary category). Notes and warnings go to stderr.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pandas as pd

from dlapps.data.files import DELIMITERS, parse_numbers, read_table, sniff_delimiter
from dlapps.errors import UserError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")


def _say(line: str) -> None:
    print(f"dlapps: {line}", file=sys.stderr)


def feature_columns(info: dict) -> list[str]:
    """The model's feature columns in the training file's order."""
    order = [c for c in info["file_columns"] if c != info["target"] and c in info["kinds"]]
    return order + [c for c in info["kinds"] if c not in order]


def _is_number_or_empty(cell: str, decimal_comma: bool) -> bool:
    _, bad = parse_numbers(pd.Series([cell], dtype=object), decimal_comma)
    return not bool(bad.iloc[0])


def _split_row(item: str, widths: tuple[int, int]) -> tuple[list[str], bool]:
    """(fields, decimal commas allowed) of a command-line row: comma-separated, or `;`/tab/`|`
    when that (and not the comma) gives one of `widths`."""
    def fields(sep: str) -> list[str]:
        return next(csv.reader(io.StringIO(item), delimiter=sep, skipinitialspace=True), [])

    comma = fields(",")
    if len(comma) in widths:
        return comma, False
    for sep in DELIMITERS.replace(",", ""):
        if sep in item and len(fields(sep)) in widths:
            return fields(sep), True
    return comma, False


def parse_row(item: str, info: dict) -> tuple[dict[str, str], bool]:
    """({feature column: field}, decimal commas allowed) of one command-line CSV row.

    Raises UserError for a row of the wrong width, or one field too many where the field read as
    the target (in its training-file place, or last) is not a number.
    """
    target, features = info["target"], feature_columns(info)
    fields, decimal_comma = _split_row(item, (len(features), len(features) + 1))
    fields = [f.strip() for f in fields]
    if len(fields) == len(features):
        return dict(zip(features, fields)), decimal_comma
    if len(fields) != len(features) + 1:
        raise UserError(f"row {item!r} has {len(fields)} fields; expected {len(features)} "
                        f"({', '.join(features)}), optionally with the target {target!r}")
    in_file_order = [c for c in info["file_columns"] if c in features or c == target]
    placements = [in_file_order] if in_file_order[-1] == target else [in_file_order, features + [target]]
    reasons = []
    for columns in placements:
        values = dict(zip(columns, fields))
        numeric = [c for c in columns if c == target or info["kinds"].get(c) == "numeric"]
        bad = [c for c in numeric if not _is_number_or_empty(values[c], decimal_comma)]
        if not bad:
            return {c: values[c] for c in features}, decimal_comma
        where = "in its place in the training file" if columns is in_file_order else "last"
        reasons.append(f"with the target {where}, field {columns.index(bad[0]) + 1} ({bad[0]}) is "
                       f"{values[bad[0]]!r}, not a number")
    raise UserError(f"row {item!r} has {len(fields)} fields, one more than the model's {len(features)} "
                    f"feature columns ({', '.join(features)}), but the extra field is not a plausible "
                    f"target {target!r}: {'; '.join(reasons)}; give the {len(features)} feature values only")


def _row_frame(item: str, info: dict) -> pd.DataFrame:
    values, decimal_comma = parse_row(item, info)
    frame = pd.DataFrame([values], dtype=object)
    for column, kind in info["kinds"].items():
        if kind != "numeric":
            continue
        numbers, bad = parse_numbers(frame[column], decimal_comma)
        if bool(bad.any()):
            raise UserError(f"row {item!r}: {column!r} is a number column, but its field is "
                            f"{values[column]!r}")
        frame[column] = numbers
    return frame


def _file_frame(path: Path, info: dict) -> pd.DataFrame:
    target, features = info["target"], feature_columns(info)
    frame = read_table(path, numbers=False)
    by_name = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in features if c.lower() not in by_name]
    if missing:
        raise UserError(f"{path}: missing the model's column(s) {', '.join(missing)}; it needs "
                        f"{', '.join(features)} (the target {target!r} is optional)")
    known = {c.lower() for c in features} | {target.lower()}
    extra = [str(c) for c in frame.columns if str(c).strip().lower() not in known]
    if extra:
        _say(f"note: {path}: column(s) {', '.join(extra)} not used by the model: ignored")
    frame = pd.DataFrame({c: frame[by_name[c.lower()]] for c in features})
    decimal_comma = sniff_delimiter(path) != ","
    for column, kind in info["kinds"].items():
        if kind != "numeric":
            continue
        numbers, bad = parse_numbers(frame[column], decimal_comma)
        if bool(bad.any()):
            example = frame[column][bad].iloc[0]
            _say(f"warning: {path}: column {column!r}: {int(bad.sum())} cell(s) are not numbers "
                 f"(e.g. {example!r}); read as missing")
        frame[column] = numbers
    return frame


def read_inputs(inputs: list[str], info: dict) -> pd.DataFrame:
    """The model's feature columns of `predict`'s inputs (rows and files, see the module docstring).

    Numbers are float64 (NaN = missing); categories are strings or None. Raises UserError for a
    missing file, a file without the model's columns, or a bad row.
    """
    frames = []
    for item in inputs:
        if item.lower().endswith(TABLE_SUFFIXES) and "," not in item:
            path = Path(item).expanduser()
            if not path.is_file():
                raise UserError(f"file {item} not found (give CSV rows in quotes, or an existing .csv file)")
            frames.append(_file_frame(path, info))
        else:
            frames.append(_row_frame(item, info))
    frame = pd.concat(frames, ignore_index=True)
    warn_unseen_categories(frame, info)
    return frame


def warn_unseen_categories(frame: pd.DataFrame, info: dict) -> dict[str, int]:
    """{column: rows} of categories absent from the model's training vocabulary (printed as one
    warning); the model reads them as its out-of-vocabulary category."""
    unseen, examples = {}, {}
    for column, kind in info["kinds"].items():
        if kind == "numeric" or column not in frame:
            continue
        values = frame[column].dropna().astype(str).str.strip()
        values = values[values != ""]
        new = values[~values.isin(set(info["stats"][column]["vocabulary"]))]
        if len(new):
            unseen[column] = len(new)
            examples[column] = sorted(set(new))[:3]
    if unseen:
        parts = [f"{column}: {count} row(s) ({', '.join(map(repr, examples[column]))})"
                 for column, count in unseen.items()]
        _say(f"warning: categories not seen in training (read as unknown): {'; '.join(parts)}")
    return unseen


def check_dataset_columns(dataset, info: dict):
    """`dataset` of ({column: value}, target) with exactly the model's columns and dtypes.

    For `evaluate` on a user's file: missing model columns are an error naming them, extra columns
    are dropped with a note, a number column read as text is an error naming the column, and a
    category column read as numbers becomes strings (`1`, `2.5`).
    """
    import tensorflow as tf

    spec = dataset.element_spec[0]
    features = feature_columns(info)
    missing = [c for c in features if c not in spec]
    if missing:
        raise UserError(f"the data lack the model's column(s) {', '.join(missing)}; it needs "
                        f"{', '.join(features)} and the target {info['target']!r}")
    extra = [c for c in spec if c not in info["kinds"]]
    if extra:
        _say(f"note: column(s) {', '.join(extra)} not used by the model: ignored")
    wrong = [c for c in features if info["kinds"][c] == "numeric" and spec[c].dtype == tf.string]
    if wrong:
        raise UserError(f"column(s) {', '.join(wrong)} hold text in the data, but the model reads numbers; "
                        "fix the cells that are not numbers (empty cells are missing values)")
    to_text = [c for c in features if info["kinds"][c] != "numeric" and spec[c].dtype != tf.string]

    def select(columns, y):
        out = {}
        for c in features:
            value = columns[c]
            if c in to_text:
                text = tf.strings.as_string(value, shortest=True)
                value = tf.where(tf.math.is_nan(tf.cast(value, tf.float32)), tf.constant(""), text)
            out[c] = value
        return out, y

    return dataset.map(select) if extra or to_text else dataset

