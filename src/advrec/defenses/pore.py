"""PORE (Jia, Liu, Hu & Gong, "PORE: Provably Robust Recommender Systems against Data Poisoning
Attacks", USENIX Security 2023): an ensemble of base recommenders trained on random sub-samples
of the users, with a certificate of how many of each user's top-N items survive the injection of
up to e fake users.

The ensemble (the paper's Algorithm 1, the official ``sample_T.py``): T times, draw s of the n
users uniformly *without replacement*, train the base recommender on their data and let it
recommend N' items to each *sampled* user (a user outside the sample gets nothing from that
model). ``counts[u, i]`` is how many of the T models recommended item i to user u, so
``counts / T`` estimates p_i(u), the probability that a base model trained on a random sample
recommends i to u. PORE recommends each user the N items of largest p_i(u).

The certificate (Theorem 1, the official ``pore.py``): Clopper–Pearson bounds on every p_i(u),
simultaneous over users and items by Bonferroni (each one-sided bound at level
α / (n_users · n_items)); lower bounds for the user's test items I_u, upper bounds for the
others. With e fake users (n' = n + e) a sample misses every fake user with probability
r = C(n, s) / C(n', s), so a test item keeps at least r·p_μ and any other item gains at most
Δ = s/n' − (s/n)·r (the chance that u is sampled together with a fake user). Walking the test
items by decreasing lower bound, item μ (ranked ρ_μ ≤ N among all items by their bounds) is
certified when

    r·p̲_μ > min( (r·Σ_{v∈C_μ} p̄_v + N'·Δ) / |C_μ| ,  min_{v∈C_μ} (r·p̄_v + Δ) ),

C_μ being the N − ρ_μ + 1 non-test items of largest upper bound below μ; the count stops at the
first test item that fails. The certified number of hits π(u, e) is at most min(N, |I_u|) and
never grows with e.

``recommend_to="all"`` (not in the paper) lets each base model also recommend to the users outside
its sample, from their own history (SAR can: its item similarity comes from the sample, the
affinity from the user); every model then counts for every user, so the bounds are tighter for the
same T, and the extra mass a poisoned model can add becomes Δ = 1 − r.

The default base recommender is SAR (Microsoft Recommenders' ``SARSingleNode`` with the settings
of the official code: Jaccard item similarity from the co-occurrences among the sampled users,
user affinity = the user's ratings decayed with a 30-day half-life, seen items removed), computed
by a compiled (Numba) kernel on the CPU and by batched dense products on CUDA. Any registered
advrec model can be the base instead (``base="bprmf"``), trained once per sample: only for small T.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import smallest_keys
from advrec.errors import DataError, ParamError
from advrec.models.base import (
    SEED,
    Capabilities,
    Recommender,
    check_device,
    resolve_device,
)
from advrec.validation import Choice, Int, Real, check_int, plain

sp = lazy("scipy.sparse")
stats = lazy("scipy.stats")
torch = lazy("torch")

__all__ = ["PORE", "Certificate", "certified_hits", "fake_user_factors", "sar_recommend",
           "simultaneous_bounds"]

SAR_SIMILARITIES = ("jaccard", "lift", "cooccurrence")
RECOMMEND_TO = ("sampled", "all")
BACKENDS = ("auto", "numba", "torch")
_SAR_PARAMS = {"similarity": "jaccard", "time_decay_days": 30.0}  # the official settings
_DENSE_BUDGET = 1 << 28  # bytes of dense per-block buffers on the torch path (256 MiB)


# ---------------------------------------------------------------------------- the bounds
def simultaneous_bounds(T: int, alpha: float, n_users: int, n_items: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson lower and upper bounds on a probability for every count 0..T out of T
    draws, each one-sided at level ``alpha / (n_users · n_items)`` (Bonferroni over every user
    and item, as the official ``construct_bound_dictionary``): two float64 arrays of T + 1."""
    T = check_int(T, "T", low=1)
    level = float(alpha) / (int(n_users) * int(n_items))
    c = np.arange(T + 1, dtype=np.float64)
    lower = np.zeros(T + 1)
    upper = np.ones(T + 1)
    lower[1:] = stats.beta.ppf(level, c[1:], T - c[1:] + 1)
    upper[:-1] = stats.beta.isf(level, c[:-1] + 1, T - c[:-1])
    return lower, upper


