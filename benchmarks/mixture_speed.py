"""What ``--mixtures`` adds per spectrum on the device path, one thread, with the shipped bundle (8578 references).

The same spectra are answered by :meth:`edge.identifier.Identifier.answer` without and with the mixture fit, in
one run, alternating: the bundle's demo spectra as they are (pure), and sums of two of them (shares 0.3-0.7).

    python benchmarks/mixture_speed.py [--spectra 200]
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"  # one thread of this CPU, numpy's BLAS included (before numpy is imported)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edge.bundle import load_bundle  # noqa: E402
from edge.identifier import Identifier  # noqa: E402


def sums(spectra: list[np.ndarray], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sums of two spectra, zero outside the overlap of their measured ranges, min-max normalised there."""
    out: list[np.ndarray] = []
    while len(out) < count:
        a, b = rng.choice(len(spectra), 2, replace=False)
        w = rng.uniform(0.3, 0.7)
        both = (spectra[a] > 0) & (spectra[b] > 0)
        mixed = np.where(both, w * spectra[a] + (1 - w) * spectra[b], 0.0)
        if both.sum() > 400:
            low = mixed[both].min()
            mixed = np.where(both, (mixed - low) / (mixed[both].max() - low), 0.0)
            out.append(mixed.astype(np.float32))
    return out


def timed(identifier: Identifier, spectra: list[np.ndarray]) -> list[float]:
    out = []
    for x in spectra:
        started = time.perf_counter()
        identifier.answer(x, x)
        out.append((time.perf_counter() - started) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=int, default=200)
    args = parser.parse_args()
    bundle = load_bundle(None)
    plain = Identifier(bundle, num_threads=1)
    fitting = Identifier(bundle, num_threads=1, mixtures=True)
    pure = [x for _, x in bundle.demo_spectra()]
    rng = np.random.default_rng(0)
    cases = {"pure (demo spectra)": [pure[i % len(pure)] for i in range(args.spectra)], "binary sums": sums(pure, args.spectra, rng)}
    timed(plain, pure[:5]), timed(fitting, pure[:5])  # warm: scipy imported, caches filled
    print(f"per-spectrum answer, one thread, shipped bundle ({len(plain.matcher.library)} references), {args.spectra} spectra each")
    print("| spectra | without --mixtures median / p95 ms | with --mixtures median / p95 ms | added median ms |")
    print("|---|---|---|---|")
    for name, spectra in cases.items():
        without, with_fit = [], []
        for x in spectra:  # alternating: both see the same machine state
            without += timed(plain, [x])
            with_fit += timed(fitting, [x])
        p95 = lambda v: sorted(v)[int(0.95 * len(v))]  # noqa: E731
        print(f"| {name} | {statistics.median(without):.2f} / {p95(without):.2f} | {statistics.median(with_fit):.2f} / {p95(with_fit):.2f} | "
              f"{statistics.median(with_fit) - statistics.median(without):.2f} |")


if __name__ == "__main__":
    main()
