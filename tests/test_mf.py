"""Biased MF (ALS and SGD): the batched ridge solve, the objective, determinism, persistence,
bad input, and RMSE on ml-100k u1 against the global-mean and bias-only baselines."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from advrec.data import Interactions
from advrec.data.datasets import load_split
from advrec.errors import ConfigError, DataError
from advrec.models import MODELS, Recommender
from advrec.models.mf import MF, _sparse, ridge_step


def synthetic(n_users: int = 30, n_items: int = 20, density: float = 0.4,
              seed: int = 0) -> Interactions:
    """Ratings 1..5 from a rank-2 model plus noise, on a random pattern."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    r = np.clip(np.rint(3 + (p[u] * q[i]).sum(1)
                        + rng.normal(0, 0.3, len(u))), 1, 5)
    return Interactions(u, i, np.arange(n_users), np.arange(n_items), r)


def test_ridge_step_matches_per_row_solves():
    rng = np.random.default_rng(1)
    dense = rng.integers(1, 6, size=(7, 9)) * (rng.random((7, 9)) < 0.5)
    dense[3] = 0  # a row without entries solves to 0
    m = sp.csr_matrix(dense.astype(float))
    fixed = rng.normal(size=(9, 3))
    counts = np.diff(m.indptr).astype(float)
    pattern = m.copy()
    pattern.data[:] = 1
    got = ridge_step(_sparse(pattern, torch.device("cpu")), _sparse(m, torch.device("cpu")),
                     torch.from_numpy(fixed), torch.from_numpy(counts), 0.3).numpy()
    for row in range(7):
        cols = m.indices[m.indptr[row]:m.indptr[row + 1]]
        y = m.data[m.indptr[row]:m.indptr[row + 1]]
        f = fixed[cols]
        a = f.T @ f + 0.3 * max(len(cols), 1) * np.eye(3)
        assert np.allclose(got[row], np.linalg.solve(a, f.T @ y))


def test_als_objective_never_increases_and_bias_only_model():
    data = synthetic()
    model = MF(n_factors=3, epochs=8, reg=0.1, device="cpu").fit(data)
    h = np.array(model.history_)
    assert np.all(np.diff(h) <= 1e-9) and len(h) == 8
    bias = MF(n_factors=0, epochs=3, device="cpu").fit(data)
    assert bias.user_factors_.shape == (30, 0)
    mu = float(data.ratings.mean())
    assert np.allclose(bias.score([0]).numpy()[0],
                       mu + bias.user_bias_[0].item() + bias.item_bias_.numpy(), atol=1e-5)


def test_sgd_fits_and_score_equals_unclipped_prediction():
    data = synthetic()
    model = MF(n_factors=4, solver="sgd", epochs=30, lr=0.02, batch_size=64,
               device="cpu").fit(data)
    assert model.history_[-1] < model.history_[0]
    s = model.score([2, 5]).numpy()
    pred = model.predict(np.repeat([2, 5], 20), np.tile(np.arange(20), 2)).reshape(2, 20)
    assert np.allclose(np.clip(s, 1, 5), pred, atol=1e-5)
    assert pred.min() >= 1 and pred.max() <= 5


@pytest.mark.parametrize("solver", ["als", "sgd"])
def test_same_seed_same_numbers(solver):
    data = synthetic()
    kw = dict(n_factors=3, solver=solver, epochs=4, batch_size=50, device="cpu")
    a, b = (MF(seed=7, **kw).fit(data) for _ in range(2))
    c = MF(seed=8, **kw).fit(data)
    users, items = data.users, data.items
    assert np.array_equal(a.predict(users, items), b.predict(users, items))
    assert not np.array_equal(a.predict(users, items), c.predict(users, items))


def test_save_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setitem(MODELS, MF.name, MF)  # until the registry lists it
    data = synthetic()
    model = MF(n_factors=3, epochs=3, device="cpu").fit(data)
    loaded = Recommender.load(model.save(tmp_path / "mf"))
    assert type(loaded) is MF and loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.predict(data.users, data.items),
                          model.predict(data.users, data.items))
    assert torch.equal(loaded.score(), model.score())


@pytest.mark.parametrize("bad", [dict(solver="adam"), dict(n_factors=-1), dict(epochs=-1),
                                 dict(batch_size=0), dict(reg=-0.1), dict(reg=0.0),
                                 dict(lr=0.0), dict(n_factors=2.5)])
def test_bad_parameters_raise(bad):
    with pytest.raises(ConfigError):
        MF(device="cpu", **bad).fit(synthetic())


def test_implicit_data_and_bad_pairs_raise():
    data = synthetic()
    with pytest.raises(DataError, match="implicit"):
        MF(device="cpu").fit(data.with_ratings(None))
    model = MF(n_factors=2, epochs=1, device="cpu").fit(data)
    with pytest.raises(DataError):
        model.predict([0], [20])
    with pytest.raises(DataError):
        model.predict([0, 1], [0])


# ----------------------------------------------------------------------------- ml-100k u1
def rmse(pred: np.ndarray, test: Interactions) -> float:
    return float(np.sqrt(np.mean((pred - test.ratings) ** 2)))


def damped_biases(train: Interactions, test: Interactions) -> np.ndarray:
    """Koren's baseline b_i = Σ(r − μ)/(10 + n_i), b_u = Σ(r − μ − b_i)/(10 + n_u), clipped."""
    mu = train.ratings.mean()
    bi = np.bincount(train.items, train.ratings - mu, train.n_items) / (10 + train.item_counts)
    res = train.ratings - mu - bi[train.items]
    bu = np.bincount(train.users, res, train.n_users) / (10 + train.user_counts)
    return np.clip(mu + bu[test.users] + bi[test.items], 1, 5)


@pytest.fixture(scope="module")
def u1(data_dir):
    return load_split("ml-100k", fold="u1")


def test_ml100k_rmse_beats_baselines(u1):
    train, test = u1
    global_mean = rmse(np.full(len(test), train.ratings.mean()), test)
    biases = min(rmse(damped_biases(train, test), test),
                 rmse(MF(n_factors=0, device="cpu").fit(train).predict(test.users, test.items),
                      test))
    assert 1.12 <= global_mean <= 1.18 and 0.94 <= biases <= 0.98
    for solver in ("als", "sgd"):
        err = rmse(MF(solver=solver, device="cpu").fit(train).predict(test.users, test.items),
                   test)
        assert 0.90 <= err <= 0.95 and err < biases - 0.01, (solver, err, biases)
