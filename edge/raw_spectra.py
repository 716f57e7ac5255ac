"""From raw detector counts to a spectrum the shared preprocessing step can take.

dark subtraction -> pixel -> wavelength (calibration polynomial) -> Raman shift
(1e7/laser - 1e7/wavelength) -> cosmic-spike removal -> baseline (fluorescence) removal;
then :func:`edge.preprocessing.preprocess`, as for any file. Each step is a small pure
function so it can be timed and tested alone; :func:`clean_raman` is the part that also
applies to a RAW file already in Raman shift (``ramanedge classify --raw``).
"""

from __future__ import annotations

import numpy as np
from pybaselines import Baseline

#: SNIP half window in points. On the 150 shared RRUFF RAW/Processed twins it gave the
#: closest match to RRUFF's own baseline removal (median cosine 0.996 after preprocessing;
#: 25 points: 0.988, 55: 0.989; arPLS lam=1e5: 0.994; AsLS: 0.990; modpoly-5: 0.980).
SNIP_HALF_WINDOW = 40
#: Modified z-score above which a jump between neighbours is a cosmic-ray spike (Whitaker & Hayes 2018).
SPIKE_THRESHOLD = 6.0


def subtract_dark(counts: np.ndarray, dark: np.ndarray | None) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts if dark is None else counts - dark


def pixel_wavelengths(pixels: int, coefficients: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Wavelength (nm) of each pixel: c0 + c1 p + c2 p^2 + ..."""
    return np.polynomial.polynomial.polyval(np.arange(pixels, dtype=np.float64), coefficients)


def raman_shift(wavelength_nm: np.ndarray, laser_nm: float) -> np.ndarray:
    """Stokes Raman shift in cm^-1."""
    return 1e7 / laser_nm - 1e7 / np.asarray(wavelength_nm, dtype=np.float64)


def remove_spikes(y: np.ndarray, threshold: float = SPIKE_THRESHOLD, width: int = 2) -> tuple[np.ndarray, int]:
    """Replace cosmic-ray spikes by the mean of their unspiked neighbours; returns (y, spike count).

    Spikes are one or two pixels wide, far narrower than any Raman band, so they stand out in
    the first difference, scored robustly against its median absolute deviation.
    """
    y = np.asarray(y, dtype=np.float64).copy()
    delta = np.diff(y)
    mad = np.median(np.abs(delta - np.median(delta)))
    if mad == 0:
        return y, 0
    z = 0.6745 * (delta - np.median(delta)) / mad
    spikes = np.zeros(y.size, dtype=bool)
    spikes[1:] |= np.abs(z) > threshold
    spikes = np.convolve(spikes, np.ones(2 * width + 1), mode="same") > 0  # and their shoulders
    if spikes.all():
        return y, 0
    good = np.flatnonzero(~spikes)
    y[spikes] = np.interp(np.flatnonzero(spikes), good, y[good])
    runs = np.count_nonzero(np.diff(spikes.astype(np.int8)) == 1) + int(spikes[0])
    return y, runs


def remove_baseline(x: np.ndarray, y: np.ndarray, half_window: int = SNIP_HALF_WINDOW) -> np.ndarray:
    """Subtract a SNIP baseline (fluorescence, detector offset)."""
    baseline, _ = Baseline(x_data=x).snip(y, max_half_window=half_window)
    return y - baseline


def clean_raman(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    """Spike and baseline removal of a spectrum already in Raman shift; returns (y, spike count)."""
    y, spikes = remove_spikes(y)
    return remove_baseline(x, y), spikes


def counts_to_raman(
    counts: np.ndarray,
    dark: np.ndarray | None,
    coefficients: tuple[float, ...],
    laser_nm: float,
    usable: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Raw detector frame -> (Raman shift, cleaned intensity, spike count), Stokes side only."""
    y = subtract_dark(counts, dark)
    x = raman_shift(pixel_wavelengths(y.size, coefficients), laser_nm)
    lo, hi = usable
    x, y = x[lo : hi + 1], y[lo : hi + 1]
    stokes = x > 0
    y, spikes = clean_raman(x[stokes], y[stokes])
    return x[stokes], y, spikes
