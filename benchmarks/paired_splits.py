"""Compare two methods split by split on the same test spectra: the paired difference of a metric.

On repeated splits the spread between splits is mostly the splits' own (a hard grouped split
lowers every method together), so whether A beats B by more than chance is read from the
differences on each split, not from two means and their spreads. Each side is either

- a folder of ``trainer repeat`` run folders (``{arch}-{protocol}-seed{N}``, each with its
  ``metrics.json`` and ``split.npz``),
- a ``trainer baseline`` output folder and a baseline name, ``DIR:NAME``
  (``DIR/{protocol}-seed{N}/NAME.json``, which lists its test rows), or
- a summary file, ``summary.json`` of ``trainer repeat`` or ``SUMMARY.json:NAME`` of
  ``trainer baseline`` (e.g. the ones committed under ``docs/results/``): its ``splits`` hold each
  split's seed and test rows' fingerprint, so it pairs after the run folders are gone. A repeat
  summary written before it had ``splits`` pairs with ``--dataset DATASET``: each run's test rows
  are rebuilt from the dataset by protocol and seed, as the run made them (test metrics only;
  the summary does not name its dataset, so a pair of two such summaries trusts that it is DATASET).

Splits are paired by protocol and seed, and only on identical test rows (compared by their
fingerprint, :func:`trainer.splits.rows_fingerprint`): a pair whose test rows differ is refused,
naming it. ``--grouped-fair`` compares the grouped-fair figures (real fair/poor files of the test
specimens, :mod:`trainer.field_set`; ``--metric fair_processed_model_top1`` and the like). ``--field-degraded`` compares the scores on the same test spectra degraded as in the
field (``test_field_degraded``: top1, top3 or top5), which CNN runs and baselines both draw from
:func:`trainer.augment.field_degrade` with the split's seed. Prints, per protocol, each split's
values and difference (percent) and the mean ± sample std of the differences, with how many
splits A wins.

    python benchmarks/paired_splits.py runs/table3-gpu-d2/sang2021 runs/baselines-d2:correlation --metric top1
    python benchmarks/paired_splits.py docs/results/table3-cpu-d1/liu2017.json docs/results/table3-gpu-d1/liu2017.json --dataset data/dataset1.npz
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trainer.dataset import SpectraDataset
from trainer.field_set import GROUPED_FAIR, flat_test_figures
from trainer.splits import make_split, rows_fingerprint

SPLIT_NAME = re.compile(r"(?:^|-)(random|grouped)-seed(\d+)$")
TEST = "test"

#: (protocol, seed) -> (metric value, fingerprint of the test rows)
Scores = dict[tuple[str, int], tuple[float, str]]


def repeat_scores(folder: Path, metric: str, scores_key: str = TEST) -> Scores:
    """The finished ``trainer repeat`` runs under ``folder``."""
    scores: Scores = {}
    for run in sorted(folder.iterdir()):
        match = SPLIT_NAME.search(run.name)
        if not (match and (run / "metrics.json").is_file() and (run / "split.npz").is_file()):
            continue
        record = json.loads((run / "metrics.json").read_text())
        value = (flat_test_figures(record) or {})[metric] if scores_key == GROUPED_FAIR else record[scores_key][metric]
        with np.load(run / "split.npz") as split:
            scores[(match[1], int(match[2]))] = (float(value), rows_fingerprint(split["test"]))
    return scores


def baseline_scores(folder: Path, name: str, metric: str, scores_key: str = TEST) -> Scores:
    """Baseline ``name``'s results under a ``trainer baseline`` output folder."""
    scores: Scores = {}
    for result in sorted(folder.glob(f"*-seed*/{name}.json")):
        match = SPLIT_NAME.search(result.parent.name)
        if match:
            record = json.loads(result.read_text())
            scores[(match[1], int(match[2]))] = (float(record[scores_key][metric]), rows_fingerprint(np.asarray(record["test_rows"])))
    return scores


