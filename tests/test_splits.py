from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.sources import load_published_npz
from trainer.splits import grouped_split, make_split, random_split


@pytest.fixture(scope="module")
def dataset1(dataset2_npz):
    return load_published_npz(dataset2_npz).with_min_per_class(10)


def _parts(split):
    return split.train, split.val, split.test


def test_random_split_is_the_papers_proportions_and_stratified(dataset1):
    split = random_split(dataset1.mineral, seed=3)
    train, val, test = _parts(split)
    n = len(dataset1)
    assert len(train) + len(val) + len(test) == n
    assert len(np.unique(np.concatenate([train, val, test]))) == n
    assert len(test) / n == pytest.approx(0.30, abs=0.01)
    assert len(val) / n == pytest.approx(0.14, abs=0.01)
    for part in (train, test):
        assert set(dataset1.mineral[part]) == set(dataset1.classes)  # every class learnt and tested


def test_random_split_shares_specimens_but_grouped_never_does(dataset1):
    random = random_split(dataset1.mineral, seed=0)
    assert set(dataset1.specimen[random.train]) & set(dataset1.specimen[random.test])  # the leak

    grouped = grouped_split(dataset1.mineral, dataset1.specimen, seed=0)
    train, val, test = (set(dataset1.specimen[p]) for p in _parts(grouped))
    assert not (train & test) and not (train & val) and not (val & test)
    single = {c for c in dataset1.classes if len(set(dataset1.specimen[dataset1.mineral == c])) < 2}
    assert set(grouped.excluded_classes) == single and len(single) == 192 - 175
    kept = set(dataset1.classes) - single
    assert set(dataset1.mineral[grouped.train]) == kept == set(dataset1.mineral[grouped.test])
    # whole specimens move, and a class of two specimens puts one of them in test: above 0.30
    assert 0.28 < len(grouped.test) / (len(grouped.train) + len(grouped.val) + len(grouped.test)) < 0.42


def test_splits_are_reproducible_from_the_seed(dataset1):
    for protocol in ("random", "grouped"):
        a = make_split(protocol, dataset1.mineral, dataset1.specimen, seed=7)
        b = make_split(protocol, dataset1.mineral, dataset1.specimen, seed=7)
        c = make_split(protocol, dataset1.mineral, dataset1.specimen, seed=8)
        np.testing.assert_array_equal(a.test, b.test)
        assert not np.array_equal(a.test, c.test)
    with pytest.raises(ValueError, match="unknown split protocol"):
        make_split("kfold", dataset1.mineral, dataset1.specimen, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    per_specimen=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_grouped_split_property(counts, per_specimen, seed):
    """Any class layout: parts disjoint by specimen, classes with >= 2 specimens learnt and tested."""
    mineral, specimen = [], []
    for c, n_specimens in enumerate(counts):
        for s in range(n_specimens):
            mineral += [f"m{c}"] * per_specimen
            specimen += [f"R{c:02d}{s:04d}"] * per_specimen
    mineral, specimen = np.array(mineral), np.array(specimen)
    split = grouped_split(mineral, specimen, seed)
    train, val, test = (set(specimen[p]) for p in _parts(split))
    assert not (train & test) and not (train & val) and not (val & test)
    multi = {f"m{c}" for c, n in enumerate(counts) if n >= 2}
    assert set(mineral[split.train]) == multi == set(mineral[split.test])
    assert set(split.excluded_classes) == {f"m{c}" for c, n in enumerate(counts) if n < 2}
    assert Counter(np.concatenate(_parts(split)).tolist()).most_common(1)[0][1] == 1 if len(split.train) else True
