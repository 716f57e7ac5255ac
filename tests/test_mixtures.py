"""Mixture analysis (edge/mixtures.py) on the bundled library: exact sums are recovered, pure spectra stay
one component, the threshold decides, and ``--mixtures`` adds ``components`` to the JSON line and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.bundle import load_bundle
from edge.cli import app
from edge.library import BIN, bin_spectra, measured_bins
from edge.mixtures import MIN_GAIN, MixtureAnalyser
from ramancore.preprocessing import GRID

runner = CliRunner()


@pytest.fixture(scope="module")
def library(edge_bundle):
    return load_bundle(edge_bundle).library()


@pytest.fixture(scope="module")
def analyser(library, edge_bundle):
    return MixtureAnalyser(library, groups=load_bundle(edge_bundle).manifest.groups)


def _reference(library, mineral: str) -> np.ndarray:
    """The first reference of ``mineral`` in the bundle's library, (GRID_SIZE,) float32."""
    return library.spectra[int(np.flatnonzero(library.minerals == mineral)[0])].astype(np.float32)


def _signal_share(spectra: list[np.ndarray], weights: list[float], mixed: np.ndarray) -> np.ndarray:
    """Each weighted spectrum's share of the summed area over the mixture's measured bins: what `share` reports."""
    lo, hi = measured_bins(mixed)
    areas = np.array([w * bin_spectra(s[None, :])[0, lo:hi].sum() for s, w in zip(spectra, weights)])
    return areas / areas.sum()


