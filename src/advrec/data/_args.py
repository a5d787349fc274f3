"""Argument checks shared by the data layer (on top of :mod:`advrec.validation`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from advrec.errors import DataError, ParamError
from advrec.validation import check_seed, plain


def rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """``np.random.default_rng(seed)`` after :func:`check_seed`."""
    return np.random.default_rng(check_seed(seed, name))


def check_data(data: Any, name: str = "data") -> Any:
    """``data`` must be an :class:`~advrec.data.Interactions`."""
    from advrec.data.interactions import Interactions

    if not isinstance(data, Interactions):
        raise ParamError(name, f"expected an Interactions, got {type(data).__name__}")
    return data


def internal_ids(values: Any, name: str, n: int, what: str) -> np.ndarray:
    """A 1-D int64 array of internal ids: integers only (ParamError otherwise; 0.7 is never
    truncated to 0), each in ``0..n-1`` (DataError otherwise)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        raise ParamError(name, "expected a one-dimensional array of integer ids") from None
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ParamError(name, f"expected integer ids, got values of type {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise DataError(f"{what} ids must lie in 0..{n - 1}, got {plain(bad)} ({name})")
    return arr
