"""Biased matrix factorisation for rating prediction (Koren, Bell & Volinsky, IEEE Computer 2009).

r̂_ui = μ + b_u + b_i + p_u · q_i, with μ the training mean (fixed), fitted by minimising

    ½ Σ_(u,i) [ (r_ui − r̂_ui)² + reg · (‖p_u‖² + ‖q_i‖² + b_u² + b_i²) ]

over the training ratings. The L2 term is counted once per rating (as in Koren's per-rating SGD
updates, and ALS-WR, Zhou et al. 2008), so the two solvers minimise the same objective:

- ``als``: alternating closed-form ridge solves, all users at once then all items at once. The
  bias rides along as an extra factor: for the user step the item vectors are augmented to
  [q_i, 1] and the unknowns are [p_u, b_u] (targets r − μ − b_i); symmetrically for items. The
  per-user normal equations A_u = Σ_i q̃_i q̃_iᵀ + reg·n_u·I and y_u = Σ_i (r_ui − μ − b_i) q̃_i are
  built with two sparse × dense products (the rating pattern times every item's flattened
  outer product q̃_i q̃_iᵀ, and the residual matrix times Q̃), then solved by one batched
  ``torch.linalg.solve``.
- ``sgd``: shuffled mini-batches of ratings, the summed batch objective differentiated by
  autograd, plain SGD steps of size ``lr`` (summing, not averaging, keeps Koren's per-rating
  update p_u ← p_u + lr (e_ui q_i − reg p_u)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import DataError, ParamError
from advrec.models.base import DEVICE, SEED, Capabilities, Recommender, resolve_device
from advrec.models.knn import check_pairs
from advrec.training.progress import epoch_progress
from advrec.validation import Choice, Int, Real, plain

sp = lazy("scipy.sparse")
torch = lazy("torch")
F = lazy("torch.nn.functional")

SOLVERS = ("als", "sgd")


def _sparse(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A scipy CSR as a float64 torch sparse (COO) tensor on ``device``."""
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    t = torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data.astype(np.float64)), m.shape,
                                check_invariants=False)
    return t.coalesce().to(device)


def _symmetric_index(d: int, device: torch.device) -> torch.Tensor:
    """For each entry (a, b) of a d × d matrix, its position in the upper-triangle vector."""
    r, c = torch.triu_indices(d, d, device=device)
    pos = torch.empty(d, d, dtype=torch.long, device=device)
    pos[r, c] = torch.arange(len(r), device=device)
    pos[c, r] = pos[r, c]
    return pos.reshape(-1)


