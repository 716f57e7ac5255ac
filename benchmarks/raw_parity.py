"""RAW against Processed: does on-device cleaning of a raw RRUFF spectrum give the model's answer for RRUFF's own
baseline-corrected twin? Also times each step of the raw path.

    python benchmarks/raw_parity.py [--model BUNDLE] [--data ../shared/data]

For each of the 150 pairs in rruff_excellent_sample.tar.xz: top-1 of the RAW file through the device's raw pipeline
(``ramancore.raw_pipeline.RAW_PIPELINE``: spikes, SNIP baseline, the shared preprocessing), against top-1 of the Processed
file through the same object without the cleaning.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from edge.bundle import load_bundle
from edge.runtime import Classifier
from edge.spectrum_files import read_spectrum_file
from ramancore.raw_pipeline import RAW_PIPELINE


def pairs(folder: Path) -> list[tuple[Path, Path]]:
    out = []
    for raw in sorted(folder.glob("*Raman_Data_RAW*.txt")):
        stem = raw.name.split("__Raman_Data_RAW__")[0]
        twins = sorted(folder.glob(f"{stem}__Raman_Data_Processed__*.txt"))
        if twins:
            out.append((raw, twins[0]))
    return out


def parity(folder: Path, classifier: Classifier) -> dict:
    times: dict[str, list[float]] = {"raw path (spikes, baseline, resampling)": [], "inference": []}
    agree = raw_right = processed_right = 0
    found = pairs(folder)
    for raw_path, processed_path in found:
        raw, processed = read_spectrum_file(raw_path), read_spectrum_file(processed_path)
        t0 = time.perf_counter()
        _, vector = RAW_PIPELINE.model_input(raw.x, raw.y, raw=True)
        t1 = time.perf_counter()
        raw_top = classifier.classify(vector, k=1).top[0][0]
        t2 = time.perf_counter()
        for name, dt in zip(times, (t1 - t0, t2 - t1)):
            times[name].append(dt * 1e3)
        processed_top = classifier.classify(RAW_PIPELINE.model_input(processed.x, processed.y, raw=False)[1], k=1).top[0][0]
        agree += raw_top == processed_top
        raw_right += raw_top == processed.mineral
        processed_right += processed_top == processed.mineral
    n = len(found)
    return {
        "pairs": n,
        "same_top1": agree / n,
        "raw_top1_correct": raw_right / n,
        "processed_top1_correct": processed_right / n,
        "median_ms": {k: statistics.median(v) for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RAMANEDGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")))
    args = parser.parse_args()
    classifier = Classifier(load_bundle(args.model), num_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.data / "rruff_excellent_sample.tar.xz") as tar:
            tar.extractall(tmp, filter="data")
        (folder,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        result = parity(folder, classifier)
    print(f"model {classifier.bundle.model_id}, {result['pairs']} RAW/Processed pairs")
    print(f"same top-1 for RAW and Processed: {100 * result['same_top1']:.1f} %")
    print(f"top-1 = RRUFF mineral: RAW {100 * result['raw_top1_correct']:.1f} %, Processed {100 * result['processed_top1_correct']:.1f} %")
    print("median latency per step (ms, 1 thread): " + ", ".join(f"{k} {v:.2f}" for k, v in result["median_ms"].items()))


if __name__ == "__main__":
    main()
