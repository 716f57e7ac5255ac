"""Raman-indistinguishable groups: derived from spectra of different specimens, answered together on the device."""

from __future__ import annotations

import numpy as np

from edge.library import Calibration, Matcher, ReferenceLibrary
from ramancore.preprocessing import GRID
from trainer.groups import derive_groups


def bands(centres, width=5.0) -> np.ndarray:
    y = sum(1 / (1 + ((GRID - c) / width) ** 2) for c in centres)
    return (y / y.max()).astype(np.float32)


def noisy(spectrum: np.ndarray, seed: int) -> np.ndarray:
    return np.clip(spectrum + np.random.default_rng(seed).normal(0, 0.01, GRID.size), 0, 1).astype(np.float32)


SERIES = bands((210, 470, 1085))  # two series members with the same spectrum
OTHER = bands((155, 282, 712, 1435))
THIRD = bands((400, 900, 1300))


def _references():
    """Two specimens each of Series-Na, Series-Ca (identical spectra), Other and Third."""
    spectra, mineral, specimen = [], [], []
    for name, spectrum in (("SeriesNa", SERIES), ("SeriesCa", SERIES), ("Other", OTHER), ("Third", THIRD)):
        for k in range(2):
            spectra.append(noisy(spectrum, len(spectra)))
            mineral.append(name)
            specimen.append(f"{name}{k}")
    return np.array(spectra), np.array(mineral), np.array(specimen)


def test_minerals_with_identical_spectra_form_a_group_and_distinct_ones_do_not():
    spectra, mineral, specimen = _references()
    assert derive_groups(spectra, mineral, specimen) == [["SeriesCa", "SeriesNa"]]


def test_a_group_answer_for_members_the_evidence_cannot_separate_and_none_for_distinct_minerals():
    spectra, mineral, specimen = _references()
    library = ReferenceLibrary(spectra, mineral, specimen, ["bundle"] * len(mineral))
    labels = ["Other", "SeriesCa", "SeriesNa", "Third"]
    matcher = Matcher(labels, library, Calibration(temperature=1.0, library_weight=5.0), [["SeriesCa", "SeriesNa"]])
    match = matcher.match(np.array([0.05, 0.5, 0.4, 0.05]), noisy(SERIES, 99))
    assert match.group == ["SeriesCa", "SeriesNa"] and match.group_confidence > match.confidence
    distinct = matcher.match(np.array([0.8, 0.1, 0.05, 0.05]), noisy(OTHER, 98))
    assert distinct.group is None and distinct.group_confidence is None
    # a member named with the other far behind (the model tells them apart): no group answer
    separated = matcher.match(np.array([0.01, 0.97, 0.01, 0.01]), noisy(SERIES, 97))
    assert separated.group is None
    assert Matcher(labels, library, Calibration(temperature=1.0, library_weight=5.0)).match(
        np.array([0.05, 0.5, 0.4, 0.05]), noisy(SERIES, 99)
    ).group is None  # no groups shipped: one mineral as before
