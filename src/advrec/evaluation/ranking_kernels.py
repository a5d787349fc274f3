"""Compiled (Numba) counting for full-ranking evaluation on the CPU, in its own module so that
importing the evaluator does not import numba.

Full ranking needs, for each test item, how many candidates (items in neither the user's training
nor test set) score at least as high. Counting by comparison against every item, minus the
excluded ones, costs one vectorised pass over the row per test item: cheaper than sorting the
row, and the score matrix is never copied or masked.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorise the float32 sum of the comparisons; no "no-NaN/no-inf"
# assumptions, since scores and thresholds may be ±inf.
_FAST = {"reassoc", "nsz", "contract"}


@njit(cache=True, nogil=True, fastmath=_FAST)
def _count_row(row, t):
    c = np.float32(0.0)  # exact for counts below 2**24 (the caller checks the row length)
    for j in range(row.shape[0]):
        c += np.float32(1.0) if row[j] >= t else np.float32(0.0)
    return int(c)


@njit(cache=True, nogil=True)
def candidates_at_least(scores, thresholds, n_thresholds, train_ptr, train_idx, test_ptr,
                        test_idx, first, cap, out):
    """out[b, r] = #{items j not in row b's train/test sets: scores[b, j] >= thresholds[b, r]}
    for r < n_thresholds[b], the thresholds of a row given in descending order; row b's
    exclusions are CSR row ``first + b``. With ``cap > 0`` a row stops at the first count
    reaching ``cap`` and gives ``cap`` to it and every later (lower) threshold: enough for
    metrics at cut-offs up to ``cap``, and most rows then cost one or two passes."""
    width = 0
    for b in range(scores.shape[0]):
        width = max(width, train_ptr[first + b + 1] - train_ptr[first + b]
                    + test_ptr[first + b + 1] - test_ptr[first + b])
    excluded = np.empty(width, scores.dtype)
    for b in range(scores.shape[0]):
        row = scores[b]
        a0, a1 = train_ptr[first + b], train_ptr[first + b + 1]
        e0, e1 = test_ptr[first + b], test_ptr[first + b + 1]
        n_ex = 0
        for p in range(a0, a1):
            excluded[n_ex] = row[train_idx[p]]
            n_ex += 1
        for p in range(e0, e1):
            excluded[n_ex] = row[test_idx[p]]
            n_ex += 1
        ex = excluded[:n_ex]  # gathered once; counted by the same vectorised pass as the row
        for r in range(n_thresholds[b]):
            t = thresholds[b, r]
            c = _count_row(row, t) - _count_row(ex, t)
            if cap > 0 and c >= cap:
                for rest in range(r, n_thresholds[b]):
                    out[b, rest] = cap
                break
            out[b, r] = c

def warm_up() -> None:
    """Compile (or load from the cache) the counter for float32 and float64 scores."""
    ptr, idx = np.zeros(2, np.int64), np.zeros(0, np.int64)
    for dtype in (np.float32, np.float64):
        candidates_at_least(np.zeros((1, 2), dtype), np.zeros((1, 1), dtype),
                            np.ones(1, np.int64), ptr, idx, ptr, idx, 0, 0,
                            np.zeros((1, 1), np.int64))
