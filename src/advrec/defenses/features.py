"""Profile features for detecting fake (shilling) profiles, vectorised over sparse matrices.

Every feature is a number per user profile, computed from the rating data passed in (item means
r̄_i and item counts l_i are those of *that* data, fake profiles included: detectors see the
data as a platform would). Notation: I_u the items u rated, n_u = |I_u|, r̄_i the mean rating
of item i and l_i its number of ratings, both over all profiles of the data.

Generic features (Chirita, Nejdl & Zamfir, WIDM'05; Burke, Mobasher, Williams & Bhaumik, KDD'06):

- ``rdma``   Rating Deviation from Mean Agreement: (1/n_u) Σ_{i∈I_u} |r_ui − r̄_i| / l_i.
- ``wdma``   Weighted Degree of Agreement: (1/n_u) Σ_{i∈I_u} |r_ui − r̄_i| / l_i².
- ``wda``    Weighted Deviation from mean Agreement: Σ_{i∈I_u} |r_ui − r̄_i| / l_i.
- ``length_var``  Length Variance: |n_u − n̄| / Σ_v (n_v − n̄)² (n̄ and the sum over every
  profile of the data; 0 when all profiles have the same length).
- ``degsim`` Degree of Similarity with top neighbours: (1/k) Σ_{v∈kNN(u)} W_uv, the mean
  similarity of u with its k most similar other profiles (k capped at the number of others).
  Default W = Pearson in its sparse form: the cosine of the user-mean-centred rating vectors,
  c_ui = r_ui − r̄_u on rated items and 0 (the user's mean) elsewhere, r̄_u over the whole
  profile. ``similarity="corated_pearson"`` restricts all three sums Σ c_ui c_vi, Σ c_ui²,
  Σ c_vi² to the co-rated items I_u ∩ I_v (Chirita et al.'s textbook Pearson; it saturates at
  ±1 on profiles sharing two or three items, so pair it with the discount);
  ``"cosine"``: raw ratings. ``degsim_discount = d > 0``: the co-rating discount of Burke et al.
  (KDD'06), W_uv · |I_u ∩ I_v| / d when fewer than d items are co-rated.
- ``entropy`` Shannon entropy (bits) of the distribution of rating values in the profile
  (filler ratings drawn around means or set to one value have atypical entropy).

Model-specific features for push attacks (Williams, Mobasher & Burke, UMUAI'07; Burke et al.
KDD'06). r_max is the largest rating in the data. Each profile is split into a target partition
P_T and a filler partition P_F = I_u \\ P_T:

- Average-attack model: P_T = one item t rated r_max, chosen among all of u's items rated r_max
  as the one that minimises ``meanvar`` (exhaustive search over these candidates; as removing t
  leaves Σ_{j≠t} (r_uj − r̄_j)² / (n_u − 1), this is the candidate with the largest
  (r_ut − r̄_t)², ties to the lowest item id). A profile without r_max ratings has P_T = ∅.

  - ``meanvar`` Filler Mean Variance: Σ_{j∈P_F} (r_uj − r̄_j)² / |P_F| (0 when P_F = ∅).
  - ``fmd``     Filler Mean Difference: Σ_{j∈P_F} |r_uj − r̄_j| / |P_F| (0 when P_F = ∅).
  - ``tmf``     Target Model Focus: max_{i∈P_T} F_i with F_i the fraction of all profiles of the
    data whose P_T contains i (0 when P_T = ∅). A target pushed by many fake profiles has a
    high F_i.

- Segment-attack model: P_T = every item u rated r_max, P_F = the rest.

  - ``fmtd`` Filler Mean Target Difference: |mean_{i∈P_T} r_ui − mean_{j∈P_F} r_uj| (0 when
    either partition is empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError

pd = lazy("pandas")
sp = lazy("scipy.sparse")
torch = lazy("torch")

__all__ = ["FEATURES", "GENERIC_FEATURES", "MODEL_FEATURES", "SIMILARITIES", "ProfileFeatures",
           "check_features", "degsim", "profile_features"]

GENERIC_FEATURES = ("rdma", "wdma", "wda", "length_var", "degsim", "entropy")
MODEL_FEATURES = ("meanvar", "fmd", "fmtd", "tmf")
FEATURES = GENERIC_FEATURES + MODEL_FEATURES
SIMILARITIES = ("pearson", "corated_pearson", "cosine")
_BLOCK_ENTRIES = 1 << 22  # dense similarities per DegSim block (32 MiB of float64)


@dataclass(frozen=True, eq=False)
class ProfileFeatures:
    """A feature matrix: ``values[r]`` describes internal user ``users[r]``; columns ``names``.

    ``n_users`` is the size of the data's user id space (rows exist only for users with ratings).
    """

    values: np.ndarray
    names: tuple[str, ...]
    users: np.ndarray
    n_users: int

    def __iter__(self):
        """Unpacks as ``values, names``."""
        return iter((self.values, list(self.names)))

    def column(self, name: str) -> np.ndarray:
        """One feature's values, aligned with :attr:`users`."""
        if name not in self.names:
            raise ConfigError(f"feature {name!r} was not computed; have {list(self.names)}")
        return self.values[:, self.names.index(name)]

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame indexed by internal user id, one column per feature."""
        return pd.DataFrame(self.values, columns=list(self.names),
                            index=pd.Index(self.users, name="user"))


def check_features(features: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validated feature names (None: all of :data:`FEATURES`)."""
    if features is None:
        return FEATURES
    names = (features,) if isinstance(features, str) else tuple(features)
    unknown = [f for f in names if f not in FEATURES]
    if unknown or not names:
        raise ConfigError(f"unknown feature(s) {unknown}; choose from {list(FEATURES)}")
    return tuple(dict.fromkeys(names))


