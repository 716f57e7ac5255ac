"""Paired split comparisons pair by protocol and seed, and refuse splits tested on different spectra."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paired_splits import load, paired_rows  # noqa: E402


def repeat_run(root: Path, name: str, top1: float, test: list[int]) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"test": {"top1": top1}, "test_field_degraded": {"top1": top1 / 2}}))
    np.savez(run / "split.npz", train=np.arange(3), val=np.arange(0), test=np.array(test))


def baseline_result(root: Path, split: str, top1: float, test: list[int]) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / split / "correlation.json").write_text(json.dumps({"test": {"top1": top1}, "test_field_degraded": {"top1": top1 / 4}, "test_rows": test}))


def test_differences_are_paired_by_protocol_and_seed(tmp_path):
    repeat_run(tmp_path / "cnn", "sang2021-grouped-seed0", 0.86, [5, 6, 7])
    repeat_run(tmp_path / "cnn", "sang2021-grouped-seed1", 0.80, [1, 2])
    repeat_run(tmp_path / "cnn", "sang2021-random-seed0", 0.91, [0, 9])
    baseline_result(tmp_path / "base", "grouped-seed1", 0.83, [2, 1])  # same rows, another order
    baseline_result(tmp_path / "base", "grouped-seed0", 0.82, [7, 6, 5])
    lines = paired_rows(load(str(tmp_path / "cnn"), "top1"), load(f"{tmp_path / 'base'}:correlation", "top1"), "A", "B")
    assert lines[2] == "| grouped | 0 | 86.00 | 82.00 | +4.00 |"
    assert lines[3] == "| grouped | 1 | 80.00 | 83.00 | -3.00 |"
    assert lines[4] == f"| grouped | mean of 2 | | | **+0.50 ± {np.std([4, -3], ddof=1):.2f}** (A ahead on 1) |"
    assert len(lines) == 5  # the random run has no baseline split to pair with
    field = paired_rows(
        load(str(tmp_path / "cnn"), "top1", "test_field_degraded"), load(f"{tmp_path / 'base'}:correlation", "top1", "test_field_degraded"), "A", "B"
    )
    assert field[2] == "| grouped | 0 | 43.00 | 20.50 | +22.50 |"


def test_splits_tested_on_different_spectra_are_refused(tmp_path):
    repeat_run(tmp_path / "cnn", "fan2019-grouped-seed0", 0.8, [1, 2, 3])
    baseline_result(tmp_path / "base", "grouped-seed0", 0.8, [1, 2, 4])
    with pytest.raises(ValueError, match="grouped seed 0: .*different spectra"):
        paired_rows(load(str(tmp_path / "cnn"), "top1"), load(f"{tmp_path / 'base'}:correlation", "top1"), "A", "B")


def test_summaries_pair_by_their_split_fingerprints_and_refuse_others(tmp_path):
    from trainer.splits import rows_fingerprint

    def split(seed: int, rows: list[int], field: float) -> dict:
        return {"seed": seed, "test_rows_sha256": rows_fingerprint(np.array(rows)), "test_field_degraded": {"top1": field}}

    cnn = tmp_path / "cnn.json"  # as `trainer repeat` writes it
    runs = {"grouped": ["runs/x/liu2017-grouped-seed3", "runs/x/liu2017-grouped-seed4"]}
    results = {"grouped": [{"top1": 0.9}, {"top1": 0.7}]}
    cnn.write_text(json.dumps({"runs": runs, "results": results, "splits": {"grouped": [split(3, [1, 2], 0.5), split(4, [3], 0.4)]}}))
    base = tmp_path / "base.json"  # as `trainer baseline` writes it: two baselines, keyed "NAME (protocol)"
    base.write_text(
        json.dumps(
            {
                "results": {"correlation (grouped)": [{"top1": 0.8}, {"top1": 0.75}], "knn1 (grouped)": [{"top1": 0.1}, {"top1": 0.1}]},
                "splits": {"correlation (grouped)": [split(3, [2, 1], 0.2), split(4, [3], 0.1)], "knn1 (grouped)": [split(3, [1, 2], 0), split(4, [3], 0)]},
            }
        )
    )
    lines = paired_rows(load(str(cnn), "top1"), load(f"{base}:correlation", "top1"), "A", "B")
    assert lines[2:4] == ["| grouped | 3 | 90.00 | 80.00 | +10.00 |", "| grouped | 4 | 70.00 | 75.00 | -5.00 |"]
    field = paired_rows(load(str(cnn), "top1", "test_field_degraded"), load(f"{base}:correlation", "top1", "test_field_degraded"), "A", "B")
    assert field[2] == "| grouped | 3 | 50.00 | 20.00 | +30.00 |"
    with pytest.raises(ValueError, match="holds no baseline 'forest'"):
        load(f"{base}:forest", "top1")

    moved = json.loads(cnn.read_text())
    moved["splits"]["grouped"][1] = split(4, [3, 4], 0.4)  # seed 4 tested on other spectra
    cnn.write_text(json.dumps(moved))
    with pytest.raises(ValueError, match="grouped seed 4: .*different spectra"):
        paired_rows(load(str(cnn), "top1"), load(f"{base}:correlation", "top1"), "A", "B")

    del moved["splits"]  # a summary written before it had `splits`
    cnn.write_text(json.dumps(moved))
    with pytest.raises(ValueError, match="no per-split record.*--dataset"):
        load(str(cnn), "top1")
