"""PNG figures of a run: training curves (the paper's Fig. 4), confusion matrix, repeat box plots (Fig. 6)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: runs on servers and in CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

#: Above this many classes the axes carry no names: they would be unreadable.
MAX_NAMED_CLASSES = 40


def training_curves(history: dict[str, list[float]], path: Path, title: str) -> Path:
    """Loss and accuracy per epoch, training against validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], linestyle="--", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    axes[1].set_ylim(0, 1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix over the classes present in the test set."""
    present = np.unique(np.concatenate([y_true, y_pred]))
    matrix = confusion_matrix(y_true, y_pred, labels=present, normalize="true")
    size = min(4 + 0.25 * len(present), 30)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(np.nan_to_num(matrix), cmap="Oranges", vmin=0, vmax=1)
    if len(present) <= MAX_NAMED_CLASSES:
        names = [classes[i] for i in present]
        ax.set_xticks(range(len(present)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(present)), names, fontsize=7)
    ax.set_xlabel("predicted mineral")
    ax.set_ylabel("actual mineral")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def repeat_boxplot(results: dict[str, list[dict[str, float]]], metrics: tuple[str, ...], path: Path, title: str) -> Path:
    """One box per metric and protocol over the repeated splits."""
    protocols = list(results)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(metrics) * len(protocols)), 4.5 if len(protocols) <= 6 else 6.0))
    positions, data, labels = [], [], []
    for m, metric in enumerate(metrics):
        for p, protocol in enumerate(protocols):
            positions.append(m * (len(protocols) + 1) + p)
            data.append([r[metric] for r in results[protocol]])
            labels.append(protocol if len(metrics) == 1 else f"{metric}\n{protocol}")
    ax.boxplot(data, positions=positions)
    if len(metrics) == 1 and len(protocols) > 6:  # many groups (baselines beside CNNs): slanted names, one metric
        ax.set_xticks(positions, labels, fontsize=8, rotation=35, ha="right")
    else:
        ax.set_xticks(positions, labels, fontsize=7)
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "score")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def risk_coverage(curves: dict[str, dict[str, list[float]]], path: Path, title: str) -> Path:
    """Open-set gates: share of known-new answers right, and of unknown minerals' spectra identified, against the
    coverage each threshold leaves (``curves``: gate name -> coverage, precision, unknown_identified)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, curve in curves.items():
        axes[0].plot(curve["coverage"], curve["precision"], label=name)
        axes[1].plot(curve["coverage"], curve["unknown_identified"], label=name)
    axes[0].axhline(0.95, color="grey", linestyle=":", linewidth=1)
    axes[1].axhline(0.02, color="grey", linestyle=":", linewidth=1)
    axes[0].set_ylabel("identified and right (known minerals, new specimens)")
    axes[1].set_ylabel("unknown minerals' spectra identified")
    for ax in axes:
        ax.set_xlabel("coverage: share of known-new spectra identified")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
