"""Does the members' disagreement tell unknown minerals apart? The open-set evidence gate with and without it.

The trust issue's open-set target (*identified* right >= 95 % on new specimens of known minerals at >= 50 %
coverage, <= 2 % of unknown minerals' spectra identified) is far off: a single model's evidence (fused confidence,
margin, HQIs, agreement of model and library) lets 7-10 % of unknowns through at 50 % coverage. Two independently
trained members of one recipe agree on what they have learnt and may disagree on what neither knows. This benchmark
answers the four parts of an open-set split (``trainer.open_set``) with a pair averaged as an ensemble bundle averages
(each member with its own embedding search, Keras float, the bundle's input smoothing), fits the logistic evidence gate
on the fit parts with the device's evidence alone and with three disagreement features added, and reports both on the
test parts:

- ``agree``: both members rank the same mineral first (0/1);
- ``min_named``: the lower of the two members' probabilities of the mineral the answer names (log-odds);
- ``js``: the Jensen-Shannon divergence of the members' probabilities (log).

    python benchmarks/ensemble_disagreement.py RUN MEMBER [--input-smoothing 21] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.open_set import (  # noqa: E402
    MAX_UNKNOWN_IDENTIFIED,
    TARGET_PRECISION,
    Answers,
    answer_part,
    fit_logistic,
    fit_threshold,
    gate_figures,
    open_set_parts,
)

FEATURES = ("agree", "min_named", "js")


def disagreement(P: list[np.ndarray], named: np.ndarray) -> np.ndarray:
    """(n, 3) the disagreement features of two members' (n, classes) probabilities ``P`` for the answers naming
    ``named`` (n,) (class indices)."""
    a, b = P
    rows = np.arange(len(named))
    agree = (a.argmax(axis=1) == b.argmax(axis=1)).astype(float)
    low = np.clip(np.minimum(a[rows, named], b[rows, named]), 1e-6, 1 - 1e-6)
    m = (a + b) / 2

    def kl(p: np.ndarray) -> np.ndarray:
        return np.sum(p * (np.log(np.maximum(p, 1e-12)) - np.log(np.maximum(m, 1e-12))), axis=1)

    js = np.maximum((kl(a) + kl(b)) / 2, 1e-9)
    return np.stack([agree, np.log(low / (1 - low)), np.log(js)], axis=1)


def gate(known: np.ndarray, known_answers: Answers, unknown: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(weights, bias, threshold) of a logistic gate on these features, fitted as ``fit_evidence_gate`` fits."""
    weights, bias = fit_logistic(known, known_answers.correct, unknown)
    return weights, bias, fit_threshold(known @ weights + bias, known_answers.correct, unknown @ weights + bias)


def at_coverage(figures: dict, target: float) -> dict[str, float]:
    """The risk-coverage curve's point nearest ``target`` coverage."""
    curve = figures["curve"]
    i = int(np.argmin(np.abs(np.array(curve["coverage"]) - target)))
    return {k: round(float(curve[k][i]), 4) for k in ("coverage", "precision", "unknown_identified")}


def most_coverage(figures: dict) -> float:
    """The most coverage of the curve with at most MAX_UNKNOWN_IDENTIFIED of unknowns identified."""
    curve = figures["curve"]
    ok = [c for c, u in zip(curve["coverage"], curve["unknown_identified"]) if u <= MAX_UNKNOWN_IDENTIFIED]
    return round(max(ok, default=0.0), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("member", type=Path)
    parser.add_argument("--input-smoothing", type=float, default=21.0, help="the bundle's model input smoothing, cm^-1")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from trainer.export import reference_library
    from trainer.field_set import default_path, load_field_set
    from trainer.open_set import device_matcher, member_searches
    from trainer.training import check_one_split, load_run

    run, member = load_run(args.run), load_run(args.member)
    check_one_split([run, member])
    dataset = run.load_dataset(None)
    field_path = default_path()
    field = load_field_set(field_path) if field_path else None
    library = reference_library(dataset, run.split.train)
    searched, _ = member_searches([run, member], dataset, field, args.input_smoothing, library)

    def predict(X: np.ndarray) -> np.ndarray:
        return np.mean([p(X) for p in searched], axis=0)

    matcher, _ = device_matcher(run, dataset, library, field, predict)
    answers, extra = {}, {}
    for name, part in open_set_parts(run, dataset, field).items():
        members = [p(part.X) for p in searched]
        answers[name] = answer_part(matcher, np.mean(members, axis=0), part.X, part.y, part.fair)
        extra[name] = disagreement(members, answers[name].named)

    report: dict = {"run": run.path.name, "member": member.path.name, "seed": run.split.seed, "features": list(FEATURES),
                    "targets": {"precision": TARGET_PRECISION, "max_unknown_identified": MAX_UNKNOWN_IDENTIFIED}, "gates": {}}
    for label, with_extra in (("evidence", False), ("evidence + disagreement", True)):
        def features(name: str, with_extra: bool = with_extra) -> np.ndarray:
            return np.concatenate([answers[name].features, extra[name]], axis=1) if with_extra else answers[name].features

        weights, bias, threshold = gate(features("known_fit"), answers["known_fit"], features("unknown_fit"))
        test = gate_figures(features("known_test") @ weights + bias, answers["known_test"], features("unknown_test") @ weights + bias, threshold)
        report["gates"][label] = {
            "test": {k: v for k, v in test.items() if k != "curve"},
            "at_50_coverage": at_coverage(test, 0.5),
            "most_coverage_at_2pct_unknowns": most_coverage(test),
            "weights": [float(w) for w in weights],
        }
    agree_known = float(np.mean(extra["known_test"][:, 0]))
    agree_unknown = float(np.mean(extra["unknown_test"][:, 0]))
    report["members_agree_first"] = {"known_test": agree_known, "unknown_test": agree_unknown}

    print(f"{run.path.name} + {member.path.name}, open-set seed {run.split.seed}, test parts "
          f"({len(answers['known_test'])} known-new, {len(answers['unknown_test'])} unknown spectra)")
    print(f"members rank the same mineral first: known-new {100 * agree_known:.1f} %, unknown {100 * agree_unknown:.1f} %")
    print("| gate | right | coverage | unknown identified | at 50 % coverage: right, unknown | most coverage at <= 2 % unknown |")
    print("|---|---|---|---|---|---|")
    for label, cell in report["gates"].items():
        t, half = cell["test"], cell["at_50_coverage"]
        print(f"| {label} | {100 * t['precision']:.1f} | {100 * t['coverage']:.1f} | {100 * t['unknown_identified']:.1f} | "
              f"{100 * half['precision']:.1f}, {100 * half['unknown_identified']:.1f} | {100 * cell['most_coverage_at_2pct_unknowns']:.1f} |")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
