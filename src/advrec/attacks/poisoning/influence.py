"""Influence-function based data poisoning of top-N recommenders (Fang, Gong & Liu, WWW 2020).

The attacker injects ``m`` fake users, each with a budget of ``n`` items (targets included), so
that the target items enter as many normal users' top-N lists as possible (the hit ratio):

1. **surrogate**: a matrix factorisation fitted on the observed data. The paper's MF fits
   observed ratings; on implicit 0/1 data that loss is degenerate, so the surrogate fits the
   dense 0/1 matrix, ``½ Σ c_ui (y_ui − p_u·q_i)² + ½ λ (‖P‖² + ‖Q‖²)`` with confidence 1 on
   interactions and ``neg_weight`` on zeros. With ``neg_weight`` 1 (default) the exact minimiser
   is known in closed form (the top singular triplets shrunk by λ), otherwise ALS refines it;
2. **influential users** (Koh & Liang, ICML 2017): for every normal user u,
   ``π(u) = ∇f(θ)ᵀ (H + damping·I)⁻¹ ∇L_u(θ)`` is the first-order change of the attacker's
   objective ``f`` (the hit-ratio relaxation below over every normal user, clean top-N lists)
   when u's data is removed; ``H`` is the Hessian of the MF loss in *all* parameters (P and Q),
   ``H⁻¹∇f`` one conjugate-gradient solve on closed-form Hessian-vector products, and the
   per-user gradients ``∇L_u`` are batched. The ``influential_fraction`` Δ of the users (among
   those with a target to receive) with the largest ``|π(u)|`` forms the set ``S``;
3. **fake ratings**: the fake users' vectors ``w ∈ [0, 1]^{n_items}`` minimise the paper's
   relaxed hit-ratio loss over ``S``::

       Σ_{u∈S} Σ_t Σ_{i∈Γ_u} g(r̂_ui − r̂_ut),   g(x) = 1 / (1 + exp(−x / b)),

   ``Γ_u`` u's current top-N among the items it has not seen (targets excluded), ``g`` the
   Wilcoxon-Mann-Whitney relaxation of width ``b``, and ``r̂`` the surrogate retrained on data +
   fake users, approximated by differentiating ``unroll`` ALS rounds from the clean solution
   (the fake users' vectors, every item vector, then the users of ``S``), in the spirit of the
   paper's gradient through the MF optimality conditions. Adam steps are projected onto
   ``{Σw = n, targets at 1}`` (the budget, where the paper penalises ``η‖w‖₁``); the loss is
   evaluated on the discrete profiles (straight-through gradient) and the best iterate kept;
4. **profiles**: each fake user keeps the targets and the filler items with the largest
   optimised values (the base class's projection of the returned scores).

All fake users are optimised jointly (the paper crafts them one after another).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from advrec._lazy import lazy
from advrec.attacks.poisoning.base import PoisoningAttack, dense_rows, torch_seed
from advrec.attacks.shilling import _Context
from advrec.data.interactions import Interactions
from advrec.errors import DataError
from advrec.models.base import resolve_device
from advrec.validation import check_float, check_int

torch = lazy("torch")

__all__ = ["InfluenceAttack", "discrete_profiles", "fit_surrogate", "hit_loss", "project_budget",
           "top_lists", "user_influence"]


# ----------------------------------------------------------------------------- the attack
@dataclass(frozen=True, kw_only=True)
class InfluenceAttack(PoisoningAttack):
    """Fake users optimised for the users most influential to the targets' ranking (Fang et al.).

    ``n_factors``/``reg``/``neg_weight``/``epochs``: the MF surrogate (rank, L2 weight λ, weight
    of the unobserved entries, ALS epochs). ``top_n``: N of the top-N lists. ``width``: the
    sigmoid width b of the hit-ratio relaxation. ``influential_fraction``: Δ, the share of the
    normal users kept as influential (1 = every user: the paper's ablation). ``steps``/``lr``:
    projected Adam steps on the fake rating vectors. ``unroll``: ALS rounds differentiated for
    the retrained surrogate. ``damping``/``cg_steps``: the damped conjugate-gradient
    inverse-Hessian-vector product of the influence function. ``epochs`` only matters with
    ``neg_weight`` < 1 (ALS epochs; the unweighted surrogate is solved exactly).
    """

    n_factors: int = 64
    reg: float = 1.0
    neg_weight: float = 1.0
    epochs: int = 30
    top_n: int = 10
    width: float = 0.1
    influential_fraction: float = 0.2
    steps: int = 100
    lr: float = 0.01
    unroll: int = 1
    damping: float = 0.1
    cg_steps: int = 100

    name: ClassVar[str] = "influence"
    reference: ClassVar[str] = (
        "M. Fang, N. Z. Gong, J. Liu. Influence Function based Data Poisoning Attacks to Top-N "
        "Recommender Systems. The Web Conference (WWW) 2020")
    surrogates: ClassVar[tuple[str, ...]] = ("mf",)
    explicit: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.n_factors, "n_factors", low=1)
        check_float(self.reg, "reg", low=0, closed="neither")
        check_float(self.neg_weight, "neg_weight", low=0, high=1, closed="right")
        check_int(self.epochs, "epochs", low=1)
        check_int(self.top_n, "top_n", low=1)
        check_float(self.width, "width", low=0, closed="neither")
        check_float(self.influential_fraction, "influential_fraction", low=0, high=1,
                    closed="right")
        check_int(self.steps, "steps", low=0)
        check_float(self.lr, "lr", low=0, closed="neither")
        check_int(self.unroll, "unroll", low=1)
        check_float(self.damping, "damping", low=0)
        check_int(self.cg_steps, "cg_steps", low=1)

    # ------------------------------------------------------------------ the optimisation
    def _optimise(self, ctx: _Context, observed: Interactions):
        dev = resolve_device(self.device)
        gen = torch.Generator().manual_seed(torch_seed(ctx.rng))
        y = dense_rows(observed, device=dev)
        n_items = y.shape[1]
        if self.top_n + len(ctx.targets) > n_items:
            raise DataError(f"top_n={self.top_n} plus {len(ctx.targets)} target(s) exceed the "
                            f"catalogue of {n_items} items")
        targets = torch.as_tensor(ctx.targets, dtype=torch.long, device=dev)
        p, q = fit_surrogate(y, self.n_factors, self.reg, self.neg_weight, self.epochs)
        eligible = (y[:, targets] == 0) & (y.sum(1, keepdim=True) > 0)
        rows = torch.nonzero(eligible.any(1)).flatten()
        if len(rows) == 0:
            raise DataError("every observed user has already interacted with the targets: "
                            "no one to push them to")
        chosen = self._influential(y, p, q, targets, rows)
        allowed = torch.as_tensor(observed.item_counts > 0, device=dev)
        w = self._profiles(ctx, y, p.to(y.dtype), q.to(y.dtype), targets, chosen, allowed, gen)
        w[:, ~allowed] = -1.0  # never chosen while observed items remain
        return w.cpu()

    def _influential(self, y, p, q, targets, rows):
        """The ``influential_fraction`` of the candidate users ``rows`` with the largest
        |influence| on the hit-ratio objective (all of them when the fraction is 1)."""
        n_keep = max(1, math.ceil(self.influential_fraction * len(rows)))
        if n_keep >= len(rows):
            return rows
        infl = user_influence(y.double(), p, q, self.reg, self.neg_weight, targets, self.top_n,
                              self.width, self.damping, self.cg_steps)
        order = torch.argsort(infl[rows].abs(), descending=True, stable=True)
        return rows[order[:n_keep]]

    def _profiles(self, ctx: _Context, y, p, q, targets, users, allowed, gen):
        """Projected gradient descent on the fake users' rating vectors (n_fake × n_items).

        The relaxed vectors w live in {w ∈ [0, 1]ⁿ : Σw = budget, targets at 1}; the surrogate
        is evaluated on their discrete profiles (the budget's best items of each w) with the
        gradient passed straight through to w, and the iterate whose profiles had the lowest
        loss is kept.
        """
        n_items = y.shape[1]
        budget = self.profile_length(ctx.data, len(ctx.targets))
        fixed = torch.zeros(n_items, dtype=torch.bool, device=y.device)
        fixed[targets] = True
        w = torch.rand(ctx.n_fake, n_items, generator=gen, dtype=y.dtype).to(y.device)
        w = project_budget(w, budget, fixed, allowed).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=float(self.lr))
        y_s = y[users]
        elig = y_s[:, targets] == 0
        pre = _Prepared(y, p, q, self.reg, self.neg_weight, users)
        best, best_loss = None, math.inf
        for _ in range(int(self.steps) + 1):
            hard = discrete_profiles(w.detach(), budget, fixed, allowed)
            scores = pre.poisoned_scores(hard + w - w.detach(), self.unroll)
            loss = hit_loss(scores, y_s, targets, elig, self.top_n, self.width)
            if float(loss.detach()) < best_loss:
                best, best_loss = w.detach().clone(), float(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                w.copy_(project_budget(w, budget, fixed, allowed))
        # the kept profiles dominate: the base's projection picks exactly their items
        return discrete_profiles(best, budget, fixed, allowed) + 1e-3 * best


def discrete_profiles(w, budget: int, fixed, allowed):
    """0/1 rows: the ``fixed`` items plus each row's best-valued allowed others, ``budget`` in
    all (fewer when too few items are allowed)."""
    s = w.masked_fill(~allowed | fixed, -torch.inf)
    k = max(0, min(budget - int(fixed.sum()), int((allowed & ~fixed).sum())))
    out = torch.zeros_like(w)
    out.scatter_(1, torch.topk(s, k, dim=1).indices, 1.0)
    out[:, fixed] = 1.0
    return out


def project_budget(w, budget: int, fixed, allowed, iters: int = 60):
    """Each row's Euclidean projection onto {x ∈ [0, 1]ⁿ : Σx = budget, x = 1 on ``fixed``,
    x = 0 off ``allowed``}: x = clip(w − τ, 0, 1) with τ found by bisection (all rows at once)."""
    free = allowed & ~fixed
    room = float(budget - int(fixed.sum()))
    x = w[:, free]
    out = torch.zeros_like(w)
    out[:, fixed] = 1.0
    if room <= 0 or x.shape[1] == 0:
        return out
    lo = x.min(1, keepdim=True).values - 1.0
    hi = x.max(1, keepdim=True).values
    for _ in range(iters):
        mid = (lo + hi) / 2
        over = (x - mid).clamp(0.0, 1.0).sum(1, keepdim=True) > room
        lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
    out[:, free] = (x - (lo + hi) / 2).clamp(0.0, 1.0)
    return out


# ----------------------------------------------------------------------------- the surrogate
def _outer(f):
    """Each row's outer product f_i f_iᵀ, flattened (rows × k²)."""
    return (f[:, :, None] * f[:, None, :]).reshape(len(f), -1)


def _solve_rows(r, f, reg: float, neg_weight: float, pattern=None):
    """Every row's weighted ridge regression on the fixed factors ``f`` at once.

    Row r minimises ½ Σ_i c_ri (r_ri − x·f_i)² + ½ reg ‖x‖² with confidence
    c = neg_weight + (1 − neg_weight)·r (1 on interactions, ``neg_weight`` on zeros):
    (Σ_i c_ri f_i f_iᵀ + reg I) x = Σ_i c_ri r_ri f_i. ``pattern``: ``r`` as a sparse tensor
    when it is the 0/1 data (the Gram matrices then cost one sparse product).
    """
    k = f.shape[1]
    base = neg_weight * (f.T @ f) + reg * torch.eye(k, dtype=f.dtype, device=f.device)
    if neg_weight == 1.0:
        return torch.linalg.solve(base, (r @ f).T).T
    m = pattern if pattern is not None else r
    gram = base + (1.0 - neg_weight) * (m @ _outer(f)).reshape(-1, k, k)
    rhs = (neg_weight * r + (1.0 - neg_weight) * r * r) @ f
    return torch.linalg.solve(gram, rhs[:, :, None])[:, :, 0]


def _svd_solution(y, n_factors: int, reg: float):
    """The exact minimiser of ``½ ‖Y − PQᵀ‖² + ½ reg (‖P‖² + ‖Q‖²)``: the top singular triplets
    with the singular values shrunk by ``reg`` and split evenly, P = U √(σ − reg)₊,
    Q = V √(σ − reg)₊ (from the eigen-decomposition of the smaller Gram matrix, in float64)."""
    y64 = y.double()
    k = min(int(n_factors), min(y.shape))
    wide = y.shape[0] <= y.shape[1]
    gram = y64 @ y64.T if wide else y64.T @ y64
    values, vectors = torch.linalg.eigh(gram)
    sigma = values.flip(0)[:k].clamp(min=0).sqrt()
    left = vectors.flip(1)[:, :k]
    right = (y64.T @ left if wide else y64 @ left) / sigma.clamp(min=1e-12)
    u, v = (left, right) if wide else (right, left)
    shrink = (sigma - reg).clamp(min=0).sqrt()
    p, q = u * shrink, v * shrink
    if k < n_factors:  # a rank-deficient catalogue: the extra factors stay at zero
        p = torch.nn.functional.pad(p, (0, n_factors - k))
        q = torch.nn.functional.pad(q, (0, n_factors - k))
    return p, q


def fit_surrogate(y, n_factors: int, reg: float, neg_weight: float = 1.0, epochs: int = 0):
    """The MF surrogate ``½ Σ c_ui (y_ui − p_u·q_i)² + ½ reg (‖P‖² + ‖Q‖²)`` on the dense 0/1
    matrix ``y`` (c = 1 on interactions, ``neg_weight`` on zeros), as float64 (P, Q).

    With ``neg_weight`` 1 the solution is exact (:func:`_svd_solution`); otherwise ``epochs``
    ALS epochs start from it.
    """
    p, q = _svd_solution(y, n_factors, reg)
    if neg_weight != 1.0:
        y64 = y.double()
        rows, cols = y64.to_sparse(), y64.T.to_sparse()
        for _ in range(int(epochs)):
            p = _solve_rows(y64, q, reg, neg_weight, rows)
            q = _solve_rows(y64.T, p, reg, neg_weight, cols)
    return p, q


class _Prepared:
    """The clean surrogate and the constant parts of its retraining on data + fake rows."""

    def __init__(self, y, p, q, reg: float, neg_weight: float, users):
        self.p, self.q, self.reg, self.w0, self.users = p, q, reg, neg_weight, users
        self.y_users = y[users]
        k = p.shape[1]
        self.rhs_real = y.T @ p                               # items × k
        self.ptp = p.T @ p
        self.gram_real = self.pattern = None
        if neg_weight != 1.0:
            self.pattern = self.y_users.to_sparse()
            self.gram_real = (y.T.to_sparse() @ _outer(p)).reshape(-1, k, k)  # items × k × k

    def poisoned_scores(self, w, unroll: int):
        """Scores of the users after ``unroll`` differentiable ALS rounds on data + rows ``w``."""
        k = self.p.shape[1]
        eye = torch.eye(k, dtype=w.dtype, device=w.device)
        q, p_users = self.q, self.p[self.users]
        w0 = self.w0
        for _ in range(int(unroll)):
            pf = _solve_rows(w, q, self.reg, w0)
            base = w0 * (self.ptp + pf.T @ pf) + self.reg * eye
            cw = w0 * w + (1.0 - w0) * w * w
            rhs = self.rhs_real + cw.T @ pf
            if w0 == 1.0:
                q = torch.linalg.solve(base, rhs.T).T
            else:
                gram = base + (1.0 - w0) * (self.gram_real + (w.T @ _outer(pf)).reshape(-1, k, k))
                q = torch.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
            p_users = _solve_rows(self.y_users, q, self.reg, w0, self.pattern)
        return p_users @ q.T


# ----------------------------------------------------------------------------- the objective
def top_lists(scores, seen, targets, top_n: int):
    """Each row's ``top_n`` best-scored items among those it has not seen, targets excluded."""
    s = scores.detach().masked_fill(seen > 0, -torch.inf)
    s[:, targets] = -torch.inf
    return torch.topk(s, top_n, dim=1).indices


def hit_loss(scores, seen, targets, eligible, top_n: int, width: float, top=None):
    """Mean over eligible (user, target) pairs of Σ_{i∈Γ_u} g(r̂_ui − r̂_ut), g the sigmoid of
    width ``width`` (the paper's relaxation of the hit ratio; Γ_u the current top-N lists, or
    the given ``top`` lists)."""
    if top is None:
        top = top_lists(scores, seen, targets, top_n)
    valid = (seen.gather(1, top) == 0).to(scores.dtype)        # short lists: unseen items only
    valid[torch.isin(top, targets)] = 0.0
    s_top = scores.gather(1, top)                               # users × N
    s_t = scores[:, targets]                                    # users × targets
    g = (torch.sigmoid((s_top[:, None, :] - s_t[:, :, None]) / width) * valid[:, None, :]).sum(2)
    mask = eligible.to(scores.dtype)
    return (g * mask).sum() / mask.sum().clamp(min=1.0)


# ----------------------------------------------------------------------------- influence
def _hvp(e, c, p, q, reg: float, vp, vq):
    """The MF loss's Hessian times (vp, vq), in closed form (every parameter). ``e`` is the
    weighted residual c ⊙ (PQᵀ − Y); with c ≡ 1 the rank-k terms need no dense product."""
    if c is None:
        hp = vp @ (q.T @ q) + p @ (vq.T @ q) + e @ vq
        hq = q @ (vp.T @ p) + vq @ (p.T @ p) + e.T @ vp
    else:
        de = c * (vp @ q.T + p @ vq.T)
        hp = de @ q + e @ vq
        hq = de.T @ p + e.T @ vp
    return hp + reg * vp, hq + reg * vq


def user_influence(y, p, q, reg: float, neg_weight: float, targets, top_n: int, width: float,
                   damping: float = 0.1, cg_steps: int = 100, eval_users=None):
    """Influence of each user's data on the attacker's objective (one value per user).

    ``π(u) = ∇f(θ)ᵀ (H + damping·I)⁻¹ ∇L_u(θ)``: the first-order change of ``f`` (the hit-ratio
    relaxation :func:`hit_loss` over ``eval_users``, default every user, with the clean top-N
    lists) when user ``u``'s interactions are removed from the training data (Koh & Liang).
    ``H`` is the Hessian of the MF loss in every parameter (P and Q), inverted by conjugate
    gradients on closed-form Hessian-vector products; the per-user gradients are batched.
    """
    c = None if neg_weight == 1.0 else neg_weight + (1.0 - neg_weight) * y
    e = p @ q.T - y
    if c is not None:
        e = c * e
    users = torch.arange(len(y), device=y.device) if eval_users is None else eval_users
    pp, qq = p.detach().clone().requires_grad_(True), q.detach().clone().requires_grad_(True)
    scores = pp[users] @ qq.T
    seen = y[users]
    elig = (seen[:, targets] == 0) & (seen.sum(1, keepdim=True) > 0)
    hit_loss(scores, seen, targets, elig, top_n, width).backward()
    bp, bq = pp.grad, qq.grad
    # conjugate gradients for (H + damping I) s = ∇f
    sp, sq = torch.zeros_like(p), torch.zeros_like(q)
    rp, rq = bp.clone(), bq.clone()
    dp, dq = rp.clone(), rq.clone()
    rr = (rp * rp).sum() + (rq * rq).sum()
    tol = 1e-10 * float(rr)
    for _ in range(int(cg_steps)):
        if float(rr) <= tol:
            break
        hp, hq = _hvp(e, c, p, q, reg, dp, dq)
        hp, hq = hp + damping * dp, hq + damping * dq
        alpha = rr / ((dp * hp).sum() + (dq * hq).sum())
        sp, sq = sp + alpha * dp, sq + alpha * dq
        rp, rq = rp - alpha * hp, rq - alpha * hq
        rr_new = (rp * rp).sum() + (rq * rq).sum()
        dp, dq = rp + (rr_new / rr) * dp, rq + (rr_new / rr) * dq
        rr = rr_new
    # ∇L_u: the p_u block Σ_i c e_ui q_i + reg p_u, and q_i blocks c e_ui p_u
    grad_p = e @ q + reg * p
    return (sp * grad_p).sum(1) + (e * (p @ sq.T)).sum(1)
