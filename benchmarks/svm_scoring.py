"""What a PCA + linear SVM baseline costs on many classes, and what `baselines.one_vs_rest` saves.

    python benchmarks/svm_scoring.py data/dataset2.npz [--spectra 256]

On the random split of seed 0 (as `trainer baseline` makes it): one fit of PCA(100) + linear SVM
(C 1) on the non-test spectra; `predict` of --spectra test spectra (what each grid-search fit pays
on its held-out fold); the ranking scores of the same spectra by `trainer.baselines.scores_of`
(sparse one-vs-rest) and of a quarter of them by scikit-learn's own `decision_function`, and the
largest difference between the two on the spectra both scored.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.baselines import scores_of  # noqa: E402
from trainer.dataset import SpectraDataset  # noqa: E402
from trainer.splits import make_split  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--spectra", type=int, default=256, help="test spectra to predict and score")
    args = parser.parse_args()
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    dataset = SpectraDataset.load(args.dataset)
    split = make_split("random", dataset.mineral, dataset.specimen, 0)
    fit_rows = np.sort(np.concatenate([split.train, split.val]))
    classes = sorted(set(dataset.mineral[fit_rows].tolist()))
    labels = dataset.labels(classes)
    test = dataset.X[split.test[: args.spectra]]
    model = Pipeline([("pca", PCA(100, random_state=0)), ("svm", SVC(kernel="linear", C=1.0))])

    def timed(work):
        started = time.perf_counter()
        result = work()
        return result, time.perf_counter() - started

    _, fit_s = timed(lambda: model.fit(dataset.X[fit_rows], labels[fit_rows]))
    _, predict_s = timed(lambda: model.predict(test))
    ours, ours_s = timed(lambda: scores_of(model, test, len(classes)))
    quarter = max(1, len(test) // 4)
    theirs, theirs_s = timed(lambda: model.decision_function(test[:quarter]))
    pairs = len(classes) * (len(classes) - 1) // 2
    print(f"{len(classes)} classes ({pairs} one-vs-one pairs), {len(fit_rows)} fit spectra")
    print(f"fit {fit_s:.1f} s; predict {len(test)} spectra {predict_s:.1f} s ({1000 * predict_s / len(test):.0f} ms each)")
    print(f"scores_of {len(test)} spectra {ours_s:.1f} s ({1000 * ours_s / len(test):.0f} ms each); scikit-learn decision_function "
          f"{quarter} spectra {theirs_s:.1f} s ({1000 * theirs_s / quarter:.0f} ms each)")
    print(f"largest difference on the {quarter} spectra both scored: {np.abs(ours[:quarter][:, model.classes_] - theirs).max():.3g}")


if __name__ == "__main__":
    main()
