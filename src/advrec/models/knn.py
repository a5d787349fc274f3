"""User- and item-based k-nearest-neighbour collaborative filtering: the classic shilling victims.

UserKNN (Resnick et al., CSCW'94; Herlocker et al., SIGIR'99) and ItemKNN (Sarwar et al., WWW'01)
with cosine, Pearson and adjusted-cosine similarities, significance shrinkage and a top-k
neighbourhood, all computed with sparse matrix products in row blocks (memory: block × n
similarities at a time), never with Python loops over users or items.

Conventions (see ``docs/models.md``, "Neighbourhood models and rating MF"):

- Similarities are cosines between the rows of an *entity* matrix E (UserKNN: users × items,
  ItemKNN: items × users), after centring: ``pearson`` subtracts each entity's own mean rating
  (UserKNN: user mean, ItemKNN: item mean), ``adjusted_cosine`` the mean of the other side
  (ItemKNN: user mean, Sarwar et al.; UserKNN: item mean). Means and norms are over all of an
  entity's ratings, not only the co-rated ones (the usual sparse, practical form of Pearson).
- Shrinkage: sim · n / (n + shrinkage), n = number of co-rating users/items; entities with
  n < ``min_support`` are not neighbours. Neighbours are the k largest non-zero similarities
  (self excluded; |sim| < 1e-10 counts as 0; ties at the k-th value go to the lower internal id).
- Rating prediction is mean-centred (Resnick): UserKNN r̂_ui = r̄_u + Σ_v s_uv (r_vi − r̄_v) / Σ_v
  |s_uv| over v ∈ N_k(u) who rated i; ItemKNN r̂_ui = r̄_i + Σ_j s_ij (r_uj − r̄_j) / Σ_j |s_ij|
  over j ∈ N_k(i) rated by u. Without such neighbours the baseline (r̄_u, resp. r̄_i) is
  returned; an entity without training ratings falls back to the user mean, then the global mean.
  Predictions are clipped to the training rating range.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError
from advrec.models.base import Recommender

SIMILARITIES = ("cosine", "pearson", "adjusted_cosine")
SCORE_WITH = ("binary", "ratings")
_BLOCK_ENTRIES = 1 << 22  # dense entries per block (rows × n): 32 MiB of float64
SIM_EPS = 1e-10  # |similarity| below this is rounding noise (e.g. centred dot products), i.e. 0


# ----------------------------------------------------------------------------- sparse helpers
def _row_of_entries(m: sp.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))


def row_means(m: sp.csr_matrix, default: float) -> np.ndarray:
    """Mean of each row's stored entries; ``default`` for rows with none."""
    counts = np.diff(m.indptr)
    sums = np.asarray(m.sum(axis=1), dtype=np.float64).ravel()
    return np.divide(sums, counts, out=np.full(m.shape[0], float(default)), where=counts > 0)


def centre(m: sp.csr_matrix, means: np.ndarray, axis: int) -> sp.csr_matrix:
    """A copy of ``m`` minus ``means`` on its stored entries only (axis 1: row means, 0: column
    means). Entries that become 0 stay stored, so the sparsity pattern (who rated what) is kept."""
    out = sp.csr_matrix(m, dtype=np.float64, copy=True)
    out.data -= means[_row_of_entries(out)] if axis == 1 else means[out.indices]
    return out


def pattern(m: sp.csr_matrix) -> sp.csr_matrix:
    """The 0/1 matrix of ``m``'s stored entries (explicit zeros count as stored)."""
    out = sp.csr_matrix(m, dtype=np.float64, copy=True)
    out.data[:] = 1.0
    return out


def _scale_rows(m: sp.csr_matrix, factors: np.ndarray) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float64, copy=True)
    out.data *= factors[_row_of_entries(out)]
    return out


