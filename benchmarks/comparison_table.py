"""Print docs/RESULTS.md's Table 3-style rows from `trainer repeat` and `trainer baseline` summaries.

Each argument is ``LABEL=PATH``: a ``summary.json`` written by ``trainer repeat`` (one row per
protocol that has runs) or by ``trainer baseline`` (one row per baseline and protocol). The rows
hold the mean ± sample std in percent of the paper's metrics and how many runs each row rests on,
so a row from fewer runs says so itself.

    python benchmarks/comparison_table.py "Dataset_2 fan2019 (CPU)=runs/table3-cpu-d2/fan2019/summary.json"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("precision_weighted", "recall_weighted", "f1_weighted", "roc_auc", "pr_auc", "top1", "top3", "top5")
HEADER = "| model | protocol | runs | P_w | R_w | F1_w | ROC AUC | PR AUC | top-1 | top-3 | top-5 |"


def cell(stats: dict[str, float], runs: int) -> str:
    mean = f"{100 * stats['mean']:.2f}"
    return mean if runs < 2 else f"{mean} ± {100 * stats['std']:.2f}"


def rows(label: str, summary: dict) -> list[str]:
    """One markdown row per (model, protocol) of a repeat or baseline summary."""
    out = []
    if "results" in summary:  # trainer repeat: {"summary": {protocol: {metric: stats}}, "results": {protocol: [runs]}}
        for protocol, stats in summary["summary"].items():
            runs = len(summary["results"][protocol])
            out.append(f"| {label} | {protocol} | {runs} | " + " | ".join(cell(stats[m], runs) for m in COLUMNS) + " |")
    else:  # trainer baseline: {"n": runs, "summary": {"name (protocol)": {metric: stats}}}
        for key, stats in summary["summary"].items():
            name, protocol = key.rstrip(")").split(" (")
            model = f"{label} {name}".strip()
            out.append(f"| {model} | {protocol} | {summary['n']} | " + " | ".join(cell(stats[m], summary["n"]) for m in COLUMNS) + " |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+", metavar="LABEL=PATH")
    args = parser.parse_args()
    lines = [HEADER, "|" + "---|" * 11]
    for item in args.summaries:
        label, _, path = item.rpartition("=")
        try:
            lines += rows(label, json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError) as exc:
            print(f"{path}: not a trainer repeat or baseline summary ({exc})", file=sys.stderr)
            return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
