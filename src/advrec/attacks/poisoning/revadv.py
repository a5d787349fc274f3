"""RevAdv: fake profiles learned by unrolling the surrogate's training (Tang, Wen & Wang,
*Revisiting Adversarially Learned Injection Attacks Against Recommender Systems*, RecSys 2020).

The attack is a bi-level problem: the fake rows X̂ minimise an adversarial loss on the real
users' predictions of a surrogate trained on X ∪ X̂. The surrogate (weighted MF trained with
Adam, :class:`WMFConfig`) is retrained from scratch on every outer iteration, the last
``unroll_steps`` epochs of its training are kept as a differentiable graph (a functional Adam,
:func:`adam_step`), and ∂L_adv/∂X̂ is the gradient through those steps. The fake rows then take a
momentum SGD step and are projected back to 0/1 profiles. :func:`optimise_fake_rows` is that
whole loop; the attack (:class:`RevAdvAttack`) and the paper's synthetic experiment
(``benchmarks/bench_poisoning_synthetic.py``) both call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.poisoning.base import PoisoningAttack, dense_rows, torch_seed
from advrec.attacks.shilling import _Context
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError
from advrec.models.base import check_device, resolve_device
from advrec.training.progress import Progress
from advrec.validation import check_bool, check_choice, check_float, check_int

torch = lazy("torch")
F = lazy("torch.nn.functional")

__all__ = ["PROJECTIONS", "AdamState", "RevAdvAttack", "RevAdvResult", "WMFConfig",
           "adam_step", "adversarial_gradient", "adversarial_loss", "optimise_fake_rows",
           "target_hit_ratio", "threshold_projection", "topk_projection", "train_wmf"]

PROJECTIONS = ("topk", "threshold")
MAX_INIT_CLICKS = 100  # the official init_fake_data: fake rows start as users with <= 100 clicks
_TIE_NOISE = 0.5  # topk start: random order among a sampled user's items, then among the others
_RANK_CELLS = 1 << 24  # (user, target, item) comparisons per chunk of the hit-ratio count


# ----------------------------------------------------------------------------- the surrogate
@dataclass(frozen=True)
class WMFConfig:
    """The surrogate: weighted MF (P: rows × d, Q: items × d, normal(0, ``init_std``)) trained by
    Adam on the dense rows, loss Σ w·(x − p·q)² with w = ``weight_alpha`` where x > 0, else 1,
    summed over mini-batches of ``batch_size`` rows (None: full batch); ``l2`` is Adam's weight
    decay. The last ``unroll_steps`` of ``epochs`` epochs are differentiable. Defaults: the
    official WMF-SGD surrogate (d 128, 50 epochs, 10 unrolled, lr 1e-2, l2 1e-5, batch 2048)."""

    n_factors: int = 128
    epochs: int = 50
    unroll_steps: int = 10
    lr: float = 1e-2
    l2: float = 1e-5
    batch_size: int | None = 2048
    weight_alpha: float = 20.0
    init_std: float = 0.1


@dataclass
class AdamState:
    """Adam's state for a list of parameters: the step count and both moment estimates."""

    step: int
    exp_avg: list
    exp_avg_sq: list

    @classmethod
    def zeros(cls, params: Sequence) -> AdamState:
        """The state before the first step (torch.optim.Adam's initial state)."""
        return cls(0, [torch.zeros_like(p) for p in params],
                   [torch.zeros_like(p) for p in params])


def _safe_sqrt(v):
    """√v with a zero gradient where v = 0 (√'s is infinite there: 0·∞ would give NaN for
    entries that never had a gradient, such as rows outside every batch so far)."""
    pos = v > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, v, torch.ones_like(v))),
                       torch.zeros_like(v))