def top_k_mask(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's ``k`` largest non-zero entries, row-major, columns ascending.

    Ties at the k-th largest value go to the lower column, so the choice is deterministic.
    """
    key = torch.from_numpy(np.where(s != 0, s, -np.inf))
    kk = min(int(k), key.shape[1])
    kth = torch.topk(key, kk, dim=1, sorted=False).values.amin(1, keepdim=True)
    above = key > kth
    tie = key == kth
    tie[kth.ravel() == -torch.inf] = False  # fewer than k candidates: all are above the k-th
    excess = torch.nonzero(tie.sum(1) > kk - above.sum(1)).ravel()
    if len(excess):  # rare: more ties at the k-th value than free slots; lowest ids win
        need = kk - above[excess].sum(1, keepdim=True)
        tie[excess] &= tie[excess].cumsum(1) <= need
    rows, cols = (above | tie).nonzero(as_tuple=True)
    return rows.numpy(), cols.numpy()


def knn_graph(x: sp.csr_matrix, k: int, shrinkage: float = 0.0,
              min_support: int = 1) -> sp.csr_matrix:
    """Each row's top-``k`` cosine neighbours among the other rows of ``x``: an n × n CSR (float64).

    Cosine over the stored entries of ``x`` (centre it first for Pearson/adjusted cosine);
    shrinkage and support count the columns two rows share (stored entries, zeros included).
    Computed in row blocks: ``block × n`` similarities exist at a time.
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    n = x.shape[0]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    xn = _scale_rows(x, np.divide(1.0, norms, out=np.zeros(n), where=norms > 0))
    xt = xn.T.tocsr()
    support = shrinkage > 0 or min_support > 1
    b = pattern(x) if support else None
    bt = b.T.tocsr() if support else None
    step = max(1, _BLOCK_ENTRIES // max(n, 1))
    rows, cols, vals = [], [], []
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        s = (xn[lo:hi] @ xt).toarray()
        if support:
            s = _apply_support(s, (b[lo:hi] @ bt).toarray(), shrinkage, min_support)
        s[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
        s[np.abs(s) < SIM_EPS] = 0.0
        r, c = top_k_mask(s, k)
        rows.append(r + lo)
        cols.append(c)
        vals.append(s[r, c])
    cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))  # noqa: E731
    return sp.csr_matrix((cat(vals, np.float64), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=(n, n))


def _apply_support(s: np.ndarray, common: np.ndarray, shrinkage: float,
                   min_support: int) -> np.ndarray:
    """Shrink similarities by n/(n + shrinkage) and zero those with n < ``min_support``."""
    if shrinkage > 0:
        s *= common / (common + shrinkage)
    if min_support > 1:
        s[common < min_support] = 0.0
    return s


# ----------------------------------------------------------------------------- pair helpers
def check_pairs(model: Recommender, users, items) -> tuple[np.ndarray, np.ndarray]:
    """Aligned internal (user, item) id arrays, checked against the fitted model's id space."""
    u = np.asarray(users, dtype=np.int64).reshape(-1)
    i = np.asarray(items, dtype=np.int64).reshape(-1)
    if u.shape != i.shape:
        raise DataError(f"users and items must have equal length, got {len(u)} and {len(i)}")
    for ids, n, what in ((u, model.n_users_, "user"), (i, model.n_items_, "item")):
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise DataError(f"{what} ids must be internal ids in 0..{n - 1}")
    return u, i


def _csr_tensors(m: sp.csr_matrix, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.indptr": torch.from_numpy(m.indptr.astype(np.int64)),
            f"{prefix}.indices": torch.from_numpy(m.indices.astype(np.int64)),
            f"{prefix}.data": torch.from_numpy(m.data.astype(np.float64))}


def _csr_from(state: dict[str, torch.Tensor], prefix: str, shape: tuple[int, int]
              ) -> sp.csr_matrix:
    return sp.csr_matrix((state[f"{prefix}.data"].numpy(), state[f"{prefix}.indices"].numpy(),
                          state[f"{prefix}.indptr"].numpy()), shape=shape)


# ----------------------------------------------------------------------------- models
class _NeighbourhoodModel(Recommender):
    """What UserKNN and ItemKNN share: parameters, similarity graph, prediction, persistence.

    Subclasses set ``_by_user`` (neighbours among users, or among items). Learned state:
    ``knn_`` (n × n CSR of kept similarities, row = entity, columns = its neighbours),
    ``ratings_`` (training users × items CSR; 1.0 everywhere on implicit data), ``user_mean_``,
    ``item_mean_``, ``global_mean_`` and the rating range used to clip predictions.
    """

    _by_user: ClassVar[bool] = True

    def __init__(self, k: int = 40, similarity: str = "cosine", shrinkage: float = 0.0,
                 min_support: int = 1, score_with: str = "binary", seed: int = 0):
        self.k = k
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.min_support = min_support
        self.score_with = score_with
        self.seed = seed

    # ------------------------------------------------------------------ checks
    def _check_params(self, train: Interactions) -> None:
        if isinstance(self.k, bool) or int(self.k) != self.k or self.k < 1:
            raise ConfigError(f"k must be a positive integer (neighbours kept), got {self.k!r}")
        if self.similarity not in SIMILARITIES:
            raise ConfigError(f"unknown similarity {self.similarity!r}; "
                              f"expected one of {SIMILARITIES}")
        if not self.shrinkage >= 0:
            raise ConfigError(f"shrinkage must be >= 0, got {self.shrinkage!r}")
        if int(self.min_support) != self.min_support or self.min_support < 1:
            raise ConfigError(f"min_support must be a positive integer, got {self.min_support!r}")
        if self.score_with not in SCORE_WITH:
            raise ConfigError(f"unknown score_with {self.score_with!r}; "
                              f"expected one of {SCORE_WITH}")
        if not train.has_ratings and self.similarity != "cosine":
            raise ConfigError(
                f"similarity {self.similarity!r} centres ratings on a mean, but "
                f"{train.name or 'the data'} is implicit (every value is 1.0): centred values are "
                f"all 0 and every similarity would be 0/undefined; use similarity='cosine' on "
                f"implicit data")

    # ------------------------------------------------------------------ fit
    def _fit(self, train: Interactions, **kwargs) -> None:
        self._check_params(train)
        r = sp.csr_matrix(train.csr, dtype=np.float64)
        self.global_mean_ = float(r.data.mean())
        self.user_mean_ = row_means(r, self.global_mean_)
        self.item_mean_ = row_means(r.T.tocsr(), self.global_mean_)
        self.rating_range_ = (float(r.data.min()), float(r.data.max()))
        self.ratings_ = r
        self.knn_ = knn_graph(self._entity_matrix(r), int(self.k), float(self.shrinkage),
                              int(self.min_support))
        self._prepare()

    def _entity_matrix(self, r: sp.csr_matrix) -> sp.csr_matrix:
        """Rows = the entities whose neighbours are sought, centred as the similarity asks."""
        own, other = ((self.user_mean_, self.item_mean_) if self._by_user
                      else (self.item_mean_, self.user_mean_))
        e = r if self._by_user else r.T.tocsr()
        if self.similarity == "pearson":
            return centre(e, own, axis=1)
        if self.similarity == "adjusted_cosine":
            return centre(e, other, axis=0)
        return e

    def _prepare(self) -> None:
        """Derived matrices for predict/score (recomputed after load, never saved)."""
        r = self.ratings_
        self._binary = pattern(r)
        self._item_rated = np.diff(r.tocsc().indptr) > 0
        if self._by_user:  # r_vi − r̄_v, summed over neighbours v: W @ C
            self._centred = centre(r, self.user_mean_, axis=1)
            self._knn_abs = abs(self.knn_).tocsr()
        else:  # r_uj − r̄_j, summed over neighbours j of i: C @ Wᵀ
            self._centred = centre(r, self.item_mean_, axis=0)
            self._knn_t = self.knn_.T.tocsr()
            self._knn_abs_t = abs(self.knn_).T.tocsr()

    # ------------------------------------------------------------------ rating prediction
    def _neighbour_sums(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``[len(users), n_items]`` numerator Σ s·(r − mean) and denominator Σ |s|."""
        if self._by_user:
            w = self.knn_[users]
            return (w @ self._centred).toarray(), (abs(w) @ self._binary).toarray()
        return ((self._centred[users] @ self._knn_t).toarray(),
                (self._binary[users] @ self._knn_abs_t).toarray())

    def _baseline(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """r̄_u (UserKNN) or r̄_i, falling back to r̄_u for items without training ratings."""
        if self._by_user:
            return self.user_mean_[users]
        return np.where(self._item_rated[items], self.item_mean_[items], self.user_mean_[users])

    def predict(self, users, items) -> np.ndarray:
        """Predicted ratings of aligned (user, item) internal-id pairs, clipped to the training
        range; pairs are processed in chunks of users (one sparse product per chunk)."""
        self._check_fitted()
        u, i = check_pairs(self, users, items)
        out = np.empty(len(u), dtype=np.float64)
        order = np.argsort(u, kind="stable")
        uniq, first = np.unique(u[order], return_index=True)
        bounds = np.r_[first, len(u)]
        step = max(1, _BLOCK_ENTRIES // max(self.n_items_, 1))
        for c in range(0, len(uniq), step):
            chunk = uniq[c:c + step]
            lo, hi = bounds[c], bounds[c + len(chunk)]
            local = np.repeat(np.arange(len(chunk)), np.diff(bounds[c:c + len(chunk) + 1]))
            pu, pi = u[order[lo:hi]], i[order[lo:hi]]
            num, den = (a[local, pi] for a in self._neighbour_sums(chunk))
            base = self._baseline(pu, pi)
            safe = np.where(den > 0, den, 1.0)
            out[order[lo:hi]] = np.where(den > 0, base + num / safe, base)
        return np.clip(out, *self.rating_range_)

    # ------------------------------------------------------------------ top-N
    def _score(self, users: torch.Tensor, **kwargs) -> torch.Tensor:
        """UserKNN: Σ_{v∈N_k(u)} s_uv x_vi; ItemKNN: Σ_{j∈N_k(i)} s_ij x_uj (x: binary/ratings)."""
        x = self._binary if self.score_with == "binary" else self.ratings_
        rows = users.cpu().numpy()
        s = (self.knn_[rows] @ x) if self._by_user else (x[rows] @ self._knn_t)
        return torch.from_numpy(s.toarray().astype(np.float32))

    @property
    def similarity_matrix(self) -> sp.csr_matrix:
        """The kept neighbour similarities (n × n CSR; row = entity, columns = its neighbours)."""
        self._check_fitted()
        return self.knn_

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        stats = [self.global_mean_, *self.rating_range_]
        return {**_csr_tensors(self.knn_, "knn"), **_csr_tensors(self.ratings_, "ratings"),
                "user_mean": torch.from_numpy(self.user_mean_),
                "item_mean": torch.from_numpy(self.item_mean_),
                "stats": torch.tensor(stats, dtype=torch.float64)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        n = self.n_users_ if self._by_user else self.n_items_
        self.knn_ = _csr_from(state, "knn", (n, n))
        self.ratings_ = _csr_from(state, "ratings", (self.n_users_, self.n_items_))
        self.user_mean_ = state["user_mean"].double().numpy()
        self.item_mean_ = state["item_mean"].double().numpy()
        if len(self.user_mean_) != self.n_users_ or len(self.item_mean_) != self.n_items_:
            raise ValueError("user/item means do not match the id maps")
        mean, lo, hi = state["stats"].tolist()
        self.global_mean_, self.rating_range_ = mean, (lo, hi)
        self._prepare()


class UserKNN(_NeighbourhoodModel):
    """User-based kNN (Resnick et al. CSCW'94, Herlocker et al. SIGIR'99): similar users' ratings.

    ``similarity``: "cosine", "pearson" (user-mean centred) or "adjusted_cosine" (item-mean
    centred); ``shrinkage``/``min_support`` damp similarities with few co-rated items;
    ``score_with`` picks binary or rating values for top-N scores. Fitting is deterministic;
    ``seed`` is kept only for the common model contract.
    """

    name = "userknn"
    _by_user = True


class ItemKNN(_NeighbourhoodModel):
    """Item-based kNN (Sarwar et al. WWW'01): the user's own ratings of items similar to i.

    ``similarity``: "cosine", "pearson" (item-mean centred) or "adjusted_cosine" (user-mean
    centred, Sarwar et al.); other parameters as in :class:`UserKNN`.
    """

    name = "itemknn"
    _by_user = False
