"""Data set characteristics and the regression of attack impact on them.

Deldjoo, Di Noia, Di Sciascio & Merra, *How Dataset Characteristics Affect the Robustness of
Collaborative Recommendation Models*, SIGIR 2020 (after Adomavicius & Zhang, ACM TMIS 2012):
describe each data set (or sub-sample) by its size, shape, density, popularity concentration and
rating distribution, measure an attack's impact on it, and fit a standardised linear regression of
the impact on the characteristics. :func:`subsample` makes the sub-data-sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from advrec._lazy import lazy
from advrec.data._args import check_data, check_seed
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError, ParamError
from advrec.validation import check_finite_array, check_float, plain

sps = lazy("scipy.stats")

__all__ = [
    "DEFAULT_FEATURES",
    "RegressionResult",
    "characteristics",
    "gini",
    "impact_regression",
    "long_tail_share",
    "subsample",
]

DEFAULT_FEATURES = ("log_size", "log_shape", "log_density", "gini_item", "gini_user",
                    "rating_std")
"""The regressors of Deldjoo et al. (log10 of size, shape and density; the two Gini indices; the
rating standard deviation), those present in every row being used."""


# ----------------------------------------------------------------------------- measures
def gini(values) -> float:
    """Gini index of non-negative values: 0 when all are equal, (n − 1)/n when one holds all.

    G = Σ_i (2i − n − 1) x_(i) / (n Σ x) over the values sorted ascending (i = 1..n); 0 for an
    empty or all-zero input.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    if x[0] < 0:
        raise DataError("the Gini index needs non-negative values")
    n = len(x)
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * x.sum()))


def long_tail_share(item_counts, head: float = 0.2) -> float:
    """Share of interactions on the long tail: every item outside the ``head`` fraction of most
    popular items (the Pareto 80/20 split; ``head=0.2``: the least popular 80 % of the catalogue).
    """
    head = check_float(head, "head", low=0.0, high=1.0)
    c = np.sort(check_finite_array(item_counts, "item_counts"))[::-1]
    if c.sum() == 0:
        return 0.0
    n_head = int(np.ceil(head * len(c)))
    return float(c[n_head:].sum() / c.sum())


def characteristics(data: Interactions) -> dict[str, float]:
    """The data set's characteristics (Deldjoo et al., SIGIR'20) as a flat dict.

    ``n_users``/``n_items``/``n_interactions`` count users and items with at least one
    interaction; ``size`` = n_users · n_items, ``shape`` = n_users / n_items, ``density`` =
    interactions / size, with their log10 (``log_size``…); ``gini_item``/``gini_user``: Gini of
    item popularity / user activity (:func:`gini`); ``long_tail_share``
    (:func:`long_tail_share`); with ratings: ``rating_mean``, ``rating_var``, ``rating_std``,
    ``rating_skew`` (population moments).
    """
    if len(data) == 0:
        raise DataError("an empty data set has no characteristics")
    items = data.item_counts[data.item_counts > 0]
    users = data.user_counts[data.user_counts > 0]
    n_u, n_i, n_r = len(users), len(items), len(data)
    size = float(n_u) * n_i
    out = {"n_users": n_u, "n_items": n_i, "n_interactions": n_r, "size": size,
           "shape": n_u / n_i, "density": n_r / size}
    out.update({f"log_{k}": float(np.log10(out[k])) for k in ("size", "shape", "density")})
    out.update(gini_item=gini(items), gini_user=gini(users),
               long_tail_share=long_tail_share(items))
    if data.ratings is not None:
        r = data.ratings.astype(np.float64)
        skew = float(sps.skew(r)) if r.std() > 0 else 0.0
        out.update(rating_mean=float(r.mean()), rating_var=float(r.var()),
                   rating_std=float(r.std()), rating_skew=skew)
    return out


# ----------------------------------------------------------------------------- sub-samples
def _count(n, total: int, what: str) -> int:
    """``n``: None (all), a fraction in (0, 1] (a float) or a count >= 1 (an integer, or an
    integral float such as 300.0); NaN, 2.5 or a count beyond ``total`` are refused."""
    if n is None:
        return total
    name = f"n_{what}"
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, float, np.integer,
                                                            np.floating)):
        raise ParamError(name, f"expected a positive count or fraction, got {plain(n)}")
    value = check_float(n, name, low=0.0, closed="neither")
    if isinstance(n, (float, np.floating)) and value <= 1:
        k = int(round(value * total))
    elif value != int(value):
        raise ParamError(name, f"expected a fraction in (0, 1] or a whole count, got {plain(n)}")
    else:
        k = int(value)
    if k > total:
        raise ParamError(name, f"{plain(n)} exceeds the {total} {what} with interactions")
    return max(k, 1)