def adam_step(params: Sequence, grads: Sequence, state: AdamState, *, lr: float,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0) -> tuple[list, AdamState]:
    """One step of torch.optim.Adam (weight decay added to the gradient, bias-corrected moments)
    written out of place, so the new parameters are differentiable functions of the old ones,
    of the gradients and of whatever those depend on. Returns (new parameters, new state)."""
    b1, b2 = betas
    step = state.step + 1
    step_size = lr / (1 - b1 ** step)
    bc2_sqrt = math.sqrt(1 - b2 ** step)
    new_p, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, state.exp_avg, state.exp_avg_sq, strict=True):
        if weight_decay:
            g = g + weight_decay * p
        m = torch.lerp(m, g, 1 - b1)
        v = v * b2 + (1 - b2) * g * g
        denom = _safe_sqrt(v) / bc2_sqrt + eps
        new_p.append(torch.addcdiv(p, m, denom, value=-step_size))
        new_m.append(m)
        new_v.append(v)
    return new_p, AdamState(step, new_m, new_v)


def _wmf_loss(p_rows, q, x, w):
    """Σ w·(x − p·q)² over the rows ``x`` (w: the constant confidence weights of those rows)."""
    return (w * (x - p_rows @ q.T) ** 2).sum()


def train_wmf(data, config: WMFConfig, seed: int, unroll: bool = True) -> list:
    """[P, Q] of the surrogate trained on the dense rows ``data`` (seeded: the same ``seed``
    gives the same initialisation and batch order). ``unroll``: the last ``unroll_steps``
    epochs stay in the autograd graph (P, Q are then differentiable in ``data``); else none."""
    gen = torch.Generator().manual_seed(int(seed))
    n_rows, n_items = data.shape
    kw = dict(device=data.device, dtype=data.dtype)
    q = (torch.randn(n_items, config.n_factors, generator=gen) * config.init_std).to(**kw)
    p = (torch.randn(n_rows, config.n_factors, generator=gen) * config.init_std).to(**kw)
    params = [p, q]
    state = AdamState.zeros(params)
    full = config.batch_size is None or config.batch_size >= n_rows
    first_unrolled = config.epochs - config.unroll_steps if unroll else config.epochs
    plain = data.detach()
    # w = alpha where x > 0, else 1: a constant (not differentiated), shared by every step
    weights = torch.where(plain > 0, config.weight_alpha, 1.0).to(data.dtype)
    for epoch in range(config.epochs):
        graph = epoch >= first_unrolled
        x_all = data if graph else plain
        order = None if full else torch.randperm(n_rows, generator=gen).to(data.device)
        batches = [None] if full else order.split(config.batch_size)
        for rows in batches:
            if not graph or not params[0].requires_grad:  # plain epochs; first unrolled step
                params = [t.detach().requires_grad_() for t in params]
            p, q = params
            if rows is None:
                loss = _wmf_loss(p, q, x_all, weights)
            else:
                loss = _wmf_loss(p[rows], q, x_all[rows], weights[rows])
            grads = torch.autograd.grad(loss, params, create_graph=graph)
            with torch.set_grad_enabled(graph):
                params, state = adam_step(params, grads, state, lr=config.lr,
                                          weight_decay=config.l2)
    return [t if unroll else t.detach() for t in params]


def adversarial_loss(scores, targets):
    """The official ``mult_ce_loss`` toward the targets: −Σ_users mean_targets log softmax."""
    t = torch.as_tensor(np.asarray(targets, np.int64), device=scores.device)
    return -F.log_softmax(scores, dim=1)[:, t].mean(dim=1).sum()


def adversarial_gradient(real_rows, fake_rows, targets, config: WMFConfig, seed: int,
                         need_grad: bool = True):
    """(L_adv, ∂L_adv/∂fake_rows or None, the real users' scores) for the surrogate trained on
    real + fake rows, differentiated through its last ``unroll_steps`` epochs (only the fake
    rows are leaves that require a gradient: the real rows are constants)."""
    fake = fake_rows.detach().clone().requires_grad_(need_grad)
    data = torch.cat([real_rows.detach(), fake])
    with torch.set_grad_enabled(True):
        p, q = train_wmf(data, config, seed, unroll=need_grad)
        scores = p[: real_rows.shape[0]] @ q.T
        loss = adversarial_loss(scores, targets)
        grad = torch.autograd.grad(loss, fake)[0] if need_grad else None
    return loss.detach(), grad, scores.detach()


