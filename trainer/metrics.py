"""The paper's evaluation metrics (Sang et al. 2021, Eq. 2-5 and Table 3), from predicted probabilities.

Weighted precision/recall/F1 average the per-class values weighted by class support; a class
that is never predicted has precision 0 here (the paper's script counted it as 1, which
flatters the score). ROC AUC and PR AUC are micro-averaged over the one-hot matrix, as the
paper's Keras ``AUC`` metrics were (those approximate the curve with 200 thresholds; these are exact).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    precision_recall_fscore_support,
    roc_auc_score,
)

from edge.ranking import rank, top_k_hits

METRIC_NAMES = (
    "accuracy",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "pr_auc",
    "top1",
    "top3",
    "top5",
)
#: The record key of the scores on test spectra degraded as in the field (``trainer.augment.field_degrade``),
#: written by the CNN evaluation and by every baseline result, and the metrics it holds.
FIELD = "test_field_degraded"
FIELD_METRICS = ("top1", "top3", "top5")


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Share of spectra whose true class is among the first k, ranked as the device ranks.

    A tie for the k-th place is a hit only if the stable order puts the true class inside
    (``edge.ranking.rank``); counting every tie as a hit flattered int8 models by 0.7 points.
    """
    return float(np.mean(top_k_hits(y_true, proba, k)))


def top1_top3(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Top-1 and top-3 of ``scores`` (n, classes) against ``y_true`` (n,), ranked as the device ranks."""
    return top_k_accuracy(y_true, scores, 1), top_k_accuracy(y_true, scores, 3)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """All Table 3 metrics for integer labels ``y_true`` and probabilities ``proba`` (n, classes)."""
    n_classes = proba.shape[1]
    y_pred = rank(proba)[:, 0]
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="weighted", zero_division=0
    )
    onehot = np.eye(n_classes, dtype=np.int8)[y_true]
    result = {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision_weighted": precision,
        "recall_weighted": recall,
        "f1_weighted": f1,
        "roc_auc": roc_auc_score(onehot.ravel(), proba.ravel()),
        "pr_auc": average_precision_score(onehot.ravel(), proba.ravel()),
    }
    for k in (1, 3, 5):
        result[f"top{k}"] = top_k_accuracy(y_true, proba, k)
    return {name: float(result[name]) for name in METRIC_NAMES}


def mean_std(runs: list[dict[str, float]], names: tuple[str, ...] = METRIC_NAMES) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each named metric over repeated runs (std 0 for one run)."""
    return {
        name: {
            "mean": float(np.mean([r[name] for r in runs])),
            "std": float(np.std([r[name] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
        }
        for name in names
    }


def field_summary(groups: dict[str, list[dict[str, float] | None]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean ± std of the field-degraded scores per row (None: a run without them), only for rows where every run
    has them, so no field figure rests on fewer runs than its row's clean one."""
    return {key: mean_std([r for r in runs if r is not None], FIELD_METRICS) for key, runs in groups.items() if runs and None not in runs}


def split_record(seed: int, test_rows_sha256: str, scores: dict) -> dict:
    """One split's entry under a summary's ``splits`` (repeat or baseline): its seed, its test rows' fingerprint
    and, where ``scores`` has them, its field-degraded and grouped-fair scores; what pairing it with another
    method's split needs."""
    extra = {key: scores[key] for key in (FIELD, "grouped_fair") if key in scores}
    return {"seed": seed, "test_rows_sha256": test_rows_sha256, **extra}


def per_class_report(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> list[dict[str, object]]:
    """Precision, recall, F1 and support of every class present in the test labels."""
    present = np.unique(y_true)
    report = classification_report(
        y_true,
        rank(proba)[:, 0],
        labels=present,
        target_names=[classes[i] for i in present],
        output_dict=True,
        zero_division=0,
    )
    return [
        {"mineral": classes[i], **{k: report[classes[i]][k] for k in ("precision", "recall", "f1-score", "support")}}
        for i in present
    ]
