from __future__ import annotations

import numpy as np
import pytest

from edge.spectrum_files import read_spectrum_file
from ramancore.preprocessing import GRID, GRID_SIZE, PreprocessingError, is_on_grid, normalise_min_max, preprocess, smooth_measured_span

#: The published vectors are float32 copies of the paper's float64 text, and ours are float64
#: results cast to float32: on x86-64 all 149 shared pairs come out bit-identical (in float64
#: the largest difference is 3.0e-8, the float32 rounding of the published copy). The bound
#: allows a float32 ulp or two from another libm or CPU, far below any real step difference
#: (a wrong normalisation order or grid shifts values by 1e-3 or more).
PAPER_TOLERANCE = 1e-6


def test_grid_is_30_to_1599_at_one_wavenumber():
    assert GRID_SIZE == 1570 and GRID[0] == 30 and GRID[-1] == 1599
    assert np.all(np.diff(GRID) == 1)


def test_normalise_first_then_zero_fill_outside_measured_range():
    x = np.linspace(500.0, 1000.0, 251)
    y = 100.0 + 50.0 * np.exp(-0.5 * ((x - 700.0) / 5.0) ** 2)  # offset baseline, one band
    v = preprocess(x, y)
    assert v.dtype == np.float32 and v.shape == (GRID_SIZE,)
    outside = (GRID < 500) | (GRID > 1000)
    assert np.all(v[outside] == 0)
    inside = v[~outside]
    assert inside.min() == pytest.approx(0.0, abs=1e-6)  # the baseline went to 0, not the zero fill
    assert v[GRID == 700][0] == pytest.approx(1.0)


def test_resampling_is_linear_between_measured_points():
    x = np.array([29.5, 100.5, 200.5, 1700.0])
    y = np.array([0.0, 1.0, 0.0, 0.5])
    v = preprocess(x, y)
    assert v[GRID == 100][0] == pytest.approx(np.interp(100, x, normalise_min_max(y)))
    assert v[GRID == 150][0] == pytest.approx(0.505, abs=1e-6)  # (200.5 - 150) / 100


def test_descending_input_gives_the_same_vector():
    x = np.linspace(200.0, 1200.0, 500)
    y = np.sin(x / 50.0) + 2
    np.testing.assert_array_equal(preprocess(x, y), preprocess(x[::-1], y[::-1]))


def test_flat_and_out_of_range_spectra_are_refused():
    with pytest.raises(PreprocessingError, match="flat spectrum"):
        preprocess(np.arange(100.0, 200.0), np.full(100, 7.0))
    with pytest.raises(PreprocessingError, match="outside the model grid"):
        preprocess(np.arange(2000.0, 3000.0), np.random.default_rng(0).random(1000))


def test_is_on_grid_only_for_published_model_inputs():
    v = preprocess(np.linspace(100, 1500, 300), np.random.default_rng(1).random(300))
    assert is_on_grid(GRID, v)
    assert not is_on_grid(GRID, v * 1000)  # raw counts on the grid still need normalising
    assert not is_on_grid(GRID[:-1], v[:-1])


def test_rruff_processed_files_match_the_papers_vectors(rruff_sample, dataset2_npz):
    """Our reader + preprocessing on RRUFF's own files reproduces the paper's Dataset_2 rows."""
    with np.load(dataset2_npz) as data:
        published = dict(zip(data["filename"].tolist(), data["intensity"]))
    compared = 0
    for path in sorted(rruff_sample.glob("*Raman_Data_Processed*.txt")):
        if path.name not in published:
            continue
        s = read_spectrum_file(path)
        difference = float(np.max(np.abs(preprocess(s.x, s.y) - published[path.name])))
        assert difference < PAPER_TOLERANCE, path.name
        compared += 1
    assert compared == 149, "149 of the 150 shared Processed files are in the published Dataset_2"


def _band_with_noise(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A model input: one 20 cm^-1 wide Gaussian band at 600 cm^-1 measured over 200..1400 cm^-1, clean and noisy."""
    inside = (GRID >= 200) & (GRID <= 1400)
    clean = np.where(inside, np.exp(-0.5 * ((GRID - 600) / 8.5) ** 2), 0.0)
    noisy = clean + np.where(inside, np.random.default_rng(seed).normal(0, 0.05, GRID.size), 0.0)
    noisy[inside] = (noisy[inside] - noisy[inside].min()) / np.ptp(noisy[inside])
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_smoothing_removes_noise_keeps_the_band_and_the_zero_fill():
    clean, noisy = _band_with_noise()
    smoothed = smooth_measured_span(noisy, 21.0)
    inside = (GRID >= 200) & (GRID <= 1400)
    assert smoothed.dtype == np.float32 and smoothed.shape == noisy.shape
    assert np.all(smoothed[~inside] == 0.0)  # the zero fill is not smeared into the spectrum
    assert smoothed[inside].min() == 0.0 and smoothed[inside].max() == 1.0  # min-max again over the measured span
    assert np.std(smoothed[inside] - clean[inside]) < 0.5 * np.std(noisy[inside] - clean[inside])
    assert abs(int(np.argmax(smoothed)) - int(np.argmax(clean))) <= 1  # the band stays where it was


def test_smoothing_window_is_in_wavenumbers_and_small_windows_are_off():
    _, noisy = _band_with_noise(1)
    for off in (0.0, 1.0, 3.0):
        assert np.array_equal(smooth_measured_span(noisy, off), noisy)
    narrow, wide = smooth_measured_span(noisy, 9.0), smooth_measured_span(noisy, 31.0)
    inside = (GRID >= 200) & (GRID <= 1400)
    roughness = [float(np.std(np.diff(s[inside]))) for s in (noisy, narrow, wide)]
    assert roughness[0] > roughness[1] > roughness[2]
    # 20 cm^-1 is rounded up to 21 grid points, the same window
    assert np.array_equal(smooth_measured_span(noisy, 20.0), smooth_measured_span(noisy, 21.0))


def test_smoothing_is_scipys_savitzky_golay_with_its_polynomial_edges():
    from scipy.signal import savgol_filter

    _, noisy = _band_with_noise(2)
    inside = (GRID >= 200) & (GRID <= 1400)
    for window in (9, 21, 31):
        expected = savgol_filter(noisy[inside].astype(np.float64), window, 2, mode="interp")
        expected = (expected - expected.min()) / np.ptp(expected)
        np.testing.assert_allclose(smooth_measured_span(noisy, window)[inside], expected, atol=1e-6)
