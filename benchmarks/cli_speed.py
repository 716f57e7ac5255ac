"""How fast the command line answers, in one run: start-up against ``python -c "import numpy"``, and
``classify`` of 1000 files.

Each command runs as a user runs it (a fresh process, the installed ``ramanedge`` script), five
times for the start-up ones (the median is reported) and once for ``classify``; the ratios are of
medians measured in this same run. The 1000 files are RRUFF Processed files from the shared
excellent sample, copied round-robin (or, without the data, synthetic two-column files).

    python benchmarks/cli_speed.py [--data ../shared/data] [--files 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str], repeats: int) -> float:
    """Median wall time (s) of ``command``; a failing command stops the benchmark."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def spectrum_files(folder: Path, data: Path, n: int) -> list[Path]:
    sample = data / "rruff_excellent_sample.tar.xz"
    sources: list[Path] = []
    if sample.is_file():
        with tarfile.open(sample) as tar:
            tar.extractall(folder / "sample", filter="data")
        sources = sorted((folder / "sample").rglob("*Raman_Data_Processed*.txt"))
    if not sources:
        x = np.arange(150.0, 1400.0, 0.5)
        rng = np.random.default_rng(0)
        for i in range(20):
            y = sum(np.exp(-0.5 * ((x - c) / 5) ** 2) for c in rng.uniform(200, 1300, 5)) + rng.normal(0, 0.01, x.size)
            path = folder / f"synthetic_{i}.csv"
            path.write_text("".join(f"{a:.2f},{b:.5f}\n" for a, b in zip(x, y)))
            sources.append(path)
    (folder / "files").mkdir()
    out = []
    for i in range(n):
        target = folder / "files" / f"{i:04d}_{sources[i % len(sources)].name}"
        shutil.copyfile(sources[i % len(sources)], target)
        out.append(target)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RAMANEDGE_DATA", "../shared/data")))
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RAMANEDGE_LIBRARY": str(Path(tmp) / "library")}
        files = spectrum_files(Path(tmp), args.data, args.files)
        numpy = timed([sys.executable, "-c", "import numpy"], env, 5)
        rows = [
            ('python -c "import numpy"', numpy),
            ("ramanedge --version", timed([str(BIN / "ramanedge"), "--version"], env, 5)),
            ("ramanedge library list", timed([str(BIN / "ramanedge"), "library", "list"], env, 5)),
        ]
        classify = timed([str(BIN / "ramanedge"), "classify", "--json", *map(str, files)], env, 1)
    print("| command | seconds | × import numpy |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / numpy:.2f} |")
    print(f"| ramanedge classify --json ({len(files)} files) | {classify:.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
