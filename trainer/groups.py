"""Raman-indistinguishable groups, derived from the data: minerals whose spectra of different
specimens are as close to each other as to their own.

Data flow: reference spectra with mineral and specimen (a run's training part, or every spectrum
for a production bundle) -> each spectrum searched against all the others as the device searches
(:meth:`edge.library.ReferenceLibrary.correlations`, its own specimen left out) -> for each pair of
minerals (A, B), :func:`confusability`: the share of A's spectra whose best match among B's
spectra is at least as good as their best match among A's *other* specimens (a single-specimen
mineral compares with :data:`SINGLE_SPECIMEN_R`) and at least :data:`MIN_R` -> :func:`groups_from`:
pairs confusable both ways (each way on at least half the spectra) joined by complete linkage,
so that every two members of a group are confusable: series members (Whiteite-(CaFe Mg) and
-(CaMnMg)), zeolites, rare-earth glasses, not long chains of look-alikes. The groups go into the
bundle (``trainer export``); the device answers at group level where the evidence cannot separate
the members (:class:`edge.library.Matcher`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edge.library import ReferenceLibrary

#: A spectrum's best correlation with another specimen of its own mineral, assumed where it has none.
SINGLE_SPECIMEN_R = 0.95
#: Matches weaker than this never make two minerals confusable (noisy minerals match everything poorly).
MIN_R = 0.85
#: A pair is confusable one way when at least this share of the first mineral's spectra confuse.
MIN_SHARE = 0.5


def confusability(spectra: np.ndarray, mineral: np.ndarray, specimen: np.ndarray) -> dict[tuple[str, str], float]:
    """{(A, B): share of A's spectra that match B as well as their own mineral}; pairs with no such spectrum left out.

    ``spectra``: (n, GRID_SIZE) preprocessed; ``mineral``, ``specimen``: (n,) str.
    """
    library = ReferenceLibrary(spectra, mineral, specimen, np.full(len(mineral), "reference"))
    order = np.argsort(mineral, kind="stable")  # the library's own (mineral-sorted) order
    sorted_mineral, sorted_specimen = mineral[order], specimen[order]
    names = library.mineral_names
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for i in range(len(mineral)):
        r = library.correlations(spectra[i])
        r = np.where(sorted_specimen == specimen[i], -1.0, r)  # never its own specimen
        own = r[sorted_mineral == mineral[i]]
        own_best = float(own.max()) if own.size and own.max() > -1.0 else SINGLE_SPECIMEN_R
        best = library.best_per_mineral(r)
        for j in np.flatnonzero(best >= max(own_best, MIN_R)):
            if names[j] != mineral[i]:
                counts[(str(mineral[i]), names[j])] += 1
    totals = defaultdict(int, zip(*np.unique(mineral, return_counts=True)))
    return {pair: n / totals[pair[0]] for pair, n in counts.items()}


def groups_from(confusable: dict[tuple[str, str], float], min_share: float = MIN_SHARE) -> list[list[str]]:
    """Groups of minerals every two of which are confusable both ways (complete linkage, strongest pairs first)."""
    mutual = {
        (a, b): min(share, confusable.get((b, a), 0.0))
        for (a, b), share in confusable.items()
        if a < b and share >= min_share and confusable.get((b, a), 0.0) >= min_share
    }
    cluster: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for (a, b), _ in sorted(mutual.items(), key=lambda item: (-item[1], item[0])):
        ca, cb = cluster.get(a, a), cluster.get(b, b)
        if ca == cb:
            continue
        first, second = members.get(ca, [a]), members.get(cb, [b])
        if all((min(x, y), max(x, y)) in mutual for x in first for y in second):
            members[ca] = first + second
            members.pop(cb, None)
            for name in members[ca]:
                cluster[name] = ca
    return sorted((sorted(group) for group in members.values()), key=lambda g: (-len(g), g))


def derive_groups(spectra: np.ndarray, mineral: np.ndarray, specimen: np.ndarray) -> list[list[str]]:
    """The Raman-indistinguishable groups of these reference spectra (see the module docstring)."""
    return groups_from(confusability(spectra, mineral, specimen))