def _rebuilt_splits(summary: dict[str, Any], dataset_path: Path) -> dict[str, list[dict[str, Any]]]:
    """``splits`` for a repeat summary that predates them: seeds from its run names, test rows remade from the dataset."""
    dataset = SpectraDataset.load(dataset_path)
    splits: dict[str, list[dict[str, Any]]] = {}
    for protocol, runs in summary["runs"].items():
        for run in runs:
            match = SPLIT_NAME.search(Path(run).name)
            if match is None:
                raise ValueError(f"run {run!r}: no protocol and seed in its name")
            split = make_split(match[1], dataset.mineral, dataset.specimen, int(match[2]))
            splits.setdefault(protocol, []).append({"seed": int(match[2]), "test_rows_sha256": rows_fingerprint(split.test)})
    return splits


def summary_scores(path: Path, name: str, metric: str, scores_key: str = TEST, dataset: Path | None = None) -> Scores:
    """The splits of a ``trainer repeat`` summary, or of baseline ``name`` in a ``trainer baseline`` summary."""
    summary = json.loads(path.read_text())
    if "splits" in summary:
        splits = summary["splits"]
    elif name or dataset is None:
        raise ValueError(f"{path} holds no per-split record (written before summaries had one); summarise it again, or pass --dataset for a repeat summary")
    elif scores_key != TEST:
        raise ValueError(f"{path} holds no per-split field-degraded scores (written before summaries had them)")
    else:
        splits = _rebuilt_splits(summary, dataset)
    scores: Scores = {}
    for key, results in summary["results"].items():
        if name and not (key.startswith(f"{name} (") and key.endswith(")")):
            continue  # another baseline's row
        protocol = key[len(name) + 2 : -1] if name else key
        for result, split in zip(results, splits[key], strict=True):
            value = result[metric] if scores_key == TEST else split[scores_key][metric]
            scores[(protocol, int(split["seed"]))] = (float(value), split["test_rows_sha256"])
    if name and not scores:
        raise ValueError(f"{path} holds no baseline {name!r}")
    return scores


def load(side: str, metric: str, scores_key: str = TEST, dataset: Path | None = None) -> Scores:
    """``side``'s scores: a summary file (``FILE.json[:NAME]``), a baseline folder (``DIR:NAME``) or a folder of repeat runs."""
    where, _, name = side.partition(":")
    path = Path(where)
    if path.is_file():
        return summary_scores(path, name, metric, scores_key, dataset)
    return baseline_scores(path, name, metric, scores_key) if name else repeat_scores(path, metric, scores_key)


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
            if rows_a != rows_b:
                raise ValueError(f"{protocol} seed {key[1]}: the two sides were tested on different spectra; not paired")
            differences.append(100 * (value_a - value_b))
            lines.append(f"| {protocol} | {key[1]} | {100 * value_a:.2f} | {100 * value_b:.2f} | {differences[-1]:+.2f} |")
        spread = f" ± {np.std(differences, ddof=1):.2f}" if len(differences) > 1 else ""
        wins = sum(d > 0 for d in differences)
        lines.append(f"| {protocol} | mean of {len(differences)} | | | **{np.mean(differences):+.2f}{spread}** ({label_a} ahead on {wins}) |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", metavar="A", help="folder of repeat runs, BASELINE_DIR:NAME, or a summary: SUMMARY.json[:NAME]")
    parser.add_argument("b", metavar="B", help="folder of repeat runs, BASELINE_DIR:NAME, or a summary: SUMMARY.json[:NAME]")
    parser.add_argument("--metric", default="top1", help="a test metric of both sides (default: top1)")
    parser.add_argument("--field-degraded", action="store_true", help="on the field-degraded test spectra (top1, top3, top5)")
    parser.add_argument(
        "--grouped-fair", action="store_true",
        help="on the grouped-fair test files: METRIC is GROUP_SOURCE_topK, e.g. fair_processed_model_top1, poor_raw_fused_top3",
    )
    parser.add_argument("--dataset", type=Path, help="rebuilds the test rows of a repeat summary written before summaries had `splits`")
    args = parser.parse_args()
    key = GROUPED_FAIR if args.grouped_fair else "test_field_degraded" if args.field_degraded else "test"
    try:
        a, b = (load(side, args.metric, key, args.dataset) for side in (args.a, args.b))
        lines = paired_rows(a, b, args.a, args.b)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{args.a} against {args.b}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
