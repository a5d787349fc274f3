"""Adversarial poisoning training (APT; Wu, Lian, Ge, Zhu, Chen & Yuan, "Fight Fire with Fire:
Towards Robust Recommender Systems via Adversarial Poisoning Training", SIGIR 2021; official code
github.com/Daftstone/APT, ``models/SVD.py`` and ``utils.py``).

The defender fights poisoning with poisoning: it injects its own fake users, *ERM users*, whose
ratings are chosen to **lower** the empirical risk of the model on the training data, and trains
the victim with them. The paper proves this raises the upper bound of poisoning robustness. One
round, as the official ``train``/``influence_user``:

1. **influence of each item's rating on the risk.** Under a rating MF θ fitted on the training
   data D, ``I_j = −∇R(θ)ᵀ H⁻¹ ∂_{r_j} ∇_θ ℓ(z, θ)``: the first-order change of the empirical risk
   R (mean squared error over D) when a user z raises its rating of item j (Koh & Liang's
   perturbation influence). ``H`` is the Hessian of the MF's training objective; ``ℓ(z, ·)`` the
   squared error of z's whole rating row (zeros included, as the official ``per_loss``), summed
   over the ``template_users`` real users of smallest rating-vector norm (``cal_neighbor``);
2. **ERM users.** Each one rates ``profile_size`` items drawn without replacement among the items
   of negative influence (raising them lowers the risk), with probability ∝
   ``exp(temperature · (1 − (I_j − min I) / (max I − min I)))`` (the official min–max
   normalisation to [−1e-4, 0] times ``ts``: temperature = ts · 1e-4 = 20 on ml-100k and ml-1m);
   its rating of item j is drawn from N(mean_j, std_j) of j's ratings, rounded to the rating
   scale, raised by ``up`` times the top rating (one star of five), rounded and clipped;
3. **training** of the victim on D ∪ ERM users.

Where advrec differs from the official code (which trains one MF by Adagrad and refreshes the ERM
users every 2 epochs from epoch 15 of 25, i.e. five times): advrec's victims are trained by their
own ``fit``, so APT alternates whole fits and refreshes, ``rounds`` times (each refresh uses the
model trained with the previous ERM users, as the official refresh does); ``H⁻¹v`` is a damped
conjugate-gradient solve on exact Hessian-vector products (the official LiSSA runs 1,000
stochastic iterations towards the same vector); the sigmoid the official code puts around the
risk only rescales the gradient, which the min–max normalisation removes; ratings stay in the
data's own units. The influence model is the victim itself when it is advrec's ``MF`` (the
paper's victim), else an ``MF`` of 64 factors fitted by the defender on the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import smallest_keys
from advrec.errors import DataError, ParamError
from advrec.validation import check_float, check_int

torch = lazy("torch")

__all__ = ["PARAMS", "APTResult", "ERM_PREFIX", "apt_fit", "check_params", "erm_users",
           "item_influence"]

ERM_PREFIX = "apt-erm"  # raw ids of the defender's users: "apt-erm-0", "apt-erm-1", ...
_INTS = ("n_erm", "profile_size", "template_users", "rounds", "cg_steps")  # each >= 1
_REALS = ("temperature", "up", "damping")  # each >= 0
PARAMS = (*_INTS, *_REALS)
"""APT's hyper-parameters (experiment files give them as a defence's ``params``)."""


def check_params(params: dict[str, Any]) -> None:
    """A ParamError naming the first unknown or out-of-range APT hyper-parameter."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ParamError(unknown[0], f"is not an APT parameter; allowed: {', '.join(PARAMS)}")
    for name, value in params.items():
        if name in _INTS:
            check_int(value, name, low=1)
        else:
            check_float(value, name, low=0)


def _tables(model) -> list:
    """The fitted MF's parameters (P, Q, b_u, b_i) as float64 leaves."""
    return [t.detach().double().clone().requires_grad_(True)
            for t in (model.user_factors_, model.item_factors_, model.user_bias_,
                      model.item_bias_)]


def _residuals(tables, mean: float, u, i, y):
    p, q, bu, bi = tables
    return y - mean - bu[u] - bi[i] - (p[u] * q[i]).sum(1)


