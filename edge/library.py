"""Library search, and its fusion with the model: the answer a trusted instrument gives.

A preprocessed spectrum (:data:`ramancore.preprocessing.GRID`) is compared with every reference of a
:class:`ReferenceLibrary` (the training spectra shipped in the bundle, plus the user's own
entries) by mean-centred correlation over the range the spectrum was measured on, reported as a
hit quality index (HQI, 0-1000) as field instruments report it. The best correlation per
mineral and the model's log-probabilities are fused by :func:`fused_logits` with a
:class:`Calibration` (temperature and library weight fitted by ``trainer export`` on
validation spectra of specimens the model never saw; the library's weight falls with the spectrum's noise,
:func:`ramancore.preprocessing.noise_level`, as the correlation with clean references says less of a noisy
spectrum than the network does); the fused softmax is the confidence the
answer states (:mod:`edge.answer`) are thresholded on. :class:`Matcher` puts it together for
``classify``, ``listen`` and ``demo``.

A mineral only the user library holds has no model output: it gets a probability from its own
evidence instead, its best correlation mapped by a logistic curve fitted on known minerals
(:attr:`Calibration.user_intercept`, :attr:`Calibration.user_slope`: how often a candidate with that
correlation was the right mineral), so a user entry ranks high only where its spectrum matches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.answer import AnswerGate, EvidenceGate, Source
from edge.ranking import rank
from ramancore.preprocessing import GRID_SIZE, noise_level

#: Library spectra are matched at this many grid points per bin (1 cm^-1 each): 2 cm^-1 bins
#: keep every Raman band (RRUFF bands are wider) and halve the work per spectrum.
BIN = 2
#: Model probabilities are floored here before the log: int8 outputs are often exactly 0.
MODEL_FLOOR = 1e-4
#: Fewest measured bins a correlation is computed over; a shorter overlap scores 0.
MIN_OVERLAP_BINS = 20
#: References prepared at a time when a library is built (bounds the temporary memory).
CHUNK = 512
#: Bins per block of the prefix sums (see ReferenceLibrary._centred_norms).
STRIDE = 8


def hqi(r: np.ndarray | float) -> np.ndarray:
    """Hit quality index, 0-1000: ``1000 * r**2`` for a positive mean-centred correlation ``r``, else 0."""
    r = np.asarray(r, dtype=np.float64)
    return np.where(r > 0, 1000.0 * r * r, 0.0)


def bin_spectra(spectra: np.ndarray) -> np.ndarray:
    """(n, GRID_SIZE) -> (n, GRID_SIZE // BIN) means of adjacent grid points, float32."""
    n = spectra.shape[0]
    usable = (GRID_SIZE // BIN) * BIN
    return spectra[:, :usable].reshape(n, -1, BIN).mean(axis=2, dtype=np.float32)


def measured_bins(spectrum: np.ndarray) -> tuple[int, int]:
    """First and one-past-last bin of the range a preprocessed spectrum was measured on (zeros outside it)."""
    nonzero = np.flatnonzero(spectrum)
    if nonzero.size == 0:
        return 0, 0
    return int(nonzero[0]) // BIN, min(-(-int(nonzero[-1] + 1) // BIN), GRID_SIZE // BIN)


@dataclass
class ReferenceLibrary:
    """Reference spectra with what each is: the search side of identification.

    ``spectra``: (n, GRID_SIZE) preprocessed, values 0..1 (kept as float16);
    ``minerals``, ``ids`` (RRUFF id or user entry id), ``sources`` ("bundle" or "user"): (n,) str.
    """

    spectra: np.ndarray
    minerals: np.ndarray
    ids: np.ndarray
    sources: np.ndarray
    lasers: np.ndarray = field(default_factory=lambda: np.empty(0))  #: (n,) laser wavelength, nm (nan where unknown; empty: all unknown)
    mineral_names: list[str] = field(init=False)  #: sorted distinct minerals

    def __post_init__(self) -> None:
        self.spectra = np.asarray(self.spectra, dtype=np.float16)  # 0..1: float16 is exact to 1/2048, and half the memory
        self.minerals = np.asarray(self.minerals, dtype=str)
        self.ids = np.asarray(self.ids, dtype=str)
        self.sources = np.asarray(self.sources, dtype=str)
        n = len(self.minerals)
        self.lasers = np.asarray(self.lasers, dtype=np.float64) if len(self.lasers) else np.full(n, np.nan)
        if self.spectra.shape != (n, GRID_SIZE) or len(self.ids) != n or len(self.sources) != n or len(self.lasers) != n:
            raise ValueError(f"library arrays disagree: spectra {self.spectra.shape}, {n} minerals, {len(self.ids)} ids")
        # sorted by mineral, so that the best hit per mineral is one reduceat
        self._order = np.argsort(self.minerals, kind="stable")
        names, self._starts = np.unique(self.minerals[self._order], return_index=True)
        self.mineral_names = names.tolist()
        self._position = {m: j for j, m in enumerate(self.mineral_names)}
        bins = GRID_SIZE // BIN
        self._binned = np.empty((n, bins), np.float32)
        # prefix sums of x and x^2 at every STRIDE-th bin: the mean and norm over any range from
        # them and at most 2 * STRIDE bins at its ends, in a fraction of the memory of full ones
        self._sum = np.zeros((n, bins // STRIDE + 1), np.float64)
        self._sum_sq = np.zeros((n, bins // STRIDE + 1), np.float64)
        self._last_norms: tuple[tuple[int, int], np.ndarray] | None = None
        for lo in range(0, n, CHUNK):  # in chunks: the temporaries stay small
            rows = self._order[lo : lo + CHUNK]
            binned = bin_spectra(self.spectra[rows].astype(np.float32))
            self._binned[lo : lo + len(rows)] = binned
            blocks = binned[:, : (bins // STRIDE) * STRIDE].reshape(len(rows), -1, STRIDE).astype(np.float64)
            self._sum[lo : lo + len(rows), 1:] = np.cumsum(blocks.sum(axis=2), axis=1)
            self._sum_sq[lo : lo + len(rows), 1:] = np.cumsum(np.square(blocks).sum(axis=2), axis=1)

    def __len__(self) -> int:
        return len(self.minerals)

    @classmethod
    def concat(cls, *libraries: ReferenceLibrary) -> ReferenceLibrary:
        parts = [lib for lib in libraries if len(lib)]
        if not parts:
            return cls(np.zeros((0, GRID_SIZE), np.float16), np.array([], str), np.array([], str), np.array([], str))
        if len(parts) == 1:
            return parts[0]  # no copy: the bundle's library alone is the common case
        return cls(
            np.concatenate([p.spectra for p in parts]),
            np.concatenate([p.minerals for p in parts]),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.sources for p in parts]),
            np.concatenate([p.lasers for p in parts]),
        )

    def correlations(self, spectrum: np.ndarray) -> np.ndarray:
        """Mean-centred correlation (-1..1) of one preprocessed spectrum with every reference, in
        mineral-sorted order, over the bins the spectrum was measured on. (n,) float32."""
        lo, hi = measured_bins(np.asarray(spectrum))
        if hi - lo < MIN_OVERLAP_BINS or not len(self):
            return np.zeros(len(self), np.float32)
        return self.correlations_binned(bin_spectra(np.asarray(spectrum, dtype=np.float32)[None, :])[0, lo:hi], lo)

    def correlations_binned(self, query: np.ndarray, lo: int, minerals: Sequence[str] | None = None) -> np.ndarray:
        """:meth:`correlations` of a query already in bins (``query``: bins ``lo`` .. ``lo + len(query)``, any sign:
        a mixture fit's residual, say). (n,) float32, mineral-sorted order; with ``minerals``, only their
        references are compared (the others get -1): a fraction of the work where the candidates are known."""
        hi = lo + len(query)
        query = np.asarray(query, dtype=np.float32) - float(np.mean(query))
        norm = float(np.linalg.norm(query))
        if norm == 0.0 or hi - lo < MIN_OVERLAP_BINS or not len(self):
            return np.zeros(len(self), np.float32)
        if minerals is None:
            dot = self._binned[:, lo:hi] @ query  # query is centred: the references' means drop out
            return dot / (self._centred_norms(lo, hi) * norm)
        rows = np.concatenate([np.arange(*self._rows_of(m)) for m in minerals]) if minerals else np.zeros(0, np.intp)
        part = self._binned[rows, lo:hi]
        centred = np.sqrt(np.maximum(np.einsum("ij,ij->i", part, part) - part.sum(axis=1) ** 2 / (hi - lo), 1e-12))
        out = np.full(len(self), -1.0, np.float32)
        out[rows] = (part @ query) / (centred * norm)
        return out

    def _rows_of(self, mineral: str) -> tuple[int, int]:
        """First and one-past-last mineral-sorted index of ``mineral``'s references."""
        j = self._position[mineral]
        return int(self._starts[j]), int(self._starts[j + 1]) if j + 1 < len(self._starts) else len(self)

    def binned(self, sorted_indices: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """(len(sorted_indices), hi - lo) the references' bins ``lo`` .. ``hi`` (mineral-sorted indices), float32."""
        return self._binned[np.asarray(sorted_indices, dtype=np.intp), lo:hi]

    def best_reference(self, r: np.ndarray, mineral: str) -> int:
        """The mineral-sorted index of ``mineral``'s reference with the highest of ``r`` (:meth:`correlations`)."""
        start, end = self._rows_of(mineral)
        return start + int(np.argmax(r[start:end]))

    def best_references(self, r: np.ndarray, mineral: str, k: int) -> list[int]:
        """The mineral-sorted indices of ``mineral``'s ``k`` references with the highest of ``r``, best first."""
        start, end = self._rows_of(mineral)
        return [start + int(i) for i in np.argsort(-r[start:end], kind="stable")[:k]]

    def _centred_norms(self, lo: int, hi: int) -> np.ndarray:
        """Each reference's norm about its mean over bins lo..hi (the block prefix sums, plus the ends); the last
        range's kept: an answer and its mixture fit search one spectrum's range several times."""
        last = self._last_norms
        if last is not None and last[0] == (lo, hi):
            return last[1]
        norms = self._compute_centred_norms(lo, hi)
        self._last_norms = ((lo, hi), norms)
        return norms

    def _compute_centred_norms(self, lo: int, hi: int) -> np.ndarray:
        first, last = -(-lo // STRIDE), hi // STRIDE  # whole blocks inside the range
        if first < last:
            ends = np.concatenate([self._binned[:, lo : first * STRIDE], self._binned[:, last * STRIDE : hi]], axis=1)
            s1 = self._sum[:, last] - self._sum[:, first] + ends.sum(axis=1)
            s2 = self._sum_sq[:, last] - self._sum_sq[:, first] + np.einsum("ij,ij->i", ends, ends)
        else:
            part = self._binned[:, lo:hi]
            s1, s2 = part.sum(axis=1), np.einsum("ij,ij->i", part, part)
        return np.sqrt(np.maximum(s2 - s1 * s1 / (hi - lo), 1e-12)).astype(np.float32)

    def best_per_mineral(self, r: np.ndarray) -> np.ndarray:
        """(len(mineral_names),) best correlation of each mineral, from :meth:`correlations`' output."""
        return np.maximum.reduceat(r, self._starts) if len(self) else np.zeros(0, np.float32)

    def entry(self, sorted_index: int) -> dict[str, Any]:
        """What the ``sorted_index``-th reference (in :meth:`correlations`' order) is."""
        i = int(self._order[sorted_index])
        laser = float(self.lasers[i]) if np.isfinite(self.lasers[i]) else None
        return {"mineral": str(self.minerals[i]), "id": str(self.ids[i]), "source": str(self.sources[i]), "laser_nm": laser}

    def spectrum_of(self, sorted_index: int) -> np.ndarray:
        return np.asarray(self.spectra[int(self._order[sorted_index])], dtype=np.float32)


#: A group answer is given when a second member of the named mineral's Raman-indistinguishable group has
#: at least this share of the named mineral's fused confidence: the evidence does not separate them.
GROUP_SHARE = 0.2
#: A new user entry this close to a known mineral's reference (HQI) is pointed out as probably that mineral.
TWIN_HQI = 900.0


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def twin_note(library: ReferenceLibrary, spectrum: np.ndarray, name: str) -> str:
    """What to say when ``spectrum`` is added as ``name`` and the best reference of ``library`` matches it at
    HQI >= TWIN_HQI under another mineral name (a known mineral's spectrum under a new name); "" otherwise."""
    if not len(library):
        return ""
    r = library.correlations(spectrum)
    i = int(np.argmax(r))
    entry = library.entry(i)
    if hqi(r[i]) < TWIN_HQI or _plain(entry["mineral"]) == _plain(name):
        return ""
    return f"; it matches {entry['mineral']} ({entry['id']}, HQI {float(hqi(r[i])):.0f}): the same mineral under another name?"


@dataclass(frozen=True)
class Calibration:
    """How model and library are fused, and where the answer states begin; written by ``trainer export``.

    ``temperature`` divides the model's log-probabilities (temperature scaling, > 0);
    ``library_weight`` multiplies each mineral's best correlation (-1..1), times
    ``exp(-library_noise_decay * noise)`` (noise: :func:`ramancore.preprocessing.noise_level`, min-max scaled
    intensity; decay 0: one weight for every spectrum, as bundles before it had); ``identified``: fused
    confidence (0..1) from which an answer is *identified*; ``not_in_library_hqi``: best HQI
    (0-1000) under which the spectrum is *not in library*. ``fitted`` says on what and what each
    threshold gave there (precision, coverage).
    """

    temperature: float = 1.0
    library_weight: float = 0.0
    identified: float = 0.5
    not_in_library_hqi: float = 0.0
    library_noise_decay: float = 0.0
    #: P(a candidate is the mineral | its best correlation r) = sigmoid(user_intercept + user_slope * r): the
    #: probability a user-only mineral enters the fusion with. The defaults were fitted on the grouped
    #: validation spectra of the shipped recipe (trainer.calibration.fit_user_entry_map); bundles carry their own.
    user_intercept: float = -24.8
    user_slope: float = 26.06
    #: the open-set evidence gate (edge.answer.EvidenceGate as a dict) fitted by ``trainer openset``; empty: the
    #: *identified* threshold on the fused confidence alone
    evidence_gate: dict[str, Any] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def library_weight_at(self, noise: float | np.ndarray) -> float | np.ndarray:
        """The library's weight for a spectrum (or spectra) of that noise (:func:`ramancore.preprocessing.noise_level`)."""
        return self.library_weight * np.exp(-self.library_noise_decay * np.asarray(noise, dtype=np.float64))

    def fused_logits(self, probabilities: np.ndarray, best_r: np.ndarray, noise: float | np.ndarray = 0.0) -> np.ndarray:
        """:func:`fused_logits` with this calibration: ``noise`` the spectrum's (or (n,), the rows')."""
        return fused_logits(probabilities, best_r, self.temperature, self.library_weight_at(noise))

    def gate(self, confidence: float | None = None) -> AnswerGate:
        """The answer gate this calibration answers with: its evidence gate where it has one, or with
        ``confidence`` (``--confidence``) the threshold on the fused confidence alone."""
        evidence = EvidenceGate.from_dict(self.evidence_gate) if self.evidence_gate and confidence is None else None
        return AnswerGate(self.identified if confidence is None else confidence, self.not_in_library_hqi, evidence_gate=evidence)


def fused_logits(probabilities: np.ndarray, best_r: np.ndarray, temperature: float, library_weight: float | np.ndarray) -> np.ndarray:
    """Fused scores: ``log(max(p, MODEL_FLOOR)) / temperature + library_weight * r``, row-wise.

    ``probabilities``: (..., m) model outputs for the candidate minerals; ``best_r``: (..., m)
    each candidate's best library correlation (0 where it has no reference); ``library_weight``: one, or
    (n,) one per row (:meth:`Calibration.library_weight_at`). The softmax of the result is the calibrated confidence.
    """
    weight = np.asarray(library_weight, dtype=np.float64)
    if weight.ndim:
        weight = weight[:, None]
    return np.log(np.maximum(probabilities, MODEL_FLOOR)) / temperature + weight * best_r


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Match:
    """One spectrum's fused answer: ranked (mineral, confidence) pairs, the library's best hit, timing."""

    top: list[tuple[str, float]]
    confidence: float
    best_hqi: float
    library_hit: dict[str, Any] | None  #: mineral, id, source, hqi, gap (HQI over the best other mineral)
    source: Source  #: where the named mineral is known from: the model's classes or the user library alone
    latency_ms: float
    reference: np.ndarray | None = None  #: the best hit's spectrum, for the screen
    #: what the answer rests on, for the open-set gate (edge.answer.EVIDENCE): confidence, margin over the
    #: second, the model's own top probability and the named mineral's, best and named HQI, gap, agreement
    evidence: dict[str, float] = field(default_factory=dict)
    #: the Raman-indistinguishable group answered instead of the one mineral (members by confidence), or None
    group: list[str] | None = None
    group_confidence: float | None = None  #: the group's summed fused confidence

    @property
    def stated_confidence(self) -> float:
        """The confidence the answer states, and its state is decided on: the group's where a group is answered."""
        return self.confidence if self.group_confidence is None else self.group_confidence


class Matcher:
    """The model and a library, fused: ``match(spectrum)`` for each preprocessed spectrum.

    ``labels``: the model's output order; ``library``: bundle and user references together;
    minerals in the library but not in ``labels`` are candidates too (see the module docstring).
    """

    def __init__(self, labels: list[str], library: ReferenceLibrary, calibration: Calibration, groups: Sequence[Sequence[str]] = ()) -> None:
        self.labels = list(labels)
        self.library = library
        self.calibration = calibration
        extra = sorted(set(library.mineral_names) - set(self.labels))
        self.candidates = self.labels + extra  #: model classes first, then user-only minerals
        position = {m: i for i, m in enumerate(library.mineral_names)}
        self._library_of = np.array([position.get(m, -1) for m in self.candidates])
        self._model_classes = len(self.labels)
        index = {m: i for i, m in enumerate(self.candidates)}
        #: candidate index -> the candidate indices of its Raman-indistinguishable group (groups: lists of minerals)
        self.group_of: dict[int, np.ndarray] = {}
        for group in groups:
            members = np.array([index[m] for m in group if m in index])
            if len(members) > 1:
                self.group_of.update({int(i): members for i in members})

    def features(self, probabilities: np.ndarray, best_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(model probability, best library correlation) of every candidate, from the model's
        (len(labels),) outputs and the library's best correlation per mineral. A user-only mineral's
        probability is its correlation's (see the module docstring)."""
        r = best_r[np.maximum(self._library_of, 0)] if len(best_r) else np.zeros(len(self.candidates))
        r = np.where(self._library_of >= 0, r, 0.0)
        p = np.empty(len(self.candidates), np.float64)
        p[: self._model_classes] = probabilities
        user_only = r[self._model_classes :]
        z = self.calibration.user_intercept + self.calibration.user_slope * user_only
        p[self._model_classes :] = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic, without exp's overflow at large |z|
        return p, r

    def match(self, probabilities: np.ndarray, spectrum: np.ndarray, k: int = 3, started: float | None = None) -> Match:
        """Fuse the model's outputs for one spectrum with the library's answer for it."""
        r = self.library.correlations(spectrum)
        best = self.library.best_per_mineral(r)
        p, r_best = self.features(probabilities, best)
        noise = noise_level(spectrum) if self.calibration.library_noise_decay else 0.0  # measured only where it counts
        confidence = softmax(self.calibration.fused_logits(p, r_best, noise))
        order = rank(confidence)
        top = [(self.candidates[i], float(confidence[i])) for i in order[:k]]
        hit, reference, best_hqi, gap = None, None, 0.0, 0.0
        if len(r):
            i = int(np.argmax(r))
            best_hqi = float(hqi(r[i]))
            entry = self.library.entry(i)
            others = np.delete(best, self.library.mineral_names.index(entry["mineral"]))
            gap = best_hqi - float(hqi(others.max())) if others.size else best_hqi
            hit = {**entry, "hqi": round(best_hqi, 1), "gap": round(gap, 1)}
            reference = self.library.spectrum_of(i)
        source = Source.MODEL if order[0] < self._model_classes else Source.USER_LIBRARY
        model_top = int(rank(probabilities)[0]) if len(probabilities) else -1
        evidence = {
            "confidence": float(confidence[order[0]]),
            "margin": float(confidence[order[0]] - (confidence[order[1]] if len(order) > 1 else 0.0)),
            "model_probability": float(probabilities[model_top]) if model_top >= 0 else 0.0,
            "named_model_probability": float(p[order[0]]),
            "best_hqi": best_hqi,
            "named_hqi": float(hqi(r_best[order[0]])),
            "gap": gap,
            "agreement": float(model_top == order[0] and hit is not None and hit["mineral"] == self.candidates[order[0]]),
        }
        group, group_confidence = self._group_answer(confidence, order[0])
        if group_confidence is not None:  # the gate weighs the group's confidence, as the answer states it
            outside = np.delete(confidence, self.group_of[int(order[0])])
            evidence.update(confidence=group_confidence, margin=group_confidence - (float(outside.max()) if outside.size else 0.0))
        latency = (time.perf_counter() - started) * 1e3 if started is not None else 0.0
        return Match(top, float(confidence[order[0]]), best_hqi, hit, source, latency, reference, evidence, group, group_confidence)

    def _group_answer(self, confidence: np.ndarray, named: int) -> tuple[list[str] | None, float | None]:
        """The named mineral's group, its members by confidence (those within GROUP_SHARE of the named one), and the
        group's summed confidence, where a second member is that close: the evidence does not separate them."""
        members = self.group_of.get(int(named))
        if members is None:
            return None, None
        close = members[confidence[members] >= GROUP_SHARE * confidence[named]]
        if len(close) < 2:
            return None, None
        ranked = close[np.argsort(-confidence[close], kind="stable")]
        return [self.candidates[i] for i in ranked], float(confidence[members].sum())
