"""Adversarial perturbations of a trained model's parameter blocks (He et al., SIGIR'18).

The model is never modified: each function returns Δ = ``{block: tensor}`` and the model scores
under it with ``model.score(users, perturbation=Δ)``. Directions come from
`advrec.training.perturbation`, the same functions APR uses inside training.

Objectives J(Δ) that the attacker *increases*:

- untargeted: the BPR training loss Σ softplus(−(ŷ_ui − ŷ_uj)) over every training pair (u, i)
  with one seeded uniform negative j (accumulated over batches);
- targeted ``push``: −Σ softplus(−(ŷ_ut − ŷ_ui)) over training pairs (u, i) and targets t the
  user has not interacted with: raise each target above the user's own positives;
- targeted ``nuke``: −Σ softplus(−(ŷ_uj − ŷ_ut)) over the same users and their sampled
  negatives j: sink each target below items the user never chose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import UniformSampler
from advrec.errors import ConfigError, DataError
from advrec.models.base import MODELS, Recommender
from advrec.training.perturbation import (
    check_eps,
    check_norm,
    fgsm_direction,
    project,
    random_direction,
)
from advrec.validation import check_float, check_int
from advrec.vocabulary import PERTURBATIONS, TARGET_MODES

torch = lazy("torch")
F = lazy("torch.nn.functional")

METHODS = PERTURBATIONS
MODES = TARGET_MODES
Perturbation = dict[str, "torch.Tensor"]


@dataclass
class AttackObjective:
    """The attacker's objective over a training set; its gradient w.r.t. Δ drives the attack."""

    model: object
    train: Interactions
    targets: np.ndarray | None = None
    mode: str = "push"
    seed: int = 0
    batch_size: int = 65536

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown target mode {self.mode!r}; expected push or nuke")
        if (self.train.n_users, self.train.n_items) != (self.model.n_users_, self.model.n_items_):
            raise DataError(f"the attack data has {self.train.n_users} users × "
                            f"{self.train.n_items} items, the model {self.model.n_users_} × "
                            f"{self.model.n_items_}: use the model's training data")
        seen = getattr(self.model, "seen_", None)
        mine = self.train.binary_csr
        if seen is not None and (seen.nnz != mine.nnz or
                                 not np.array_equal(seen.indptr, mine.indptr) or
                                 not np.array_equal(seen.indices, mine.indices)):
            raise DataError("the attack data is not the model's training data (the gradient of "
                            "the training loss needs the pairs the model was trained on)")
        sampler = UniformSampler(self.train, seed=self.seed)
        self._users, self._pos, self._neg = sampler.triples(shuffle=False)
        self._is_positive = sampler.is_positive
        if self.targets is not None:
            self.targets = check_targets(self.targets, self.train.n_items)

    def gradient(self, delta: Perturbation) -> tuple[Perturbation, float]:
        """∇_Δ J at Θ + Δ (equal to ∇_Θ J there) for every block in ``delta``, and J itself."""
        leaves = {b: d.detach().requires_grad_(True) for b, d in delta.items()}
        grads = {b: torch.zeros_like(d) for b, d in delta.items()}
        total = 0.0
        for start in range(0, len(self._users), self.batch_size):
            stop = start + self.batch_size
            value = self._batch_value(self._users[start:stop], self._pos[start:stop],
                                      self._neg[start:stop], leaves)
            for b, g in zip(leaves, torch.autograd.grad(value, list(leaves.values())),
                            strict=True):
                grads[b] += g
            total += float(value.detach())
        return grads, total

    def _batch_value(self, users, pos, neg, delta) -> torch.Tensor:
        dev = next(iter(delta.values())).device
        u, i, j = (torch.from_numpy(a).to(dev) for a in (users, pos, neg))
        score = self.model.pair_scores
        if self.targets is None:
            return F.softplus(-(score(u, i, delta) - score(u, j, delta))).sum()
        t = torch.from_numpy(self.targets).to(dev)
        keep = ~torch.from_numpy(self._is_positive(np.repeat(users, len(self.targets)),
                                                   np.tile(self.targets, len(users))))
        keep = keep.reshape(len(users), len(self.targets)).to(dev)
        s_t = score(u[:, None], t[None, :], delta)
        other = i if self.mode == "push" else j
        s_o = score(u, other, delta)[:, None]
        margin = s_t - s_o if self.mode == "push" else s_o - s_t
        return -(F.softplus(-margin) * keep).sum()


def check_targets(targets, n_items: int) -> np.ndarray:
    """Target items as a non-empty array of distinct internal ids (clear error otherwise)."""
    t = np.unique(np.asarray(targets, dtype=np.int64).reshape(-1))
    if len(t) == 0:
        raise ConfigError("targets must name at least one item")
    if t.min() < 0 or t.max() >= n_items:
        raise DataError(f"target items must be internal ids in 0..{n_items - 1}; got "
                        f"{t[(t < 0) | (t >= n_items)][:5].tolist()}")
    return t


