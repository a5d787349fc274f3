"""Shared validators for public arguments and hyper-parameters (in the spirit of scikit-learn's
``check_scalar`` and ``_parameter_constraints``): each raises :class:`~advrec.errors.ParamError`
naming the argument, what was expected and the value given, in plain words (``inf``, not
``np.float64(inf)``). Any layer may use this module; it depends on numpy only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from advrec.errors import ParamError


def plain(value: Any) -> str:
    """A value as a user typed it: numpy scalars as Python ones, strings quoted, short."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(
        value, (bool, np.bool_))


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None,
              none_ok: bool = False) -> int | None:
    """``value`` as an ``int`` in ``[low, high]``; refuses floats (2.5 *and* 2.0), bools, text."""
    if value is None and none_ok:
        return None
    if not _is_int(value):
        raise ParamError(name, f"expected an integer{' or None' if none_ok else ''}, "
                               f"got {plain(value)}")
    value = int(value)
    _check_bounds(value, name, low, high, "both")
    return value


def check_float(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                closed: str = "both", none_ok: bool = False) -> float | None:
    """``value`` as a finite ``float`` within the bounds (``closed``: which ends are included:
    "both", "left", "right" or "neither"); refuses NaN, ±inf, bools and text."""
    if value is None and none_ok:
        return None
    if not _is_real(value):
        raise ParamError(name, f"expected a number{' or None' if none_ok else ''}, "
                               f"got {plain(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ParamError(name, f"must be a finite number, got {plain(value)}")
    _check_bounds(value, name, low, high, closed)
    return value


def _check_bounds(value: float, name: str, low, high, closed: str) -> None:
    low_ok = low is None or (value >= low if closed in ("both", "left") else value > low)
    high_ok = high is None or (value <= high if closed in ("both", "right") else value < high)
    if low_ok and high_ok:
        return
    if high is None:
        rule = f">= {plain(low)}" if closed in ("both", "left") else f"> {plain(low)}"
    elif low is None:
        rule = f"<= {plain(high)}" if closed in ("both", "right") else f"< {plain(high)}"
    else:
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        rule = f"lie in {left}{plain(low)}, {plain(high)}{right}"
    raise ParamError(name, f"must {'be ' if not rule.startswith('lie') else ''}{rule}, "
                           f"got {plain(value)}")


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a ``bool`` (``True``/``False`` only, not 0/1 or "yes")."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParamError(name, f"expected true or false, got {plain(value)}")
    return bool(value)


def check_choice(value: Any, name: str, choices: Iterable[Any], *, none_ok: bool = False) -> Any:
    """``value`` if it is one of ``choices`` (strings compared case-insensitively)."""
    choices = tuple(choices)
    if value is None and none_ok:
        return None
    if isinstance(value, str):
        for c in choices:
            if isinstance(c, str) and c.lower() == value.lower():
                return c
    elif value in choices and not isinstance(value, bool):
        return value
    allowed = ", ".join(str(c) for c in choices) + (", None" if none_ok else "")
    raise ParamError(name, f"expected one of {allowed}; got {plain(value)}")


def check_int_array(values: Any, name: str) -> np.ndarray:
    """A flat int64 array of integer values (refuses floats such as 0.7, bools and text instead
    of truncating them)."""
    arr = np.asarray(values)
    if arr.ndim > 1:
        arr = arr.reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
            raise ParamError(name, f"expected integer ids, got values of type {arr.dtype}")
        raise ParamError(name, f"expected integer ids, got {plain(arr.reshape(-1)[0])} "
                               f"(type {arr.dtype})")
    return arr.astype(np.int64, copy=False).reshape(-1)


def first_outside(arr: np.ndarray, n: int) -> int | None:
    """The first value of an int array outside ``0..n-1`` (None when all lie inside)."""
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
        return int(arr[(arr < 0) | (arr >= n)][0])
    return None


def check_index_array(values: Any, name: str, n: int) -> np.ndarray:
    """A 1-D int64 array of internal ids in ``0..n-1`` (refuses floats such as 0.7, bools,
    NaN and out-of-range ids instead of truncating or wrapping them)."""
    arr = check_int_array(values, name)
    bad = first_outside(arr, n)
    if bad is not None:
        raise ParamError(name, f"ids must be internal ids in 0..{n - 1}, got {bad}")
    return arr


def check_finite_array(values: Any, name: str) -> np.ndarray:
    """A 1-D float array with no NaN or ±inf (the first bad position is named)."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ParamError(name, "expected numbers") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ParamError(name, f"value {pos} is {plain(float(arr[pos]))}; expected finite numbers")
    return arr


def check_seed(seed: Any, name: str = "seed") -> Any:
    """A seed ``np.random.default_rng`` accepts: a non-negative integer, None, or a numpy
    Generator / BitGenerator / SeedSequence (floats such as 1.5, booleans and text are refused)."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.BitGenerator,
                                         np.random.SeedSequence)):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ParamError(name, f"expected a non-negative integer or a numpy Generator, got "
                               f"{plain(seed)}")
    if seed < 0:
        raise ParamError(name, f"must be >= 0, got {plain(seed)}")
    return seed


# ---------------------------------------------------------------------------- constraints
@dataclass(frozen=True)
class Int:
    """An integer hyper-parameter in ``[low, high]``."""

    low: int | None = None
    high: int | None = None
    none_ok: bool = False

    def check(self, value: Any, name: str) -> Any:
        return check_int(value, name, low=self.low, high=self.high, none_ok=self.none_ok)


@dataclass(frozen=True)
class Real:
    """A finite real hyper-parameter within bounds (``closed`` as in :func:`check_float`)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    none_ok: bool = False

    def check(self, value: Any, name: str) -> Any:
        return check_float(value, name, low=self.low, high=self.high, closed=self.closed,
                           none_ok=self.none_ok)


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values."""

    choices: tuple[Any, ...]
    none_ok: bool = False

    def check(self, value: Any, name: str) -> Any:
        return check_choice(value, name, self.choices, none_ok=self.none_ok)


@dataclass(frozen=True)
class Bool:
    """``True`` or ``False``."""

    def check(self, value: Any, name: str) -> Any:
        return check_bool(value, name)


@dataclass(frozen=True)
class Device:
    """A torch device name (``None``/"auto", "cpu", "cuda", "cuda:1", "mps"); checked for form
    here, for availability when the model is fitted."""

    def check(self, value: Any, name: str) -> Any:
        if value is None:
            return None
        text = str(value)
        kind, _, index = text.partition(":")
        if kind not in ("auto", "cpu", "cuda", "mps") or (index and not index.isdigit()) or (
                kind == "auto" and index):
            raise ParamError(name, f"expected auto, cpu, cuda, cuda:N or mps, got {plain(value)}")
        return value


def check_params(params: Mapping[str, Any], constraints: Mapping[str, Any]) -> None:
    """Check each named value against its constraint (an object with ``check(value, name)``).

    Names without a constraint are not checked; unknown names are the caller's business.
    """
    for name, value in params.items():
        rule = constraints.get(name)
        if rule is not None:
            rule.check(value, name)
