"""Would the embedding's own similarity tell unknown minerals apart? The open-set gate with and without it.

For each open-set run (``trainer fit --split open``): the parts ``trainer openset`` answers (trainer.open_set:
validation and test spectra of known minerals with their specimens' fair/poor files, and every spectrum of the
held-out minerals), answered as the device answers them (the model with its embedding search, the library fusion,
the groups). The evidence gate is fitted on the fit parts as ``trainer openset`` fits it (a logistic score,
thresholded for >= 95 % right and <= 2 % of unknown spectra identified), once on the device's evidence
(edge.answer.EVIDENCE) and once with two more inputs: the named mineral's best cosine to its references in the
embedding, and the best cosine to any reference (an unknown mineral's spectrum lies far from every reference);
and once more with the named mineral's cosine relative to that mineral's own spread too (its cosine minus the median
best cosine of the mineral's references to those of its other specimens: a mineral whose specimens differ is not
held to the closeness of one whose specimens agree; the median over minerals where one has a single specimen).
Reported on the test parts: identified right / coverage / unknowns identified at the fitted threshold, and right /
unknowns at 50 % coverage. Keras float.

    python benchmarks/open_set_embedding.py RUN [RUN ...] [--input-smoothing CM1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.library import Matcher
from trainer.embedding import keras_search_outputs
from trainer.export import reference_library
from trainer.field_set import FieldSet, validation_fusion
from trainer.groups import derive_groups
from trainer.open_set import MAX_UNKNOWN_IDENTIFIED, TARGET_PRECISION, answer_part, fit_logistic, fit_threshold, open_set_parts
from trainer.training import load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)


def logistic_gate(known: np.ndarray, correct: np.ndarray, unknown: np.ndarray):
    """A scorer fitted as trainer.open_set.fit_evidence_gate fits its gate (trainer.open_set.fit_logistic)."""
    weights, bias = fit_logistic(known, correct, unknown)
    return lambda F: 1.0 / (1.0 + np.exp(-(F @ weights + bias)))


def own_spread(embeddings: np.ndarray, classes: np.ndarray, specimens: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes,) each class's median, over its references, of the best cosine to a reference of another of its
    specimens; classes with one specimen (or none) get the median over the others. ``embeddings`` (n, d) unit rows."""
    spread = np.full(n_classes, np.nan)
    for c in np.unique(classes):
        rows = np.flatnonzero(classes == c)
        if len(set(specimens[rows])) < 2:
            continue
        cos = embeddings[rows] @ embeddings[rows].T
        cos[specimens[rows][:, None] == specimens[rows][None, :]] = -np.inf  # its own specimen's spectra do not count
        spread[c] = float(np.median(cos.max(axis=1)))
    return np.where(np.isnan(spread), np.nanmedian(spread), spread)


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    model = run.build_trained_model()
    predict, search, fitted = keras_search_outputs(run, dataset, model, field, args.input_smoothing)
    if fitted is None:
        raise SystemExit(f"{run_dir}: the network has no embedding layer")
    train = run.split.train
    E = fitted.in_given_order()[0]  # the training spectra's unit embeddings, in the split's order
    spread = own_spread(E, dataset.labels(run.classes)[train], dataset.specimen[train].astype(str), len(run.classes))
    library = reference_library(dataset, run.split.train)
    groups = derive_groups(dataset.X[run.split.train], dataset.mineral[run.split.train], dataset.specimen[run.split.train])
    matcher = Matcher(run.classes, library, validation_fusion(run, dataset, library, field, lambda X: predict(X)[0]), groups)
    parts: dict[str, tuple[Any, np.ndarray]] = {}
    for name, part in open_set_parts(run, dataset, field).items():
        P, B = predict(part.X)
        assert B is not None  # the run has an embedding layer (checked above)
        answers = answer_part(matcher, P, part.X, part.y, part.fair)
        named = np.array([B[i, j] if j < B.shape[1] else -1.0 for i, j in enumerate(answers.named)])
        relative = np.array([named[i] - spread[j] if j < len(spread) else -1.0 for i, j in enumerate(answers.named)])
        parts[name] = (answers, np.column_stack([answers.features, named, B.max(axis=1), relative]))
    report: dict[str, Any] = {"embedding_search": search}
    device = parts["known_fit"][0].features.shape[1]
    for gate, columns in (
        ("device evidence", list(range(device))),
        ("+ embedding cosines", list(range(device + 2))),
        ("+ the named cosine relative to its mineral's spread", list(range(device + 3))),
    ):
        def inputs(name: str, columns: list[int] = columns) -> np.ndarray:
            return parts[name][1][:, columns]

        score = logistic_gate(inputs("known_fit"), parts["known_fit"][0].correct, inputs("unknown_fit"))
        threshold = fit_threshold(score(inputs("known_fit")), parts["known_fit"][0].correct, score(inputs("unknown_fit")))
        known, unknown, correct = score(inputs("known_test")), score(inputs("unknown_test")), parts["known_test"][0].correct
        chosen = known >= threshold
        half = np.sort(known)[::-1][len(known) // 2]
        report[gate] = {
            "right": float(correct[chosen].mean()) if chosen.any() else float("nan"),
            "coverage": float(chosen.mean()),
            "unknown_identified": float(np.mean(unknown >= threshold)),
            "right_at_half_coverage": float(correct[known >= half].mean()),
            "unknown_at_half_coverage": float(np.mean(unknown >= half)),
        }
        print(f"{run_dir} {gate}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in report[gate].items()), flush=True)
    return report


def targets(reports: dict[str, dict[str, Any]]) -> str:
    return f"targets: >= {100 * TARGET_PRECISION:.0f} % right, <= {100 * MAX_UNKNOWN_IDENTIFIED:.0f} % unknowns identified (fitted on the fit parts)"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-smoothing", type=float, default=0.0, help="the bundle's model input smoothing, cm^-1 (0: none)")


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, targets, options)