def _blocks(model, blocks: str | Sequence[str]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    if not isinstance(model, Recommender) or not model.supports("parameter_blocks"):
        able = [name for name, cls in MODELS.items() if cls.supports("parameter_blocks")]
        raise ConfigError(f"{type(model).__name__} exposes no parameter blocks to perturb; "
                          f"parameter attacks need a model that declares them: "
                          f"{', '.join(able)}")
    tables = model.parameter_blocks()
    if isinstance(blocks, str):
        blocks = tuple(tables) if blocks in ("both", "all") else (blocks,)
    blocks = tuple(blocks)
    unknown = [b for b in blocks if b not in tables]
    if unknown or not blocks:
        raise ConfigError(f"unknown parameter block(s) {unknown or blocks}; "
                          f"{type(model).__name__} has {sorted(tables)} (or 'both')")
    return tables, blocks


def _zeros(tables, blocks) -> Perturbation:
    return {b: torch.zeros_like(tables[b].detach()) for b in blocks}


def fgsm_gradient(model, train: Interactions, blocks: str | Sequence[str] = "both",
                  targets=None, mode: str = "push", seed: int = 0) -> Perturbation:
    """∇J at the trained parameters (Δ = 0): FGSM's direction before its scaling. It does not
    depend on ε, so an ε sweep computes it once and gives it to :func:`fgsm`."""
    tables, blocks = _blocks(model, blocks)
    objective = AttackObjective(model, train, targets, mode, seed)
    grads, _ = objective.gradient(_zeros(tables, blocks))
    return grads


def fgsm(model, train: Interactions, eps: float, blocks: str | Sequence[str] = "both",
         norm: str = "l2", targets=None, mode: str = "push", seed: int = 0,
         gradient: Perturbation | None = None) -> Perturbation:
    """One fast-gradient step of size ε along ∇J at the trained parameters (APR form per row);
    ``gradient``: that ∇J from :func:`fgsm_gradient` with the same options, if already known."""
    eps, norm = check_eps(eps), check_norm(norm)
    if gradient is None:
        gradient = fgsm_gradient(model, train, blocks, targets, mode, seed)
    return {b: fgsm_direction(g, eps, norm) for b, g in gradient.items()}


def random_perturbation(model, eps: float, blocks: str | Sequence[str] = "both",
                        norm: str = "l2", seed: int = 0) -> Perturbation:
    """Random noise of the same size as FGSM: every row has L2 norm ε (or entries ±ε for linf)."""
    eps, norm = check_eps(eps), check_norm(norm)
    tables, blocks = _blocks(model, blocks)
    gen = torch.Generator().manual_seed(int(seed))
    return {b: random_direction(tables[b].detach(), eps, norm, gen) for b in blocks}


def pgd(model, train: Interactions, eps: float, blocks: str | Sequence[str] = "both",
        norm: str = "l2", steps: int = 10, step_size: float | None = None, targets=None,
        mode: str = "push", random_start: bool = False, seed: int = 0) -> Perturbation:
    """Iterative FGSM (BIM / PGD, Kurakin et al. 2017; Madry et al. 2018): ``steps`` steps of
    ``step_size`` (default 2.5·ε/steps), each projected back onto the per-row ε-ball."""
    eps, norm = check_eps(eps), check_norm(norm)
    steps = check_int(steps, "steps", low=1)
    step_size = check_float(step_size, "step_size", low=0, closed="neither", none_ok=True)
    alpha = 2.5 * eps / steps if step_size is None else step_size
    tables, blocks = _blocks(model, blocks)
    objective = AttackObjective(model, train, targets, mode, seed)
    if random_start:
        delta = random_perturbation(model, eps, blocks, norm, seed)
    else:
        delta = _zeros(tables, blocks)
    for _ in range(int(steps)):
        grads, _ = objective.gradient(delta)
        delta = {b: project(delta[b] + fgsm_direction(grads[b], alpha, norm), eps, norm)
                 for b in blocks}
    return delta


def perturb(model, train: Interactions, method: str, eps: float, **kwargs) -> Perturbation:
    """Dispatch by name: ``fgsm``, ``random`` or ``pgd`` (options as the functions take)."""
    if method == "fgsm":
        return fgsm(model, train, eps, **_only(kwargs, "blocks", "norm", "targets", "mode", "seed",
                                               "gradient"))
    if method == "random":
        return random_perturbation(model, eps, **_only(kwargs, "blocks", "norm", "seed"))
    if method == "pgd":
        return pgd(model, train, eps, **kwargs)
    raise ConfigError(f"unknown attack method {method!r}; expected one of {', '.join(METHODS)}")


def _only(kwargs: dict, *names: str) -> dict:
    extra = set(kwargs) - set(names)
    if extra:
        raise ConfigError(f"option(s) {sorted(extra)} do not apply to this method")
    return kwargs


def perturbed_scorer(model, perturbation: Perturbation | None) -> Callable[[torch.Tensor],
                                                                             torch.Tensor]:
    """A ``users -> scores`` callable for the Evaluator: the model scored under Δ."""
    def scorer(users: torch.Tensor) -> torch.Tensor:
        return model.score(users, perturbation=perturbation)

    return scorer
