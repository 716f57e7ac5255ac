"""``trainer baseline``: the paper's classic comparisons (Sang et al. 2021, Fig. 7) and library search.

For each repeat (seed) and protocol the split of :mod:`trainer.splits` is made; every baseline is
fitted on the non-test part only (training + validation rows) with its hyper-parameters chosen by
grid search with cross-validation inside that part (folds grouped by specimen on the grouped
protocol, stratified otherwise), then scored on the test rows with the paper's metrics
(:func:`trainer.metrics.classification_metrics`, ranked as the device ranks), and on the same
test spectra as a field spectrometer would measure them (:func:`trainer.augment.field_degrade`,
seeded by the split as the CNNs' evaluation does: top-1/3/5). Results go to
``DIR/{protocol}-seed{seed}/{baseline}.json``; finished ones are skipped on a rerun, and an older
one without field-degraded scores is completed on request by refitting its chosen
hyper-parameters on its own rows (no grid search).

The grids (the paper names grid search but not its grids; these are ours):

- ``knn1``: 1 nearest neighbour, metric euclidean or cosine;
- ``knn5``: 5 nearest neighbours, weights uniform or by distance;
- ``tree``: decision tree, max depth 20/40/none;
- ``forest``: random forest of 100 trees, features per split sqrt or 5 %;
- ``pca_svm_linear``: PCA to 50/100/200 components, linear SVM with C 0.1/1/10;
- ``pca_svm_rbf``: PCA to 100/200 components, RBF SVM with C 1/10/100 (gamma "scale");
- ``correlation``: library search as field instruments do it: the mineral of the best
  mean-centred correlation (:class:`edge.library.ReferenceLibrary`, the device's code); no
  hyper-parameters.

With ``--executor ray`` the grid searches' parallel fits run on Ray (:mod:`trainer.cluster`).
SVMs rank by their one-vs-rest decision values (no Platt scaling); AUC and PR-AUC are computed on
those scores. scikit-learn turns an SVM's one-vs-one values into them with a Python loop over the
k(k-1)/2 class pairs (886,446 on Dataset_2: 330 ms a spectrum); :func:`one_vs_rest` computes the
same values with sparse products (53 ms; ``benchmarks/svm_scoring.py``).
"""

from __future__ import annotations

import copy
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from edge.library import ReferenceLibrary
from trainer import plots
from trainer.augment import field_degrade
from trainer.cluster import check_executor, joblib_backend
from trainer.dataset import SpectraDataset
from trainer.errors import ConfigError, SplitError
from trainer.metrics import FIELD, FIELD_METRICS, classification_metrics, field_summary, mean_std, split_record
from trainer.splits import make_split, rows_fingerprint

CV_FOLDS = 3


class CorrelationSearch(ClassifierMixin, BaseEstimator):
    """Nearest reference by mean-centred correlation over the measured range; scores are each class's best correlation."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> CorrelationSearch:
        self.classes_ = np.unique(y)
        self.library_ = ReferenceLibrary(X, y.astype(str), np.arange(len(y)).astype(str), np.full(len(y), "bundle"))
        position = {str(c): i for i, c in enumerate(self.classes_)}
        self._column_ = np.array([position[name] for name in self.library_.mineral_names])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        scores = np.full((len(X), len(self.classes_)), -1.0)
        for i, x in enumerate(X):
            scores[i, self._column_] = self.library_.best_per_mineral(self.library_.correlations(x))
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


def make_search(name: str, seed: int, n_jobs: int = 1) -> tuple[Any, dict[str, list]]:
    """The estimator of one baseline and its grid (empty: nothing to search)."""
    grids: dict[str, tuple[Any, dict[str, list]]] = {
        "correlation": (CorrelationSearch(), {}),
        "knn1": (KNeighborsClassifier(n_neighbors=1), {"metric": ["euclidean", "cosine"]}),
        "knn5": (KNeighborsClassifier(n_neighbors=5), {"weights": ["uniform", "distance"]}),
        "tree": (DecisionTreeClassifier(random_state=seed), {"max_depth": [20, 40, None]}),
        "forest": (RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=n_jobs), {"max_features": ["sqrt", 0.05]}),
        "pca_svm_linear": (
            Pipeline([("pca", PCA(random_state=seed)), ("svm", SVC(kernel="linear"))]),
            {"pca__n_components": [50, 100, 200], "svm__C": [0.1, 1.0, 10.0]},
        ),
        "pca_svm_rbf": (
            Pipeline([("pca", PCA(random_state=seed)), ("svm", SVC(kernel="rbf", gamma="scale"))]),
            {"pca__n_components": [100, 200], "svm__C": [1.0, 10.0, 100.0]},
        ),
    }
    if name not in grids:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return grids[name]


BASELINES = ("knn1", "knn5", "tree", "forest", "pca_svm_linear", "pca_svm_rbf", "correlation")


SCORE_ROWS = 64  # spectra scored at a time: an SVM's one-vs-one decision values for 1332 classes take 7 MB a spectrum


@functools.lru_cache(maxsize=2)
def _pair_signs(k: int) -> sparse.csr_matrix:
    """(k(k-1)/2, k): +1 at each pair's first class, -1 at its second, pairs in np.triu_indices order
    (0,1), (0,2), ..., (1,2), ... as libsvm's one-vs-one values. Built once per class count, not per chunk."""
    first, second = np.triu_indices(k, 1)
    pairs = np.repeat(np.arange(len(first)), 2)
    signs = np.tile([1.0, -1.0], len(first))
    return sparse.csr_matrix((signs, (pairs, np.column_stack([first, second]).ravel())), shape=(len(first), k))