# ----------------------------------------------------------------------------- projections
def topk_projection(length: int, targets) -> Callable:
    """Rows → 0/1 profiles of exactly ``length`` items: the targets plus each row's
    ``length − len(targets)`` highest-valued other items (advrec's equal-budget profiles)."""
    t_np = np.asarray(targets, np.int64)
    n_other = int(length) - len(t_np)

    def project(x):
        t = torch.as_tensor(t_np, device=x.device)
        out = torch.zeros_like(x)
        if n_other > 0:
            s = x.detach().clone()
            s[:, t] = -torch.inf
            out.scatter_(1, torch.topk(s, n_other, dim=1).indices, 1.0)
        out[:, t] = 1.0
        return out

    return project


def threshold_projection(threshold: float) -> Callable:
    """Rows → 0/1 profiles of the entries above ``threshold`` (the official projection; the
    profile length is whatever the optimisation makes it)."""

    def project(x):
        return (x.detach() > threshold).to(x.dtype)

    return project


# ----------------------------------------------------------------------------- measures
def target_hit_ratio(scores, seen, targets, k: int) -> float:
    """Share of the (user, target) pairs with the user not holding the target whose target is
    among the user's top-``k`` unseen items (ties count against the target); NaN if none."""
    t = torch.as_tensor(np.asarray(targets, np.int64), device=scores.device)
    n_users, n_items = scores.shape
    k = min(int(k), n_items)
    chunk = max(1, _RANK_CELLS // max(1, len(t) * n_items))
    hits, eligible = 0, 0
    for lo in range(0, n_users, chunk):
        s = scores[lo: lo + chunk].masked_fill(seen[lo: lo + chunk], -torch.inf)
        st = s[:, t]
        ok = ~seen[lo: lo + chunk][:, t]
        rank = (s.unsqueeze(1) >= st.unsqueeze(2)).sum(dim=2) - 1  # others scoring >= target
        hits += int(((rank < k) & ok).sum())
        eligible += int(ok.sum())
    return hits / eligible if eligible else float("nan")


# ----------------------------------------------------------------------------- the outer loop
@dataclass
class RevAdvResult:
    """What :func:`optimise_fake_rows` found: the best fake rows (0/1, on the CPU), the outer
    epoch they were trained on (0 = the initial rows) and its measures, and every epoch's record
    (the ``evaluate`` measures of the surrogate trained on that epoch's rows, ``adv_loss``, and
    ``changes``: the entries of the fake rows the previous step flipped)."""

    rows: object
    best_epoch: int
    best: dict
    history: list[dict] = field(default_factory=list)


def optimise_fake_rows(real_rows, fake_rows, targets, *, surrogate: WMFConfig, seed: int,
                       project: Callable, evaluate: Callable[[object], dict], select: str,
                       adv_epochs: int = 30, adv_lr: float = 1.0, adv_momentum: float = 0.95,
                       normalize_grad: bool = True, fixed_columns=None,
                       progress: bool | None = False, device=None) -> RevAdvResult:
    """The unrolled bi-level optimisation of RevAdv (Algorithm 1 of the paper).

    Each of ``adv_epochs`` outer epochs retrains the surrogate from scratch (same ``seed``, so
    the same initialisation and batches every time) on ``real_rows`` + the current fake rows,
    records ``evaluate(scores of the real users)`` (a dict that holds ``select``), takes the
    adversarial gradient w.r.t. the fake rows through the unrolled epochs, zeroes it on
    ``fixed_columns`` (items the projection sets anyway, e.g. forced targets: the official
    ``click_targets`` branch), optionally scales each row's gradient to unit L2 norm, takes an
    SGD step with momentum (torch.optim.SGD's update) and ``project``-s the rows back to 0/1.
    ``fake_rows`` must already be projected.
    Returns the rows whose surrogate scored the highest ``select`` (:class:`RevAdvResult`).
    """
    dev = torch.device(device) if device is not None else real_rows.device
    real = real_rows.to(dev)
    x = fake_rows.to(dev, real.dtype).clone()
    buf, changes = None, 0
    fixed = None
    if fixed_columns is not None and len(fixed_columns):
        fixed = torch.as_tensor(np.asarray(fixed_columns, np.int64), device=dev)
    best_rows, best, best_epoch, history = None, None, -1, []
    with Progress("revadv: outer epochs", adv_epochs, enabled=progress, unit="epochs") as bar:
        for epoch in range(adv_epochs):
            last = epoch == adv_epochs - 1  # its step would never be evaluated: no gradient
            loss, grad, scores = adversarial_gradient(real, x, targets, surrogate, seed,
                                                      need_grad=not last)
            record = {"epoch": epoch, **evaluate(scores), "adv_loss": float(loss),
                      "changes": changes}
            history.append(record)
            if best is None or record[select] > best[select]:
                best_rows, best, best_epoch = x.detach().cpu().clone(), record, epoch
            bar.advance({"loss": float(loss), "validation": float(record[select])})
            if last:
                break
            if fixed is not None:
                grad[:, fixed] = 0.0
            if normalize_grad:
                grad = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-30)
            buf = grad.clone() if buf is None else buf.mul_(adv_momentum).add_(grad)
            new = project(x - adv_lr * buf)
            changes = int((new != x).sum())
            x = new
    return RevAdvResult(best_rows, best_epoch, best, history)


