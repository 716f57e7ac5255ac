"""One spectrum in, one answer out: the model, the libraries and the answer gate together.

``classify`` (files) and ``listen`` (frames) both call :meth:`Identifier.answer` with a spectrum
after the raw pipeline, so one spectrum gets one state and one ranking wherever it is measured:
the signal gate (:mod:`edge.answer`) first, then the model (:class:`edge.runtime.Classifier`),
the library search and the fusion (:class:`edge.library.Matcher`, calibrated by the bundle),
then the state from the fused confidence and the best HQI.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from edge.answer import Answer
from edge.bundle import Bundle
from edge.library import Matcher, ReferenceLibrary
from edge.mixtures import MixtureAnalyser
from edge.runtime import Classifier
from edge.user_library import UserEntry, UserLibrary

#: Minerals of the fused ranking handed to the mixture fit as candidates.
MIXTURE_CANDIDATES = 10


class Identifier:
    """A bundle's model and library, the user's library, and the gate with the bundle's thresholds.

    ``confidence`` overrides the bundle's calibrated *identified* threshold (0..1); ``mixtures``: each answer
    also fits the spectrum as a sum of up to three library minerals (:mod:`edge.mixtures`).
    """

    def __init__(
        self,
        bundle: Bundle,
        user_library: UserLibrary | None = None,
        num_threads: int | None = None,
        confidence: float | None = None,
        mixtures: bool = False,
    ) -> None:
        self.bundle = bundle
        self.classifier = Classifier(bundle, num_threads=num_threads)
        self.calibration = bundle.calibration()
        self.gate = self.calibration.gate(confidence)  # --confidence overrides the bundle's gate
        self.user_library = user_library
        self.bundle_library = bundle.library()
        self.mixtures = mixtures
        self._adding = threading.Lock()  # the `a` key and the web view's button may add at once
        self.matcher = self._matcher()
        self.mixture_analyser = MixtureAnalyser(self.matcher.library, groups=bundle.manifest.groups)

    def _matcher(self) -> Matcher:
        user = self.user_library.references() if self.user_library is not None else ReferenceLibrary.concat()
        return Matcher(self.bundle.labels, ReferenceLibrary.concat(self.bundle_library, user), self.calibration, self.bundle.manifest.groups)

    def add_to_user_library(self, mineral: str, spectrum: np.ndarray, source: str) -> UserEntry:
        """Add a measured spectrum to the user library, save it, and search it from the next spectrum on."""
        with self._adding:
            if self.user_library is None:
                self.user_library = UserLibrary()
            entry = self.user_library.add(mineral, spectrum, source)
            self.user_library.save()
            matcher = self._matcher()
            # each swapped in whole: an answer on the listener's thread never sees a half-built matcher
            self.matcher, self.mixture_analyser = matcher, MixtureAnalyser(matcher.library, groups=self.bundle.manifest.groups)
        return entry

    def answer(
        self, y: np.ndarray, vector: np.ndarray, saturated: bool = False, k: int = 3, resolution_cm1: float | None = None
    ) -> Answer:
        """The answer for one spectrum: ``y`` its cleaned intensities (for the signal gate), ``vector`` its model
        input; ``resolution_cm1`` the instrument's, where known (too coarse a one is never *identified*)."""
        refused = self.gate.signal_state(y, saturated)
        if refused is not None:
            return Answer(refused, [], mixtures_asked=self.mixtures)
        started = time.perf_counter()
        probabilities = self.classifier.probabilities(vector)
        if not self.mixtures:
            match = self.matcher.match(probabilities, vector, k=k, started=started)
            mixture = None
        else:  # the fused ranking's first minerals are the fit's first candidates
            match = self.matcher.match(probabilities, vector, k=max(k, MIXTURE_CANDIDATES))
            mixture = self.mixture_analyser.fit(vector, [m for m, _ in match.top])
            match = replace(match, top=match.top[:k], latency_ms=(time.perf_counter() - started) * 1e3)
        return Answer(
            self.gate.state(match.stated_confidence, match.best_hqi, resolution_cm1, match.evidence),
            match.top,
            match.stated_confidence,
            match.library_hit,
            match.source,
            match.latency_ms,
            match.reference,
            match.group,
            mixture,
            self.mixtures,
        )