def one_vs_rest(svm: SVC, X: np.ndarray) -> np.ndarray:
    """(n, k) scikit-learn's one-vs-rest decision values of a fitted one-vs-one SVC: votes won plus the
    pairwise confidences summed and squashed into (-1/3, 1/3), without its Python loop over the pairs."""
    ovo = copy.copy(svm)  # shares the fitted state; only the output shape differs
    ovo.decision_function_shape = "ovo"
    values = ovo.decision_function(X)  # (n, pairs)
    k = len(svm.classes_)
    signs = _pair_signs(k)
    # class c is the second of c pairs and wins each unless the first does (a value >= 0 goes to the first)
    votes = np.arange(k) + (signs.T @ (values >= 0).astype(np.float64).T).T
    confidence = (signs.T @ values.T).T
    return votes + confidence / (3 * (np.abs(confidence) + 1))


def _scores(model: Any, X: np.ndarray) -> np.ndarray:
    svm = model[-1] if isinstance(model, Pipeline) else model
    if isinstance(svm, SVC) and len(svm.classes_) > 2:
        return one_vs_rest(svm, model[:-1].transform(X) if isinstance(model, Pipeline) else X)
    return model.decision_function(X) if hasattr(model, "decision_function") else model.predict_proba(X)


def scores_of(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) scores in the dataset's label order (classes the model never saw score lowest)."""
    raw = np.concatenate([np.asarray(_scores(model, X[i : i + SCORE_ROWS]), dtype=np.float64) for i in range(0, len(X), SCORE_ROWS)])
    if raw.ndim == 1:  # two classes: one decision value
        raw = np.stack([-raw, raw], axis=1)
    out = np.full((len(X), n_classes), raw.min() - 1.0)
    out[:, np.asarray(model.classes_, dtype=int)] = raw
    return out