def item_influence(model, data: Interactions, template_users: int = 10, damping: float = 0.01,
                   cg_steps: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(I_j for every item, the template users): the influence of raising item j's rating, in the
    rows of the ``template_users`` active users of smallest rating-vector norm, on the empirical
    risk of the fitted ``model`` (advrec's :class:`~advrec.models.mf.MF`) on ``data``. Negative:
    the rating lowers the risk. ``H⁻¹∇R`` by ``cg_steps`` damped conjugate-gradient steps."""
    template_users = check_int(template_users, "template_users", low=1)
    damping = check_float(damping, "damping", low=0)
    cg_steps = check_int(cg_steps, "cg_steps", low=1)
    if data.ratings is None:
        raise DataError("APT needs ratings: its influence model is a rating MF (Wu et al.); "
                        f"{data.name or 'the data'} is implicit feedback")
    tables = _tables(model)
    dev = tables[0].device
    u = torch.from_numpy(data.users.astype(np.int64)).to(dev)
    i = torch.from_numpy(data.items.astype(np.int64)).to(dev)
    y = torch.from_numpy(data.ratings.astype(np.float64)).to(dev)
    mean, reg = float(model.global_mean_), float(model.reg)
    err = _residuals(tables, mean, u, i, y)
    grad_risk = torch.autograd.grad((err * err).mean(), tables, retain_graph=True)
    p, q, bu, bi = tables
    pu, qi = p[u], q[i]
    objective = 0.5 * (err * err + reg * ((pu * pu).sum(1) + (qi * qi).sum(1)
                                          + bu[u] ** 2 + bi[i] ** 2)).mean()
    grads = torch.autograd.grad(objective, tables, create_graph=True)

    def hvp(v):
        dot = sum((g * x).sum() for g, x in zip(grads, v, strict=True))
        out = torch.autograd.grad(dot, tables, retain_graph=True)
        return [h.detach() + damping * x for h, x in zip(out, v, strict=True)]

    s = _conjugate_gradients(hvp, [g.detach() for g in grad_risk], cg_steps)
    norms = np.sqrt(np.bincount(data.users, data.ratings.astype(np.float64) ** 2,
                                minlength=data.n_users))
    active = np.flatnonzero(np.bincount(data.users, minlength=data.n_users) > 0)
    templates = active[np.argsort(norms[active], kind="stable")[:template_users]]
    t = torch.from_numpy(templates.astype(np.int64)).to(dev)
    sp, sq, sbu, sbi = s
    p_, q_ = p.detach(), q.detach()
    # −∂_{r_j}(∇_θ ℓ(z)·s) summed over the templates, ℓ(z) = mean_j (r_j − r̂_zj)²: the closed form
    # (2/n_items) Σ_z (q_j·s_p[z] + p_z·s_q[j] + s_bu[z] + s_bi[j])
    infl = (q_ @ sp[t].sum(0) + sq @ p_[t].sum(0) + float(sbu[t].sum())
            + len(templates) * sbi) * (2.0 / data.n_items)
    return infl.cpu().numpy(), templates


def _conjugate_gradients(apply: Callable[[list], list], b: list, steps: int) -> list:
    """x with apply(x) = b (apply symmetric positive definite), blocks of tensors."""
    x = [torch.zeros_like(v) for v in b]
    r = [v.clone() for v in b]
    d = [v.clone() for v in r]
    rr = sum(float((v * v).sum()) for v in r)
    tol = 1e-20 * max(rr, 1e-300)
    for _ in range(int(steps)):
        if rr <= tol:
            break
        ad = apply(d)
        alpha = rr / sum(float((a * v).sum()) for a, v in zip(ad, d, strict=True))
        x = [xv + alpha * dv for xv, dv in zip(x, d, strict=True)]
        r = [rv - alpha * av for rv, av in zip(r, ad, strict=True)]
        rr_new = sum(float((v * v).sum()) for v in r)
        d = [rv + (rr_new / rr) * dv for rv, dv in zip(r, d, strict=True)]
        rr = rr_new
    return x


def _rating_scale(ratings: np.ndarray) -> tuple[float, float, float]:
    """(lowest, highest rating, grid step): the smallest gap between distinct values, 1 if one."""
    values = np.unique(ratings.astype(np.float64))
    step = float(np.min(np.diff(values))) if len(values) > 1 else 1.0
    return float(values[0]), float(values[-1]), step


def erm_users(influence: np.ndarray, data: Interactions, n_erm: int = 50, profile_size: int = 400,
              temperature: float = 20.0, up: float = 0.2,
              rng: np.random.Generator | None = None) -> Interactions:
    """``n_erm`` ERM users (new users only, ids ``apt-erm-<j>``): each rates ``profile_size`` of
    the items of negative ``influence`` (all of them if fewer), drawn without replacement with
    probability ∝ exp(temperature · (1 − normalised influence)) (Gumbel top-k), at ratings
    N(mean_j, std_j) of item j's ratings rounded to the scale, plus ``up`` × the top rating,
    rounded and clipped to the data's range. No candidate item: no ERM user."""
    n_erm = check_int(n_erm, "n_erm", low=1)
    profile_size = check_int(profile_size, "profile_size", low=1)
    temperature = check_float(temperature, "temperature", low=0)
    up = check_float(up, "up", low=0)
    rng = np.random.default_rng(0) if rng is None else rng
    influence = np.asarray(influence, np.float64)
    candidates = np.flatnonzero(influence < 0)
    ids = np.array([f"{ERM_PREFIX}-{j}" for j in range(n_erm if len(candidates) else 0)],
                   dtype=object)
    empty = np.zeros(0, np.int64)
    if not len(candidates):
        return Interactions(empty, empty, ids, data.item_ids, np.zeros(0, np.float32),
                            None if data.timestamps is None else empty, "apt-erm")
    lo, hi, step = _rating_scale(data.ratings)
    inf = influence[candidates]
    spread = inf.max() - inf.min()
    scaled = (inf - inf.min()) / spread if spread > 0 else np.zeros_like(inf)
    logits = temperature * (1.0 - scaled)
    k = min(profile_size, len(candidates))
    keys = -(logits[None, :] + rng.gumbel(size=(n_erm, len(candidates))))
    items = candidates[smallest_keys(keys, k)]  # [n_erm, k], rows ascending
    counts = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    r = data.ratings.astype(np.float64)
    s1 = np.bincount(data.items, r, minlength=data.n_items)
    s2 = np.bincount(data.items, r * r, minlength=data.n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, s1 / counts, hi)
        std = np.where(counts > 0, np.sqrt(np.maximum(s2 / counts - mean ** 2, 0.0)), 0.0)
    draw = np.clip(rng.normal(mean[items], std[items]), 0.0, hi)
    draw = np.round(draw / step) * step + up * hi
    ratings = np.clip(np.round(draw / step) * step, lo, hi)
    users = np.repeat(np.arange(n_erm, dtype=np.int64), k)
    timestamps = None
    if data.timestamps is not None:
        timestamps = np.full(len(users), int(data.timestamps.max()) + 1, np.int64)
    return Interactions(users, items.reshape(-1), ids, data.item_ids,
                        ratings.reshape(-1).astype(np.float32), timestamps, "apt-erm")


@dataclass
class APTResult:
    """The victim trained with ERM users, those users, and what chose them."""

    model: Any
    erm: Interactions  # the last round's ERM users (new users only)
    influence: np.ndarray  # I_j of every item under the influence model of the last round
    templates: np.ndarray  # the template users of the last round
    rounds: int

    def summary(self) -> dict[str, Any]:
        """What a result store keeps: counts and the influence's spread, not the arrays."""
        return {"rounds": self.rounds, "n_erm": int(self.erm.n_users),
                "erm_ratings": int(len(self.erm)),
                "candidate_items": int((self.influence < 0).sum()),
                "influence_min": float(self.influence.min()),
                "influence_max": float(self.influence.max()),
                "templates": [int(t) for t in self.templates]}


def apt_fit(fit: Callable[[Interactions], Any], data: Interactions, n_erm: int = 50,
            profile_size: int = 400, temperature: float = 20.0, up: float = 0.2,
            template_users: int = 10, rounds: int = 1, damping: float = 0.01,
            cg_steps: int = 100, seed: int = 0,
            surrogate: Callable[[Interactions], Any] | None = None) -> APTResult:
    """Adversarial poisoning training (Wu et al., SIGIR 2021): fit, inject ERM users that lower
    the empirical risk, refit on the data with them (``rounds`` times).

    ``fit`` returns a fresh model fitted on the data it is given. The influence model of a round
    is the round's model when it is advrec's ``MF``, else ``surrogate(data ∪ ERM)`` (default: an
    ``MF`` of 64 factors with ``seed``); the influences are always of the risk on ``data``. The
    returned model is trained on ``data`` plus the last ERM users, appended after ``data``'s
    users (their ids come after every id of ``data``, so the evaluation of real users is
    unchanged).
    """
    from advrec.models.mf import MF

    check_params({"n_erm": n_erm, "profile_size": profile_size, "temperature": temperature,
                  "up": up, "template_users": template_users, "rounds": rounds,
                  "damping": damping, "cg_steps": cg_steps})
    if data.ratings is None:
        raise DataError("APT needs ratings: its ERM users rate items and its influence model is "
                        f"a rating MF (Wu et al.); {data.name or 'the data'} is implicit feedback")
    if surrogate is None:
        def surrogate(d: Interactions):
            return MF(n_factors=64, seed=seed).fit(d, progress=False)
    rng = np.random.default_rng(seed)
    model, current = fit(data), data
    for _ in range(int(rounds)):
        influencer = model if isinstance(model, MF) else surrogate(current)
        influence, templates = item_influence(influencer, data, template_users, damping,
                                              cg_steps)
        erm = erm_users(influence, data, n_erm, profile_size, temperature, up, rng)
        current = data.concat(erm) if erm.n_users else data
        model = fit(current)
    return APTResult(model, erm, influence, templates, int(rounds))
