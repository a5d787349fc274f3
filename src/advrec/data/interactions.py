"""`Interactions`: the single data type of advrec (user/item/rating/timestamp arrays + id maps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from advrec.errors import DataError


def _as_ids(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Interactions:
    """Immutable (user, item[, rating][, timestamp]) records over dense internal ids.

    Internal ids are ``0..n_users-1`` and ``0..n_items-1``; ``user_ids[u]`` / ``item_ids[i]``
    hold the
    raw id of internal id ``u`` / ``i``. Splits and subsets share the parent's id space (the same
    ``user_ids``/``item_ids`` arrays), so a model trained on one part scores another without
    remapping. Build from raw ids with :meth:`from_raw`.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        users = np.ascontiguousarray(self.users, dtype=np.int64)
        items = np.ascontiguousarray(self.items, dtype=np.int64)
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        if users.shape != items.shape or users.ndim != 1:
            raise DataError(
                f"users and items must be 1-D arrays of equal length, got "
                f"{users.shape} and {items.shape}"
            )
        object.__setattr__(self, "user_ids", _as_ids(self.user_ids, "user_ids"))
        object.__setattr__(self, "item_ids", _as_ids(self.item_ids, "item_ids"))
        if self.ratings is not None:
            r = np.ascontiguousarray(self.ratings, dtype=np.float32)
            if r.shape != users.shape:
                raise DataError(f"ratings has {r.shape[0]} values for {len(users)} interactions")
            object.__setattr__(self, "ratings", r)
        if self.timestamps is not None:
            t = np.ascontiguousarray(self.timestamps, dtype=np.int64)
            if t.shape != users.shape:
                raise DataError(f"timestamps has {t.shape[0]} values for {len(users)} interactions")
            object.__setattr__(self, "timestamps", t)
        if len(users):
            if users.min() < 0 or users.max() >= len(self.user_ids):
                raise DataError(f"internal user ids must lie in 0..{len(self.user_ids) - 1}")
            if items.min() < 0 or items.max() >= len(self.item_ids):
                raise DataError(f"internal item ids must lie in 0..{len(self.item_ids) - 1}")
        for arr in (self.users, self.items, self.ratings, self.timestamps):
            if arr is not None:
                arr.setflags(write=False)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_raw(
        cls,
        users,
        items,
        ratings=None,
        timestamps=None,
        *,
        user_ids=None,
        item_ids=None,
        name: str = "",
    ) -> Interactions:
        """Build from raw ids; the id maps are the sorted distinct ids unless given explicitly.

        Passing ``user_ids``/``item_ids`` fixes the catalogue (e.g. items with no interaction yet,
        or the id space of a parent data set); a raw id missing from them is a :class:`DataError`.
        """
        users = _as_ids(users, "users")
        items = _as_ids(items, "items")
        if user_ids is None:
            user_ids, u = np.unique(users, return_inverse=True)
        else:
            user_ids = _as_ids(user_ids, "user_ids")
            u = _lookup(pd.Index(user_ids), users, "user")
        if item_ids is None:
            item_ids, i = np.unique(items, return_inverse=True)
        else:
            item_ids = _as_ids(item_ids, "item_ids")
            i = _lookup(pd.Index(item_ids), items, "item")
        return cls(u, i, user_ids, item_ids, ratings, timestamps, name)

    # ----------------------------------------------------------------- basic facts
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_users, self.n_items

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}"
            for k, v in (("ratings", self.ratings), ("timestamps", self.timestamps))
            if v is not None
        )
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Interactions({label}{len(self)} interactions, {self.n_users} users, "
            f"{self.n_items} items{extra})"
        )

    @property
    def has_ratings(self) -> bool:
        return self.ratings is not None

    @property
    def has_timestamps(self) -> bool:
        return self.timestamps is not None

    # ----------------------------------------------------------------- views
    @cached_property
    def csr(self) -> sp.csr_matrix:
        """Users × items CSR matrix of ratings (1.0 where there are none); rows sorted by item."""
        data = self.ratings if self.ratings is not None else np.ones(len(self), np.float32)
        m = sp.csr_matrix((data, (self.users, self.items)), shape=self.shape, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        return m

    @cached_property
    def binary_csr(self) -> sp.csr_matrix:
        """Users × items CSR matrix with 1.0 for every observed pair."""
        m = self.csr.copy()
        m.data[:] = 1.0
        return m

    @cached_property
    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)

    @cached_property
    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    @cached_property
    def active_users(self) -> np.ndarray:
        """Internal ids of users with at least one interaction, ascending."""
        return np.flatnonzero(self.user_counts)

    @cached_property
    def _user_index(self) -> pd.Index:
        return pd.Index(self.user_ids)

    @cached_property
    def _item_index(self) -> pd.Index:
        return pd.Index(self.item_ids)

    def user_index(self, raw) -> np.ndarray:
        """Internal ids of raw user ids (a :class:`DataError` names any unknown one)."""
        return _lookup(self._user_index, _as_ids(np.atleast_1d(raw), "users"), "user")

    def item_index(self, raw) -> np.ndarray:
        """Internal ids of raw item ids (a :class:`DataError` names any unknown one)."""
        return _lookup(self._item_index, _as_ids(np.atleast_1d(raw), "items"), "item")

    # ----------------------------------------------------------------- derived sets
    def subset(self, mask_or_index, name: str | None = None) -> Interactions:
        """The records selected by a boolean mask or an index array, in the same id space."""
        sel = np.asarray(mask_or_index)
        return Interactions(
            self.users[sel],
            self.items[sel],
            self.user_ids,
            self.item_ids,
            None if self.ratings is None else self.ratings[sel],
            None if self.timestamps is None else self.timestamps[sel],
            self.name if name is None else name,
        )

    def with_ratings(self, ratings) -> Interactions:
        return Interactions(
            self.users,
            self.items,
            self.user_ids,
            self.item_ids,
            ratings,
            self.timestamps,
            self.name,
        )

    def same_space(self, other: Interactions) -> bool:
        """Whether ``other`` uses the same internal id space (same id maps)."""
        return (
            self.n_users == other.n_users
            and self.n_items == other.n_items
            and (self.user_ids is other.user_ids or np.array_equal(self.user_ids, other.user_ids))
            and (self.item_ids is other.item_ids or np.array_equal(self.item_ids, other.item_ids))
        )

    def concat(self, other: Interactions) -> Interactions:
        """Append ``other``'s records; unknown raw ids extend the id maps, existing ids stay put."""
        new_users = np.setdiff1d(other.user_ids, self.user_ids, assume_unique=True)
        new_items = np.setdiff1d(other.item_ids, self.item_ids, assume_unique=True)
        user_ids = np.concatenate([self.user_ids, new_users]) if len(new_users) else self.user_ids
        item_ids = np.concatenate([self.item_ids, new_items]) if len(new_items) else self.item_ids
        u = _lookup(pd.Index(user_ids), other.user_ids, "user")[other.users]
        i = _lookup(pd.Index(item_ids), other.item_ids, "item")[other.items]

        def join(a, b, what):
            if (a is None) != (b is None):
                raise DataError(f"cannot concatenate: only one side has {what}")
            return None if a is None else np.concatenate([a, b])

        return Interactions(
            np.concatenate([self.users, u]),
            np.concatenate([self.items, i]),
            user_ids,
            item_ids,
            join(self.ratings, other.ratings, "ratings"),
            join(self.timestamps, other.timestamps, "timestamps"),
            self.name,
        )

    def to_frame(self, raw_ids: bool = True) -> pd.DataFrame:
        """A DataFrame with columns user, item[, rating][, timestamp] (raw ids by default)."""
        cols = {
            "user": self.user_ids[self.users] if raw_ids else self.users,
            "item": self.item_ids[self.items] if raw_ids else self.items,
        }
        if self.ratings is not None:
            cols["rating"] = self.ratings
        if self.timestamps is not None:
            cols["timestamp"] = self.timestamps
        return pd.DataFrame(cols)


def _lookup(index: pd.Index, raw: np.ndarray, what: str) -> np.ndarray:
    pos = index.get_indexer(raw)
    if (pos < 0).any():
        bad = raw[pos < 0]
        shown = ", ".join(map(str, bad[:5])) + (" …" if len(bad) > 5 else "")
        raise DataError(f"{len(bad)} unknown {what} id(s): {shown}")
    return pos.astype(np.int64)
