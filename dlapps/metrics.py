"""Scores and plots shared by the tasks: classifier predictions, classification reports, top-k.

Every function takes plain NumPy arrays (or an unbatched tf.data dataset of (input, label)) and
returns plain Python numbers, so the tasks' `evaluate` hooks stay short and their metrics.json
files stay readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dlapps.errors import UserError


def predictions(model, dataset, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, true labels (N,), predicted probabilities (N, K)) of a classifier over a dataset.

    `dataset`: unbatched tf.data of (input, int label); the inputs come back stacked as NumPy
    arrays (e.g. uint8 images (N, H, W, C)). `model.predict_on_batch` runs on this process only:
    evaluate a local copy of a model built under a multi-replica strategy.
    Raises UserError for an empty dataset.
    """
    from dlapps.data.pipeline import batched

    inputs, labels, probabilities = [], [], []
    for x, y in batched(dataset, batch_size).as_numpy_iterator():
        inputs.append(x)
        labels.append(y)
        probabilities.append(np.asarray(model.predict_on_batch(x)))
    if not labels:
        raise UserError("no images to evaluate")
    return np.concatenate(inputs), np.concatenate(labels), np.concatenate(probabilities)


def accuracy(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Share of examples whose most probable class is the true one; labels (N,), probabilities (N, K)."""
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == np.asarray(y_true)))


def top_k_accuracy(y_true: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Share of examples whose true class is among the `k` most probable ones."""
    top = np.argsort(-np.asarray(probabilities), axis=1)[:, :k]
    return float(np.mean((top == np.asarray(y_true)[:, None]).any(axis=1)))


def classification_scores(y_true: np.ndarray, probabilities: np.ndarray,
                          class_names: Sequence[str]) -> dict[str, float]:
    """Accuracy, cross-entropy (nats), macro F1, n and per-class precision/recall.

    `y_true` int (N,) in 0..K-1, `probabilities` (N, K) rows summing to 1; classes without any
    prediction get precision 0. Keys: accuracy, loss, macro_f1, n, precision_<name>, recall_<name>.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities)
    y_pred = probabilities.argmax(axis=1)
    labels = list(range(len(class_names)))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    picked = probabilities[np.arange(len(y_true)), y_true]
    out = {"accuracy": float(np.mean(y_pred == y_true)),
           "loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))),
           "macro_f1": float(np.mean(f1)), "n": int(len(y_true))}
    for i, name in enumerate(class_names):
        out[f"precision_{name}"] = float(precision[i])
        out[f"recall_{name}"] = float(recall[i])
    return out


def macro_f1(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """The unweighted mean of each class's F1 score, over the classes present in `y_true` (a folder
    holding only some classes is not marked down for the classes it does not hold)."""
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true)
    return float(f1_score(y_true, np.asarray(probabilities).argmax(axis=1), labels=np.unique(y_true),
                          average="macro", zero_division=0))


def classification_plots(model, dataset, class_names: Sequence[str], plots_dir: Path, worst: int = 32,
                         batch_size: int = 512) -> list[Path]:
    """A confusion matrix and a grid of the `worst` most confident mistakes of an image classifier.

    `dataset`: unbatched (image, label) pairs; writes plots_dir/confusion_matrix.png and (when
    there is a mistake) plots_dir/worst_mistakes.png; returns the paths written.
    """
    from dlapps import plots

    images, y_true, probabilities = predictions(model, dataset, batch_size)
    return plots.classification_report_plots(images, y_true, probabilities, list(class_names), plots_dir,
                                             worst=worst)
