"""Optimised poisoning of ALS matrix factorisation: PGA and SGLD (Li, Wang, Singh & Vorobeychik,
*Data Poisoning Attacks on Factorization-Based Collaborative Filtering*, NeurIPS 2016).

The attacker adds ``m' = round(size · m)`` fake users, each rating ``B`` items (the targets
included; ``B`` = :meth:`PoisoningAttack.profile_length`), with ratings in ``[r_min, r_max]``, so
as to maximise a utility of the model the learner fits on real + fake ratings. The learner is
the paper's alternating minimisation (its formulation (1)) on ratings centred by the real
users' mean μ::

    min_{U, Ũ, V}  Σ_Ω (M_ij − μ − u_i·v_j)² + Σ_Ω̃ (M̃_ij − μ − ũ_i·v_j)²
                   + reg Σ_rows n_row ‖row‖²

(the ridge counted once per rating, as advrec's :class:`~advrec.models.mf.MF` and ALS-WR; the
paper writes a constant 2λ). Every ALS step is one batched ridge solve (``torch.linalg.solve`` on
stacked normal equations built by sparse × dense products), never a loop over users or items.

Utilities (``utility``), over the real users only: ``availability`` R_av, the mean squared change
of the predictions on the entries the real users have not rated (the paper's
‖R_Ω^C(M̂ − M̄)‖²_F divided by |Ω^C|; M̄ is the clean model's prediction; ``entries="seen"`` or
``"all"`` measures it on the rated or on every entry instead); ``integrity`` R_in,
the mean predicted rating of the targets (the paper's Σ_i Σ_{j∈J0} w_j M̂_ij with w_j = 1,
divided by m·|J0|); ``hybrid`` = w_availability · R_av + w_integrity · R_in. The divisions only
rescale (the maximisers of R_av and R_in are the paper's); they make the hybrid weights and the
SGLD β independent of the data's size.

Gradient: ∇_M̃ R through the ALS solution, by automatic differentiation of the last ``unroll``
ALS sweeps (each: real-user, fake-user, then item ridge solves), warm-started from the previous
iterate's factors. One sweep (``unroll=1``) is the paper's first-order (KKT) derivation: the item
stationarity condition differentiated with the user factors held, ∂v_j/∂M̃_ij =
(Σ_{i∈Ω_j} u_i u_iᵀ + Σ_{i∈Ω̃_j} ũ_i ũ_iᵀ + reg·n_j I)⁻¹ ũ_i, plus the fake user's own response
through ũ_i. It ignores how the real users' factors answer the new item factors, and on small
problems it can point nearly orthogonally to the derivative of the retrained factorisation
(integrity); the default ``unroll=3`` lets the real users respond (cosine > 0.95 with finite
differences of the converged surrogate in the tests).

- :class:`PGAAttack` (``pga``): projected gradient ascent M̃ ← Proj(M̃ + s_t ∇R), the projection
  onto the box [r_min, r_max] on each profile's support; step s_t = step · (r_max − r_min) / √(t+1)
  applied to the gradient divided by each profile's largest entry that the box lets move; the
  best iterate (highest surrogate utility) is returned, rounded to the scale.
- :class:`SGLDAttack` (``sgld``): stochastic gradient Langevin dynamics on
  log p(M̃) = β R(M̃)/c + log p0(M̃), p0 the normal users' item-wise Gaussians N(ξ_j, σ_j²) fitted
  to the observed ratings (fake profiles that look like real users while raising R; c rescales R
  so its largest initial gradient entry is 1), M̃ ← Proj(M̃ + (s/2) ∇ log p + N(0, s·temperature));
  the last sample is returned, rounded to the scale.

Profiles: every fake user's support is fixed when it is drawn (the targets + ``B − |targets|``
items drawn uniformly among the observed items, as the random and average attacks draw theirs),
so the budget |Ω̃_i| ≤ B holds at every iteration and the optimisation sets the filler ratings;
the starting ratings are draws of p0 (an average-attack profile); the targets stay at r_max
(push). Surrogate, prior and pool come from the ``observed`` part of the data
(``known_fraction``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.poisoning.base import PoisoningAttack, observed_data, torch_seed
from advrec.attacks.shilling import _Context, resolve_items
from advrec.data.interactions import Interactions
from advrec.data.sampling import smallest_keys
from advrec.errors import ConfigError, DataError
from advrec.models.base import resolve_device
from advrec.validation import check_choice, check_float, check_int

torch = lazy("torch")
sp = lazy("scipy.sparse")

__all__ = ["ENTRIES", "UTILITIES", "ALSSurrogate", "PGAAttack", "SGLDAttack", "Utility"]

UTILITIES = ("availability", "integrity", "hybrid")
ENTRIES = ("unseen", "seen", "all")  # where the availability utility measures the change
REFERENCE = ("Li, Wang, Singh & Vorobeychik, Data Poisoning Attacks on Factorization-Based "
             "Collaborative Filtering, NeurIPS 2016")
_INIT_STD = 0.1  # the starting factors' standard deviation (as advrec's MF)


# ----------------------------------------------------------------------------- surrogate
def _outer(x: torch.Tensor) -> torch.Tensor:
    """Each row's flattened outer product x_r x_rᵀ (rows × k²)."""
    return (x[:, :, None] * x[:, None, :]).reshape(x.shape[0], x.shape[1] ** 2)


