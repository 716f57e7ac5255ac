"""``trainer repeat``: N independent splits per protocol, each trained and evaluated; mean ± std.

The paper reports repeated random splits (Fig. 6); the grouped split runs beside it with the
same seeds, so the two protocols are compared on equal footing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from trainer import plots
from trainer.evaluation import evaluate
from trainer.metrics import METRIC_NAMES
from trainer.training import FitConfig, fit

SUMMARY = "summary.json"


def summarise(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation of every metric, per protocol."""
    return {
        protocol: {
            name: {
                "mean": float(np.mean([r[name] for r in runs])),
                "std": float(np.std([r[name] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
            }
            for name in METRIC_NAMES
        }
        for protocol, runs in results.items()
    }


def repeat(
    dataset_path: str | Path,
    out_dir: str | Path,
    n: int,
    base: FitConfig,
    protocols: tuple[str, ...] = ("random", "grouped"),
    quiet: bool = False,
) -> dict:
    """Train and evaluate ``n`` runs per protocol under ``out_dir``; write and return the summary."""
    out_dir = Path(out_dir)
    results: dict[str, list[dict[str, float]]] = {p: [] for p in protocols}
    runs: dict[str, list[str]] = {p: [] for p in protocols}
    for protocol in protocols:
        for i in range(n):
            config = replace(base, protocol=protocol, seed=base.seed + i)
            run_dir = fit(dataset_path, out_dir / f"{protocol}-seed{config.seed}", config, quiet=quiet)
            results[protocol].append(evaluate(run_dir)["test"])
            runs[protocol].append(str(run_dir))
    summary = {"n": n, "fit": asdict(base), "runs": runs, "results": results, "summary": summarise(results)}
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
    plots.repeat_boxplot(
        results, ("accuracy", "f1_weighted", "top3"), out_dir / "repeat_boxplot.png", f"{n} repeats per protocol"
    )
    return summary
