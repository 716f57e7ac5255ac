"""Train/validation/test splits: the paper's stratified random split and a split grouped by specimen.

The paper splits at random (stratified 70/30, then 20% of the training part for validation:
0.56/0.14/0.30). RRUFF holds several spectra of one specimen (lasers, orientations,
sub-samples), so a random split tests on specimens the model has already seen. The grouped
split keeps every specimen whole in one part; it needs two specimens in a class, so classes
with a single specimen are left out of it, and the split says how many. ``all`` puts every
spectrum in training (the production fit, once a recipe is chosen on the grouped split): no
validation and no test part. ``open`` (the open-set protocol, :func:`open_set_minerals`) holds
a seeded fifth of the minerals out as *unknown* and splits the rest as ``grouped`` does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from trainer.errors import ConfigError, SplitError

PROTOCOLS = ("random", "grouped", "all", "open")
#: Share of minerals the open-set protocol holds out as unknown (by mineral, seeded).
UNKNOWN_FRACTION = 0.2
TEST_FRACTION = 0.30
VAL_FRACTION = 0.14


@dataclass(frozen=True)
class Split:
    """Row indices into a dataset for each part, and which protocol made them."""

    protocol: str
    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    excluded_classes: tuple[str, ...] = ()

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _allocate(n: int, test: float, val: float) -> tuple[int, int]:
    """How many of ``n`` items of one class go to test and to validation.

    Proportional and rounded, but every class with two items or more puts one in test and
    keeps one for training, so that every class is both learnt and tested.
    """
    n_test = min(max(1, round(test * n)), n - 1) if n >= 2 else 0
    n_val = min(round(val * n), n - n_test - 1)
    return n_test, max(n_val, 0)


def random_split(mineral: np.ndarray, seed: int, test: float = TEST_FRACTION, val: float = VAL_FRACTION) -> Split:
    """Stratified random split of spectra (the paper's protocol)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for name in sorted(set(mineral.tolist())):
        rows = rng.permutation(np.flatnonzero(mineral == name))
        n_test, n_val = _allocate(len(rows), test, val)
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    train_rows, val_rows, test_rows = (np.sort(np.concatenate(parts[k])) for k in ("train", "val", "test"))
    return Split("random", seed, train_rows, val_rows, test_rows)


def grouped_split(
    mineral: np.ndarray,
    specimen: np.ndarray,
    seed: int,
    test: float = TEST_FRACTION,
    val: float = VAL_FRACTION,
) -> Split:
    """Split whole specimens, per class: no specimen has spectra in two parts.

    Specimens are allocated like spectra in :func:`random_split` (by count of specimens),
    so each kept class has at least one specimen in training and one in test.
    """
    if np.any(specimen == ""):
        raise SplitError("grouped split needs a specimen id for every spectrum")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    excluded = []
    for name in sorted(set(mineral.tolist())):
        rows = np.flatnonzero(mineral == name)
        specimens = rng.permutation(sorted(set(specimen[rows].tolist())))
        if len(specimens) < 2:
            excluded.append(name)
            continue
        n_test, n_val = _allocate(len(specimens), test, val)
        groups = {
            "test": specimens[:n_test],
            "val": specimens[n_test : n_test + n_val],
            "train": specimens[n_test + n_val :],
        }
        for part, chosen in groups.items():
            parts[part].append(rows[np.isin(specimen[rows], chosen)])
    train_rows, val_rows, test_rows = (
        np.sort(np.concatenate(parts[k])) if parts[k] else np.empty(0, np.int64) for k in ("train", "val", "test")
    )
    split = Split("grouped", seed, train_rows, val_rows, test_rows, excluded_classes=tuple(excluded))
    _check_disjoint_specimens(split, specimen)
    return split


def _check_disjoint_specimens(split: Split, specimen: np.ndarray) -> None:
    """A specimen listed under two mineral names would cross parts; refuse rather than leak."""
    seen = [set(specimen[rows].tolist()) for rows in (split.train, split.val, split.test)]
    shared = (seen[0] & seen[1]) | (seen[0] & seen[2]) | (seen[1] & seen[2])
    if shared:
        raise SplitError(f"specimens in two parts (listed under two minerals?): {sorted(shared)[:5]}")


def open_set_minerals(mineral: np.ndarray, seed: int, fraction: float = UNKNOWN_FRACTION) -> tuple[list[str], list[str]]:
    """The minerals the open-set protocol of ``seed`` holds out as unknown, halved by mineral into the
    ones a gate is fitted on and the ones it is tested on: (fit, test), each sorted. No mineral is in both,
    and none of them in the known part."""
    names = np.array(sorted(set(mineral.tolist())))
    chosen = np.random.default_rng([seed, 20]).permutation(names)[: int(round(fraction * len(names)))]
    half = len(chosen) // 2
    return sorted(chosen[:half].tolist()), sorted(chosen[half:].tolist())


def open_split(mineral: np.ndarray, specimen: np.ndarray, seed: int) -> Split:
    """The known minerals split by specimen (as :func:`grouped_split`); the unknown ones in no part."""
    fit, test = open_set_minerals(mineral, seed)
    known = np.flatnonzero(~np.isin(mineral, np.array(fit + test, dtype=str)))
    inner = grouped_split(mineral[known], specimen[known], seed)
    return Split("open", seed, known[inner.train], known[inner.val], known[inner.test], inner.excluded_classes + tuple(fit + test))


def make_split(protocol: str, mineral: np.ndarray, specimen: np.ndarray, seed: int) -> Split:
    if protocol == "open":
        return open_split(mineral, specimen, seed)
    if protocol == "all":
        empty = np.empty(0, np.int64)
        return Split("all", seed, np.arange(len(mineral)), empty, empty)
    if protocol == "random":
        return random_split(mineral, seed)
    if protocol == "grouped":
        return grouped_split(mineral, specimen, seed)
    raise ConfigError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def rows_fingerprint(rows: np.ndarray) -> str:
    """sha256 of a set of row indices (order ignored): lets two results be paired on the same test spectra
    after their run folders are gone, since summaries keep this instead of the rows."""
    return hashlib.sha256(np.sort(np.asarray(rows, dtype=np.int64)).tobytes()).hexdigest()
