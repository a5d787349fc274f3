"""Splits: partition invariants on real data and, with Hypothesis, on random small data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advrec.data.filters import drop_unused
from advrec.data.interactions import Interactions
from advrec.data.splits import (
    Split,
    check_split,
    leave_one_out,
    random_holdout,
    temporal_split,
    validation_split,
)
from advrec.errors import ConfigError, DataError


def _read_tsv(path, name: str) -> Interactions:
    df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "ts"])
    return Interactions.from_raw(df.user, df.item, df.rating, df.ts, name=name)


@pytest.fixture(scope="module", params=["movielens-500", "ml-100k"])
def real(request, data_dir) -> Interactions:
    if request.param == "movielens-500":
        return _read_tsv(data_dir / "movielens-500" / "trainingset.tsv", "movielens-500")
    return _read_tsv(data_dir / "ml-100k" / "u.data", "ml-100k")


def _keys(data: Interactions) -> np.ndarray:
    return data.users * data.n_items + data.items


def _rows(data: Interactions) -> np.ndarray:
    """Every record as one sortable row (key, timestamp or 0), for multiset comparison."""
    ts = data.timestamps if data.timestamps is not None else np.zeros(len(data), np.int64)
    rows = np.stack([_keys(data), ts], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def assert_partition(data: Interactions, train: Interactions, test: Interactions) -> None:
    """Same id space, disjoint pairs, and train ∪ test is exactly the input (as a multiset)."""
    assert train.same_space(data) and test.same_space(data)
    assert train.user_ids is data.user_ids and test.item_ids is data.item_ids
    check_split(train, test)
    both = Interactions(np.r_[train.users, test.users], np.r_[train.items, test.items],
                        data.user_ids, data.item_ids, None,
                        None if data.timestamps is None else np.r_[train.timestamps,
                                                                   test.timestamps])
    np.testing.assert_array_equal(_rows(both), _rows(data))


def assert_leave_one_out(data: Interactions, train: Interactions, test: Interactions,
                         min_train: int = 1) -> None:
    assert_partition(data, train, test)
    eligible = data.user_counts >= min_train + 1
    np.testing.assert_array_equal(test.user_counts, eligible.astype(np.int64))
    np.testing.assert_array_equal(train.user_counts, data.user_counts - test.user_counts)
    if data.timestamps is not None and len(test):
        latest = np.full(data.n_users, np.iinfo(np.int64).min)
        np.maximum.at(latest, train.users, train.timestamps)
        assert (test.timestamps >= latest[test.users]).all()


# ----------------------------------------------------------------------------- leave-one-out
def test_leave_one_out_real(real):
    train, test = leave_one_out(real, seed=3)
    assert_leave_one_out(real, train, test)
    assert len(test) == int((real.user_counts >= 2).sum())
    assert train.name == f"{real.name}/train" and test.name == f"{real.name}/test"


def test_leave_one_out_seeded_tie_break():
    users = np.repeat(np.arange(50), 4)
    data = Interactions(users, np.tile(np.arange(4), 50), np.arange(50), np.arange(4),
                        timestamps=np.zeros(200, np.int64))
    a, b, c = (leave_one_out(data, seed=s)[1] for s in (1, 1, 2))
    np.testing.assert_array_equal(a.items, b.items)
    assert not np.array_equal(a.items, c.items)
    assert_leave_one_out(data, *leave_one_out(data, seed=2))


def test_leave_one_out_without_timestamps_is_random_but_seeded():
    data = Interactions(np.repeat(np.arange(100), 5), np.tile(np.arange(5), 100), np.arange(100),
                        np.arange(5))
    _, t1 = leave_one_out(data, seed=7)
    _, t2 = leave_one_out(data, seed=7)
    np.testing.assert_array_equal(t1.items, t2.items)
    assert len(np.unique(t1.items)) == 5  # not always the last record
    assert_leave_one_out(data, *leave_one_out(data, seed=np.random.default_rng(0)))


def test_leave_one_out_min_train(real):
    train, test = leave_one_out(real, min_train=30)
    assert_leave_one_out(real, train, test, min_train=30)
    with pytest.raises(ConfigError):
        leave_one_out(real, min_train=-1)


# ----------------------------------------------------------------------------- random hold-out
def expected_test_counts(counts: np.ndarray, ratio: float, min_train: int) -> np.ndarray:
    n = np.floor(counts * ratio + 0.5).astype(np.int64)
    n = np.where(counts >= min_train + 1, np.maximum(n, 1), 0)
    return np.minimum(n, np.maximum(counts - min_train, 0))


def test_random_holdout_real(real):
    train, test = random_holdout(real, test_ratio=0.2, seed=1)
    assert_partition(real, train, test)
    np.testing.assert_array_equal(test.user_counts, expected_test_counts(real.user_counts, 0.2, 1))
    assert abs(len(test) / len(real) - 0.2) < 0.01
    train2, _ = random_holdout(real, test_ratio=0.2, seed=1)
    np.testing.assert_array_equal(train.items, train2.items)


def test_random_holdout_small_users():
    # users with 1, 2, 3, 10 records, ratio 0.1: the 1-record user stays in train, others get ≥ 1
    counts = np.array([1, 2, 3, 10])
    users = np.repeat(np.arange(4), counts)
    items = np.arange(len(users)) - np.repeat(np.cumsum(counts) - counts, counts)
    data = Interactions(users, items, np.arange(4), np.arange(10))
    train, test = random_holdout(data, test_ratio=0.1, seed=0)
    np.testing.assert_array_equal(test.user_counts, [0, 1, 1, 1])
    train, test = random_holdout(data, test_ratio=0.5, seed=0, min_train=2)
    np.testing.assert_array_equal(test.user_counts, [0, 0, 1, 5])
    with pytest.raises(ConfigError):
        random_holdout(data, test_ratio=1.0)


# ----------------------------------------------------------------------------- temporal
def test_temporal_split_real(real):
    train, test = temporal_split(real, 0.2)
    assert_partition(real, train, test)
    assert len(test) == round(len(real) * 0.2)
    assert test.timestamps.min() >= train.timestamps.max()


def test_temporal_split_drop_cold(real):
    train, test = temporal_split(real, 0.3, drop_cold=True)
    _, full_test = temporal_split(real, 0.3)
    assert len(test) <= len(full_test)
    assert (train.user_counts[test.users] > 0).all() and (train.item_counts[test.items] > 0).all()
    check_split(train, test)


def test_temporal_split_needs_timestamps():
    with pytest.raises(DataError, match="timestamps"):
        temporal_split(Interactions.from_raw([0, 1], [0, 1]))


# ----------------------------------------------------------------------------- validation, check
def test_validation_split(real):
    train, test = leave_one_out(real)
    fit, valid = validation_split(train, "leave_one_out", seed=0)
    assert_leave_one_out(train, fit, valid)
    assert valid.name.endswith("/valid")
    fit, valid = validation_split(train, "random", ratio=0.1, seed=0)
    assert_partition(train, fit, valid)
    Split(fit, test, valid).check()
    with pytest.raises(ConfigError, match="method"):
        validation_split(train, "kfold")


def test_check_split_catches_leak_and_space():
    data = Interactions.from_raw(["a", "a", "b"], ["x", "y", "x"])
    with pytest.raises(DataError, match=r"both train and test.*\('a', 'x'\)"):
        check_split(data.subset([0, 1]), data.subset([0]))
    with pytest.raises(DataError, match="id space"):
        check_split(data.subset([0]), drop_unused(data.subset([1])))
    with pytest.raises(DataError, match="test and valid"):
        check_split(data.subset([0]), data.subset([1]), data.subset([1]))


# ----------------------------------------------------------------------------- hypothesis
@st.composite
def small_data(draw) -> Interactions:
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    keys = draw(st.lists(st.integers(0, n_users * n_items - 1), min_size=1, max_size=30,
                         unique=True))
    users, items = np.divmod(np.array(keys, np.int64), n_items)
    ts = None
    if draw(st.booleans()):
        ts = np.array(draw(st.lists(st.integers(0, 3), min_size=len(keys), max_size=len(keys))))
    return Interactions(users, items, np.arange(n_users) * 10, np.arange(n_items) + 100,
                        None, ts)


@settings(max_examples=80, deadline=None)
@given(small_data(), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_leave_one_out_property(data, min_train, seed):
    train, test = leave_one_out(data, seed=seed, min_train=min_train)
    assert_leave_one_out(data, train, test, min_train)
    _, again = leave_one_out(data, seed=seed, min_train=min_train)
    np.testing.assert_array_equal(test.items, again.items)


@settings(max_examples=80, deadline=None)
@given(small_data(), st.floats(0.05, 0.95), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_random_holdout_property(data, ratio, min_train, seed):
    train, test = random_holdout(data, ratio, seed=seed, min_train=min_train)
    assert_partition(data, train, test)
    np.testing.assert_array_equal(test.user_counts,
                                  expected_test_counts(data.user_counts, ratio, min_train))
    assert (train.user_counts >= np.minimum(data.user_counts, min_train)).all()


@settings(max_examples=50, deadline=None)
@given(small_data(), st.floats(0.05, 0.95))
def test_temporal_split_property(data, ratio):
    if data.timestamps is None:
        return
    train, test = temporal_split(data, ratio)
    assert_partition(data, train, test)
    if len(train) and len(test):
        assert test.timestamps.min() >= train.timestamps.max()