def _split_rows(dataset: SpectraDataset, protocol: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Fit rows (training + validation, sorted), test rows, labels in the fit rows' class order, class count."""
    split = make_split(protocol, dataset.mineral, dataset.specimen, seed)
    fit_rows = np.sort(np.concatenate([split.train, split.val]))
    classes = sorted(set(dataset.mineral[fit_rows].tolist()))
    return fit_rows, split.test, dataset.labels(classes), len(classes)


def field_scores(model: Any, dataset: SpectraDataset, test: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> dict[str, float]:
    """Top-1/3/5 on the test spectra degraded as in the field (the same degradation the CNNs' evaluation draws)."""
    degraded = field_degrade(dataset.X[test], seed=seed)
    metrics = classification_metrics(labels[test], scores_of(model, degraded, n_classes))
    return {k: metrics[k] for k in FIELD_METRICS}


def run_one(name: str, dataset: SpectraDataset, protocol: str, seed: int, n_jobs: int = 1) -> dict[str, Any]:
    """Fit one baseline on one split's non-test rows (grid search inside them) and score it on the test rows."""
    fit_rows, test, labels, n_classes = _split_rows(dataset, protocol, seed)
    X, y = dataset.X[fit_rows], labels[fit_rows]
    started = time.perf_counter()
    estimator, grid = make_search(name, seed, n_jobs)
    best_params: dict[str, Any] = {}
    if not grid:
        model = estimator.fit(X, y)
    else:
        if protocol == "grouped":
            cv = list(GroupKFold(n_splits=CV_FOLDS).split(X, y, groups=dataset.specimen[fit_rows]))
        else:
            cv = list(StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed).split(X, y))
        gs = GridSearchCV(estimator, grid, cv=cv, n_jobs=n_jobs, refit=True, error_score="raise")
        gs.fit(X, y)
        model, best_params = gs.best_estimator_, gs.best_params_
    seconds = time.perf_counter() - started
    metrics = classification_metrics(labels[test], scores_of(model, dataset.X[test], n_classes))
    return {
        "baseline": name,
        "protocol": protocol,
        "seed": seed,
        "best_params": {k: (v if isinstance(v, (int, float, str)) or v is None else str(v)) for k, v in best_params.items()},
        "grid_search_rows": fit_rows.tolist(),
        "test_rows": test.tolist(),
        "fit_seconds": seconds,
        "test": metrics,
        FIELD: field_scores(model, dataset, test, labels, n_classes, seed),
    }


def complete_field_scores(record: dict[str, Any], dataset: SpectraDataset, n_jobs: int = 1) -> dict[str, Any]:
    """An older result without field-degraded scores, completed: its baseline refitted with the chosen
    hyper-parameters on its own fit rows (what the grid search's refit did; no search) and scored."""
    name, protocol, seed = record["baseline"], record["protocol"], record["seed"]
    fit_rows, test, labels, n_classes = _split_rows(dataset, protocol, seed)
    if fit_rows.tolist() != record["grid_search_rows"] or test.tolist() != record["test_rows"]:
        raise SplitError(f"{name}, {protocol} seed {seed}: this dataset's split no longer has the result's rows")
    estimator, _ = make_search(name, seed, n_jobs)
    model = estimator.set_params(**record["best_params"]).fit(dataset.X[fit_rows], labels[fit_rows])
    return {**record, FIELD: field_scores(model, dataset, test, labels, n_classes, seed)}


def repeat_runs(summary_path: Path) -> dict[str, list[dict[str, float]]]:
    """A ``trainer repeat`` summary's test metrics per run, keyed by the box-plot label of each protocol:
    network (and width when not full), protocol, how many runs, and the summary's folder (e.g. the device).
    The run count is in the label because a CNN row beside 5-split baselines often rests on fewer runs."""
    repeat_summary = json.loads(summary_path.read_text())
    fit = repeat_summary["fit"]
    network = fit["arch"] if fit.get("width", 1.0) == 1.0 else f"{fit['arch']} w{fit['width']:g}"
    return {
        f"{network} ({protocol}, {len(runs)} run{'s' * (len(runs) != 1)}, {summary_path.parent.name})": runs
        for protocol, runs in repeat_summary["results"].items()
    }


def run_baselines(
    dataset_path: str | Path,
    out_dir: str | Path,
    n: int,
    names: tuple[str, ...] = BASELINES,
    protocols: tuple[str, ...] = ("random", "grouped"),
    first_seed: int = 0,
    n_jobs: int = 1,
    log=print,
    beside: dict[str, list[dict[str, float]]] | None = None,
    executor: str = "local",
    address: str | None = None,
    complete_field: bool = False,
) -> dict[str, Any]:
    """Every baseline on ``n`` splits per protocol; finished results are reused. Writes summary.json and a
    box plot of test accuracy, with ``beside`` (e.g. CNN repeats: name -> test metrics per split) in it too.
    ``complete_field`` completes finished results that lack field-degraded scores (:func:`complete_field_scores`).
    The summary's ``field_degraded`` holds their mean ± std where every split of a row has them; its
    ``results`` and ``splits`` each split's test metrics, seed, test rows' fingerprint and field-degraded
    scores, as a ``trainer repeat`` summary does, so the splits pair with CNN runs after the folders are gone.

    ``executor="ray"`` runs the grid searches' ``n_jobs`` parallel fits through Ray's joblib backend
    (:mod:`trainer.cluster`; ``address`` joins a cluster, none starts Ray here).
    """
    check_executor(executor)
    dataset = SpectraDataset.load(dataset_path)
    out_dir = Path(out_dir)
    results: dict[str, list[dict[str, float]]] = {}
    field: dict[str, list[dict[str, float] | None]] = {}
    splits: dict[str, list[dict[str, Any]]] = {}
    planned = [
        (protocol, seed, name, out_dir / f"{protocol}-seed{seed}" / f"{name}.json")
        for protocol in protocols
        for seed in range(first_seed, first_seed + n)
        for name in names
    ]
    stored = {path: json.loads(path.read_text()) for *_, path in planned if path.is_file()}
    anything_to_fit = len(stored) < len(planned) or (complete_field and any(FIELD not in r for r in stored.values()))
    with joblib_backend(executor if anything_to_fit else "local", address):  # one Ray for the whole run, none to only summarise
        for protocol, seed, name, path in planned:
            record = stored.get(path)
            if record is None or (complete_field and FIELD not in record):
                record = run_one(name, dataset, protocol, seed, n_jobs) if record is None else complete_field_scores(record, dataset, n_jobs)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(record))
                tmp.replace(path)
            degraded = f", field-degraded top-1 {record[FIELD]['top1']:.4f}" if FIELD in record else ""
            log(f"{protocol} seed {seed} {name}: accuracy {record['test']['accuracy']:.4f}{degraded} ({record['fit_seconds']:.0f} s)")
            results.setdefault(f"{name} ({protocol})", []).append(record["test"])
            field.setdefault(f"{name} ({protocol})", []).append(record.get(FIELD))
            splits.setdefault(f"{name} ({protocol})", []).append(split_record(seed, rows_fingerprint(np.asarray(record["test_rows"])), record))
    summary = {
        "n": n,
        "dataset": str(dataset_path),
        "summary": {key: mean_std(runs) for key, runs in results.items()},
        "field_degraded": field_summary(field),
        "results": results,
        "splits": splits,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    plots.repeat_boxplot({**results, **(beside or {})}, ("accuracy",), out_dir / "baselines_boxplot.png", f"test accuracy (baselines: {n} splits per protocol)")
    return summary