def fake_user_factors(n: int, s: int, e_values: np.ndarray, recommend_to: str = "sampled"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each number of fake users e: r = C(n, s) / C(n + e, s) (the probability that a sample
    of s out of n + e users holds no fake one; the product ∏ (n + i − s) / (n + i) in the order
    the official code multiplies it), s/(n + e) and the added mass Δ of a poisoned model
    (``"sampled"``: s/(n + e) − (s/n)·r; ``"all"``: 1 − r)."""
    e_values = np.asarray(e_values, dtype=np.int64)
    top = int(e_values.max()) if e_values.size else 0
    ratio = np.ones(top + 1)
    r = 1.0
    for i in range(1, top + 1):  # O(max e) scalar steps, not per user or item
        r = r * (n + i - s)
        r = r / (n + i)
        ratio[i] = r
    r = ratio[e_values]
    share = s / (n + e_values).astype(np.float64)
    delta = share - (s / n) * r if recommend_to == "sampled" else 1.0 - r
    return r, share, delta


# ---------------------------------------------------------------------------- the certificate
def certified_hits(counts, relevant, T: int, s: int, n: int, n_prime: int, N: int,
                   alpha: float, e_values, *, n_bonferroni_users: int | None = None,
                   exclude=None, recommend_to: str = "sampled", chunk_size: int = 256
                   ) -> np.ndarray:
    """The certified number of hits π(u, e) of Theorem 1 for each row of ``counts`` and each e.

    ``counts``: ``[B, n_items]`` integer counts (a NumPy array or a SciPy sparse matrix), how many
    of the T base models recommended each item to the user; ``relevant``: the same shape, true
    (non-zero) at the user's test items I_u; ``exclude`` (optional, same shape): items no base
    model can ever recommend to the user (its training items), whose probability is 0 under any
    attack (the official code keeps them as competitors with the bound of a zero count; leaving
    them out only tightens the certificate). ``n``: the number of genuine users the samples are
    drawn from; ``n_bonferroni_users``: the users the α is split over (default ``n``).
    Returns an int64 ``[B, len(e_values)]`` array. Rows are processed ``chunk_size`` at a time:
    memory is ``chunk_size × n_items``.
    """
    e_values = np.asarray(e_values, dtype=np.int64).reshape(-1)
    counts = _as_rows(counts, "counts")
    relevant = _as_rows(relevant, "relevant")
    n_rows, n_items = counts.shape
    if relevant.shape != counts.shape:
        raise ParamError("relevant", f"expected shape {counts.shape} like counts, got "
                                     f"{relevant.shape}")
    if exclude is not None:
        exclude = _as_rows(exclude, "exclude")
        if exclude.shape != counts.shape:
            raise ParamError("exclude", f"expected shape {counts.shape} like counts, got "
                                        f"{exclude.shape}")
    lower_of, upper_of = simultaneous_bounds(
        T, alpha, n if n_bonferroni_users is None else n_bonferroni_users, n_items)
    r, share, delta = fake_user_factors(n, s, e_values, recommend_to)
    sn = s / n
    out = np.zeros((n_rows, len(e_values)), dtype=np.int64)
    for start in range(0, n_rows, chunk_size):
        stop = min(n_rows, start + chunk_size)
        cnt = _dense_rows(counts, start, stop).astype(np.int64)
        if cnt.size and (cnt.min() < 0 or cnt.max() > T):
            raise ParamError("counts", f"expected counts between 0 and T = {T}")
        rel = _dense_rows(relevant, start, stop) != 0
        lower = lower_of[cnt]
        upper = upper_of[cnt]
        if exclude is not None:
            upper[_dense_rows(exclude, start, stop) != 0] = 0.0
        out[start:stop] = _certify_chunk(lower, upper, rel, N, n_prime, r, share, delta, sn,
                                         recommend_to)
    return out


def _certify_chunk(lower: np.ndarray, upper: np.ndarray, rel: np.ndarray, N: int,
                   n_prime: int, r: np.ndarray, share: np.ndarray, delta: np.ndarray,
                   sn: float, recommend_to: str) -> np.ndarray:
    """Theorem 1 on a chunk of users ``[B, n_items]``, vectorised over users, the N top positions
    and the numbers of fake users."""
    B, m = lower.shape
    n_top = min(N, m)
    combined = np.where(rel, lower, upper)
    # every item by decreasing bound, ties to the lower item id (Python's stable sort, as the
    # official sorted(..., reverse=True)); only the first N positions can be certified
    order = np.argsort(-combined, axis=1, kind="stable")[:, :n_top]
    is_test = np.take_along_axis(rel, order, axis=1)  # [B, N]
    low_top = np.take_along_axis(lower, order, axis=1)
    # the N largest upper bounds of the non-test items (C_μ never reaches beyond them)
    others = np.where(rel, -np.inf, upper)
    part = -np.partition(-others, n_top - 1, axis=1)[:, :n_top] if n_top < m else others
    top_up = -np.sort(-part, axis=1)  # [B, N], descending; -inf pads where too few items
    n_others = (~rel).sum(1)[:, None]
    rank = np.arange(n_top)[None, :]  # 0-based position ρ_μ − 1
    c = np.cumsum(is_test, axis=1)  # π' of the test item at that position
    first = rank - c + 1  # non-test items ranked above μ: |I_μ|
    size = N - rank  # |C_μ| = N − ρ_μ + 1
    end = first + size  # = N − π' + 1 ≤ N
    total = np.zeros((B, n_top))
    for k in range(n_top):  # add in order, as the official sum over C_μ (x + 0.0 == x)
        inside = (k >= first) & (k < end) & (k < n_others)
        total = total + np.where(inside, top_up[:, k:k + 1], 0.0)
    last = np.minimum(end, n_others) - 1
    has = last >= first
    smallest = np.take_along_axis(top_up, np.clip(last, 0, n_top - 1), axis=1)
    smallest = np.where(has, smallest, np.inf)
    # [B, N, E]: the official arithmetic, operation by operation
    rr = r[None, None, :]
    lhs = low_top[:, :, None] * rr
    rhs1 = total[:, :, None] * rr
    rhs1 = rhs1 + n_prime * delta[None, None, :]
    rhs1 = rhs1 / size[:, :, None]
    if recommend_to == "sampled":
        rhs2 = smallest[:, :, None] * rr + share[None, None, :]
        rhs2 = rhs2 - sn * rr
    else:
        rhs2 = smallest[:, :, None] * rr + delta[None, None, :]
    ok = (lhs > np.minimum(rhs1, rhs2)) | ~is_test[:, :, None]
    alive = np.cumprod(ok, axis=1, dtype=np.int8).astype(bool)
    return (alive & is_test[:, :, None]).sum(1)


def _as_rows(x, name: str):
    if sp.issparse(x):
        return x.tocsr()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ParamError(name, f"expected a 2-d array (users × items), got shape {arr.shape}")
    return arr


def _dense_rows(x, start: int, stop: int) -> np.ndarray:
    return x[start:stop].toarray() if sp.issparse(x) else np.asarray(x[start:stop])


# ---------------------------------------------------------------------------- SAR base models
def _sar_weights(train: Interactions, time_decay_days: float | None) -> sp.csr_matrix:
    """SAR's user affinity: each rating (1 without ratings) times 2^((t − t_max)/half-life),
    summed over a user's duplicates of an item. SAR takes t_max per training set; one global
    t_max scales every affinity of a sample by the same factor, which changes no ranking."""
    w = (np.ones(len(train)) if train.ratings is None
         else train.ratings.astype(np.float64))
    if time_decay_days is not None and train.timestamps is not None and len(train):
        t = train.timestamps.astype(np.float64)
        w = w * np.exp2((t - t.max()) / (float(time_decay_days) * 86400.0))
    m = sp.csr_matrix((w, (train.users, train.items)), shape=train.shape)
    m.sum_duplicates()
    m.sort_indices()
    return m


def _sar_block_py(indptr, indices, weights, samples, targets, cptr, crow, cw, n_items,
                  n_prime, sim, counts):  # pragma: no cover - compiled by Numba
    """SAR on each sample of ``samples`` [K, s] (user rows of the CSR ``indptr``/``indices``/
    ``weights``): the item similarity (0 Jaccard, 1 lift, 2 co-occurrence) from the
    co-occurrences among the sampled users, each target's affinity × similarity, and its
    top-``n_prime`` unseen items among the items of the sample (ties to the lower item id),
    added to ``counts``. Targets: the sampled users (``targets`` empty), or the users listed in
    ``targets`` with their items by item in ``cptr``/``crow`` (row in ``targets``)/``cw``.

    Item-major: for each item i of the sample, its co-occurrence row (the summed histories of
    the sampled users holding i) and similarity row are built in n_items buffers, then added,
    weighted, to the score row of every target holding i; no similarity matrix is stored."""
    K, s = samples.shape
    m = n_items
    all_users = targets.shape[0] > 0
    n_rows = targets.shape[0] if all_users else s
    total = 1
    for k in range(K):
        t = 0
        for a in range(s):
            t += indptr[samples[k, a] + 1] - indptr[samples[k, a]]
        total = max(total, t)
    d = np.zeros(m, dtype=np.int64)
    ustart = np.zeros(m + 1, dtype=np.int64)
    upos = np.zeros(m, dtype=np.int64)
    urow = np.empty(total, dtype=np.int64)
    uw = np.empty(total, dtype=np.float32)
    acc = np.zeros(m, dtype=np.int32)
    df = np.zeros(m, dtype=np.float32)  # d as float32, for the vectorised similarity row
    row = np.zeros(m, dtype=np.float32)
    base = np.zeros(m, dtype=np.float32)
    score = np.zeros((n_rows, m), dtype=np.float32)
    chosen = np.zeros(n_prime, dtype=np.int64)
    for k in range(K):
        # the sample's item -> (sampled user, weight) index, by counting sort
        d[:] = 0
        for a in range(s):
            v = samples[k, a]
            for p in range(indptr[v], indptr[v + 1]):
                d[indices[p]] += 1
        for i in range(m):
            ustart[i + 1] = ustart[i] + d[i]
            upos[i] = ustart[i]
            df[i] = d[i]
        for a in range(s):
            v = samples[k, a]
            for p in range(indptr[v], indptr[v + 1]):
                i = indices[p]
                urow[upos[i]] = a
                uw[upos[i]] = weights[p]
                upos[i] += 1
        for i in range(m):
            if d[i] == 0:
                continue  # not in the sample: SAR does not know the item
            for t in range(ustart[i], ustart[i + 1]):
                v = samples[k, urow[t]]
                for p in range(indptr[v], indptr[v + 1]):
                    acc[indices[p]] += 1
            di = df[i]
            if sim == 0:
                for j in range(m):
                    c = np.float32(acc[j])
                    row[j] = c / (di + df[j] - c)  # di >= 1: never 0/0
            elif sim == 1:
                for j in range(m):
                    row[j] = np.float32(acc[j]) / (di * max(df[j], np.float32(1.0)))
            else:
                for j in range(m):
                    row[j] = np.float32(acc[j])
            acc[:] = 0
            if all_users:
                for t in range(cptr[i], cptr[i + 1]):
                    r = crow[t]
                    w = cw[t]
                    for j in range(m):
                        score[r, j] += w * row[j]
            else:
                for t in range(ustart[i], ustart[i + 1]):
                    r = urow[t]
                    w = uw[t]
                    for j in range(m):
                        score[r, j] += w * row[j]
        for j in range(m):  # absent items can never be chosen
            base[j] = 0.0 if d[j] > 0 else -np.inf
        for r in range(n_rows):
            u = targets[r] if all_users else samples[k, r]
            lo, hi = indptr[u], indptr[u + 1]
            if lo < hi:  # a user without history is unknown to SAR: nothing recommended
                sr = score[r]
                for j in range(m):
                    sr[j] += base[j]
                for p in range(lo, hi):
                    sr[indices[p]] = -np.inf  # seen: never recommended
                n_chosen = 0
                for _ in range(n_prime):
                    best = -np.inf
                    arg = -1
                    for j in range(m):
                        if sr[j] > best:
                            best = sr[j]
                            arg = j
                    if arg < 0:
                        break
                    chosen[n_chosen] = arg
                    n_chosen += 1
                    sr[arg] = -np.inf
                for t in range(n_chosen):
                    counts[u, chosen[t]] += 1
            score[r, :] = 0.0


@functools.cache
def _sar_kernel():
    from numba import njit

    return njit(cache=True, nogil=True)(_sar_block_py)


def sar_recommend(train: Interactions, samples: np.ndarray, n_prime: int, counts: np.ndarray, *,
                  similarity: str = "jaccard", time_decay_days: float | None = 30.0,
                  recommend_to: str = "sampled", backend: str = "numba", device=None,
                  weights: sp.csr_matrix | None = None) -> None:
    """Train SAR on each sample of users (``samples``: ``[K, s]`` internal user ids) and add
    each base model's top-``n_prime`` recommendations to ``counts`` (``[n_users, n_items]``
    int32, in place): for the sampled users (``recommend_to="sampled"``, the official code) or
    for every user with a history (``"all"``). ``backend="numba"``: the compiled CPU kernel;
    ``"torch"``: batched dense products on ``device`` (CUDA: the fast path for large T)."""
    if weights is None:
        weights = _sar_weights(train, time_decay_days)
    sim = SAR_SIMILARITIES.index(similarity)
    samples = np.ascontiguousarray(samples, dtype=np.int64)
    if backend == "torch":
        _sar_torch(weights, samples, n_prime, counts, sim, recommend_to, device)
        return
    m = train.n_items
    if recommend_to == "all":
        targets = np.flatnonzero(np.diff(weights.indptr)).astype(np.int64)
        by_item = weights[targets].tocsc()
        by_item.sort_indices()
        cptr, crow = by_item.indptr.astype(np.int64), by_item.indices.astype(np.int64)
        cw = by_item.data.astype(np.float32)
    else:
        targets = cptr = crow = np.zeros(0, dtype=np.int64)
        cw = np.zeros(0, dtype=np.float32)
    _sar_kernel()(weights.indptr.astype(np.int64), weights.indices.astype(np.int32),
                  weights.data.astype(np.float32), samples, targets, cptr, crow, cw, m,
                  int(n_prime), sim, counts)


def _sar_torch(weights: sp.csr_matrix, samples: np.ndarray, n_prime: int, counts: np.ndarray,
               sim: int, recommend_to: str, device) -> None:
    """The torch path of :func:`sar_recommend`: per block of samples, the dense co-occurrence
    X^T X of the sampled users, the similarity, affinity × similarity, the top-N' unseen items
    of the sample (ties: the first maximum for N' = 1, ``torch.topk``'s order otherwise)."""
    dev = resolve_device(device)
    n, m = weights.shape
    K, s = samples.shape
    pattern = weights.copy()
    pattern.data[:] = 1.0
    aff_all = torch.from_numpy(weights.toarray().astype(np.float32)).to(dev)
    seen_all = torch.from_numpy(pattern.toarray().astype(np.float32)).to(dev)
    has_history = seen_all.sum(1) > 0
    everyone = recommend_to == "all"
    n_rows = n if everyone else s
    block = max(1, _DENSE_BUDGET // (4 * (3 * m * m + 3 * n_rows * m)))
    acc = torch.zeros(n * m, dtype=torch.int64, device=dev)
    for b in range(0, K, block):
        idx = torch.from_numpy(samples[b:b + block]).to(dev)  # [k, s]
        x = seen_all[idx]  # [k, s, m]
        c = x.transpose(1, 2) @ x  # [k, m, m]: co-occurrence counts, exact in float32
        d = torch.diagonal(c, dim1=1, dim2=2)  # [k, m]: users of the sample with the item
        if sim == 0:
            simm = c / (d[:, :, None] + d[:, None, :] - c)
        elif sim == 1:
            simm = c / (d[:, :, None] * d[:, None, :])
        else:
            simm = c
        simm = torch.nan_to_num(simm, nan=0.0)  # 0/0 between two items absent from the sample
        del c
        if everyone:
            users = torch.arange(n, device=dev).expand(len(idx), n)
            scores = aff_all @ simm  # [k, n, m]
            seen = seen_all[None] > 0
        else:
            users = idx
            scores = aff_all[idx] @ simm  # [k, s, m]
            seen = x > 0
        scores.masked_fill_(seen | (d == 0)[:, None, :], -torch.inf)
        if n_prime == 1:
            top_i = scores.argmax(dim=2, keepdim=True)  # the first maximum
            top_v = scores.gather(2, top_i)
        else:
            top_v, top_i = torch.topk(scores, min(n_prime, m), dim=2)
        keep = torch.isfinite(top_v) & has_history[users][:, :, None]
        acc += torch.bincount((users[:, :, None] * m + top_i)[keep], minlength=n * m)
    counts += acc.view(n, m).cpu().numpy().astype(counts.dtype)


# ---------------------------------------------------------------------------- the ensemble
@dataclass(frozen=True, eq=False)
class Certificate:
    """What :meth:`PORE.certify` returns: per evaluated user (those with at least one test
    item) and per number of fake users e, the certified hits π(u, e) among the user's top-N,
    with the ensemble's clean top-N hits for comparison."""

    users: np.ndarray  # internal ids of the evaluated users
    e: np.ndarray  # numbers of fake users, 0..max_fake
    certified: np.ndarray  # [len(users), len(e)] int: certified hits
    n_relevant: np.ndarray  # |I_u|: test items per evaluated user
    hits: np.ndarray  # the ensemble's clean top-N hits per evaluated user
    N: int

    @property
    def precision(self) -> np.ndarray:
        """Certified precision@N per e: the mean of π(u, e) / N (the official printout)."""
        return (self.certified / self.N).mean(0)

    @property
    def recall(self) -> np.ndarray:
        """Certified recall@N per e: the mean of π(u, e) / |I_u|."""
        return (self.certified / self.n_relevant[:, None]).mean(0)

    @property
    def hit_ratio(self) -> np.ndarray:
        """Certified hit ratio@N per e: the share of users with at least one certified hit."""
        return (self.certified > 0).mean(0)

    @property
    def clean(self) -> dict[str, float]:
        """The ensemble's empirical precision, recall and hit ratio at N, with no attack."""
        return {f"precision@{self.N}": float((self.hits / self.N).mean()),
                f"recall@{self.N}": float((self.hits / self.n_relevant).mean()),
                f"hr@{self.N}": float((self.hits > 0).mean())}

    def to_dict(self, per_user: bool = False) -> dict[str, Any]:
        """A JSON-friendly dict: e, certified precision and recall per e, the clean metrics."""
        out: dict[str, Any] = {
            "N": self.N, "n_users": len(self.users), "e": self.e.tolist(),
            "certified_precision": self.precision.tolist(),
            "certified_recall": self.recall.tolist(), "clean": self.clean}
        if per_user:
            out["users"] = self.users.tolist()
            out["certified"] = self.certified.tolist()
        return out


