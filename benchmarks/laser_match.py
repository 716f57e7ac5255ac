"""Multi-laser handling in the library search: should a spectrum be matched against references of its own laser?

For each grouped run: its training spectra as the library (as its bundle has it); each test spectrum (the test part's
RRUFF excellent spectra, the fair/poor files of its test specimens) ranked by the library alone, three ways: every
reference (the device's way); each mineral's best among references of the spectrum's laser line (within 10 nm),
falling back to all where the mineral has none; every reference with +0.05 correlation for the same laser. Top-1 as
the device ranks; the laser from the dataset and from the RRUFF file names.

    python benchmarks/laser_match.py RUN [RUN ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.ranking import rank
from trainer.export import reference_library
from trainer.field_set import FieldSet
from trainer.training import load_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_reports  # noqa: E402  (benchmarks/ is on the path when run as a script)

SAME_LASER_NM = 10.0
BONUS = 0.05


def run_report(run_dir: str, field: FieldSet, args: argparse.Namespace) -> dict[str, Any]:
    run = load_run(run_dir)
    dataset = run.load_dataset()
    library = reference_library(dataset, run.split.train)
    names = np.array(library.mineral_names)
    lasers = library.lasers[np.argsort(library.minerals, kind="stable")]  # in the correlations' order (by mineral)
    test = run.split.test
    rows = field.rows_of(dataset.specimen[test], run.classes)
    kinds = {"excellent": (dataset.X[test], dataset.mineral[test], dataset.laser_nm[test])}
    for quality in ("fair", "poor"):
        for kind in ("processed", "raw"):
            chosen = rows[(field.quality[rows] == quality) & (field.kind[rows] == kind)]
            file_lasers = np.array([float(Path(f).name.split("__")[3]) for f in field.file[chosen]])
            kinds[f"{quality}_{kind}"] = (field.X[chosen], field.mineral[chosen], file_lasers)
    report: dict[str, Any] = {}
    for name, (X, minerals, spectrum_lasers) in kinds.items():
        hits = {"all references": 0, "same laser first": 0, f"same laser +{BONUS}": 0}
        for x, mineral, laser in zip(X, minerals, spectrum_lasers):
            r = library.correlations(x)
            same = np.abs(lasers - laser) < SAME_LASER_NM
            every = library.best_per_mineral(r)
            own = library.best_per_mineral(np.where(same, r, -1.0))
            has_own = library.best_per_mineral(same.astype(np.float32)) > 0
            for way, best in zip(hits, (every, np.where(has_own, own, every), library.best_per_mineral(r + BONUS * same))):
                hits[way] += names[rank(best)[0]] == mineral
        report[name] = {"n": len(X), **{way: count / max(len(X), 1) for way, count in hits.items()}}
        print(f"{run_dir} {name} ({len(X)}): " + ", ".join(f"{way} {100 * v:.1f}" for way, v in report[name].items() if way != "n"), flush=True)
    return report


if __name__ == "__main__":
    run_reports.main(__doc__, run_report)
