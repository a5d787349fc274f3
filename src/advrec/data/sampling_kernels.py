"""Compiled membership tests of the negative sampler (numba), in their own module so that
importing the sampler does not import numba."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def bitmap_member(bitmap, users, items, n_items):
    out = np.zeros(len(users), np.bool_)
    for q in range(len(users)):
        key = users[q] * n_items + items[q]
        out[q] = (bitmap[key >> 3] >> (key & 7)) & 1
    return out

@njit(cache=True, nogil=True)
def segment_member(keys, starts, counts, users, items, n_items):
    """For each query, whether ``users[q] * n_items + items[q]`` is among the user's keys."""
    out = np.zeros(len(users), np.bool_)
    for q in range(len(users)):
        u = users[q]
        target = u * n_items + items[q]
        lo = starts[u]
        hi = lo + counts[u]
        while lo < hi:
            mid = (lo + hi) >> 1
            if keys[mid] < target:
                lo = mid + 1
            else:
                hi = mid
        out[q] = lo < starts[u] + counts[u] and keys[lo] == target
    return out


def warm_up() -> None:
    """Compile (or load from the cache) both membership tests."""
    one = np.zeros(1, np.int64)
    query = np.broadcast_to(one, (1,))  # read-only, as the sampler's queries are
    bitmap_member(np.zeros(1, np.uint8), query, query, np.int64(1))
    segment_member(one, one, one, query, query, np.int64(1))
