"""Negative sampling: never a positive, seeded, uniform over the non-positives, bulk rejection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from advrec.data.interactions import Interactions
from advrec.data.sampling import UniformSampler, _Complement, _distinct_ranks, sample_items
from advrec.errors import ConfigError, DataError


def _data(users, items, n_users: int, n_items: int) -> Interactions:
    return Interactions(np.asarray(users), np.asarray(items), np.arange(n_users),
                        np.arange(n_items))


def _chi2(counts: np.ndarray) -> float:
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


@st.composite
def train_sets(draw) -> Interactions:
    """Random small training sets where every user keeps at least one non-positive item."""
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(2, 12))
    keys = draw(st.lists(st.integers(0, n_users * n_items - 1), min_size=1, max_size=60))
    users, items = np.divmod(np.array(keys, np.int64), n_items)
    full = np.bincount(np.unique(np.array(keys)) // n_items, minlength=n_users) == n_items
    keep = ~full[users]
    if not keep.any():
        users, items = np.array([0]), np.array([0])
        keep = np.array([True])
    return _data(users[keep], items[keep], n_users, n_items)


# --------------------------------------------------------------------------- UniformSampler
@settings(max_examples=100, deadline=None)
@given(train_sets(), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_negatives_are_never_positive(train, n, seed):
    sampler = UniformSampler(train, seed=seed)
    users = np.repeat(train.active_users, 7)
    neg = sampler.negatives(users, n)
    assert neg.shape == ((len(users),) if n == 1 else (len(users), n))
    pairs = set(zip(train.users.tolist(), train.items.tolist(), strict=True))
    flat_users = np.repeat(users, n)
    drawn = set(zip(flat_users.tolist(), neg.reshape(-1).tolist(), strict=True))
    assert not drawn & pairs
    assert ((neg >= 0) & (neg < train.n_items)).all()
    u, p, q = sampler.triples()
    assert not sampler.is_positive(u, q).any() and sampler.is_positive(u, p).all()


def test_same_seed_same_stream_and_reseed():
    train = _data([0, 0, 1, 2, 2, 2], [0, 3, 1, 2, 4, 5], 3, 8)
    a, b, c = UniformSampler(train, seed=5), UniformSampler(train, seed=5), UniformSampler(train, 6)
    ta, tb, tc = a.triples(), b.triples(), c.triples()
    for x, y in zip(ta, tb, strict=True):
        np.testing.assert_array_equal(x, y)
    users = np.zeros(1000, np.int64)
    first = a.negatives(users)
    a.reseed(99)
    c.reseed(99)
    np.testing.assert_array_equal(a.negatives(users), c.negatives(users))
    assert not np.array_equal(first, a.negatives(users))
    assert not all(np.array_equal(x, y) for x, y in zip(ta, tc, strict=True))


def test_negatives_uniform_over_non_positives():
    # user 0: 3 positives of 10 items; user 1: 8 of 10 (exercises the exact fallback stage too)
    train = _data([0, 0, 0] + [1] * 8, [0, 2, 4] + list(range(8)), 2, 10)
    sampler = UniformSampler(train, seed=0)
    neg0 = sampler.negatives(np.zeros(70_000, np.int64))
    counts0 = np.bincount(neg0, minlength=10)
    assert counts0[[0, 2, 4]].sum() == 0
    assert _chi2(counts0[[1, 3, 5, 6, 7, 8, 9]]) < 30  # 6 d.o.f.: p ≈ 4e-5
    neg1 = sampler.negatives(np.ones(20_000, np.int64), n=3)
    counts1 = np.bincount(neg1.ravel(), minlength=10)
    assert counts1[:8].sum() == 0 and _chi2(counts1[8:]) < 20  # 1 d.o.f.


def test_dense_user_forces_fallback_and_stays_uniform():
    n_items = 400
    train = _data(np.zeros(n_items - 4, np.int64), np.arange(4, n_items), 1, n_items)
    neg = UniformSampler(train, seed=1).negatives(np.zeros(40_000, np.int64))
    counts = np.bincount(neg, minlength=n_items)
    assert counts[4:].sum() == 0 and _chi2(counts[:4]) < 25


def test_user_with_every_item_raises():
    train = _data([0, 0, 0, 1], [0, 1, 2, 0], 2, 3)
    sampler = UniformSampler(train)
    assert sampler.negatives(np.array([1, 1])).tolist() != []
    with pytest.raises(DataError, match="every item"):
        sampler.negatives(np.array([1, 0]))
    with pytest.raises(DataError, match="every item"):
        sampler.triples()


def test_bad_arguments():
    sampler = UniformSampler(_data([0], [0], 1, 3))
    with pytest.raises(DataError):
        sampler.negatives(np.array([1]))
    with pytest.raises(ConfigError):
        sampler.negatives(np.array([0]), n=0)
    with pytest.raises(ConfigError):
        next(sampler.batches(0))


def test_triples_and_batches_cover_the_epoch():
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 200 * 300, 5000))
    train = _data(keys // 300, keys % 300, 200, 300)
    sampler = UniformSampler(train, seed=3)
    u, p, n = sampler.triples(shuffle=False)
    np.testing.assert_array_equal(u, train.users)
    np.testing.assert_array_equal(p, train.items)
    u, p, n = sampler.triples()
    assert not np.array_equal(u, train.users)
    np.testing.assert_array_equal(np.sort(u * 300 + p), np.sort(keys))
    assert u.dtype == p.dtype == n.dtype == np.int64
    u, p, n = UniformSampler(train, seed=3).triples()
    batches = list(UniformSampler(train, seed=3).batches(1024))
    assert [len(b[0]) for b in batches] == [1024] * 4 + [len(keys) - 4096]
    for got, want in zip((np.concatenate(col) for col in zip(*batches, strict=True)), (u, p, n),
                         strict=True):
        np.testing.assert_array_equal(got, want)


def test_sampler_on_real_data(data_dir):
    df = pd.read_csv(data_dir / "movielens-500" / "trainingset.tsv", sep="\t", header=None,
                     names=["user", "item", "rating", "ts"])
    train = Interactions.from_raw(df.user, df.item)
    sampler = UniformSampler(train, seed=0)
    u, p, n = sampler.triples()
    assert len(u) == len(train)
    assert not train.binary_csr[u, n].any()
    assert train.binary_csr[u, p].all()


# --------------------------------------------------------------------------- complement index
@settings(max_examples=100, deadline=None)
@given(train_sets())
def test_complement_nth_free_matches_brute_force(train):
    keys = np.unique(train.users * train.n_items + train.items)
    comp = _Complement(keys, train.n_users, train.n_items)
    dense = train.binary_csr.toarray() > 0
    users = np.repeat(np.arange(train.n_users), comp.n_free)
    ranks = np.arange(len(users)) - np.repeat(np.cumsum(comp.n_free) - comp.n_free, comp.n_free)
    got = comp.nth_free(users, ranks)
    want = np.nonzero(~dense)[1]  # row-major: each user's free items ascending
    np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=20),
       st.integers(0, 2**32 - 1))
def test_distinct_ranks_property(pairs, seed):
    avail, k = np.array(pairs).max(axis=1), np.array(pairs).min(axis=1)
    rows, vals = _distinct_ranks(avail, k, np.random.default_rng(seed))
    np.testing.assert_array_equal(np.bincount(rows, minlength=len(k)), k)
    assert (vals < avail[rows]).all() and (vals >= 0).all()
    key = rows * 31 + vals
    assert (np.diff(key) > 0).all()  # sorted by row then value, and distinct within each row


# --------------------------------------------------------------------------- sample_items
def test_sample_items_distinct_excluded_and_uniform():
    n_items = 12
    exclude = sp.csr_matrix((np.ones(5), ([0, 0, 0, 1, 1], [1, 5, 7, 0, 11])), shape=(2, n_items))
    users = np.array([0] * 3000 + [1] * 3000)
    for n in (3, 8):  # sparse path (rejection of repeats) and dense path (draw the left-outs)
        out = sample_items(n_items, exclude, users, n, rng=4)
        assert out.shape == (6000, n)
        assert (np.diff(out, axis=1) > 0).all()
        assert not np.isin(out[:3000], [1, 5, 7]).any() and not np.isin(out[3000:], [0, 11]).any()
        counts = np.bincount(out[:3000].ravel(), minlength=n_items)
        free = np.setdiff1d(np.arange(n_items), [1, 5, 7])
        assert _chi2(counts[free]) < 30
    np.testing.assert_array_equal(sample_items(n_items, exclude, users, 3, 7),
                                  sample_items(n_items, exclude, users, 3, 7))
    with pytest.raises(DataError, match="fewer than 10"):
        sample_items(n_items, exclude, np.array([0, 1]), 10, 0)


def test_bitmap_and_segment_lookups_agree(monkeypatch):
    """Small catalogues use a bitmap, large ones a per-user binary search: same answers."""
    import advrec.data.sampling as sampling

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 600), rng.integers(0, 80, 600)
    data = Interactions.from_raw(users, items, user_ids=np.arange(50), item_ids=np.arange(80))
    q_users, q_items = rng.integers(0, 50, 5000), rng.integers(0, 80, 5000)
    with_bitmap = sampling.UniformSampler(data).is_positive(q_users, q_items)
    monkeypatch.setattr(sampling, "_BITMAP_MAX_BITS", 0)
    searched = sampling.UniformSampler(data)
    assert searched._bitmap is None
    truth = set(zip(users.tolist(), items.tolist(), strict=True))
    expected = [(u, i) in truth for u, i in zip(q_users.tolist(), q_items.tolist(), strict=True)]
    assert with_bitmap.tolist() == expected
    assert searched.is_positive(q_users, q_items).tolist() == expected
