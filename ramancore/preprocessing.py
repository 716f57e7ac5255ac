"""The one preprocessing step shared by the trainer and the device (Sang et al. 2021).

Each spectrum is min-max normalised on its own measured points, then linearly resampled onto
the model grid, 30..1599 cm^-1 at 1 cm^-1 (1570 points), with zeros where it was not measured.
Normalising first matters: the zero fill must not take part in the min-max.
Checked against the paper's published Dataset_2 vectors (see tests/test_preprocessing.py).

A bundle may also smooth each model input before its network sees it (:func:`smooth_measured_span`, the window in
the bundle's manifest, fitted on validation spectra of new specimens by ``trainer export``): field spectra carry
noise at the grid's own scale that no band of a mineral has, and the network was trained on RRUFF's cleaner spectra.
It changes what the network sees, never the spectrum the library search, the gate's HQI or the mixture fit read.
:func:`noise_level` measures that noise: the library fusion weighs the library less on a noisy spectrum.
"""

from __future__ import annotations

import functools

import numpy as np

GRID_START_CM1 = 30
GRID_STOP_CM1 = 1599
GRID_STEP_CM1 = 1
#: The model input grid in Raman shift (cm^-1).
GRID = np.arange(GRID_START_CM1, GRID_STOP_CM1 + GRID_STEP_CM1, GRID_STEP_CM1, dtype=np.float64)
GRID_SIZE = GRID.size  # 1570


class PreprocessingError(ValueError):
    """A spectrum that cannot be put on the model grid (says why)."""


def normalise_min_max(y: np.ndarray) -> np.ndarray:
    """Scale intensities to 0..1; a flat spectrum has no shape to classify, so it is an error."""
    y = np.asarray(y, dtype=np.float64)
    lo, hi = float(np.min(y)), float(np.max(y))
    if not hi > lo:
        raise PreprocessingError("flat spectrum: all intensities are equal")
    return (y - lo) / (hi - lo)


def resample_to_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Linear interpolation of (x, y) onto ``grid``; zero outside the measured range of x.

    x may run either way; it must be strictly monotonic (readers check that).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x[0] > x[-1]:
        x, y = x[::-1], y[::-1]
    if x[-1] < grid[0] or x[0] > grid[-1]:
        raise PreprocessingError(
            f"measured range {x[0]:.1f}..{x[-1]:.1f} cm^-1 lies outside the model grid "
            f"{grid[0]:.0f}..{grid[-1]:.0f} cm^-1"
        )
    return np.interp(grid, x, y, left=0.0, right=0.0)


def preprocess(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Raman shift (cm^-1) and intensity of one spectrum -> float32 model input of GRID_SIZE points."""
    return resample_to_grid(x, normalise_min_max(y)).astype(np.float32)


#: Savitzky-Golay polynomial order of :func:`smooth_measured_span`: 2 keeps a band's height and width where the
#: window is narrower than the band (a moving average flattens it).
SMOOTHING_POLYORDER = 2


@functools.lru_cache(maxsize=8)
def _savgol_operators(points: int, polyorder: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Savitzky-Golay smoothing of ``points`` points as linear operators, computed once per window: the
    convolution kernel of the interior, and for the first and last ``points // 2`` points the least-squares polynomial
    through the window at either end, evaluated there (scipy's ``savgol_filter(mode="interp")``, at a fortieth of
    its cost per spectrum). numpy alone: the device's classify path needs no scipy (32-bit Raspberry Pi OS's
    minimal install, tests/test_tflite_runtime.py)."""
    vander = np.vander(np.arange(points, dtype=np.float64), polyorder + 1)
    fitted = vander @ np.linalg.pinv(vander)  # (points, points): the window's values -> its fitted polynomial's
    half = points // 2
    # the centre row is the interior's kernel (scipy's savgol_coeffs); reversed for np.convolve, symmetric anyway
    return fitted[half][::-1].copy(), fitted[:half], fitted[-half:]


def smooth_measured_span(vector: np.ndarray, window_cm1: float, polyorder: int = SMOOTHING_POLYORDER) -> np.ndarray:
    """A model input (GRID_SIZE,) smoothed over its measured span and min-max scaled there again; float32, same shape.

    ``window_cm1``: the Savitzky-Golay window in cm^-1 (the grid's unit; rounded up to an odd number of grid
    points); a window of ``polyorder + 1`` points or fewer, or longer than the measured span, leaves the input as it
    is (0: off). ``polyorder``: the fitted polynomial's order (default 2). The measured span runs from the first to
    the last non-zero point: the zero fill outside it is kept, never smoothed into the spectrum's edges.
    """
    x = np.asarray(vector, dtype=np.float32)
    points = int(round(window_cm1 / GRID_STEP_CM1)) | 1
    measured = np.flatnonzero(x)
    if points <= polyorder + 1 or len(measured) == 0:
        return x
    first, last = int(measured[0]), int(measured[-1]) + 1
    if last - first < points:
        return x
    span = x[first:last].astype(np.float64)
    kernel, head, tail = _savgol_operators(points, polyorder)
    half = points // 2
    smoothed = np.empty_like(span)
    smoothed[half:-half] = np.convolve(span, kernel, mode="valid")
    smoothed[:half] = head @ span[:points]
    smoothed[-half:] = tail @ span[-points:]
    lo, hi = float(smoothed.min()), float(smoothed.max())
    if not hi > lo:
        return x
    out = np.zeros_like(x)
    out[first:last] = (smoothed - lo) / (hi - lo)
    return out


def noise_level(vector: np.ndarray) -> float:
    """The noise of a model input (GRID_SIZE,), in its min-max scaled intensity: the robust standard deviation
    (1.4826 x the median absolute deviation) of its point-to-point differences over the measured span, / sqrt(2).

    Band flanks are a few of a span's differences, so the median ignores them: about 0.002 for RRUFF's excellent
    spectra, 0.009 for its fair ones and 0.025 for poor ones. 0 for a spectrum of fewer than 3 measured points.
    """
    x = np.asarray(vector, dtype=np.float64)
    measured = np.flatnonzero(x)
    if len(measured) < 3:
        return 0.0
    d = np.diff(x[measured[0] : measured[-1] + 1])
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def is_on_grid(x: np.ndarray, y: np.ndarray) -> bool:
    """True for a spectrum that is already a model input (the paper's published files are).

    Such a spectrum is taken as it is: normalising it again would stretch its interpolated
    maximum (just under 1) to exactly 1 and no longer match the published vectors.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    return (
        x.shape == GRID.shape
        and bool(np.array_equal(x, GRID))
        and float(np.min(y)) >= 0.0
        and float(np.max(y)) <= 1.0
    )
