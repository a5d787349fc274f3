"""Epoch selection on validation: the validation callable's popularity baseline and the guard
every model that selects its epoch shares (minimum epoch, comparison with ItemPop, warning)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from advrec.data import Interactions
from advrec.data.splits import validation_split
from advrec.evaluation import Evaluator, metric_validator
from advrec.evaluation.selection import MetricValidator
from advrec.models import ItemPop
from advrec.models.gan.cfgan import (
    EpochSelector,
    SelectionWarning,
    beats_baseline,
    validation_baseline,
)


def random_data(n_users: int = 40, n_items: int = 60, per_user: int = 10, seed: int = 0
                ) -> Interactions:
    rng = np.random.default_rng(seed)
    # a skewed catalogue, so that popularity is a real baseline
    p = 1.0 / np.arange(1, n_items + 1)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False, p=p / p.sum())
                            for _ in range(n_users)])
    users = np.repeat(np.arange(n_users), per_user)
    return Interactions(users, items, np.arange(n_users), np.arange(n_items))


class Scripted:
    """``validate(model)``: the next value of ``values`` per call, with a popularity baseline."""

    def __init__(self, values, popularity=None, metric="precision@5"):
        self.values, self.calls = list(values), 0
        self.metric = metric
        if popularity is not None:
            self.popularity = popularity

    def __call__(self, model) -> float:
        self.calls += 1
        return self.values[self.calls - 1]


# ----------------------------------------------------------------------------- the baseline
def test_metric_validator_carries_itempop_on_the_same_split_computed_once(monkeypatch):
    data = random_data()
    rest, held = validation_split(data, "random", 0.2, seed=0)
    validate = metric_validator(rest, held, "precision@5")
    assert isinstance(validate, MetricValidator) and validate.metric == "precision@5"
    by_hand = Evaluator(rest, held, ks=(5,), metrics=("precision",), coverage=False)
    pop = by_hand.evaluate(ItemPop().fit(rest))["precision@5"]
    assert validate(ItemPop().fit(rest)) == pop  # still a plain validate(model) -> float
    fits = []
    real_fit = ItemPop.fit
    monkeypatch.setattr(ItemPop, "fit", lambda self, train: fits.append(1) or real_fit(self, train))
    assert validate.popularity == pytest.approx(pop) and pop > 0
    assert validate.popularity == pytest.approx(pop) and len(fits) == 1  # cached
    assert validation_baseline(validate) == pytest.approx(pop)


def test_a_plain_callable_has_no_baseline_and_an_attribute_is_one():
    assert validation_baseline(lambda m: 0.0) is None

    def validate(model):
        return 0.0

    validate.popularity = 0.25
    assert validation_baseline(validate) == 0.25


def test_ties_beyond_rounding_are_no_better():
    assert not beats_baseline(0.11880000000000002, 0.1188)  # measured: two means of one split
    assert not beats_baseline(0.1, 0.1) and not beats_baseline(0.09, 0.1)
    assert beats_baseline(0.1192, 0.1188)
    assert not beats_baseline(float("nan"), 0.1)


# ----------------------------------------------------------------------------- the guard
def test_selection_never_picks_an_epoch_before_the_minimum():
    sel = EpochSelector("m", Scripted([]), min_epoch=3, last=6)
    offered = [sel.offer(e, v) for e, v in enumerate([0.9, 0.8, 0.7, 0.3, 0.2, 0.4, 0.1], 0)]
    assert offered == [False, False, False, True, False, True, False]
    assert (sel.epoch, sel.value) == (5, 0.4)
    # ties keep the earlier epoch
    sel = EpochSelector("m", Scripted([]), min_epoch=1, last=4)
    assert [sel.offer(e, 0.5) for e in (1, 2, 3)] == [True, False, False] and sel.epoch == 1


def test_the_minimum_is_capped_at_the_last_epoch():
    sel = EpochSelector("m", Scripted([]), min_epoch=50, last=4)
    assert sel.min_epoch == 4
    assert [sel.offer(e, 1.0 / e) for e in (1, 2, 3, 4)] == [False, False, False, True]


def test_warning_and_record_when_the_chosen_epoch_is_no_better_than_popularity():
    sel = EpochSelector("cfgan", Scripted([], popularity=0.3), min_epoch=1, last=3)
    for epoch, value in ((1, 0.1), (2, 0.25), (3, 0.2)):
        sel.offer(epoch, value)
    with pytest.warns(SelectionWarning) as caught:
        record = sel.finish()
    (message,) = [str(w.message) for w in caught]
    assert "\n" not in message
    for part in ("cfgan", "epoch 2", "precision@5 0.2500", "ItemPop 0.3000", "more epochs",
                 "another seed", "larger hold-out"):
        assert part in message, part
    assert record == {"epoch": 2, "value": 0.25, "metric": "precision@5", "popularity": 0.3,
                      "min_select_epoch": 1, "beats_popularity": False, "warning": message}
    row = {"epoch": 2, "validation": 0.25}
    EpochSelector.mark(row, record)
    assert row == {"epoch": 2, "validation": 0.25, "selected": True, "popularity": 0.3,
                   "selection_warning": message}


@pytest.mark.parametrize("popularity", [0.2, None])
def test_no_warning_when_better_or_without_a_baseline(popularity):
    sel = EpochSelector("cfgan", Scripted([], popularity=popularity), min_epoch=1, last=2)
    sel.offer(1, 0.1)
    sel.offer(2, 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionWarning)
        record = sel.finish()
    assert record["warning"] is None and record["popularity"] == popularity
    assert record["beats_popularity"] is (None if popularity is None else True)
    row: dict = {}
    EpochSelector.mark(row, record)
    assert row == ({"selected": True} if popularity is None
                   else {"selected": True, "popularity": popularity})
