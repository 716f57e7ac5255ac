"""Library search, fusion and calibration: correlations and HQI on crafted spectra, fitted weights
recovered from synthetic cases, thresholds that hold their precision, user-only minerals named."""

from __future__ import annotations

import numpy as np
import pytest

from edge.library import BIN, Calibration, Matcher, ReferenceLibrary, fused_logits, hqi, softmax
from ramancore.preprocessing import GRID, noise_level
from trainer.calibration import fit_fusion, not_in_library_floor, threshold_for_precision


def bands(centres, width=5.0, lo=30, hi=1599) -> np.ndarray:
    y = sum(1 / (1 + ((GRID - c) / width) ** 2) for c in centres)
    y = np.where((GRID >= lo) & (GRID <= hi), y, 0.0)
    return (y / y.max()).astype(np.float32)


QUARTZ = bands((128, 206, 264, 355, 464, 696, 808, 1085, 1160))
CALCITE = bands((155, 282, 712, 1086, 1435))
GYPSUM = bands((180, 414, 493, 618, 670, 1008, 1135))


def library(*entries) -> ReferenceLibrary:
    spectra = np.array([s for _, s in entries])
    names = [m for m, _ in entries]
    return ReferenceLibrary(spectra, names, [f"R{i}" for i in range(len(names))], ["bundle"] * len(names))


def test_hqi_is_1000_for_the_same_spectrum_scaled_and_offset():
    lib = library(("Quartz", QUARTZ), ("Calcite", CALCITE))
    r = lib.correlations(np.clip(0.5 * QUARTZ + 0.2, 0, 1))
    assert lib.entry(int(np.argmax(r)))["mineral"] == "Quartz"
    assert hqi(r.max()) == pytest.approx(1000, abs=1)
    assert hqi(-0.5) == 0 and hqi(0.5) == pytest.approx(250)


def test_correlation_uses_only_the_range_the_spectrum_was_measured_on():
    """A spectrum measured on 150-800 cm^-1 (zeros elsewhere) matches its mineral as well as a full one."""
    lib = library(("Quartz", QUARTZ), ("Calcite", CALCITE))
    short = bands((128, 206, 264, 355, 464, 696, 808, 1085, 1160), lo=150, hi=800)
    short /= short.max()
    r = lib.correlations(short)
    assert r.max() > 0.97 and lib.entry(int(np.argmax(r)))["mineral"] == "Quartz"
    # over the whole grid the zeros outside 150-800 would drag it down
    centred = lambda v: (v - v.mean()) / np.linalg.norm(v - v.mean())  # noqa: E731
    assert float(centred(short) @ centred(QUARTZ)) < r.max() - 0.05
    assert lib.correlations(np.zeros_like(QUARTZ)).tolist() == [0.0, 0.0]  # nothing measured: no match
    assert BIN == 2


def test_best_per_mineral_takes_the_best_of_each_minerals_references():
    lib = library(("Quartz", QUARTZ), ("Calcite", CALCITE), ("Quartz", bands((464, 1085))))
    best = lib.best_per_mineral(lib.correlations(QUARTZ))
    assert lib.mineral_names == ["Calcite", "Quartz"] and best[1] == pytest.approx(1.0, abs=1e-4) and best[0] < 0.5


def test_fusion_weights_are_recovered_from_synthetic_cases():
    """Labels drawn from a known fusion are fitted back to its temperature and library weight."""
    rng = np.random.default_rng(0)
    n, m, temperature, weight = 4000, 8, 2.0, 6.0
    P = softmax(rng.normal(0, 2.5, (n, m)))
    R = rng.uniform(-0.2, 1.0, (n, m))
    y = np.array([rng.choice(m, p=p) for p in softmax(fused_logits(P, R, temperature, weight))])
    t, w, decay = fit_fusion(P, R, y)
    assert t == pytest.approx(temperature, rel=0.15) and w == pytest.approx(weight, rel=0.15) and decay == 0.0
    _, w0, _ = fit_fusion(P, rng.uniform(-0.2, 1.0, (n, m)), y)  # a library that knows nothing gets no weight
    assert w0 < 0.5


def test_the_library_weight_falling_with_noise_is_recovered_and_applied_by_the_matcher():
    """Labels drawn from a fusion whose library weight falls with the spectrum's noise are fitted back to it; a
    fit with no noise to go on keeps one weight; the device's matcher weighs the library by the spectrum's noise."""
    rng = np.random.default_rng(1)
    n, m, temperature, weight, decay = 6000, 8, 1.0, 6.0, 200.0
    P = softmax(rng.normal(0, 2.5, (n, m)))
    R = rng.uniform(-0.2, 1.0, (n, m))
    noise = rng.choice([0.002, 0.01, 0.03], n)  # excellent, fair and poor spectra
    truth = Calibration(temperature=temperature, library_weight=weight, library_noise_decay=decay)
    y = np.array([rng.choice(m, p=p) for p in softmax(fused_logits(P, R, temperature, truth.library_weight_at(noise)))])
    t, w, d = fit_fusion(P, R, y, noise=noise)
    assert t == pytest.approx(temperature, rel=0.15) and w == pytest.approx(weight, rel=0.2) and d == pytest.approx(decay, rel=0.3)
    assert fit_fusion(P, R, y)[2] == 0.0
    # the matcher: a quiet spectrum gets the library's full say, the same spectrum with noise hardly any
    lib = library(("Quartz", QUARTZ), ("Calcite", CALCITE))
    quiet = QUARTZ.copy()
    noisy = np.clip(QUARTZ + np.where(QUARTZ > 0, np.random.default_rng(2).normal(0, 0.03, QUARTZ.shape), 0.0), 1e-3, None)
    matcher = Matcher(["Calcite", "Quartz"], lib, Calibration(temperature=1.0, library_weight=5.0, library_noise_decay=500.0))
    model_says_calcite = np.array([0.9, 0.1])
    assert noise_level(quiet) < 0.001 < 0.02 < noise_level(noisy)
    assert matcher.match(model_says_calcite, quiet).top[0][0] == "Quartz"  # the library overrules the model
    assert matcher.match(model_says_calcite, noisy).top[0][0] == "Calcite"  # on noise, the model's answer stands
    flat = Matcher(["Calcite", "Quartz"], lib, Calibration(temperature=1.0, library_weight=5.0))
    assert flat.match(model_says_calcite, noisy).top[0][0] == "Quartz"  # without the decay, one weight for all


