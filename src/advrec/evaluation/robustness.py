"""Robustness measures: a model evaluated under a parameter perturbation, relative changes of every
metric, paired significance of the change over users, and sweeps over ε for adversarial and
random perturbations (He et al., SIGIR'18, Fig. 2 and Table 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.perturbation import check_targets, fgsm_gradient, perturb, perturbed_scorer
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError
from advrec.evaluation.evaluator import EvaluationResult, Evaluator
from advrec.evaluation.shilling import target_ranks
from advrec.evaluation.significance import compare_results

torch = lazy("torch")


def relative_change(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """(after − before) / before per metric (−0.21 = a 21 % drop; nan where before = 0)."""
    return {k: (after[k] - before[k]) / before[k] if before[k] else float("nan")
            for k in before if k in after}


@dataclass
class AttackOutcome:
    """A model's metrics before and after one perturbation, with the changes and their p-values."""

    method: str
    eps: float
    before: EvaluationResult
    after: EvaluationResult
    perturbation: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    change: dict[str, float] = field(init=False)
    p_values: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.change = relative_change(self.before.summary, self.after.summary)
        self.p_values = {m: compare_results(self.after, self.before, m)["p_value"]
                         for m in self.before.per_user}

    def row(self) -> dict:
        """A flat dict: method, eps, each metric before/after, its relative change and p-value."""
        out: dict = {"method": self.method, "eps": self.eps}
        for m, v in self.before.summary.items():
            out[f"{m}"] = v
            out[f"{m}_attacked"] = self.after.summary[m]
            out[f"{m}_change"] = self.change[m]
            if m in self.p_values:
                out[f"{m}_p"] = self.p_values[m]
        return out


def attack_and_evaluate(model, train: Interactions, evaluator: Evaluator, method: str,
                        eps: float, before: EvaluationResult | None = None,
                        **attack_options) -> AttackOutcome:
    """Build a perturbation of ``model`` (see `advrec.attacks.perturb`) and evaluate under it."""
    before = evaluator.evaluate(model) if before is None else before
    delta = perturb(model, train, method, eps, **attack_options)
    after = evaluator.evaluate(perturbed_scorer(model, delta))
    return AttackOutcome(method, float(eps), before, after, delta)


def epsilon_sweep(model, train: Interactions, evaluator: Evaluator,
                  eps_values: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
                  methods: Sequence[str] = ("fgsm", "random"), **attack_options
                  ) -> list[AttackOutcome]:
    """Every (method, ε) pair against one clean evaluation of ``model``; FGSM's gradient, which
    does not depend on ε, is computed once for the whole sweep."""
    if not eps_values:
        raise ConfigError("eps_values must not be empty")
    before = evaluator.evaluate(model)
    outcomes = []
    for method in methods:
        options = dict(attack_options)
        if method == "fgsm":
            given = {k: v for k, v in attack_options.items()
                     if k in ("blocks", "targets", "mode", "seed")}
            options["gradient"] = fgsm_gradient(model, train, **given)
        outcomes += [attack_and_evaluate(model, train, evaluator, method, eps, before, **options)
                     for eps in eps_values]
    return outcomes


def target_hit_ratio(scorer, train: Interactions, targets, k: int = 10,
                     chunk_size: int = 512) -> dict[str, float]:
    """Hit ratio@k and mean rank of target items among the users who have not interacted with
    them (the measure of targeted and shilling attacks). ``scorer`` is a model or a callable."""
    targets = check_targets(targets, train.n_items)
    ranks = target_ranks(scorer, train, targets, chunk_size)
    eligible = ~np.isnan(ranks)
    count = int(eligible.sum())
    if count == 0:
        raise ConfigError("every user has already interacted with the target items")
    return {f"target_hr@{k}": float((ranks[eligible] < k).sum()) / count,
            "target_mean_rank": float(ranks[eligible].sum()) / count,
            "target_pairs": count}


def sweep_rows(outcomes: Sequence[AttackOutcome]) -> list[dict]:
    return [o.row() for o in outcomes]


def category_hit_ratio(scorer, evaluator: Evaluator, in_category, ks: Sequence[int] = (10,)
                       ) -> dict[str, float]:
    """Category hit ratio@k (TAaMR, Di Noia et al., DSN-W'20): the share of the top-k slots of
    the evaluator's users (training items excluded) that items of one category fill, averaged
    over users; ``in_category`` is a boolean mask over items. One top-k pass at the largest k."""
    mask = np.asarray(in_category, dtype=bool).reshape(-1)
    if mask.shape[0] != evaluator.n_items:
        raise ConfigError(f"in_category has {mask.shape[0]} entries, the data "
                          f"{evaluator.n_items} items")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks must be positive cut-offs, got {ks}")
    top = evaluator.top_k(scorer, ks[-1])
    hits = np.where(top >= 0, mask[np.clip(top, 0, None)], False)
    return {f"chr@{k}": float(hits[:, :k].mean()) for k in ks}
