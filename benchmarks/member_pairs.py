"""Two independent members averaged against each alone, split by split, from ``fusion_ranking.py`` reports.

    python benchmarks/fusion_ranking.py A B A+B --input-smoothing W --out SPLIT.json   # once per grouped split
    python benchmarks/member_pairs.py SPLIT.json [SPLIT.json ...]

Each report holds three entries of one split: a member ``A`` (the first entry), a member ``B`` (the second) and
their average ``A+B`` (each member with its own embedding search, the device's per-member step, then the fusion
fitted on the pair's validation). Printed per kind of test spectra, mean over the splits: A, B, the members' mean,
the pair, and the pair's difference to the members' mean and to A, split by split; for the model (with its
search) and the answer fused with the library (``likelihood``: as the device fuses), top-1 and top-3.
"""

from __future__ import annotations

import json
import sys

import numpy as np

KINDS = ("excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw")


def members(report: dict) -> tuple[str, str, str]:
    """(A, B, A+B): the report's first two single entries and their pair."""
    single = [entry for entry in report if "+" not in entry]
    pair = [entry for entry in report if "+" in entry]
    if len(single) != 2 or len(pair) != 1 or pair[0] != "+".join(single):
        raise SystemExit(f"member_pairs.py: a report needs entries A, B and A+B, not {list(report)}")
    return single[0], single[1], pair[0]


def table(reports: list[dict], fusion: str, metric: str) -> str:
    lines = [f"{fusion} {metric}: A | B | members' mean | pair | pair - members' mean (by split) | pair - A (by split)"]
    for kind in KINDS:
        a, b, pair = (np.array([100 * r[m][kind][fusion][metric] for r, m in zip(reports, names)]) for names in zip(*map(members, reports)))
        mean = (a + b) / 2
        lines.append(
            f"  {kind:15s} {a.mean():5.1f} | {b.mean():5.1f} | {mean.mean():5.1f} | {pair.mean():5.1f} | "
            + " ".join(f"{d:+.1f}" for d in pair - mean) + " | " + " ".join(f"{d:+.1f}" for d in pair - a)
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    reports = []
    for path in sys.argv[1:]:
        with open(path) as handle:
            reports.append(json.load(handle))
    for report, path in zip(reports, sys.argv[1:]):
        print(f"{path}: A = {members(report)[0]}, B = {members(report)[1]}")
    for fusion in ("model", "likelihood"):
        for metric in ("top1", "top3"):
            print(table(reports, fusion, metric))


if __name__ == "__main__":
    main()
