"""What the device answers for one spectrum: a state and the minerals to show, the same in every command.

``listen`` (live frames) and ``classify`` (files) both ask :class:`AnswerGate`, so one spectrum
gets one state wherever it is measured:

- *saturated*: the detector clipped; the band heights are wrong (shorten the integration time);
- *signal too weak*: the tallest band is under ``min_snr`` times the noise: nothing to classify;
- *identified*: the model's top-1 probability is at least ``confidence``;
- *no confident match*: below it; the top-k are still shown, as candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.raw_spectra import noise_sigma

#: Below this top-1 probability the answer is "no confident match" rather than a name.
CONFIDENCE = 0.5
#: Peak height over noise below which there is no Raman signal worth classifying.
MIN_SNR = 8.0
#: What the screen and the log say a user should do about each state, where there is something to do.
ADVICE = {
    "saturated": "detector saturated: shorten the integration time or reduce the laser power",
    "signal too weak": "signal too weak: lengthen the integration time, refocus, or raise the laser power",
}
STATES = ("identified", "no confident match", "signal too weak", "saturated")
#: Version of the JSON-lines records of ``classify --json`` and ``listen --json``/``--log``
#: (docs/json-lines.md). 2: ``state`` in classify, ``port``, ``capture``, ``played``, ``schema``.
RECORD_SCHEMA = 2


def snr(y: np.ndarray) -> float:
    """Tallest band over the noise (robust: MAD of the first difference), of a baseline-free spectrum."""
    noise = noise_sigma(y)
    return float(np.max(y) / noise) if noise > 0 else float("inf")


@dataclass(frozen=True)
class AnswerGate:
    """States and thresholds; ``confidence`` is a top-1 probability (0..1), ``min_snr`` a ratio."""

    confidence: float = CONFIDENCE
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

    def state(self, top: list[tuple[str, float]]) -> str:
        """The state of a classified spectrum from its ranked (mineral, probability) list."""
        return "identified" if top and top[0][1] >= self.confidence else "no confident match"
