"""Nearest references in the network's own embedding, on grouped-fair: a learned similarity for free?

For each grouped run: its training spectra, embedded by the model's ``embedding`` layer (L2-normalised), are the
library; each test spectrum (the grouped test part's RRUFF excellent spectra and the fair/poor files of its test
specimens, processed and RAW) gets, per mineral, its best cosine similarity to that mineral's references. Ranked
alone (``embedding_knn``) and fused with the model (``log p + w * best cosine``, ``w`` chosen on the run's
validation spectra and their specimens' fair/poor files from 0, 2, 5, 10, 20, 40), against the model alone;
top-1 / top-3 as the device ranks (stable order). Keras float.

    python benchmarks/embedding_search.py RUN [RUN ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from trainer.field_set import FieldSet, default_path, labelled_parts, load_field_set
from trainer.metrics import top_k_accuracy
from trainer.resnet import EMBEDDING_LAYER
from trainer.training import load_run

WEIGHTS = (0, 2, 5, 10, 20, 40)


def run_report(run_dir: str, field: FieldSet) -> dict[str, Any]:
    import keras

    run = load_run(run_dir)
    dataset = run.load_dataset()
    model = run.build_trained_model()
    both = keras.Model(model.inputs, [model.get_layer(EMBEDDING_LAYER).output, model.output])
    labels = dataset.labels(run.classes)

    def embed(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, p = both.predict(X[:, :, None], batch_size=256, verbose=0)
        return e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-9), p

    library, _ = embed(dataset.X[run.split.train])
    library_labels = labels[run.split.train]
    classes = np.unique(library_labels)

    def best_per_class(E: np.ndarray) -> np.ndarray:
        similarity = E @ library.T
        best = np.full((len(E), len(run.classes)), -1.0)
        for c in classes:
            best[:, c] = similarity[:, library_labels == c].max(axis=1)
        return best

    def parts(rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return labelled_parts(field, dataset.X[rows], labels[rows], dataset.specimen[rows], run.classes)

    validation = parts(run.split.val)
    Xv = np.concatenate([x for x, _ in validation.values()])
    yv = np.concatenate([y for _, y in validation.values()])
    Ev, Pv = embed(Xv)
    Bv = best_per_class(Ev)
    by_weight = {w: _hits(np.log(np.maximum(Pv, 1e-4)) + w * Bv, yv)[0] for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: by_weight[w])
    report: dict[str, Any] = {"validation_top1_by_weight": by_weight, "weight": weight}
    for name, (X, y) in parts(run.split.test).items():
        E, P = embed(X)
        B = best_per_class(E)
        report[name] = {"n": len(y), "model": _hits(P, y), "embedding_knn": _hits(B, y), "fused": _hits(np.log(np.maximum(P, 1e-4)) + weight * B, y)}
    return report


def _hits(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Top-1 and top-3, ranked as the device ranks."""
    return top_k_accuracy(y, scores, 1), top_k_accuracy(y, scores, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out")
    args = parser.parse_args()
    field = load_field_set(default_path() or "rruff_fair_poor_d2.tar.xz")  # absent: FieldSetError names it
    report = {run: run_report(run, field) for run in args.runs}
    names = ["excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw"]
    print("| ranking (mean of the runs, top-1 / top-3) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for variant in ("model", "embedding_knn", "fused"):
        cells = [f"{100 * np.mean([report[r][n][variant][0] for r in report]):.1f} / {100 * np.mean([report[r][n][variant][1] for r in report]):.1f}" for n in names]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