def test_identified_threshold_holds_its_precision():
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    t, precision, coverage = threshold_for_precision(confidence, correct, 0.95)
    assert (t, precision, coverage) == (0.8, 1.0, 0.5)
    t, precision, coverage = threshold_for_precision(confidence, correct, 0.8)
    assert t == 0.6 and precision == pytest.approx(5 / 6) and coverage == 0.75
    assert threshold_for_precision(confidence, np.zeros(8, bool), 0.9) == (float("inf"), pytest.approx(np.nan, nan_ok=True), 0.0)
    floor, stats = not_in_library_floor(np.linspace(500, 1000, 101), np.full(101, 300.0))
    assert floor == pytest.approx(505) and stats["absent_below"] == 1.0 and stats["known_below"] == pytest.approx(1 / 101)


def test_library_evidence_overrules_a_hesitant_model_and_user_only_minerals_are_named():
    lib = library(("Quartz", QUARTZ), ("Calcite", CALCITE))
    user = ReferenceLibrary(GYPSUM[None, :], ["Gypsum"], ["U0001"], ["user"])
    matcher = Matcher(["Calcite", "Quartz"], ReferenceLibrary.concat(lib, user), Calibration(temperature=1.0, library_weight=20.0))
    assert matcher.candidates == ["Calcite", "Quartz", "Gypsum"]
    # the model leans to Calcite, the spectrum is Quartz's: the library decides
    match = matcher.match(np.array([0.6, 0.4]), QUARTZ)
    assert match.top[0][0] == "Quartz" and match.source == "model" and match.library_hit["mineral"] == "Quartz"
    # a mineral the model does not know at all, held by the user library: named against a confident model
    # at the shipped bundle's weights, on its own evidence: its correlation mapped to a probability
    shipped = Matcher(["Calcite", "Quartz"], ReferenceLibrary.concat(lib, user), Calibration(temperature=0.92, library_weight=5.06))
    match = shipped.match(np.array([0.999, 0.001]), np.clip(GYPSUM + 0.01 * np.random.default_rng(1).normal(size=GRID.size), 0, 1))
    assert match.top[0][0] == "Gypsum" and match.source == "user library" and match.library_hit["id"] == "U0001"
    assert match.library_hit["gap"] > 0 and sum(c for _, c in matcher.match(np.array([0.5, 0.5]), QUARTZ, k=3).top) == pytest.approx(1.0)
    # with no library weight the model alone decides
    model_only = Matcher(["Calcite", "Quartz"], lib, Calibration(temperature=1.0, library_weight=0.0))
    assert model_only.match(np.array([0.6, 0.4]), QUARTZ).top[0][0] == "Calcite"


def test_user_entry_map_is_recovered_from_synthetic_candidates():
    """Correlations whose chance of being the right mineral follows a known logistic curve: the fit finds it."""
    from trainer.calibration import fit_user_entry_map

    rng = np.random.default_rng(0)
    R = rng.uniform(0.2, 1.0, (4000, 6))
    chance = 1.0 / (1.0 + np.exp(-(-12.0 + 14.0 * R)))
    y = np.array([rng.choice(6, p=row / row.sum()) for row in chance])  # one right mineral per spectrum
    intercept, slope = fit_user_entry_map(R, y)
    assert slope > 5.0 and intercept < -3.0
    fitted = 1.0 / (1.0 + np.exp(-(intercept + slope * R)))
    assert abs(fitted.sum() - len(y)) < 0.02 * len(y)  # as many right minerals expected as there are


def test_an_exact_zero_from_the_int8_model_does_not_silence_the_library():
    """int8 outputs are often exactly 0: without the floor, log(0) = -inf and no library evidence could ever
    name that mineral; with it, a perfect library match overrules a model that gave it nothing."""
    lib = library(("Quartz", QUARTZ), ("Calcite", CALCITE))
    logits = fused_logits(np.array([1.0, 0.0]), np.array([0.1, 1.0]), 1.0, 20.0)
    assert np.all(np.isfinite(logits))
    match = Matcher(["Calcite", "Quartz"], lib, Calibration(temperature=1.0, library_weight=20.0)).match(np.array([1.0, 0.0]), QUARTZ)
    assert match.top[0][0] == "Quartz"