# ----------------------------------------------------------------------------- the attack
@dataclass(frozen=True, kw_only=True)
class RevAdvAttack(PoisoningAttack):
    """RevAdv (Tang, Wen & Wang, RecSys 2020): fake rows optimised by the gradient of the real
    users' softmax loss toward the targets through a WMF surrogate's unrolled Adam training.

    Official WMF-SGD settings by default: surrogate d ``n_factors`` 128, ``surrogate_epochs`` 50
    of which ``unroll_steps`` 10 are unrolled, Adam lr ``surrogate_lr`` 1e-2, weight decay
    ``surrogate_l2`` 1e-5, ``surrogate_batch_size`` 2048 rows (None: full batch),
    ``weight_alpha`` 20, ``init_std`` 0.1; ``adv_epochs`` 30 outer epochs of SGD (``adv_lr`` 1,
    ``adv_momentum`` 0.95) on per-row unit-norm gradients (``normalize_grad``). The fake rows
    start as real users with at most 100 interactions (drawn with the attack's generator); the
    rows returned are those whose surrogate gave the targets the best hit ratio@``select_k``
    (50) over the real users who do not hold them.

    ``projection``: ``"topk"`` (default, where we differ from the code) makes every row, after
    each step, the targets plus its highest-valued other items, ``profile_length`` items in all,
    so RevAdv spends the same budget as every other attack. The targets being always clicked,
    their gradient is zeroed before the normalisation, as the official code does when it clicks
    the targets (otherwise they hold ~98 % of each row's norm on ML-100K and the other items
    hardly move); the starting rows are cut or padded to the budget at random. ``"threshold"``
    is the official projection (entries above ``proj_threshold``, 0.05, become 1; targets not
    forced, as the code's ``click_targets=False`` for WMF; profile length free; the profiles
    returned are those rows as they are, possibly empty).

    Cost: the unrolled graph keeps, for each unrolled step, a few tensors of the batch's
    predictions (residuals, weights, the gradient's intermediates), about ``unroll_steps ×
    n_batches × batch × n_items`` floats times a constant measured at 6–9 (peak resident memory,
    ``benchmarks/bench_poisoning_synthetic.py``: 0.7 GiB for 100 unrolled full-batch steps on
    1000 × 300, 0.55 GiB for the defaults on ML-100K), so ≈ 10 × 8 × (users + fakes) × items
    floats with the defaults, an upper bound: measured on ML-1M-implicit, 1.2 GiB peak at 2, 5
    and 10 unrolled epochs alike (``benchmarks/bench_poisoning_cost.py``); the dense data matrix
    adds users × items.
    ``device``: where all of it runs (None: CUDA when available). On CUDA the scatter-adds of
    the mini-batch gradients are not bit-deterministic; on the CPU the same seed gives the same
    profiles.
    """

    n_factors: int = 128
    surrogate_epochs: int = 50
    surrogate_lr: float = 1e-2
    surrogate_l2: float = 1e-5
    surrogate_batch_size: int | None = 2048
    weight_alpha: float = 20.0
    init_std: float = 0.1
    adv_epochs: int = 30
    unroll_steps: int = 10
    adv_lr: float = 1.0
    adv_momentum: float = 0.95
    normalize_grad: bool = True
    projection: str = "topk"
    proj_threshold: float = 0.05
    select_k: int = 50
    progress: bool | None = False

    name: ClassVar[str] = "revadv"
    reference: ClassVar[str] = ("Tang, Wen & Wang, Revisiting Adversarially Learned Injection "
                                "Attacks Against Recommender Systems, RecSys 2020")
    surrogates: ClassVar[tuple[str, ...]] = ("wmf",)
    explicit: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_factors", "surrogate_epochs", "adv_epochs", "select_k"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.unroll_steps, "unroll_steps", low=1)
        if self.unroll_steps > self.surrogate_epochs:
            raise ConfigError(f"unroll_steps: must be at most surrogate_epochs "
                              f"({self.surrogate_epochs}), got {self.unroll_steps}")
        check_int(self.surrogate_batch_size, "surrogate_batch_size", low=1, none_ok=True)
        for name in ("surrogate_lr", "weight_alpha", "init_std", "adv_lr"):
            check_float(getattr(self, name), name, low=0, closed="neither")
        check_float(self.surrogate_l2, "surrogate_l2", low=0)
        check_float(self.adv_momentum, "adv_momentum", low=0, high=1, closed="left")
        check_float(self.proj_threshold, "proj_threshold", low=0, high=1, closed="neither")
        check_bool(self.normalize_grad, "normalize_grad")
        if self.progress is not None:
            check_bool(self.progress, "progress")
        object.__setattr__(self, "projection",
                           check_choice(self.projection, "projection", PROJECTIONS))
        check_device(self.device)

    def wmf_config(self) -> WMFConfig:
        """The surrogate's settings as a :class:`WMFConfig`."""
        return WMFConfig(n_factors=int(self.n_factors), epochs=int(self.surrogate_epochs),
                         unroll_steps=int(self.unroll_steps), lr=float(self.surrogate_lr),
                         l2=float(self.surrogate_l2),
                         batch_size=None if self.surrogate_batch_size is None
                         else int(self.surrogate_batch_size),
                         weight_alpha=float(self.weight_alpha), init_std=float(self.init_std))

    def _initial_rows(self, observed: Interactions, n_fake: int, rng: np.random.Generator):
        """The official start: copies of real users with at most 100 interactions (all active
        users if none qualifies), drawn without replacement while there are enough."""
        counts = observed.user_counts
        pool = np.flatnonzero((counts > 0) & (counts <= MAX_INIT_CLICKS))
        if len(pool) == 0:
            pool = observed.active_users
        return rng.choice(pool, n_fake, replace=n_fake > len(pool))

    def _optimise(self, ctx: _Context, observed: Interactions):
        device = resolve_device(self.device)
        real = dense_rows(observed, device=device)
        src = self._initial_rows(observed, ctx.n_fake, ctx.rng)
        seed = torch_seed(ctx.rng)
        start = real[torch.from_numpy(src).to(device)]
        if self.projection == "topk":
            length = self.profile_length(ctx.data, len(ctx.targets))
            project = topk_projection(length, ctx.targets)
            noise = torch.from_numpy(ctx.rng.random(start.shape, dtype=np.float32))
            start = project(start + _TIE_NOISE * noise.to(device))
        else:
            project = threshold_projection(float(self.proj_threshold))
        seen = real > 0
        key = f"target_hr@{self.select_k}"

        def evaluate(scores) -> dict:
            return {key: target_hit_ratio(scores, seen, ctx.targets, self.select_k)}

        result = optimise_fake_rows(
            real, start, ctx.targets, surrogate=self.wmf_config(), seed=seed, project=project,
            evaluate=evaluate, select=key, adv_epochs=int(self.adv_epochs),
            adv_lr=float(self.adv_lr), adv_momentum=float(self.adv_momentum),
            normalize_grad=bool(self.normalize_grad), progress=self.progress, device=device,
            fixed_columns=ctx.targets if self.projection == "topk" else None)
        rows = result.rows
        if self.projection == "topk":
            return rows  # exactly the profile: base projection keeps these items
        users, items = (a.numpy().astype(np.int64) for a in torch.nonzero(rows > 0, as_tuple=True))
        ratings = None
        if not self.implicit:
            ratings = np.full(len(items), ctx.scale.high, np.float32)
        return users, items, ratings
