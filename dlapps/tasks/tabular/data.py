"""Tabular data: any CSV, California housing (download), scikit-learn's diabetes (embedded)."""

from __future__ import annotations

import sys
import tarfile

import numpy as np
import pandas as pd

from dlapps.data import fetch, read_table, split_frame
from dlapps.data.sources import pick
from dlapps.errors import UserError
from dlapps.task import Data
from dlapps.tasks.tabular.config import Config

# The StatLib California housing archive (Pace & Barry, 1997), as scikit-learn pins it.
CALIFORNIA_URL = "https://ndownloader.figshare.com/files/5976036"
CALIFORNIA_SHA256 = "aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681"
# Its columns, renamed to the Hands-On ML layout (the StatLib file has no ocean_proximity).
CALIFORNIA_COLUMNS = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms",
                      "population", "households", "median_income", "median_house_value"]


def read_embedded(cfg: Config) -> tuple[pd.DataFrame, str]:
    """(scikit-learn's diabetes table, description): shipped with scikit-learn, works offline."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame, "scikit-learn diabetes data (embedded, 442 patients, target: disease progression)"


def read_california(cfg: Config) -> tuple[pd.DataFrame, str]:
    """(California housing, description): the StatLib archive, downloaded once (sha256 checked)."""
    archive = fetch(CALIFORNIA_URL, CALIFORNIA_SHA256, filename="cal_housing.tgz",
                    hint="pass a local copy of housing.csv with --data PATH")
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("cal_housing.data"))
        frame = pd.read_csv(tar.extractfile(member), header=None, names=CALIFORNIA_COLUMNS)
    return frame, "California housing 1990 census (StatLib archive, downloaded)"


def read_file(cfg: Config) -> tuple[pd.DataFrame, str]:
    """(the `--data` CSV file, description)."""
    return read_table(cfg.data), f"local file {cfg.data}"


LOADERS = {"embedded": read_embedded, "california_housing": read_california, "file": read_file}


def read_source(cfg: Config) -> tuple[pd.DataFrame, str]:
    """(the whole table, a description of where it came from), by `dlapps.data.sources.pick`.

    Raises UserError for an unknown source, source=file without --data, or an unreadable file.
    """
    return pick("tabular", cfg, LOADERS, "a CSV file")(cfg)


def prepare_frame(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """(features, numeric targets, column kinds) with every check a user's CSV needs.

    Rows without a target value are dropped (`load_data` says how many on stderr).
    """
    if target not in frame.columns:
        raise UserError(f"target column {target!r} not in the data; columns: {', '.join(map(str, frame.columns))} "
                        f"(choose one with --set target=COLUMN)")
    y = pd.to_numeric(frame[target], errors="coerce")
    bad = frame[target][y.isna() & frame[target].notna()]
    if len(bad):
        raise UserError(f"target column {target!r} is not numeric (e.g. {bad.iloc[0]!r}); "
                        "tabular does regression on a numeric column")
    keep = y.notna()
    if not keep.any():
        raise UserError(f"target column {target!r} has no values")
    features = frame.loc[keep].drop(columns=[target])
    if features.shape[1] == 0:
        raise UserError("the data has no feature columns besides the target")
    kinds = {}
    for column in features.columns:
        if features[column].isna().all():
            raise UserError(f"column {column!r} has no values at all; drop it from the file")
        kinds[column] = "numeric" if pd.api.types.is_numeric_dtype(features[column]) else "string"
    return features, y[keep].to_numpy(np.float32), kinds


def to_dataset(features: pd.DataFrame, y: np.ndarray | None, kinds: dict):
    """A tf.data.Dataset of ({column: value}, target) from a DataFrame (raw values, NaN kept)."""
    import tensorflow as tf

    columns = to_columns(features, kinds)
    return tf.data.Dataset.from_tensor_slices(columns if y is None else (columns, y))


def to_columns(features: pd.DataFrame, kinds: dict) -> dict[str, np.ndarray]:
    """Column name -> (n, 1) array: float32 (NaN = missing) or str ('' = missing)."""
    columns = {}
    for column, kind in kinds.items():
        values = features[column] if column in features else pd.Series([None] * len(features))
        if kind == "numeric":
            columns[column] = pd.to_numeric(values, errors="coerce").to_numpy(np.float32).reshape(-1, 1)
        else:
            columns[column] = values.fillna("").astype(str).to_numpy().reshape(-1, 1)
    return columns


def _quantile_edges(values: pd.Series, bins: int) -> list[float]:
    """Distinct quantiles of the observed values: the bin edges of piecewise-linear encoding."""
    observed = values.dropna().to_numpy()
    if len(observed) == 0:
        return [0.0, 1.0]
    edges = np.unique(np.quantile(observed, np.linspace(0, 1, bins + 1)))
    return edges.tolist() if len(edges) > 1 else [float(edges[0]), float(edges[0]) + 1.0]


def load_data(cfg: Config) -> Data:
    """Train/val/test splits of the configured table, with the statistics the model needs."""
    frame, description = read_source(cfg)
    features, y, kinds = prepare_frame(frame, cfg.target)
    dropped = len(frame) - len(features)
    if dropped:  # said on the console, not only in info.json
        print(f"dlapps: note: {dropped} of {len(frame)} rows have no value in the target column "
              f"{cfg.target!r}: dropped", file=sys.stderr)
    indexed = features.assign(__target=y).reset_index(drop=True)
    train, val, test = split_frame(indexed, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    stats = {}
    for column, kind in kinds.items():
        if kind == "numeric":
            values = train[column].astype(float)
            log = bool(cfg.log_skewed and values.min() >= 0 and values.skew() > 2)
            values = np.log1p(values) if log else values
            stats[column] = {"mean": float(np.nanmean(values)) if values.notna().any() else 0.0,
                             "variance": float(np.nanvar(values)) if values.notna().sum() > 1 else 1.0,
                             "log": log,
                             "edges": _quantile_edges(train[column].astype(float), cfg.bins)}
        else:
            counts = train[column].dropna().astype(str).value_counts()
            stats[column] = {"vocabulary": sorted(counts.index.tolist())}
    target_train = train["__target"].to_numpy()
    info = {
        "target": cfg.target,
        "kinds": kinds,
        "stats": stats,
        "file_columns": [str(c) for c in frame.columns],
        "target_mean": float(np.mean(target_train)) if len(target_train) else 0.0,
        "target_std": float(np.std(target_train)) if len(target_train) > 1 else 1.0,
        "train_size": len(train),
        "source_description": description,
        "dropped_rows_without_target": int(len(frame) - len(features)),
    }

    def dataset(part):
        return to_dataset(part.drop(columns="__target"), part["__target"].to_numpy(np.float32), kinds)

    return Data(dataset(train), dataset(val) if len(val) else None, dataset(test), info)
