"""Which validation spectra should the fusion of model and library be fitted on? Scored on grouped-fair.

For each grouped run given (Keras float model, its training spectra as the library), the temperature and
library weight (``trainer.calibration.fit_fusion``) are fitted four ways: on the validation split's
excellent spectra alone (the fit before issue "Field accuracy III"), on those with the fair/poor files of
the validation specimens, on the same with those files weighted to count as much as the excellent spectra
together, and not at all (the model alone). Each is
scored, ranked as the device ranks, on the run's excellent test split and on the fair/poor files of its
test specimens, per quality and kind. Prints one line per run and choice, then the means over runs, and
writes them as JSON.

    python benchmarks/fusion_fit.py RUN [RUN ...] --out fusion.json [--field-set rruff_fair_poor_d2.tar.xz]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.library import Calibration, Matcher, fused_logits, softmax  # noqa: E402
from edge.ranking import rank  # noqa: E402
from trainer import calibration  # noqa: E402
from trainer.export import reference_library  # noqa: E402
from trainer.field_set import QUALITIES, default_path, load_field_set  # noqa: E402
from trainer.training import load_run  # noqa: E402

Features = tuple[np.ndarray, np.ndarray, np.ndarray]  # candidate probabilities (n, m), best correlations (n, m), labels (n,)


def top13(temperature: float, weight: float, features: Features) -> list[float]:
    P, R, y = features
    order = rank(softmax(fused_logits(P, R, temperature, weight)))
    return [float(np.mean(order[:, 0] == y)), float(np.mean((order[:, :3] == y[:, None]).any(axis=1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--field-set", type=Path, default=None)
    args = parser.parse_args()
    path = args.field_set or default_path()
    if path is None:
        print("no fair/poor set found: pass --field-set or set RAMANEDGE_DATA", file=sys.stderr)
        return 2
    field = load_field_set(path)
    results: dict[str, list[dict]] = {}
    for run_dir in args.runs:
        run = load_run(run_dir)
        dataset = run.load_dataset()
        labels = dataset.labels(run.classes)
        model = run.build_trained_model()
        matcher = Matcher(run.classes, reference_library(dataset, run.split.train), Calibration())
        index = {m: i for i, m in enumerate(run.classes)}

        def features(X: np.ndarray, y: np.ndarray) -> Features:
            P, R, _ = calibration.features(matcher, model.predict(X[:, :, None], batch_size=256, verbose=0), X)  # noqa: B023
            return P, R, y

        def field_features(specimens: np.ndarray) -> tuple[Features, np.ndarray]:
            rows = field.rows_of(specimens, run.classes)  # noqa: B023
            return features(field.X[rows], np.array([index[m] for m in field.mineral[rows]])), rows  # noqa: B023

        val = features(dataset.X[run.split.val], labels[run.split.val])
        val_field, _ = field_features(dataset.specimen[run.split.val])
        test_field, rows = field_features(dataset.specimen[run.split.test])
        excellent = features(dataset.X[run.split.test], labels[run.split.test])
        both = tuple(np.concatenate(pair) for pair in zip(val, val_field))
        # the fair/poor files weighted to count as much, together, as the excellent spectra
        balanced = np.concatenate([np.ones(len(val[2])), np.full(len(val_field[2]), len(val[2]) / max(len(val_field[2]), 1))])
        choices = (
            ("validation", val, None),
            ("validation + its fair/poor files", both, None),
            ("validation + its fair/poor files, counted as much as the excellent ones", both, balanced),
            ("model alone", None, None),
        )
        for name, fitted_on, sample_weight in choices:
            temperature, weight, _ = calibration.fit_fusion(fitted_on[0], fitted_on[1], fitted_on[2], sample_weight) if fitted_on is not None else (1.0, 0.0, 0.0)
            row = {"run": run.path.name, "temperature": temperature, "library_weight": weight, "excellent": top13(temperature, weight, excellent)}
            for quality in QUALITIES:
                for kind in ("processed", "raw"):
                    mask = (field.quality[rows] == quality) & (field.kind[rows] == kind)
                    row[f"{quality}_{kind}"] = top13(temperature, weight, tuple(a[mask] for a in test_field))
            results.setdefault(name, []).append(row)
            print(name, json.dumps({k: v if isinstance(v, str) else np.round(100 * np.asarray(v), 1).tolist() for k, v in row.items()}), flush=True)
    print("\nmeans over runs, top-1 / top-3 %:")
    for name, rows_ in results.items():
        keys = [k for k in rows_[0] if isinstance(rows_[0][k], list)]
        print(f"{name}: " + ", ".join(f"{k} {100 * np.mean([r[k][0] for r in rows_]):.1f}/{100 * np.mean([r[k][1] for r in rows_]):.1f}" for k in keys))
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
