"""Edge latency and memory, in one run: int8 and float32 TFLite on the edge runtime against Keras.

Per spectrum: preprocess (from the file's x, y) + inference + top-3, one spectrum at a time,
with 1 interpreter thread and with all cores. The edge measurements run in a child process
that imports no TensorFlow, so its peak RSS is the edge process's own. Keras is timed with
``model.predict`` on one spectrum (the baseline of the 15x target: what a host script does),
and, to be fair to Keras, with ``predict_on_batch`` and a direct ``model(x, training=False)`` call.

    python benchmarks/edge_latency.py RUN [--repeats 200] [--tflite-runtime-python PYTHON]

RUN is a run folder from ``trainer fit``; it is exported to temporary float32 and int8 bundles.
``--tflite-runtime-python``: a Python whose environment has ``tflite-runtime==2.14.0`` and
``numpy<2`` and no ai-edge-litert (the 32-bit Raspberry Pi set-up); the int8 worker runs there too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the worker may run in another environment
from edge.ranking import rank  # noqa: E402


def _spectra(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Raw (x, y) spectra on an irregular 0.5 cm^-1 grid, like RRUFF's own files."""
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.uniform(0.45, 0.55, 2600)) + 80.0
    out = []
    for _ in range(n):
        centres = rng.uniform(100, 1500, 6)
        y = sum(rng.uniform(50, 500) * np.exp(-0.5 * ((x - c) / rng.uniform(2, 8)) ** 2) for c in centres)
        out.append((x, y + rng.normal(0, 2, x.size) + 100))
    return out


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: on Linux ru_maxrss survives
    exec and would report the parent's (TensorFlow-sized) footprint."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def worker(bundle: str, threads: int, repeats: int) -> dict:
    """Edge path only (no TensorFlow): median ms per spectrum and this process's peak RSS."""
    from edge.bundle import load_bundle
    from edge.runtime import Classifier
    from ramancore.preprocessing import preprocess

    classifier = Classifier(load_bundle(bundle), num_threads=threads)
    spectra = _spectra(repeats)
    for x, y in spectra[:10]:
        classifier.classify(preprocess(x, y))
    times = []
    for x, y in spectra:
        started = time.perf_counter()
        classifier.classify(preprocess(x, y), k=3)
        times.append((time.perf_counter() - started) * 1e3)
    assert not any(m.split(".")[0] == "tensorflow" for m in sys.modules), "the edge path imported TensorFlow"
    return {
        "median_ms": statistics.median(times),
        "p95_ms": float(np.percentile(times, 95)),
        "peak_rss_mb": _peak_rss_mb(),
        "runtime": classifier.runtime,
    }


def keras_latency(run_dir: Path, repeats: int) -> dict[str, float]:
    from ramancore.preprocessing import preprocess
    from trainer.training import load_run

    model = load_run(run_dir).build_trained_model()
    spectra = _spectra(repeats)
    results = {}
    for name, call in (
        ("predict", lambda v: model.predict(v, verbose=0)),
        ("predict_on_batch", lambda v: model.predict_on_batch(v)),
        ("direct call", lambda v: np.asarray(model(v, training=False))),
    ):
        for x, y in spectra[:5]:
            call(preprocess(x, y)[None, :, None])
        times = []
        for x, y in spectra:
            started = time.perf_counter()
            proba = call(preprocess(x, y)[None, :, None])[0]
            rank(proba)[:3]
            times.append((time.perf_counter() - started) * 1e3)
        results[name] = statistics.median(times)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--tflite-runtime-python", type=Path, help="a Python with tflite-runtime 2.14 and numpy<2 (no ai-edge-litert)")
    parser.add_argument("--worker", nargs=2, metavar=("BUNDLE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeats)))
        return
    if args.run is None:
        parser.error("give a run folder")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from trainer.export import export

    tf.get_logger().setLevel("ERROR")  # model.predict on single spectra warns of retracing: that cost is the point

    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for precision in ("float32", "int8"):
            bundle = Path(tmp) / precision
            export(args.run, bundle, precision, log=lambda _: None)
            sizes[precision] = (bundle / "model.tflite").stat().st_size / 1e6
            pythons = [sys.executable]
            if args.tflite_runtime_python and precision == "int8":
                pythons.append(str(args.tflite_runtime_python))
            for python in pythons:
                for threads in sorted({1, cores}):
                    child = subprocess.run(
                        [python, __file__, "--worker", str(bundle), str(threads), "--repeats", str(args.repeats)],
                        capture_output=True, text=True, check=True,
                    )
                    result = json.loads(child.stdout.strip().splitlines()[-1])
                    rows.append((f"{precision} TFLite ({result['runtime']})", threads, result, sizes[precision]))
        keras_ms = keras_latency(args.run, max(args.repeats // 4, 20))

    weights_mb = (args.run / "model.weights.h5").stat().st_size / 1e6
    print(f"per-spectrum latency: preprocess + inference + top-3, median of {args.repeats} spectra, {cores} cores")
    print(f"{'path':<48} {'threads':>7} {'median ms':>10} {'p95 ms':>8} {'peak RSS MB':>12} {'model MB':>9} {'vs Keras predict':>17}")
    for name, threads, r, size in rows:
        print(
            f"{name:<48} {threads:>7} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['peak_rss_mb']:>12.0f} "
            f"{size:>9.2f} {keras_ms['predict'] / r['median_ms']:>16.1f}x"
        )
    for name, ms in keras_ms.items():
        print(f"{'Keras float32 on TensorFlow, ' + name:<48} {cores:>7} {ms:>10.2f} {'':>8} {'':>12} {weights_mb:>9.2f} {keras_ms['predict'] / ms:>16.1f}x")


if __name__ == "__main__":
    main()
