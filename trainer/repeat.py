"""``trainer repeat``: N independent splits per protocol, each trained and evaluated; mean ± std.

The paper reports repeated random splits (Fig. 6, Table 3: 100 per model); the grouped split runs
beside it with the same seeds, so the two protocols are compared on equal footing. Each
(model, protocol, seed) is one task writing its own run folder ``{arch}-{protocol}-seed{seed}``;
a task whose folder already holds its metrics is skipped, so a cut-short repeat resumes where it
stopped. A failed task is reported and retried once; the summary names the runs still missing.
Beside each protocol's test metrics the summary holds, under ``field_degraded``, the mean ± std of
the runs' scores on the same test spectra degraded as in the field, where every run has them, and
under ``diverged`` the runs whose training blew up (:func:`diverged`): their scores are of a
network that early stopping kept from an early epoch, which a mean ± std alone would not show.
Under ``splits``, beside each run's ``results``, its seed, the fingerprint of its test rows
(:func:`trainer.splits.rows_fingerprint`) and its field-degraded scores: enough to pair the runs
split by split with another summary (``benchmarks/paired_splits.py``) once the run folders are gone.
Runs split over several processes or machines are merged by gathering their folders under one
``out_dir`` and summarising without training (``trainer repeat --summary-only``).

Executors: ``local`` (the default: one task after another in this process, no Ray needed) and
``ray`` (each task a Ray task: with no address a Ray instance is started on this machine, with
one it joins that cluster; a task asks for a GPU where the cluster has GPUs). Install Ray with
``pip install 'ramanedge[cluster]'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainer import plots
from trainer.cluster import check_executor, connected_ray
from trainer.evaluation import METRICS
from trainer.field_set import GROUPED_FAIR, flat_test_figures
from trainer.metrics import FIELD, field_summary, mean_std, split_record
from trainer.splits import rows_fingerprint
from trainer.training import HISTORY, SPLIT, SPLIT_FIELDS, FitConfig

SUMMARY = "summary.json"
#: a last-epoch training loss this many times the run's lowest is a training that blew up: over the 97 run
#: records here, stable runs end within 4 times it, blown-up ones (Dataset_1 grouped, H100) 25-110 times
DIVERGENCE_FACTOR = 10.0


def summarise(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation of every metric, per protocol."""
    return {protocol: mean_std(runs) for protocol, runs in results.items() if runs}


def grouped_fair_summary(groups: dict[str, list[dict[str, float] | None]]) -> dict[str, dict[str, Any]]:
    """Mean ± std of each grouped-fair figure per protocol, over the runs scored on it (grouped runs);
    a figure missing from any of them (an empty group in one split) is left out, not averaged over fewer."""
    out = {}
    for protocol, runs in groups.items():
        scored = [r for r in runs if r is not None]
        if scored:
            names = tuple(sorted(set.intersection(*(set(r) for r in scored))))
            out[protocol] = {"runs": len(scored), "figures": mean_std(scored, names)}
    return out


def run_name(config: FitConfig) -> str:
    return f"{config.arch}-{config.protocol}-seed{config.seed}"


def _scores(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """What a run contributes to the summary: its ``test`` metrics, its test rows' fingerprint and,
    where evaluated, the field-degraded scores."""
    with np.load(run_dir / SPLIT) as split:
        fingerprint = rows_fingerprint(split["test"])
    fair = flat_test_figures(record)
    return {
        "test": record["test"],
        "test_rows_sha256": fingerprint,
        **({FIELD: record[FIELD]} if FIELD in record else {}),
        **({GROUPED_FAIR: fair} if fair else {}),
    }


def finished(run_dir: Path) -> dict[str, Any] | None:
    """A finished run folder's scores (:func:`_scores`), or None."""
    try:
        return _scores(json.loads((run_dir / METRICS).read_text()), run_dir)
    except (OSError, ValueError, KeyError):
        return None


def diverged(run_dir: Path) -> bool | None:
    """Whether the run's training loss ended above ``DIVERGENCE_FACTOR`` times its lowest; None without a history."""
    try:
        loss = json.loads((run_dir / HISTORY).read_text())["loss"]
    except (OSError, ValueError, KeyError):
        return None
    return bool(loss) and loss[-1] > DIVERGENCE_FACTOR * min(loss)


def run_task(dataset_path: str, run_dir: str, config: dict[str, Any], quiet: bool = True) -> dict[str, Any]:
    """One (model, protocol, seed): fit and evaluate into ``run_dir``; its scores (:func:`_scores`). Runs where Ray puts it."""
    from trainer.evaluation import evaluate
    from trainer.training import fit

    done = finished(Path(run_dir))
    if done is not None:
        return done
    fit(dataset_path, run_dir, FitConfig(**config), quiet=quiet)
    return _scores(evaluate(run_dir), Path(run_dir))


def _local(tasks: list[tuple[str, str, dict]], quiet: bool, on_done: Callable[[str, dict | None, str], None]) -> None:
    for dataset_path, run_dir, config in tasks:
        for attempt in (1, 2):
            try:
                on_done(run_dir, run_task(dataset_path, run_dir, config, quiet), "")
                break
            except Exception as exc:  # a task boundary, as in Ray: one failed run must not end the others
                if attempt == 2:
                    on_done(run_dir, None, f"{type(exc).__name__}: {exc}")


def _ray(tasks: list[tuple[str, str, dict]], address: str | None, on_done: Callable[[str, dict | None, str], None]) -> None:
    with connected_ray(address) as ray:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1, retry_exceptions=True)(run_task)
        pending = {remote.remote(d, r, c): r for d, r, c in tasks}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            run_dir = pending.pop(ready[0])
            try:
                on_done(run_dir, ray.get(ready[0]), "")
            except ray.exceptions.RayError as exc:  # failed twice (once retried by Ray)
                on_done(run_dir, None, str(exc).strip().splitlines()[-1])