def profile_features(data: Interactions, k: int = 10, features: Sequence[str] | None = None,
                     users=None, similarity: str = "pearson", degsim_discount: int = 0
                     ) -> ProfileFeatures:
    """Detection features of the profiles in ``data`` (formulas: see the module docstring).

    ``users``: internal ids to describe (default: every user with at least one rating); each
    must have ratings. Statistics (item means, counts, neighbours) use every profile of ``data``.
    ``similarity``/``degsim_discount``: how DegSim compares profiles (see :func:`degsim`).
    """
    names = check_features(features)
    if similarity not in SIMILARITIES:
        raise ConfigError(f"unknown DegSim similarity {similarity!r}; choose from {SIMILARITIES}")
    stats = _Stats(data, _check_k(k), int(degsim_discount), similarity)
    rows = stats.rows_of(users)
    values = np.column_stack([getattr(stats, name)[rows] for name in names])
    return ProfileFeatures(values.astype(np.float64), names, stats.active[rows], data.n_users)


def _check_k(k) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError(f"k (DegSim neighbours) must be a positive integer, got {k!r}")
    return int(k)


class _Stats:
    """Per-entry arrays of the active profiles and each feature as a lazily computed column."""

    def __init__(self, data: Interactions, k: int, discount: int, similarity: str) -> None:
        if not isinstance(data, Interactions):
            raise DataError(f"profile features need an Interactions, got {type(data).__name__}")
        if data.ratings is None:
            raise DataError("profile features need ratings: the profiles carry none (implicit "
                            "data)")
        if len(data) == 0:
            raise DataError("profile features need ratings: the data has no interactions")
        if discount < 0:
            raise ConfigError(f"degsim_discount must be >= 0, got {discount}")
        self.data, self.k, self.discount, self.similarity = data, k, discount, similarity
        self.active = data.active_users
        self.x = sp.csr_matrix(data.csr[self.active], dtype=np.float64)
        self.row = np.repeat(np.arange(len(self.active)), np.diff(self.x.indptr))
        self.col = self.x.indices.astype(np.int64)
        self.r = self.x.data
        self.n = np.diff(self.x.indptr).astype(np.float64)
        self.l_i = np.bincount(self.col, minlength=data.n_items).astype(np.float64)
        self.r_max = float(self.r.max())

    def rows_of(self, users) -> np.ndarray:
        """Row positions of the requested internal user ids (all active users by default)."""
        if users is None:
            return np.arange(len(self.active))
        u = np.asarray(users, dtype=np.int64).reshape(-1)
        pos = np.searchsorted(self.active, u)
        ok = (pos < len(self.active)) & (self.active[np.minimum(pos, len(self.active) - 1)] == u)
        if not ok.all():
            raise DataError(f"{int((~ok).sum())} requested profile(s) have no ratings, e.g. "
                            f"internal user {int(u[~ok][0])}")
        return pos

    def _per_user(self, weights: np.ndarray) -> np.ndarray:
        return np.bincount(self.row, weights, minlength=len(self.active))

    # ---------------------------------------------------------------- shared pieces
    @cached_property
    def dev(self) -> np.ndarray:
        """r_ui − r̄_i per stored entry."""
        item_mean = np.bincount(self.col, self.r, minlength=self.data.n_items) / \
            np.maximum(self.l_i, 1.0)
        return self.r - item_mean[self.col]

    @cached_property
    def at_max(self) -> np.ndarray:
        return self.r == self.r_max

    @cached_property
    def target(self) -> np.ndarray:
        """Average-model target per profile: the entry index of t, or -1 where P_T = ∅."""
        cand = np.flatnonzero(self.at_max)
        order = np.lexsort((self.col[cand], -self.dev[cand] ** 2, self.row[cand]))
        cand = cand[order]
        first = np.r_[True, self.row[cand][1:] != self.row[cand][:-1]]
        out = np.full(len(self.active), -1, np.int64)
        out[self.row[cand[first]]] = cand[first]
        return out

    def _filler_mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of ``values`` (per entry) over the average-model filler partition P_F."""
        total = self._per_user(values)
        has_t = self.target >= 0
        total[has_t] -= values[self.target[has_t]]
        size = self.n - has_t
        return np.divide(total, size, out=np.zeros_like(total), where=size > 0)

    # ---------------------------------------------------------------- generic features
    @cached_property
    def rdma(self) -> np.ndarray:
        return self._per_user(np.abs(self.dev) / self.l_i[self.col]) / self.n

    @cached_property
    def wdma(self) -> np.ndarray:
        return self._per_user(np.abs(self.dev) / self.l_i[self.col] ** 2) / self.n

    @cached_property
    def wda(self) -> np.ndarray:
        return self._per_user(np.abs(self.dev) / self.l_i[self.col])

    @cached_property
    def length_var(self) -> np.ndarray:
        gap = self.n - self.n.mean()
        total = float((gap ** 2).sum())
        return np.abs(gap) / total if total > 0 else np.zeros_like(gap)

    @cached_property
    def entropy(self) -> np.ndarray:
        levels, code = np.unique(self.r, return_inverse=True)
        counts = np.bincount(self.row * len(levels) + code,
                             minlength=len(self.active) * len(levels))
        p = counts.reshape(len(self.active), len(levels)) / self.n[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log2(p), 0.0).sum(1)

    @cached_property
    def degsim(self) -> np.ndarray:
        return degsim(self.x, self.k, self.similarity, self.discount)

    # ---------------------------------------------------------------- model-specific features
    @cached_property
    def meanvar(self) -> np.ndarray:
        return self._filler_mean(self.dev ** 2)

    @cached_property
    def fmd(self) -> np.ndarray:
        return self._filler_mean(np.abs(self.dev))

    @cached_property
    def fmtd(self) -> np.ndarray:
        n_t = self._per_user(self.at_max.astype(np.float64))
        s_t = self._per_user(np.where(self.at_max, self.r, 0.0))
        n_f, s_f = self.n - n_t, self._per_user(self.r) - s_t
        ok = (n_t > 0) & (n_f > 0)
        diff = s_t / np.maximum(n_t, 1) - s_f / np.maximum(n_f, 1)
        return np.where(ok, np.abs(diff), 0.0)

    @cached_property
    def tmf(self) -> np.ndarray:
        has_t = self.target >= 0
        t_items = self.col[self.target[has_t]]
        focus = np.bincount(t_items, minlength=self.data.n_items) / len(self.active)
        out = np.zeros(len(self.active))
        out[has_t] = focus[t_items]
        return out


# ----------------------------------------------------------------------------- DegSim
def _centre_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    """Each stored rating minus its row's mean (the sparsity pattern is kept)."""
    counts = np.diff(x.indptr)
    means = np.asarray(x.sum(axis=1)).ravel() / np.maximum(counts, 1)
    out = x.copy()
    out.data = out.data - np.repeat(means, counts)
    return out