class PORE(Recommender):
    """The PORE ensemble: T base recommenders on random samples of s users, each recommending
    N' items; ``score`` is each item's estimated probability counts / T, ``recommend`` the N
    most frequent unseen items, ``certify`` the certified hits under up to ``max_fake`` fake
    users (Theorem 1).

    Defaults are the official ones (ml-100k: s = 200, N' = 1, N = 10, α = 0.001, SAR) except T:
    the paper uses T = 100,000; the default 1,000 takes about 15 s on one CPU core for ml-100k.
    A smaller T gives looser bounds and so fewer certified hits; set ``T`` for the paper's.
    """

    name = "pore"
    capabilities = Capabilities()
    _param_constraints: ClassVar[dict[str, Any]] = {
        "s": Int(low=1),
        "T": Int(low=1, high=2 ** 31 - 1),
        "n_prime": Int(low=1),
        "N": Int(low=1),
        "alpha": Real(low=0, high=1, closed="neither"),
        "base": None,  # checked in _check_param_combinations: "sar" or a registered model
        "base_params": None,
        "recommend_to": Choice(RECOMMEND_TO),
        "seed": SEED,
        "device": None,  # check_device at fit
        "backend": Choice(BACKENDS),
        "model_chunk": Int(low=1, none_ok=True),
        "user_chunk": Int(low=1),
    }

    def __init__(self, s: int = 200, T: int = 1000, n_prime: int = 1, N: int = 10,
                 alpha: float = 0.001, base: str = "sar", base_params: dict | None = None,
                 recommend_to: str = "sampled", seed: int = 0, device: str | None = None,
                 backend: str = "auto", model_chunk: int | None = None, user_chunk: int = 256):
        self.s = s
        self.T = T
        self.n_prime = n_prime
        self.N = N
        self.alpha = alpha
        self.base = base
        self.base_params = base_params
        self.recommend_to = recommend_to
        self.seed = seed
        self.device = device
        self.backend = backend
        self.model_chunk = model_chunk
        self.user_chunk = user_chunk

    @classmethod
    def _check_param_combinations(cls, values: dict[str, Any]) -> None:
        base, params = values["base"], values["base_params"]
        if not isinstance(base, str):
            raise ParamError("base", f"expected 'sar' or a registered model name, got "
                                     f"{plain(base)}")
        if params is not None and not isinstance(params, dict):
            raise ParamError("base_params", f"expected a dict or None, got {plain(params)}")
        if base.lower() == "sar":
            unknown = sorted(set(params or {}) - set(_SAR_PARAMS))
            if unknown:
                raise ParamError("base_params", f"SAR takes {', '.join(_SAR_PARAMS)}; got "
                                                f"{', '.join(map(str, unknown))}")
            merged = {**_SAR_PARAMS, **(params or {})}
            Choice(SAR_SIMILARITIES).check(merged["similarity"], "base_params.similarity")
            Real(low=0, closed="neither", none_ok=True).check(merged["time_decay_days"],
                                                              "base_params.time_decay_days")
        else:
            from advrec.models.registry import get_model

            try:
                get_model(base)
            except ParamError as exc:
                raise ParamError("base", f"expected 'sar' or a registered model; "
                                         f"{exc.reason}") from None
            if values["recommend_to"] == "all":
                raise ParamError("recommend_to", f"'all' needs a base that recommends from a "
                                                 f"user's own history (sar), not {base!r}")
        if values["n_prime"] > values["N"]:
            raise ParamError("n_prime", f"N' (items per base model) must not exceed N = "
                                        f"{values['N']}, got {values['n_prime']}")
        check_device(values["device"])

    # ------------------------------------------------------------------ fit
    def _fit(self, train: Interactions) -> None:
        n, m = train.shape
        if self.s > n:
            raise ParamError("s", f"must not exceed the number of users ({n}), got {self.s}")
        if self.n_prime > m:
            raise ParamError("n_prime", f"must not exceed the number of items ({m}), got "
                                        f"{self.n_prime}")
        counts = np.zeros((n, m), dtype=np.int32)
        rng = np.random.default_rng(self.seed)
        base_seeds = np.random.default_rng([int(self.seed), 1]).integers(0, 2 ** 31, self.T)
        sar = self.base.lower() == "sar"
        params = {**_SAR_PARAMS, **(self.base_params or {})} if sar else dict(
            self.base_params or {})
        backend = self._backend()
        weights = _sar_weights(train, params["time_decay_days"]) if sar else None
        chunk = self.model_chunk or (64 if sar else 1)
        for start in range(0, self.T, chunk):
            k = min(chunk, self.T - start)
            # uniform s-subsets without replacement: the s smallest of n uniform keys
            keys = rng.random((k, n))
            samples = smallest_keys(keys, self.s)
            if sar:
                sar_recommend(train, samples, self.n_prime, counts,
                              similarity=params["similarity"],
                              time_decay_days=params["time_decay_days"],
                              recommend_to=self.recommend_to, backend=backend,
                              device=self.device, weights=weights)
            else:
                self._fit_registered(train, samples, base_seeds[start:start + k], params,
                                     counts)
        self.counts_ = counts
        self.popularity_ = np.bincount(train.items, minlength=m).astype(np.int64)
        self.n_train_users_ = n

    def _backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        dev = resolve_device(self.device)
        return "torch" if dev.type == "cuda" else "numba"

    def _fit_registered(self, train: Interactions, samples: np.ndarray, seeds: np.ndarray,
                        params: dict, counts: np.ndarray) -> None:
        from advrec.models.registry import get_model

        cls = get_model(self.base)
        names = cls._param_names()
        history = np.diff(train.binary_csr.indptr) > 0
        for sample, seed in zip(samples, seeds, strict=True):  # one model per sample
            kw = dict(params)
            if "seed" in names:
                kw["seed"] = int(seed)
            if "device" in names and self.device is not None and "device" not in kw:
                kw["device"] = self.device
            chosen = np.zeros(train.n_users, dtype=bool)
            chosen[sample] = True
            sub = train.subset(chosen[train.users])
            users = sample[history[sample]]
            model = cls(**kw).fit(sub)
            items, _ = model.recommend(users, k=self.n_prime, exclude_seen=True)
            np.add.at(counts, (np.repeat(users, items.shape[1]), items.reshape(-1)), 1)

    # ------------------------------------------------------------------ score / recommend
    def _score(self, users: torch.Tensor) -> torch.Tensor:
        u = users.cpu().numpy()
        return torch.from_numpy(self.counts_[u].astype(np.float32) / np.float32(self.T))

    def recommend(self, users=None, k: int | None = None, exclude_seen: bool = True,
                  raw_ids: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Each user's ``k`` (default N) most frequent items among the T base models' lists,
        ties to the more popular item in training, then to the lower id; with their estimated
        probabilities counts / T. ``exclude_seen`` drops the user's training items."""
        self._check_fitted()
        k = self.N if k is None else check_int(k, "k", low=1)
        u = self._as_users(users).cpu().numpy()
        items = self._top(u, min(k, self.n_items_), exclude_seen)
        probs = self.counts_[u[:, None], items] / self.T
        if raw_ids:
            items = np.asarray(self.item_ids_)[items]
        return items, probs

    def _top(self, users: np.ndarray, k: int, exclude_seen: bool) -> np.ndarray:
        m = self.n_items_
        out = np.empty((len(users), k), dtype=np.int64)
        pop = self.popularity_
        # one int64 key per item: count, then popularity, then the lower id
        tie = np.unique(pop, return_inverse=True)[1].reshape(-1) * m + (m - 1 - np.arange(m))
        scale = m * m
        for start in range(0, len(users), self.user_chunk):
            rows = users[start:start + self.user_chunk]
            key = self.counts_[rows].astype(np.int64) * scale + tie[None, :]
            if exclude_seen:
                seen = self.seen_[rows]
                key[np.repeat(np.arange(len(rows)), np.diff(seen.indptr)), seen.indices] = -1
            top = np.argpartition(-key, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(key, top, axis=1), axis=1, kind="stable")
            out[start:start + len(rows)] = np.take_along_axis(top, order, axis=1)
        return out

    # ------------------------------------------------------------------ certify
    def certify(self, test: Interactions, max_fake: int = 50, N: int | None = None,
                exclude_seen: bool = True) -> Certificate:
        """The certified hits of every user with a test item, for e = 0..``max_fake`` fake
        users (Theorem 1), and the ensemble's clean hits at ``N`` (default: the model's N).

        ``exclude_seen`` drops each user's training items from the competitors (no base model
        can recommend them, with or without fake users); ``False`` keeps them with the bound
        of a zero count, as the official code does (a slightly looser certificate).
        """
        self._check_fitted()
        if not isinstance(test, Interactions):
            raise DataError(f"certify expects an Interactions, got {type(test).__name__}")
        if test.shape != (self.n_users_, self.n_items_):
            raise DataError(f"test has {test.n_users} users × {test.n_items} items; the model "
                            f"was fitted on {self.n_users_} × {self.n_items_} (use the same id "
                            f"space)")
        max_fake = check_int(max_fake, "max_fake", low=0)
        N = self.N if N is None else check_int(N, "N", low=1)
        rel = test.binary_csr
        n_rel = np.diff(rel.indptr)
        users = np.flatnonzero(n_rel)
        e = np.arange(max_fake + 1)
        certified = certified_hits(
            self.counts_[users], rel[users], self.T, self.s, self.n_train_users_,
            self.n_prime, N, self.alpha, e, exclude=self.seen_[users] if exclude_seen else None,
            recommend_to=self.recommend_to, chunk_size=self.user_chunk)
        top = self._top(users, min(N, self.n_items_), exclude_seen=True)
        hits = np.asarray(rel[users[:, None], top].sum(1)).reshape(-1)
        return Certificate(users, e, certified, n_rel[users], hits, N)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return {"counts": torch.from_numpy(self.counts_.astype(np.float32)),
                "popularity": torch.from_numpy(self.popularity_.astype(np.float32))}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"counts": (self.n_users_, self.n_items_), "popularity": (self.n_items_,)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        counts = state["counts"].numpy()
        if counts.size and (counts.min() < 0 or counts.max() > self.T
                            or not np.array_equal(counts, np.round(counts))):
            raise DataError(f"counts must be integers between 0 and T = {self.T}")
        self.counts_ = counts.astype(np.int32)
        self.popularity_ = state["popularity"].numpy().astype(np.int64)
        self.n_train_users_ = self.n_users_