def repeat(
    dataset_path: str | Path,
    out_dir: str | Path,
    n: int,
    base: FitConfig,
    protocols: tuple[str, ...] = ("random", "grouped"),
    quiet: bool = False,
    executor: str = "local",
    address: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    train: bool = True,
) -> dict:
    """Train and evaluate ``n`` runs per protocol under ``out_dir``; write and return the summary.

    ``progress(done, total, line)`` is called after each task. With ``train=False`` nothing is
    trained: the summary holds the runs already finished under ``out_dir`` (run folders gathered
    from several processes or machines) and names the others missing.
    """
    check_executor(executor)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = [replace(base, protocol=p, seed=base.seed + i) for p in protocols for i in range(n)]
    tasks = [(str(Path(dataset_path).resolve()), str((out_dir / run_name(c)).resolve()), asdict(c)) for c in configs]
    results: dict[str, dict[str, Any]] = {}
    seeds = {run_name(c): c.seed for c in configs}
    failures: dict[str, str] = {}

    def write_summary() -> dict:
        """summary.json as it stands: written after every task, so a run cut short still says what it has."""
        done = {p: [run_name(c) for c in configs if c.protocol == p and run_name(c) in results] for p in protocols}
        by_protocol = {p: [results[name]["test"] for name in names] for p, names in done.items()}
        summary = {
            "n": n,
            # the recipe every run shares; each run's protocol and seed are in `runs` and `splits`
            "fit": {k: v for k, v in asdict(base).items() if k not in SPLIT_FIELDS},
            "executor": executor,
            "runs": {p: [str(out_dir / name) for name in names] for p, names in done.items()},
            "missing": {run_name(c): failures.get(run_name(c), "not run") for c in configs if run_name(c) not in results},
            "results": by_protocol,
            "splits": {p: [split_record(seeds[name], results[name]["test_rows_sha256"], results[name]) for name in names] for p, names in done.items()},
            "summary": summarise(by_protocol),
            "field_degraded": field_summary({p: [results[name].get(FIELD) for name in names] for p, names in done.items()}),
            GROUPED_FAIR: grouped_fair_summary({p: [results[name].get(GROUPED_FAIR) for name in names] for p, names in done.items()}),
            "diverged": {p: [name for name in names if diverged(out_dir / name)] for p, names in done.items()},
        }
        tmp = out_dir / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(out_dir / SUMMARY)
        return summary

    def on_done(run_dir: str, scores: dict | None, error: str) -> None:
        name = Path(run_dir).name
        if scores is None:
            failures[name] = error
            line = f"{name}: failed twice ({error})"
        else:
            results[name] = scores
            line = f"{name}: accuracy {scores['test']['accuracy']:.4f}"
        write_summary()
        if progress:
            progress(len(results) + len(failures), len(tasks), line)

    if not train:
        for _, run_dir, _ in tasks:
            done = finished(Path(run_dir))
            if done is None:
                failures[Path(run_dir).name] = "not finished (summary only)"
            else:
                results[Path(run_dir).name] = done
    elif executor == "ray":
        _ray(tasks, address, on_done)
    else:
        _local(tasks, quiet, on_done)
    summary = write_summary()
    if any(summary["results"].values()):
        plots.repeat_boxplot(
            {p: r for p, r in summary["results"].items() if r}, ("accuracy", "f1_weighted", "top3"), out_dir / "repeat_boxplot.png",
            f"{base.arch}: {n} repeats per protocol",
        )
    return summary
