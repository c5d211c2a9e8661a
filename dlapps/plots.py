"""Figures written by runs: learning curves, predicted-vs-true, confusion matrices, image grids,
ROC and precision-recall curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(history: dict[str, list], path: Path, title: str = "") -> Path:
    """One panel per metric, training and validation together; phase boundaries dashed."""
    names = [k for k in history if not k.startswith("val_") and k not in ("phase", "learning_rate")
             and history[k] and isinstance(history[k][0], (int, float))]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 3.4), squeeze=False)
    phases = history.get("phase", [])
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs[: len(history[f'val_{name}'])], history[f"val_{name}"], label="validation")
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(i + 0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, path)


def predicted_vs_true(y_true, y_pred, path: Path, unit: str = "") -> Path:
    """Scatter of predictions against targets with the identity line."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.scatter(y_true, y_pred, s=6, alpha=0.4)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set_xlabel(f"true {unit}".strip())
    ax.set_ylabel(f"predicted {unit}".strip())
    ax.set_title("predicted vs true")
    return save_figure(fig, path)


def confusion_matrix(y_true, y_pred, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    """A labelled confusion matrix (counts, rows = true class)."""
    n = len(class_names)
    matrix = np.zeros((n, n), dtype=int)
    for t, p in zip(np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()):
        matrix[int(t), int(p)] += 1
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return save_figure(fig, path)


def image_grid(images, path: Path, titles: Sequence[str] | None = None, columns: int = 8) -> Path:
    """A grid of images (N, H, W[, C]) in [0, 1] or uint8, with optional titles."""
    images = np.asarray(images)
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            image = images[i].squeeze()
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    return save_figure(fig, path)


def classification_report_plots(images, y_true, probabilities, class_names: Sequence[str], plots_dir: Path,
                                worst: int = 32) -> list[Path]:
    """A test confusion matrix, a grid of the most confident mistakes (true->predicted p) and the
    per-class precision-recall curves (precision_recall.png)."""
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities)
    y_pred = probabilities.argmax(axis=1)
    written = [confusion_matrix(y_true, y_pred, class_names, Path(plots_dir) / "confusion_matrix.png",
                                title="test confusion matrix")]
    wrong = np.flatnonzero(y_pred != y_true)
    if len(wrong):
        chosen = wrong[np.argsort(-probabilities[wrong, y_pred[wrong]])][:worst]
        titles = [f"{class_names[y_true[i]]}->{class_names[y_pred[i]]} {probabilities[i, y_pred[i]]:.2f}"
                  for i in chosen]
        written.append(image_grid(np.asarray(images)[chosen], Path(plots_dir) / "worst_mistakes.png", titles=titles))
    written.append(per_class_pr_curves(y_true, probabilities, class_names, Path(plots_dir) / "precision_recall.png",
                                       title="test precision-recall per class (one vs rest)"))
    return written


def roc_pr_curves(y_true, scores, path: Path, title: str = "", threshold: float | None = None) -> Path:
    """ROC and precision-recall curves of a binary scorer side by side, areas in the legends.

    y_true: (n,) 0/1; scores: (n,) higher = more positive. `threshold` marks the operating point.
    Chance lines: the diagonal (ROC) and the positive share (PR).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y_true, scores = np.asarray(y_true).ravel().astype(int), np.asarray(scores, np.float64).ravel()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9, 4))
    fpr, tpr, _ = roc_curve(y_true, scores)
    roc.plot(fpr, tpr, label=f"ROC AUC {roc_auc_score(y_true, scores):.3f}")
    roc.plot([0, 1], [0, 1], "k--", linewidth=1, label="chance")
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC")
    precision, recall, _ = precision_recall_curve(y_true, scores)
    pr.plot(recall, precision, label=f"average precision {average_precision_score(y_true, scores):.3f}")
    pr.axhline(y_true.mean(), color="black", linestyle="--", linewidth=1, label="chance (positive share)")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    if threshold is not None:
        predicted = scores >= threshold
        tp = int(np.sum(predicted & (y_true == 1)))
        roc.plot([np.sum(predicted & (y_true == 0)) / max(1, np.sum(y_true == 0))],
                 [tp / max(1, y_true.sum())], "o", color="tab:red", label=f"threshold {threshold:.2f}")
        pr.plot([tp / max(1, y_true.sum())], [tp / max(1, predicted.sum())], "o", color="tab:red",
                label=f"threshold {threshold:.2f}")
    roc.legend(loc="lower right")
    pr.legend(loc="lower left")
    fig.suptitle(title)
    return save_figure(fig, path)


def per_class_pr_curves(y_true, probabilities, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    """One-vs-rest precision-recall curve per class of a multi-class classifier, average precision in the legend.

    y_true: (n,) class indices; probabilities: (n, classes).
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y_true, probabilities = np.asarray(y_true).ravel(), np.asarray(probabilities)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for k, name in enumerate(class_names):
        positive = (y_true == k).astype(int)
        if positive.sum() == 0:
            continue
        precision, recall, _ = precision_recall_curve(positive, probabilities[:, k])
        ax.plot(recall, precision, label=f"{name}: AP {average_precision_score(positive, probabilities[:, k]):.3f}")
    ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02), title=title or "precision-recall per class (one vs rest)")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return save_figure(fig, path)
