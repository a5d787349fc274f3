"""User- and item-based k-nearest-neighbour collaborative filtering: the classic shilling victims.

UserKNN (Resnick et al., CSCW'94; Herlocker et al., SIGIR'99) and ItemKNN (Sarwar et al., WWW'01)
with cosine, Pearson and adjusted-cosine similarities, significance shrinkage and a top-k
neighbourhood, all computed with sparse matrix products in row blocks (memory: block × n
similarities at a time) and batched gathers, never with Python loops over users or items.

Conventions (see ``docs/models.md``, "Neighbourhood models and rating MF"):

- Similarities are cosines between the rows of an *entity* matrix E (UserKNN: users × items,
  ItemKNN: items × users), after centring: ``pearson`` subtracts each entity's own mean rating
  (UserKNN: user mean, ItemKNN: item mean), ``adjusted_cosine`` the mean of the other side
  (ItemKNN: user mean, Sarwar et al.; UserKNN: item mean). Means and norms are over all of an
  entity's ratings, not only the co-rated ones (the usual sparse, practical form of Pearson).
- Shrinkage: sim · n / (n + shrinkage), n = number of co-rating users/items; entities with
  n < ``min_support`` are not neighbours. Neighbours are the k largest non-zero similarities
  (self excluded; |sim| < 1e-10 counts as 0; ties at the k-th value go to the lower internal id).
- Rating prediction, ``neighbourhood="rated"`` (default, the textbook rules): UserKNN
  r̂_ui = r̄_u + Σ_v s_uv (r_vi − r̄_v) / Σ_v |s_uv| over N_k(u; i), the k users most similar to
  u among those who rated i (Herlocker et al.); ItemKNN r̂_ui = Σ_j s_ij r_uj / Σ_j |s_ij| over
  N_k(i; u), the k items most similar to i among those u rated (Sarwar et al.). Only positive
  similarities are neighbours here (a negative weight would take Sarwar's weighted average off
  the rating scale). Without such neighbours: the user mean (the global mean for a user without
  ratings). Needs the full n × n similarity matrix (dense float32, at most
  ``MAX_DENSE_ENTITIES`` entities).
- ``neighbourhood="global"``: one precomputed top-k per entity, intersected with who rated i /
  what u rated; UserKNN as above, ItemKNN centred on the item: r̂_ui = r̄_i + Σ_j s_ij (r_uj −
  r̄_j) / Σ_j |s_ij| over j ∈ N_k(i) rated by u. Baseline r̄_u, resp. r̄_i (r̄_u for an item without
  training ratings, then the global mean).
- Predictions are clipped to the training rating range. Top-N ``score`` always uses the global
  neighbourhoods; ``neighbourhood`` only changes ``predict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, IdError
from advrec.models.base import Capabilities, Recommender, id_array
from advrec.validation import Choice, Int, Real

sp = lazy("scipy.sparse")
torch = lazy("torch")

SIMILARITIES = ("cosine", "pearson", "adjusted_cosine")
SCORE_WITH = ("binary", "ratings")
NEIGHBOURHOODS = ("rated", "global")
MAX_DENSE_ENTITIES = 20_000  # "rated" stores n × n float32 similarities: 1.6 GB at this n
_BLOCK_ENTRIES = 1 << 22  # dense entries per block (rows × n): 32 MiB of float64
_PAIR_ENTRIES = 1 << 17  # (pair, candidate) entries per "rated" chunk (cache-sized: fastest)
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


def top_k_keep(key: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of each row's ``k`` largest entries of ``key`` (-inf = not a candidate).

    Ties at the k-th largest value go to the lower column, so the choice is deterministic.
    """
    kk = min(int(k), key.shape[1])
    kth = torch.topk(key, kk, dim=1, sorted=False).values.amin(1, keepdim=True)
    keep = key >= kth.clamp(min=torch.finfo(key.dtype).min)  # -inf never kept
    excess = torch.nonzero(keep.sum(1) > kk).ravel()
    if len(excess):  # rare: more ties at the k-th value than free slots; lowest ids win
        rows, th = key[excess], kth[excess]
        above, tie = rows > th, rows == th
        tie &= tie.cumsum(1) <= kk - above.sum(1, keepdim=True)
        keep[excess] = above | tie
    return keep


