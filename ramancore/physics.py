"""The physics every path shares: where light lands, what Raman shift it is, how noisy a spectrum is.

The device (``edge``), the emulator (``firmware_bridge.instrument``) and the trainer all compute these here, so
a detector pixel means the same Raman shift to the spectrometer that is simulated and to the one that is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def wavelengths_nm(coefficients: Sequence[float], pixels: int) -> np.ndarray:
    """Wavelength (nm) of pixels 0 .. ``pixels``-1 from a calibration polynomial c0 + c1 p + c2 p^2 + ... (nm)."""
    return np.polynomial.polynomial.polyval(np.arange(pixels, dtype=np.float64), coefficients)


def raman_shift_cm1(wavelength_nm: np.ndarray, laser_nm: float) -> np.ndarray:
    """Stokes Raman shift (cm^-1) of light at ``wavelength_nm`` (nm) under a ``laser_nm`` (nm) laser."""
    return 1e7 / laser_nm - 1e7 / np.asarray(wavelength_nm, dtype=np.float64)


def noise_sigma(y: np.ndarray) -> float:
    """Robust noise level: MAD of the first difference, scaled to a Gaussian sigma of one point."""
    step = np.diff(np.asarray(y, dtype=np.float64))
    return float(1.4826 * np.median(np.abs(step - np.median(step))) / np.sqrt(2))
