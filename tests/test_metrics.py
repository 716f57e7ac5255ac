from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import classification_metrics, per_class_report

# Three classes, six test spectra; every number below is worked out by hand.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBA = np.array(
    [
        [0.7, 0.2, 0.1],  # 0 -> 0
        [0.6, 0.3, 0.1],  # 0 -> 0
        [0.2, 0.5, 0.3],  # 0 -> 1 (0 is 2nd)
        [0.1, 0.8, 0.1],  # 1 -> 1
        [0.5, 0.1, 0.4],  # 1 -> 0 (1 is 3rd)
        [0.3, 0.3, 0.4],  # 2 -> 2
    ]
)


def test_metrics_on_a_hand_worked_case():
    m = classification_metrics(Y_TRUE, PROBA)
    # predictions 0,0,1,1,0,2: precision per class 2/3, 1/2, 1; recall 2/3, 1/2, 1; support 3, 2, 1
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision_weighted"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2 + 1 * 1) / 6)
    assert m["recall_weighted"] == pytest.approx(4 / 6)
    assert m["f1_weighted"] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2 + 1 * 1) / 6)
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["top3"] == pytest.approx(1.0)
    # top-2 misses only spectrum 5 (true class ranked 3rd), so top3 = 1; top5 clips to 3 classes
    assert m["top5"] == pytest.approx(1.0)
    assert 0.5 < m["roc_auc"] <= 1 and 0 < m["pr_auc"] <= 1


def test_micro_roc_auc_by_pair_counting():
    # 6 positives (true-class entries) against 12 negatives: AUC = P(score_pos > score_neg), ties half
    pos = PROBA[np.arange(6), Y_TRUE]
    neg = np.delete(PROBA.ravel(), np.arange(6) * 3 + Y_TRUE)
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert classification_metrics(Y_TRUE, PROBA)["roc_auc"] == pytest.approx(pairs / (6 * 12))


def test_never_predicted_class_counts_as_precision_zero():
    proba = np.array([[0.9, 0.1], [0.8, 0.2]])
    m = classification_metrics(np.array([0, 1]), proba)
    assert m["precision_weighted"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.0)


def test_per_class_report_lists_classes_in_the_test_set():
    rows = per_class_report(Y_TRUE, PROBA, ["calcite", "quartz", "gypsum"])
    assert [r["mineral"] for r in rows] == ["calcite", "quartz", "gypsum"]
    assert rows[1]["recall"] == pytest.approx(0.5) and rows[1]["support"] == 2


def test_ties_are_ranked_as_the_device_ranks_them():
    """int8 outputs tie often: a tie is a hit only where the device's stable order shows the true class first."""
    from edge.ranking import rank

    y_true = np.array([1, 0, 2, 3])
    proba = np.array(
        [
            [0.5, 0.5, 0.0, 0.0],  # tie for first; the device shows class 0 first: a top-1 miss, a top-2 hit
            [0.5, 0.5, 0.0, 0.0],  # the same tie, true class 0: a hit
            [0.4, 0.2, 0.2, 0.2],  # true class 2 tied for second with 1 and 3: ranked 3rd (after 0 and 1)
            [0.1, 0.3, 0.3, 0.3],  # true class 3 tied for first with 1 and 2: ranked 3rd
        ]
    )
    assert rank(proba).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [1, 2, 3, 0]]
    m = classification_metrics(y_true, proba)
    assert m["top1"] == pytest.approx(1 / 4)
    assert m["accuracy"] == m["top1"]
    assert m["top3"] == pytest.approx(4 / 4)
    # top-2 (not reported, same code): rows 0 and 1 hit, rows 2 and 3 (true class 3rd) miss
    from trainer.metrics import top_k_accuracy

    assert top_k_accuracy(y_true, proba, 2) == pytest.approx(2 / 4)


def test_top3_and_top5_count_rank_not_just_membership():
    """Eight classes; in row r the true class is ranked r-th (0-based): top-k must follow that rank."""
    from trainer.metrics import top_k_accuracy

    proba = np.tile(np.linspace(0.3, 0.01, 8), (8, 1))  # class i is always ranked i-th
    y_true = np.arange(8)
    assert [top_k_accuracy(y_true, proba, k) for k in (1, 3, 5)] == pytest.approx([1 / 8, 3 / 8, 5 / 8])


def test_a_tie_among_hundreds_of_classes_keeps_the_lower_index_first():
    """int8 outputs of a 1332-class model: many classes share each step. Only a stable sort keeps the
    device's order (the lower class index first) on arrays this long; quicksort shuffles equal keys."""
    from edge.ranking import rank

    rng = np.random.default_rng(0)
    scores = np.round(rng.uniform(0, 1, (50, 1332)) * 8) / 8  # 9 distinct values: hundreds of ties each
    for row, order in zip(scores, rank(scores)):
        ranked = row[order]
        assert np.all(np.diff(ranked) <= 0)
        for value in np.unique(row):
            tied = order[ranked == value]
            assert np.all(np.diff(tied) > 0)  # within a tie: ascending class index