def subsample(data: Interactions, n_users: int | float | None = None,
              n_items: int | float | None = None, seed: int | None = 0,
              name: str | None = None) -> Interactions:
    """A random sub-data-set: ``n_users`` users and ``n_items`` items drawn uniformly (counts, or
    fractions when float ≤ 1; None keeps all) among those with interactions, keeping their
    interactions. Users and items left without interactions are dropped; the result has its own
    compact id space (raw ids kept)."""
    check_data(data)
    rng = np.random.default_rng(check_seed(seed))
    active_u = np.flatnonzero(data.user_counts)
    active_i = np.flatnonzero(data.item_counts)
    users = np.sort(rng.choice(active_u, _count(n_users, len(active_u), "users"), replace=False))
    items = np.sort(rng.choice(active_i, _count(n_items, len(active_i), "items"), replace=False))
    keep = np.isin(data.users, users) & np.isin(data.items, items)
    if not keep.any():
        raise DataError("the sub-sample has no interactions: draw more users or items")
    u_ids, u = np.unique(data.users[keep], return_inverse=True)
    i_ids, i = np.unique(data.items[keep], return_inverse=True)
    label = name if name is not None else f"{data.name or 'data'}[{len(u_ids)}x{len(i_ids)}]"
    return Interactions(
        u, i, data.user_ids[u_ids], data.item_ids[i_ids],
        None if data.ratings is None else data.ratings[keep],
        None if data.timestamps is None else data.timestamps[keep], label)


# ----------------------------------------------------------------------------- regression
@dataclass
class RegressionResult:
    """A standardised least-squares fit: ``coefficients[f]`` are beta weights (change of the target
    in standard deviations per standard deviation of feature f), with standard errors, two-sided
    t-test p-values (NaN when there are no residual degrees of freedom), R² and adjusted R²."""

    target: str
    features: list[str]
    coefficients: dict[str, float]
    std_errors: dict[str, float]
    p_values: dict[str, float]
    r2: float
    adj_r2: float
    n: int
    dropped: list[str]

    def table(self, digits: int = 3) -> str:
        """A small Markdown table of the coefficients."""
        lines = [f"{self.target} ~ {' + '.join(self.features)} (n={self.n}, R²={self.r2:.3f})",
                 "", "| feature | beta | s.e. | p |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {f} | {self.coefficients[f]:.{digits}f} | {self.std_errors[f]:.{digits}f} "
                  f"| {self.p_values[f]:.{digits}g} |" for f in self.features]
        return "\n".join(lines)


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / x.std(axis=0)


def impact_regression(rows: Sequence[Mapping], target: str = "hit_ratio_shift",
                      features: Sequence[str] | None = None) -> RegressionResult:
    """Standardised OLS of ``target`` on ``features`` over ``rows`` (dicts, e.g. one per data set
    or sub-sample: :func:`characteristics` plus the measured impact).

    Features and target are z-scored (so the intercept is 0 and coefficients are beta weights)
    and fitted with ``numpy.linalg.lstsq``. ``features`` defaults to the
    :data:`DEFAULT_FEATURES` present in every row; constant features are dropped (listed in
    ``dropped``).
    """
    rows = list(rows)
    if not rows:
        raise ConfigError("impact_regression needs at least one row")
    if features is None:
        features = [f for f in DEFAULT_FEATURES if all(f in r for r in rows)]
    features = list(features)
    missing = sorted({c for r in rows for c in (target, *features) if c not in r})
    if missing:
        raise ConfigError(f"rows lack the column(s) {missing}")
    x = np.array([[float(r[f]) for f in features] for r in rows], dtype=np.float64)
    y = np.array([float(r[target]) for r in rows], dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("features and target must be finite numbers")
    const = x.std(axis=0) == 0 if len(x) else np.zeros(0, bool)
    dropped = [f for f, c in zip(features, const, strict=True) if c]
    features = [f for f, c in zip(features, const, strict=True) if not c]
    x = x[:, ~const]
    n, p = x.shape
    if not features:
        raise ConfigError("no feature varies across the rows")
    if n <= p:
        raise ConfigError(f"{n} rows for {p} features: the regression needs more rows than "
                          f"features")
    if y.std() == 0:
        raise DataError(f"the target {target!r} is constant across the rows")
    return _ols(_zscore(x), _zscore(y), target, features, dropped)


def _ols(x: np.ndarray, y: np.ndarray, target: str, features: list[str],
         dropped: list[str]) -> RegressionResult:
    n, p = x.shape
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    r2 = 1.0 - float(resid @ resid) / float(y @ y)
    dof = n - p - 1  # the intercept was estimated by centring
    if dof > 0:
        sigma2 = float(resid @ resid) / dof
        se = np.sqrt(np.clip(np.diag(np.linalg.pinv(x.T @ x)) * sigma2, 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            pv = 2 * sps.t.sf(np.abs(beta / se), dof)
        adj = 1.0 - (1.0 - r2) * (n - 1) / dof
    else:
        se = pv = np.full(p, np.nan)
        adj = float("nan")
    as_dict = lambda v: dict(zip(features, map(float, v), strict=True))  # noqa: E731
    return RegressionResult(target, features, as_dict(beta), as_dict(se), as_dict(pv), r2, adj,
                            n, dropped)
