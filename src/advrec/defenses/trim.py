"""Trimmed learning (TRIM; Jagielski et al., "Manipulating Machine Learning: Poisoning Attacks
and Countermeasures for Regression Learning", S&P 2018), adapted to recommenders at the level of
users as in the poisoning literature: fit, drop the users of highest training loss, refit on the
rest, until the dropped set repeats.

Unlike the detectors it needs no training attacks and no profile features: it uses the victim's
own fit and loss, so it defends a model rather than filtering the data once for every model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advrec.data.interactions import Interactions
from advrec.defenses.detectors import filter_profiles
from advrec.validation import check_float, check_int

__all__ = ["TrimResult", "trimmed_fit", "user_losses"]

_BLOCK = 1 << 22  # score differences evaluated at once (memory per block: 16 MiB in float32)


def user_losses(model, data: Interactions, chunk_size: int = 256) -> np.ndarray:
    """Each user's mean training loss under a fitted ``model`` on ``data``: the squared error of
    its ratings when the model predicts ratings and the data has them, else the expected BPR loss
    of each of its interactions against a uniformly drawn unobserved item (the mean over every
    unobserved item, so no sampling noise); NaN for users without interactions."""
    n = data.n_users
    counts = np.bincount(data.users, minlength=n).astype(np.float64)
    if data.ratings is not None and hasattr(model, "predict"):
        err = (np.asarray(model.predict(data.users, data.items), np.float64) - data.ratings) ** 2
        total = np.bincount(data.users, err, minlength=n)
    else:
        total = np.zeros(n)
        csr = data.csr
        n_items = data.n_items
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            lo, hi = csr.indptr[start], csr.indptr[stop]
            if lo == hi:
                continue
            scores = model.score(np.arange(start, stop)).float().cpu()
            rows = torch.from_numpy(np.repeat(np.arange(stop - start),
                                              np.diff(csr.indptr[start:stop + 1])))
            cols = torch.from_numpy(csr.indices[lo:hi].astype(np.int64))
            seen = torch.zeros(stop - start, n_items, dtype=torch.bool)
            seen[rows, cols] = True
            per = torch.zeros(hi - lo, dtype=torch.float64)
            step = max(1, _BLOCK // max(1, n_items))
            for b in range(0, hi - lo, step):  # blocks of interactions, memory-bounded
                r, c = rows[b:b + step], cols[b:b + step]
                diff = scores[r] - scores[r, c][:, None]  # s_uj - s_ui for every item j
                loss = torch.nn.functional.softplus(diff).masked_fill(seen[r], 0.0)
                per[b:b + step] = loss.sum(1, dtype=torch.float64)
            n_neg = (n_items - seen.sum(1)).clamp(min=1).double()
            per /= n_neg[rows]
            total[start:stop] = torch.zeros(stop - start, dtype=torch.float64).index_add(
                0, rows, per).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / counts, np.nan)


@dataclass
class TrimResult:
    """The trimmed model, the users it was trained without, and how it got there."""

    model: Any
    flags: np.ndarray  # bool over ``data``'s users: dropped from the final fit
    losses: np.ndarray  # each user's loss under the model the final drop was chosen by
    rounds: int  # refits after the first fit
    converged: bool  # the dropped set repeated before the round limit


def trimmed_fit(fit: Callable[[Interactions], Any], data: Interactions, fraction: float = 0.05,
                rounds: int = 3) -> TrimResult:
    """Trimmed learning over users: fit, drop the ``fraction`` of users of highest training
    loss, refit on the rest, until the dropped set repeats (at most ``rounds`` refits).

    ``fit`` returns a fresh model fitted on the data it is given. Every round scores every
    user's loss under the current model (:func:`user_losses`, the users left out included), as
    TRIM re-selects its points from all of them. Dropped users keep their ids (with no
    interactions), so every user can be scored again.
    """
    fraction = check_float(fraction, "fraction", low=0, high=1, closed="neither")
    rounds = check_int(rounds, "rounds", low=1)
    active = np.bincount(data.users, minlength=data.n_users) > 0
    n_drop = max(1, int(round(fraction * int(active.sum()))))
    model = fit(data)
    flags = np.zeros(data.n_users, dtype=bool)
    losses = user_losses(model, data)
    done, converged = 0, False
    while done < rounds:
        order = np.argsort(-np.where(active, losses, -np.inf), kind="stable")
        new = np.zeros(data.n_users, dtype=bool)
        new[order[:n_drop]] = True
        if np.array_equal(new, flags):
            converged = True
            break
        flags = new
        model = fit(filter_profiles(data, flags))
        done += 1
        if done < rounds:
            losses = user_losses(model, data)
    return TrimResult(model, flags, losses, done, converged)
