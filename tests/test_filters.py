"""Filters: binarize, k-core, deduplicate, drop_unused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advrec.data.filters import binarize, deduplicate, drop_unused, k_core
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError


def _ml100k(data_dir) -> Interactions:
    df = pd.read_csv(data_dir / "ml-100k" / "u.data", sep="\t", header=None,
                     names=["user", "item", "rating", "ts"])
    return Interactions.from_raw(df.user, df.item, df.rating, df.ts, name="ml-100k")


def _is_k_core(data: Interactions, user_k: int, item_k: int) -> bool:
    uc, ic = data.user_counts, data.item_counts
    return bool((uc[uc > 0] >= user_k).all() and (ic[ic > 0] >= item_k).all())


# ----------------------------------------------------------------------------------- binarize
def test_binarize_keeps_high_ratings_and_drops_them():
    data = Interactions.from_raw([1, 1, 2, 2, 3], [10, 11, 10, 12, 12],
                                 [1.0, 4.0, 5.0, 3.5, 4.0], [5, 4, 3, 2, 1])
    out = binarize(data)
    assert out.ratings is None
    assert out.same_space(data)
    np.testing.assert_array_equal(out.timestamps, [4, 3, 1])
    np.testing.assert_array_equal(out.user_ids[out.users], [1, 2, 3])
    np.testing.assert_array_equal(out.item_ids[out.items], [11, 10, 12])
    assert len(binarize(data, threshold=3.5)) == 4


def test_binarize_needs_ratings_and_names_itself_when_emptying():
    with pytest.raises(DataError, match="ratings"):
        binarize(Interactions.from_raw([0], [0]))
    with pytest.raises(DataError, match="binarize"):
        binarize(Interactions.from_raw([0, 1], [0, 1], [1.0, 2.0]), threshold=4)


def test_binarize_ml100k(data_dir):
    data = _ml100k(data_dir)
    out = binarize(data, 4)
    assert len(out) == int((data.ratings >= 4).sum()) == 55375
    assert out.same_space(data)


# ----------------------------------------------------------------------------------- k_core
def test_k_core_cascades_to_empty_names_itself():
    # each removal pushes another user or item below 2, until nothing is left
    users = ["u1", "u1", "u2", "u2", "u3", "u3", "u4"]
    items = ["a", "b", "b", "c", "a", "d", "a"]
    with pytest.raises(DataError, match=r"k_core\(user_k=2, item_k=2\) left no interactions"):
        k_core(Interactions.from_raw(users, items), user_k=2, item_k=2)


def test_k_core_chain_result():
    users = [0, 0, 1, 1, 2, 2, 3, 3, 3]
    items = [0, 1, 0, 1, 1, 2, 0, 1, 3]
    out = k_core(Interactions.from_raw(users, items), user_k=2, item_k=2)
    # item 2 and 3 have one user → dropped; user 2 then has one item → dropped; rest is stable.
    pairs = set(zip(out.users.tolist(), out.items.tolist(), strict=True))
    assert pairs == {(0, 0), (0, 1), (1, 0), (1, 1), (3, 0), (3, 1)}


def test_k_core_empty_and_bad_k():
    data = Interactions.from_raw([0, 1], [0, 1])
    with pytest.raises(DataError, match="k_core"):
        k_core(data, 2, 2)
    with pytest.raises(ConfigError):
        k_core(data, 0, 1)


def test_k_core_ml100k(data_dir):
    data = _ml100k(data_dir)
    out = k_core(data, 20, 30)
    assert _is_k_core(out, 20, 30)
    assert out.same_space(data) and 0 < len(out) < len(data)
    assert len(k_core(out, 20, 30)) == len(out)  # idempotent
    assert len(k_core(data, 1, 1)) == len(data)
    pd.testing.assert_frame_equal(out.to_frame().reset_index(drop=True),
                                  _reference_core(data.to_frame(), 20, 30).reset_index(drop=True))


def _reference_core(frame: pd.DataFrame, user_k: int, item_k: int) -> pd.DataFrame:
    """Independent pandas peeling: drop users, then items, below k until nothing changes."""
    while True:
        kept = frame[frame.groupby("user").item.transform("size") >= user_k]
        kept = kept[kept.groupby("item").user.transform("size") >= item_k]
        if len(kept) == len(frame):
            return frame
        frame = kept


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=1, max_size=50),
       st.integers(1, 4), st.integers(1, 4))
def test_k_core_property(pairs, user_k, item_k):
    users, items = map(np.array, zip(*pairs, strict=True))
    data = Interactions.from_raw(users, items)
    try:
        out = k_core(data, user_k, item_k)
    except DataError:
        assert len(_reference_core(data.to_frame(), user_k, item_k)) == 0
        return
    assert _is_k_core(out, user_k, item_k)
    ref = _reference_core(data.to_frame(), user_k, item_k)
    assert len(ref) == len(out)


# ----------------------------------------------------------------------------------- deduplicate
@pytest.fixture
def dup_data() -> Interactions:
    #            0      1      2      3      4      5
    users = ["ann", "ann", "ann", "bob", "bob", "cat"]
    items = ["x", "x", "x", "y", "y", "x"]
    ratings = [1.0, 5.0, 2.0, 3.0, 4.0, 2.0]
    ts = [5, 3, 5, 9, 1, 7]
    return Interactions.from_raw(users, items, ratings, ts)


def _rows(data: Interactions) -> list[tuple]:
    f = data.to_frame()
    return list(f.itertuples(index=False, name=None))


def test_dedup_last_first_by_timestamp(dup_data):
    # ann/x: ts 5 (pos 0) and 5 (pos 2) tie → last is pos 2; first is ts 3 (pos 1)
    assert _rows(deduplicate(dup_data, "last")) == [("ann", "x", 2.0, 5), ("bob", "y", 3.0, 9),
                                                    ("cat", "x", 2.0, 7)]
    assert _rows(deduplicate(dup_data, "first")) == [("ann", "x", 5.0, 3), ("bob", "y", 4.0, 1),
                                                     ("cat", "x", 2.0, 7)]


def test_dedup_by_order_without_timestamps(dup_data):
    data = Interactions(dup_data.users, dup_data.items, dup_data.user_ids, dup_data.item_ids,
                        dup_data.ratings)
    assert _rows(deduplicate(data, "last")) == [("ann", "x", 2.0), ("bob", "y", 4.0),
                                                ("cat", "x", 2.0)]
    assert _rows(deduplicate(data, "first")) == [("ann", "x", 1.0), ("bob", "y", 3.0),
                                                 ("cat", "x", 2.0)]


def test_dedup_mean_and_max(dup_data):
    mean = deduplicate(dup_data, "mean")
    assert _rows(mean) == [("ann", "x", pytest.approx(8 / 3), 5), ("bob", "y", 3.5, 9),
                           ("cat", "x", 2.0, 7)]
    assert mean.ratings.dtype == np.float32
    assert _rows(deduplicate(dup_data, "max")) == [("ann", "x", 5.0, 3), ("bob", "y", 4.0, 1),
                                                   ("cat", "x", 2.0, 7)]


def test_dedup_error_names_raw_pair(dup_data):
    with pytest.raises(DataError, match=r"\('ann', 'x'\).*3 times.*2 repeated"):
        deduplicate(dup_data, "error")
    with pytest.raises(ConfigError):
        deduplicate(dup_data, "median")


def test_dedup_noop_and_keeps_space(dup_data):
    once = deduplicate(dup_data, "last")
    assert deduplicate(once, "error") is once
    assert once.same_space(dup_data)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 3)),
                min_size=1, max_size=40),
       st.sampled_from(["last", "first", "mean", "max"]))
def test_dedup_property(rows, policy):
    u, i, t = map(np.array, zip(*rows, strict=True))
    data = Interactions.from_raw(u, i, ratings=t + 1.0, timestamps=t)
    out = deduplicate(data, policy)
    keys = out.users * out.n_items + out.items
    assert len(np.unique(keys)) == len(out)
    assert set(keys.tolist()) == set((data.users * data.n_items + data.items).tolist())


# ----------------------------------------------------------------------------------- drop_unused
def test_drop_unused_reindexes():
    data = Interactions.from_raw([5, 7], ["a", "c"], user_ids=[5, 6, 7], item_ids=["a", "b", "c"])
    out = drop_unused(data)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out.user_ids, [5, 7])
    np.testing.assert_array_equal(out.item_ids, ["a", "c"])
    pd.testing.assert_frame_equal(out.to_frame(), data.to_frame())
    with pytest.raises(DataError, match="empty"):
        drop_unused(data.subset(np.zeros(2, bool)))


def test_drop_unused_after_k_core(data_dir):
    core = k_core(_ml100k(data_dir), 50, 50)
    out = drop_unused(core)
    assert (out.user_counts > 0).all() and (out.item_counts > 0).all()
    pd.testing.assert_frame_equal(out.to_frame(), core.to_frame())
