"""What to expect of a bundle on a new specimen, as a markdown table, from the figures its manifest records.

Every figure was measured by ``trainer export`` through the edge interpreter (int8, ranked as the
device ranks, fused with the library as the device fuses): the grouped run's test split
(excellent RRUFF spectra of specimens neither its model nor its library saw), the fair/poor files
of those specimens (grouped-fair, processed and RAW through the device's raw path), and the
open-set gate's test part (minerals no fitting step saw). README.md and docs/RESULTS.md quote
this table.

    python benchmarks/bundle_figures.py [BUNDLE]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.bundle import load_bundle  # noqa: E402


def pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f}"  # nan: nothing was identified to be right


def rows(manifest) -> list[str]:
    grouped = manifest.metrics if manifest.metrics.get("protocol") == "grouped" else (manifest.metrics_other_protocol or {})
    if not grouped:
        return ["(this bundle records no grouped-split figures: nothing to say about new specimens)"]
    out = [
        "| spectra of new specimens | files | model top-1 | library top-1 | fused top-1 | fused top-3 | group-level top-1 | identified: share, right |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fused = grouped["answers"]["fused"]
    model, library = grouped["answers"]["model"], grouped["answers"]["library"]
    out.append(
        f"| excellent (grouped test split) | {grouped['test_spectra']} | {pct(model['top1'])} | {pct(library['top1'])} | {pct(fused['top1'])} | "
        f"{pct(fused['top3'])} | {pct(fused.get('group_top1'))} | {pct(fused['identified']['coverage'])}, {pct(fused['identified']['precision'])} |"
    )
    for group, cell in grouped.get("grouped_fair", {}).get("test", {}).items():
        if not isinstance(cell, dict) or not cell.get("spectra"):
            continue
        out.append(
            f"| {group.replace('_', ', ')} | {cell['spectra']} | {pct(cell['model_top1'])} | {pct(cell['library_top1'])} | {pct(cell['fused_top1'])} | "
            f"{pct(cell['fused_top3'])} | {pct(cell.get('fused_group_top1'))} | {pct(cell['identified_coverage'])}, {pct(cell['identified_precision'])} |"
        )
    gate = manifest.calibration.get("fitted", {}).get("evidence_gate")
    if gate:
        test = gate["test"]
        out.append("")
        out.append(
            f"Open-set gate ({gate['from']}, test part): 'identified' right {pct(test['precision'])} % at {pct(test['coverage'])} % coverage "
            f"on new specimens of known minerals (fair/poor files: {pct(test['fair_precision'])} % right at {pct(test['fair_coverage'])} %), "
            f"{pct(test['unknown_identified'])} % of unknown minerals' spectra identified."
        )
    return out


def main() -> int:
    bundle = load_bundle(sys.argv[1] if len(sys.argv) > 1 else None)
    print("\n".join(rows(bundle.manifest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
