"""Does a network trained on mixtures name the minerals of a mixed spot better than the one trained on pure spectra?

The mixture fit (:mod:`edge.mixtures`) takes its candidates from the fused ranking and the library and decides by
non-negative least squares on references of *other* specimens; both minerals of a binary sum of new specimens are
among its components about half the time (docs/RESULTS.md, "Mixtures"). A network could learn mixtures instead: each
grouped run's network is fine-tuned here (a copy; the run is not changed) on sums of one, two or three of its
augmented training spectra (:data:`MIX_KINDS`; shares of the signal 0.2-0.8, mixed as the mixture benchmark mixes
them, never two minerals of one Raman-indistinguishable group), its targets the shares (softmax, cross-entropy) or
every component at 1 (``--loss sigmoid``: a new sigmoid output initialised from the softmax's weights, binary
cross-entropy). Scored on the run's test part (specimens neither saw), against the run's own network:

- pure: top-1 on 300 excellent test spectra and on the fair/poor files of the test specimens;
- binary / ternary: 300 sums of test spectra of different minerals (shares 0.2-0.8): all components among the top 2 / 3.

    python benchmarks/mixture_network.py RUN [RUN ...] [--epochs 8] [--loss softmax|sigmoid] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from trainer.augment import Augmentation, augment_batch
from trainer.field_set import FieldSet
from trainer.groups import derive_groups
from trainer.mixtures import draw_mixtures, mix_spectra
from trainer.training import extra_training_rows, load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

#: Share of training samples that are pure, binary and ternary sums.
MIX_KINDS = (0.4, 0.35, 0.25)
SHARES = (0.2, 0.8)
BATCH = 64
LEARNING_RATE = {"softmax": 2e-4, "sigmoid": 3e-4}
COUNT = 300  #: test spectra of each kind


def mixture_batches(
    X: np.ndarray, y: np.ndarray, n_classes: int, same_group: dict[int, set[int]], aug: Augmentation, epoch: int, sigmoid: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch: every training spectrum, freshly augmented, alone or summed with one or two others; (n, GRID_SIZE)
    inputs and (n, n_classes) targets (shares, or 1 for every component with ``sigmoid``)."""
    rng = np.random.default_rng([7, epoch])
    order = rng.permutation(len(X))
    augmented, labels = augment_batch(X[order], y[order], aug, rng, X, y), y[order]
    inputs = augmented.copy()
    targets = np.zeros((len(X), n_classes), np.float32)
    for i in range(len(X)):
        rows = [i]
        wanted = int(rng.choice(3, p=MIX_KINDS)) + 1
        for _ in range(20):
            if len(rows) == wanted:
                break
            j = int(rng.integers(len(X)))
            if not any(labels[j] in same_group[int(labels[r])] for r in rows):
                rows.append(j)
        shares = np.ones(1)
        if len(rows) > 1:
            shares = rng.uniform(*SHARES, len(rows))
            shares /= shares.sum()
            mixed = mix_spectra([augmented[r] for r in rows], shares)
            if mixed is None:
                rows, shares = [i], np.ones(1)
            else:
                inputs[i] = mixed
        targets[i, [labels[r] for r in rows]] = 1.0 if sigmoid else shares
    return inputs, targets


def all_in_top(scores: np.ndarray, truth: list[list[str]], classes: list[str]) -> float:
    """Share of spectra whose every true mineral is among the top len(truth) scores, ranked as the device ranks."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return float(np.mean([set(t) <= {classes[j] for j in order[i, : len(t)]} for i, t in enumerate(truth)]))


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    classes = run.classes
    labels = dataset.labels(classes)
    train = run.split.train
    X, y = dataset.X[train], labels[train]
    extra = extra_training_rows(run.fit_config, dataset, run.split, classes)
    if extra is not None:
        X, y = np.concatenate([X, extra[0]]), np.concatenate([y, extra[1]])
    groups = derive_groups(dataset.X[train], dataset.mineral[train], dataset.specimen[train])
    index = {m: i for i, m in enumerate(classes)}
    same_group = {i: {i} for i in range(len(classes))}
    for group in groups:
        members = {index[m] for m in group if m in index}
        for m in members:
            same_group[m] |= members
    group_of = {m: frozenset(g) for g in groups for m in g}

    plain = run.build_trained_model()
    model = run.build_trained_model()
    sigmoid = args.loss == "sigmoid"
    if sigmoid:
        head = keras.layers.Dense(len(classes), activation="sigmoid", name="components")
        model = keras.Model(model.inputs, head(model.get_layer("embedding_dropout").output))
        weights, bias = plain.get_layer("predictions").get_weights()
        head.set_weights([weights, bias - np.log(len(classes))])
    loss = keras.losses.BinaryCrossentropy() if sigmoid else keras.losses.CategoricalCrossentropy()
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE[args.loss]), loss=loss)
    aug = Augmentation.parse(run.fit_config.augment)
    if aug is None:
        raise SystemExit(f"{run_dir}: trained without augmentation; this benchmark mixes augmented copies")
    started = time.perf_counter()
    for epoch in range(args.epochs):
        inputs, targets = mixture_batches(X, y, len(classes), same_group, aug, epoch, sigmoid)
        for s in range(0, len(inputs), BATCH):
            model.train_on_batch(inputs[s : s + BATCH, :, None], targets[s : s + BATCH])
    seconds = time.perf_counter() - started

    rng = np.random.default_rng(0)
    test = run.split.test
    test_X, test_minerals = dataset.X[test], dataset.mineral[test]
    pick = rng.permutation(len(test_X))[:COUNT]
    field_rows = field.rows_of(dataset.specimen[test], classes)
    cases: dict[str, tuple[np.ndarray, list[list[str]]]] = {
        "pure_excellent": (test_X[pick], [[str(m)] for m in test_minerals[pick]]),
        "pure_fair_poor_files": (field.X[field_rows], [[str(m)] for m in field.mineral[field_rows]]),
    }
    for k, name in ((2, "binary"), (3, "ternary")):
        mixed, truth, _ = draw_mixtures(test_X, test_minerals, k, COUNT, rng, group_of)
        cases[name] = (mixed, truth)
    report: dict[str, Any] = {"epochs": args.epochs, "loss": args.loss, "train_seconds": round(seconds, 1)}
    for name, (inputs, truth) in cases.items():
        report[name] = {
            "n": len(truth),
            "run_network": all_in_top(plain.predict(inputs[:, :, None], batch_size=256, verbose=0), truth, classes),
            "mixture_network": all_in_top(model.predict(inputs[:, :, None], batch_size=256, verbose=0), truth, classes),
        }
    return report


def summary(reports: dict[str, dict[str, Any]]) -> str:
    names = ("pure_excellent", "pure_fair_poor_files", "binary", "ternary")
    lines = ["| network (all components in its top k; mean of runs) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for network in ("run_network", "mixture_network"):
        cells = [f"{100 * np.mean([r[n][network] for r in reports.values()]):.1f}" for n in names]
        lines.append(f"| {network} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--loss", choices=tuple(LEARNING_RATE), default="softmax")


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary, options)
