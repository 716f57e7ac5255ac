"""Can another fusion, or an average of fine-tunes, rank field spectra better than the likelihood fit? Tried, not kept.

The shipped fusion (``trainer.calibration.fit_fusion``: temperature, library weight and its noise decay fitted for
the fused softmax's likelihood on validation spectra and their fair/poor files) trails the model with its
embedding search on fair RAW and poor files of new specimens. Only the library weight relative to the temperature
and the decay move the ranking, so this benchmark fits those two for ranking instead, and tries fixed decays, then
scores each on the test part, kind by kind, beside the model alone:

- ``likelihood``: as shipped;
- ``ranking``: the (weight x temperature, decay) pair of a grid with the best weighted validation top-1 (the
  smallest weight and decay among ties: the model alone wins a tie);
- ``decay D``: the decay fixed at D, temperature and weight fitted for likelihood (D = 1000: the library off from a
  noise of about 0.005, between RRUFF's excellent spectra and fair ones).

An entry ``RUN+RUN...`` averages its members' probabilities (each with its own search, the device's per-member
step) before the fusion: runs of one split (fine-tunes of one 30-epoch run, or independent members: ``--init-seed``).
A run named by several entries is computed once. Keras float; each entry's own validation.
Per kind: top-1 / top-3 and the files the fused answer gained and lost against the model.

    python benchmarks/fusion_ranking.py ENTRY [ENTRY ...] [--input-smoothing W[,W...]] [--out FILE.json]
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
#: The ranking fit's grid: library weight x temperature (0: the model alone) and noise decay (per unit of noise_level).
WEIGHTS = np.concatenate([[0.0], np.geomspace(0.05, 50.0, 40)])
DECAYS = np.concatenate([[0.0], np.geomspace(10.0, 1000.0, 15)])
FIXED_DECAYS = (0.0, 200.0, 1000.0)

Features = run_reports.FusionFeatures  # P (n, m), R (n, m), y (n,), noise (n,)


def averaged(members: list[Features]) -> Features:
    """The members' candidate probabilities averaged; the library's correlations are one split's, alike for all."""
    P, R, y, noise = members[0]
    for _, R_i, y_i, _ in members[1:]:
        if not (np.array_equal(R_i, R) and np.array_equal(y_i, y)):
            raise SystemExit("fusion_ranking.py: an entry's members must be runs of one split")
    return np.mean([m[0] for m in members], axis=0), R, y, noise


def ranking_scores(features: Features, weight: float, decay: float) -> np.ndarray:
    """The fused scores' ranking: ``log p + weight * exp(-decay * noise) * r`` (the temperature folded into the weight)."""
    P, R, _, noise = features
    return Calibration(temperature=1.0, library_weight=weight, library_noise_decay=decay).fused_logits(P, R, noise)


def fit_for_ranking(features: Features, weights: np.ndarray) -> tuple[float, float]:
    """The grid's (weight, decay) with the best weighted top-1; the first of ties, in ascending weight then decay."""
    y = features[2]
    best, choice = -1.0, (0.0, 0.0)
    for weight in WEIGHTS:
        for decay in DECAYS:
            score = float(np.sum(weights * top_k_hits(y, ranking_scores(features, weight, decay), 1)) / np.sum(weights))
            if score > best + 1e-12:
                best, choice = score, (float(weight), float(decay))
    return choice


def fit_fixed_decay(features: Features, weights: np.ndarray, decay: float) -> tuple[float, float]:
    """Temperature and weight fitted for likelihood with the decay held at ``decay``, as a ranking's (weight x T, decay)."""
    P, R, y, noise = features
    faded = R * np.exp(-decay * noise)[:, None]  # the decay folded into the correlations: a one-weight fit on them
    temperature, weight, _ = calibration.fit_fusion(P, faded, y, weights)
    return weight * temperature, decay


_computed: dict[tuple[str, float], tuple[Features, np.ndarray, dict[str, Features]]] = {}


def _features(run_dir: str, field: FieldSet, window: float) -> tuple[Features, np.ndarray, dict[str, Features]]:
    """A run's fusion inputs, computed once however many entries name it (a member alone and in a pair)."""
    if (run_dir, window) not in _computed:
        _computed[run_dir, window] = run_reports.fusion_features(run_dir, field, window)
    return _computed[run_dir, window]


def run_report(entry: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    windows = [float(w) for w in args.input_smoothing.split(",")]
    window = windows[args.runs.index(entry)] if len(windows) > 1 else windows[0]
    parts = [_features(run_dir, field, window) for run_dir in entry.split("+")]
    validation = averaged([p[0] for p in parts])
    weights = parts[0][1]
    P, R, y, noise = validation
    temperature, weight, decay = calibration.fit_fusion(P, R, y, weights, noise)
    fusions = {"model": (0.0, 0.0), "likelihood": (weight * temperature, decay), "ranking": fit_for_ranking(validation, weights)}
    fusions.update({f"decay {d:g}": fit_fixed_decay(validation, weights, d) for d in FIXED_DECAYS})
    report: dict[str, Any] = {"input_smoothing_cm1": window, "fusions": {k: {"weight_x_temperature": w, "decay": d} for k, (w, d) in fusions.items()}}
    for kind in KINDS:
        features = averaged([p[2][kind] for p in parts])
        model_hits = top_k_hits(features[2], ranking_scores(features, 0.0, 0.0), 1)
        cell: dict[str, Any] = {"n": len(features[2])}
        for name, (w, d) in fusions.items():
            scores = ranking_scores(features, w, d)
            hits = top_k_hits(features[2], scores, 1)
            cell[name] = {
                "top1": float(hits.mean()), "top3": float(top_k_hits(features[2], scores, 3).mean()),
                "gained": int((hits & ~model_hits).sum()), "lost": int((model_hits & ~hits).sum()),
            }
        report[kind] = cell
    print(f"{entry}: " + "; ".join(f"{name} x{w:.2f} decay {d:.0f}" for name, (w, d) in fusions.items()), flush=True)
    return report


def summary(reports: dict[str, dict[str, Any]]) -> str:
    names = list(next(iter(reports.values()))["fusions"])
    lines = ["mean over entries, top-1 / top-3 (files gained - lost against the model, summed)", "  " + " " * 15 + " | ".join(f"{n:>17s}" for n in names)]
    for kind in KINDS:
        cells = [r[kind] for r in reports.values()]
        lines.append(f"  {kind:15s}" + " | ".join(
            f"{100 * np.mean([c[n]['top1'] for c in cells]):5.1f} / {100 * np.mean([c[n]['top3'] for c in cells]):4.1f} ({sum(c[n]['gained'] - c[n]['lost'] for c in cells):+3d})"
            for n in names
        ))
    return "\n".join(lines)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-smoothing", default="21", help="the bundle's model input smoothing, cm^-1: one, or one per entry")


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary, options)