class _SpMM:
    """``a @ x`` for a constant sparse ``a`` whose transpose ``a_t`` is kept, so the backward
    pass is one more sparse product (torch would transpose the CSR again on every call)."""

    _fn = None

    @classmethod
    def apply(cls, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if cls._fn is None:
            class Fn(torch.autograd.Function):
                @staticmethod
                def forward(ctx, a, a_t, x):
                    ctx.a_t = a_t
                    return a @ x

                @staticmethod
                def backward(ctx, grad):
                    return None, None, ctx.a_t @ grad

            cls._fn = Fn
        return cls._fn.apply(a, a_t, x)


def _ridge(gram: torch.Tensor, rhs: torch.Tensor, counts: torch.Tensor, reg: float
           ) -> torch.Tensor:
    """Solve every row's normal equations (G_r + reg·n_r I) x_r = b_r in one batched solve."""
    k = rhs.shape[1]
    eye = torch.eye(k, dtype=rhs.dtype, device=rhs.device)
    a = gram.reshape(-1, k, k) + (reg * counts.clamp(min=1.0))[:, None, None] * eye
    return torch.linalg.solve(a, rhs.unsqueeze(-1)).squeeze(-1)


class ALSSurrogate:
    """The learner the attacker models: ALS factorisation of the real ratings (sparse) plus a
    dense block of fake rows (``mask`` × ``ratings``, fake users × items)."""

    def __init__(self, data: Interactions, rank: int, reg: float, device, seed: int):
        csr = sp.csr_matrix(data.csr, dtype=np.float64)
        coo = csr.tocoo()
        self.mu = float(coo.data.mean())
        self.n_users, self.n_items = csr.shape
        self.rank, self.reg = int(rank), float(reg)
        self.dev = device
        rows = torch.from_numpy(coo.row.astype(np.int64))
        cols = torch.from_numpy(coo.col.astype(np.int64))
        res = torch.from_numpy(coo.data - self.mu)
        ones = torch.ones_like(res)
        self._pat = self._sparse(rows, cols, ones, (self.n_users, self.n_items))
        self._res = self._sparse(rows, cols, res, (self.n_users, self.n_items))
        self._pat_t = self._sparse(cols, rows, ones, (self.n_items, self.n_users))
        self._res_t = self._sparse(cols, rows, res, (self.n_items, self.n_users))
        self.rows, self.cols = rows.to(device), cols.to(device)
        self.user_counts = torch.bincount(rows, minlength=self.n_users).double().to(device)
        self.item_counts = torch.bincount(cols, minlength=self.n_items).double().to(device)
        gen = torch.Generator().manual_seed(int(seed))
        self.v0 = (torch.randn(self.n_items, self.rank, generator=gen, dtype=torch.float64)
                   * _INIT_STD).to(device)

    def _sparse(self, r, c, v, shape) -> torch.Tensor:
        """A CSR tensor on the device (CSR products are the fastest sparse × dense ones)."""
        idx = torch.stack([r, c])
        coo = torch.sparse_coo_tensor(idx, v, shape, check_invariants=False).coalesce()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": we use mm only
            warnings.simplefilter("ignore", UserWarning)
            return coo.to_sparse_csr().to(self.dev)

    def empty_fakes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A block of no fake users (the clean model)."""
        z = torch.zeros(0, self.n_items, dtype=torch.float64, device=self.dev)
        return z, z

    def sweep(self, v: torch.Tensor, mask: torch.Tensor, ratings: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One ALS sweep from item factors ``v``: every real user, every fake user, then every
        item, each a batched ridge solve; returns (U, Ũ, V)."""
        centred = (ratings - self.mu) * mask
        vv = _outer(v)
        u = _ridge(_SpMM.apply(self._pat, self._pat_t, vv),
                   _SpMM.apply(self._res, self._res_t, v), self.user_counts, self.reg)
        uf = _ridge(mask @ vv, centred @ v, mask.sum(1), self.reg)
        gram = _SpMM.apply(self._pat_t, self._pat, _outer(u)) + mask.T @ _outer(uf)
        rhs = _SpMM.apply(self._res_t, self._res, u) + centred.T @ uf
        return u, uf, _ridge(gram, rhs, self.item_counts + mask.sum(0), self.reg)

    def fit(self, v: torch.Tensor, mask: torch.Tensor, ratings: torch.Tensor, sweeps: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``sweeps`` ALS sweeps from ``v`` (no gradient); returns (U, Ũ, V)."""
        u = uf = None
        with torch.no_grad():
            for _ in range(max(1, int(sweeps))):
                u, uf, v = self.sweep(v, mask, ratings)
        return u, uf, v

    def value_and_grad(self, v: torch.Tensor, mask: torch.Tensor, ratings: torch.Tensor,
                       utility: Utility, unroll: int = 1):
        """The utility after ``unroll`` sweeps from ``v``, its gradient with respect to the
        fake ratings (zero off each profile's support) and the new (U, Ũ, V)."""
        r = ratings.detach().clone().requires_grad_(True)
        v = v.detach()
        with torch.enable_grad():
            for _ in range(int(unroll)):
                u, uf, v = self.sweep(v, mask, r)
            value = utility(u, v)
            (grad,) = torch.autograd.grad(value, r)
        return float(value.detach()), grad * mask, (u.detach(), uf.detach(), v.detach())


class Utility:
    """The attacker's utility of the real users' predictions μ + U Vᵀ (see the module text)."""

    def __init__(self, kind: str, surrogate: ALSSurrogate, clean_u: torch.Tensor,
                 clean_v: torch.Tensor, targets: np.ndarray, w_availability: float = 0.5,
                 w_integrity: float = 0.5, entries: str = "unseen"):
        self.kind, self.s, self.entries = kind, surrogate, entries
        self.targets = torch.as_tensor(np.asarray(targets, np.int64), device=surrogate.dev)
        self.weights = {"availability": 1.0, "integrity": 0.0} if kind == "availability" else \
            {"availability": 0.0, "integrity": 1.0} if kind == "integrity" else \
            {"availability": float(w_availability), "integrity": float(w_integrity)}
        if self.weights["availability"]:
            s = surrogate
            self.clean = clean_u @ clean_v.T
            self.clean_seen = self.clean[s.rows, s.cols]
            self.n_unseen = max(1, s.n_users * s.n_items - len(s.rows))

    def availability(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Mean squared change of the predictions on the entries real users have not rated
        (``entries="seen"``: on those they have rated; ``"all"``: on every entry)."""
        s = self.s
        seen = (((u[s.rows] * v[s.cols]).sum(1) - self.clean_seen) ** 2).sum()
        if self.entries == "seen":
            return seen / max(1, len(s.rows))
        total = ((u @ v.T - self.clean) ** 2).sum()
        if self.entries == "all":
            return total / (s.n_users * s.n_items)
        return (total - seen) / self.n_unseen

    def integrity(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Mean predicted rating of the targets over the real users."""
        n = u.shape[0] * len(self.targets)
        return self.s.mu + (u.sum(0) @ v[self.targets].T).sum() / n

    def __call__(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = 0.0
        for name, w in self.weights.items():
            if w:
                out = out + w * getattr(self, name)(u, v)
        return out


# ----------------------------------------------------------------------------- attacks
@dataclass(frozen=True, kw_only=True)
class _FactorizationPoisoning(PoisoningAttack):
    """What PGA and SGLD share: the ALS surrogate, the utility, the profiles' supports and the
    prior; subclasses move the ratings (:meth:`_ascend`).

    ``utility``: ``integrity`` (default: the targets' predicted ratings, what the experiment
    cells measure through the targets' hit ratio), ``availability`` or ``hybrid``
    (``w_availability`` · R_av + ``w_integrity`` · R_in). Surrogate: ``rank`` factors, ridge
    ``reg`` per rating, ``epochs`` ALS sweeps for the clean model, ``inner_epochs`` warm sweeps
    after each change of the fake ratings, ``unroll`` sweeps differentiated.
    """

    implicit: bool = False
    utility: str = "integrity"
    rank: int = 10
    reg: float = 0.1
    epochs: int = 20
    inner_epochs: int = 0
    unroll: int = 3
    w_availability: float = 0.5
    w_integrity: float = 0.5
    entries: str = "unseen"
    iterations: int = 20
    step: float = 0.25

    reference: ClassVar[str] = REFERENCE
    surrogates: ClassVar[tuple[str, ...]] = ("als",)
    explicit: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.implicit:
            raise ConfigError(f"implicit: the {self.name} attack writes ratings (explicit data); "
                              f"expected false, got true")
        object.__setattr__(self, "utility", check_choice(self.utility, "utility", UTILITIES))
        object.__setattr__(self, "entries", check_choice(self.entries, "entries", ENTRIES))
        for name, low in (("rank", 1), ("epochs", 1), ("inner_epochs", 0), ("unroll", 1),
                          ("iterations", 0)):
            object.__setattr__(self, name, check_int(getattr(self, name), name, low=low))
        object.__setattr__(self, "reg", check_float(self.reg, "reg", low=0, closed="neither"))
        object.__setattr__(self, "step", check_float(self.step, "step", low=0,
                                                     closed="neither"))
        for name in ("w_availability", "w_integrity"):
            object.__setattr__(self, name, check_float(getattr(self, name), name, low=0))
        if self.utility == "hybrid" and not (self.w_availability or self.w_integrity):
            raise ConfigError("w_availability, w_integrity: the hybrid utility needs a positive "
                              "weight; both are 0")

    # ------------------------------------------------------------------ public
    def utility_trace(self, data: Interactions, targets, seed: int | None = 0) -> np.ndarray:
        """The surrogate utility at each iteration of the run ``generate(data, targets, seed)``
        makes (first: the starting profiles); a diagnostic of the optimisation."""
        ctx, observed = self._context(data, targets, seed)
        return self._run(ctx, observed)[1]

    # ------------------------------------------------------------------ internals
    def _context(self, data: Interactions, targets, seed) -> tuple[_Context, Interactions]:
        """The context and observed data exactly as :meth:`generate` builds them."""
        self._check_data(data)
        t = resolve_items(data, targets, "target")
        ctx = _Context(data, t, self.n_fake(data), np.random.default_rng(seed))
        return ctx, observed_data(ctx.data, self.known_fraction, ctx.rng)

    def _optimise(self, ctx: _Context, observed: Interactions):
        return self._run(ctx, observed)[0]

    def _run(self, ctx: _Context, observed: Interactions):
        """Draw the supports and starting ratings, fit the surrogate, move the ratings; returns
        the flat (profile, item, rating) arrays and the utility trace."""
        dev = resolve_device(self.device)
        targets = ctx.targets
        length = self.profile_length(ctx.data, len(targets))
        n_fake, n_items = ctx.n_fake, ctx.data.n_items
        xi, sigma = _prior(observed, ctx.scale.step)
        pool = np.setdiff1d(np.flatnonzero(observed.item_counts), targets)
        k = length - len(targets)
        if k > len(pool):
            raise ConfigError(f"filler: a profile of {length} items needs {k} items besides the "
                              f"targets; the observed data has {len(pool)}")
        keys = ctx.rng.random((n_fake, len(pool)))
        fill = pool[smallest_keys(keys, k)] if k else \
            np.empty((n_fake, 0), np.int64)
        start = ctx.rng.normal(xi[fill], sigma[fill])
        lo, hi = ctx.scale.low, ctx.scale.high
        rows = np.repeat(np.arange(n_fake), k)
        free = np.zeros((n_fake, n_items))
        free[rows, fill.ravel()] = 1.0
        init = np.zeros((n_fake, n_items))
        init[rows, fill.ravel()] = np.clip(start, lo, hi).ravel()
        init[:, targets] = hi  # the targets stay at r_max (push)

        surrogate = ALSSurrogate(observed, self.rank, self.reg, dev, torch_seed(ctx.rng))
        none_mask, none_r = surrogate.empty_fakes()
        cu, _, cv = surrogate.fit(surrogate.v0, none_mask, none_r, self.epochs)
        utility = Utility(self.utility, surrogate, cu, cv, targets, self.w_availability,
                          self.w_integrity, self.entries)
        as_t = {"dtype": torch.float64, "device": dev}
        st = _State(surrogate, utility, torch.as_tensor(free, **as_t),
                    torch.as_tensor(targets, device=dev), torch.as_tensor(init, **as_t), cv,
                    (lo, hi))
        st.v = surrogate.fit(cv, st.mask, st.r, self.inner_epochs)[2]
        prior = (torch.as_tensor(xi, **as_t), torch.as_tensor(sigma, **as_t))
        r_out, trace = self._ascend(ctx, st, prior)
        users, items = (x.cpu().numpy().astype(np.int64) for x in torch.nonzero(st.mask).T)
        values = r_out.detach().cpu().numpy()[users, items]
        return (users, items, ctx.scale.snap(values)), np.asarray(trace, np.float64)

    def _improve(self, st: _State) -> tuple[float, torch.Tensor]:
        """Warm-start the surrogate on the current ratings, then the utility and its gradient
        with respect to the free (filler) ratings."""
        s = st.surrogate
        if self.inner_epochs:
            st.v = s.fit(st.v, st.mask, st.r, self.inner_epochs)[2]
        value, grad, (_, _, st.v) = s.value_and_grad(st.v, st.mask, st.r, st.utility,
                                                     self.unroll)
        return value, grad * st.free

    def _ascend(self, ctx: _Context, st: _State, prior) -> tuple:
        """Move the free ratings (the fillers); returns the chosen ratings and the utility
        trace."""
        raise NotImplementedError


class _State:
    """The optimisation's moving parts: the fake ratings ``r`` (fake users × items, zero off
    the support) and the surrogate's item factors ``v`` (the warm start); the support (fillers
    ``free`` + targets) is fixed."""

    def __init__(self, surrogate: ALSSurrogate, utility: Utility, free, targets, r, v,
                 bounds: tuple[float, float]):
        self.surrogate, self.utility = surrogate, utility
        self.free, self.r, self.v, self.bounds = free, r, v, bounds
        self.mask = free.clone()
        self.mask[:, targets] = 1.0


@dataclass(frozen=True, kw_only=True)
class PGAAttack(_FactorizationPoisoning):
    """Projected gradient ascent on the fake ratings (Li et al. 2016, Sec. 4).

    ``iterations`` ascent steps of size ``step`` · (r_max − r_min) / √(t+1) along the gradient
    divided by each profile's largest entry that the box lets move, projected onto
    [r_min, r_max]; returns the iterate with the highest surrogate utility, rounded to the
    rating scale.
    """

    name: ClassVar[str] = "pga"

    def _ascend(self, ctx: _Context, st: _State, prior) -> tuple:
        lo, hi = st.bounds
        trace: list[float] = []
        best, kept = -math.inf, st.r
        for t in range(self.iterations + 1):
            value, g = self._improve(st)
            trace.append(value)
            if value > best:
                best, kept = value, st.r
            if t == self.iterations:
                break
            r = st.r
            # normalise by each profile's largest entry that the box lets move
            stuck = ((r >= hi) & (g > 0)) | ((r <= lo) & (g < 0))
            scale = g.masked_fill(stuck, 0.0).abs().amax(1, keepdim=True).clamp(min=1e-300)
            s_t = self.step * (hi - lo) / math.sqrt(t + 1)
            st.r = torch.where(st.free > 0, (r + s_t * g / scale).clamp(lo, hi), r)
        return kept, trace


@dataclass(frozen=True, kw_only=True)
class SGLDAttack(_FactorizationPoisoning):
    """Stochastic gradient Langevin dynamics: fake profiles drawn near the normal users' rating
    distribution while raising the utility (Li et al. 2016, Sec. 5).

    Samples log p(M̃) = ``beta`` · R(M̃)/c + Σ log N(M̃_ij; ξ_j, σ_j²) over each profile's support
    (ξ_j, σ_j: item j's observed mean and standard deviation; c: the largest entry of the first
    gradient of R) by ``iterations`` steps M̃ ← Proj(M̃ + (``step``/2) ∇log p + N(0, ``step`` ·
    ``temperature``)); returns the last sample rounded to the scale.
    """

    name: ClassVar[str] = "sgld"
    iterations: int = 50
    step: float = 0.1
    beta: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "beta", check_float(self.beta, "beta", low=0))
        object.__setattr__(self, "temperature",
                           check_float(self.temperature, "temperature", low=0))

    def _ascend(self, ctx: _Context, st: _State, prior) -> tuple:
        lo, hi = st.bounds
        xi, sigma = prior
        gen = torch.Generator(device=st.r.device).manual_seed(torch_seed(ctx.rng))
        trace: list[float] = []
        c = None
        noise_sd = math.sqrt(self.step * self.temperature)
        for t in range(self.iterations + 1):
            value, g = self._improve(st)
            trace.append(value)
            if t == self.iterations:
                break
            if c is None:
                c = float(g.abs().max()) or 1.0
            r = st.r
            drift = self.beta * g / c - (r - xi) / sigma ** 2
            noise = torch.randn(r.shape, generator=gen, dtype=r.dtype, device=r.device)
            moved = (r + 0.5 * self.step * drift + noise_sd * noise).clamp(lo, hi)
            st.r = torch.where(st.free > 0, moved, r)
        return st.r, trace


# ----------------------------------------------------------------------------- helpers
def _prior(data: Interactions, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Each item's mean and standard deviation of the observed ratings (the normal users'
    Gaussians); items with fewer than two ratings take the global values, every σ at least half
    a rating step."""
    if data.ratings is None:
        raise DataError("the fake profiles' prior needs ratings")
    r = data.ratings.astype(np.float64)
    counts = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    s1 = np.bincount(data.items, r, minlength=data.n_items)
    s2 = np.bincount(data.items, r * r, minlength=data.n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, s1 / counts, r.mean())
        var = np.where(counts > 1, s2 / counts - mean ** 2, r.var())
    sd = np.sqrt(np.clip(var, 0.0, None))
    return mean, np.maximum(sd, 0.5 * step)
