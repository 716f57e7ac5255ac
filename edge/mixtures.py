"""Mixture analysis: the two or three library minerals whose sum one spectrum is.

A laser spot on a rock often holds more than one mineral, and its spectrum is then close to a
non-negative sum of theirs. :class:`MixtureAnalyser` fits a preprocessed spectrum, over the range it
was measured on and in the library's 2 cm^-1 bins (:data:`edge.library.BIN`), by non-negative least
squares (:func:`scipy.optimize.nnls`) on one, two or three library references plus a smooth baseline
of free sign (a low-order polynomial: the background that preprocessing leaves), chosen greedily:

1. candidates: the minerals the fused answer ranks first (``named``) and those with the best
   library correlation, each by its best-matching references (:data:`REFERENCES`, each with its own weight);
2. the candidate that leaves the smallest residual is the first component: every spectrum has one;
3. the residual is searched in the library (a minor mineral hides under the major's bands), its best
   minerals join the candidates, and the one that lowers the residual most (after one pass that lets each
   component give way to a better one) is the next component; so again for the third, whose pass is made only
   where it is reported (its gain before the pass decides: the pass costs as much as the search, and most
   spectra are not given a third);
4. how many components are reported is decided from the fractions of the residual sum of squares each step
   removed of what was left before it (its *gain*), with thresholds fitted by ``trainer mixtures``: three where
   the second and third together remove more than ``min_pair_gain`` of what the first left and the third alone
   more than ``min_third_gain`` of what the first two left; otherwise two where the second removes more than
   ``min_gain``; otherwise one. ``min_gain`` and ``min_pair_gain`` are fitted on pure spectra, so that a pure
   spectrum stays one component; ``min_third_gain`` on binary mixtures, so that a binary seldom gets a third.
   Relative to what is left, not to the whole signal: the mismatch between a new specimen and its best
   reference (a band shifted or broadened) leaves a residual a second reference only partly explains, while
   a second mineral's bands are most of what the first leaves. Judged as a pair for three: after the first
   mineral of a ternary, two are left in the residual, and the second alone removes only about half of it.

A component's ``share`` is its part of the fitted signal (its term's area over all components' areas,
baseline excluded): how much of the *spectrum* it explains, never how much of the *spot* it is: Raman
cross-sections differ by orders of magnitude between minerals, so a share is not a composition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edge.library import BIN, MIN_OVERLAP_BINS, ReferenceLibrary, bin_spectra, hqi, measured_bins
from ramancore.preprocessing import GRID_SIZE

#: Fraction of the residual sum of squares left by the first component that a second must remove to be reported.
#: Fitted by ``trainer mixtures`` on the real pure validation spectra of the shipped recipe's three grouped runs
#: (RRUFF excellent and the fair/poor files of validation specimens): the mean of their 97th percentiles of the
#: second component's gain (0.793, 0.715, 0.697); docs/RESULTS.md, "Mixtures: three judged as a pair".
MIN_GAIN = 0.735
#: Fraction of the residual left by the first component that the second and third together must remove for three to
#: be reported (the mean of the same spectra's 97th percentiles of that joint gain: 0.853, 0.817, 0.772), and
#: fraction of what the first two leave that the third alone must remove (the mean of the 90th percentiles of the
#: third's gain, before its swap pass, over validation binary mixtures: 0.511, 0.498, 0.428).
MIN_PAIR_GAIN = 0.814
MIN_THIRD_GAIN = 0.479
#: Minerals taken as candidates from each library search (of the spectrum, then of each residual).
CANDIDATES = 12
#: References each mineral enters a fit with (those that correlate best with what is left to explain), each with
#: its own coefficient: together they absorb part of the difference between the specimen and any one reference,
#: which a second mineral would otherwise be taken in to explain (grouped validation, split 0: both minerals of a
#: binary named 66 % against 63 % with one, at the same rate of pure spectra given a second).
REFERENCES = 2
#: Largest shift, in bins (BIN cm^-1 each), a reference may be moved by to fit: a field instrument's axis is
#: often a few cm^-1 off RRUFF's, and a shifted band would otherwise be "explained" by a second mineral's.
MAX_SHIFT_BINS = 2
#: Degree of the free baseline polynomial over the measured range (0: a constant offset; None: none).
BASELINE_DEGREE: int | None = 1


@dataclass(frozen=True)
class Component:
    """One mineral of a mixture fit: ``share`` of the fitted signal (0..1; not a composition), the reference
    that carries most of it (``id``: RRUFF id or user entry, ``source``: ``bundle`` or ``user``), ``curve``: its
    fitted term on the grid ((GRID_SIZE,) float32, zeros outside the measured range), for the screen, and the
    shift the reference was moved by."""

    mineral: str
    share: float
    id: str
    source: str
    curve: np.ndarray
    shift_cm1: int = 0  #: how far the reference was moved to fit (a calibration offset; within 2 * MAX_SHIFT_BINS)

    def record(self) -> dict[str, object]:
        """This component in a JSON line (docs/json-lines.md, ``components``)."""
        return {"mineral": self.mineral, "share": round(self.share, 4), "id": self.id, "source": self.source}


@dataclass(frozen=True)
class MixtureFit:
    """A spectrum explained as a sum: its components (largest share first; one for a pure spectrum), the
    fit's figures of merit, the fitted sum on the grid, and the gain (fraction of the residual removed) of each
    step, accepted or not: for fitting the thresholds."""

    components: list[Component]
    residual: float  #: root-mean-square of the residual over that of the spectrum (baseline removed), 0..1
    hqi: float  #: HQI (0-1000) of the fitted sum (components and baseline) against the spectrum
    fitted: np.ndarray  #: (GRID_SIZE,) float32, the fitted sum, zeros outside the measured range
    gains: list[float]  #: the fraction of the residual each accepted step removed, in order (the first: 1 - its residual)
    tried_gains: list[float]  #: the same for every step tried, accepted or not (for fitting the thresholds)

    @property
    def refused_gain(self) -> float:
        """The gain the first step not accepted would have given (0.0 where every step tried was accepted)."""
        return self.tried_gains[len(self.gains)] if len(self.tried_gains) > len(self.gains) else 0.0

    def records(self) -> list[dict[str, object]]:
        return [c.record() for c in self.components]

    def summary(self) -> str:
        """One line for a person: the components with their shares of the fitted signal, and the fit's merit."""
        if len(self.components) == 1:
            head = f"mixture fit: one mineral, {self.components[0].mineral} ({self.components[0].id})"
        else:
            parts = ", ".join(f"{c.mineral} ({c.id}) {c.share:.2f}" for c in self.components)
            head = f"mixture fit: {parts} of the fitted signal (shares of the spectrum, not a composition)"
        return f"{head}; residual {self.residual:.2f}, HQI of the sum {self.hqi:.0f}"


