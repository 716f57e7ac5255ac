"""Nearest references in a network's embedding, scored on grouped-fair: the research tool behind
``benchmarks/embedding_search.py`` and ``benchmarks/contrastive_embedding.py``.

A grouped run's training spectra, embedded (L2-normalised), are the library; each spectrum of a part gets, per
mineral, its best cosine similarity to that mineral's references. :func:`embedding_search_report` ranks by it alone
(``embedding_knn``), fused with the model (``log p + w * best cosine``, ``w`` chosen on the run's validation spectra
and their specimens' fair/poor files), and the model alone, on the run's test part kind by kind
(:func:`trainer.field_set.labelled_parts`), top-1 / top-3 ranked as the device ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trainer.dataset import SpectraDataset
from trainer.field_set import FieldSet, labelled_parts
from trainer.metrics import top1_top3
from trainer.training import Run

#: Weights of the embedding term tried on validation.
WEIGHTS = (0, 2, 5, 10, 20, 40)
#: The kinds of test spectra reported, in order.
KINDS = ("excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw")
#: The rankings reported.
RANKINGS = ("model", "embedding_knn", "fused")

Embed = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  #: (n, GRID_SIZE) -> (L2-normalised embeddings, probabilities)


def embedding_search_report(run: Run, dataset: SpectraDataset, field: FieldSet, embed: Embed) -> dict[str, Any]:
    """The three rankings on the run's test part, kind by kind (see the module docstring)."""
    labels = dataset.labels(run.classes)
    library, _ = embed(dataset.X[run.split.train])
    library_labels = labels[run.split.train]
    present = np.unique(library_labels)

    def best_per_class(E: np.ndarray) -> np.ndarray:
        similarity = E @ library.T
        best = np.full((len(E), len(run.classes)), -1.0)
        for c in present:
            best[:, c] = similarity[:, library_labels == c].max(axis=1)
        return best

    def parts(rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return labelled_parts(field, dataset.X[rows], labels[rows], dataset.specimen[rows], run.classes)

    validation = parts(run.split.val)
    Ev, Pv = embed(np.concatenate([x for x, _ in validation.values()]))
    yv = np.concatenate([y for _, y in validation.values()])
    Bv = best_per_class(Ev)
    by_weight = {w: top1_top3(yv, np.log(np.maximum(Pv, 1e-4)) + w * Bv)[0] for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: by_weight[w])
    report: dict[str, Any] = {"validation_top1_by_weight": by_weight, "weight": weight}
    for name, (X, y) in parts(run.split.test).items():
        E, P = embed(X)
        B = best_per_class(E)
        report[name] = {"n": len(y), "model": top1_top3(y, P), "embedding_knn": top1_top3(y, B), "fused": top1_top3(y, np.log(np.maximum(P, 1e-4)) + weight * B)}
    return report


def summary_table(reports: dict[str, dict[str, Any]], suffix: str = "") -> str:
    """Mean top-1 / top-3 over runs of each ranking and kind, as a Markdown table."""
    lines = ["| ranking (mean of the runs, top-1 / top-3) | " + " | ".join(KINDS) + " |", "|---|" + "---|" * len(KINDS)]
    for ranking in RANKINGS:
        cells = [
            f"{100 * np.mean([r[k][ranking][0] for r in reports.values()]):.1f} / {100 * np.mean([r[k][ranking][1] for r in reports.values()]):.1f}"
            for k in KINDS
        ]
        lines.append(f"| {ranking}{suffix} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
