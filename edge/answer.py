"""What the device answers for one spectrum: a state and the minerals to show, the same in every command.

``listen`` (live frames) and ``classify`` (files) both ask :class:`AnswerGate`, so one spectrum
gets one state wherever it is measured:

- *saturated*: the detector clipped; the band heights are wrong (shorten the integration time);
- *signal too weak*: the tallest band is under ``min_snr`` times the noise: nothing to classify;
- *not in library*: even the best library reference matches poorly (HQI under the bundle's
  floor): probably a mineral neither the model nor the library knows;
- *identified*: the fused, calibrated confidence (:mod:`edge.library`) is at least the bundle's
  threshold, chosen by ``trainer export`` so that such answers were right >= 95 % of the time on
  specimens the model never saw;
- *possible match*: below it; the top-k are shown as candidates.

The thresholds come from the bundle's calibration; ``--confidence`` overrides the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.raw_spectra import noise_sigma

#: Peak height over noise below which there is no Raman signal worth classifying.
MIN_SNR = 8.0
#: Spectral resolution (cm^-1) coarser than this cannot separate Raman bands (most are 5-20 cm^-1 wide and
#: many minerals differ by bands 10-30 cm^-1 apart): such an instrument's answers are never *identified*.
MAX_RESOLUTION_CM1 = 30.0
#: What the screen and the log say a user should do about each state, where there is something to do.
ADVICE = {
    "saturated": "detector saturated: shorten the integration time or reduce the laser power",
    "signal too weak": "signal too weak: lengthen the integration time, refocus, or raise the laser power",
    "not in library": "not in library: no reference matches well; once you know the mineral, `ramanedge library add` it",
}
STATES = ("identified", "possible match", "not in library", "signal too weak", "saturated")
#: Version of the JSON-lines records of ``classify --json`` and ``listen --json``/``--log``
#: (docs/json-lines.md). 2: ``state`` in classify, ``port``, ``capture``, ``played``, ``schema``.
#: 3: fused ``top`` (calibrated confidences), ``confidence``, ``library_hit``, ``source``,
#: states *possible match* and *not in library*.
RECORD_SCHEMA = 3


def snr(y: np.ndarray) -> float:
    """Tallest band above the spectrum's median level, over the noise (robust: MAD of the first difference).

    Measured from the median, not from zero: a file of pure noise about an offset (a flat reading
    with no band) has no band however high the offset is.
    """
    noise = noise_sigma(y)
    return float((np.max(y) - np.median(y)) / noise) if noise > 0 else float("inf")


@dataclass(frozen=True)
class AnswerGate:
    """States and thresholds: ``confidence`` a fused top-1 confidence (0..1), ``not_in_library_hqi``
    a best HQI (0-1000), ``min_snr`` a peak-over-noise ratio."""

    confidence: float = 0.5
    not_in_library_hqi: float = 0.0
    min_snr: float = MIN_SNR

    def signal_state(self, y: np.ndarray, saturated: bool = False) -> str | None:
        """"saturated", "signal too weak", or None when the spectrum is worth classifying.

        ``y``: the spectrum's intensities after spike and baseline removal (any unit).
        """
        if saturated:
            return "saturated"
        if snr(y) < self.min_snr:
            return "signal too weak"
        return None

    def state(self, confidence: float, best_hqi: float, resolution_cm1: float | None = None) -> str:
        """The state of a classified spectrum from its fused top-1 confidence and best library HQI;
        ``resolution_cm1``: the instrument's (None: unknown, as for a file), coarser than
        MAX_RESOLUTION_CM1 caps the answer at *possible match*."""
        if best_hqi < self.not_in_library_hqi:
            return "not in library"
        if resolution_cm1 is not None and resolution_cm1 > MAX_RESOLUTION_CM1:
            return "possible match"
        return "identified" if confidence >= self.confidence else "possible match"
