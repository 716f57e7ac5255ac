"""A learned similarity across specimens: the classifier fine-tuned with a supervised contrastive loss, judged on
grouped-fair against the same run's own embedding (benchmarks/embedding_search.py) and its softmax.

For each grouped run (the fair-trained recipe): its network, from its trained weights, gets a second output, the
L2-normalised ``embedding_dense`` layer, trained with the supervised contrastive loss (Khosla et al. 2020; the
spectra of one mineral in a batch are each other's positives) beside the cross-entropy it was trained with.
Batches hold ``--per-class`` spectra of each of ``--classes`` minerals, drawn from *different specimens* where the
mineral has several, from the run's training spectra and the fair/poor files of its training specimens (processed and
RAW: a field spectrum is pulled towards excellent ones of other specimens), each a fresh copy under the run's physical
augmentation. Then, as in embedding_search: the training spectra embedded are the library, each test spectrum gets
its best cosine per mineral; ranked alone and fused with the fine-tuned softmax (``w`` chosen on validation), against
the model alone; top-1 / top-3 on the test part's excellent spectra and its specimens' fair/poor files.

    python benchmarks/contrastive_embedding.py RUN [RUN ...] [--epochs 8] [--contrastive-weight 1] [--out FILE.json]

``--contrastive-weight 0`` is the control: the same batches, augmentation, data and epochs with the cross-entropy
alone, so that a gain can be told apart from the extra training and the RAW files it sees.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from trainer.augment import Augmentation, augment_batch
from trainer.field_set import FieldSet, default_path, labelled_parts, load_field_set
from trainer.metrics import top_k_accuracy
from trainer.training import load_run

WEIGHTS = (0, 2, 5, 10, 20, 40)
TEMPERATURE = 0.1


def _hits(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return top_k_accuracy(y, scores, 1), top_k_accuracy(y, scores, 3)


def supervised_contrastive(labels: Any, z: Any) -> Any:
    """Per-sample supervised contrastive loss of L2-normalised embeddings ``z`` (b, d) with integer ``labels``."""
    from keras import ops

    y = ops.reshape(ops.cast(labels, "int32"), (-1,))
    n = ops.shape(z)[0]
    eye = ops.eye(n)
    logits = ops.matmul(z, ops.transpose(z)) / TEMPERATURE - 1e9 * eye
    log_prob = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    positive = ops.cast(ops.equal(y[:, None], y[None, :]), "float32") * (1.0 - eye)
    return -ops.sum(positive * log_prob, axis=1) / ops.maximum(ops.sum(positive, axis=1), 1.0)


def batches(X: np.ndarray, y: np.ndarray, specimen: np.ndarray, classes: int, per_class: int, steps: int, aug: Augmentation | None, rng: np.random.Generator):
    """``steps`` batches of ``classes`` minerals x ``per_class`` spectra, different specimens first."""
    by_class: dict[int, dict[str, np.ndarray]] = {}
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        by_class[int(c)] = {s: rows[specimen[rows] == s] for s in np.unique(specimen[rows])}
    usable = [c for c, specimens in by_class.items() if sum(map(len, specimens.values())) >= 2]
    for _ in range(steps):
        picked: list[int] = []
        for c in rng.choice(usable, classes, replace=False):
            specimens = list(by_class[int(c)].values())
            order = rng.permutation(len(specimens))
            picked += [int(rng.choice(specimens[order[i % len(order)]])) for i in range(per_class)]
        chosen = np.array(picked)
        x = X[chosen] if aug is None else augment_batch(X[chosen], y[chosen], aug, rng, X, y)
        yield x[:, :, None].astype(np.float32), y[chosen]


def run_report(run_dir: str, field: FieldSet, epochs: int, classes_per_batch: int, per_class: int, contrastive_weight: float = 1.0) -> dict[str, Any]:
    import keras

    run = load_run(run_dir)
    dataset = run.load_dataset()
    base = run.build_trained_model()
    n_classes = len(run.classes)
    embedding = keras.layers.UnitNormalization(name="unit_embedding")(base.get_layer("embedding_dense").output)
    model = keras.Model(base.inputs, [embedding, base.output])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=[supervised_contrastive, keras.losses.SparseCategoricalCrossentropy()],
        loss_weights=[contrastive_weight, 1.0],
    )
    labels = dataset.labels(run.classes)
    train = run.split.train
    extra = field.training_rows(dataset.specimen[train], run.classes, kinds=("processed", "raw"))
    index = {m: i for i, m in enumerate(run.classes)}
    X = np.concatenate([dataset.X[train], field.X[extra]])
    y = np.concatenate([labels[train], [index[m] for m in field.mineral[extra]]]).astype(np.int64)
    specimen = np.concatenate([dataset.specimen[train], field.specimen[extra]]).astype(str)
    aug = Augmentation.parse(run.fit_config.augment)
    rng = np.random.default_rng(run.split.seed)
    steps = len(X) // (classes_per_batch * per_class)
    started = time.perf_counter()
    for epoch in range(epochs):
        losses = []
        for xb, yb in batches(X, y, specimen, classes_per_batch, per_class, steps, aug, rng):
            losses.append(model.train_on_batch(xb, [yb, yb]))
        print(f"{run_dir}: epoch {epoch + 1}/{epochs} loss {np.mean([np.ravel(v)[0] for v in losses]):.4f}", flush=True)
    seconds = time.perf_counter() - started

    def embed(X_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, p = model.predict(X_[:, :, None], batch_size=256, verbose=0)
        return np.asarray(e), np.asarray(p)

    library, _ = embed(dataset.X[train])
    library_labels = labels[train]
    present = np.unique(library_labels)

    def best_per_class(E: np.ndarray) -> np.ndarray:
        similarity = E @ library.T
        best = np.full((len(E), n_classes), -1.0)
        for c in present:
            best[:, c] = similarity[:, library_labels == c].max(axis=1)
        return best

    def parts(rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return labelled_parts(field, dataset.X[rows], labels[rows], dataset.specimen[rows], run.classes)

    validation = parts(run.split.val)
    Xv = np.concatenate([x for x, _ in validation.values()])
    yv = np.concatenate([t for _, t in validation.values()])
    Ev, Pv = embed(Xv)
    Bv = best_per_class(Ev)
    by_weight = {w: _hits(np.log(np.maximum(Pv, 1e-4)) + w * Bv, yv)[0] for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: by_weight[w])
    report: dict[str, Any] = {"train_seconds": round(seconds, 1), "validation_top1_by_weight": by_weight, "weight": weight}
    for name, (Xt, yt) in parts(run.split.test).items():
        E, P = embed(Xt)
        B = best_per_class(E)
        report[name] = {"n": len(yt), "model": _hits(P, yt), "embedding_knn": _hits(B, yt), "fused": _hits(np.log(np.maximum(P, 1e-4)) + weight * B, yt)}
        print(run_dir, name, report[name], flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--classes", type=int, default=32, help="minerals per batch")
    parser.add_argument("--per-class", type=int, default=4, help="spectra per mineral in a batch")
    parser.add_argument("--contrastive-weight", type=float, default=1.0, help="0: the control, the same fine-tuning with cross-entropy alone")
    parser.add_argument("--out")
    args = parser.parse_args()
    field = load_field_set(default_path() or "rruff_fair_poor_d2.tar.xz")
    report = {run: run_report(run, field, args.epochs, args.classes, args.per_class, args.contrastive_weight) for run in args.runs}
    names = ["excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw"]
    print("| ranking (mean of the runs, top-1 / top-3) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for variant in ("model", "embedding_knn", "fused"):
        cells = [f"{100 * np.mean([report[r][n][variant][0] for r in report]):.1f} / {100 * np.mean([report[r][n][variant][1] for r in report]):.1f}" for n in names]
        print(f"| {variant} (after fine-tuning) | " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
