"""Model input smoothing on new specimens: which window (cm^-1) pays, kind by kind, and is it chosen on validation.

For each grouped run and each window of ``--windows`` (0: off): every spectrum the network sees is smoothed first
(:func:`ramancore.preprocessing.smooth_measured_span`: Savitzky-Golay, order 2, over its measured span), its
references for the embedding search included, and the search's weight refitted (``trainer.embedding.keras_search``,
as the device and ``trainer export`` do); the fusion with the library is refitted on validation too. Scored: the
validation spectra and their specimens' fair/poor files, weighted as export weighs them (what chooses the window),
and the test part kind by kind (RRUFF excellent spectra and the fair/poor files of its specimens, processed and RAW),
model (with its search) and fused top-1 / top-3, ranked as the device ranks. Keras float; the exported int8 bundles'
figures come from ``trainer export`` (benchmarks/bundle_figures.py).

    python benchmarks/input_smoothing.py RUN [RUN ...] [--windows 0,9,13,17,21,25,31,41] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.library import Matcher
from edge.ranking import top_k_hits
from trainer.calibration import score_answers
from trainer.embedding import KINDS, keras_search
from trainer.field_set import FieldSet, validation_fusion, validation_weights, validation_with_field

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    g = run_reports.load_grouped(run_dir, field)
    run, dataset, model, library, labels, parts = g.run, g.dataset, g.model, g.library, g.labels, g.test_parts
    Xv, yv, joined = validation_with_field(dataset.X[run.split.val], labels[run.split.val], field, dataset.specimen[run.split.val], run.classes)
    weights = validation_weights(len(yv), joined)
    report: dict[str, Any] = {}
    for window in (float(w) for w in args.windows.split(",")):
        predict, search = keras_search(run, dataset, model, field, window)
        matcher = Matcher(run.classes, library, validation_fusion(run, dataset, library, field, predict))
        cell: dict[str, Any] = {
            "search_weight": search.get("weight"),
            "validation_weighted_top1": float(np.sum(weights * top_k_hits(yv, predict(Xv), 1)) / np.sum(weights)),
        }
        for kind, (X, y) in parts.items():
            answers = score_answers(matcher, predict(X), X, y)
            cell[kind] = {"n": len(y), **{f"{r}_top{k}": answers[r][f"top{k}"] for r in ("model", "fused") for k in (1, 3)}}
        report[f"{window:g}"] = cell
        print(
            f"{run_dir} window {window:g}: validation {100 * cell['validation_weighted_top1']:.1f}; model top-1 "
            + ", ".join(f"{k} {100 * cell[k]['model_top1']:.1f}" for k in KINDS),
            flush=True,
        )
    return report


def summary(reports: dict[str, dict[str, Any]]) -> str:
    """Mean over runs, per window: weighted validation top-1, then model top-1 / top-3 per kind, fused top-1 per kind;
    and per window how many runs the model's excellent and fair processed top-1 rose on against window 0."""
    windows = list(next(iter(reports.values())))
    lines = [
        "| window (cm^-1) | validation | " + " | ".join(f"{k}: model top-1 / top-3, fused top-1" for k in KINDS) + " | runs ahead of 0 (excellent, fair processed) |",
        "|---|---|" + "---|" * len(KINDS) + "---|",
    ]
    for w in windows:
        def mean(kind: str, key: str, w: str = w) -> float:
            return 100 * float(np.mean([r[w][kind][key] for r in reports.values()]))

        validation = 100 * float(np.mean([r[w]["validation_weighted_top1"] for r in reports.values()]))
        cells = [f"{mean(k, 'model_top1'):.1f} / {mean(k, 'model_top3'):.1f}, {mean(k, 'fused_top1'):.1f}" for k in KINDS]
        ahead = [sum(r[w][k]["model_top1"] > r[windows[0]][k]["model_top1"] for r in reports.values()) for k in ("excellent", "fair_processed")]
        lines.append(f"| {w} | {validation:.1f} | " + " | ".join(cells) + f" | {ahead[0]}, {ahead[1]} of {len(reports)} |")
    return "\n".join(lines)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--windows", default="0,9,13,17,21,25,31,41", help="windows in cm^-1, comma-separated; 0 first (the baseline)")


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary, options)
