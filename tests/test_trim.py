"""Trimmed learning (TRIM over users): the per-user losses by hand, the trimming loop on a toy
fit, and the ``trim`` defence in an experiment on ml-100k (the victim's own fit and loss)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from advrec.data.interactions import Interactions
from advrec.defenses.trim import trimmed_fit, user_losses
from advrec.errors import ConfigError, ParamError
from advrec.experiments.config import parse_config
from advrec.experiments.runner import run_experiment
from advrec.experiments.store import ResultsStore


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


class Fixed:
    """A 'fitted model' with given scores (and, optionally, predictions)."""

    def __init__(self, scores, predict=None):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        if predict is not None:
            self.predict = predict

    def score(self, users):
        return self.scores[torch.as_tensor(users)]


def frame(users, items, ratings, n_users: int, n_items: int) -> Interactions:
    r = None if ratings is None else np.asarray(ratings, np.float32)
    return Interactions(np.asarray(users), np.asarray(items), np.arange(n_users),
                        np.arange(n_items), r)


def toy(ratings=None) -> Interactions:
    return frame([0, 0, 1, 2], [0, 2, 1, 0], ratings, 4, 3)


def test_ranking_loss_is_the_expected_bpr_loss_over_unobserved_items():
    scores = [[2.0, 0.0, 1.0], [0.5, 3.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    got = user_losses(Fixed(scores), toy())
    # user 0 saw items 0 and 2; its only unobserved item is 1
    u0 = (softplus(0.0 - 2.0) + softplus(0.0 - 1.0)) / 2
    u1 = (softplus(0.5 - 3.0) + softplus(-1.0 - 3.0)) / 2
    u2 = (softplus(0.0) + softplus(0.0)) / 2
    np.testing.assert_allclose(got[:3], [u0, u1, u2], rtol=1e-6)
    assert math.isnan(got[3])  # no interactions, no loss


def test_rating_loss_is_the_users_mean_squared_error():
    data = toy(ratings=[4.0, 2.0, 5.0, 1.0])
    model = Fixed(np.zeros((4, 3)), predict=lambda u, i: np.full(len(u), 3.0))
    np.testing.assert_allclose(user_losses(model, data)[:3], [(1 + 1) / 2, 4.0, 4.0])


def test_trimming_drops_the_users_of_highest_loss_and_stops_when_the_set_repeats():
    # users 0-7 rate item 0 at 4; users 8 and 9 rate it at 1: a mean predictor fitted on the
    # kept users puts them far from it
    users = np.arange(10)
    data = frame(users, np.zeros(10, np.int64), np.r_[np.full(8, 4.0), 1.0, 1.0], 10, 2)
    fits = []

    def fit(d):
        fits.append(len(d))
        mean = float(d.ratings.mean())
        return Fixed(np.zeros((10, 2)), predict=lambda u, i: np.full(len(u), mean))

    res = trimmed_fit(fit, data, fraction=0.2, rounds=5)
    assert res.flags.tolist() == [False] * 8 + [True, True]
    assert res.converged and res.rounds == 1 and fits == [10, 8]  # the second choice repeated
    np.testing.assert_allclose(res.losses, np.r_[np.zeros(8), 9.0, 9.0])
    capped = trimmed_fit(fit, data, fraction=0.2, rounds=1)
    assert capped.rounds == 1 and not capped.converged
    for bad in (0, 1, 1.5, "x"):
        with pytest.raises(ParamError, match="fraction"):
            trimmed_fit(fit, data, fraction=bad)
    with pytest.raises(ParamError, match="rounds"):
        trimmed_fit(fit, data, rounds=0)


RAW = {
    "name": "trim",
    "data": {"dataset": "ml-100k", "fold": "u1"},
    "models": [{"name": "mf", "params": {"epochs": 3}}],
    "shilling": [{"attack": "average", "size": 0.05, "filler": 40, "n_targets": 3}],
    "defenses": [{"detector": "trim", "fraction": 0.05, "rounds": 2}, "perfect"],
    "evaluation": {"ks": [10], "metrics": ["hr"]},
    "seeds": [0],
}


def test_trim_in_an_experiment_trains_the_victim_without_the_users_it_drops(data_dir,
                                                                              tmp_path):
    config = parse_config(RAW).model_copy(update={"output": str(tmp_path)})
    run_experiment(config, progress=False)
    with ResultsStore(tmp_path, read_only=True) as store:
        rows = {r["defense"]: r for r in store.rows(per_user=False) if r["defense"]}
    trim = rows["trim"]
    assert trim["attack_config"]["defense"] == "trim"
    det = trim["detection"]
    n_fake = trim["measures"]["n_fake"]
    active = 943 + n_fake  # every user of u1 and every fake one has interactions
    assert det["flagged"] == round(0.05 * active)
    assert det["removed_real"] == det["false_positives"]
    assert 1 <= det["rounds"] <= 2 and 0 <= det["recall"] <= 1
    assert json.loads(json.dumps(det["roc_curve"]))["fpr"][0] == 0
    # the clean model's target measures are shared; the defended one differs from no defence
    assert trim["metrics"]["target_hr@10_before"] == rows["perfect"]["metrics"][
        "target_hr@10_before"]
    with pytest.raises(ConfigError, match=r"defenses\.0\.fraction"):
        parse_config({**RAW, "defenses": [{"detector": "trim", "fraction": 1.0}]})
