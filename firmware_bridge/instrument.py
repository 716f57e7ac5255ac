"""A physical model of a Raman spectrometer's detector, for the emulator.

A mineral spectrum (Raman shift -> relative intensity) is placed on the detector through the
wavelength calibration and the laser line, then measured the way a CCD measures it: signal
and a broad fluorescence background scale with integration time and carry shot (Poisson)
noise, the dark offset and read noise are added, the odd cosmic-ray spike lands on a pixel,
and the ADC clips at full scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_bridge.profiles import DeviceProfile
from ramancore.physics import raman_shift_cm1


@dataclass
class Detector:
    profile: DeviceProfile
    # levels as fractions of full scale, so a 10-bit hobby module and a 16-bit CCD look alike
    dark_offset: float = 0.01  # of full scale
    read_noise: float = 1e-4  # of full scale, rms
    signal_per_ms: float = 0.0045  # of full scale per ms at the strongest band (100 ms: 45%)
    fluorescence_per_ms: float = 0.0025  # of full scale per ms at the fluorescence maximum
    spike_probability: float = 0.2  # cosmic rays per frame

    def __post_init__(self) -> None:
        full = self.profile.max_count
        self.dark_offset, self.read_noise = self.dark_offset * full, self.read_noise * full
        self.signal_per_ms, self.fluorescence_per_ms = self.signal_per_ms * full, self.fluorescence_per_ms * full
        self.shift = raman_shift_cm1(self.profile.wavelengths_nm(), self.profile.laser_nm)
        p = np.linspace(0.0, 1.0, self.profile.pixels)
        self.fluorescence = np.exp(-0.5 * ((p - 0.65) / 0.45) ** 2)  # broad, peaking towards the red

    def render(self, grid_cm1: np.ndarray, intensity: np.ndarray, integration_us: int, rng: np.random.Generator, dark: bool = False) -> tuple[np.ndarray, bool]:
        """One frame of counts (uint16) and whether it saturated. ``dark``: laser off."""
        ms = integration_us / 1000.0
        expected = np.zeros(self.profile.pixels)
        if not dark:
            raman = np.interp(self.shift, grid_cm1, intensity, left=0.0, right=0.0)
            expected = self.signal_per_ms * ms * raman + self.fluorescence_per_ms * ms * self.fluorescence
        counts = rng.poisson(expected) + self.dark_offset + rng.normal(0.0, self.read_noise, self.profile.pixels)
        if not dark and rng.random() < self.spike_probability:
            counts[rng.integers(0, self.profile.pixels)] += rng.uniform(0.3, 1.0) * self.profile.max_count
        saturated = bool(np.any(counts >= self.profile.max_count))
        counts = np.clip(np.round(counts), 0, self.profile.max_count)
        return counts.astype(np.uint16 if self.profile.max_count <= 0xFFFF else np.uint32), saturated
