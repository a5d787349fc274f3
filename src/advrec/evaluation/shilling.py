"""How much a shilling attack moved its targets, measured over the real users only.

Measures (Mobasher et al., TOIT 2007; Deldjoo et al., SIGIR 2020), each before vs after the attack,
over the real users who had not interacted with a target in the clean training data (the *eligible*
(user, target) pairs):

- **prediction shift** (rating models with ``predict``): r̂_ut(after) − r̂_ut(before), averaged
  over eligible pairs, with per-user means kept;
- **target hit ratio@k**: the share of eligible pairs whose target is in the user's top-k among
  the items the user has not interacted with (ties count against the target, as everywhere in
  advrec), and the **mean rank** of the targets (0 = first) in those lists;
- **paired significance** over users (per-user hit ratio, rank and prediction, after vs before);
- **collateral effect**: HR/nDCG@k on a test split (and RMSE/MAE for rating models) before vs
  after, with paired tests.

The fake users are never measured: after ``train.concat(fake)`` the real users keep internal ids
``0..n-1``, and every measure here scores exactly those users, masking their clean training items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.shilling import ShillingAttack, make_attack, resolve_items
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError
from advrec.evaluation.evaluator import EvaluationResult, Evaluator
from advrec.evaluation.metrics import check_ks
from advrec.evaluation.significance import compare_results, paired_test

torch = lazy("torch")

__all__ = [
    "RANK_BY",
    "CleanBaseline",
    "ShillingImpact",
    "TargetMeasures",
    "attack_impact",
    "clean_baseline",
    "measure_targets",
    "prediction_scorer",
    "rating_errors",
    "target_ranks",
]

RANK_BY = ("score", "predict")
VictimFactory = Callable[[], object]


# ----------------------------------------------------------------------------- ranks
def prediction_scorer(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scorer ranking every item by ``model.predict`` (predicted rating) for each user."""
    if not hasattr(model, "predict"):
        raise ConfigError(f"{type(model).__name__} has no predict(users, items): rank by 'score'")
    n = model.n_items_

    def score(users) -> torch.Tensor:
        u = np.asarray(torch.as_tensor(users).cpu(), dtype=np.int64)
        pred = model.predict(np.repeat(u, n), np.tile(np.arange(n, dtype=np.int64), len(u)))
        return torch.from_numpy(np.asarray(pred, np.float64).reshape(len(u), n))

    return score


def _scorer(model, rank_by: str):
    if rank_by not in RANK_BY:
        raise ConfigError(f"unknown rank_by {rank_by!r}; expected one of {RANK_BY}")
    return prediction_scorer(model) if rank_by == "predict" else model.score


def target_ranks(scorer, train: Interactions, targets: np.ndarray,
                 chunk_size: int = 256) -> np.ndarray:
    """``[train.n_users, len(targets)]`` ranks (0 = top) of each target among the user's items not
    in ``train``, NaN where the user has interacted with the target. ``targets``: internal ids.

    Rank = number of other candidates scoring >= the target (ties count against it);
    :func:`advrec.evaluation.robustness.target_hit_ratio` summarises these ranks.
    """
    score = scorer.score if hasattr(scorer, "score") else scorer
    csr = train.binary_csr
    t = torch.as_tensor(targets, dtype=torch.long)
    out = np.empty((train.n_users, len(targets)), np.float64)
    for start in range(0, train.n_users, chunk_size):
        stop = min(start + chunk_size, train.n_users)
        s = torch.as_tensor(score(torch.arange(start, stop))).detach().cpu()
        s = s.double() if s.dtype == torch.float64 or not s.is_floating_point() else s.float()
        if s.shape != (stop - start, train.n_items):
            raise DataError(f"scorer returned shape {tuple(s.shape)} for {stop - start} users; "
                            f"expected ({stop - start}, {train.n_items})")
        seen = torch.from_numpy(csr[start:stop].toarray() > 0)
        s = s.masked_fill(seen, -torch.inf)
        ts = s[:, t].contiguous()
        ascending = torch.from_numpy(np.sort(s.numpy(), axis=1))  # memory: one chunk × items
        # candidates scoring >= each target, the target itself excluded (ties against it)
        rank = (train.n_items - torch.searchsorted(ascending, ts, side="left") - 1).double()
        out[start:stop] = rank.masked_fill(seen[:, t], float("nan")).numpy()
    return out


# ----------------------------------------------------------------------------- measures
@dataclass
class TargetMeasures:
    """Target ranks of one fitted model (rows: real users, columns: targets; NaN = ineligible)."""

    ranks: np.ndarray
    predictions: np.ndarray | None = None

    @property
    def eligible(self) -> np.ndarray:
        return ~np.isnan(self.ranks)

    @property
    def users(self) -> np.ndarray:
        """Real users with at least one eligible target (the rows of the per-user values)."""
        return np.flatnonzero(self.eligible.any(axis=1))

    def hit_ratio(self, k: int) -> float:
        """Share of eligible (user, target) pairs with the target in the top-k."""
        return float(np.nanmean(np.where(self.eligible, self.ranks < k, np.nan)))

    def mean_rank(self) -> float:
        return float(np.nanmean(self.ranks))

    def per_user_hits(self, k: int) -> np.ndarray:
        """Each eligible user's share of targets in their top-k."""
        hits = np.where(self.eligible, self.ranks < k, np.nan)[self.users]
        return np.nanmean(hits, axis=1)

    def per_user_rank(self) -> np.ndarray:
        return np.nanmean(self.ranks[self.users], axis=1)

    def per_user_prediction(self) -> np.ndarray | None:
        if self.predictions is None:
            return None
        return np.nanmean(self.predictions[self.users], axis=1)


