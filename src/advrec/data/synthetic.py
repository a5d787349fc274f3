"""Synthetic implicit/explicit feedback with cluster structure and power-law item popularity.

Generative story (all vectorised, seeded): items get a Zipf popularity ``(rank + 1) ** -exponent``
over a random rank order and a cluster; users get a cluster (chosen in proportion to the cluster's
total popularity) and a log-normal activity level that fixes how many distinct items they have.
Each draw picks, with probability ``cluster_affinity``, an item of the user's own cluster by
popularity, otherwise any item by popularity. Repeated (user, item) pairs are removed by sorting
the ``user * n_items + item`` keys and the missing draws are topped up (a few popularity rounds,
then an exact uniform draw among the user's unseen items), so the result has exactly
``n_interactions`` distinct pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advrec.data._args import check_seed
from advrec.data.interactions import Interactions
from advrec.data.sampling import _Complement, _distinct_ranks
from advrec.errors import ParamError
from advrec.validation import check_bool, check_float, check_int

Seed = int | np.random.Generator

_CHUNK = 1 << 22
_TOPUP_ROUNDS = 4
_T0 = 946_684_800  # 2000-01-01 UTC
_SPAN = 3 * 365 * 86_400


@dataclass(frozen=True)
class _Model:
    """Item popularity per cluster, as cumulative weights for inverse-CDF sampling."""

    n_items: int
    user_cluster: np.ndarray
    item_cluster: np.ndarray
    by_cluster: np.ndarray  # items grouped by cluster
    cum: np.ndarray  # cumulative popularity along by_cluster
    lo: np.ndarray  # per cluster: cumulative weight before its first item
    start: np.ndarray  # per cluster: first position in by_cluster
    end: np.ndarray  # per cluster: one past its last position
    global_cum: np.ndarray
    affinity: float


def _make_model(n_users: int, n_items: int, n_clusters: int, exponent: float, affinity: float,
                rng: np.random.Generator) -> _Model:
    """Zipf popularity, random item clusters (all non-empty), users per cluster ∝ its popularity."""
    popularity = (rng.permutation(n_items) + 1.0) ** -exponent
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters)
    by_cluster = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(popularity[by_cluster])
    end = np.cumsum(np.bincount(item_cluster, minlength=n_clusters))
    start = end - np.bincount(item_cluster, minlength=n_clusters)
    lo = np.r_[0.0, cum][start]
    mass = cum[end - 1] - lo
    user_cluster = rng.choice(n_clusters, size=n_users, p=mass / mass.sum())
    return _Model(n_items, user_cluster, item_cluster, by_cluster, cum, lo, start, end,
                  np.cumsum(popularity), affinity)


def _draw_items(model: _Model, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One popularity-weighted item per entry of ``users``, from its cluster w.p. affinity."""
    r = rng.random(len(users))
    own = rng.random(len(users)) < model.affinity
    items = np.empty(len(users), np.int64)
    c = model.user_cluster[users[own]]
    target = model.lo[c] + r[own] * (model.cum[model.end[c] - 1] - model.lo[c])
    pos = np.searchsorted(model.cum, target, side="right")
    pos = np.clip(pos, model.start[c], model.end[c] - 1)
    items[own] = model.by_cluster[pos]
    target = r[~own] * model.global_cum[-1]
    items[~own] = np.minimum(np.searchsorted(model.global_cum, target, side="right"),
                             model.n_items - 1)
    return items


