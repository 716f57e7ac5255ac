"""Two sets of bundles exported from the same grouped runs, compared run by run from their manifests.

Every figure was measured by ``trainer export`` through the edge interpreter (ranked as the device ranks, fused with
the library as the device fuses): the grouped test split's excellent spectra and the fair/poor files of its
specimens, processed and RAW. Bundles are paired by position (the i-th of A and of B come from one run, e.g. with
and without an option); per kind and figure: each side's mean, the paired difference's mean ± sample std and how
many runs A is ahead on.

    python benchmarks/bundle_pairs.py --a runs/X/c0,runs/X/c1,runs/X/c2 --b runs/X0/c0,runs/X0/c1,runs/X0/c2 [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.bundle import load_bundle  # noqa: E402

KINDS = ("excellent", "fair_processed", "fair_raw", "poor_processed", "poor_raw")
FIGURES = ("model_top1", "fused_top1", "fused_top3")


def figures(bundle_dir: str) -> dict[str, dict[str, float]]:
    """Kind -> figure -> value of a grouped bundle's test part, from its manifest."""
    manifest = load_bundle(bundle_dir).manifest
    grouped = manifest.metrics if manifest.metrics.get("protocol") == "grouped" else (manifest.metrics_other_protocol or {})
    if not grouped:
        raise SystemExit(f"{bundle_dir}: records no grouped test figures")
    answers = grouped["answers"]
    out = {"excellent": {"model_top1": answers["model"]["top1"], "fused_top1": answers["fused"]["top1"], "fused_top3": answers["fused"]["top3"],
                         "spectra": grouped["test_spectra"]}}
    for kind in KINDS[1:]:
        cell = grouped["grouped_fair"]["test"][kind]
        out[kind] = {name: cell[name] for name in (*FIGURES, "spectra")}
    out["input_smoothing_cm1"] = {"window": manifest.smoothing_cm1}
    return out


def table(a: list[dict], b: list[dict]) -> str:
    lines = ["| test spectra of new specimens | figure | A (mean) | B (mean) | A − B, paired (runs A ahead) |", "|---|---|---|---|---|"]
    for kind in KINDS:
        for name in FIGURES:
            va = np.array([r[kind][name] for r in a]) * 100
            vb = np.array([r[kind][name] for r in b]) * 100
            diff = va - vb
            spread = f" ± {diff.std(ddof=1):.1f}" if len(diff) > 1 else ""
            lines.append(f"| {kind} | {name} | {va.mean():.1f} | {vb.mean():.1f} | {diff.mean():+.1f}{spread} ({int((diff > 0).sum())} of {len(diff)}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="bundle folders, comma-separated")
    parser.add_argument("--b", required=True, help="the same runs' other bundles, in the same order")
    parser.add_argument("--out", help="write every bundle's figures here (JSON)")
    args = parser.parse_args()
    a_dirs, b_dirs = args.a.split(","), args.b.split(",")
    if len(a_dirs) != len(b_dirs):
        parser.error("--a and --b must name as many bundles")
    a, b = [figures(d) for d in a_dirs], [figures(d) for d in b_dirs]
    print(f"A: {', '.join(a_dirs)} (input smoothing {[r['input_smoothing_cm1']['window'] for r in a]} cm^-1)")
    print(f"B: {', '.join(b_dirs)} (input smoothing {[r['input_smoothing_cm1']['window'] for r in b]} cm^-1)")
    print(table(a, b))
    if args.out:
        Path(args.out).write_text(json.dumps({"a": dict(zip(a_dirs, a)), "b": dict(zip(b_dirs, b))}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