def _unit_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    out = x.copy()
    out.data = out.data / np.repeat(np.where(norms > 0, norms, 1.0), np.diff(x.indptr))
    return out


class _Similarity:
    """Blocks of user-user similarities from sparse products (see :func:`degsim`)."""

    def __init__(self, x: sp.csr_matrix, similarity: str) -> None:
        self.similarity = similarity
        self.b = x.copy()
        self.b.data = np.ones_like(self.b.data)
        c = x if similarity == "cosine" else _centre_rows(x)
        if similarity == "corated_pearson":
            self.c, self.q = c, c.multiply(c).tocsr()
        else:
            self.c = _unit_rows(c)

    def block(self, lo: int, hi: int) -> np.ndarray:
        num = (self.c[lo:hi] @ self.c.T).toarray()
        if self.similarity != "corated_pearson":
            return num
        den = np.sqrt((self.q[lo:hi] @ self.b.T).toarray() * (self.b[lo:hi] @ self.q.T).toarray())
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    def co_rated(self, lo: int, hi: int) -> np.ndarray:
        return (self.b[lo:hi] @ self.b.T).toarray()


def degsim(x: sp.csr_matrix, k: int = 10, similarity: str = "pearson",
           discount: int = 0) -> np.ndarray:
    """Mean similarity of each row of ``x`` (users × items ratings) to its k most similar others.

    ``similarity``: ``"pearson"`` (default; cosine of the user-mean-centred rows over all items,
    an unrated item counting as the user's mean: the sparse form of Pearson used by the kNN
    models), ``"corated_pearson"`` (Pearson over the co-rated items only, each user's mean over
    the whole profile) or ``"cosine"`` (raw ratings). ``discount = d > 0`` multiplies W_uv by
    |I_u ∩ I_v| / d below d co-rated items (Burke et al., KDD'06). Computed in row blocks
    (block × n similarities at a time) with sparse products; top-k by ``torch.topk``.
    """
    if similarity not in SIMILARITIES:
        raise ConfigError(f"unknown DegSim similarity {similarity!r}; choose from {SIMILARITIES}")
    n = x.shape[0]
    kk = min(k, n - 1)
    out = np.zeros(n)
    if kk < 1:
        return out
    sim = _Similarity(sp.csr_matrix(x, dtype=np.float64), similarity)
    step = max(1, _BLOCK_ENTRIES // n)
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        w = sim.block(lo, hi)
        if discount > 0:
            w *= np.minimum(sim.co_rated(lo, hi), discount) / discount
        w[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf
        top = torch.topk(torch.from_numpy(w), kk, dim=1, sorted=False).values
        out[lo:hi] = top.mean(1).numpy()
    return out
