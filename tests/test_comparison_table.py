"""RESULTS.md's comparison rows say how many runs each rests on, and show a spread only where there is one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from comparison_table import COLUMNS, rows  # noqa: E402


def stats(mean: float, std: float) -> dict[str, dict[str, float]]:
    return {m: {"mean": mean, "std": std} for m in COLUMNS}


def test_repeat_rows_count_runs_and_drop_the_spread_of_one_run():
    summary = {
        "results": {"random": [{}, {}], "grouped": [{}]},
        "summary": {"random": stats(0.9, 0.01), "grouped": stats(0.8, 0.0)},
    }
    random, grouped = rows("fan2019 (CPU)", summary)
    assert random.startswith("| fan2019 (CPU) | random | 2 | 90.00 ± 1.00 |")
    assert grouped.startswith("| fan2019 (CPU) | grouped | 1 | 80.00 |") and "±" not in grouped


def test_baseline_rows_split_name_and_protocol():
    summary = {"n": 5, "summary": {"knn1 (grouped)": stats(0.815, 0.016)}}
    (row,) = rows("", summary)
    assert row.startswith("| knn1 | grouped | 5 | 81.50 ± 1.60 |") and row.count("|") == 12
