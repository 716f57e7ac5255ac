"""From raw detector counts to a spectrum the shared preprocessing step can take.

dark subtraction -> pixel -> wavelength (calibration polynomial) -> Raman shift
(1e7/laser - 1e7/wavelength) -> cosmic-spike removal -> baseline (fluorescence) removal;
then :func:`edge.preprocessing.preprocess`, as for any file. Each step is a small pure
function so it can be timed and tested alone: :func:`frame_to_raman` does the detector
steps, :func:`clean_raman` the rest, which also applies to a RAW file already in Raman shift
(``ramanedge classify --raw``).
"""

from __future__ import annotations

import numpy as np
from pybaselines import Baseline
from scipy.ndimage import median_filter, minimum_filter

#: SNIP half window in points. On the 150 shared RRUFF RAW/Processed twins it gave the
#: closest match to RRUFF's own baseline removal (median cosine 0.996 after preprocessing;
#: 25 points: 0.988, 55: 0.989; arPLS lam=1e5: 0.994; AsLS: 0.990; modpoly-5: 0.980).
SNIP_HALF_WINDOW = 40
#: A spike stands this many noise sigmas above its local median...
SPIKE_THRESHOLD = 8.0
#: ...and by this fraction of its height above the local floor (bands: < 0.8, spikes: ~1).
SPIKE_SHARPNESS = 0.85


def subtract_dark(counts: np.ndarray, dark: np.ndarray | None) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts if dark is None else counts - dark


def pixel_wavelengths(pixels: int, coefficients: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Wavelength (nm) of each pixel: c0 + c1 p + c2 p^2 + ..."""
    return np.polynomial.polynomial.polyval(np.arange(pixels, dtype=np.float64), coefficients)


def raman_shift(wavelength_nm: np.ndarray, laser_nm: float) -> np.ndarray:
    """Stokes Raman shift in cm^-1."""
    return 1e7 / laser_nm - 1e7 / np.asarray(wavelength_nm, dtype=np.float64)


def noise_sigma(y: np.ndarray) -> float:
    """Robust noise level: MAD of the first difference, scaled to a Gaussian sigma of one point."""
    step = np.diff(np.asarray(y, dtype=np.float64))
    return float(1.4826 * np.median(np.abs(step - np.median(step))) / np.sqrt(2))


def remove_spikes(y: np.ndarray, threshold: float = SPIKE_THRESHOLD, window: int = 7) -> tuple[np.ndarray, int]:
    """Replace cosmic-ray spikes by the local median; returns (y, spike pixels).

    A spike is one or two pixels wide; a Raman band, however sharp, spans more. So a pixel is
    a spike when it stands above the median of its ``window`` neighbours by more than
    ``threshold`` times the noise *and* by nearly all of its height above the window's floor
    (the top of a 3-pixel-wide band stands out by three quarters of it, a spike by all).
    """
    y = np.asarray(y, dtype=np.float64)
    local = median_filter(y, size=window, mode="nearest")
    excess = y - local
    noise = noise_sigma(y)
    height = y - minimum_filter(y, size=window, mode="nearest")
    spikes = (excess > threshold * max(noise, 1e-12)) & (excess > SPIKE_SHARPNESS * height)
    cleaned = np.where(spikes, local, y)
    return cleaned, int(np.count_nonzero(spikes))


def remove_baseline(x: np.ndarray, y: np.ndarray, half_window: int = SNIP_HALF_WINDOW) -> np.ndarray:
    """Subtract a SNIP baseline (fluorescence, detector offset)."""
    baseline, _ = Baseline(x_data=x).snip(y, max_half_window=half_window)
    return y - baseline


def clean_raman(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    """Spike and baseline removal of a spectrum already in Raman shift; returns (y, spike count)."""
    y, spikes = remove_spikes(y)
    return remove_baseline(x, y), spikes


def frame_to_raman(
    counts: np.ndarray,
    dark: np.ndarray | None,
    coefficients: tuple[float, ...],
    laser_nm: float,
    usable: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Raw detector frame -> (Raman shift, dark-subtracted counts) over the usable Stokes pixels, not yet cleaned."""
    y = subtract_dark(counts, dark)
    x = raman_shift(pixel_wavelengths(y.size, coefficients), laser_nm)
    lo, hi = usable
    x, y = x[lo : hi + 1], y[lo : hi + 1]
    stokes = x > 0
    return x[stokes], y[stokes]
