"""Fusion weights and answer thresholds, fitted where they will be used: on specimens the model never saw.

Data flow (``trainer export``): the exported bundle's outputs on the validation spectra of a
grouped split (through the edge interpreter) and, for each spectrum, every mineral's best
correlation in the bundle's library (training spectra only, :class:`edge.library.Matcher`) ->
:func:`fit_fusion` (temperature, library weight and the weight's fall with the spectrum's noise, by least
negative log-likelihood of the fused softmax) -> :func:`threshold_for_precision` (the *identified* threshold: answers at or above it
were right >= 95 % of the time) and :func:`not_in_library_floor` -> an
:class:`edge.library.Calibration` for the manifest. :func:`score_answers` measures a bundle the
way the device answers, for the manifest and docs/RESULTS.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from edge.library import Calibration, Matcher, hqi, softmax
from edge.ranking import rank
from ramancore.preprocessing import noise_level

#: Identified answers must have been right this often on validation.
IDENTIFIED_PRECISION = 0.95
#: Share of validation spectra (of minerals the library holds) allowed under the not-in-library floor.
NOT_IN_LIBRARY_MISS = 0.01
PRECISIONS = (0.90, 0.95, 0.99)


def features(matcher: Matcher, probabilities: np.ndarray, spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per spectrum: model probabilities and best library correlation of every candidate (n, m) each,
    and every reference's correlation's best HQI (n,)."""
    P, R, best = [], [], []
    for proba, spectrum in zip(probabilities, spectra):
        r = matcher.library.correlations(spectrum)
        p, r_best = matcher.features(proba, matcher.library.best_per_mineral(r))
        P.append(p)
        R.append(r_best)
        best.append(float(hqi(r.max())) if len(r) else 0.0)
    return np.array(P), np.array(R), np.array(best)


#: Starting points of the noise decay's fit (per unit of noise_level): the likelihood has flat stretches in it.
NOISE_DECAY_STARTS = (0.0, 10.0, 100.0, 1000.0)
#: The largest decay fitted: at 1000 the library is off from a noise of about 0.005, between excellent and fair.
MAX_NOISE_DECAY = 1000.0


