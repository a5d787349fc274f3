"""Paired significance tests on per-user metric values (two models, or one before/after attack)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import stats

from advrec.errors import ConfigError, DataError
from advrec.vocabulary import SIGNIFICANCE_TESTS

TESTS = SIGNIFICANCE_TESTS


class PerUserResult(Protocol):
    """What :func:`compare_results` reads of a result: an
    :class:`~advrec.evaluation.evaluator.EvaluationResult` (named here only as a protocol, so
    this module does not import the evaluator, which imports it)."""

    per_user: dict[str, np.ndarray]
    users: np.ndarray
    protocol: str
    n_negatives: int | None

    @property
    def label(self) -> str: ...


def _paired_arrays(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float64 1-D arrays of equal length without NaN."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise DataError(f"paired values must be 1-D arrays of equal length, got {x.shape} and "
                        f"{y.shape}")
    if len(x) == 0:
        raise DataError("paired test needs at least one pair, got none")
    if np.isnan(x).any() or np.isnan(y).any():
        raise DataError("paired values contain NaN")
    return x, y


def paired_test(a, b, test: str = "ttest") -> dict[str, float | int]:
    """Paired test of ``a`` vs ``b`` (aligned per user): ``{statistic, p_value, mean_diff, n}``.

    ``test`` is ``"ttest"`` (scipy ``ttest_rel``) or ``"wilcoxon"`` (signed-rank, zero differences
    dropped). ``mean_diff`` is mean(a - b). When every difference is zero there is no evidence of
    a difference: statistic 0.0 and p-value 1.0 (scipy would give NaN or raise).
    """
    if test not in TESTS:
        raise ConfigError(f"unknown test {test!r}; choose from {list(TESTS)}")
    x, y = _paired_arrays(a, b)
    diff = x - y
    result = {"statistic": 0.0, "p_value": 1.0, "mean_diff": float(diff.mean()), "n": len(diff)}
    if not np.any(diff):
        return result
    if len(diff) < 2:
        raise DataError("a paired test with non-zero differences needs at least 2 pairs")
    res = stats.ttest_rel(x, y) if test == "ttest" else stats.wilcoxon(x, y)
    result["statistic"] = float(res.statistic)
    result["p_value"] = float(res.pvalue)
    return result


def compare_results(
    res_a: PerUserResult, res_b: PerUserResult, metric: str, test: str = "ttest"
) -> dict[str, float | int]:
    """:func:`paired_test` of one per-user metric of two results, over the users both evaluated.

    Users are matched by internal id (poisoning appends users, so ids of real users stay put);
    ``n`` says how many users were paired.
    """
    for res in (res_a, res_b):
        if metric not in res.per_user:
            raise ConfigError(f"metric {metric!r} has no per-user values; choose from "
                              f"{sorted(res.per_user)}")
    if res_a.protocol != res_b.protocol or res_a.n_negatives != res_b.n_negatives:
        raise ConfigError(f"cannot compare a {res_a.label!r} result with a {res_b.label!r} one")
    _, ia, ib = np.intersect1d(res_a.users, res_b.users, assume_unique=True, return_indices=True)
    if len(ia) == 0:
        raise DataError("the two results share no evaluated user")
    return paired_test(res_a.per_user[metric][ia], res_b.per_user[metric][ib], test)
