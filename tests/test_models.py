"""Recommender contract, ItemPop and BPR-MF on real data (movielens-500)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from advrec.data import Interactions
from advrec.data.datasets import load_split
from advrec.errors import CheckpointError, ConfigError, DataError, NotFittedError, OutputError
from advrec.evaluation import Evaluator
from advrec.models import BPRMF, ItemPop, get_model, load_model


@pytest.fixture(scope="module")
def ml500(data_dir):
    return load_split("movielens-500")


@pytest.fixture(scope="module")
def evaluator(ml500):
    train, test = ml500
    return Evaluator(train, test, ks=(10, 100), metrics=("hr", "ndcg", "auc"), coverage=False)


@pytest.fixture(scope="module")
def tutorial_bpr(ml500):
    return BPRMF(epochs=5, seed=0).fit(ml500[0], progress=False)


def tiny() -> Interactions:
    return Interactions.from_raw(["a", "a", "b", "c", "c", "c"], [10, 20, 20, 10, 30, 40])


def test_itempop_scores_are_training_counts():
    data = tiny()
    pop = ItemPop().fit(data)
    scores = pop.score([0, 2])
    assert scores.shape == (2, 4)
    assert scores[0].tolist() == [2.0, 2.0, 1.0, 1.0]
    items, _ = pop.recommend([0], k=2, exclude_seen=True)
    assert set(items[0]) == {2, 3}  # user "a" has seen items 10 and 20 (internal 0 and 1)
    raw, _ = pop.recommend([1], k=1, raw_ids=True)
    assert raw[0, 0] == 10  # user "b" saw 20; the most popular unseen is 10


def test_unfitted_model_and_bad_users_raise():
    with pytest.raises(NotFittedError):
        BPRMF().score([0])
    pop = ItemPop().fit(tiny())
    with pytest.raises(DataError, match="0..2"):
        pop.score([3])
    with pytest.raises(ConfigError):
        pop.recommend([0], k=0)


@pytest.mark.parametrize("bad", [dict(n_factors=0), dict(optimizer="adamw"), dict(backend="jax"),
                                 dict(lr=-1.0), dict(batch_size=0)])
def test_bad_hyper_parameters_raise(bad):
    with pytest.raises(ConfigError):
        BPRMF(epochs=1, **bad).fit(tiny(), progress=False)


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="bprmf"):
        get_model("bpr-xyz")


def test_bprmf_tutorial_numbers_and_beats_itempop(ml500, evaluator, tutorial_bpr):
    """Tutorial settings (dim 64, Adagrad 0.05, batch 512, 5 epochs): HR@100≈0.29, AUC≈0.82."""
    bpr = evaluator.evaluate(tutorial_bpr).summary
    pop = evaluator.evaluate(ItemPop().fit(ml500[0])).summary
    assert 0.25 <= bpr["hr@100"] <= 0.33
    assert 0.055 <= bpr["ndcg@100"] <= 0.085
    assert 0.80 <= bpr["auc"] <= 0.85
    assert bpr["hr@100"] > pop["hr@100"] and bpr["auc"] > pop["auc"]


def test_bprmf_loss_decreases(tutorial_bpr):
    losses = [h["loss"] for h in tutorial_bpr.history_]
    assert losses[0] < np.log(2) + 1e-3  # starts near log 2 (scores ≈ 0)
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))


def test_same_seed_same_numbers_other_seed_differs(ml500, tutorial_bpr):
    again = BPRMF(epochs=5, seed=0).fit(ml500[0], progress=False)
    assert torch.equal(again.net_.user, tutorial_bpr.net_.user)
    assert torch.equal(again.net_.item, tutorial_bpr.net_.item)
    other = BPRMF(epochs=1, seed=1).fit(ml500[0], progress=False)
    first = BPRMF(epochs=1, seed=0).fit(ml500[0], progress=False)
    assert not torch.equal(other.net_.user, first.net_.user)


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_numba_and_torch_backends_agree(ml500, optimizer):
    """The compiled CPU epoch computes the same loss, gradient and step as autograd."""
    kw = dict(epochs=2, optimizer=optimizer, lr=0.05, reg=0.01, seed=3)
    fast = BPRMF(backend="numba", **kw).fit(ml500[0], progress=False)
    slow = BPRMF(backend="torch", **kw).fit(ml500[0], progress=False)
    assert torch.allclose(fast.net_.user, slow.net_.user, atol=1e-5)
    assert torch.allclose(fast.net_.item, slow.net_.item, atol=1e-5)
    np.testing.assert_allclose([h["loss"] for h in fast.history_],
                               [h["loss"] for h in slow.history_], rtol=1e-5)


def test_adam_trains_on_torch_path(ml500, evaluator):
    model = BPRMF(epochs=3, optimizer="adam", lr=0.005, seed=0).fit(ml500[0], progress=False)
    assert model.backend_ == "torch"
    assert evaluator.evaluate(model).summary["auc"] > 0.75


def test_save_load_round_trip_identical_scores(tmp_path, tutorial_bpr):
    path = tutorial_bpr.save(tmp_path / "model")
    loaded = BPRMF.load(path)
    users = torch.arange(50)
    assert torch.equal(loaded.score(users), tutorial_bpr.score(users))
    a, _ = loaded.recommend(users, k=20)
    b, _ = tutorial_bpr.recommend(users, k=20)
    np.testing.assert_array_equal(a, b)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["params"]["n_factors"] == 64 and manifest["seed"] == 0
    assert set(manifest["versions"]) >= {"advrec", "torch", "numpy", "python"}
    assert isinstance(load_model(path), BPRMF)


def test_load_errors(tmp_path, tutorial_bpr):
    with pytest.raises(CheckpointError, match="no manifest.json"):
        BPRMF.load(tmp_path / "missing")
    path = ItemPop().fit(tiny()).save(tmp_path / "pop")
    with pytest.raises(CheckpointError, match="'itempop'"):
        BPRMF.load(path)
    path = tutorial_bpr.save(tmp_path / "bpr")
    (path / "state.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="unreadable"):
        BPRMF.load(path)
    (path / "manifest.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="unreadable manifest"):
        BPRMF.load(path)


def test_save_replaces_atomically(tmp_path, tutorial_bpr):
    path = tmp_path / "model"
    ItemPop().fit(tiny()).save(path)
    with pytest.raises(OutputError, match="--overwrite"):  # an earlier model is kept ...
        tutorial_bpr.save(path)
    assert isinstance(load_model(path), ItemPop)
    tutorial_bpr.save(path, overwrite=True)  # ... unless replacing it is asked for
    assert isinstance(load_model(path), BPRMF)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left


def test_parameter_blocks_are_the_live_tables(tutorial_bpr):
    blocks = tutorial_bpr.parameter_blocks()
    assert set(blocks) == {"user", "item"}
    assert blocks["user"].data_ptr() == tutorial_bpr.net_.user.data_ptr()
    users = torch.arange(3)
    delta = {"item": torch.zeros_like(blocks["item"])}
    assert torch.equal(tutorial_bpr.score(users, perturbation=delta), tutorial_bpr.score(users))
