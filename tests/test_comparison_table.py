"""RESULTS.md's comparison rows say how many runs each rests on, and show a spread only where there is one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from comparison_table import COLUMNS, main, rows  # noqa: E402


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
    newer = {**summary, "results": {"knn1 (grouped)": [{}] * 4}}  # each split's results listed: the row counts them
    (row,) = rows("Dataset_1", newer)
    assert row.startswith("| Dataset_1 knn1 | grouped | 4 | 81.50 ± 1.60 |")


def test_field_degraded_rows_come_from_each_summarys_field_scores(tmp_path, monkeypatch, capsys):
    repeat_summary = {
        "results": {"random": [{}, {}], "grouped": [{}, {}]},
        "summary": {"random": stats(0.9, 0.01), "grouped": stats(0.8, 0.02)},
        "field_degraded": {"grouped": stats(0.62, 0.04)},  # the random runs lack field scores: no row
    }
    baseline_summary = {"n": 5, "summary": {"correlation (grouped)": stats(0.815, 0.015)}, "field_degraded": {"correlation (grouped)": stats(0.746, 0.013)}}
    (tmp_path / "cnn.json").write_text(json.dumps(repeat_summary))
    (tmp_path / "base.json").write_text(json.dumps(baseline_summary))
    monkeypatch.setattr(sys, "argv", ["comparison_table.py", "--field-degraded", f"sang2021={tmp_path / 'cnn.json'}", f"={tmp_path / 'base.json'}"])
    assert main() == 0
    header, rule, *lines = capsys.readouterr().out.splitlines()
    assert header == "| model | protocol | runs | top-1 | top-3 | top-5 |" and rule == "|---|---|---|---|---|---|"
    assert lines == ["| sang2021 | grouped | 2 | 62.00 ± 4.00 | 62.00 ± 4.00 | 62.00 ± 4.00 |", "| correlation | grouped | 5 | 74.60 ± 1.30 | 74.60 ± 1.30 | 74.60 ± 1.30 |"]


def test_a_summary_without_field_scores_is_refused_by_name(tmp_path, monkeypatch, capsys):
    (tmp_path / "old.json").write_text(json.dumps({"n": 5, "summary": {"knn1 (grouped)": stats(0.8, 0.01)}}))
    monkeypatch.setattr(sys, "argv", ["comparison_table.py", "--field-degraded", f"={tmp_path / 'old.json'}"])
    assert main() == 2
    assert "old.json: no field-degraded scores" in capsys.readouterr().err