def _draw_keys(model: _Model, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``user * n_items + item`` keys of ``counts[u]`` draws per user, grouped by user (chunked)."""
    keys = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    for lo in range(0, len(keys), _CHUNK):
        chunk = keys[lo:lo + _CHUNK]
        items = _draw_items(model, chunk, rng)
        chunk *= model.n_items
        chunk += items
    return keys


def _user_counts(n_users: int, n_items: int, n_interactions: int, sigma: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Distinct items per user: 1 each (when possible) plus a log-normal-weighted multinomial.

    No user gets more than half the catalogue unless the requested density needs it, so sparse
    data sets keep a negative item for every user; overflow is re-dealt to users with room.
    """
    cap = min(n_items, max(n_items // 2, -(-n_interactions // n_users)))
    p = rng.lognormal(0.0, sigma, n_users)
    p /= p.sum()
    base = 1 if n_interactions >= n_users else 0
    counts = base + rng.multinomial(n_interactions - base * n_users, p)
    while (excess := int(np.maximum(counts - cap, 0).sum())) > 0:
        counts = np.minimum(counts, cap)
        q = np.where(counts < cap, p, 0.0)
        counts += rng.multinomial(excess, q / q.sum())
    return counts.astype(np.int64)


def _merge(keys: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Union of two sorted unique key arrays known to be disjoint (timsort merges the two runs)."""
    return np.sort(np.concatenate([keys, new]), kind="stable")


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct keys, in place (faster than ``np.unique``'s hashing on 20M int64 keys)."""
    keys.sort()
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _first_new(keys: np.ndarray, draws: np.ndarray, n_items: np.int64,
               deficit: np.ndarray) -> np.ndarray:
    """Sorted keys of each user's first ``deficit[u]`` distinct draws not already in ``keys``.

    ``draws`` is grouped by user in draw order, so keeping the earliest new items per user is
    popularity sampling without replacement.
    """
    if len(keys):
        pos = np.minimum(np.searchsorted(keys, draws), len(keys) - 1)
        draws = draws[keys[pos] != draws]
    _, first = np.unique(draws, return_index=True)
    draws = draws[np.sort(first)]
    users = draws // n_items
    counts = np.bincount(users, minlength=len(deficit))
    rank = np.arange(len(draws)) - (np.cumsum(counts) - counts)[users]
    return np.sort(draws[rank < deficit[users]])


def _top_up(model: _Model, keys: np.ndarray, counts: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Add draws until every user has ``counts[u]`` distinct items (duplicates were dropped).

    Popularity rounds over-draw (2×, 4×, … the deficit) and keep each user's earliest new items;
    whatever is still missing is drawn exactly and uniformly among the user's unseen items.
    """
    n_items = np.int64(model.n_items)
    for factor in (2 ** np.arange(1, _TOPUP_ROUNDS + 1)):
        deficit = counts - np.bincount(keys // n_items, minlength=len(counts))
        if not deficit.any():
            return keys
        draws = _draw_keys(model, deficit * factor, rng)
        keys = _merge(keys, _first_new(keys, draws, n_items, deficit))
    deficit = counts - np.bincount(keys // n_items, minlength=len(counts))
    if not deficit.any():
        return keys
    users = np.flatnonzero(deficit)
    complement = _Complement(keys[deficit[keys // n_items] > 0], len(counts), model.n_items)
    rows, ranks = _distinct_ranks(complement.n_free[users], deficit[users], rng)
    items = complement.nth_free(users[rows], ranks)
    return _merge(keys, np.sort(users[rows] * n_items + items))


def _ratings(model: _Model, users: np.ndarray, items: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """1–5 star ratings: higher inside the user's cluster, plus item and user biases and noise."""
    item_bias = rng.normal(0.0, 0.5, model.n_items)
    user_bias = rng.normal(0.0, 0.3, len(model.user_cluster))
    match = model.user_cluster[users] == model.item_cluster[items]
    mean = 3.0 + 0.8 * match + item_bias[items] + user_bias[users]
    return np.clip(np.rint(mean + rng.normal(0.0, 0.8, len(users))), 1, 5).astype(np.float32)


def _timestamps(n_users: int, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unix seconds: each user is active in a random window within three years from 2000."""
    start = _T0 + rng.integers(0, _SPAN // 2, n_users)
    return start[users] + rng.integers(0, _SPAN // 2, len(users))


MAX_ENTITIES = 10**8
"""Most users (or items) :func:`synthetic_interactions` makes: arrays per user and per item
are allocated up front, so a huge count from a tiny call is refused instead of exhausting memory."""
MAX_INTERACTIONS = 10**9
"""Most interactions :func:`synthetic_interactions` makes (8 GB of keys)."""
MAX_SIGMA = 100.0  # beyond this the log-normal activity weights overflow to inf


def _validate(n_users: int, n_items: int, n_interactions: int, n_clusters: int,
              exponent: float, affinity: float, sigma: float) -> None:
    check_int(n_users, "n_users", low=1, high=MAX_ENTITIES)
    check_int(n_items, "n_items", low=1, high=MAX_ENTITIES)
    check_int(n_interactions, "n_interactions", low=0,
              high=min(n_users * n_items, MAX_INTERACTIONS))
    if check_int(n_clusters, "n_clusters", low=1) > n_items:
        raise ParamError("n_clusters", f"{n_clusters} exceeds n_items ({n_items}); every "
                                       f"cluster needs an item")
    check_float(exponent, "popularity_exponent", low=0.0)
    check_float(affinity, "cluster_affinity", low=0.0, high=1.0)
    check_float(sigma, "activity_sigma", low=0.0, high=MAX_SIGMA)


def synthetic_interactions(
    n_users: int,
    n_items: int,
    n_interactions: int,
    n_clusters: int = 20,
    popularity_exponent: float = 1.0,
    seed: Seed = 0,
    with_ratings: bool = False,
    with_timestamps: bool = False,
    *,
    cluster_affinity: float = 0.8,
    activity_sigma: float = 1.0,
) -> Interactions:
    """Exactly ``n_interactions`` distinct (user, item) pairs with clusters and Zipf popularity.

    Records come sorted by user, then item; raw ids equal internal ids. ``popularity_exponent=0``
    gives uniform popularity, ``cluster_affinity=0`` no cluster structure, ``activity_sigma`` the
    spread of the log-normal user activity. The same ``seed`` gives the same data. Counts are
    bounded (:data:`MAX_ENTITIES` users/items, :data:`MAX_INTERACTIONS` interactions), so a
    typo cannot ask for unbounded memory; a bad argument is a ParamError naming it.
    """
    _validate(n_users, n_items, n_interactions, n_clusters, popularity_exponent, cluster_affinity,
              activity_sigma)
    with_ratings = check_bool(with_ratings, "with_ratings")
    with_timestamps = check_bool(with_timestamps, "with_timestamps")
    rng = np.random.default_rng(check_seed(seed))
    model = _make_model(n_users, n_items, n_clusters, popularity_exponent, cluster_affinity, rng)
    counts = _user_counts(n_users, n_items, n_interactions, activity_sigma, rng)
    keys = _top_up(model, _sorted_unique(_draw_keys(model, counts, rng)), counts, rng)
    users, items = np.divmod(keys, np.int64(n_items))
    del keys
    ratings = _ratings(model, users, items, rng) if with_ratings else None
    timestamps = _timestamps(n_users, users, rng) if with_timestamps else None
    return Interactions(users, items, np.arange(n_users), np.arange(n_items), ratings, timestamps,
                        name="synthetic")
