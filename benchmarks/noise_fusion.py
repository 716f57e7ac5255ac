"""The library's weight falling with the spectrum's noise, against one weight for all spectra.

On field spectra the fused answer trailed the model with its embedding search (the correlation library matches
noisy spectra poorly), on excellent ones the library helps. The fusion now weighs the library by
``library_weight * exp(-decay * noise)`` (``edge.library.Calibration``; the noise is
``ramancore.preprocessing.noise_level``: about 0.002 for RRUFF's excellent spectra, 0.009 fair, 0.025 poor). For
each grouped run: the model with its search (as the device gives it, ``trainer.embedding.keras_search``, with the
bundle's input smoothing), the fusion fitted on validation spectra and their fair/poor files
(``trainer.calibration.fit_fusion``) with one weight (decay 0, as before) and with the decay fitted beside it; both
scored on the test part, kind by kind (top-1 / top-3), beside the model alone. Keras float.

    python benchmarks/noise_fusion.py RUN [RUN ...] [--input-smoothing W[,W...]] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.library import Calibration
from edge.ranking import top_k_hits
from trainer import calibration
from trainer.field_set import FieldSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

KINDS = ("excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw")


def fusion_of(fit: tuple[float, float, float]) -> Calibration:
    """The calibration of a (temperature, library_weight, library_noise_decay) fit."""
    temperature, weight, decay = fit
    return Calibration(temperature=temperature, library_weight=weight, library_noise_decay=decay)


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    windows = [float(w) for w in args.input_smoothing.split(",")]
    window = windows[args.runs.index(run_dir)] if len(windows) > 1 else windows[0]
    (P, R, y, noise), weights, test_parts = run_reports.fusion_features(run_dir, field, window)
    one = fusion_of(calibration.fit_fusion(P, R, y, weights))
    falling = fusion_of(calibration.fit_fusion(P, R, y, weights, noise))
    report: dict[str, Any] = {
        "input_smoothing_cm1": window,
        "shipped": {"temperature": one.temperature, "library_weight": one.library_weight},
        "noise_fit": {"temperature": falling.temperature, "library_weight": falling.library_weight, "decay": falling.library_noise_decay},
    }
    for kind in KINDS:
        Pt, Rt, yt, nt = test_parts[kind]
        cell: dict[str, Any] = {"n": len(yt), "noise_median": float(np.median(nt))}
        for name, scores in (("model", Pt), ("shipped", one.fused_logits(Pt, Rt, nt)), ("noise_fit", falling.fused_logits(Pt, Rt, nt))):
            cell[name] = {"top1": float(top_k_hits(yt, scores, 1).mean()), "top3": float(top_k_hits(yt, scores, 3).mean())}
        report[kind] = cell
    print(
        f"{run_dir}: library weight {one.library_weight:.2f} -> {falling.library_weight:.2f} x exp(-{falling.library_noise_decay:.0f} noise); "
        + "; ".join(f"{k} {100 * report[k]['shipped']['top1']:.1f} -> {100 * report[k]['noise_fit']['top1']:.1f} (model {100 * report[k]['model']['top1']:.1f})" for k in KINDS),
        flush=True,
    )
    return report


def summary(reports: dict[str, dict[str, Any]]) -> str:
    lines = ["mean over runs, top-1 / top-3: model | one library weight | weight falling with noise; paired top-1 difference (runs ahead)"]
    for kind in KINDS:
        cells = [r[kind] for r in reports.values()]
        mean = {name: (100 * np.mean([c[name]["top1"] for c in cells]), 100 * np.mean([c[name]["top3"] for c in cells])) for name in ("model", "shipped", "noise_fit")}
        diff = 100 * np.array([c["noise_fit"]["top1"] - c["shipped"]["top1"] for c in cells])
        lines.append(
            f"  {kind:15s} " + " | ".join(f"{mean[n][0]:.1f} / {mean[n][1]:.1f}" for n in ("model", "shipped", "noise_fit"))
            + f"; {diff.mean():+.2f} ± {diff.std(ddof=1) if len(diff) > 1 else 0.0:.2f} ({int((diff > 0).sum())} of {len(diff)})"
        )
    return "\n".join(lines)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-smoothing", default="21", help="the bundle's model input smoothing, cm^-1: one, or one per run")


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary, options)
