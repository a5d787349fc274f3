"""The Interactions type: id maps, subsets in the same id space, concat, CSR views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from advrec.data import Interactions
from advrec.errors import DataError


def sample() -> Interactions:
    return Interactions.from_raw(["u2", "u1", "u2", "u3"], [30, 10, 10, 20],
                                 ratings=[5, 4, 3, 1], timestamps=[4, 3, 2, 1])


def test_from_raw_builds_sorted_dense_ids():
    x = sample()
    assert x.shape == (3, 3) and len(x) == 4
    assert list(x.user_ids) == ["u1", "u2", "u3"]
    assert list(x.item_ids) == [10, 20, 30]
    assert x.users.tolist() == [1, 0, 1, 2]
    assert x.items.tolist() == [2, 0, 0, 1]
    assert x.csr.toarray().tolist() == [[4, 0, 0], [3, 0, 5], [0, 1, 0]]
    assert x.binary_csr.sum() == 4
    assert x.item_counts.tolist() == [2, 1, 1]


def test_arrays_are_read_only():
    x = sample()
    with pytest.raises(ValueError):
        x.users[0] = 2


def test_subset_keeps_the_id_space():
    x = sample()
    part = x.subset(x.ratings >= 4)
    assert part.same_space(x) and part.shape == x.shape
    assert len(part) == 2
    assert part.user_index(["u3"]).tolist() == [2]


def test_concat_extends_maps_and_keeps_existing_ids():
    x = sample()
    fake = Interactions.from_raw(["f1", "f1", "u1"], [10, 99, 20], ratings=[5, 5, 2],
                                 timestamps=[9, 9, 9])
    y = x.concat(fake)
    assert list(y.user_ids) == ["u1", "u2", "u3", "f1"]
    assert list(y.item_ids) == [10, 20, 30, 99]
    assert np.array_equal(y.users[:4], x.users) and np.array_equal(y.items[:4], x.items)
    assert y.users[4:].tolist() == [3, 3, 0] and y.items[4:].tolist() == [0, 3, 1]


def test_errors_name_the_problem():
    x = sample()
    with pytest.raises(DataError, match="unknown user id"):
        x.user_index(["nobody"])
    with pytest.raises(DataError, match="unknown item id"):
        Interactions.from_raw([1], [5], item_ids=[1, 2])
    with pytest.raises(DataError, match="ratings has 1 values for 4"):
        x.with_ratings([1.0])
    with pytest.raises(DataError, match="only one side has ratings"):
        x.concat(Interactions.from_raw(["z"], [10], timestamps=[1]))


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 30)), min_size=1, max_size=60))
def test_round_trip_to_frame(pairs):
    users, items = map(np.array, zip(*pairs, strict=True))
    x = Interactions.from_raw(users, items)
    frame = x.to_frame()
    assert frame["user"].tolist() == users.tolist()
    assert frame["item"].tolist() == items.tolist()
