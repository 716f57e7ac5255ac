"""``trainer mixtures``: how well the device's mixture fit (:mod:`edge.mixtures`) names the minerals of a
spot holding two or three, and how rarely it invents a second one in a pure spectrum.

Data flow, for each grouped run (``trainer fit --split grouped``): its training spectra are the library
(:func:`trainer.export.reference_library`), its Keras model (with its embedding search, as its bundle would have
it: :func:`trainer.embedding.keras_search`) and a fusion fitted on its validation part
(:func:`trainer.field_set.validation_fusion`) give the fused ranking whose first minerals are candidates,
as on the device (:meth:`edge.library.Matcher.match`). Then

1. the thresholds are fitted on *validation* spectra (:func:`fit_thresholds`), every spectrum fitted with three
   components whatever they remove: ``min_gain`` is the second component's gain at its :data:`PURE_QUANTILE`
   quantile over the real pure spectra (RRUFF excellent and the fair/poor files of validation specimens,
   :data:`FITTED_KINDS`); field-degraded copies are probed and reported but left out of the fit: they seldom
   leave a residual worth a second mineral, and pooled with the real ones they pulled the threshold under what
   those reach; ``min_third_gain`` is the third component's gain at its :data:`THIRD_QUANTILE` quantile over
   binary mixtures of validation spectra, ``min_pair_gain`` the second and third's joint gain at the
   :data:`PURE_QUANTILE` quantile over the real pure spectra (the two rules together give a second or third
   component to about 4 % of them);
2. the fit is scored with it on the *test* part, whose specimens neither model nor library saw: pure spectra
   (excellent, and every fair/poor file of a test specimen), and binary and ternary sums of test spectra of
   different minerals (never of one Raman-indistinguishable group) with random shares of the signal
   (:data:`SHARES`), on the overlap of their measured ranges, clean and field-degraded
   (:func:`trainer.augment.field_degrade`).

Figures: all components named (every true mineral among those reported), per-component precision and recall,
a second component on pure spectra, and the share error of the components named right; and the ceiling no
threshold can pass: the binary and ternary mixtures fitted with two and three components whatever they remove.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.identifier import MIXTURE_CANDIDATES
from edge.library import Matcher
from edge.mixtures import MixtureAnalyser
from ramancore.preprocessing import GRID_SIZE
from trainer.augment import field_degrade, measured_range
from trainer.dataset import SpectraDataset
from trainer.errors import TrainerError
from trainer.field_set import FieldSet, default_path, load_field_set, validation_fusion
from trainer.groups import derive_groups
from trainer.training import Run, load_run

#: Shares of the signal each mixed spectrum gets: drawn uniformly (binary) or by rejection (ternary) in this range.
SHARES = (0.2, 0.8)
#: The targets' binary subset: both shares within this range.
TARGET_SHARES = (0.3, 0.7)
#: min_gain is this quantile of the real pure validation spectra's second component's gain.
PURE_QUANTILE = 0.97
#: min_third_gain is this quantile of validation binary mixtures' third component's gain: a binary gets a third
#: on about a tenth of them (of those whose first two pass), the price of naming all three of a ternary.
THIRD_QUANTILE = 0.90
#: The mixture fit's thresholds (edge.mixtures.MixtureAnalyser's arguments), as reported per run.
THRESHOLDS = ("min_gain", "min_pair_gain", "min_third_gain")
#: The kinds of pure validation spectra min_gain is fitted on: real measurements, not synthetic degradations.
FITTED_KINDS = ("excellent", "fair_poor_files")
#: Shortest overlap of the mixed spectra's measured ranges, cm^-1 (grid points).
MIN_OVERLAP = 400


class MixtureBenchmarkError(TrainerError):
    """A run the mixture benchmark cannot use; one line saying why."""


def mix_spectra(spectra: list[np.ndarray], shares: np.ndarray) -> np.ndarray | None:
    """The preprocessed spectrum of a spot whose signal is ``shares`` (summing to 1) of each of ``spectra``
    ((GRID_SIZE,) preprocessed, 0..1): each scaled to unit area over the overlap of their measured ranges,
    summed by share, min-max normalised there, zeros elsewhere; None where the overlap is under MIN_OVERLAP."""
    ranges = [measured_range(s) for s in spectra]
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if hi - lo < MIN_OVERLAP:
        return None
    parts = [s[lo : hi + 1].astype(np.float64) for s in spectra]
    if any(p.sum() <= 0 for p in parts):
        return None
    total = sum(w * p / p.sum() for w, p in zip(shares, parts))
    total = total - total.min()
    out = np.zeros(GRID_SIZE, np.float32)
    out[lo : hi + 1] = total / total.max()
    return out


def _draw_shares(k: int, rng: np.random.Generator) -> np.ndarray:
    low, high = SHARES
    while True:
        w = rng.uniform(low, high, k) if k == 2 else rng.dirichlet(np.ones(k))
        w = w / w.sum()
        if np.all((w >= low) & (w <= high)):
            return w


def draw_mixtures(
    X: np.ndarray, minerals: np.ndarray, k: int, count: int, rng: np.random.Generator, group_of: dict[str, frozenset[str]]
) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """``count`` sums of ``k`` spectra of ``X`` ((n, GRID_SIZE)) of different minerals, none two of one group:
    (count, GRID_SIZE) spectra, their minerals, (count, k) shares."""
    out: list[np.ndarray] = []
    truth: list[list[str]] = []
    shares: list[np.ndarray] = []
    while len(out) < count:
        rows = rng.choice(len(X), k, replace=False)
        names = [str(minerals[i]) for i in rows]
        if any(names[j] in group_of.get(names[i], {names[i]}) for i in range(k) for j in range(i + 1, k)):
            continue
        w = _draw_shares(k, rng)
        mixed = mix_spectra([X[i] for i in rows], w)
        if mixed is not None:
            out.append(mixed)
            truth.append(names)
            shares.append(w)
    return np.array(out), truth, np.array(shares)


def fit_min_gain(
    gains_by_kind: dict[str, np.ndarray], quantile: float = PURE_QUANTILE, kinds: tuple[str, ...] = FITTED_KINDS
) -> tuple[float, dict[str, float]]:
    """A gain (fraction of the residual, 0..1) pure spectra seldom exceed: the ``quantile`` quantile of the gains of
    the pure spectra of ``kinds`` together (``gains_by_kind``: kind -> (n,) gains; the second component's, or the
    second and third's joint gain). Kind by kind the fair/poor validation files are too few (about 50 a split) for
    a high quantile of their own (their second-largest gain); with the field-degraded copies in the pool, which
    rarely give a second component a gain worth it, a pooled 96 % let 7-9 % of the real test spectra through
    (docs/RESULTS.md, "Mixtures"). Also returns each kind's own quantile, for the report."""
    fitted = [gains_by_kind[k] for k in kinds if k in gains_by_kind and len(gains_by_kind[k])]
    if not fitted:
        raise MixtureBenchmarkError(f"no pure validation spectrum of {', '.join(kinds)} was fitted: min_gain cannot be fitted")
    by_kind = {kind: float(np.quantile(gains, quantile)) for kind, gains in gains_by_kind.items() if len(gains)}
    return float(np.quantile(np.concatenate(fitted), quantile)), by_kind


def joint_gain(tried: np.ndarray) -> np.ndarray:
    """(n,) the fraction of the first component's residual that the second and third remove together, from (n, 3)
    step gains."""
    return 1.0 - (1.0 - tried[:, 1]) * (1.0 - tried[:, 2])


def fit_thresholds(pure_tried: dict[str, np.ndarray], binary_tried: np.ndarray) -> dict[str, Any]:
    """The mixture fit's three thresholds (edge.mixtures.MixtureAnalyser) from validation fits of three steps each,
    whatever they removed: ``pure_tried``: kind -> (n, 3) step gains of pure spectra, ``binary_tried``: (n, 3) of
    binary mixtures. ``min_gain`` and ``min_pair_gain`` by :func:`fit_min_gain` on the pure spectra's second-step
    and joint gains, ``min_third_gain`` the :data:`THIRD_QUANTILE` quantile of the binaries' third step; also each
    kind's own quantiles, for the report. (The lowest pair threshold that kept the two rules' union at 4 % was tried
    first: where few pure spectra pass the third's threshold it falls near 0, and three components then need the
    third's gain alone.)"""
    if not len(binary_tried):
        raise MixtureBenchmarkError("no binary validation mixture was fitted: min_third_gain cannot be fitted")
    min_gain, by_kind = fit_min_gain({kind: t[:, 1] for kind, t in pure_tried.items()})
    min_pair_gain, pair_by_kind = fit_min_gain({kind: joint_gain(t) for kind, t in pure_tried.items()})
    return {
        "min_gain": min_gain,
        "min_pair_gain": min_pair_gain,
        "min_third_gain": float(np.quantile(binary_tried[:, 2], THIRD_QUANTILE)),
        "min_gain_by_kind": by_kind,
        "min_pair_gain_by_kind": pair_by_kind,
    }


def _tried(fits: list[Any]) -> np.ndarray:
    """(n, 3) the gains of each fit's three steps (0 for a step not taken: nothing was left to explain)."""
    return np.array([(f.tried_gains + [0.0, 0.0, 0.0])[:3] for f in fits if f is not None]).reshape(-1, 3)


def score_fits(fits: list[Any], truth: list[list[str]], shares: np.ndarray | None = None) -> dict[str, float]:
    """Figures of mixture fits against the true minerals (and shares, where known)."""
    all_named = named_right = reported = extra = 0
    share_errors: list[float] = []
    true_total = sum(len(t) for t in truth)
    for i, (fit, names) in enumerate(zip(fits, truth)):
        got = [] if fit is None else fit.components
        got_names = [c.mineral for c in got]
        all_named += set(names) <= set(got_names)
        named_right += len(set(names) & set(got_names))
        reported += len(got_names)
        extra += len(got_names) > len(names)
        if shares is not None:
            share_errors += [abs(c.share - float(shares[i][names.index(c.mineral)])) for c in got if c.mineral in names]
    n = max(len(truth), 1)
    return {
        "spectra": len(truth),
        "all_named": all_named / n,
        "precision": named_right / max(reported, 1),
        "recall": named_right / max(true_total, 1),
        "more_components_than_true": extra / n,
        "share_mae": float(np.mean(share_errors)) if share_errors else float("nan"),
    }


def _fit_all(analyser: MixtureAnalyser, matcher: Matcher, probabilities: np.ndarray, X: np.ndarray) -> tuple[list[Any], float]:
    """The device's mixture fit of each spectrum, with its fused ranking's first minerals as candidates; and the
    mean fit time, ms."""
    fits, spent = [], 0.0
    for p, x in zip(probabilities, X):
        named = [m for m, _ in matcher.match(p, x, k=MIXTURE_CANDIDATES).top]  # as the device passes them
        started = time.perf_counter()
        fits.append(analyser.fit(x, named))
        spent += time.perf_counter() - started
    return fits, 1e3 * spent / max(len(X), 1)


def mixture_report(
    run_dir: str | Path, field_set: str | Path | FieldSet | None = None, count: int = 300, seed: int = 0
) -> dict[str, Any]:
    """The mixture benchmark of one grouped run (see the module docstring); ``count`` mixtures of each kind."""
    run: Run = load_run(run_dir)
    if run.split.protocol != "grouped":
        raise MixtureBenchmarkError(f"{run_dir}: a {run.split.protocol} split; the benchmark needs a grouped run (new specimens only)")
    dataset: SpectraDataset = run.load_dataset()
    field_path = field_set if field_set is not None else default_path()
    field = None if field_path is None else (field_path if isinstance(field_path, FieldSet) else load_field_set(field_path))
    from trainer.embedding import keras_search
    from trainer.export import reference_library

    # the model's probabilities as the device gives them: with its embedding search, where it has one
    predict, _ = keras_search(run, dataset, run.build_trained_model(), field)
    train = run.split.train
    library = reference_library(dataset, train)
    groups = derive_groups(dataset.X[train], dataset.mineral[train], dataset.specimen[train])
    group_of = {m: frozenset(g) for g in groups for m in g}
    fusion = validation_fusion(run, dataset, library, field, predict)
    matcher = Matcher(run.classes, library, fusion, groups)
    known = set(library.mineral_names)

    def part(rows: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        rows = rows[np.isin(dataset.mineral[rows], list(known))]
        return dataset.X[rows], [[str(m)] for m in dataset.mineral[rows]]

    def field_part(specimens: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        if field is None:
            return np.zeros((0, GRID_SIZE), np.float32), []
        rows = field.rows_of(specimens, run.classes)
        return field.X[rows], [[str(m)] for m in field.mineral[rows]]

    rng = np.random.default_rng(seed)
    # 1. the thresholds from validation spectra, each fitted with three components whatever they remove
    val_X, val_truth = part(run.split.val)
    val_field_X, _ = field_part(dataset.specimen[run.split.val])
    excellent_val = val_X[rng.permutation(len(val_X))[: 2 * count]]
    pure_val = {
        "excellent": excellent_val[:count],
        "field_degraded": field_degrade(excellent_val[count:], seed=seed + 1),
        "fair_poor_files": val_field_X,
    }
    def forced(k: int) -> MixtureAnalyser:
        """The fit with ``k`` components whatever they remove."""
        return MixtureAnalyser(library, min_gain=-1.0, min_pair_gain=-1.0, min_third_gain=-1.0, max_components=k, groups=groups)

    probing = forced(3)
    tried = {kind: _tried(_fit_all(probing, matcher, predict(X), X)[0]) if len(X) else np.zeros((0, 3)) for kind, X in pure_val.items()}
    binary_val, _, _ = draw_mixtures(val_X, np.array([t[0] for t in val_truth]), 2, count, np.random.default_rng(seed + 100), group_of)
    thresholds = fit_thresholds(tried, _tried(_fit_all(probing, matcher, predict(binary_val), binary_val)[0]))
    analyser = MixtureAnalyser(library, groups=groups, **{name: thresholds[name] for name in THRESHOLDS})

    # 2. the test part, scored with it
    test_X, test_truth = part(run.split.test)
    test_minerals = np.array([t[0] for t in test_truth])
    pick = rng.permutation(len(test_X))[:count]
    cases: dict[str, tuple[np.ndarray, list[list[str]], np.ndarray | None]] = {
        "pure_excellent": (test_X[pick], [test_truth[i] for i in pick], None),
        "pure_fair_poor_files": (*field_part(dataset.specimen[run.split.test]), None),
        "pure_field": (field_degrade(test_X[pick], seed=seed + 4), [test_truth[i] for i in pick], None),
    }
    for k, name in ((2, "binary"), (3, "ternary")):
        mixed, drawn, drawn_shares = draw_mixtures(test_X, test_minerals, k, count, rng, group_of)
        cases[name] = (mixed, drawn, drawn_shares)
        cases[f"{name}_field"] = (field_degrade(mixed, seed=seed + k), drawn, drawn_shares)
    figures: dict[str, Any] = {}
    probabilities = {name: predict(X) for name, (X, _, _) in cases.items()}
    for name, (X, truth, shares) in cases.items():
        fits, ms = _fit_all(analyser, matcher, probabilities[name], X)
        figures[name] = {**score_fits(fits, truth, shares), "fit_ms": ms}
        if shares is not None and len(truth) and len(truth[0]) == 2:
            inside = np.all((shares >= TARGET_SHARES[0]) & (shares <= TARGET_SHARES[1]), axis=1)
            chosen = np.flatnonzero(inside)
            figures[f"{name}_0.3-0.7"] = score_fits([fits[i] for i in chosen], [truth[i] for i in chosen], shares[chosen])
    # the ceiling no threshold can pass: the same mixtures fitted with as many components as they hold
    for k, name in ((2, "binary"), (3, "ternary")):
        X, truth, shares = cases[name]
        figures[f"{name}_forced"] = score_fits(_fit_all(forced(k), matcher, probabilities[name], X)[0], truth, shares)
    return {
        "run": str(run_dir),
        **thresholds,
        "pure_validation_spectra": {kind: int(len(gains)) for kind, gains in tried.items()},
        "library_spectra": len(library),
        "groups": len(groups),
        "figures": figures,
    }


#: The rows of the summary table: (figure key, what it is called there).
ROWS = (
    ("pure_excellent", "pure, RRUFF excellent"),
    ("pure_field", "pure, field-degraded"),
    ("pure_fair_poor_files", "pure, fair/poor files"),
    ("binary", "binary, shares 0.2-0.8"),
    ("binary_0.3-0.7", "binary, shares 0.3-0.7"),
    ("binary_field", "binary, field-degraded"),
    ("binary_field_0.3-0.7", "binary field, 0.3-0.7"),
    ("ternary", "ternary"),
    ("ternary_field", "ternary, field-degraded"),
    ("binary_forced", "binary, forced to two"),
    ("ternary_forced", "ternary, forced to three"),
)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation of the finite values (nan, nan where none is: a share error of pure spectra)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return (float(finite.mean()), float(finite.std())) if finite.size else (float("nan"), float("nan"))


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over runs (splits) of each figure: ``{row: {figure: (mean, sd)}}``."""
    out: dict[str, Any] = {"runs": [r["run"] for r in reports]}
    out.update({name: [r[name] for r in reports] for name in THRESHOLDS})
    for key, _ in ROWS:
        cells = [r["figures"][key] for r in reports if key in r["figures"]]
        out[key] = {name: _mean_sd([c[name] for c in cells]) for name in cells[0]} if cells else {}
    return out
