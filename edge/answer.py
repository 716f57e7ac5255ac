"""What the device answers for one spectrum: a state and the minerals to show, the same in every command.

``listen`` (live frames) and ``classify`` (files) both ask :class:`AnswerGate`, so one spectrum
gets one state wherever it is measured:

- *saturated*: the detector clipped; the band heights are wrong (shorten the integration time);
- *signal too weak*: the tallest band is under ``min_snr`` times the noise: nothing to classify;
- *not in library*: even the best library reference matches poorly (HQI under the bundle's
  floor): probably a mineral neither the model nor the library knows;
- *identified*: the fused, calibrated confidence (:mod:`edge.library`) is at least the bundle's
  threshold, chosen by ``trainer export`` so that such answers were right >= 95 % of the time on
  specimens the model never saw; or, where the bundle carries one, the :class:`EvidenceGate`
  (fitted by ``trainer openset`` on new specimens of known minerals *and* on minerals the model
  does not know) weighs all the evidence of the answer and says so;
- *possible match*: below it; the top-k are shown as candidates.

The thresholds come from the bundle's calibration; ``--confidence`` overrides the first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ramancore.physics import noise_sigma

if TYPE_CHECKING:  # edge.mixtures builds on edge.library, which builds on this module
    from edge.mixtures import MixtureFit


class State(enum.StrEnum):
    """What the device says about a spectrum; compares equal to its words (``State.IDENTIFIED == "identified"``)."""

    IDENTIFIED = "identified"
    POSSIBLE_MATCH = "possible match"
    NOT_IN_LIBRARY = "not in library"
    SIGNAL_TOO_WEAK = "signal too weak"
    SATURATED = "saturated"


class Source(enum.StrEnum):
    """Where a named mineral is known from."""

    MODEL = "model"
    USER_LIBRARY = "user library"


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
#: Version of the JSON-lines records of ``classify --json`` and ``listen --json``/``--log``
#: (docs/json-lines.md). 2: ``state`` in classify, ``port``, ``capture``, ``played``, ``schema``.
#: 3: fused ``top`` (calibrated confidences), ``confidence``, ``library_hit``, ``source``,
#: states *possible match* and *not in library*. 4: ``group`` (Raman-indistinguishable minerals
#: answered together, ``confidence`` then the group's), the open-set evidence gate.
RECORD_SCHEMA = 5


#: The evidence of an answer the open-set gate weighs (edge.library.Match.evidence), in its feature order.
EVIDENCE = ("confidence", "margin", "model_probability", "named_model_probability", "best_hqi", "named_hqi", "gap", "agreement")


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return float(np.log(p / (1.0 - p)))


def gate_features(evidence: Mapping[str, float]) -> np.ndarray:
    """The gate's inputs from an answer's evidence: probabilities as log-odds, HQIs (0-1000) as 0..1."""
    return np.array([
        _logit(evidence["confidence"]),
        evidence["margin"],
        _logit(evidence["model_probability"]),
        _logit(evidence["named_model_probability"]),
        evidence["best_hqi"] / 1000.0,
        evidence["named_hqi"] / 1000.0,
        evidence["gap"] / 1000.0,
        evidence["agreement"],
    ])


@dataclass(frozen=True)
class EvidenceGate:
    """A logistic score over :data:`EVIDENCE` (``weights`` in :func:`gate_features` order, ``bias``):
    the chance that an answer names the right mineral of a known one; *identified* from ``threshold``."""

    weights: tuple[float, ...]
    bias: float
    threshold: float

    def score(self, evidence: Mapping[str, float]) -> float:
        z = float(np.dot(self.weights, gate_features(evidence))) + self.bias
        return float(1.0 / (1.0 + np.exp(-z)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidenceGate:
        return cls(tuple(float(w) for w in data["weights"]), float(data["bias"]), float(data["threshold"]))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weights": list(self.weights), "features": list(EVIDENCE)}


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
    evidence_gate: EvidenceGate | None = None  #: where set, it decides *identified* instead of ``confidence``

    def signal_state(self, y: np.ndarray, saturated: bool = False) -> State | None:
        """"saturated", "signal too weak", or None when the spectrum is worth classifying.

        ``y``: the spectrum's intensities after spike and baseline removal (any unit).
        """
        if saturated:
            return State.SATURATED
        if snr(y) < self.min_snr:
            return State.SIGNAL_TOO_WEAK
        return None

    def state(
        self, confidence: float, best_hqi: float, resolution_cm1: float | None = None, evidence: Mapping[str, float] | None = None
    ) -> State:
        """The state of a classified spectrum from its fused top-1 confidence and best library HQI (or,
        with an evidence gate, the answer's ``evidence``); ``resolution_cm1``: the instrument's (None:
        unknown, as for a file), coarser than MAX_RESOLUTION_CM1 caps the answer at *possible match*."""
        if best_hqi < self.not_in_library_hqi:
            return State.NOT_IN_LIBRARY
        if resolution_cm1 is not None and resolution_cm1 > MAX_RESOLUTION_CM1:
            return State.POSSIBLE_MATCH
        if self.evidence_gate is not None and evidence:
            return State.IDENTIFIED if self.evidence_gate.score(evidence) >= self.evidence_gate.threshold else State.POSSIBLE_MATCH
        return State.IDENTIFIED if confidence >= self.confidence else State.POSSIBLE_MATCH


@dataclass(frozen=True)
class Answer:
    """What the device says about one spectrum."""

    state: State
    top: list[tuple[str, float]]  #: fused ranking: (mineral, calibrated confidence), empty if not classified
    confidence: float | None = None
    library_hit: dict[str, Any] | None = None  #: mineral, id, source, hqi, gap
    source: Source | None = None  #: where the named mineral is known from
    latency_ms: float = 0.0  #: model + library + fusion
    reference: np.ndarray | None = None  #: the best library hit's spectrum
    #: Raman-indistinguishable minerals answered together (the named one first), ``confidence`` then the group's
    group: list[str] | None = None
    #: the mixture fit (``--mixtures``): the minerals whose sum the spectrum is; None where not asked or not fitted
    mixture: MixtureFit | None = None
    mixtures_asked: bool = False  #: whether records carry ``components`` (empty where nothing was fitted)

    @property
    def named(self) -> str | None:
        """What the answer names, in words: one mineral, or a group that Raman cannot separate."""
        if self.group:
            return f"{' or '.join(self.group)} (Raman cannot separate them; check the chemistry)"
        return self.top[0][0] if self.top else None

    def record(self, file: str, model: str, **more: Any) -> dict[str, Any]:
        """The JSON line of this answer (docs/json-lines.md): the one builder ``classify`` and ``listen`` use;
        ``more``: the keys only one of them has (listen's seq, time, device, port, capture; the demo's played)."""
        return {"schema": RECORD_SCHEMA, "file": file, "model": model, **self._answer_fields(), **more}

    def _answer_fields(self) -> dict[str, Any]:
        return {
            "top": [{"mineral": m, "probability": round(p, 6)} for m, p in self.top],
            "state": self.state,
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "library_hit": self.library_hit,
            "source": self.source,
            "latency_ms": round(self.latency_ms, 3),
            "group": self.group,
            **({"components": self.mixture.records() if self.mixture else []} if self.mixtures_asked else {}),
        }
