"""``trainer evaluate``: score a run on its test split in inference mode, write metrics and figures.

Predictions come from ``model.predict`` (BatchNorm on its moving statistics, dropout off),
exactly what an exported model computes; the run's last training accuracy is shown beside
it, so a BatchNorm problem shows up as a gap rather than hiding. The same test spectra are
scored a second time as a field spectrometer would measure them (``trainer.augment.field_degrade``:
10 cm^-1 resolution, residual baseline, SNR 20, 150..1400 cm^-1), because a model that is good on
RRUFF's lab spectra can still fail on fair-quality field spectra. A grouped run is scored a third
time on real fair/poor spectra of its test specimens, and of its validation specimens for choosing
recipes (:mod:`trainer.field_set`: the grouped-fair yardstick): model alone, the run's training
library alone, and the two fused with a fusion fitted on its validation spectra.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.library import Matcher
from trainer import plots
from trainer.augment import field_degrade
from trainer.dataset import SpectraDataset
from trainer.errors import TrainerError
from trainer.field_set import GROUPED_FAIR, FieldSet, default_path, grouped_fair, load_field_set, validation_fusion
from trainer.metrics import FIELD, FIELD_METRICS, classification_metrics, per_class_report
from trainer.training import Run, load_run

METRICS = "metrics.json"
PER_CLASS = "per_class.csv"


def evaluate(
    run_dir: str | Path,
    dataset_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    field_set: str | Path | FieldSet | None = None,
) -> dict:
    """Compute the Table 3 metrics on the run's test split; write metrics, report and plots.

    They go into the run folder unless ``out_dir`` is given (a committed reference run stays untouched).
    ``field_set``: the fair/poor set (path or loaded) for the grouped-fair figures; default: the shared
    one where the project's data lives (:func:`trainer.field_set.default_path`).
    """
    run = load_run(run_dir)
    if run.split.protocol == "all":
        raise EvaluationError(
            f"{run.path}: trained on every spectrum (--split all): it has no test part; its figures are those of "
            "the same recipe on the grouped split"
        )
    out = Path(out_dir) if out_dir else run.path
    out.mkdir(parents=True, exist_ok=True)
    dataset = run.load_dataset(dataset_path)
    model = run.build_trained_model()
    labels = dataset.labels(run.classes)
    rows = run.split.test
    proba = model.predict(dataset.X[rows, :, None], batch_size=256, verbose=0)
    y_true = labels[rows]

    metrics = classification_metrics(y_true, proba)
    field_proba = model.predict(field_degrade(dataset.X[rows], seed=run.split.seed)[:, :, None], batch_size=256, verbose=0)
    field = classification_metrics(y_true, field_proba)
    record = {
        "protocol": run.split.protocol,
        "seed": run.split.seed,
        "n_classes": len(run.classes),
        "n_test": int(len(rows)),
        "test": metrics,
        FIELD: {k: field[k] for k in FIELD_METRICS},
        "best_val_accuracy": max(run.history.get("val_accuracy", [float("nan")])),
        "last_train_accuracy_training_mode": run.history["accuracy"][-1],
        "device": run.config.device,
        "epochs_run": run.config.epochs_run,
        "best_epoch": run.config.best_epoch,
        GROUPED_FAIR: score_grouped_fair(run, dataset, model, field_set),
    }
    (out / METRICS).write_text(json.dumps(record, indent=2))
    with (out / PER_CLASS).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["mineral", "precision", "recall", "f1-score", "support"])
        writer.writeheader()
        writer.writerows(per_class_report(y_true, proba, run.classes))
    title = f"{run.path.name}: {run.split.protocol} split, {len(run.classes)} classes"
    plots.training_curves(run.history, out / "training_curves.png", title)
    plots.confusion(y_true, proba.argmax(axis=1), run.classes, out / "confusion_matrix.png", title)
    return record


class EvaluationError(TrainerError):
    """A run that cannot be evaluated; one line saying why."""


def score_grouped_fair(run: Run, dataset: SpectraDataset, model: keras.Model, field_set: str | Path | FieldSet | None) -> dict[str, Any]:
    """The run's grouped-fair figures (Keras float model), or ``{"not_scored": why}``."""
    if run.split.protocol != "grouped":
        return {"not_scored": f"{run.split.protocol} split: the fair/poor files' specimens were in its training data"}
    if field_set is None:
        field_set = default_path()
        if field_set is None:
            return {"not_scored": "no fair/poor set found ($RAMANEDGE_DATA or ../shared/data)"}
    field = field_set if isinstance(field_set, FieldSet) else load_field_set(field_set)
    from trainer.export import reference_library

    def predict(X: np.ndarray) -> np.ndarray:
        return model.predict(X[:, :, None], batch_size=256, verbose=0)

    library = reference_library(dataset, run.split.train)
    fusion = validation_fusion(run, dataset, library, field, predict)
    parts = {"test": dataset.specimen[run.split.test], "validation": dataset.specimen[run.split.val]}
    return grouped_fair(field, parts, Matcher(run.classes, library, fusion), predict)
