"""Argument checks shared by the data layer (on top of :mod:`advrec.validation`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from advrec.errors import DataError, ParamError
from advrec.validation import check_int_array, check_seed, first_outside


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
    arr = check_int_array(arr, name)
    bad = first_outside(arr, n)
    if bad is not None:
        raise DataError(f"{what} ids must lie in 0..{n - 1}, got {bad} ({name})")
    return arr
