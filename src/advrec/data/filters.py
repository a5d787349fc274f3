"""Pre-processing filters on :class:`Interactions`: binarize, k-core, deduplicate, drop unused ids.

Every filter except :func:`drop_unused` keeps the input's id space (same ``user_ids``/``item_ids``),
so its output can be split, scored and compared with the input without remapping. A filter that
leaves no interaction raises :class:`DataError` naming itself.
"""

from __future__ import annotations

import numpy as np

from advrec.data._args import check_data
from advrec.data.interactions import Interactions
from advrec.errors import DataError
from advrec.validation import check_choice, check_float, check_int

DEDUP_POLICIES = ("last", "first", "mean", "max", "error")


def _nonempty(result: Interactions, source: Interactions, what: str) -> Interactions:
    """Return ``result``, or raise a DataError saying that filter ``what`` emptied the data."""
    if len(result) == 0:
        raise DataError(f"{what} left no interactions (the input had {len(source)})")
    return result


def binarize(data: Interactions, threshold: float = 4.0) -> Interactions:
    """Keep the interactions rated ``>= threshold`` and drop the ratings (explicit → implicit)."""
    check_data(data)
    threshold = check_float(threshold, "threshold")
    if data.ratings is None:
        raise DataError("binarize needs ratings, but the data set has none (already implicit?)")
    keep = data.ratings >= np.float32(threshold)
    out = data.subset(keep).with_ratings(None)
    return _nonempty(out, data, f"binarize(threshold={threshold})")


def k_core(data: Interactions, user_k: int = 5, item_k: int = 5) -> Interactions:
    """The largest subset where every user has ``>= user_k`` and every item ``>= item_k`` records.

    Drops under-threshold users and items repeatedly until nothing changes (removing an item can
    push a user below its threshold, and vice versa). Counts are records, so deduplicate first if
    repeated (user, item) pairs should count once.
    """
    check_data(data)
    user_k = check_int(user_k, "user_k", low=1)
    item_k = check_int(item_k, "item_k", low=1)
    idx = np.arange(len(data))
    users, items = data.users, data.items
    while len(idx):
        u, i = users[idx], items[idx]
        keep = ((np.bincount(u, minlength=data.n_users)[u] >= user_k)
                & (np.bincount(i, minlength=data.n_items)[i] >= item_k))
        if keep.all():
            break
        idx = idx[keep]
    return _nonempty(data.subset(idx), data, f"k_core(user_k={user_k}, item_k={item_k})")


def _pair_keys(data: Interactions) -> np.ndarray:
    """One int64 key per record, ``user * n_items + item``, equal exactly for repeated pairs."""
    return data.users * np.int64(data.n_items) + data.items


def _grouped_order(data: Interactions, keys: np.ndarray, by_rating: bool = False) -> np.ndarray:
    """Record order sorted by pair, then (rating,) timestamp (if any), then position."""
    cols: list[np.ndarray] = [np.arange(len(data))]
    if data.timestamps is not None:
        cols.append(data.timestamps)
    if by_rating and data.ratings is not None:
        cols.append(data.ratings)
    cols.append(keys)
    return np.lexsort(cols)


def deduplicate(data: Interactions, policy: str = "last") -> Interactions:
    """Collapse repeated (user, item) pairs to one record each, in their original order.

    ``last``/``first``: keep the latest/earliest record (by timestamp when present, ties and
    no-timestamp data by position). ``mean``: the last record with the pair's mean rating.
    ``max``: the record with the highest rating (ties: the latest). Without ratings ``mean`` and
    ``max`` act as ``last``. ``error``: raise :class:`DataError` naming a repeated pair (raw ids).
    """
    check_data(data)
    policy = check_choice(policy, "policy", DEDUP_POLICIES)
    if len(data) == 0:
        raise DataError("deduplicate got an empty data set")
    keys = _pair_keys(data)
    order = _grouped_order(data, keys, by_rating=policy == "max")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    if len(starts) == len(data):
        return data
    ends = np.r_[starts[1:], len(data)]
    if policy == "error":
        _raise_duplicate(data, order, starts, ends)
    chosen = order[starts] if policy == "first" else order[ends - 1]
    keep = np.argsort(chosen, kind="stable")
    out = data.subset(chosen[keep])
    if policy == "mean" and data.ratings is not None:
        sums = np.add.reduceat(data.ratings[order].astype(np.float64), starts)
        out = out.with_ratings((sums / (ends - starts))[keep])
    return out


def _raise_duplicate(data: Interactions, order: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray) -> None:
    """Raise a DataError naming the first repeated pair (by sorted key) in raw ids."""
    sizes = ends - starts
    first = int(np.flatnonzero(sizes > 1)[0])
    row = order[starts[first]]
    user = _plain(data.user_ids[data.users[row]])
    item = _plain(data.item_ids[data.items[row]])
    n_dup = int((sizes > 1).sum())
    raise DataError(f"duplicate (user, item) pair ({user!r}, {item!r}) occurs {sizes[first]} times "
                    f"({n_dup} repeated pair(s) in all); pick a deduplicate policy")


def _plain(raw_id: object) -> object:
    """A numpy scalar as the Python value (so messages read 'ann', not np.str_('ann'))."""
    return raw_id.item() if isinstance(raw_id, np.generic) else raw_id


def drop_unused(data: Interactions) -> Interactions:
    """Re-index to only the users and items that occur; the ONLY filter that changes the id space.

    The result's internal ids are ``0..n-1`` over the remaining ids in their old order, and its
    ``user_ids``/``item_ids`` are the matching subset of the raw ids, so it is no longer
    comparable id-for-id with the input (split or score *after* this, never across it).
    """
    check_data(data)
    if len(data) == 0:
        raise DataError("drop_unused got an empty data set")
    user_keep, users = np.unique(data.users, return_inverse=True)
    item_keep, items = np.unique(data.items, return_inverse=True)
    return Interactions(users, items, data.user_ids[user_keep], data.item_ids[item_keep],
                        data.ratings, data.timestamps, data.name)
