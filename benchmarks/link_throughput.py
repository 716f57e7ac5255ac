"""Frames per second sustained without loss over the emulated serial link, and end-to-end latency.

The emulator paces its writes as a UART at the given baud rate would (8N1: 10 bits a byte) and streams 2048-pixel
uint16 frames (4132 bytes: 22.3 frames/s is the wire's ceiling at 921600 baud). `listen`'s loop reads, decodes,
cleans, preprocesses and classifies every frame; latency runs from a frame's last byte decoded to its result.

    python benchmarks/link_throughput.py [--model BUNDLE] [--baud 921600] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from edge.bundle import load_bundle
from edge.identifier import Identifier
from edge.listen import Listener
from firmware_bridge.emulator import Emulator
from firmware_bridge.profiles import load_profile
from ramancore.preprocessing import GRID


def run(bundle_dir: Path | None, baud: int, interval: float, seconds: float) -> dict:
    bundle = load_bundle(bundle_dir)
    profile = load_profile("emulator-785")
    emulator = Emulator(profile, bundle.demo_spectra()[:20], GRID, interval_s=interval, baud=baud, seed=3)
    port = emulator.start()
    listener = Listener(port, Identifier(bundle, num_threads=1), "frame", baud, profile)
    listener.connect()
    results = []
    started = time.monotonic()
    listener.run(lambda r, _: results.append(r), lambda: time.monotonic() - started > seconds)
    elapsed = time.monotonic() - started
    listener.close()
    emulator.stop()
    sent = [p.counter for p in emulator.played]
    seen = {r.seq for r in results}
    last = max(seen) if seen else 0
    lost = [c for c in sent if c <= last and c not in seen]
    latencies = [r.latency_ms for r in results]
    return {
        "frames_per_s": len(results) / elapsed,
        "lost": len(lost),
        "rejected": listener.stats.frames_rejected,
        "latency_median_ms": statistics.median(latencies),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--baud", type=int, default=921600)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    ceiling = args.baud / 10 / (2048 * 2 + 20 + 16)
    print(f"2048-pixel frames at {args.baud} baud: wire ceiling {ceiling:.1f} frames/s")
    print(f"{'asked frames/s':>14} {'got frames/s':>13} {'lost':>5} {'rejected':>9} {'latency median ms':>18} {'p95 ms':>7}")
    for asked in (5, 10, 20, 1000):
        r = run(args.model, args.baud, 1 / asked, args.seconds)
        label = "max" if asked == 1000 else str(asked)
        print(f"{label:>14} {r['frames_per_s']:>13.1f} {r['lost']:>5} {r['rejected']:>9} {r['latency_median_ms']:>18.1f} {r['latency_p95_ms']:>7.1f}")


if __name__ == "__main__":
    main()
