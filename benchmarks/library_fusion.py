"""Library-assisted identification, measured: risk-coverage, the RAW twins, user minerals, latency and memory.

    python benchmarks/library_fusion.py [--model BUNDLE] [--grouped BUNDLE ...] [--lacking BUNDLE] [--data ../shared/data]

Every figure comes from the device's own code: :class:`edge.identifier.Identifier` and
:class:`edge.library.Matcher` (the answers and states ``classify`` and ``listen`` give).

1. Risk-coverage on grouped test splits, from the manifests ``trainer export`` wrote (it scores
   the test split through ``Matcher.match``): model alone, library alone, fused; coverage at
   90/95/99 % precision; the share of answers labelled *identified* and how often they were right.
2. The 150 RRUFF RAW/Processed twins with ``--model`` (the shipped bundle): the library minus every
   entry of the twins' specimens (no file's own twin, no spectrum of its specimen), RAW files
   through the raw pipeline. The model itself was trained on Dataset_2, which holds 149 of them:
   the model column is not a new-specimen figure.
3. A mineral the model lacks (``--lacking``: a bundle trained on fewer minerals): for every twin
   mineral not among its classes with two or more twin spectra, one Processed spectrum is added to
   a user library and the others (Processed and RAW) are classified: how often they are named.
4. Latency per spectrum on one thread (model alone; model + library + fusion) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from raw_parity import pairs as twins  # noqa: E402  (benchmarks/ is on the path when run as a script)

from edge.bundle import load_bundle  # noqa: E402
from edge.identifier import Identifier  # noqa: E402
from edge.library import Matcher, ReferenceLibrary  # noqa: E402
from edge.model_input import read_model_input  # noqa: E402
from edge.spectrum_files import specimen_of  # noqa: E402
from edge.user_library import UserLibrary  # noqa: E402
from trainer.calibration import score_answers  # noqa: E402

PRECISIONS = ("0.90", "0.95", "0.99")


def _row(name: str, block: dict) -> str:
    cov = block["coverage_at_precision"]
    return f"| {name} | {100 * block['top1']:.2f} | {100 * block['top3']:.2f} | " + " | ".join(f"{100 * cov[p]:.1f}" for p in PRECISIONS)


def answers_table(title: str, answers: dict) -> list[str]:
    lines = [f"\n{title} ({answers['spectra']} spectra)", "| answer | top-1 % | top-3 % | coverage @90 % | @95 % | @99 % |", "|---|---|---|---|---|---|"]
    for name in ("model", "library", "fused"):
        lines.append(_row(name, answers[name]))
    fused = answers["fused"]
    ident = fused["identified"]
    lines.append(
        f"identified: {100 * ident['coverage']:.1f} % of spectra, right {100 * ident['precision']:.1f} % of the time, "
        f"{100 * ident['share_of_right_answers']:.1f} % of the right answers; not in library: {100 * fused['not_in_library']:.1f} %"
    )
    return lines


def _score_twins(title: str, identifier: Identifier, matcher: Matcher, read: list) -> list[str]:
    """Answers tables for RAW (through the raw pipeline) and Processed twins of minerals the model knows."""
    index = {m: i for i, m in enumerate(identifier.bundle.labels)}
    read = [(r, p) for r, p in read if p.spectrum.mineral in index]
    y = np.array([index[str(p.spectrum.mineral)] for _, p in read])
    lines = []
    for name, vectors in ((f"RAW {title} (device's raw pipeline)", [r.vector for r, _ in read]), (f"Processed {title}", [p.vector for _, p in read])):
        X = np.array(vectors)
        proba = np.array([identifier.classifier.probabilities(x) for x in X])
        lines += answers_table(name, score_answers(matcher, proba, X, y))
    return lines


def twin_answers(bundle_path: Path | None, folder: Path) -> list[str]:
    bundle = load_bundle(bundle_path)
    pairs = twins(folder)
    read = [(read_model_input(raw, raw=True), read_model_input(processed)) for raw, processed in pairs]
    specimens = {processed.spectrum.specimen for _, processed in read}
    library = bundle.library()
    keep = np.array([specimen_of(i) not in specimens for i in library.ids])
    held = ReferenceLibrary(library.spectra[keep], library.minerals[keep], library.ids[keep], library.sources[keep])
    identifier = Identifier(bundle, None, num_threads=1)
    classifier = identifier.classifier  # each member's search's references are the library's: the same ones leave
    classifier.embedding_searches = [search.subset(keep) for search in classifier.embedding_searches]
    matcher = Matcher(bundle.labels, held, identifier.calibration)
    head = (
        f"\nRAW twins: {len(pairs)} pairs; library (and embedding search) without their {len(specimens)} specimens "
        f"({int((~keep).sum())} entries left out)"
    )
    return [head] + _score_twins("twins", identifier, matcher, read)


def new_specimen_twins(bundle_path: Path, run_dir: Path, dataset_path: Path, folder: Path) -> list[str]:
    """The twins whose specimen is in a grouped run's test split, scored with that run's bundle:
    neither its model nor its library (training spectra only) has seen the specimen."""
    from trainer.dataset import SpectraDataset

    bundle = load_bundle(bundle_path)
    with np.load(run_dir / "split.npz") as split:
        test_specimens = set(SpectraDataset.load(dataset_path).specimen[split["test"]].tolist())
    chosen = [(raw, processed) for raw, processed in twins(folder) if specimen_of(processed.name.split("__")[1]) in test_specimens]
    identifier = Identifier(bundle, None, num_threads=1)
    read = [(read_model_input(raw, raw=True), read_model_input(processed)) for raw, processed in chosen]
    head = f"\nRAW twins of new specimens: {len(read)} twins in {run_dir.name}'s test split, with its bundle"
    return [head] + _score_twins("twins of new specimens", identifier, identifier.matcher, read)


def lacking_minerals(bundle_path: Path, folder: Path) -> list[str]:
    """One user spectrum of a mineral the model lacks; are its other spectra named?"""
    bundle = load_bundle(bundle_path)
    by_mineral: dict[str, list[tuple[Path, Path]]] = defaultdict(list)
    for raw, processed in twins(folder):
        mineral = processed.name.split("__")[0]
        if mineral not in bundle.labels:
            by_mineral[mineral].append((raw, processed))
    cases = {m: pairs for m, pairs in by_mineral.items() if len(pairs) >= 2}
    named = total = from_user = identified = 0
    with tempfile.TemporaryDirectory() as tmp:
        for mineral, pairs in sorted(cases.items()):
            user = UserLibrary(Path(tmp) / mineral)
            user.add(mineral, read_model_input(pairs[0][1]).vector, pairs[0][1].name)
            identifier = Identifier(bundle, user, num_threads=1)
            for raw_file, processed_file in pairs[1:]:
                for spectrum_file, is_raw in ((processed_file, False), (raw_file, True)):
                    read = read_model_input(spectrum_file, raw=is_raw)
                    answer = identifier.answer(read.y, read.vector)
                    hit = bool(answer.top) and answer.top[0][0] == mineral
                    total += 1
                    named += hit
                    from_user += hit and answer.source == "user library"
                    identified += hit and answer.state == "identified"
    return [
        f"\nminerals the model lacks ({bundle.manifest.n_classes}-class model): {len(cases)} twin minerals with 2+ spectra, "
        f"one Processed spectrum each added to a user library",
        f"other spectra (Processed and RAW) named: {named} of {total}; of those from the user library: {from_user}; identified: {identified}",
    ]


def latency(bundle_path: Path | None, repeats: int) -> list[str]:
    """Measured in a child process that loads only the edge, so its peak RSS is the device's."""
    command = [sys.executable, __file__, "--latency-worker", "--repeats", str(repeats)] + (["--model", str(bundle_path)] if bundle_path else [])
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def latency_worker(bundle_path: Path | None, repeats: int) -> list[str]:
    from edge_latency import _peak_rss_mb as peak_rss_mb

    bundle = load_bundle(bundle_path)
    identifier = Identifier(bundle, None, num_threads=1)
    spectra = [s for _, s in bundle.demo_spectra()]
    spectra = (spectra * (repeats // max(1, len(spectra)) + 1))[:repeats]
    for s in spectra[:10]:
        identifier.answer(s, s)
    model_ms, full_ms = [], []
    for s in spectra:
        t0 = time.perf_counter()
        identifier.classifier.probabilities(s)
        t1 = time.perf_counter()
        identifier.answer(s, s)
        t2 = time.perf_counter()
        model_ms.append((t1 - t0) * 1e3)
        full_ms.append((t2 - t1) * 1e3)
    size = sum(f.stat().st_size for f in bundle.path.iterdir()) / 1e6
    return [
        f"\nlatency, one thread, {repeats} held-out spectra ({identifier.classifier.runtime}; library {len(identifier.matcher.library)} spectra)",
        "| path | median ms | p95 ms |",
        "|---|---|---|",
        f"| model alone | {statistics.median(model_ms):.2f} | {np.percentile(model_ms, 95):.2f} |",
        f"| model + library search + fusion + gate | {statistics.median(full_ms):.2f} | {np.percentile(full_ms, 95):.2f} |",
        f"bundle {size:.1f} MB on disk; peak RSS of this process (no TensorFlow) {peak_rss_mb():.0f} MB",
    ]


def demo_states(count: int) -> list[str]:
    """`ramanedge demo --json`: of the answers naming the mineral played, how many say *identified*."""
    command = [sys.executable, "-m", "edge", "demo", "--json", "--count", str(count)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    right = [r for r in records if r["top"] and r["top"][0]["mineral"] == r["played"]]
    named = [r for r in records if r["top"]]
    identified = sum(r["state"] == "identified" for r in right)
    return [
        f"\ndemo (`ramanedge demo --json --count {count}`): {len(records)} answers, {len(named)} named a mineral, "
        f"{len(right)} named the one played; {identified} of those {len(right)} said identified ({100 * identified / max(1, len(right)):.0f} %)",
        f"states: {dict(sorted(Counter(r['state'] for r in records).items()))}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="bundle (default: the shipped one)")
    parser.add_argument("--grouped", type=Path, nargs="*", default=[], help="bundles exported from grouped runs (their manifests' answers)")
    parser.add_argument("--lacking", type=Path, help="a bundle trained on fewer minerals, for the user-library case")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--grouped-run", type=Path, help="the grouped run of --grouped's first bundle: its twins in that run's test split are scored too")
    parser.add_argument("--dataset", type=Path, help="the dataset file of --grouped-run")
    parser.add_argument("--latency-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency_worker:
        print(json.dumps(latency_worker(args.model, args.repeats)))
        return
    lines: list[str] = []
    shipped = load_bundle(args.model).manifest
    for title, block in (("shipped model, its own test split", shipped.metrics), ("same recipe, grouped split", shipped.metrics_other_protocol or {})):
        if "answers" in block:
            lines += answers_table(f"{title}: {block['run']} ({block['protocol']})", block["answers"])
    for path in args.grouped:
        m = load_bundle(path).manifest.metrics
        lines += answers_table(f"{m['run']} ({m['protocol']} split)", m["answers"])
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.data / "rruff_excellent_sample.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        (folder,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        lines += twin_answers(args.model, folder)
        if args.grouped_run and args.grouped:
            lines += new_specimen_twins(args.grouped[0], args.grouped_run, args.dataset, folder)
        if args.lacking:
            lines += lacking_minerals(args.lacking, folder)
    lines += demo_states(36)
    lines += latency(args.model, args.repeats)
    print("\n".join(lines))
    print(json.dumps({"calibration": shipped.calibration}, indent=1))


if __name__ == "__main__":
    main()
