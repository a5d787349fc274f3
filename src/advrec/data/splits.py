"""Train/test (and validation) splits of :class:`Interactions`, all vectorised and seeded.

Every split returns ``(train, test)`` subsets of the input in the SAME id space (built with
:meth:`Interactions.subset`), so a model fitted on ``train`` scores ``test`` directly. The splits do
not deduplicate: with repeated (user, item) pairs a held-out pair may also stay in train, so run
:func:`advrec.data.filters.deduplicate` first and :func:`check_split` after when that matters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from advrec.data._args import check_data
from advrec.data._args import rng as _seeded
from advrec.data.filters import _plain
from advrec.data.interactions import Interactions
from advrec.errors import DataError
from advrec.validation import check_bool, check_choice, check_float, check_int

Seed = int | np.random.Generator
Pair = tuple[Interactions, Interactions]


class Split(NamedTuple):
    """A train/test split with an optional validation part, all in one id space."""

    train: Interactions
    test: Interactions
    valid: Interactions | None = None

    def check(self) -> Split:
        """Run :func:`check_split` on the parts and return ``self``."""
        check_split(self.train, self.test, self.valid)
        return self


def _rng(seed: Seed) -> np.random.Generator:
    return _seeded(seed, "seed")


def _name(data: Interactions, part: str) -> str:
    return f"{data.name}/{part}" if data.name else part


def _parts(data: Interactions, test: np.ndarray,
           parts: tuple[str, str] = ("train", "test")) -> Pair:
    """``(data[~test], data[test])`` as two subsets in the same id space."""
    return data.subset(~test, _name(data, parts[0])), data.subset(test, _name(data, parts[1]))


def _check_min_train(min_train: int) -> None:
    check_int(min_train, "min_train", low=0)


def _check_ratio(ratio: float, name: str) -> None:
    check_float(ratio, name, low=0.0, high=1.0, closed="neither")


def _user_groups(data: Interactions, rng: np.random.Generator, by_time: bool):
    """Records sorted by user, then (timestamp,) then a seeded random tie-break.

    Returns ``(order, counts, rank)``: ``order`` the record permutation, ``counts`` the records per
    user, ``rank[k]`` the 0-based position of record ``order[k]`` within its user's group.
    """
    keys = [rng.permutation(len(data))]
    if by_time and data.timestamps is not None:
        keys.append(data.timestamps)
    keys.append(data.users)
    order = np.lexsort(keys)
    counts = data.user_counts
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(data)) - starts[data.users[order]]
    return order, counts, rank


def leave_one_out(data: Interactions, seed: Seed = 0, min_train: int = 1) -> Pair:
    """Hold out each user's latest record (by timestamp; seeded random tie-break) as test.

    Without timestamps the held-out record is a seeded random one. Users with fewer than
    ``min_train + 1`` records keep all of them in train and get no test record.
    """
    return _parts(data, _leave_one_out_mask(data, seed, min_train))


def _leave_one_out_mask(data: Interactions, seed: Seed, min_train: int) -> np.ndarray:
    check_data(data)
    _check_min_train(min_train)
    order, counts, rank = _user_groups(data, _rng(seed), by_time=True)
    user = data.users[order]
    last = (rank == counts[user] - 1) & (counts[user] >= min_train + 1)
    test = np.zeros(len(data), bool)
    test[order[last]] = True
    return test


def _n_test_per_user(counts: np.ndarray, ratio: float, min_train: int) -> np.ndarray:
    """round(n * ratio) per user, at least 1 where n >= min_train + 1, never leaving < min_train."""
    n_test = np.floor(counts * ratio + 0.5).astype(np.int64)
    n_test = np.maximum(n_test, 1)
    return np.clip(n_test, 0, np.maximum(counts - min_train, 0))


def random_holdout(data: Interactions, test_ratio: float = 0.2, seed: Seed = 0,
                   min_train: int = 1) -> Pair:
    """Per user, a seeded random ``round(n * test_ratio)`` of its records go to test.

    A user with ``n >= min_train + 1`` records gets at least one test record; no user is left with
    fewer than ``min_train`` train records (users with ``n <= min_train`` stay wholly in train).
    """
    return _parts(data, _random_holdout_mask(data, test_ratio, seed, min_train))


def _random_holdout_mask(data: Interactions, test_ratio: float, seed: Seed,
                         min_train: int, ratio_name: str = "test_ratio") -> np.ndarray:
    check_data(data)
    _check_ratio(test_ratio, ratio_name)
    _check_min_train(min_train)
    order, counts, rank = _user_groups(data, _rng(seed), by_time=False)
    n_test = _n_test_per_user(counts, test_ratio, min_train)
    test = np.zeros(len(data), bool)
    test[order[rank < n_test[data.users[order]]]] = True
    return test


def temporal_split(data: Interactions, test_ratio: float = 0.2, drop_cold: bool = False) -> Pair:
    """Global temporal split: the latest ``round(n * test_ratio)`` records (by timestamp) to test.

    Ties at the cut are broken by record position (stable sort), so the test size is exact.
    ``drop_cold=True`` removes test records whose user or item never occurs in train (they are
    dropped, not moved, so then train ∪ test is smaller than the input).
    """
    check_data(data)
    if data.timestamps is None:
        raise DataError("temporal_split needs timestamps, but the data set has none")
    _check_ratio(test_ratio, "test_ratio")
    drop_cold = check_bool(drop_cold, "drop_cold")
    n_test = int(np.floor(len(data) * test_ratio + 0.5))
    test = np.zeros(len(data), bool)
    test[np.argsort(data.timestamps, kind="stable")[len(data) - n_test:]] = True
    train_part, test_part = _parts(data, test)
    if drop_cold:
        warm = (train_part.user_counts[test_part.users] > 0) & (
            train_part.item_counts[test_part.items] > 0)
        test_part = test_part.subset(warm)
    return train_part, test_part


def validation_split(train: Interactions, method: str = "leave_one_out", ratio: float = 0.1,
                     seed: Seed = 0, min_train: int = 1) -> Pair:
    """Carve ``(train, valid)`` from a training set by leave-one-out or random per-user hold-out.

    ``ratio`` is only used by ``method="random"``; the two methods are :func:`leave_one_out` and
    :func:`random_holdout` underneath.
    """
    method = check_choice(method, "method", ("leave_one_out", "random"))
    if method == "leave_one_out":
        valid = _leave_one_out_mask(train, seed, min_train)
    else:
        valid = _random_holdout_mask(train, ratio, seed, min_train, ratio_name="ratio")
    return _parts(train, valid, ("train", "valid"))


def _pair_set(data: Interactions) -> np.ndarray:
    return np.unique(data.users * np.int64(data.n_items) + data.items)


def complement(data: Interactions, part: Interactions,
               names: tuple[str, str] = ("data", "part")) -> Interactions:
    """What remains of ``data`` once its held-out ``part`` is taken away: the records of ``data``
    whose (user, item) pair is not in ``part``, in their order, in the same id space (every copy
    of a repeated pair leaves). With ``part`` the held-out side of :func:`validation_split`, this
    is its other side (identical when ``data`` has no repeated pairs).

    ``part`` must share ``data``'s id space and hold only pairs of ``data``: a
    :class:`DataError` naming both (``names``) otherwise.
    """
    check_data(data, names[0])
    check_data(part, names[1])
    if not data.same_space(part):
        raise DataError(f"{names[1]} ({part.n_users}×{part.n_items}) is not in {names[0]}'s id "
                        f"space ({data.n_users}×{data.n_items} or different raw ids): expected "
                        f"a held-out part of {names[0]}")
    keys = data.users * np.int64(data.n_items) + data.items
    held = _pair_set(part)
    missing = np.setdiff1d(held, keys)
    if len(missing):
        u, i = divmod(int(missing[0]), data.n_items)
        pair = (_plain(data.user_ids[u]), _plain(data.item_ids[i]))
        raise DataError(f"{len(missing)} (user, item) pair(s) of {names[1]} are not in "
                        f"{names[0]}, e.g. {pair!r}: expected a held-out part of {names[0]}")
    return data.subset(~np.isin(keys, held))


def check_split(train: Interactions, test: Interactions,
                valid: Interactions | None = None) -> None:
    """Raise :class:`DataError` unless the parts share one id space and no (user, item) pair."""
    for arg, part in (("train", train), ("test", test)):
        check_data(part, arg)
    if valid is not None:
        check_data(valid, "valid")
    parts = [("train", train), ("test", test)] + ([("valid", valid)] if valid is not None else [])
    keys = {name: _pair_set(part) for name, part in parts}
    for k, (a_name, a) in enumerate(parts):
        for b_name, b in parts[k + 1:]:
            if not a.same_space(b):
                raise DataError(f"{a_name} and {b_name} are not in the same id space "
                                f"({a.n_users}×{a.n_items} vs {b.n_users}×{b.n_items} or "
                                "different raw ids); split before re-indexing")
            common = np.intersect1d(keys[a_name], keys[b_name], assume_unique=True)
            if len(common):
                u, i = divmod(int(common[0]), a.n_items)
                pair = (_plain(a.user_ids[u]), _plain(a.item_ids[i]))
                raise DataError(f"{len(common)} (user, item) pair(s) are in both {a_name} and "
                                f"{b_name}, e.g. {pair!r}")
