"""The shipped embedding search, on and off, on new specimens: what it adds to the device's answers.

For each grouped run (a network with an ``embedding_dense`` layer): the model's probabilities with its embedding
search fused in, as the device fuses them (``trainer.embedding.keras_search``: the run's training spectra as
references, the weight fitted on its validation spectra and their fair/poor files; ``edge.embedding_search``), and
without it; each then fused with the library as the device fuses (``validation_fusion`` fitted for each, the
device's ``Matcher``). Scored on the run's test part kind by kind: RRUFF excellent spectra and the fair/poor files
of its test specimens, processed and RAW; top-1 / top-3 ranked as the device ranks. Keras float (the int8 bundle's
figures for one split are in its manifest).

    python benchmarks/embedding_fusion.py RUN [RUN ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.library import Matcher
from trainer.calibration import score_answers
from trainer.embedding import KINDS, keras_search
from trainer.field_set import FieldSet, validation_fusion

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    g = run_reports.load_grouped(run_dir, field)
    run, dataset, model, library, parts = g.run, g.dataset, g.model, g.library, g.test_parts
    searched, search = keras_search(run, dataset, model, field)
    if not search:
        raise SystemExit(f"{run_dir}: the network has no embedding layer to search")
    plain = lambda X: model.predict(X[:, :, None], batch_size=256, verbose=0)  # noqa: E731
    report: dict[str, Any] = {"embedding_search": search}
    for name, predict in (("without", plain), ("with", searched)):
        matcher = Matcher(run.classes, library, validation_fusion(run, dataset, library, field, predict))
        for kind, (X, y) in parts.items():
            answers = score_answers(matcher, predict(X), X, y)
            report.setdefault(kind, {"n": len(y)})[name] = {
                "model_top1": answers["model"]["top1"], "model_top3": answers["model"]["top3"],
                "fused_top1": answers["fused"]["top1"], "fused_top3": answers["fused"]["top3"],
            }
        print(f"{run_dir} {name}: " + ", ".join(f"{k} {100 * report[k][name]['fused_top1']:.1f}" for k in KINDS), flush=True)
    return report


def summary(reports: dict[str, dict[str, Any]]) -> str:
    """Fused top-1 / top-3 without and with the search, mean over runs, and the paired top-1 difference."""
    lines = ["| test spectra of new specimens | fused without search | fused with search | paired top-1 difference (runs ahead) |", "|---|---|---|---|"]
    for kind in KINDS:
        cells = []
        for name in ("without", "with"):
            t1 = np.mean([r[kind][name]["fused_top1"] for r in reports.values()])
            t3 = np.mean([r[kind][name]["fused_top3"] for r in reports.values()])
            cells.append(f"{100 * t1:.1f} / {100 * t3:.1f}")
        diff = np.array([r[kind]["with"]["fused_top1"] - r[kind]["without"]["fused_top1"] for r in reports.values()]) * 100
        spread = f" ± {diff.std(ddof=1):.2f}" if len(diff) > 1 else ""
        cells.append(f"{diff.mean():+.2f}{spread} ({int((diff > 0).sum())} of {len(diff)})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_reports.main(__doc__, run_report, summary)
