"""Validation callables for model selection: what ``fit(train, validate=...)`` calls.

A model that selects its epoch or stops early on validation takes a callable
``validate(model) -> float`` (higher is better) and calls it while it trains; it never builds an
:class:`~advrec.evaluation.evaluator.Evaluator` itself, because ``models`` sits below
``evaluation`` in the layer table. The caller builds the callable here:

* :func:`metric_validator` ``(train, valid, metric)``: one metric of the model on ``valid``
  (full ranking over the items not in ``train``), for any model; the callable also carries
  ``popularity``, the same metric of ItemPop fitted on ``train`` (the baseline a selected epoch
  must beat: CFGAN and IRGAN warn when theirs does not);
* :func:`holdout_validation` ``(model, train)``: the ``fit`` keywords that reproduce a model's
  own validation hold-out (CFGAN, IRGAN: ``valid_ratio``, ``valid_metric``, ...), i.e.
  ``model.fit(train, **holdout_validation(model, train))``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advrec.data.interactions import Interactions
from advrec.errors import ParamError
from advrec.evaluation.evaluator import Evaluator
from advrec.metric_names import metric_key, parse_metric
from advrec.models.base import Recommender
from advrec.models.itempop import ItemPop
from advrec.validation import plain

Validate = Callable[[Any], float]


class MetricValidator:
    """``validate(model) -> float``: one metric of the model on a validation split.

    ``metric`` is the metric's key (e.g. ``"precision@5"``); ``popularity`` is the same metric
    of :class:`~advrec.models.itempop.ItemPop` fitted on the split's ``train`` part, measured
    once, on first use (a model that selects its epoch reads it after training to check that
    the chosen epoch beats popularity; see ``min_select_epoch`` of CFGAN and IRGAN).
    """

    def __init__(self, evaluator: Evaluator, train: Interactions, metric: str):
        self._evaluator = evaluator
        self._train = train
        self.metric = metric
        self._popularity: float | None = None

    def __call__(self, model: Any) -> float:
        return self._evaluator.evaluate(model).summary[self.metric]

    @property
    def popularity(self) -> float:
        """ItemPop's value of ``metric`` on this split (computed once)."""
        if self._popularity is None:
            self._popularity = float(self(ItemPop().fit(self._train)))
        return self._popularity

    def __repr__(self) -> str:
        return f"MetricValidator({self.metric!r})"


def metric_validator(train: Interactions, valid: Interactions, metric: str = "ndcg@10",
                     **evaluator_options: Any) -> MetricValidator:
    """``validate(model) -> float``: ``metric`` (e.g. ``"precision@5"``; a rank metric without
    a cut-off takes 10) of the model on ``valid``, ranking every item not in ``train``; its
    ``popularity`` attribute is ItemPop's value (fitted on ``train``) on the same split.

    The :class:`Evaluator` is built once, here (so a wrong split or metric is refused before any
    training); ``evaluator_options`` go to it (``device``, ``chunk_size``, ``protocol``, ...;
    catalogue coverage is never computed).
    """
    name, k = parse_metric(metric, default_k=10, argument="metric")
    evaluator = Evaluator(train, valid, ks=(k or 10,), metrics=(name,),
                          **{"coverage": False, **evaluator_options})
    return MetricValidator(evaluator, train, metric_key(name, k))


def holdout_validation(model: Recommender, train: Interactions) -> dict[str, Any]:
    """The ``fit`` keywords of ``model``'s own validation hold-out: ``{"validate": f, "valid":
    held}``, where ``model.holdout_split(train)`` carves ``(rest, held)`` as its parameters say
    and ``f`` measures ``valid_metric`` on ``held`` with ``rest``'s items masked (a
    :class:`MetricValidator`: ``f.popularity`` is ItemPop's value on the same split, the
    baseline the chosen epoch is checked against); ``{}`` when the model asks for no hold-out
    (``valid_ratio=0``). Use it as
    ``model.fit(train, **holdout_validation(model, train))``: the epoch is chosen exactly as the
    model describes (CFGAN, IRGAN).
    """
    if not isinstance(model, Recommender) or getattr(type(model), "holdout_split", None) is None:
        got = type(model).__name__ if isinstance(model, Recommender) else plain(model)
        raise ParamError("model", f"expected a model with a validation hold-out of its own "
                                  f"(valid_ratio: CFGAN, IRGAN), got {got}; build validate "
                                  f"with metric_validator(train, valid, metric)")
    split = model.holdout_split(train)
    if split is None:
        return {}
    rest, held = split
    return {"validate": metric_validator(rest, held, model.valid_metric), "valid": held}


__all__ = ["MetricValidator", "Validate", "holdout_validation", "metric_validator"]
