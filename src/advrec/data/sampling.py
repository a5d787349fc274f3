"""Uniform negative sampling for pairwise (BPR-style) training and sampled-negative evaluation.

:class:`UniformSampler` draws, for each user, items uniformly among those the user has NOT
interacted with, by bulk rejection: draw uniform items, look up every ``user * n_items + item``
key among the positives (a compiled bitmap lookup, or a binary search in the user's segment of the
sorted keys for large catalogues), redraw only the hits, and repeat. After a few rounds the
(rare) stragglers are drawn exactly from the user's complement (see :class:`_Complement`), so
very dense users cannot stall the loop. Both stages are exactly uniform over the non-positives.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from advrec._lazy import compile_once, lazy
from advrec.data._args import check_data, check_seed, internal_ids
from advrec.data.interactions import Interactions
from advrec.errors import DataError, ParamError
from advrec.validation import check_bool, check_int

sp = lazy("scipy.sparse")

Seed = int | np.random.Generator
Triples = tuple[np.ndarray, np.ndarray, np.ndarray]

_REJECTION_ROUNDS = 8
_BITMAP_MAX_BITS = 2**28
MAX_DRAWS = 2**28
"""Most negatives one call may draw (2 GiB of int64): a huge ``n`` from a tiny input is refused
instead of exhausting memory."""


class _Complement:
    """The items each user has NOT interacted with, indexable by rank without materialising them.

    For a user with sorted positives ``p_0 < … < p_{c-1}``, the ``j``-th (0-based) non-positive
    item is ``j + #{t : p_t - t <= j}``; ``p_t - t`` is non-decreasing, so the count is one
    ``searchsorted`` on ``user * (n_items + 1) + p_t - t`` for all queries at once.
    """

    def __init__(self, keys: np.ndarray, n_users: int, n_items: int) -> None:
        """``keys``: sorted, unique ``user * n_items + item`` of the excluded pairs."""
        self.n_items = np.int64(n_items)
        users, items = np.divmod(keys, self.n_items)
        counts = np.bincount(users, minlength=n_users)
        self.starts = np.cumsum(counts) - counts
        shifted = items - (np.arange(len(keys)) - self.starts[users])
        self.search = users * (self.n_items + 1) + shifted
        self.n_free = self.n_items - counts

    @classmethod
    def from_csr(cls, matrix: sp.spmatrix, n_items: int) -> _Complement:
        """Build from the sparsity structure of a users × items matrix (values are ignored)."""
        m = sp.csr_matrix(matrix, copy=True)
        m.sum_duplicates()
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        return cls(rows * np.int64(n_items) + m.indices.astype(np.int64), m.shape[0], n_items)

    def nth_free(self, users: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """The ``ranks[k]``-th non-positive item of ``users[k]`` (ranks < ``n_free[users]``)."""
        query = users * (self.n_items + 1) + ranks
        return ranks + (np.searchsorted(self.search, query, side="right") - self.starts[users])

    def draw(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of ``users``, uniform over that user's non-positives."""
        return self.nth_free(users, rng.integers(0, self.n_free[users]))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a mask: faster than ``np.unique``'s hashing on int64)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _full_users_error(interactions: Interactions | None, users: np.ndarray, what: str) -> DataError:
    """A DataError naming (in raw ids when known) users that leave no item to sample."""
    bad = np.unique(users)
    shown = bad[:5] if interactions is None else interactions.user_ids[bad[:5]]
    more = " …" if len(bad) > 5 else ""
    return DataError(f"{len(bad)} user(s) have {what}, so no negative item exists: "
                     f"{', '.join(map(str, shown))}{more}")