def top_k_mask(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's ``k`` largest non-zero entries, row-major, columns ascending.

    Ties at the k-th largest value go to the lower column, so the choice is deterministic.
    """
    rows, cols = top_k_keep(torch.from_numpy(np.where(s != 0, s, -np.inf)), k).nonzero(
        as_tuple=True)
    return rows.numpy(), cols.numpy()


def similarity_blocks(x: sp.csr_matrix, shrinkage: float = 0.0, min_support: int = 1
                      ) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, dense ``rows × n`` float64 slab) of the cosine similarities of ``x``'s rows.

    Cosine over the stored entries of ``x`` (centre it first for Pearson/adjusted cosine);
    shrinkage and support count the columns two rows share (stored entries, zeros included).
    The diagonal and |s| < ``SIM_EPS`` are 0. Slabs hold at most ~``_BLOCK_ENTRIES`` values.
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
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        s = (xn[lo:hi] @ xt).toarray()
        if support:
            s = _apply_support(s, (b[lo:hi] @ bt).toarray(), shrinkage, min_support)
        s[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
        s[np.abs(s) < SIM_EPS] = 0.0
        yield lo, s


def top_k_graph(blocks: Iterable[tuple[int, np.ndarray]], n: int, k: int) -> sp.csr_matrix:
    """The n × n CSR (float64) of each row's top-``k`` non-zero entries of the slabs."""
    rows, cols, vals = [], [], []
    for lo, s in blocks:
        r, c = top_k_mask(s, k)
        rows.append(r + lo)
        cols.append(c)
        vals.append(s[r, c])
    cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))  # noqa: E731
    return sp.csr_matrix((cat(vals, np.float64), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=(n, n))


def knn_graph(x: sp.csr_matrix, k: int, shrinkage: float = 0.0,
              min_support: int = 1) -> sp.csr_matrix:
    """Each row's top-``k`` cosine neighbours among the other rows of ``x``: an n × n CSR (float64).

    See :func:`similarity_blocks`; ``block × n`` similarities exist at a time.
    """
    return top_k_graph(similarity_blocks(x, shrinkage, min_support), x.shape[0], k)


def copy_into(blocks: Iterable[tuple[int, np.ndarray]], out: np.ndarray
              ) -> Iterator[tuple[int, np.ndarray]]:
    """Pass the slabs through, writing each into rows ``lo:lo + len(slab)`` of ``out``."""
    for lo, s in blocks:
        out[lo:lo + len(s)] = s
        yield lo, s


def dense_similarity(x: sp.csr_matrix, shrinkage: float = 0.0,
                     min_support: int = 1) -> np.ndarray:
    """All similarities of :func:`similarity_blocks` as a dense n × n float32 array."""
    out = np.empty((x.shape[0], x.shape[0]), dtype=np.float32)
    for _ in copy_into(similarity_blocks(x, shrinkage, min_support), out):
        pass
    return out


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
    """Aligned internal (user, item) id arrays, checked against the fitted model's id space
    (floats such as 0.7 are refused, not truncated; an :class:`IdError` names the argument)."""
    u = id_array(users, "users", model.n_users_).reshape(-1)
    i = id_array(items, "items", model.n_items_).reshape(-1)
    if u.shape != i.shape:
        raise IdError("items", f"users and items must have equal length, got {len(u)} and "
                               f"{len(i)}")
    return u, i


def _csr_tensors(m: sp.csr_matrix, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.indptr": torch.from_numpy(m.indptr.astype(np.int64)),
            f"{prefix}.indices": torch.from_numpy(m.indices.astype(np.int64)),
            f"{prefix}.data": torch.from_numpy(m.data.astype(np.float64))}


def _csr_from(state: dict[str, torch.Tensor], prefix: str, shape: tuple[int, int]
              ) -> sp.csr_matrix:
    return sp.csr_matrix((state[f"{prefix}.data"].numpy(), state[f"{prefix}.indices"].numpy(),
                          state[f"{prefix}.indptr"].numpy()), shape=shape)


# ----------------------------------------------------------------------------- rated neighbourhoods
def width_chunks(widths: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``[lo, hi)`` ranges of ascending ``widths`` with (hi − lo) · max(width, 1) ≤
    ``budget`` (at least one element per range)."""
    w = np.maximum(widths, 1)
    lo = 0
    while lo < len(w):
        window = w[lo:lo + max(1, budget // int(w[lo]))]
        cost = np.arange(1, len(window) + 1) * window
        hi = lo + max(1, int(np.searchsorted(cost, budget, side="right")))
        yield lo, hi
        lo = hi


def rated_sums(sim: np.ndarray, cand: sp.csr_matrix, a: np.ndarray, b: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Σ s·v and Σ s over each pair's top-``k`` candidates, for the pairs (a, b) of one chunk.

    The candidates of pair p are the stored columns c of row ``b[p]`` of ``cand`` (values v),
    weighted by ``sim[a[p], c]``; the k largest positive weights are kept (ties: lower c). Pairs
    are padded to the widest one; padding points at ``sim[a, a]``, which is 0 (self).
    """
    n = sim.shape[1]
    start, width = cand.indptr[b], np.diff(cand.indptr)[b]
    pos = np.arange(max(int(width.max()), 1))
    valid = pos[None, :] < width[:, None]
    at = np.where(valid, start[:, None] + pos[None, :], 0)
    flat = np.where(valid, cand.indices[at], a[:, None]) + (a * n)[:, None]
    s = np.take(sim.reshape(-1), flat)
    if len(pos) > k:  # more candidates than neighbours: keep the k largest
        key = torch.from_numpy(np.where(s > 0, s, -np.inf).astype(s.dtype, copy=False))
        s = np.where(top_k_keep(key, k).numpy(), s, 0)
    w = np.maximum(s, 0).astype(np.float64)
    return np.einsum("pc,pc->p", w, cand.data[at]), w.sum(1)


# ----------------------------------------------------------------------------- models
class _NeighbourhoodModel(Recommender):
    """What UserKNN and ItemKNN share: parameters, similarity graph, prediction, persistence.

    Subclasses set ``_by_user`` (neighbours among users, or among items). Learned state:
    ``knn_`` (n × n CSR of kept similarities, row = entity, columns = its neighbours),
    ``ratings_`` (training users × items CSR; 1.0 everywhere on implicit data), ``user_mean_``,
    ``item_mean_``, ``global_mean_``, the rating range used to clip predictions and, with
    ``neighbourhood="rated"``, ``full_similarity_`` (every similarity, dense n × n float32;
    derived, recomputed on load, never saved).
    """

    _by_user: ClassVar[bool] = True
    capabilities = Capabilities(rating_prediction=True)  # fit takes no options
    _param_constraints: ClassVar[dict[str, Any]] = {
        "k": Int(low=1),
        "similarity": Choice(SIMILARITIES),
        "shrinkage": Real(low=0),
        "min_support": Int(low=1),
        "score_with": Choice(SCORE_WITH),
        "neighbourhood": Choice(NEIGHBOURHOODS),
        "seed": Int(none_ok=True),  # unused: fitting is deterministic
    }

    def __init__(self, k: int = 40, similarity: str = "cosine", shrinkage: float = 0.0,
                 min_support: int = 1, score_with: str = "binary", neighbourhood: str = "rated",
                 seed: int = 0):
        self.k = k
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.min_support = min_support
        self.score_with = score_with
        self.neighbourhood = neighbourhood
        self.seed = seed

    # ------------------------------------------------------------------ checks
    def _check_params(self, train: Interactions) -> None:
        """What depends on the data (each parameter is checked on its own by validate_params)."""
        self._check_neighbourhood(train.n_users if self._by_user else train.n_items)
        if not train.has_ratings and self.similarity != "cosine":
            raise ConfigError(
                f"similarity {self.similarity!r} centres ratings on a mean, but "
                f"{train.name or 'the data'} is implicit (every value is 1.0): centred values are "
                f"all 0 and every similarity would be 0/undefined; use similarity='cosine' on "
                f"implicit data")

    def _check_neighbourhood(self, n: int) -> None:
        if self.neighbourhood not in NEIGHBOURHOODS:
            raise ConfigError(f"unknown neighbourhood {self.neighbourhood!r}; "
                              f"expected one of {NEIGHBOURHOODS}")
        if self.neighbourhood == "rated" and n > MAX_DENSE_ENTITIES:
            what = "users" if self._by_user else "items"
            raise ConfigError(
                f"neighbourhood='rated' keeps all {n} × {n} {what} similarities in memory "
                f"({4 * n * n / 2 ** 30:.1f} GiB; limit {MAX_DENSE_ENTITIES} {what}); use "
                f"neighbourhood='global' (one precomputed top-k per entity) on data this large")

    # ------------------------------------------------------------------ fit
    def _fit(self, train: Interactions) -> None:
        self._check_params(train)
        r = sp.csr_matrix(train.csr, dtype=np.float64)
        self.global_mean_ = float(r.data.mean())
        self.user_mean_ = row_means(r, self.global_mean_)
        self.item_mean_ = row_means(r.T.tocsr(), self.global_mean_)
        self.rating_range_ = (float(r.data.min()), float(r.data.max()))
        self.ratings_ = r
        e = self._entity_matrix(r)
        blocks = similarity_blocks(e, float(self.shrinkage), int(self.min_support))
        self.full_similarity_ = None
        if self.neighbourhood == "rated":  # one pass: the full matrix and its top-k
            self.full_similarity_ = np.empty((e.shape[0], e.shape[0]), dtype=np.float32)
            blocks = copy_into(blocks, self.full_similarity_)
        self.knn_ = top_k_graph(blocks, e.shape[0], int(self.k))
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
        if self.neighbourhood == "rated":
            self._prepare_rated()

    def _prepare_rated(self) -> None:
        """Candidates per query row: UserKNN item i → its raters v with r_vi − r̄_v; ItemKNN
        user u → the items j u rated with r_uj (CSR, columns ascending)."""
        cand = (self._centred.T.tocsr() if self._by_user
                else sp.csr_matrix(self.ratings_, copy=True))
        cand.sort_indices()
        cand.indptr = cand.indptr.astype(np.int64)
        cand.indices = cand.indices.astype(np.int64)
        self._candidates = cand

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
        range, by the ``neighbourhood`` rule (see the module docstring)."""
        self._check_fitted()
        u, i = check_pairs(self, users, items)
        rule = self._predict_rated if self.neighbourhood == "rated" else self._predict_global
        return np.clip(rule(u, i), *self.rating_range_)

    def _predict_global(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Global top-k neighbourhoods: one sparse product per chunk of users."""
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
        return out

    def _predict_rated(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Per-pair top-k among the item's raters (UserKNN) or the user's items (ItemKNN).

        Pairs are sorted by their number of candidates and processed in chunks of at most
        ``_PAIR_ENTRIES`` (pair, candidate) entries, padded to the chunk's widest pair.
        """
        if self.full_similarity_ is None:
            raise ConfigError("neighbourhood was set to 'rated' after fitting with 'global': "
                              "refit the model")
        a, b = (u, i) if self._by_user else (i, u)
        widths = np.diff(self._candidates.indptr)[b]
        order = np.argsort(widths, kind="stable")
        num, den = np.zeros(len(u)), np.zeros(len(u))
        for lo, hi in width_chunks(widths[order], _PAIR_ENTRIES):
            sel = order[lo:hi]
            num[sel], den[sel] = rated_sums(self.full_similarity_, self._candidates, a[sel], b[sel],
                                            int(self.k))
        base = self.user_mean_[u]
        offset = base if self._by_user else 0.0
        return np.where(den > 0, offset + num / np.where(den > 0, den, 1.0), base)

    # ------------------------------------------------------------------ top-N
    def _score(self, users: torch.Tensor) -> torch.Tensor:
        """UserKNN: Σ_{v∈N_k(u)} s_uv x_vi; ItemKNN: Σ_{j∈N_k(i)} s_ij x_uj (x: binary/ratings),
        global neighbourhoods whatever ``neighbourhood`` is."""
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

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        n = self.n_users_ if self._by_user else self.n_items_
        shapes: dict[str, tuple[int | None, ...]] = {}
        for prefix, rows in (("knn", n), ("ratings", self.n_users_)):
            shapes.update({f"{prefix}.indptr": (rows + 1,), f"{prefix}.indices": (None,),
                           f"{prefix}.data": (None,)})
        return {**shapes, "user_mean": (self.n_users_,), "item_mean": (self.n_items_,),
                "stats": (3,)}

    def _state_csr(self) -> dict[str, tuple[int, int]]:
        n = self.n_users_ if self._by_user else self.n_items_
        return {"knn": (n, n), "ratings": (self.n_users_, self.n_items_)}

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
        self._check_neighbourhood(n)
        self.full_similarity_ = None
        if self.neighbourhood == "rated":
            self.full_similarity_ = dense_similarity(self._entity_matrix(self.ratings_),
                                                     float(self.shrinkage), int(self.min_support))
        self._prepare()


class UserKNN(_NeighbourhoodModel):
    """User-based kNN (Resnick et al. CSCW'94, Herlocker et al. SIGIR'99): similar users' ratings.

    ``similarity``: "cosine", "pearson" (user-mean centred) or "adjusted_cosine" (item-mean
    centred); ``shrinkage``/``min_support`` damp similarities with few co-rated items;
    ``score_with`` picks binary or rating values for top-N scores; ``neighbourhood`` picks the
    rating-prediction rule: "rated" (the k most similar users among those who rated the item,
    Herlocker et al.) or "global" (u's global top-k, restricted to the item's raters). Fitting is
    deterministic; ``seed`` is kept only for the common model contract.
    """

    name = "userknn"
    _by_user = True


class ItemKNN(_NeighbourhoodModel):
    """Item-based kNN (Sarwar et al. WWW'01): the user's own ratings of items similar to i.

    ``similarity``: "cosine", "pearson" (item-mean centred) or "adjusted_cosine" (user-mean
    centred, Sarwar et al.); ``neighbourhood``: "rated" (Sarwar's weighted sum over the k items
    most similar to i among those u rated) or "global" (i's global top-k restricted to u's items,
    centred on the item mean); other parameters as in :class:`UserKNN`.
    """

    name = "itemknn"
    _by_user = False