def _augment(factors: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    """[factors | column]: the factor matrix with one more column (a bias or a constant 1)."""
    return torch.cat([factors, column[:, None]], dim=1)


def ridge_step(pattern: torch.Tensor, residual: torch.Tensor, fixed: torch.Tensor,
               counts: torch.Tensor, reg: float) -> torch.Tensor:
    """Solve every row's ridge regression of its residuals on the ``fixed`` side at once.

    Row u minimises ½ Σ_i (y_ui − x_u·f_i)² + ½ reg n_u ‖x_u‖² over the stored entries of row u:
    (Σ_i f_i f_iᵀ + reg n_u I) x_u = Σ_i y_ui f_i. The Gram matrices come from one sparse product
    of the rating ``pattern`` with the upper triangles of the outer products f_i f_iᵀ.
    """
    d = fixed.shape[1]
    r, c = torch.triu_indices(d, d, device=fixed.device)
    tri = torch.sparse.mm(pattern, fixed[:, r] * fixed[:, c])
    gram = tri.index_select(1, _symmetric_index(d, fixed.device)).reshape(-1, d, d)
    gram.diagonal(dim1=1, dim2=2).add_((reg * counts.clamp(min=1.0))[:, None])
    rhs = torch.sparse.mm(residual, fixed)
    return torch.linalg.solve(gram, rhs[:, :, None])[:, :, 0]


class MF(Recommender):
    """Biased MF for explicit ratings (Koren et al. 2009), fitted by ALS or mini-batch SGD.

    ``predict(users, items)`` gives clipped rating predictions for aligned pairs; ``score``
    gives the unclipped predicted ratings of every item (a top-N victim too). ``n_factors=0``
    is the regularised user/item-bias baseline.
    """

    name = "mf"
    capabilities = Capabilities(rating_prediction=True, fit_options=("progress",))
    _param_constraints: ClassVar[dict[str, Any]] = {
        "n_factors": Int(low=0),
        "solver": Choice(SOLVERS),
        "epochs": Int(low=0),
        "reg": Real(low=0),
        "lr": Real(low=0, closed="neither"),
        "batch_size": Int(low=1),
        "init_std": Real(low=0),
        "seed": SEED,
        "device": DEVICE,
    }

    def __init__(self, n_factors: int = 32, solver: str = "als", epochs: int = 20,
                 reg: float = 0.1, lr: float = 0.01, batch_size: int = 4096,
                 init_std: float = 0.1, seed: int = 0, device: str | None = None):
        self.n_factors = n_factors
        self.solver = solver
        self.epochs = epochs
        self.reg = reg
        self.lr = lr
        self.batch_size = batch_size
        self.init_std = init_std
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ checks
    @classmethod
    def _check_param_combinations(cls, values: dict[str, Any]) -> None:
        if values["solver"] == "als" and not values["reg"] > 0:
            raise ParamError("reg", f"must be > 0 with solver 'als' (its normal equations need "
                                    f"the ridge), got {plain(values['reg'])}")

    def _check_params(self, train: Interactions) -> None:
        """What depends on the data (each parameter is checked by validate_params)."""
        if not train.has_ratings:
            raise DataError(
                f"MF predicts ratings, but {train.name or 'the data'} has none (implicit "
                f"feedback); use a ranking model such as BPRMF, or load explicit ratings")

    # ------------------------------------------------------------------ fit
    def _fit(self, train: Interactions, progress: bool | None = None) -> None:
        """Fit by the ``solver``; ``progress`` shows a bar over the epochs (None: on a TTY)."""
        self._check_params(train)
        dev = resolve_device(self.device)
        r = sp.csr_matrix(train.csr, dtype=np.float64)
        self.global_mean_ = float(r.data.mean())
        self.rating_range_ = (float(r.data.min()), float(r.data.max()))
        gen = torch.Generator().manual_seed(int(self.seed))
        f = int(self.n_factors)
        p = torch.randn(train.n_users, f, generator=gen, dtype=torch.float64) * self.init_std
        q = torch.randn(train.n_items, f, generator=gen, dtype=torch.float64) * self.init_std
        params = [p.to(dev), q.to(dev), torch.zeros(train.n_users, dtype=torch.float64,
                                                    device=dev),
                  torch.zeros(train.n_items, dtype=torch.float64, device=dev)]
        run = self._fit_als if self.solver == "als" else self._fit_sgd
        self.history_: list[float] = []
        with epoch_progress(progress, self.name, int(self.epochs), 0) as bar:
            p, q, bu, bi = run(r, params, dev, gen, bar)
        self.user_factors_, self.item_factors_ = p.float(), q.float()
        self.user_bias_, self.item_bias_ = bu.float(), bi.float()

    def _fit_als(self, r: sp.csr_matrix, params: list[torch.Tensor], dev: torch.device,
                 gen: torch.Generator, bar: Callable[[dict], None]) -> list[torch.Tensor]:
        """Alternate the user step and the item step ``epochs`` times (one epoch = both)."""
        p, q, bu, bi = params
        rt = r.T.tocsr()
        pat_u, pat_i = (_sparse(_ones_like(m), dev) for m in (r, rt))
        n_u = torch.from_numpy(np.diff(r.indptr).astype(np.float64)).to(dev)
        n_i = torch.from_numpy(np.diff(rt.indptr).astype(np.float64)).to(dev)
        ones_u, ones_i = torch.ones_like(bu), torch.ones_like(bi)
        for _ in range(int(self.epochs)):
            res = _residual(r, self.global_mean_, bi.cpu().numpy())
            x = ridge_step(pat_u, _sparse(res, dev), _augment(q, ones_i), n_u, self.reg)
            p, bu = x[:, :-1], x[:, -1]
            res = _residual(rt, self.global_mean_, bu.cpu().numpy())
            x = ridge_step(pat_i, _sparse(res, dev), _augment(p, ones_u), n_i, self.reg)
            q, bi = x[:, :-1], x[:, -1]
            self.history_.append(self._objective(r, p, q, bu, bi))
            bar({"loss": self.history_[-1]})
        return [p, q, bu, bi]

    def _fit_sgd(self, r: sp.csr_matrix, params: list[torch.Tensor], dev: torch.device,
                 gen: torch.Generator, bar: Callable[[dict], None]) -> list[torch.Tensor]:
        """Shuffled mini-batches, summed squared error + per-rating L2, plain SGD steps."""
        coo = r.tocoo()
        users = torch.from_numpy(coo.row.astype(np.int64)).to(dev)
        items = torch.from_numpy(coo.col.astype(np.int64)).to(dev)
        ratings = torch.from_numpy(coo.data - self.global_mean_).to(dev)
        tables = [t.clone().requires_grad_(True) for t in params]
        opt = torch.optim.SGD(tables, lr=float(self.lr))
        bs = int(self.batch_size)
        for _ in range(int(self.epochs)):
            perm = torch.randperm(len(users), generator=gen).to(dev)
            total = 0.0
            for lo in range(0, len(perm), bs):
                idx = perm[lo:lo + bs]
                u, i, y = users[idx], items[idx], ratings[idx]
                opt.zero_grad(set_to_none=True)
                loss = self._batch_loss(tables, u, i, y)
                loss.backward()
                opt.step()
                total += float(loss.detach())
            self.history_.append(total / len(users))
            bar({"loss": self.history_[-1]})
        return [t.detach() for t in tables]

    def _batch_loss(self, tables: list[torch.Tensor], u: torch.Tensor, i: torch.Tensor,
                    y: torch.Tensor) -> torch.Tensor:
        """½ Σ_batch [(y − b_u − b_i − p_u·q_i)² + reg (‖p_u‖² + ‖q_i‖² + b_u² + b_i²)]."""
        p, q, bu, bi = tables
        pu, qi = F.embedding(u, p), F.embedding(i, q)
        bu_, bi_ = bu[u], bi[i]
        err = y - bu_ - bi_ - (pu * qi).sum(1)
        l2 = (pu * pu).sum(1) + (qi * qi).sum(1) + bu_ * bu_ + bi_ * bi_
        return 0.5 * (err * err + self.reg * l2).sum()

    def _objective(self, r: sp.csr_matrix, p, q, bu, bi) -> float:
        """The training objective per rating (recorded in ``history_``)."""
        coo = r.tocoo()
        dev = p.device
        u = torch.from_numpy(coo.row.astype(np.int64)).to(dev)
        i = torch.from_numpy(coo.col.astype(np.int64)).to(dev)
        y = torch.from_numpy(coo.data - self.global_mean_).to(dev)
        return float(self._batch_loss([p, q, bu, bi], u, i, y)) / max(len(y), 1)

    # ------------------------------------------------------------------ predict / score
    def predict(self, users, items) -> np.ndarray:
        """Predicted ratings of aligned (user, item) internal-id pairs, clipped to the training
        rating range."""
        self._check_fitted()
        u, i = check_pairs(self, users, items)
        dev = self.user_factors_.device
        ut, it = torch.tensor(u, device=dev), torch.tensor(i, device=dev)
        with torch.no_grad():
            pred = (self.global_mean_ + self.user_bias_[ut] + self.item_bias_[it]
                    + (self.user_factors_[ut] * self.item_factors_[it]).sum(1))
        return np.clip(pred.double().cpu().numpy(), *self.rating_range_)

    def _score(self, users: torch.Tensor) -> torch.Tensor:
        """Unclipped predicted ratings of every item: μ + b_u + b_i + P_u Qᵀ."""
        u = users.to(self.user_factors_.device)
        return (self.global_mean_ + self.user_bias_[u, None] + self.item_bias_[None, :]
                + self.user_factors_[u] @ self.item_factors_.T)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        stats = torch.tensor([self.global_mean_, *self.rating_range_], dtype=torch.float64)
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_,
                "user_bias": self.user_bias_, "item_bias": self.item_bias_, "stats": stats}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        f = int(self.n_factors)
        return {"user_factors": (self.n_users_, f), "item_factors": (self.n_items_, f),
                "user_bias": (self.n_users_,), "item_bias": (self.n_items_,), "stats": (3,)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        dev = resolve_device(self.device)
        p, q = state["user_factors"].float(), state["item_factors"].float()
        if p.shape != (self.n_users_, int(self.n_factors)) or q.shape[0] != self.n_items_:
            raise ValueError(f"factor shapes {tuple(p.shape)}, {tuple(q.shape)} do not match "
                             f"{self.n_users_} users, {self.n_items_} items, "
                             f"{self.n_factors} factors")
        self.user_factors_, self.item_factors_ = p.to(dev), q.to(dev)
        self.user_bias_ = state["user_bias"].float().to(dev)
        self.item_bias_ = state["item_bias"].float().to(dev)
        mean, lo, hi = state["stats"].tolist()
        self.global_mean_, self.rating_range_ = mean, (lo, hi)


def _ones_like(m: sp.csr_matrix) -> sp.csr_matrix:
    out = m.copy()
    out.data = np.ones_like(out.data)
    return out


def _residual(m: sp.csr_matrix, mean: float, col_bias: np.ndarray) -> sp.csr_matrix:
    """``m − mean − col_bias[column]`` on the stored entries (the ridge targets of one step)."""
    out = m.copy()
    out.data = out.data - mean - col_bias[out.indices]
    return out
