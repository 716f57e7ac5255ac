"""``trainer ablation``: the physical augmentation with each perturbation switched off in turn.

One run with every perturbation, one without any, and one per perturbation without it, all on
the same split and seed (default: grouped by specimen, the protocol models are chosen on).
Each run is a normal run folder under ``out``; the table reports validation accuracy (what a
choice may use) beside test and field-degraded test accuracy (what is reported), so a
perturbation that helps only the field figure shows as such. Finished runs are reused.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from trainer.augment import Augmentation
from trainer.evaluation import METRICS, evaluate
from trainer.metrics import FIELD
from trainer.training import CONFIG, FitConfig, fit

SUMMARY = "ablation.json"


def variants() -> dict[str, str]:
    """Row name -> ``--augment`` value: all on, all off, and each perturbation off in turn."""
    return {"all": "physical", "none": "none", **{f"no {name}": f"physical-no-{name}" for name in Augmentation.NAMES}}


def ablation(dataset_path: str | Path, out_dir: str | Path, base: FitConfig, quiet: bool = False) -> dict[str, dict]:
    """Train and evaluate every variant; write and return {row: scores}."""
    out_dir = Path(out_dir)
    rows: dict[str, dict] = {}
    for row, augment in variants().items():
        run_dir = out_dir / augment
        if not ((run_dir / CONFIG).is_file() and (run_dir / METRICS).is_file()):
            fit(dataset_path, run_dir, replace(base, augment=augment), quiet=quiet)
            evaluate(run_dir)
        record = json.loads((run_dir / METRICS).read_text())
        rows[row] = {
            "augment": augment,
            "best_val_accuracy": record["best_val_accuracy"],
            "test_top1": record["test"]["top1"],
            "test_top3": record["test"]["top3"],
            "field_top1": record[FIELD]["top1"],
            "run": str(run_dir),
        }
    (out_dir / SUMMARY).write_text(json.dumps(rows, indent=2))
    return rows