def measure_targets(model, train: Interactions, targets: np.ndarray, rank_by: str = "score",
                    chunk_size: int = 256) -> TargetMeasures:
    """Ranks (and predicted ratings, for models with ``predict`` on rated data) of the targets for
    the users of the clean ``train``; ``targets`` are internal ids."""
    ranks = target_ranks(_scorer(model, rank_by), train, targets, chunk_size)
    preds = None
    if hasattr(model, "predict") and train.ratings is not None:
        n_t = len(targets)
        users = np.repeat(np.arange(train.n_users, dtype=np.int64), n_t)
        p = np.asarray(model.predict(users, np.tile(targets, train.n_users)), np.float64)
        preds = np.where(np.isnan(ranks), np.nan, p.reshape(train.n_users, n_t))
    return TargetMeasures(ranks, preds)


def rating_errors(model, test: Interactions) -> dict[str, float] | None:
    """RMSE and MAE of ``model.predict`` on ``test``'s ratings (None without predict/ratings)."""
    if not hasattr(model, "predict") or test.ratings is None or len(test) == 0:
        return None
    err = np.asarray(model.predict(test.users, test.items), np.float64) - test.ratings
    return {"rmse": float(np.sqrt(np.mean(err * err))), "mae": float(np.mean(np.abs(err)))}


# ----------------------------------------------------------------------------- victims
def _fresh(victim) -> object:
    """A new unfitted model: call a factory/class, or clone an instance's hyper-parameters."""
    if hasattr(victim, "get_params") and not isinstance(victim, type):
        return type(victim)(**victim.get_params())
    if callable(victim):
        return victim()
    raise ConfigError(f"victim must be a model, a model class or a factory, got {victim!r}")


def _fit(victim, data: Interactions, fit_kwargs: dict | None) -> tuple[object, float]:
    model = _fresh(victim)
    start = time.perf_counter()
    model.fit(data, **(fit_kwargs or {}))
    return model, time.perf_counter() - start


@dataclass
class CleanBaseline:
    """A victim fitted on the clean data with its measures, reusable across attacks."""

    model: object
    targets: np.ndarray
    measures: TargetMeasures
    evaluation: EvaluationResult | None
    errors: dict[str, float] | None
    fit_seconds: float
    rank_by: str
    ks: tuple[int, ...]


def _evaluator(train: Interactions, test: Interactions | None, ks) -> Evaluator | None:
    if test is None:
        return None
    return Evaluator(train, test, ks=ks, metrics=("hr", "ndcg"), coverage=False)


def clean_baseline(victim, train: Interactions, test: Interactions | None, targets,
                   ks: int | Sequence[int] = (10,), rank_by: str = "score",
                   fit_kwargs: dict | None = None) -> CleanBaseline:
    """Fit ``victim`` on the clean ``train`` and measure targets (raw ids) and test accuracy."""
    ks = check_ks(ks)
    t = resolve_items(train, targets, "target")
    model, seconds = _fit(victim, train, fit_kwargs)
    ev = _evaluator(train, test, ks)
    return CleanBaseline(model, t, measure_targets(model, train, t, rank_by),
                         None if ev is None else ev.evaluate(model),
                         None if test is None else rating_errors(model, test), seconds,
                         rank_by, ks)


