"""A bundle's model input smoothing (ramancore.preprocessing.smooth_measured_span, window in its manifest): the device
smooths what its network sees, and only that; a reader that does not know the step refuses the bundle."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.bundle import DEFAULT_BUNDLE, MANIFEST, BundleError, load_bundle, with_input_smoothing
from edge.runtime import Classifier
from ramancore.preprocessing import smooth_measured_span


@pytest.fixture(scope="module")
def smoothed_bundle(tmp_path_factory):
    """The shipped bundle, copied, with a 21 cm^-1 input smoothing written into its manifest."""
    out = tmp_path_factory.mktemp("smoothed") / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, out)
    return with_input_smoothing(load_bundle(out), {"window_cm1": 21.0, "polyorder": 2, "fitted_on": "a test"})


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory):
    """The shipped bundle, copied, with its input smoothing switched off (0 cm^-1)."""
    out = tmp_path_factory.mktemp("plain") / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, out)
    return with_input_smoothing(load_bundle(out), {"window_cm1": 0.0})


def _demo_spectrum() -> np.ndarray:
    _, spectrum = load_bundle().demo_spectra()[2]
    noisy = spectrum + np.where(spectrum > 0, np.random.default_rng(0).normal(0, 0.03, spectrum.size), 0)
    return np.clip(noisy, 0, 1).astype(np.float32)


def test_the_device_feeds_its_network_the_smoothed_input(smoothed_bundle, plain_bundle):
    x = _demo_spectrum()
    plain = Classifier(plain_bundle, num_threads=1)
    smoothed = Classifier(smoothed_bundle, num_threads=1)
    ((p_smoothed, e_smoothed),) = smoothed.member_outputs(x)
    ((p_by_hand, e_by_hand),) = plain.member_outputs(smooth_measured_span(x, 21.0))
    np.testing.assert_array_equal(p_smoothed, p_by_hand)
    np.testing.assert_array_equal(e_smoothed, e_by_hand)
    assert not np.array_equal(p_smoothed, plain.member_outputs(x)[0][0])


def test_the_smoothing_is_recorded_named_and_can_be_switched_off(smoothed_bundle, plain_bundle, tmp_path):
    assert smoothed_bundle.manifest.smoothing_cm1 == 21.0
    assert smoothed_bundle.model_id.endswith("-s21") and plain_bundle.model_id == smoothed_bundle.model_id.removesuffix("-s21")
    assert any(what == "input smoothing" for what, _ in smoothed_bundle.manifest.summary_rows())
    off = shutil.copytree(smoothed_bundle.path, tmp_path / "off")
    unsmoothed = with_input_smoothing(load_bundle(off), {"window_cm1": 0.0})
    assert unsmoothed.manifest.smoothing_cm1 == 0.0 and unsmoothed.model_id == plain_bundle.model_id
    assert json.loads((off / MANIFEST).read_text())["format_version"] == 2  # older readers answer it alike: they may read it


def test_a_reader_of_the_older_format_would_ignore_it_so_versions_are_checked(smoothed_bundle, tmp_path):
    assert json.loads((smoothed_bundle.path / MANIFEST).read_text())["format_version"] == 3
    future = shutil.copytree(smoothed_bundle.path, tmp_path / "future")
    manifest = json.loads((future / MANIFEST).read_text())
    manifest["format_version"] = 4
    (future / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 4 is not supported"):
        load_bundle(future)