class UniformSampler:
    """Seeded uniform negative sampler over a training set, for BPR-style triples.

    The sampler owns one ``np.random.Generator`` made from ``seed``: two samplers built with the
    same int seed produce identical streams. Passing a Generator uses (and advances) that object.
    Do not share one sampler between forked data-loader workers (they would draw identical
    streams); give each worker its own sampler or :meth:`reseed` it with a per-worker seed.
    """

    def __init__(self, train: Interactions, seed: Seed = 0) -> None:
        self.train = check_data(train, "train")
        check_seed(seed)
        self.n_users, self.n_items = train.shape
        if self.n_items == 0:
            raise DataError("cannot sample negatives from a data set with no items")
        self.keys = _sorted_unique(train.users * np.int64(self.n_items) + train.items)
        # records grouped by user: drawing an epoch's negatives in this order keeps consecutive
        # binary searches inside one user's key range (cache-friendly, ~3× faster than random)
        self._by_user = np.argsort(train.users, kind="stable")
        self._users_sorted = train.users[self._by_user]
        self._items_sorted = train.items[self._by_user]
        self._complement = _Complement(self.keys, self.n_users, self.n_items)
        self._full = self._complement.n_free == 0
        self.counts = self.n_items - self._complement.n_free
        # A bit per (user, item) pair when that is small (≤ 32 MB): one memory access per query.
        self._bitmap = None
        if self.n_users * self.n_items <= _BITMAP_MAX_BITS:
            bits = np.zeros(self.n_users * self.n_items, np.bool_)
            bits[self.keys] = True
            self._bitmap = np.packbits(bits, bitorder="little")
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: Seed) -> None:
        """Restart the random stream from ``seed`` (e.g. a per-worker or per-epoch seed)."""
        self.rng = np.random.default_rng(check_seed(seed))

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is in the training set: a binary search within the
        user's own sorted segment of keys (compiled; ~7 steps per query on MovieLens).

        Ids must be internal integer ids in range (the compiled lookup does no bounds checks,
        so they are checked here).
        """
        users, items = np.asarray(users), np.asarray(items)
        try:
            shape = np.broadcast_shapes(users.shape, items.shape)
        except ValueError:
            raise DataError(f"users and items cannot be paired: shapes {users.shape} and "
                            f"{items.shape}") from None
        internal_ids(users.reshape(-1), "users", self.n_users, "user")
        internal_ids(items.reshape(-1), "items", self.n_items, "item")
        return self._is_positive(users, items, shape)

    def _is_positive(self, users: np.ndarray, items: np.ndarray,
                     shape: tuple[int, ...] | None = None) -> np.ndarray:
        from advrec.data.sampling_kernels import bitmap_member as _bitmap_member
        from advrec.data.sampling_kernels import segment_member as _segment_member
        from advrec.data.sampling_kernels import warm_up

        compile_once("the negative sampler", [_bitmap_member, _segment_member], warm_up)
        users = np.ascontiguousarray(users, dtype=np.int64)
        items = np.ascontiguousarray(items, dtype=np.int64)
        if shape is None:
            shape = np.broadcast_shapes(users.shape, items.shape)
        users, items = (np.broadcast_to(a, shape).ravel() for a in (users, items))
        if self._bitmap is not None:
            out = _bitmap_member(self._bitmap, users, items, np.int64(self.n_items))
        else:
            out = _segment_member(self.keys, self._complement.starts, self.counts, users, items,
                                  np.int64(self.n_items))
        return out.reshape(shape)

    def negatives(self, users: np.ndarray, n: int = 1) -> np.ndarray:
        """Uniform non-positive items, shape ``(len(users),)`` for n=1 else ``(len(users), n)``.

        The ``n`` negatives of one user are independent draws (they may repeat); use
        :func:`sample_items` for distinct ones.
        """
        n = check_int(n, "n", low=1, high=MAX_DRAWS)
        users = internal_ids(users, "users", self.n_users, "user")
        if len(users) * n > MAX_DRAWS:
            raise ParamError("n", f"{len(users)} users × {n} negatives is more than the limit "
                                  f"of {MAX_DRAWS} draws per call; draw them in batches")
        full = self._full[users]
        if full.any():
            raise _full_users_error(self.train, users[full], "interacted with every item")
        flat_users = np.repeat(users, n) if n > 1 else users
        items = self._reject(flat_users)
        return items if n == 1 else items.reshape(len(users), n)

    def _reject(self, users: np.ndarray) -> np.ndarray:
        """Draw uniformly, redraw only the positives, a few rounds; stragglers drawn exactly."""
        items = self.rng.integers(0, self.n_items, size=len(users), dtype=np.int64)
        todo = np.flatnonzero(self._is_positive(users, items))
        for _ in range(_REJECTION_ROUNDS):
            if not len(todo):
                return items
            items[todo] = self.rng.integers(0, self.n_items, size=len(todo), dtype=np.int64)
            todo = todo[self._is_positive(users[todo], items[todo])]
        if len(todo):
            items[todo] = self._complement.draw(users[todo], self.rng)
        return items

    def triples(self, shuffle: bool = True) -> Triples:
        """One epoch of ``(users, positives, negatives)``: a triple per training record.

        The order is a seeded random permutation of the records when ``shuffle`` is true.
        """
        shuffle = check_bool(shuffle, "shuffle")
        neg_sorted = self.negatives(self._users_sorted)
        if not shuffle:
            neg = np.empty(len(self.train), np.int64)
            neg[self._by_user] = neg_sorted
            return self.train.users.copy(), self.train.items.copy(), neg
        perm = self.rng.permutation(len(self.train))
        return self._users_sorted[perm], self._items_sorted[perm], neg_sorted[perm]

    def batches(self, batch_size: int, shuffle: bool = True) -> Iterator[Triples]:
        """The epoch's :meth:`triples` in slices of ``batch_size`` (the last may be shorter)."""
        batch_size = check_int(batch_size, "batch_size", low=1)
        users, pos, neg = self.triples(shuffle)
        for start in range(0, len(users), batch_size):
            stop = start + batch_size
            yield users[start:stop], pos[start:stop], neg[start:stop]


