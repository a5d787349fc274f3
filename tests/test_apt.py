"""Adversarial poisoning training (APT, Wu et al. SIGIR 2021): the item influences against autograd,
the ERM users' construction, the training loop, real-data behaviour on ml-100k (ERM users lower
the risk more than random users of the same generator) and the ``apt`` defence in experiments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrec.data.interactions import Interactions
from advrec.defenses.apt import apt_fit, check_params, erm_users, item_influence
from advrec.errors import ConfigError, DataError, ParamError
from advrec.experiments.config import parse_config
from advrec.experiments.runner import run_experiment
from advrec.experiments.store import ResultsStore
from advrec.models.mf import MF


def rated(n_users: int = 30, n_items: int = 20, density: float = 0.4, seed: int = 0
          ) -> Interactions:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True  # every user rates something
    u, i = np.nonzero(mask)
    r = rng.integers(1, 6, len(u)).astype(np.float32)
    return Interactions(u, i, np.arange(n_users), np.arange(n_items), r)


def test_item_influence_is_minus_the_mixed_derivative_through_the_inverse_hessian():
    data = rated()
    model = MF(n_factors=3, epochs=30, seed=0).fit(data, progress=False)
    damping = 0.05
    infl, templates = item_influence(model, data, template_users=3, damping=damping,
                                     cg_steps=500)
    # templates: the active users of smallest rating-vector norm
    norms = np.sqrt(np.bincount(data.users, data.ratings.astype(float) ** 2))
    assert sorted(templates.tolist()) == sorted(np.argsort(norms)[:3].tolist())
    # the same quantity from autograd, the inverse by a dense solve
    tables = [t.detach().double().clone() for t in (model.user_factors_, model.item_factors_,
                                                   model.user_bias_, model.item_bias_)]
    sizes = [t.numel() for t in tables]
    u, i = torch.as_tensor(data.users.copy()), torch.as_tensor(data.items.copy())
    y = torch.as_tensor(data.ratings.copy(), dtype=torch.float64)
    mean, reg = model.global_mean_, model.reg

    def split(flat):
        parts, at = [], 0
        for t, n in zip(tables, sizes, strict=True):
            parts.append(flat[at:at + n].reshape(t.shape))
            at += n
        return parts

    def pred(theta, uu, ii):
        p, q, bu, bi = split(theta)
        return mean + bu[uu] + bi[ii] + (p[uu] * q[ii]).sum(-1)

    def objective(theta):
        p, q, bu, bi = split(theta)
        err = y - pred(theta, u, i)
        l2 = (p[u] ** 2).sum(1) + (q[i] ** 2).sum(1) + bu[u] ** 2 + bi[i] ** 2
        return 0.5 * (err ** 2 + reg * l2).mean()

    theta = torch.cat([t.reshape(-1) for t in tables])
    hess = torch.autograd.functional.hessian(objective, theta)
    grad = torch.autograd.functional.jacobian(
        lambda th: ((y - pred(th, u, i)) ** 2).mean(), theta)
    s = torch.linalg.solve(hess + damping * torch.eye(len(theta), dtype=torch.float64), grad)
    dense = torch.zeros(data.n_users, data.n_items, dtype=torch.float64)
    dense[u, i] = y
    items = torch.arange(data.n_items)
    expected = torch.zeros(data.n_items, dtype=torch.float64)
    for z in templates:  # a loop over 3 users is the reference, not the implementation
        r = dense[int(z)].clone().requires_grad_(True)
        th = theta.clone().requires_grad_(True)
        loss = ((r - pred(th, torch.full_like(items, int(z)), items)) ** 2).mean()
        (g,) = torch.autograd.grad(loss, th, create_graph=True)
        (mixed,) = torch.autograd.grad((g * s).sum(), r)
        expected -= mixed
    np.testing.assert_allclose(infl, expected.numpy(), rtol=1e-5, atol=1e-9)


def test_erm_users_rate_only_items_of_negative_influence_on_the_rating_grid():
    data = rated(n_users=40, n_items=30)
    influence = np.linspace(-1.0, 1.0, data.n_items)  # items 0..14 lower the risk
    erm = erm_users(influence, data, n_erm=7, profile_size=5, rng=np.random.default_rng(1))
    assert erm.n_users == 7 and len(erm) == 35
    assert erm.user_ids[0] == "apt-erm-0"
    assert np.all(influence[erm.items] < 0)
    for u in range(7):  # distinct items per user
        assert len(set(erm.items[erm.users == u])) == 5
    assert set(np.unique(erm.ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # the same seed gives the same users; a hot temperature concentrates on the most negative
    again = erm_users(influence, data, n_erm=7, profile_size=5, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(again.items, erm.items)
    hot = erm_users(influence, data, n_erm=20, profile_size=3, temperature=500.0,
                    rng=np.random.default_rng(2))
    assert set(hot.items) == {0, 1, 2}
    uniform = erm_users(influence, data, n_erm=200, profile_size=3, temperature=0.0,
                        rng=np.random.default_rng(3))
    assert len(set(uniform.items)) == 15
    # fewer candidates than the profile size: every candidate; none: no ERM user
    few = erm_users(influence, data, n_erm=2, profile_size=100)
    assert len(few) == 2 * 15
    assert erm_users(np.ones(data.n_items), data).n_users == 0
    # up raises the ratings: with up = 1 (a full top rating) every rating is the top one
    top = erm_users(influence, data, n_erm=3, profile_size=4, up=1.0)
    assert np.all(top.ratings == 5.0)


def test_apt_fit_trains_on_the_data_with_the_erm_users_and_refuses_implicit_data():
    data = rated()
    fits = []

    def fit(d):
        fits.append(d.n_users)
        return MF(n_factors=3, epochs=5, seed=0).fit(d, progress=False)

    res = apt_fit(fit, data, n_erm=4, profile_size=3, rounds=2, seed=0)
    assert fits == [30, 34, 34]  # the first fit, then one per round with the ERM users
    assert res.model.n_users_ == 34 and res.erm.n_users == 4 and res.rounds == 2
    assert res.summary()["erm_ratings"] == len(res.erm) == 12
    again = apt_fit(fit, data, n_erm=4, profile_size=3, rounds=2, seed=0)
    np.testing.assert_array_equal(again.erm.items, res.erm.items)
    implicit = Interactions(data.users, data.items, data.user_ids, data.item_ids)
    with pytest.raises(DataError, match="APT needs ratings"):
        apt_fit(fit, implicit)
    with pytest.raises(ParamError, match="n_erm"):
        apt_fit(fit, data, n_erm=0)
    with pytest.raises(ParamError, match="not an APT parameter"):
        check_params({"epochs": 3})


def test_erm_users_lower_the_risk_more_than_random_users_on_ml100k(data_dir):
    """The paper's mechanism on real data: with the influence-chosen items the MF refitted on
    D ∪ ERM has a lower training risk and test RMSE than with the same generator's ratings on
    uniformly drawn items, and than with the items of most positive influence."""
    from advrec.data.datasets import load_split

    train, test = load_split("ml-100k", fold="u1")

    def refit_risk(extra):
        m = MF(seed=0).fit(train.concat(extra), progress=False)
        return [float(np.mean((m.predict(d.users, d.items) - d.ratings) ** 2))
                for d in (train, test)]

    model = MF(seed=0).fit(train, progress=False)
    influence, _ = item_influence(model, train)
    erm = erm_users(influence, train, rng=np.random.default_rng(0))
    size = len(erm) // erm.n_users
    rng = np.random.default_rng(1)
    uniform = erm_users(-np.ones(train.n_items), train, profile_size=size, temperature=0.0,
                        rng=rng)
    opposite = erm_users(-influence, train, profile_size=size, rng=rng)
    (erm_train, erm_test), (uni_train, uni_test), (opp_train, opp_test) = (
        refit_risk(x) for x in (erm, uniform, opposite))
    assert erm_train < uni_train < opp_train
    assert erm_test < uni_test and erm_test < opp_test


RAW = {
    "name": "apt",
    "data": {"dataset": "ml-100k", "fold": "u1"},
    "models": [{"name": "mf", "params": {"epochs": 3}}],
    "shilling": [{"attack": "average", "size": 0.05, "filler": 40, "n_targets": 3}],
    "defenses": [{"detector": "apt", "params": {"n_erm": 20, "profile_size": 50}}],
    "evaluation": {"ks": [10], "metrics": ["hr"]},
    "seeds": [0],
}


def test_apt_in_an_experiment_trains_the_victim_with_erm_users(data_dir, tmp_path):
    config = parse_config(RAW).model_copy(update={"output": str(tmp_path)})
    run_experiment(config, progress=False)
    with ResultsStore(tmp_path, read_only=True) as store:
        rows = {r["defense"]: r for r in store.rows(per_user=False) if r["defense"]}
    apt, none = rows["apt"], rows["none"]
    summary = apt["measures"]["apt"]
    assert summary["n_erm"] == 20 and summary["erm_ratings"] == 20 * 50
    assert summary["rounds"] == 1 and summary["candidate_items"] >= 50
    assert apt["attack_config"]["defense"] == "apt"
    assert apt["metrics"]["target_hr@10_before"] == none["metrics"]["target_hr@10_before"]
    assert apt["metrics"]["hr@10"] != none["metrics"]["hr@10"]  # trained differently


@pytest.mark.parametrize(("defense", "message"), [
    ({"detector": "apt", "params": {"epochs": 3}}, r"defenses\.0.*params\.epochs"),
    ({"detector": "apt", "params": {"n_erm": 0}}, r"defenses\.0.*n_erm"),
    ({"detector": "apt", "params": {"seed": 1}}, r"params\.seed"),
    ({"detector": "trim", "params": {"n_erm": 3}}, r"only 'pore', 'apt' take params"),
])
def test_apt_options_are_checked_when_the_file_is_read(defense, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**RAW, "defenses": [defense]})


def test_apt_refuses_implicit_data_before_any_cell_runs(data_dir, tmp_path):
    raw = {**RAW, "data": {"dataset": "ml-100k", "fold": "u1", "binarize": 4},
           "models": [{"name": "bprmf", "params": {"epochs": 1}}]}
    config = parse_config(raw).model_copy(update={"output": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="apt"):
        run_experiment(config, progress=False)
    assert not (tmp_path / "x" / "results.duckdb").exists()