def fit_fusion(
    P: np.ndarray, R: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, noise: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(temperature, library_weight, library_noise_decay) minimising the fused softmax's mean negative log-likelihood.

    ``P``, ``R``: (n, m) candidate probabilities and best correlations; ``y``: (n,) true candidate index;
    ``sample_weight``: (n,) how much each spectrum counts (None: all alike); ``noise``: (n,) each spectrum's
    :func:`ramancore.preprocessing.noise_level`, the library weight then falling as ``exp(-decay * noise)``
    (None: decay 0, one weight for all).
    """
    rows = np.arange(len(y))
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    q = np.zeros(len(y)) if noise is None else np.asarray(noise, dtype=np.float64)

    def nll(params: np.ndarray) -> float:
        inverse_t, weight, decay = params
        fusion = Calibration(temperature=1.0 / inverse_t, library_weight=weight, library_noise_decay=decay)
        log_p = log_softmax(fusion.fused_logits(P, R, q), axis=1)[rows, y]  # the device's formula
        return float(-np.sum(w * log_p) / np.sum(w))

    bounds = [(0.02, 50.0), (0.0, 500.0), (0.0, MAX_NOISE_DECAY if noise is not None else 0.0)]
    starts = NOISE_DECAY_STARTS if noise is not None else (0.0,)
    fit = min((minimize(nll, np.array([1.0, 1.0, start]), method="L-BFGS-B", bounds=bounds) for start in starts), key=lambda f: f.fun)
    return float(1.0 / fit.x[0]), float(fit.x[1]), float(fit.x[2])


def fit_user_entry_map(R: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of P(candidate is the mineral | its best correlation r) = sigmoid(intercept + slope * r),
    by least log-loss over every (spectrum, candidate) pair of known minerals: what a user-only mineral,
    which has no model output, enters the fusion with. ``R``: (n, m) best correlations; ``y``: (n,) true index."""
    target = np.arange(R.shape[1])[None, :] == y[:, None]
    has_reference = R != 0.0  # candidates without a reference in the library say nothing
    r, t = R[has_reference], target[has_reference].astype(np.float64)

    def loss(params: np.ndarray) -> float:
        z = params[0] + params[1] * r
        return float(np.mean(np.logaddexp(0.0, z) - t * z))

    fit = minimize(loss, np.array([0.0, 1.0]), method="L-BFGS-B")
    return float(fit.x[0]), float(fit.x[1])


def threshold_for_precision(confidence: np.ndarray, correct: np.ndarray, precision: float) -> tuple[float, float, float]:
    """The lowest confidence ``t`` such that answers with confidence >= t are right >= ``precision``
    of the time; (t, precision there, coverage there). (inf, nan, 0) if no threshold reaches it."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    running = hits / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(running >= precision)
    if ok.size == 0:
        return float("inf"), float("nan"), 0.0
    t = float(confidence[order[int(ok[-1])]])  # answers tied at t are counted too, as the device answers them alike
    chosen = confidence >= t
    return t, float(np.mean(correct[chosen])), float(np.mean(chosen))


def not_in_library_floor(best_hqi: np.ndarray, best_other_hqi: np.ndarray) -> tuple[float, dict[str, float]]:
    """The HQI floor under which at most NOT_IN_LIBRARY_MISS of known minerals fall, and how
    often a mineral missing from the library (simulated: its own references left out) falls under it."""
    floor = float(np.quantile(best_hqi, NOT_IN_LIBRARY_MISS))
    return floor, {
        "known_below": float(np.mean(best_hqi < floor)),
        "absent_below": float(np.mean(best_other_hqi < floor)),
    }


def calibrate(
    matcher: Matcher, probabilities: np.ndarray, spectra: np.ndarray, y: np.ndarray, source: str, sample_weight: np.ndarray | None = None
) -> Calibration:
    """A calibration fitted on validation spectra: ``probabilities`` (n, classes) the bundle's
    outputs, ``spectra`` (n, GRID_SIZE) the model inputs, ``y`` (n,) label indices; ``sample_weight`` (n,): how
    much each spectrum counts in the fusion's fit (None: all alike)."""
    P, R, best_hqi = features(matcher, probabilities, spectra)
    noise = np.array([noise_level(x) for x in spectra])
    temperature, weight, decay = fit_fusion(P, R, y, sample_weight, noise)
    user_intercept, user_slope = fit_user_entry_map(R, y)
    fusion = Calibration(temperature=temperature, library_weight=weight, library_noise_decay=decay)
    confidence = softmax(fusion.fused_logits(P, R, noise))  # the device's fusion, row-wise
    answer = rank(confidence)[:, 0]
    top = confidence[np.arange(len(y)), answer]
    t, precision, coverage = threshold_for_precision(top, answer == y, IDENTIFIED_PRECISION)
    others = R.copy()
    others[np.arange(len(y)), y] = -1.0
    floor, floor_stats = not_in_library_floor(best_hqi, hqi(others.max(axis=1)))
    return Calibration(
        temperature=temperature,
        library_weight=weight,
        library_noise_decay=decay,
        identified=t,
        not_in_library_hqi=floor,
        user_intercept=user_intercept,
        user_slope=user_slope,
        fitted={
            "on": source,
            "spectra": int(len(y)),
            "identified": {"target_precision": IDENTIFIED_PRECISION, "precision": precision, "coverage": coverage},
            "not_in_library": {"known_share_allowed": NOT_IN_LIBRARY_MISS, **floor_stats},
        },
    )


def coverage_at(confidence: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """Risk-coverage: the share of spectra answered at each target precision (PRECISIONS)."""
    return {f"{p:.2f}": threshold_for_precision(confidence, correct, p)[2] for p in PRECISIONS}


def _topk(ranked: list[np.ndarray], y: np.ndarray) -> dict[str, float]:
    return {f"top{k}": float(np.mean([y[i] in r[:k] for i, r in enumerate(ranked)])) for k in (1, 3)}


def score_answers(matcher: Matcher, probabilities: np.ndarray, spectra: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Model alone, library alone and fused, on labelled spectra, ranked and answered as the device does.

    Model alone: the model's ranking, its top-1 probability as confidence. Library alone: minerals
    by best correlation, the best HQI as confidence. Fused: :meth:`Matcher.match`, the device's path,
    and the calibrated states (``identified`` precision and coverage, ``not in library`` rate);
    ``group_top1``: right when the true mineral is named or in the group answered (the matcher's groups).
    """
    cal = matcher.calibration
    out: dict[str, Any] = {}
    model_rank = [rank(p) for p in probabilities]
    model_conf = np.array([p[r[0]] for p, r in zip(probabilities, model_rank)])
    out["model"] = {**_topk(model_rank, y), "coverage_at_precision": coverage_at(model_conf, np.array([r[0] for r in model_rank]) == y)}
    names = {m: i for i, m in enumerate(matcher.candidates)}
    gate = cal.gate()  # the device's
    lib_rank, lib_conf, fused_rank, fused_conf, best_hqi, states = [], [], [], [], [], []
    group_hit: list[bool] = []
    for proba, spectrum, truth in zip(probabilities, spectra, y):
        r = matcher.library.correlations(spectrum)
        best = matcher.library.best_per_mineral(r)
        lib_rank.append(np.array([names[matcher.library.mineral_names[i]] for i in rank(best)[:5]]))
        lib_conf.append(float(hqi(best.max())))
        match = matcher.match(proba, spectrum, k=5)
        fused_rank.append(np.array([names[m] for m, _ in match.top]))
        fused_conf.append(match.confidence)
        best_hqi.append(match.best_hqi)
        states.append(gate.state(match.stated_confidence, match.best_hqi, None, match.evidence))
        group_hit.append(matcher.candidates[truth] in (match.group or [match.top[0][0]]))
    lib_conf_a, fused_conf_a, best_hqi_a = np.array(lib_conf), np.array(fused_conf), np.array(best_hqi)
    out["library"] = {**_topk(lib_rank, y), "coverage_at_precision": coverage_at(lib_conf_a, np.array([r[0] for r in lib_rank]) == y)}
    fused_right = np.array([r[0] for r in fused_rank]) == y
    identified = np.array(states) == "identified"
    out["fused"] = {
        **_topk(fused_rank, y),
        "group_top1": float(np.mean(group_hit)),
        "coverage_at_precision": coverage_at(fused_conf_a, fused_right),
        "identified": {
            "precision": float(np.mean(fused_right[identified])) if identified.any() else float("nan"),
            "coverage": float(np.mean(identified)),
            "share_of_right_answers": float(np.mean(identified[fused_right])) if fused_right.any() else float("nan"),
        },
        "not_in_library": float(np.mean(best_hqi_a < cal.not_in_library_hqi)),
    }
    out["spectra"] = int(len(y))
    return out
