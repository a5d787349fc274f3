"""Top-k ranking metrics as pure functions on tensors of ranks (no model or data knowledge).

Input convention (shared by every function here): ``ranks`` is a ``[n_users]`` or
``[n_users, R]`` tensor holding, for each user, the 0-based *position* of each relevant item in
that user's ranked candidate list (0 = best); rows with fewer than ``R`` relevant items are padded
with ``+inf`` (:data:`PAD`). The :class:`~advrec.evaluation.Evaluator` produces positions under the
pessimistic tie convention (see ``docs/evaluation.md``): ties between a relevant and a
non-relevant item count against the relevant one, ties among relevant items are broken
arbitrarily, so a user's positions are distinct. Every metric returns a float64 tensor
``[len(ks), n_users]`` (one row per cut-off, in the order given); :func:`auc` returns
``[n_users]``. A user with no relevant item scores 0 on every metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from advrec._lazy import lazy
from advrec.errors import ConfigError, DataError
from advrec.metric_names import ALL_METRICS, RANK_METRICS  # noqa: F401 (re-exported)

torch = lazy("torch")

PAD = math.inf
"""Padding value of the ``ranks`` matrices (a slot with no relevant item)."""



# ----------------------------------------------------------------------------- input handling
def check_ks(ks: int | Sequence[int]) -> tuple[int, ...]:
    """Validate cut-offs: positive integers, returned as a tuple (a bare int is one cut-off)."""
    values = (ks,) if isinstance(ks, int) else tuple(ks)
    if not values:
        raise ConfigError("ks must name at least one cut-off")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"cut-offs must be positive integers, got {k!r}")
    return values


def sorted_ranks(ranks: torch.Tensor) -> torch.Tensor:
    """``ranks`` as a float64 ``[U, R]`` tensor sorted ascending per row (pads last)."""
    r = torch.as_tensor(ranks)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise DataError(f"ranks must be a [users] or [users, R] tensor, got shape {tuple(r.shape)}")
    r = r.to(torch.float64)
    if r.numel() and (torch.isnan(r).any() or (r < 0).any()):
        raise DataError("ranks must be non-negative (pad with +inf), found a negative or NaN")
    return torch.sort(r, dim=1).values


def n_relevant(ranks: torch.Tensor) -> torch.Tensor:
    """Number of relevant items per user (the non-padding slots), float64 ``[U]``."""
    return torch.isfinite(ranks).sum(1).to(torch.float64)


def _best(r: torch.Tensor) -> torch.Tensor:
    """Smallest position per user (``inf`` for a user with no relevant item)."""
    if r.shape[1] == 0:
        return torch.full((r.shape[0],), PAD, dtype=torch.float64, device=r.device)
    return r[:, 0]


def _discount_cumsum(length: int, device: torch.device) -> torch.Tensor:
    """``c[j] = sum_{i<j} 1/log2(i+2)``: the ideal DCG of j relevant items at the top."""
    disc = 1.0 / torch.log2(torch.arange(length, dtype=torch.float64, device=device) + 2.0)
    return torch.cat([disc.new_zeros(1), disc.cumsum(0)])


# ------------------------------------------------------------------------ metrics on sorted ranks
def _hr(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    best = _best(r)
    return torch.stack([(best < k).to(torch.float64) for k in ks])


def _hits(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([(r < k).sum(1).to(torch.float64) for k in ks])


def _precision(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    k = torch.tensor(ks, dtype=torch.float64, device=r.device)[:, None]
    return _hits(r, ks) / k


def _recall(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    return _hits(r, ks) / n_relevant(r).clamp(min=1.0)


def _ndcg(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    gains = 1.0 / torch.log2(r + 2.0)  # pads (inf) give 0
    n_rel = torch.isfinite(r).sum(1)
    ideal = _discount_cumsum(r.shape[1], r.device)
    out = []
    for k in ks:
        dcg = torch.where(r < k, gains, 0.0).sum(1)
        idcg = ideal[n_rel.clamp(max=k)]
        out.append(torch.where(idcg > 0, dcg / idcg.clamp(min=1e-300), 0.0))
    return torch.stack(out)


def _mrr(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    best = _best(r)
    return torch.stack([torch.where(best < k, 1.0 / (best + 1.0), 0.0) for k in ks])


def _map(r: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    # With r sorted ascending and positions distinct, the j-th relevant item (1-based) sits at
    # position r_j, so the precision at its cut-off is j / (r_j + 1).
    j = torch.arange(1, r.shape[1] + 1, dtype=torch.float64, device=r.device)
    prec = j / (r + 1.0)  # pads give 0
    n_rel = n_relevant(r)
    out = []
    for k in ks:
        total = torch.where(r < k, prec, 0.0).sum(1)
        out.append(total / n_rel.clamp(max=k).clamp(min=1.0))
    return torch.stack(out)


_BY_NAME = {"hr": _hr, "ndcg": _ndcg, "precision": _precision, "recall": _recall,
            "mrr": _mrr, "map": _map}


# ----------------------------------------------------------------------------- public functions
def hit_ratio(ranks: torch.Tensor, ks: int | Sequence[int]) -> torch.Tensor:
    """HR@k: 1 if any relevant item has position < k, else 0; ``[len(ks), U]``."""
    return _hr(sorted_ranks(ranks), check_ks(ks))


def ndcg(ranks: torch.Tensor, ks: int | Sequence[int]) -> torch.Tensor:
    """nDCG@k, binary gains: sum over hits of 1/log2(pos+2), over the ideal DCG of min(k, #rel)."""
    return _ndcg(sorted_ranks(ranks), check_ks(ks))


def precision(ranks: torch.Tensor, ks: int | Sequence[int]) -> torch.Tensor:
    """P@k = #relevant items with position < k, divided by k; ``[len(ks), U]``."""
    return _precision(sorted_ranks(ranks), check_ks(ks))


def recall(ranks: torch.Tensor, ks: int | Sequence[int]) -> torch.Tensor:
    """R@k = #relevant items with position < k, divided by #relevant; ``[len(ks), U]``."""
    return _recall(sorted_ranks(ranks), check_ks(ks))


def mrr(ranks: torch.Tensor, ks: int | Sequence[int]) -> torch.Tensor:
    """MRR@k = 1/(best position + 1) if the best position is < k, else 0; ``[len(ks), U]``."""
    return _mrr(sorted_ranks(ranks), check_ks(ks))


def average_precision(ranks: torch.Tensor, ks: int | Sequence[int]) -> torch.Tensor:
    """AP@k (MAP@k once averaged): sum over hits of precision at the hit, over min(k, #rel)."""
    return _map(sorted_ranks(ranks), check_ks(ks))


def auc(neg_counts: torch.Tensor, n_negatives: torch.Tensor) -> torch.Tensor:
    """Per-user AUC = mean over relevant items of 1 - neg_counts / n_negatives; ``[U]``.

    ``neg_counts[u, r]`` is the number of non-relevant candidates scoring ``>=`` the r-th relevant
    item (``+inf`` pads), ``n_negatives[u]`` the number of non-relevant candidates. For one
    relevant item this is APR's ``1 - rank / #candidates``. A user with no non-relevant candidate
    gets 1.0 (vacuously perfect, as HR is), one with no relevant item 0.
    """
    c = torch.as_tensor(neg_counts).to(torch.float64)
    if c.ndim == 1:
        c = c[:, None]
    n = torch.as_tensor(n_negatives, device=c.device).to(torch.float64)
    if c.ndim != 2 or n.shape != (c.shape[0],):
        raise DataError(f"neg_counts [U, R] and n_negatives [U] disagree: {tuple(c.shape)} vs "
                        f"{tuple(n.shape)}")
    valid = torch.isfinite(c)
    per_item = 1.0 - torch.where(valid, c, 0.0) / n.clamp(min=1.0)[:, None]
    per_item = torch.where(valid, per_item, 0.0)
    n_valid = valid.sum(1)
    out = per_item.sum(1) / n_valid.clamp(min=1)
    return torch.where(n <= 0, (n_valid > 0).to(torch.float64), out)


def rank_metrics(
    ranks: torch.Tensor,
    ks: int | Sequence[int],
    metrics: Sequence[str] = ALL_METRICS,
    neg_counts: torch.Tensor | None = None,
    n_negatives: torch.Tensor | None = None,
    presorted: bool = False,
) -> dict[str, torch.Tensor]:
    """Several metrics at once (ranks sorted once): ``{"hr@10": [U], ..., "auc": [U]}``.

    ``auc`` needs ``neg_counts`` and ``n_negatives`` (see :func:`auc`); names follow
    :data:`ALL_METRICS`, keys are ``"<name>@<k>"`` except ``"auc"``. ``presorted=True`` promises
    a float64 ``[U, R]`` tensor already sorted ascending per row and skips the checks.
    """
    ks = check_ks(ks)
    unknown = sorted(set(metrics) - set(ALL_METRICS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; choose from {list(ALL_METRICS)}")
    r = ranks if presorted else sorted_ranks(ranks)
    out: dict[str, torch.Tensor] = {}
    for name in metrics:
        if name == "auc":
            if neg_counts is None or n_negatives is None:
                raise ConfigError("auc needs neg_counts and n_negatives")
            out["auc"] = auc(neg_counts, n_negatives)
            continue
        values = _BY_NAME[name](r, ks)
        for k, row in zip(ks, values, strict=True):
            out[f"{name}@{k}"] = row
    return out