# ----------------------------------------------------------------------------- impact
@dataclass
class ShillingImpact:
    """Everything :func:`attack_impact` measured, before vs after one attack.

    ``hit_ratio[k] = (before, after)``, ``mean_rank = (before, after)``, ``tests[name]`` the paired
    tests (after vs before, over users): ``"hr@k"``, ``"rank"``, ``"prediction"`` and the collateral
    ``"test_hr@k"``/``"test_ndcg@k"``. ``prediction_shift`` (pair mean) and
    ``shift_per_user`` exist for rating models; ``collateral[metric] = (before, after)``.
    """

    victim: str
    attack: dict
    targets: list
    n_fake: int
    ks: tuple[int, ...]
    rank_by: str
    before: TargetMeasures
    after: TargetMeasures
    collateral: dict[str, tuple[float, float]]
    fit_seconds: float
    tests: dict[str, dict] = field(default_factory=dict)
    hit_ratio: dict[int, tuple[float, float]] = field(init=False)
    mean_rank: tuple[float, float] = field(init=False)
    prediction_shift: float | None = field(init=False)
    shift_per_user: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:
        b, a = self.before, self.after
        self.hit_ratio = {k: (b.hit_ratio(k), a.hit_ratio(k)) for k in self.ks}
        self.mean_rank = (b.mean_rank(), a.mean_rank())
        for k in self.ks:
            self.tests[f"hr@{k}"] = paired_test(a.per_user_hits(k), b.per_user_hits(k))
        self.tests["rank"] = paired_test(a.per_user_rank(), b.per_user_rank())
        self.prediction_shift = self.shift_per_user = None
        if b.predictions is not None and a.predictions is not None:
            self.prediction_shift = float(np.nanmean(a.predictions - b.predictions))
            self.shift_per_user = a.per_user_prediction() - b.per_user_prediction()
            self.tests["prediction"] = paired_test(a.per_user_prediction(),
                                                   b.per_user_prediction())

    def shift(self, k: int = 10) -> float:
        """Hit ratio@k after minus before."""
        before, after = self.hit_ratio[k]
        return after - before

    def row(self) -> dict:
        """A flat dict for a results table (one row per victim × attack × size)."""
        out: dict = {"victim": self.victim, **self.attack, "n_fake": self.n_fake,
                     "n_targets": len(self.targets), "rank_by": self.rank_by}
        out["targets"] = " ".join(map(str, self.targets))
        for k, (b, a) in self.hit_ratio.items():
            out.update({f"hr@{k}_before": b, f"hr@{k}_after": a, f"hr@{k}_shift": a - b,
                        f"hr@{k}_p": self.tests[f"hr@{k}"]["p_value"]})
        out.update(mean_rank_before=self.mean_rank[0], mean_rank_after=self.mean_rank[1],
                   mean_rank_p=self.tests["rank"]["p_value"])
        out["prediction_shift"] = self.prediction_shift
        out["prediction_shift_p"] = self.tests.get("prediction", {}).get("p_value")
        for name, (b, a) in self.collateral.items():
            out.update({f"test_{name}_before": b, f"test_{name}_after": a})
            if f"test_{name}" in self.tests:
                out[f"test_{name}_p"] = self.tests[f"test_{name}"]["p_value"]
        out["fit_seconds"] = self.fit_seconds
        return out


def _as_attack(attack: str | ShillingAttack) -> ShillingAttack:
    return attack if isinstance(attack, ShillingAttack) else make_attack(attack)


def attack_impact(victim_factory, train: Interactions, test: Interactions | None,
                  attack: str | ShillingAttack, targets, ks: int | Sequence[int] = (10,),
                  seed: int | None = 0, rank_by: str = "score",
                  baseline: CleanBaseline | None = None,
                  fit_kwargs: dict | None = None) -> ShillingImpact:
    """Fit the victim on clean and on poisoned ``train`` (the same ``fit``) and measure the attack.

    ``victim_factory``: a zero-argument factory, a model class or a model (its hyper-parameters
    are cloned). ``attack``: a :class:`ShillingAttack` or a registered name (default parameters).
    ``targets``: raw item ids. ``test`` (optional) gives the collateral accuracy. ``rank_by``:
    rank by ``model.score`` (top-N scores) or by ``predict`` (predicted ratings, the classic
    kNN top-N list; needed for nuke attacks on models whose top-N scores ignore rating values).
    ``baseline`` reuses a :func:`clean_baseline` fit (same targets, ks, rank_by).
    """
    attack = _as_attack(attack)
    ks = check_ks(ks)
    t = resolve_items(train, targets, "target")
    if baseline is None:
        baseline = clean_baseline(victim_factory, train, test, targets, ks, rank_by, fit_kwargs)
    elif (not np.array_equal(baseline.targets, t) or baseline.rank_by != rank_by
          or baseline.ks != ks):
        raise ConfigError("the clean baseline was measured for other targets, ks or rank_by")
    fake = attack.generate(train, targets, seed=seed)
    model, seconds = _fit(victim_factory, train.concat(fake), fit_kwargs)
    after = measure_targets(model, train, t, rank_by)
    collateral, tests = _collateral(baseline, model, train, test)
    return ShillingImpact(
        victim=getattr(model, "name", "") or type(model).__name__, attack=attack.params(),
        targets=train.item_ids[t].tolist(), n_fake=fake.n_users, ks=ks, rank_by=rank_by,
        before=baseline.measures, after=after, collateral=collateral,
        fit_seconds=baseline.fit_seconds + seconds, tests=tests)


def _collateral(baseline: CleanBaseline, model, train: Interactions, test: Interactions | None
                ) -> tuple[dict[str, tuple[float, float]], dict[str, dict]]:
    """Test accuracy before/after (real users only) and paired tests of the per-user metrics."""
    out: dict[str, tuple[float, float]] = {}
    tests: dict[str, dict] = {}
    if test is None:
        return out, tests
    ev = _evaluator(train, test, baseline.ks)
    after = ev.evaluate(model)
    before = baseline.evaluation
    for name in before.per_user:
        out[name] = (before.summary[name], after.summary[name])
        tests[f"test_{name}"] = compare_results(after, before, name)
    errors = rating_errors(model, test)
    if errors is not None and baseline.errors is not None:
        out.update({k: (baseline.errors[k], errors[k]) for k in errors})
    return out, tests
