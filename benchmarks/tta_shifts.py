"""Test-time augmentation by axis shifts, on grouped-fair: does averaging the model over shifted copies of a
spectrum help on new specimens? Model alone (Keras float), each grouped run's test part: RRUFF excellent spectra and
the fair/poor files of its test specimens (processed and RAW), top-1 / top-3 ranked as the device ranks.

Variants: the spectrum as it is; the mean of the probabilities over shifts of -2, 0, +2 cm^-1 (``tta3_mean``); over
-4 .. +4 in 2 cm^-1 steps (``tta5_mean``); the sum of the log-probabilities over those five (``tta5_logmean``).
A shift moves the whole preprocessed vector, zeros coming in at its end (what a calibration offset does).

    python benchmarks/tta_shifts.py RUN [RUN ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trainer.field_set import FieldSet, labelled_parts
from trainer.metrics import top1_top3
from trainer.training import load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

SHIFTS = (-4, -2, 0, 2, 4)


def shifted(X: np.ndarray, shift: int) -> np.ndarray:
    out = np.roll(X, shift, axis=1)
    if shift > 0:
        out[:, :shift] = 0
    elif shift < 0:
        out[:, shift:] = 0
    return out


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    model = run.build_trained_model()
    test = run.split.test
    parts = labelled_parts(field, dataset.X[test], dataset.labels(run.classes)[test], dataset.specimen[test], run.classes)
    report: dict[str, Any] = {}
    for name, (X, y) in parts.items():
        p = {s: model.predict(shifted(X, s)[:, :, None], batch_size=256, verbose=0) for s in SHIFTS}
        report[name] = {
            "n": len(y),
            "plain": top1_top3(y, p[0]),
            "tta3_mean": top1_top3(y, (p[-2] + p[0] + p[2]) / 3),
            "tta5_mean": top1_top3(y, sum(p.values()) / len(SHIFTS)),
            "tta5_logmean": top1_top3(y, sum(np.log(np.maximum(v, 1e-7)) for v in p.values())),
        }
    return report


def summary(report: dict[str, dict[str, Any]]) -> str:
    names = list(next(iter(report.values())))
    lines = ["| variant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for variant in ("tta3_mean", "tta5_mean", "tta5_logmean"):
        cells = []
        for name in names:
            diffs = [100 * (report[r][name][variant][0] - report[r][name]["plain"][0]) for r in report]
            cells.append(f"{np.mean(diffs):+.2f} ± {np.std(diffs):.2f}")
        lines.append(f"| {variant} (top-1 vs plain, paired) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary)
