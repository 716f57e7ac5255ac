"""Print docs/RESULTS.md's Table 3-style rows from `trainer repeat` and `trainer baseline` summaries.

Each argument is ``LABEL=PATH``: a ``summary.json`` written by ``trainer repeat`` (one row per
protocol that has runs) or by ``trainer baseline`` (one row per baseline and protocol). The rows
hold the mean ± sample std in percent of the paper's metrics and how many runs each row rests on,
so a row from fewer runs says so itself. With ``--field-degraded`` the rows hold top-1/3/5 on the
same test spectra degraded as in the field (each summary's ``field_degraded``; a row whose runs do
not all have those scores is left out rather than shown from fewer runs).

    python benchmarks/comparison_table.py "Dataset_2 fan2019 (CPU)=runs/table3-cpu-d2/fan2019/summary.json"
    python benchmarks/comparison_table.py --field-degraded "=runs/baselines-d2/summary.json"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("precision_weighted", "recall_weighted", "f1_weighted", "roc_auc", "pr_auc", "top1", "top3", "top5")
HEADER = "| model | protocol | runs | P_w | R_w | F1_w | ROC AUC | PR AUC | top-1 | top-3 | top-5 |"
FIELD_COLUMNS = ("top1", "top3", "top5")
FIELD_HEADER = "| model | protocol | runs | top-1 | top-3 | top-5 |"


def cell(stats: dict[str, float], runs: int) -> str:
    mean = f"{100 * stats['mean']:.2f}"
    return mean if runs < 2 else f"{mean} ± {100 * stats['std']:.2f}"


def rows(label: str, summary: dict, field_degraded: bool = False) -> list[str]:
    """One markdown row per (model, protocol) of a repeat or baseline summary: test metrics, or field-degraded top-k."""
    columns, section = (FIELD_COLUMNS, "field_degraded") if field_degraded else (COLUMNS, "summary")
    out = []
    for key, stats in summary[section].items():
        name, baseline, protocol = key.removesuffix(")").partition(" (")
        if not baseline:  # trainer repeat: keyed by protocol, {"results": {protocol: [runs]}}
            model, protocol, runs = label, key, len(summary["results"][key])
        else:  # trainer baseline: keyed by "name (protocol)", {"n": splits}; newer ones list each split's results
            model, runs = f"{label} {name}".strip(), len(summary["results"][key]) if "results" in summary else summary["n"]
        out.append(f"| {model} | {protocol} | {runs} | " + " | ".join(cell(stats[m], runs) for m in columns) + " |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--field-degraded", action="store_true", help="top-1/3/5 on the test spectra degraded as in the field")
    args = parser.parse_args()
    header = FIELD_HEADER if args.field_degraded else HEADER
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for item in args.summaries:
        label, _, path = item.rpartition("=")
        try:
            summary = json.loads(Path(path).read_text())
            if args.field_degraded and "field_degraded" not in summary:
                print(f"{path}: no field-degraded scores (an older summary: `trainer repeat --summary-only` or `trainer baseline` rebuilds it)", file=sys.stderr)
                return 2
            lines += rows(label, summary, args.field_degraded)
        except (OSError, ValueError, KeyError) as exc:
            print(f"{path}: not a trainer repeat or baseline summary ({exc})", file=sys.stderr)
            return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
