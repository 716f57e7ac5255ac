"""Should RAW spectra be fused with the library by a fit of their own? Tried, not built.

For each grouped run: the model with its embedding search (as the device gives it, trainer.embedding.keras_search),
the fusion as shipped (fitted on validation spectra and their fair/poor files, trainer.field_set.validation_fusion),
and a second fit (temperature and library weight, trainer.calibration.fit_fusion) on the validation specimens' RAW
fair/poor files alone (about 20 a split). Both applied to the test specimens' RAW fair and poor files: fused top-1 /
top-3, and the model alone. Keras float.

    python benchmarks/raw_fusion.py RUN [RUN ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.library import Matcher
from trainer import calibration
from trainer.embedding import keras_search
from trainer.export import reference_library
from trainer.field_set import FieldSet, labelled_parts, validation_fusion
from trainer.training import load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

RAW_KINDS = ("fair_raw", "poor_raw")


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    predict, _ = keras_search(run, dataset, run.build_trained_model(), field)
    library = reference_library(dataset, run.split.train)
    shipped = validation_fusion(run, dataset, library, field, predict)
    labels = dataset.labels(run.classes)

    def parts(rows: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return labelled_parts(field, dataset.X[rows], labels[rows], dataset.specimen[rows], run.classes)

    validation = parts(run.split.val)
    X = np.concatenate([validation[k][0] for k in RAW_KINDS])
    y = np.concatenate([validation[k][1] for k in RAW_KINDS])
    P, R, _ = calibration.features(Matcher(run.classes, library, shipped), predict(X), X)
    temperature, weight, _ = calibration.fit_fusion(P, R, y)
    raw_fit = replace(shipped, temperature=temperature, library_weight=weight, library_noise_decay=0.0)
    report: dict[str, Any] = {
        "validation_raw_files": len(y),
        "shipped": {"temperature": shipped.temperature, "library_weight": shipped.library_weight},
        "raw_fit": {"temperature": temperature, "library_weight": weight},
    }
    test = parts(run.split.test)
    for kind in RAW_KINDS:
        Xt, yt = test[kind]
        Pt = predict(Xt)
        cell: dict[str, Any] = {"n": len(yt)}
        for name, fusion in (("shipped", shipped), ("raw_fit", raw_fit)):
            answers = calibration.score_answers(Matcher(run.classes, library, fusion), Pt, Xt, yt)
            cell[name] = {"fused_top1": answers["fused"]["top1"], "fused_top3": answers["fused"]["top3"]}
            cell["model_top1"] = answers["model"]["top1"]
        report[kind] = cell
    print(f"{run_dir}: library weight {shipped.library_weight:.2f} -> {weight:.2f} ({len(y)} RAW files); " + "; ".join(
        f"{k} model {100 * report[k]['model_top1']:.1f}, fused {100 * report[k]['shipped']['fused_top1']:.1f} -> {100 * report[k]['raw_fit']['fused_top1']:.1f}"
        for k in RAW_KINDS
    ), flush=True)
    return report


if __name__ == "__main__":
    run_reports.main(__doc__, run_report)
