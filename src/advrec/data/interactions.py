"""`Interactions`: the single data type of advrec (user/item/rating/timestamp arrays + id maps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from advrec._lazy import lazy
from advrec.errors import DataError, ParamError
from advrec.validation import plain

pd = lazy("pandas")
sp = lazy("scipy.sparse")

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_LIMIT = 2.0**63


def _array(values, name: str) -> np.ndarray:
    try:
        return np.asarray(values)
    except (TypeError, ValueError):  # ragged nested lists and the like
        raise ParamError(name, "expected a one-dimensional array (got ragged or nested "
                               "values)") from None


def _kind(arr: np.ndarray) -> str:
    words = {"U": "text", "S": "bytes", "b": "booleans", "O": "Python objects", "c": "complex "
             "numbers", "M": "dates", "m": "time spans"}
    return words.get(arr.dtype.kind, f"values of type {arr.dtype}")


def _as_ids(values, name: str) -> np.ndarray:
    """Raw ids as a 1-D array: integers, strings or other hashable values; not booleans, NaN."""
    arr = _array(values, name)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        raise ParamError(name, "expected integer or string ids, got booleans")
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ParamError(name, f"value {pos} is {plain(arr[pos])}; expected ids "
                                   f"(integers or strings)")
    return arr


def _distinct(ids: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)``, naming ``name`` when ids cannot be ordered."""
    try:
        return np.unique(ids, return_inverse=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in ids.tolist()})
        raise ParamError(name, f"mixes ids of different types ({', '.join(kinds)}); use all "
                               f"integers or all strings") from None


def _check_catalogue(ids: np.ndarray, name: str) -> None:
    """An id map must not hold the same raw id twice (a lookup would be ambiguous)."""
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise ParamError(name, f"raw id {plain(ids[int(np.argmax(dup))])} appears more than "
                               f"once; expected distinct ids")


def _internal(values, name: str, n: int, what: str) -> np.ndarray:
    """Internal ids as int64 in ``0..n-1``: integer arrays only (no floats, bools or text)."""
    arr = _array(values, name)
    if arr.size and arr.dtype.kind not in "iu":
        raise ParamError(name, f"expected internal integer ids, got {_kind(arr)}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise DataError(f"internal {what} ids must lie in 0..{n - 1}, got {plain(bad)} "
                        f"({name})")
    return arr


def _length(arr: np.ndarray, name: str, n: int) -> None:
    if arr.ndim > 1:
        raise DataError(f"{name} must be one-dimensional ({n} values), got shape {arr.shape}")
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{name} has {arr.size} values for {n} interactions")


def _as_ratings(values, n: int) -> np.ndarray:
    """Ratings as float32: finite numbers within the float32 range (the position is named)."""
    arr = _array(values, "ratings")
    _length(arr, "ratings", n)
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind != "O":
            raise ParamError("ratings", f"expected numbers, got {_kind(arr)}")
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ParamError("ratings", "expected numbers") from None
    if arr.dtype == np.float32:
        bad = ~np.isfinite(arr)
    else:
        wide = arr.astype(np.float64)
        bad = ~np.isfinite(wide) | (np.abs(wide) > _FLOAT32_MAX)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        value = arr[pos]
        why = ("expected finite numbers" if not np.isfinite(value) else
               f"beyond the float32 range (±{_FLOAT32_MAX:.4g}) ratings are stored in")
        raise ParamError("ratings", f"value {pos} is {plain(value)}; {why}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_timestamps(values, n: int) -> np.ndarray:
    """Timestamps as int64: integers (or integral floats) within the int64 range."""
    arr = _array(values, "timestamps")
    _length(arr, "timestamps", n)
    if arr.dtype.kind == "u" and len(arr) and int(arr.max()) > np.iinfo(np.int64).max:
        pos = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise ParamError("timestamps", f"value {pos} is {plain(arr[pos])}; expected integers "
                                       f"within the int64 range")
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (np.mod(arr, 1.0) != 0) | (np.abs(arr) >= _INT64_LIMIT)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ParamError("timestamps", f"value {pos} is {plain(arr[pos])}; expected "
                                           f"integers within the int64 range")
    elif arr.size and arr.dtype.kind not in "iu":
        raise ParamError("timestamps", f"expected integers, got {_kind(arr)}")
    return np.ascontiguousarray(arr, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Interactions:
    """Immutable (user, item[, rating][, timestamp]) records over dense internal ids.

    Internal ids are ``0..n_users-1`` and ``0..n_items-1``; ``user_ids[u]`` / ``item_ids[i]``
    hold the
    raw id of internal id ``u`` / ``i``. Splits and subsets share the parent's id space (the same
    ``user_ids``/``item_ids`` arrays), so a model trained on one part scores another without
    remapping. Build from raw ids with :meth:`from_raw`.

    The constructor checks what it is given and names the argument: internal ids must be
    integers in range (floats such as 0.7 are refused, not truncated), ratings finite numbers
    within float32 (NaN/±inf are refused with their position), timestamps integers within int64
    (1.5 is refused, not truncated); raw ids may be integers or strings, never booleans or NaN.
    Value problems raise :class:`~advrec.errors.ParamError`, a wrong length or shape
    :class:`~advrec.errors.DataError`.
    """

    users: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        user_ids = _as_ids(self.user_ids, "user_ids")
        item_ids = _as_ids(self.item_ids, "item_ids")
        users = _internal(self.users, "users", len(user_ids), "user")
        items = _internal(self.items, "items", len(item_ids), "item")
        if users.shape != items.shape or users.ndim != 1:
            raise DataError(
                f"users and items must be 1-D arrays of equal length, got "
                f"{users.shape} and {items.shape}"
            )
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "item_ids", item_ids)
        if self.ratings is not None:
            object.__setattr__(self, "ratings", _as_ratings(self.ratings, len(users)))
        if self.timestamps is not None:
            object.__setattr__(self, "timestamps", _as_timestamps(self.timestamps, len(users)))
        object.__setattr__(self, "name", "" if self.name is None else str(self.name))
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
        or the id space of a parent data set); a raw id missing from them is a :class:`DataError`,
        a catalogue holding one id twice a ParamError. ``users`` and ``items`` must have one entry
        per interaction; ids of mixed types (1 and "1") are refused rather than compared.
        """
        users = _as_ids(users, "users")
        items = _as_ids(items, "items")
        if len(users) != len(items):
            raise DataError(f"users and items must have equal length, got {len(users)} users "
                            f"and {len(items)} items")
        if user_ids is None:
            user_ids, u = _distinct(users, "users")
        else:
            user_ids = _as_ids(user_ids, "user_ids")
            _check_catalogue(user_ids, "user_ids")
            u = _lookup(pd.Index(user_ids), users, "user")
        if item_ids is None:
            item_ids, i = _distinct(items, "items")
        else:
            item_ids = _as_ids(item_ids, "item_ids")
            _check_catalogue(item_ids, "item_ids")
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
        if sel.dtype == np.bool_ and sel.shape != self.users.shape:
            raise ParamError("mask_or_index", f"a mask needs {len(self)} values, one per "
                                              f"interaction; got shape {sel.shape}")
        if sel.size and sel.dtype != np.bool_ and sel.dtype.kind not in "iu":
            raise ParamError("mask_or_index", f"expected a boolean mask or integer positions, "
                                              f"got values of type {sel.dtype}")
        try:
            users = self.users[sel]
        except IndexError as exc:
            raise ParamError("mask_or_index", str(exc)) from None
        return Interactions(
            users,
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
