"""Should the library's weight in the fusion fall with the spectrum's noise? Tried, not built.

On field spectra the fused answer trails the model with its embedding search (the correlation library matches
noisy spectra poorly), on excellent ones the library helps. The device could estimate each spectrum's noise (the
robust standard deviation of its point-to-point differences over the measured span, in units of the min-max
scaled intensity: about 0.002 for RRUFF's excellent spectra, 0.009 fair, 0.025 poor) and weigh the library by
``library_weight * exp(-decay * noise)``. For each grouped run: the model with its search (as the device gives it,
``trainer.embedding.keras_search``, with the bundle's input smoothing), the fusion as shipped (temperature and
library weight, fitted on validation spectra and their fair/poor files, ``trainer.calibration.fit_fusion``) and
the same fit with ``decay`` as a third parameter; both scored on the test part, kind by kind (top-1 / top-3) beside
the model alone. Keras float.

    python benchmarks/noise_fusion.py RUN [RUN ...] [--input-smoothing W[,W...]] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from edge.library import Calibration, Matcher, fused_logits
from edge.ranking import top_k_hits
from trainer import calibration
from trainer.embedding import keras_search
from trainer.field_set import FieldSet, validation_weights, validation_with_field

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

KINDS = ("excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw")
#: starting points of the decay (per unit of noise): the fit's surface has flat stretches
DECAY_STARTS = (0.0, 10.0, 100.0, 1000.0)


def noise_level(X: np.ndarray) -> np.ndarray:
    """(n,) each (n, GRID_SIZE) spectrum's noise: 1.4826 MAD of its point-to-point differences over the measured
    span (first to last non-zero point) / sqrt(2), in min-max scaled intensity; robust to the few steep band flanks."""
    out = np.zeros(len(X))
    for i, x in enumerate(X):
        measured = np.flatnonzero(x)
        if len(measured) < 3:
            continue
        d = np.diff(x[measured[0] : measured[-1] + 1].astype(np.float64))
        out[i] = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0)
    return out


def fused(P: np.ndarray, R: np.ndarray, noise: np.ndarray, temperature: float, weight: float, decay: float) -> np.ndarray:
    """The device's fused logits with the library weight scaled per spectrum by exp(-decay * noise)."""
    return fused_logits(P, R * np.exp(-decay * noise)[:, None], temperature, weight)


def fit_noise_fusion(P: np.ndarray, R: np.ndarray, y: np.ndarray, noise: np.ndarray, sample_weight: np.ndarray) -> tuple[float, float, float]:
    """(temperature, library_weight, decay) minimising the weighted mean negative log-likelihood, as fit_fusion does."""
    rows = np.arange(len(y))

    def nll(params: np.ndarray) -> float:
        inverse_t, weight, decay = params
        log_p = log_softmax(fused(P, R, noise, 1.0 / inverse_t, weight, decay), axis=1)[rows, y]
        return float(-np.sum(sample_weight * log_p) / np.sum(sample_weight))

    bounds = [(0.02, 50.0), (0.0, 500.0), (0.0, 1000.0)]
    fits = [minimize(nll, np.array([1.0, 1.0, start]), method="L-BFGS-B", bounds=bounds) for start in DECAY_STARTS]
    best = min(fits, key=lambda fit: fit.fun)
    return float(1.0 / best.x[0]), float(best.x[1]), float(best.x[2])


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    windows = [float(w) for w in args.input_smoothing.split(",")]
    g = run_reports.load_grouped(run_dir, field)
    run = g.run
    window = windows[args.runs.index(run_dir)] if len(windows) > 1 else windows[0]
    predict, _ = keras_search(run, g.dataset, g.model, field, smoothing_cm1=window)
    matcher = Matcher(run.classes, g.library, Calibration())
    rows = run.split.val
    X, y, joined = validation_with_field(g.dataset.X[rows], g.labels[rows], field, g.dataset.specimen[rows], run.classes)
    weights = validation_weights(len(y), joined)
    P, R, _ = calibration.features(matcher, predict(X), X)
    noise = noise_level(X)
    temperature, weight = calibration.fit_fusion(P, R, y, weights)
    fit = fit_noise_fusion(P, R, y, noise, weights)
    report: dict[str, Any] = {
        "input_smoothing_cm1": window,
        "shipped": {"temperature": temperature, "library_weight": weight},
        "noise_fit": dict(zip(("temperature", "library_weight", "decay"), fit)),
    }
    for kind in KINDS:
        Xt, yt = g.test_parts[kind]
        Pt, Rt, _ = calibration.features(matcher, predict(Xt), Xt)
        nt = noise_level(Xt)
        cell: dict[str, Any] = {"n": len(yt), "noise_median": float(np.median(nt))}
        for name, scores in (("model", Pt), ("shipped", fused(Pt, Rt, nt, temperature, weight, 0.0)), ("noise_fit", fused(Pt, Rt, nt, *fit))):
            cell[name] = {"top1": float(top_k_hits(yt, scores, 1).mean()), "top3": float(top_k_hits(yt, scores, 3).mean())}
        report[kind] = cell
    print(
        f"{run_dir}: library weight {weight:.2f} -> {fit[1]:.2f} x exp(-{fit[2]:.0f} noise); "
        + "; ".join(f"{k} {100 * report[k]['shipped']['top1']:.1f} -> {100 * report[k]['noise_fit']['top1']:.1f} (model {100 * report[k]['model']['top1']:.1f})" for k in KINDS),
        flush=True,
    )
    return report


def summary(reports: dict[str, dict[str, Any]]) -> str:
    lines = ["mean over runs, top-1 / top-3: model | shipped fusion | noise-scaled fusion; paired top-1 difference (runs ahead)"]
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
