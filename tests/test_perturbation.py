"""Parameter perturbations (FGSM, random, PGD) and the claims of He et al. on movielens-500."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advrec.attacks import fgsm, perturb, perturbed_scorer, pgd, random_perturbation
from advrec.attacks.perturbation import AttackObjective
from advrec.data.datasets import load_split
from advrec.errors import ConfigError, DataError
from advrec.evaluation import Evaluator, attack_and_evaluate, target_hit_ratio
from advrec.models import BPRMF, ItemPop
from advrec.training.perturbation import fgsm_direction, project, random_direction


@pytest.fixture(scope="module")
def ml500(data_dir):
    return load_split("movielens-500")


@pytest.fixture(scope="module")
def bpr(ml500):
    return BPRMF(epochs=5, seed=0).fit(ml500[0], progress=False)


@pytest.fixture(scope="module")
def evaluator(ml500):
    return Evaluator(*ml500, ks=(100,), metrics=("hr", "ndcg", "auc"), coverage=False)


# ---------------------------------------------------------------------------- primitives
@given(st.integers(1, 20), st.integers(1, 16), st.floats(0.01, 5.0))
@settings(max_examples=40, deadline=None)
def test_fgsm_rows_have_norm_eps_and_follow_the_gradient(rows, dim, eps):
    grad = torch.randn(rows, dim, dtype=torch.float64)
    grad[0] = 0.0  # a row the loss does not touch stays unperturbed
    delta = fgsm_direction(grad, eps)
    norms = delta.norm(dim=1)
    assert norms[0] == 0
    np.testing.assert_allclose(norms[1:].numpy(), eps, rtol=1e-9)
    assert ((delta * grad).sum(1)[1:] > 0).all()
    assert torch.equal(fgsm_direction(grad, eps, "linf"), eps * grad.sign())


def test_random_and_projection():
    gen = torch.Generator().manual_seed(0)
    noise = random_direction(torch.zeros(50, 8), 0.3, generator=gen)
    np.testing.assert_allclose(noise.norm(dim=1).numpy(), 0.3, rtol=1e-5)
    big = torch.randn(30, 4) * 10
    projected = project(big, 0.5)
    assert (projected.norm(dim=1) <= 0.5 + 1e-6).all()
    small = torch.full((2, 4), 0.01)
    assert torch.equal(project(small, 0.5), small)
    assert project(big, 0.2, "linf").abs().max() <= 0.2


# ---------------------------------------------------------------------------- attacks
def test_fgsm_rows_have_norm_eps_and_model_is_untouched(ml500, bpr):
    before = {k: v.detach().clone() for k, v in bpr.parameter_blocks().items()}
    delta = fgsm(bpr, ml500[0], 0.5)
    assert set(delta) == {"user", "item"}
    user_norms = delta["user"].norm(dim=1)
    np.testing.assert_allclose(user_norms.numpy(), 0.5, rtol=1e-5)  # every user has training data
    item_norms = delta["item"].norm(dim=1)
    touched = torch.from_numpy(ml500[0].item_counts > 0)
    np.testing.assert_allclose(item_norms[touched].numpy(), 0.5, rtol=1e-5)
    for k, v in bpr.parameter_blocks().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fgsm_raises_training_loss_more_than_random(ml500, bpr, seed):
    objective = AttackObjective(bpr, ml500[0], seed=seed)
    zero = {k: torch.zeros_like(v.detach()) for k, v in bpr.parameter_blocks().items()}
    _, clean = objective.gradient(zero)
    _, adversarial = objective.gradient(fgsm(bpr, ml500[0], 0.5, seed=seed))
    _, noisy = objective.gradient(random_perturbation(bpr, 0.5, seed=seed))
    assert adversarial - clean > 5 * abs(noisy - clean)


@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_adversarial_drop_is_several_times_the_random_drop(ml500, bpr, evaluator, eps):
    before = evaluator.evaluate(bpr)
    adv = attack_and_evaluate(bpr, ml500[0], evaluator, "fgsm", eps, before)
    rnd = attack_and_evaluate(bpr, ml500[0], evaluator, "random", eps, before)
    assert adv.change["ndcg@100"] < 3 * rnd.change["ndcg@100"] < 0
    assert adv.change["ndcg@100"] < -0.15
    assert adv.p_values["ndcg@100"] < 0.01  # significant over users


def test_pgd_stays_in_the_ball_and_hurts_at_least_as_much(ml500, bpr, evaluator):
    delta = pgd(bpr, ml500[0], 0.5, steps=3)
    assert (delta["user"].norm(dim=1) <= 0.5 + 1e-5).all()
    assert (delta["item"].norm(dim=1) <= 0.5 + 1e-5).all()
    objective = AttackObjective(bpr, ml500[0])
    _, one_step = objective.gradient(fgsm(bpr, ml500[0], 0.5))
    _, three_steps = objective.gradient(delta)
    assert three_steps >= one_step * 0.98


def test_single_block_and_linf(ml500, bpr):
    delta = fgsm(bpr, ml500[0], 0.1, blocks="item", norm="linf")
    assert set(delta) == {"item"}
    assert delta["item"].abs().max() == pytest.approx(0.1)


def test_targeted_push_and_nuke_move_the_targets(ml500, bpr):
    train = ml500[0]
    targets = np.argsort(train.item_counts)[-400:-395]  # mid-popularity items
    clean = target_hit_ratio(bpr, train, targets, k=100)["target_hr@100"]
    push = fgsm(bpr, train, 0.5, targets=targets, mode="push")
    nuke = fgsm(bpr, train, 0.5, targets=targets, mode="nuke")
    pushed = target_hit_ratio(perturbed_scorer(bpr, push), train, targets, k=100)
    nuked = target_hit_ratio(perturbed_scorer(bpr, nuke), train, targets, k=100)
    assert pushed["target_hr@100"] > clean + 0.05
    assert nuked["target_hr@100"] < clean


def test_same_seed_same_perturbation(ml500, bpr):
    a, b = fgsm(bpr, ml500[0], 0.5, seed=3), fgsm(bpr, ml500[0], 0.5, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    r1, r2 = random_perturbation(bpr, 0.5, seed=4), random_perturbation(bpr, 0.5, seed=4)
    assert all(torch.equal(r1[k], r2[k]) for k in r1)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m, t: fgsm(m, t, 0.0), ConfigError, "eps: must be > 0"),
        (lambda m, t: fgsm(m, t, -1), ConfigError, "eps: must be > 0"),
        (lambda m, t: fgsm(m, t, 0.5, blocks="bias"), ConfigError, "unknown parameter block"),
        (lambda m, t: perturb(m, t, "deepfool", 0.5), ConfigError, "unknown attack method"),
        (lambda m, t: fgsm(m, t, 0.5, targets=[99999]), DataError, "target items"),
        (lambda m, t: fgsm(m, t, 0.5, targets=[1], mode="lift"), ConfigError, "push or nuke"),
        (lambda m, t: fgsm(m, t, 0.5, norm="l1"), ConfigError, "unknown norm"),
        (lambda m, t: pgd(m, t, 0.5, steps=0), ConfigError, "steps"),
    ],
)
def test_bad_attack_input(ml500, bpr, call, error, message):
    with pytest.raises(error, match=message):
        call(bpr, ml500[0])


def test_model_without_blocks_is_refused(ml500):
    pop = ItemPop().fit(ml500[0])
    with pytest.raises(ConfigError, match="no parameter blocks"):
        fgsm(pop, ml500[0], 0.5)


def test_attack_refuses_data_the_model_was_not_trained_on(ml500, bpr):
    train, test = ml500
    with pytest.raises(DataError, match="not the model's training data"):
        fgsm(bpr, test, 0.5)


def test_target_hit_ratio_by_hand():
    from advrec.data import Interactions

    train = Interactions.from_raw([0, 0, 1], [0, 1, 2], user_ids=[0, 1], item_ids=[0, 1, 2, 3])
    scores = torch.tensor([[9.0, 8.0, 1.0, 1.0], [3.0, 3.0, 0.0, 2.0]])
    out = target_hit_ratio(lambda users: scores[users], train, [3], k=1)
    # user 0: candidates {2, 3} tie at 1.0 → rank 1 (ties against the target); user 1: items 0, 1
    # score above → rank 2; neither is a hit at k=1, mean rank 1.5
    assert out == {"target_hr@1": 0.0, "target_mean_rank": 1.5, "target_pairs": 2}
    assert target_hit_ratio(lambda users: scores[users], train, [3], k=2)["target_hr@2"] == 0.5
