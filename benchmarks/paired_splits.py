"""Compare two methods split by split on the same test spectra: the paired difference of a metric.

On repeated splits the spread between splits is mostly the splits' own (a hard grouped split
lowers every method together), so whether A beats B by more than chance is read from the
differences on each split, not from two means and their spreads. Each side is either

- a folder of ``trainer repeat`` run folders (``{arch}-{protocol}-seed{N}``, each with its
  ``metrics.json`` and ``split.npz``), or
- a ``trainer baseline`` output folder and a baseline name, ``DIR:NAME``
  (``DIR/{protocol}-seed{N}/NAME.json``, which lists its test rows).

Splits are paired by protocol and seed, and only on identical test rows: a pair whose test rows
differ is refused, naming it. ``--field-degraded`` compares the scores on the same test spectra
degraded as in the field (``test_field_degraded``: top1, top3 or top5), which CNN runs and
baselines both draw from :func:`trainer.augment.field_degrade` with the split's seed. Prints,
per protocol, each split's values and difference (percent) and the mean ± sample std of the
differences, with how many splits A wins.

    python benchmarks/paired_splits.py runs/table3-gpu-d2/sang2021 runs/baselines-d2:correlation --metric top1
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

SPLIT_NAME = re.compile(r"(?:^|-)(random|grouped)-seed(\d+)$")

#: (protocol, seed) -> (metric value, sorted test rows)
Scores = dict[tuple[str, int], tuple[float, np.ndarray]]


def repeat_scores(folder: Path, metric: str, scores_key: str = "test") -> Scores:
    """The finished ``trainer repeat`` runs under ``folder``."""
    scores: Scores = {}
    for run in sorted(folder.iterdir()):
        match = SPLIT_NAME.search(run.name)
        if not (match and (run / "metrics.json").is_file() and (run / "split.npz").is_file()):
            continue
        value = json.loads((run / "metrics.json").read_text())[scores_key][metric]
        with np.load(run / "split.npz") as split:
            scores[(match[1], int(match[2]))] = (float(value), np.sort(split["test"]))
    return scores


def baseline_scores(folder: Path, name: str, metric: str, scores_key: str = "test") -> Scores:
    """Baseline ``name``'s results under a ``trainer baseline`` output folder."""
    scores: Scores = {}
    for result in sorted(folder.glob(f"*-seed*/{name}.json")):
        match = SPLIT_NAME.search(result.parent.name)
        if match:
            record = json.loads(result.read_text())
            scores[(match[1], int(match[2]))] = (float(record[scores_key][metric]), np.sort(np.asarray(record["test_rows"])))
    return scores


def load(side: str, metric: str, scores_key: str = "test") -> Scores:
    """``side``'s scores: ``DIR:NAME`` is a baseline, a plain folder holds repeat runs."""
    folder, _, name = side.partition(":")
    return baseline_scores(Path(folder), name, metric, scores_key) if name else repeat_scores(Path(folder), metric, scores_key)


def paired_rows(a: Scores, b: Scores, label_a: str, label_b: str) -> list[str]:
    """Markdown rows, one per common split, and a summary row per protocol; ValueError on unpaired test rows."""
    common = sorted(set(a) & set(b), key=lambda key: (key[0] != "random", key[1]))
    if not common:
        raise ValueError("no split (protocol, seed) holds results on both sides")
    lines = [f"| protocol | seed | {label_a} | {label_b} | difference |", "|---|---|---|---|---|"]
    for protocol in dict.fromkeys(p for p, _ in common):
        differences = []
        for key in (k for k in common if k[0] == protocol):
            (value_a, rows_a), (value_b, rows_b) = a[key], b[key]
            if not np.array_equal(rows_a, rows_b):
                raise ValueError(f"{protocol} seed {key[1]}: the two sides were tested on different spectra; not paired")
            differences.append(100 * (value_a - value_b))
            lines.append(f"| {protocol} | {key[1]} | {100 * value_a:.2f} | {100 * value_b:.2f} | {differences[-1]:+.2f} |")
        spread = f" ± {np.std(differences, ddof=1):.2f}" if len(differences) > 1 else ""
        wins = sum(d > 0 for d in differences)
        lines.append(f"| {protocol} | mean of {len(differences)} | | | **{np.mean(differences):+.2f}{spread}** ({label_a} ahead on {wins}) |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", metavar="A", help="folder of repeat runs, or BASELINE_DIR:NAME")
    parser.add_argument("b", metavar="B", help="folder of repeat runs, or BASELINE_DIR:NAME")
    parser.add_argument("--metric", default="top1", help="a test metric of both sides (default: top1)")
    parser.add_argument("--field-degraded", action="store_true", help="on the field-degraded test spectra (top1, top3, top5)")
    args = parser.parse_args()
    key = "test_field_degraded" if args.field_degraded else "test"
    try:
        lines = paired_rows(load(args.a, args.metric, key), load(args.b, args.metric, key), args.a, args.b)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{args.a} against {args.b}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
