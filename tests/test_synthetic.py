"""Synthetic generator: exact size, no duplicates, heavy-tailed popularity, clusters, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from advrec.data.synthetic import _make_model, synthetic_interactions
from advrec.errors import ConfigError

SHAPE = (10_000, 2_000, 200_000)


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(*SHAPE, seed=0, with_ratings=True, with_timestamps=True)


def test_shape_and_no_duplicates(data):
    assert data.shape == SHAPE[:2] and len(data) == SHAPE[2]
    keys = data.users * data.n_items + data.items
    assert len(np.unique(keys)) == len(data)
    assert (np.diff(keys) > 0).all()  # sorted by user, then item
    np.testing.assert_array_equal(data.user_ids, np.arange(SHAPE[0]))
    assert (data.user_counts > 0).all() and data.user_counts.max() <= data.n_items // 2


def test_popularity_heavy_tailed(data):
    counts = np.sort(data.item_counts)[::-1]
    top = counts[: data.n_items // 10].sum() / counts.sum()
    assert top > 0.4
    flat = synthetic_interactions(*SHAPE, popularity_exponent=0.0, cluster_affinity=0.0)
    flat_counts = np.sort(flat.item_counts)[::-1]
    assert flat_counts[: data.n_items // 10].sum() / len(flat) < 0.15


def test_cluster_structure(data):
    # the model is the generator's first use of the seeded stream, so it can be rebuilt here
    model = _make_model(SHAPE[0], SHAPE[1], 20, 1.0, 0.8, np.random.default_rng(0))
    same = model.user_cluster[data.users] == model.item_cluster[data.items]
    assert same.mean() > 0.5  # vs about 1/20 without clusters
    ratings_in, ratings_out = data.ratings[same].mean(), data.ratings[~same].mean()
    assert ratings_in > ratings_out + 0.5


def test_ratings_and_timestamps(data):
    assert data.ratings.dtype == np.float32
    assert set(np.unique(data.ratings).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert data.timestamps.dtype == np.int64
    assert data.timestamps.min() >= 946_684_800 and data.timestamps.max() < 946_684_800 + 10**8
    plain = synthetic_interactions(100, 50, 500)
    assert plain.ratings is None and plain.timestamps is None


def test_seeded():
    a = synthetic_interactions(500, 300, 5_000, seed=3, with_ratings=True)
    b = synthetic_interactions(500, 300, 5_000, seed=np.random.default_rng(3), with_ratings=True)
    c = synthetic_interactions(500, 300, 5_000, seed=4, with_ratings=True)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    assert not np.array_equal(a.items, c.items)


def test_dense_case_exact_count():
    # 90% of all pairs: exercises the top-up rounds and the exact uniform fallback
    out = synthetic_interactions(40, 30, 1_080, n_clusters=3, popularity_exponent=2.0, seed=1)
    assert len(out) == 1_080
    assert len(np.unique(out.users * 30 + out.items)) == 1_080
    full = synthetic_interactions(7, 5, 35, n_clusters=5)
    assert (full.user_counts == 5).all()
    assert len(synthetic_interactions(7, 5, 0, n_clusters=2)) == 0


def test_bad_configs():
    with pytest.raises(ConfigError, match="n_interactions"):
        synthetic_interactions(10, 10, 101)
    with pytest.raises(ConfigError, match="n_clusters"):
        synthetic_interactions(10, 10, 50, n_clusters=11)
    with pytest.raises(ConfigError):
        synthetic_interactions(0, 10, 0)
    with pytest.raises(ConfigError):
        synthetic_interactions(10, 10, 10, popularity_exponent=-1)