def _field_copy(spectrum: np.ndarray, shift: int = 4, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A pure spectrum as a new measurement of it: shifted by ``shift`` cm^-1, with noise, zeros kept outside."""
    rng = np.random.default_rng(seed)
    out = np.roll(spectrum, shift) + rng.normal(0, noise, spectrum.shape).astype(np.float32)
    out[spectrum == 0] = 0.0
    return np.clip(out, 0, None)


def test_nnls_recovers_the_shares_of_a_sum_of_two_references(library, analyser):
    quartz, calcite = _reference(library, "Quartz"), _reference(library, "Calcite")
    mixed = 0.7 * quartz + 0.3 * calcite
    fit = analyser.fit(mixed)
    assert sorted(c.mineral for c in fit.components) == ["Calcite", "Quartz"]
    expected = dict(zip(["Quartz", "Calcite"], _signal_share([quartz, calcite], [0.7, 0.3], mixed)))
    for component in fit.components:
        assert component.share == pytest.approx(expected[component.mineral], abs=1e-3)
    assert fit.residual < 1e-3 and fit.hqi > 999.0
    # each component's curve is its term on the grid: together with the baseline they make the fitted sum
    lo, hi = measured_bins(mixed)
    assert np.allclose(sum(c.curve for c in fit.components)[lo * BIN : hi * BIN], fit.fitted[lo * BIN : hi * BIN], atol=1e-3)


def test_a_pure_spectrum_stays_one_component(library, analyser):
    for mineral in ("Quartz", "Diopside", "Forsterite", "Albite"):
        pure = _field_copy(_reference(library, mineral))
        fit = analyser.fit(pure)
        assert [c.mineral for c in fit.components] == [mineral], (mineral, fit.records(), fit.refused_gain)
        assert fit.components[0].share == pytest.approx(1.0) and 0.0 < fit.refused_gain <= MIN_GAIN


def test_the_threshold_decides_whether_a_component_is_reported(library):
    pure = _field_copy(_reference(library, "Diopside"))
    fit = MixtureAnalyser(library).fit(pure)
    just_above = MixtureAnalyser(library, min_gain=fit.refused_gain + 1e-6, max_components=2).fit(pure)
    just_below = MixtureAnalyser(library, min_gain=fit.refused_gain - 1e-6, max_components=2).fit(pure)
    assert len(just_above.components) == 1
    assert len(just_below.components) == 2  # the component the threshold dropped, once it is low enough


def test_three_references_summed_are_three_components(library, analyser):
    spectra = [_reference(library, m) for m in ("Quartz", "Calcite", "Diopside")]
    fit = analyser.fit(0.4 * spectra[0] + 0.35 * spectra[1] + 0.25 * spectra[2])
    assert sorted(c.mineral for c in fit.components) == ["Calcite", "Diopside", "Quartz"], fit.tried_gains


def test_three_components_are_judged_as_a_pair_after_the_first():
    """A ternary's second component removes only part of what the first leaves (two minerals are left in it): three
    are reported where the second and third together remove enough and the third alone does too, whatever the
    second alone removed; otherwise the second stands or falls by min_gain."""
    analyser = MixtureAnalyser.__new__(MixtureAnalyser)
    analyser.min_gain, analyser.min_pair_gain, analyser.min_third_gain = 0.7, 0.85, 0.45
    assert analyser.accepted_steps([0.9, 0.6, 0.8]) == 3  # joint 0.92, third 0.8: three, though the second alone is short
    assert analyser.accepted_steps([0.9, 0.6, 0.5]) == 1  # joint 0.80: neither three nor two
    assert analyser.accepted_steps([0.9, 0.95, 0.3]) == 2  # the third alone too small
    assert analyser.accepted_steps([0.9, 0.8]) == 2 and analyser.accepted_steps([0.9]) == 1 and analyser.accepted_steps([]) == 0


def test_classify_json_gains_components_and_nothing_else(library, tmp_path):
    pure = _reference(library, "Quartz")
    mixed = 0.6 * pure + 0.4 * _reference(library, "Calcite")
    files = []
    for name, spectrum in (("pure", pure), ("mixed", mixed)):
        keep = spectrum > 0
        path = tmp_path / f"{name}.csv"
        np.savetxt(path, np.column_stack([GRID[keep], spectrum[keep]]), delimiter=",")
        files.append(str(path))
    plain = runner.invoke(app, ["classify", "--json", *files])
    fitted = runner.invoke(app, ["classify", "--json", "--mixtures", *files])
    assert plain.exit_code == 0 and fitted.exit_code == 0, plain.output + fitted.output
    plain_records = [json.loads(line) for line in plain.stdout.splitlines()]
    fitted_records = [json.loads(line) for line in fitted.stdout.splitlines()]
    for before, after in zip(plain_records, fitted_records):
        assert "components" not in before
        components = after.pop("components")
        assert all(set(c) == {"mineral", "share", "id", "source"} for c in components)
        before.pop("latency_ms"), after.pop("latency_ms")
        assert before == after  # the answer itself is the single-mineral one, unchanged
    pure_record, mixed_record = fitted_records
    assert [c["mineral"] for c in json.loads(fitted.stdout.splitlines()[0])["components"]] == ["Quartz"]
    assert {c["mineral"] for c in json.loads(fitted.stdout.splitlines()[1])["components"]} == {"Quartz", "Calcite"}
    text = runner.invoke(app, ["classify", "--mixtures", files[1]])
    assert "mixture fit: " in text.stdout and "not a composition" in text.stdout


def test_listen_mixtures_json_lines_carry_components():
    done = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--count", "3", "--json", "--interval", "0.05", "--mixtures"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 3 and all(r["schema"] == 5 for r in records)
    for record in records:
        assert isinstance(record["components"], list)
        if record["top"]:
            assert record["components"] and abs(sum(c["share"] for c in record["components"]) - 1.0) < 1e-3


def test_min_gain_is_fitted_on_real_pure_spectra_not_pulled_down_by_synthetic_ones():
    """trainer mixtures fits min_gain on the real pure spectra: field-degraded copies, which seldom leave a residual
    worth a second mineral (many small gains), must not pull the threshold under what the real spectra reach."""
    from trainer.mixtures import fit_min_gain

    rng = np.random.default_rng(0)
    refused = {"excellent": rng.uniform(0.3, 0.8, 300), "fair_poor_files": rng.uniform(0.3, 0.9, 50), "field_degraded": rng.uniform(0.0, 0.2, 300)}
    min_gain, by_kind = fit_min_gain(refused, quantile=0.96)
    assert set(by_kind) == set(refused)
    real = np.concatenate([refused["excellent"], refused["fair_poor_files"]])
    assert np.mean(real > min_gain) <= 0.04  # at most 4 % of the real pure spectra would be given a second component
    assert min_gain > by_kind["field_degraded"]


def test_pair_and_third_thresholds_keep_their_promises():
    """min_gain and min_pair_gain each let at most 3 % of the real pure validation spectra through (field-degraded
    copies left out), min_third_gain a third to at most a tenth of the binary ones."""
    from trainer.mixtures import fit_thresholds, joint_gain

    rng = np.random.default_rng(1)
    pure = {"excellent": rng.uniform(0.2, 0.9, (300, 3)), "fair_poor_files": rng.uniform(0.2, 0.9, (50, 3)), "field_degraded": rng.uniform(0.0, 0.2, (300, 3))}
    binary = rng.uniform(0.1, 0.7, (300, 3))
    fitted = fit_thresholds(pure, binary)
    real = np.concatenate([pure["excellent"], pure["fair_poor_files"]])
    one_more = 0.03 + 1 / len(real)  # a quantile between two spectra
    assert np.mean(real[:, 1] > fitted["min_gain"]) <= one_more and np.mean(joint_gain(real) > fitted["min_pair_gain"]) <= one_more
    assert 0.08 <= np.mean(binary[:, 2] > fitted["min_third_gain"]) <= 0.1