def _distinct_ranks(avail: np.ndarray, k: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each row ``r``, ``k[r]`` distinct values drawn uniformly from ``0..avail[r]-1``.

    Returns flat ``(rows, values)`` sorted by row, then value. Rows asking for more than half of
    their range draw the values to leave out instead, so duplicate rejection always converges fast.
    """
    avail, k = np.asarray(avail, np.int64), np.asarray(k, np.int64)
    if (k > avail).any() or (k < 0).any():
        raise DataError("_distinct_ranks: some row asks for more distinct values than it has")
    dense = 2 * k > avail
    rows, vals = _distinct_sparse(avail, np.where(dense, avail - k, k), rng)
    if not dense.any():
        return rows, vals
    width = np.int64(max(int(avail.max()), 1))
    dropped = rows[dense[rows]] * width + vals[dense[rows]]
    d_rows = np.repeat(np.flatnonzero(dense), avail[dense])
    d_vals = _ranks_within(avail[dense])
    kept = ~np.isin(d_rows * width + d_vals, dropped, assume_unique=True)
    keep_sparse = ~dense[rows]
    all_rows = np.concatenate([rows[keep_sparse], d_rows[kept]])
    all_vals = np.concatenate([vals[keep_sparse], d_vals[kept]])
    order = np.lexsort((all_vals, all_rows))
    return all_rows[order], all_vals[order]


def _ranks_within(sizes: np.ndarray) -> np.ndarray:
    """``0..s-1`` for each group size ``s``, concatenated."""
    starts = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts, sizes)


def _distinct_sparse(avail: np.ndarray, k: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``k[r]`` values per row with replacement, then redraw within-row repeats until none.

    The redraw rule treats all values alike, so the resulting set is uniform over k-subsets.
    """
    rows = np.repeat(np.arange(len(k), dtype=np.int64), k)
    width = np.int64(max(int(avail.max(initial=0)), 1))
    vals = rng.integers(0, np.maximum(avail[rows], 1), dtype=np.int64)
    key = rows * width + vals
    key.sort()
    while True:
        dup = np.flatnonzero(key[1:] == key[:-1]) + 1
        if not len(dup):
            break
        dup_rows = key[dup] // width
        key[dup] = dup_rows * width + rng.integers(0, avail[dup_rows], dtype=np.int64)
        touched = np.zeros(len(k), bool)
        touched[dup_rows] = True
        seg = touched[key // width]
        key[seg] = np.sort(key[seg])
    return key // width, key % width


def sample_items(n_items: int, exclude_csr: sp.spmatrix, users: np.ndarray, n: int,
                 rng: Seed) -> np.ndarray:
    """``n`` distinct items per user, uniform among those not stored in ``exclude_csr``'s row.

    Returns a ``(len(users), n)`` int64 array, each row ascending. Meant for the sampled-negative
    evaluation protocol (e.g. 100 negatives per test user); a DataError names users with fewer
    than ``n`` candidates.
    """
    n_items = check_int(n_items, "n_items", low=0)
    n = check_int(n, "n", low=0, high=n_items)
    rng = np.random.default_rng(check_seed(rng, "rng"))
    if not (sp.issparse(exclude_csr) or isinstance(exclude_csr, np.ndarray)) or len(
            getattr(exclude_csr, "shape", ())) != 2:
        raise ParamError("exclude_csr", f"expected a users × items sparse matrix, got "
                                        f"{type(exclude_csr).__name__}")
    if exclude_csr.shape[1] != n_items:
        raise ParamError("exclude_csr", f"has {exclude_csr.shape[1]} columns for "
                                        f"n_items={n_items}; expected one column per item")
    users = internal_ids(users, "users", exclude_csr.shape[0], "user")
    complement = _Complement.from_csr(exclude_csr, n_items)
    avail = complement.n_free[users]
    if (avail < n).any():
        raise _full_users_error(None, users[avail < n], f"fewer than {n} non-excluded items")
    rows, ranks = _distinct_ranks(avail, np.full(len(users), n, np.int64), rng)
    return complement.nth_free(users[rows], ranks).reshape(len(users), n)


class PointwiseSampler:
    """Point-wise training instances (He et al., WWW'17, the NCF code): each epoch, every
    training pair labelled 1 and ``n_negatives`` uniformly drawn unobserved items per pair
    labelled 0, shuffled together; batches of ``(users, items, labels)``."""

    def __init__(self, train: Interactions, n_negatives: int = 4, seed: Seed = 0) -> None:
        self.n_negatives = check_int(n_negatives, "n_negatives", low=0, high=1000)
        self.uniform = UniformSampler(train, seed)

    @property
    def rng(self) -> np.random.Generator:  # the Trainer checkpoints the sampler's stream
        return self.uniform.rng

    def instances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One epoch of ``(users, items, labels)`` in a seeded random order."""
        s = self.uniform
        users, pos = s._users_sorted, s._items_sorted
        parts_u, parts_i = [users], [pos]
        if self.n_negatives:
            neg = s.negatives(users, self.n_negatives).reshape(len(users), -1)
            parts_u.append(np.repeat(users, self.n_negatives))
            parts_i.append(neg.reshape(-1))
        u, i = np.concatenate(parts_u), np.concatenate(parts_i)
        labels = np.zeros(len(u), np.float32)
        labels[: len(users)] = 1.0
        perm = s.rng.permutation(len(u))
        return u[perm], i[perm], labels[perm]

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The epoch's :meth:`instances` in slices of ``batch_size``."""
        batch_size = check_int(batch_size, "batch_size", low=1)
        users, items, labels = self.instances()
        for start in range(0, len(users), batch_size):
            stop = start + batch_size
            yield users[start:stop], items[start:stop], labels[start:stop]


def smallest_keys(keys: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` smallest keys, ascending (a row's uniform k-subset).

    ``argpartition`` leaves the k in an order that differs between numpy's SIMD builds (AVX2 and
    AVX-512 give different ones), so they are sorted: the same seed gives the same subsets on
    every machine."""
    return np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