def _legendre_basis(bins: int, degree: int | None) -> np.ndarray:
    """(bins, degree + 1) orthonormal columns spanning polynomials up to ``degree`` (empty for None)."""
    if degree is None:
        return np.zeros((bins, 0))
    t = np.linspace(-1.0, 1.0, bins)
    q, _ = np.linalg.qr(np.polynomial.legendre.legvander(t, degree))
    return q


class _Term(NamedTuple):
    """A reference in a fit: its mineral, its row (mineral-sorted index) in the library, and its shift in bins."""

    mineral: str
    row: int
    shift: int


@dataclass
class _Problem:
    """One spectrum's fit: its bins ``lo`` .. ``hi``, the baseline ``basis`` and the ``target`` (the spectrum with
    the baseline's part removed); references are projected the same way, so that NNLS on them fits the baseline
    freely (variable projection)."""

    library: ReferenceLibrary
    lo: int
    hi: int
    basis: np.ndarray
    target: np.ndarray
    nnls: Callable[..., tuple[np.ndarray, float]]

    def raw(self, indices: list[int], shift: int = 0) -> np.ndarray:
        """(len(indices), bins) the references moved by ``shift`` bins (zeros where moved in from outside the grid)."""
        out = np.zeros((len(indices), self.hi - self.lo))
        total = GRID_SIZE // BIN
        a, b = self.lo - shift, self.hi - shift
        if indices and b > 0 and a < total:
            out[:, max(0, -a) : (self.hi - self.lo) - max(0, b - total)] = self.library.binned(np.array(indices), max(a, 0), min(b, total))
        return out

    def project(self, refs: np.ndarray) -> np.ndarray:
        return refs - (refs @ self.basis) @ self.basis.T

    def terms(self, chosen: list[_Term], coef: np.ndarray) -> np.ndarray:
        """(len(chosen), bins) each chosen reference's fitted term, unprojected."""
        rows = [self.raw([t.row], t.shift)[0] for t in chosen]
        return np.array(rows).reshape(len(chosen), self.hi - self.lo) * np.asarray(coef)[:, None]

    def best_shifts(self, indices: list[int], residual: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Each reference's shift (within MAX_SHIFT_BINS) that correlates best with ``residual``, and the
        references so moved, projected: (len(indices), bins)."""
        shifts = range(-MAX_SHIFT_BINS, MAX_SHIFT_BINS + 1)
        moved = np.stack([self.project(self.raw(indices, s)) for s in shifts])  # (shifts, n, bins)
        score = (moved @ residual) / (np.linalg.norm(moved, axis=2) + 1e-12)
        best = np.argmax(score, axis=0)
        return [shifts[k] for k in best], moved[best, np.arange(len(indices))]

    def with_each(self, fixed: list[_Term], blocks: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """For each block of columns (one candidate mineral's projected references, (k, bins)): the NNLS
        coefficients and residual sum of squares of ``fixed`` plus it (inf where it takes no part)."""
        base = self.project(self.terms(fixed, np.ones(len(fixed))))
        out = []
        for block in blocks:
            coef, norm = self.nnls(np.vstack([base, block]).T, self.target)
            out.append((coef, float(norm) ** 2 if coef[len(base) :].sum() > 0 else np.inf))
        return out


class MixtureAnalyser:
    """Fits spectra as sums of ``library`` references (see the module docstring).

    ``min_gain``: fraction (0..1) of the residual left by the first component that a second must remove;
    ``min_pair_gain``, ``min_third_gain``: the fractions the second and third together (of what the first left) and
    the third alone (of what the first two left) must remove for three (module docstring, step 4);
    ``max_components``: 1..3; ``candidates``: minerals per library search; ``baseline_degree``: the free
    baseline polynomial's degree (None: no baseline term); ``groups``: Raman-indistinguishable minerals,
    never two of one group in a fit (their difference is the specimen's, not a second mineral); ``references``:
    references each mineral enters a fit with.
    """

    def __init__(
        self,
        library: ReferenceLibrary,
        min_gain: float = MIN_GAIN,
        max_components: int = 3,
        min_pair_gain: float = MIN_PAIR_GAIN,
        min_third_gain: float = MIN_THIRD_GAIN,
        candidates: int = CANDIDATES,
        baseline_degree: int | None = BASELINE_DEGREE,
        groups: Sequence[Sequence[str]] = (),
        references: int = REFERENCES,
    ) -> None:
        if not 1 <= max_components <= 3:
            raise ValueError(f"max_components {max_components}: 1, 2 or 3")
        self.library = library
        self.min_gain = min_gain
        self.min_pair_gain = min_pair_gain
        self.min_third_gain = min_third_gain
        self.max_components = max_components
        self.candidates = candidates
        self.baseline_degree = baseline_degree
        self.references = references
        self._group_of = {m: frozenset(g) for g in groups for m in g}

    def fit(self, spectrum: np.ndarray, named: Sequence[str] = ()) -> MixtureFit | None:
        """The mixture fit of one preprocessed spectrum ((GRID_SIZE,), zeros outside its measured range);
        ``named``: minerals the fused answer ranks first, candidates whatever their correlation. None where
        the library is empty or the spectrum too short or flat to fit."""
        from scipy.optimize import nnls  # lazy: scipy costs the CLI's start-up otherwise

        library = self.library
        lo, hi = measured_bins(spectrum)
        if not len(library) or hi - lo < MIN_OVERLAP_BINS:
            return None
        x = bin_spectra(np.asarray(spectrum, dtype=np.float32)[None, :])[0, lo:hi].astype(np.float64)
        basis = _legendre_basis(hi - lo, self.baseline_degree)
        target = x - basis @ (basis.T @ x)  # the baseline is free: fit what it cannot explain
        energy = float(target @ target)
        if energy <= 1e-12:
            return None
        known = set(library.mineral_names)
        problem = _Problem(library, lo, hi, basis, target, nnls)
        pool = [m for m in named if m in known]
        steps: list[tuple[list[_Term], np.ndarray]] = []  # the fit after each step: its terms and coefficients
        gains: list[float] = []
        chosen: list[_Term] = []
        coef = np.zeros(0)
        rss = energy
        while len(steps) < self.max_components and rss > 1e-9 * energy:  # nothing left to explain: done
            residual = target - problem.project(problem.terms(chosen, coef)).sum(axis=0)
            trial = self._best_with(chosen, pool, residual, problem)
            if trial is None:
                break
            gain = (rss - trial[2]) / rss  # of the residual left before it: a pure spectrum's mismatch is not a mineral
            if len(steps) < 2:
                trial = self._refined(*trial, pool=pool, problem=problem)
                gain = (rss - trial[2]) / rss
            elif self.accepted_steps([*gains, gain]) == 3:  # a third is refined only where it is reported
                trial = self._refined(*trial, pool=pool, problem=problem)  # and keeps the gain that decided it
            gains.append(gain)
            trial_chosen, trial_coef, trial_rss = trial
            keep = trial_coef > 0  # a term the new one made redundant leaves the fit
            chosen, coef, rss = [c for c, k in zip(trial_chosen, keep) if k], trial_coef[keep], trial_rss
            steps.append((chosen, coef))
        if not steps:
            return None
        accepted = self.accepted_steps(gains)
        return self._result(*steps[accepted - 1], x, problem, gains[:accepted], gains)

    def accepted_steps(self, gains: Sequence[float]) -> int:
        """How many of the steps that removed ``gains`` (each a fraction of the residual left before it) are
        reported (module docstring, step 4)."""
        if len(gains) >= 3 and 1.0 - (1.0 - gains[1]) * (1.0 - gains[2]) > self.min_pair_gain and gains[2] > self.min_third_gain:
            return 3
        return 2 if len(gains) >= 2 and gains[1] > self.min_gain else min(len(gains), 1)

    def _best_with(
        self, fixed: list[_Term], pool: list[str], residual: np.ndarray, problem: _Problem, search: bool = True
    ) -> tuple[list[_Term], np.ndarray, float] | None:
        """``fixed`` plus the one candidate that leaves the smallest residual: the minerals of ``pool`` and, with
        ``search``, those whose references correlate best with ``residual`` (added to ``pool``), each by its
        ``references`` references that correlate best with it, each moved by the shift that fits it best, never a
        second member of a fixed mineral's group. None where none is left."""
        library = self.library
        blocked = set().union(*(self._group_of.get(t.mineral, {t.mineral}) for t in fixed))
        if search:
            r = library.correlations_binned(residual, problem.lo)
            per_mineral = library.best_per_mineral(r)
            pool += [library.mineral_names[j] for j in np.argsort(-per_mineral, kind="stable")[: self.candidates]]
        names = list(dict.fromkeys(m for m in pool if m not in blocked))
        if not names:
            return None
        if not search:
            r = library.correlations_binned(residual, problem.lo, names)
        trials = [(m, i) for m in names for i in library.best_references(r, m, self.references)]
        shifts, columns = problem.best_shifts([i for _, i in trials], residual)
        spans = np.flatnonzero([True] + [a[0] != b[0] for a, b in zip(trials, trials[1:])] + [True])  # one block per mineral
        fits = problem.with_each(fixed, [columns[a:b] for a, b in zip(spans, spans[1:])])
        best = int(np.argmin([f[1] for f in fits]))
        if not np.isfinite(fits[best][1]):
            return None
        a, b = spans[best], spans[best + 1]
        return [*fixed, *(_Term(m, row, shift) for (m, row), shift in zip(trials[a:b], shifts[a:b]))], fits[best][0], fits[best][1]

    def _refined(self, chosen: list[_Term], coef: np.ndarray, rss: float, pool: list[str], problem: _Problem) -> tuple[list[_Term], np.ndarray, float]:
        """One pass over the components, each replaced by the best candidate for what the others leave, where
        that lowers the residual: a first pick that was a compromise between two minerals gives way to one of them."""
        for mineral in _minerals(chosen) if len(_minerals(chosen)) > 1 else []:
            mask = np.array([t.mineral != mineral for t in chosen])
            others = [t for t, k in zip(chosen, mask) if k]
            rest = problem.project(problem.terms(others, coef[mask])).sum(axis=0)
            trial = self._best_with(others, pool, problem.target - rest, problem, search=False)
            if trial is not None and trial[2] < rss - 1e-9:
                chosen, coef, rss = trial
        return chosen, coef, rss

    def _result(self, chosen: list[_Term], coef: np.ndarray, x: np.ndarray, problem: _Problem, gains: list[float], tried: list[float]) -> MixtureFit:
        raw = problem.terms(chosen, coef)  # each term, unprojected
        areas = raw.sum(axis=1)
        shares = areas / areas.sum() if areas.sum() > 0 else np.full(len(areas), 1.0 / len(areas))
        basis = problem.basis
        baseline = basis @ (basis.T @ (x - raw.sum(axis=0)))  # the free baseline's least-squares part
        fitted = raw.sum(axis=0) + baseline
        resid = x - fitted
        rel = float(np.sqrt((resid @ resid) / (problem.target @ problem.target)))
        xc, fc = x - x.mean(), fitted - fitted.mean()
        denom = float(np.linalg.norm(xc) * np.linalg.norm(fc))
        fit_hqi = float(hqi(float(xc @ fc) / denom)) if denom > 0 else 0.0
        components = []
        for mineral in _minerals(chosen):
            mine = [i for i, t in enumerate(chosen) if t.mineral == mineral]
            main = max(mine, key=lambda i: areas[i])  # the reference that carries most of it names it
            entry = self.library.entry(chosen[main].row)
            curve = raw[mine].sum(axis=0)
            components.append(Component(mineral, float(shares[mine].sum()), entry["id"], entry["source"], _on_grid(curve, problem.lo), BIN * chosen[main].shift))
        order = np.argsort([-c.share for c in components], kind="stable")
        return MixtureFit([components[i] for i in order], rel, fit_hqi, _on_grid(fitted, problem.lo), gains, tried)


def _minerals(terms: list[_Term]) -> list[str]:
    """The distinct minerals of a fit's terms, in order."""
    return list(dict.fromkeys(t.mineral for t in terms))


def _on_grid(binned: np.ndarray, lo: int) -> np.ndarray:
    """Bins ``lo`` .. back on the 1 cm^-1 grid (each bin's value on its BIN points), zeros elsewhere."""
    out = np.zeros(GRID_SIZE, np.float32)
    values = np.repeat(binned.astype(np.float32), BIN)
    out[lo * BIN : lo * BIN + len(values)] = values
    return out
