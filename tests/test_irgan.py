"""IRGAN: the estimators (REINFORCE with importance weights, Gumbel-softmax), the discriminator's
written-out gradient, end to end on ml-100k u1, determinism, save/load and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import advrec.models as models
from advrec.data.filters import binarize
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import ConfigError, DataError, ParamError
from advrec.evaluation.evaluator import Evaluator
from advrec.evaluation.selection import holdout_validation, metric_validator
from advrec.models import BPRMF
from advrec.models.gan.cfgan import SelectionWarning
from advrec.models.gan.irgan import (
    IRGAN,
    gumbel_generator_loss,
    gumbel_softmax_sample,
    official_reward,
    proposal,
    reinforce_loss,
)
from advrec.models.gan.irgan_net import MFScorer
from advrec.models.gan.irgan_net import d_epoch_kernel as _d_epoch_kernel

torch.set_num_threads(1)

TINY = dict(emb_dim=4, epochs=2, d_epochs=2, g_epochs=2, pretrain_epochs=3,
            pretrain_batch_size=64, d_batch_size=64, valid_ratio=0.2, device="cpu", seed=3)


def fit_selected(model: IRGAN, data, **kw) -> IRGAN:
    """Fit with the epoch chosen on the model's own hold-out (``valid_ratio``, ``valid_method``,
    ``valid_metric``): the caller builds the validation callable (the model never imports the
    evaluator)."""
    return model.fit(data, **holdout_validation(model, data), progress=False, **kw)


@pytest.fixture(scope="module")
def tiny() -> object:
    return synthetic_interactions(60, 40, 900, n_clusters=4, seed=1)


def _scorers(n_users: int = 3, n_items: int = 6, dim: int = 4) -> tuple[MFScorer, MFScorer]:
    gen = torch.Generator().manual_seed(0)
    g = MFScorer(n_users, n_items, dim).reset_uniform(0.5, gen)
    d = MFScorer(n_users, n_items, dim).reset_uniform(0.5, gen)
    with torch.no_grad():
        d.bias.normal_(generator=gen)
    return g, d


# ----------------------------------------------------------------------------- Gumbel gradient
def test_gumbel_loss_sends_the_discriminators_gradient_into_the_generator() -> None:
    g, d = _scorers()
    users = torch.arange(3)
    rows = torch.tensor([0, 0, 1, 1, 1, 2])
    gen = torch.Generator().manual_seed(1)
    log_prob = torch.log_softmax(g.all_scores(users), 1)
    v = gumbel_softmax_sample(log_prob[rows], 0.5, gen)
    f = d.all_scores(users).detach()
    grads = torch.autograd.grad(gumbel_generator_loss(v, f, rows, 3), [g.user, g.item, g.bias])
    assert all(gr.abs().sum() > 0 for gr in grads)
    # the same loss on a detached sample has no path back to θ: zero gradient
    detached = gumbel_generator_loss(v.detach(), f, rows, 3)
    assert not detached.requires_grad
    log_prob = torch.log_softmax(g.all_scores(users), 1)
    hard = gumbel_softmax_sample(log_prob[rows], 0.5, gen, hard=True)
    assert torch.equal(hard.detach().max(1).values, torch.ones(6))
    (g_hard,) = torch.autograd.grad(gumbel_generator_loss(hard, f, rows, 3), [g.item])
    assert g_hard.abs().sum() > 0  # straight-through keeps the soft sample's gradient


def test_model_gumbel_generator_loss_has_nonzero_gradient(tiny) -> None:
    model = fit_selected(IRGAN(**{**TINY, "epochs": 0}, generator_update="gumbel"), tiny)
    loss, reward = model.generator_loss(model.positives_.users[:8])
    params = list(model.generator_.parameters())
    assert loss.requires_grad, "the Gumbel sample must stay on the generator's graph"
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert all(gr is not None and gr.abs().sum() > 0 for gr in grads)
    assert math.isfinite(reward)
    # and the discriminator is only read: no gradient reaches φ
    assert all(p.grad is None for p in model.discriminator_.parameters())


# ----------------------------------------------------------------------------- REINFORCE
def test_reinforce_with_importance_weights_is_unbiased() -> None:
    theta = torch.tensor([0.5, -0.3, 1.2, 0.0, -1.0, 0.7], requires_grad=True)
    rewards = torch.tensor([0.9, -0.4, 0.1, 0.6, -0.8, 0.3])
    log_prob = torch.log_softmax(theta, 0)[None]
    prob = log_prob.exp().detach()
    pos_mask = torch.tensor([[1.0, 1.0, 0, 0, 0, 0]])
    pn = proposal(prob, pos_mask, 0.4)
    assert torch.allclose(pn.sum(), torch.tensor(1.0))
    n = 400_000
    samples = torch.multinomial(pn, n, replacement=True,
                                generator=torch.Generator().manual_seed(0))
    weights = prob[0, samples] / pn[0, samples]
    valid = torch.ones(1, n, dtype=torch.bool)
    loss = reinforce_loss(log_prob, samples, rewards[samples], weights, valid)
    (estimate,) = torch.autograd.grad(-loss, theta, retain_graph=True)
    p = prob[0]
    exact = p * (rewards - (p * rewards).sum())  # ∇_θ Σ_i softmax(θ)_i r_i
    assert torch.allclose(estimate, exact, atol=4e-3), (estimate, exact)
    # without the importance weights the estimate is biased towards the positives
    biased = reinforce_loss(log_prob, samples, rewards[samples], torch.ones_like(weights), valid)
    (wrong,) = torch.autograd.grad(-biased, theta)
    assert (wrong - exact).abs().max() > 0.02


def test_official_reward_and_proposal_edges() -> None:
    assert torch.allclose(official_reward(torch.tensor([0.0, 100.0, -100.0])),
                          torch.tensor([0.0, 1.0, -1.0]))
    prob = torch.full((2, 4), 0.25)
    mask = torch.tensor([[0, 0, 0, 1.0], [0, 0, 0, 0]])
    pn = proposal(prob, mask, 1.0)
    assert torch.equal(pn[0], torch.tensor([0, 0, 0, 1.0]))
    assert torch.equal(pn[1], prob[1])  # a user without positives keeps p_θ


# ----------------------------------------------------------------------------- Gumbel samples
def test_gumbel_softmax_one_hot_at_low_temperature_smooth_at_high() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([1.0, 0.2, -0.5, 0.0, 2.0])
    log_prob = torch.log_softmax(logits, 0).expand(20_000, -1)
    cold = gumbel_softmax_sample(log_prob, 0.01, gen)
    assert cold.max(1).values.mean() > 0.99
    # the argmax of a Gumbel-perturbed log p is a draw from p (Gumbel-max)
    freq = torch.bincount(cold.argmax(1), minlength=5).float() / len(cold)
    assert torch.allclose(freq, log_prob[0].exp(), atol=0.015)
    hot = gumbel_softmax_sample(log_prob, 100.0, gen)
    assert hot.max(1).values.max() < 0.25
    assert torch.allclose(hot.mean(0), torch.full((5,), 0.2), atol=0.01)
    assert torch.allclose(hot.sum(1), torch.ones(len(hot)))
    with pytest.raises(ConfigError, match="temperature"):
        gumbel_softmax_sample(log_prob, 0.0, gen)


# ----------------------------------------------------------------------------- discriminator step
def test_discriminator_step_matches_autograd_and_compiled_pass() -> None:
    _, d = _scorers(5, 7)
    users, pos, neg = torch.tensor([0, 1, 1, 4]), torch.tensor([2, 2, 5, 6]), \
        torch.tensor([3, 2, 0, 6])
    ref = MFScorer(5, 7, 4)
    ref.load_state_dict(d.state_dict())
    s_pos, s_neg = ref.pair_scores(users, pos), ref.pair_scores(users, neg)
    reg = 0.1
    rows = [(ref.user[users], 2), (ref.item[pos], 1), (ref.item[neg], 1), (ref.bias[pos], 1),
            (ref.bias[neg], 1)]
    loss = (torch.nn.functional.softplus(-s_pos).sum() + torch.nn.functional.softplus(s_neg).sum()
            + reg * sum(c * (t * t).sum() for t, c in rows))
    grads = torch.autograd.grad(loss, [ref.user, ref.item, ref.bias])
    compiled = MFScorer(5, 7, 4)
    compiled.load_state_dict(d.state_dict())
    value = d.logistic_pair_step(users, pos, neg, 0.01, reg)
    assert torch.allclose(value, loss.detach())
    for p, p0, gr in zip((d.user, d.item, d.bias), (ref.user, ref.item, ref.bias), grads,
                         strict=True):
        assert torch.allclose(p, p0.detach() - 0.01 * gr, atol=1e-6)
    work = (np.empty((2, 4)), np.empty((2, 4)), np.empty((2, 4)), np.empty((2, 2)))
    twin = MFScorer(5, 7, 4)
    twin.load_state_dict(compiled.state_dict())
    for sl in (slice(0, 2), slice(2, 4)):
        twin.logistic_pair_step(users[sl], pos[sl], neg[sl], 0.01, reg)
    with torch.no_grad():
        _d_epoch_kernel(compiled.user.numpy(), compiled.item.numpy(), compiled.bias.numpy(),
                        users.numpy(), pos.numpy(), neg.numpy(), 2, 0.01, reg, *work)
    for a, b in zip(compiled.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def ml100k(data_dir):
    from advrec.data.datasets import load_split

    train, test = load_split("ml-100k", fold="u1", root=data_dir)
    return binarize(train, 4), binarize(test, 4)


E2E = dict(epochs=2, d_epochs=5, g_epochs=4, pretrain_epochs=15, pretrain_batch_size=256,
           device="cpu", seed=0)


@pytest.fixture(scope="module")
def fitted(ml100k) -> IRGAN:
    return fit_selected(IRGAN(**E2E), ml100k[0])


def test_irgan_trains_on_ml100k_u1(fitted, ml100k) -> None:
    model = fitted
    assert [h["epoch"] for h in model.history_] == [0, 1, 2]
    for h in model.history_[1:]:
        assert all(math.isfinite(h[k]) for k in ("g_loss", "d_loss", "reward", "valid"))
    valid = [h["valid"] for h in model.history_]
    assert model.best_epoch_ == int(np.argmax(valid))
    evaluator = Evaluator(*ml100k, ks=(5,), metrics=("precision",))
    after = evaluator.evaluate(model)["precision@5"]
    before = evaluator.evaluate(model.score_pretrained)["precision@5"]
    assert after > 0.25
    assert after >= before - 0.01, (before, after)


def test_same_seed_same_numbers(fitted, ml100k) -> None:
    again = fit_selected(IRGAN(**E2E), ml100k[0])
    assert [h["valid"] for h in again.history_] == [h["valid"] for h in fitted.history_]
    assert torch.equal(again.score([0, 5, 9]), fitted.score([0, 5, 9]))


def test_save_load_round_trip(fitted, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(models.MODELS, "irgan", IRGAN)
    path = fitted.save(tmp_path / "irgan")
    loaded = IRGAN.load(path)
    users = np.arange(0, fitted.n_users_, 7)
    assert torch.equal(loaded.score(users), fitted.score(users))
    assert torch.equal(loaded.score_pretrained(users), fitted.score_pretrained(users))
    np.testing.assert_array_equal(loaded.recommend(users, k=5)[0], fitted.recommend(users, k=5)[0])


def test_discriminator_recommender_and_gumbel_train(tiny) -> None:
    model = fit_selected(IRGAN(**TINY, generator_update="gumbel", gumbel_hard=True,
                               backend="torch", recommender="discriminator"), tiny)
    assert model.backend_ == "torch" and len(model.history_) == 3
    assert torch.equal(model.score([1, 2]), model.discriminator_.all_scores(torch.tensor([1, 2])))
    assert all(math.isfinite(h["g_loss"]) for h in model.history_[1:])


def test_init_from_bprmf_and_irgan(tiny) -> None:
    bpr = BPRMF(n_factors=4, epochs=2, seed=0).fit(tiny, progress=False)
    model = fit_selected(IRGAN(**{**TINY, "epochs": 0}), tiny, init_from=bpr)
    assert torch.equal(model.pretrained_["item"], bpr.net_.item.detach())
    assert torch.equal(model.pretrained_["bias"], torch.zeros(tiny.n_items))
    other = fit_selected(IRGAN(**{**TINY, "epochs": 0}), tiny, init_from=model)
    assert torch.equal(other.pretrained_["user"], model.pretrained_["user"])
    with pytest.raises(ConfigError, match="factors"):
        fit_selected(IRGAN(**{**TINY, "emb_dim": 3}), tiny, init_from=bpr)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_contract(tiny) -> None:
    model = fit_selected(IRGAN(**{**TINY, "device": "cuda"}), tiny)
    assert model.score([0, 1]).device.type == "cuda"
    assert all(math.isfinite(h["g_loss"]) for h in model.history_[1:])


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("params, match", [
    (dict(temperature=0.0), "temperature"),
    (dict(policy_temperature=-1.0), "policy_temperature"),
    (dict(generator_update="gumbel", gumbel_temperature=0.0), "gumbel_temperature"),
    (dict(sample_lambda=1.5), "sample_lambda"),
    (dict(sample_lambda=-0.1), "sample_lambda"),
    (dict(valid_ratio=1.0), "valid_ratio"),
    (dict(emb_dim=0), "emb_dim"),
    (dict(generator_update="ppo"), "generator_update"),
    (dict(recommender="both"), "recommender"),
    (dict(valid_metric="precision@0"), "valid_metric"),
    (dict(epochs=-1), "epochs"),
])
def test_bad_parameters(tiny, params, match) -> None:
    with pytest.raises(ConfigError, match=match):
        IRGAN(**{**TINY, **params}).fit(tiny, progress=False)


def test_no_positive_after_threshold_is_a_data_error() -> None:
    rated = synthetic_interactions(30, 20, 200, seed=0, with_ratings=True)
    with pytest.raises(DataError, match="positive"):
        IRGAN(**{**TINY, "threshold": 99.0}).fit(rated, progress=False)
    model = fit_selected(IRGAN(**{**TINY, "threshold": 4.0, "epochs": 1}), rated)
    assert model.positives_.csr.nnz < len(rated)
    rest, held = model.holdout_split(rated)  # carved from the positives only
    assert model.positives_.csr.nnz == len(rest) and (held.ratings >= 4.0).all()


def test_explicit_validation_set(tiny) -> None:
    from advrec.data.splits import validation_split

    fit_part, valid = validation_split(tiny, method="random", ratio=0.2, seed=0)
    validate = metric_validator(fit_part, valid, "precision@5")
    model = IRGAN(**TINY).fit(fit_part, validate=validate, progress=False)
    assert model.positives_.csr.nnz == len(fit_part)  # nothing carved out on top
    assert all(math.isfinite(h["valid"]) for h in model.history_)
    # valid= names the hold-out of train that validate measures on: learned from the rest only
    held_out = IRGAN(**TINY).fit(tiny, validate=validate, valid=valid, progress=False)
    assert held_out.positives_.csr.nnz == len(fit_part)
    assert [h["valid"] for h in held_out.history_] == [h["valid"] for h in model.history_]
    other = synthetic_interactions(61, 40, 900, n_clusters=4, seed=1)
    with pytest.raises(DataError, match="id space"):
        IRGAN(**TINY).fit(fit_part, validate=validate, valid=other, progress=False)
    with pytest.raises(DataError, match="id space"):
        metric_validator(fit_part, other)


def test_validate_gets_the_model_scoring_with_the_net_under_selection(tiny) -> None:
    """validate(model) is called after every DNS pre-training epoch and every outer epoch (and
    at epoch 0); the model then scores with the MF being measured, not the final players."""
    model = IRGAN(**TINY)
    seen = []

    def validate(m: IRGAN) -> float:
        assert m is model
        seen.append(m.score([0, 1, 2]).clone())
        return float(len(seen) == 2)  # the second pre-training epoch is the best one

    model.fit(tiny, validate=validate, progress=False)
    assert len(seen) == TINY["pretrain_epochs"] + 1 + TINY["epochs"]
    assert model.best_epoch_ == 0 and [h["valid"] for h in model.pretrain_history_] == [0, 1, 0]
    start = model.score_pretrained([0, 1, 2])  # the kept pre-trained MF: the second epoch's
    assert torch.equal(start, seen[1]) and not torch.equal(start, seen[0])
    assert torch.equal(model.score([0, 1, 2]), seen[TINY["pretrain_epochs"]])  # epoch 0 kept


def test_a_hold_out_needs_a_caller_built_validator(tiny) -> None:
    with pytest.raises(ParamError, match="validate: needed: valid_ratio=0.2"):
        IRGAN(**TINY).fit(tiny, progress=False)
    _, held = IRGAN(**TINY).holdout_split(tiny)
    with pytest.raises(ParamError, match="valid: is the held-out part of train"):
        IRGAN(**TINY).fit(tiny, valid=held, progress=False)
    model = IRGAN(**{**TINY, "valid_ratio": 0.0}).fit(tiny, progress=False)
    assert all(math.isnan(h["valid"]) for h in model.history_)
    assert model.best_epoch_ == TINY["epochs"]  # no selection: the last epoch
    assert holdout_validation(model, tiny) == {}


class Scripted:
    """``validate(model)``: the next of ``values`` per call; ``popularity`` its baseline."""

    def __init__(self, values, popularity=None):
        self.values, self.calls, self.metric = list(values), 0, "precision@5"
        if popularity is not None:
            self.popularity = popularity

    def __call__(self, model) -> float:
        self.calls += 1
        return self.values[self.calls - 1]


NO_PRETRAIN = {**TINY, "pretrain": "none", "epochs": 3}  # validate: epochs 0, 1, 2, 3 only


def test_a_chosen_epoch_no_better_than_popularity_warns_and_is_recorded(tiny) -> None:
    model = IRGAN(**NO_PRETRAIN)
    with pytest.warns(SelectionWarning, match=r"irgan: .*epoch 1 \(precision@5 0\.3000\), is no "
                                              r"better than popularity \(ItemPop 0\.3500\)"):
        model.fit(tiny, validate=Scripted([0.2, 0.3, 0.25, 0.1], popularity=0.35),
                  progress=False)
    assert model.best_epoch_ == 1
    assert (model.selection_["epoch"], model.selection_["beats_popularity"]) == (1, False)
    assert model.history_[1]["selected"] and model.history_[1]["popularity"] == 0.35
    assert model.history_[1]["selection_warning"] == model.selection_["warning"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionWarning)
        fine = IRGAN(**NO_PRETRAIN).fit(
            tiny, validate=Scripted([0.2, 0.3, 0.25, 0.1], popularity=0.29), progress=False)
    assert fine.best_epoch_ == 1 and fine.selection_["beats_popularity"] is True
    assert "selection_warning" not in fine.history_[1]


def test_selection_never_picks_an_epoch_before_min_select_epoch(tiny) -> None:
    falling = [0.9, 0.8, 0.7, 0.6]
    model = IRGAN(**NO_PRETRAIN).fit(tiny, validate=Scripted(falling), progress=False)
    assert model.best_epoch_ == 0  # default 0: the pre-trained start is a candidate
    model = IRGAN(**{**NO_PRETRAIN, "min_select_epoch": 2}).fit(tiny, validate=Scripted(falling),
                                                                progress=False)
    assert model.best_epoch_ == 2 and model.selection_["min_select_epoch"] == 2
    model = IRGAN(**{**NO_PRETRAIN, "min_select_epoch": 9}).fit(tiny, validate=Scripted(falling),
                                                                progress=False)
    assert model.best_epoch_ == 3  # capped at epochs
    with pytest.raises(ConfigError, match="min_select_epoch"):
        IRGAN(**{**TINY, "min_select_epoch": -1}).fit(tiny, progress=False)


def test_the_baseline_is_itempop_on_the_model_hold_out(tiny) -> None:
    model = IRGAN(**TINY)
    kw = holdout_validation(model, tiny)
    rest, held = model.holdout_split(tiny)
    pop = Evaluator(rest, held, ks=(5,), metrics=("precision",), coverage=False).evaluate(
        models.ItemPop().fit(rest))["precision@5"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SelectionWarning)  # a tiny model: either way
        model.fit(tiny, **kw, progress=False)
    assert model.selection_["popularity"] == pytest.approx(pop)
    assert model.selection_["value"] == max(h["valid"] for h in model.history_)
