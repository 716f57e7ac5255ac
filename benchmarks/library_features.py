"""Which library similarity generalises better to new specimens: spectra correlation or network embeddings?

    python benchmarks/library_features.py RUN [--dataset DATASET]

RUN is a grouped run folder (`trainer fit --split grouped`). With its Keras float model (no
quantisation, so the comparison is about the similarity alone) and a library of its training spectra:

- correlation: each mineral's best mean-centred correlation, by the device's own search
  (`edge.library.ReferenceLibrary`);
- embedding: each mineral's best cosine between the 256-unit ``embedding`` layer outputs;

each alone, and fused with the model as the device fuses (`edge.library.fused_logits`, weights fitted on
the run's validation spectra by `trainer.calibration.fit_fusion`), scored top-1 on its test spectra. The
last row sweeps the correlation fusion's two weights **on the test spectra themselves**: a ceiling for
that form of fusion, not a result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.library import MODEL_FLOOR, ReferenceLibrary, fused_logits  # noqa: E402
from trainer.calibration import fit_fusion  # noqa: E402


def best_per_class(similarity: np.ndarray, library_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) best similarity of each class's references (-1 where a class has none)."""
    out = np.full((similarity.shape[0], n_classes), -1.0)
    for c in range(n_classes):
        mine = library_labels == c
        if mine.any():
            out[:, c] = similarity[:, mine].max(axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--dataset", type=Path)
    args = parser.parse_args()
    import keras

    from trainer.training import load_run

    run = load_run(args.run)
    dataset = run.load_dataset(args.dataset)
    labels = dataset.labels(run.classes)
    model = run.build_trained_model()
    both = keras.Model(model.input, [model.output, model.get_layer("embedding").output])
    parts = {}
    for part in ("train", "val", "test"):
        rows = getattr(run.split, part)
        proba, embedding = both.predict(dataset.X[rows, :, None], batch_size=256, verbose=0)
        parts[part] = (rows, labels[rows], proba, embedding / np.linalg.norm(embedding, axis=1, keepdims=True))
    train_rows, train_y, _, train_embedding = parts["train"]
    library = ReferenceLibrary(dataset.X[train_rows], train_y.astype(str), train_rows.astype(str), np.full(len(train_rows), "bundle"))
    order = np.array([int(m) for m in library.minerals])[np.argsort(library.minerals, kind="stable")]
    k = len(run.classes)

    def features(part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows, y, proba, embedding = parts[part]
        corr = best_per_class(np.array([library.correlations(x) for x in dataset.X[rows]]), order, k)
        emb = best_per_class(embedding @ train_embedding.T, train_y, k)
        return y, proba, corr, emb

    val, test = features("val"), features("test")
    y = test[0]
    rows = [("model alone", test[1]), ("correlation alone", test[2]), ("embedding alone", test[3])]
    for name, index in (("model + correlation", 2), ("model + embedding", 3)):
        t, w, _ = fit_fusion(val[1], val[index], val[0])
        rows.append((f"{name} (T {t:.2f}, w {w:.1f}, fitted on validation)", fused_logits(test[1], test[index], t, w)))
    best = max(
        (float(np.mean(np.argmax(np.log(np.maximum(test[1], MODEL_FLOOR)) * a + w * test[2], axis=1) == y)), a, w)
        for a in np.linspace(0.2, 2.0, 10)
        for w in np.linspace(0.0, 20.0, 21)
    )
    print(f"{run.path.name}: {len(y)} test spectra of new specimens, library of {len(train_rows)} training spectra")
    print("| similarity | test top-1 % |\n|---|---|")
    for name, scores in rows:
        print(f"| {name} | {100 * np.mean(np.argmax(scores, axis=1) == y):.2f} |")
    print(f"| ceiling: model + correlation, both weights swept on test (1/T {best[1]:.1f}, w {best[2]:.0f}) | {100 * best[0]:.2f} |")


if __name__ == "__main__":
    main()
