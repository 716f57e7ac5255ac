"""The command line the run benchmarks share: run folders in, one report per run, a summary, the reports as JSON.

    python benchmarks/NAME.py RUN [RUN ...] [options] [--out FILE.json]

Each benchmark gives :func:`main` its docstring (the help), ``report_of(run_dir, field, args)`` (one run's report,
with the shared fair/poor set), an optional ``summary(reports)`` to print and optional extra options;
:func:`load_grouped` gives a report what most of them start from.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.library import Calibration, Matcher, ReferenceLibrary
from ramancore.preprocessing import noise_level
from trainer import calibration
from trainer.dataset import SpectraDataset
from trainer.embedding import keras_search
from trainer.export import reference_library
from trainer.field_set import FieldSet, default_field_set, labelled_parts, validation_weights, validation_with_field
from trainer.training import Run, load_run

Report = dict[str, Any]


@dataclass
class GroupedRun:
    """A grouped run loaded for a benchmark: its Keras model, its training spectra as the library, and its test part
    kind by kind (``trainer.field_set.labelled_parts``: excellent spectra and its specimens' fair/poor files)."""

    run: Run
    dataset: SpectraDataset
    model: Any  #: keras.Model
    library: ReferenceLibrary
    labels: np.ndarray  #: (n,) every dataset row's class index in the run's order
    test_parts: dict[str, tuple[np.ndarray, np.ndarray]]


def load_grouped(run_dir: str, field: FieldSet) -> GroupedRun:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    labels = dataset.labels(run.classes)
    rows = run.split.test
    parts = labelled_parts(field, dataset.X[rows], labels[rows], dataset.specimen[rows], run.classes)
    return GroupedRun(run, dataset, run.build_trained_model(), reference_library(dataset, run.split.train), labels, parts)


#: A fusion's inputs for a set of spectra: candidate probabilities P (n, m), best library correlations R (n, m), true
#: candidate indices y (n,), each spectrum's noise_level (n,).
FusionFeatures = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def fusion_features(run_dir: str, field: FieldSet, window: float) -> tuple[FusionFeatures, np.ndarray, dict[str, FusionFeatures]]:
    """A grouped run's model with its search (as the device gives it, with ``window`` cm^-1 input smoothing), its
    training spectra as the library: the fusion's inputs on its validation spectra with their specimens' fair/poor
    files (and how much each counts in a fit, ``validation_weights``), and on its test part kind by kind."""
    g = load_grouped(run_dir, field)
    predict, _ = keras_search(g.run, g.dataset, g.model, field, smoothing_cm1=window)
    matcher = Matcher(g.run.classes, g.library, Calibration())
    rows = g.run.split.val
    X, y, joined = validation_with_field(g.dataset.X[rows], g.labels[rows], field, g.dataset.specimen[rows], g.run.classes)

    def of(X: np.ndarray, y: np.ndarray) -> FusionFeatures:
        P, R, _ = calibration.features(matcher, predict(X), X)
        return P, R, y, np.array([noise_level(x) for x in X])

    return of(X, y), validation_weights(len(y), joined), {kind: of(*part) for kind, part in g.test_parts.items()}


def main(
    doc: str,
    report_of: Callable[[str, FieldSet, argparse.Namespace], Report],
    summary: Callable[[dict[str, Report]], str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> dict[str, Report]:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (`trainer fit`)")
    parser.add_argument("--out", help="write the reports here (JSON)")
    if options is not None:
        options(parser)
    args = parser.parse_args()
    field = default_field_set()
    reports = {run_dir: report_of(run_dir, field, args) for run_dir in args.runs}
    if summary is not None:
        print(summary(reports))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(reports, handle, indent=1)
    return reports
