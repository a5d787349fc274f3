"""VBPR and AMR: hand-computed scores, AMR with λ = 0 is VBPR exactly, AMR's training Δ is the
FGSM the content attack uses, and FGSM on the features hurts more than random noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrec.attacks.perturbation import AttackObjective, fgsm, random_perturbation
from advrec.data.interactions import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import ParamError
from advrec.models import AMR, VBPR
from advrec.training.adversarial import AdversarialRegularizer
from advrec.training.perturbation import fgsm_direction

FAST = dict(n_factors=4, n_visual_factors=3, epochs=3, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def clustered():
    """Interactions in 3 clusters whose items carry their cluster as (noisy) content."""
    data = synthetic_interactions(60, 45, 900, n_clusters=3, seed=1)
    rng = np.random.default_rng(0)
    cluster = np.arange(data.n_items) % 3
    content = np.eye(3, dtype=np.float32)[cluster] + 0.1 * rng.random((data.n_items, 3),
                                                                       dtype=np.float32)
    return data, content


def test_scores_are_the_vbpr_formula_by_hand():
    data = Interactions.from_raw([0, 0, 1, 1], [0, 1, 1, 2])
    f = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    model = VBPR(n_factors=2, n_visual_factors=1, epochs=1, batch_size=2, device="cpu",
                 feature_scale="none").fit(data, item_features=f, progress=False)
    net = model.net_
    with torch.no_grad():
        net.user.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0]]))
        net.item.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        net.user_visual.copy_(torch.tensor([[2.0], [-1.0]]))
        net.projection.copy_(torch.tensor([[0.5], [0.25]]))
        net.item_bias.copy_(torch.tensor([[0.1], [0.2], [0.3]]))
        net.visual_bias.copy_(torch.tensor([[1.0], [-1.0]]))
    # user 0, item 1: β_1 + γ_0·γ_1 + θ_0·(E f_1) + β'·f_1 = 0.2 + 2 + 2·0.5 + (−2) = 1.2
    # user 1, item 2: 0.3 + (0.5 − 1) + (−1)·0.75 + 0 = −0.95
    scores = model.score(torch.tensor([0, 1]))
    assert scores[0, 1].item() == pytest.approx(1.2)
    assert scores[1, 2].item() == pytest.approx(-0.95)
    pairs = model.pair_scores(torch.tensor([0, 1]), torch.tensor([1, 2]))
    assert pairs.tolist() == pytest.approx([1.2, -0.95])
    # a content Δ enters through E and β': Δ f_1 = (1, 0) adds θ_0·0.5 + 1 = 2
    delta = torch.zeros(3, 2)
    delta[1, 0] = 1.0
    moved = model.score(torch.tensor([0]), perturbation={"item_content": delta})
    assert moved[0, 1].item() == pytest.approx(3.2)
    assert torch.allclose(moved[0, [0, 2]], scores[0, [0, 2]])


def test_features_are_scaled_by_their_largest_magnitude(clustered):
    data, content = clustered
    model = VBPR(**FAST).fit(data, item_features=4 * content, progress=False)
    assert model.feature_scale_ == pytest.approx(float(np.abs(4 * content).max()))
    assert model.parameter_blocks()["item_content"].abs().max().item() == pytest.approx(1.0)


def test_amr_with_lambda_zero_is_vbpr_exactly(clustered):
    data, content = clustered
    vbpr = VBPR(**FAST).fit(data, item_features=content, progress=False)
    amr0 = AMR(**FAST, adv_reg=0.0).fit(data, item_features=content, progress=False)
    amr = AMR(**FAST).fit(data, item_features=content, progress=False)
    assert torch.equal(vbpr.score(), amr0.score())
    assert not torch.allclose(vbpr.score(), amr.score())


def test_amr_delta_is_the_per_item_fgsm_of_the_batch(clustered):
    data, content = clustered
    model = VBPR(**FAST).fit(data, item_features=content, progress=False)
    net = model.net_
    batch = (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 4, 5, 7]), torch.tensor([1, 2, 3, 9]))
    delta = AdversarialRegularizer(eps=0.1, blocks=("item_content",)).perturbation(net, batch)
    d = delta["item_content"]
    touched = torch.tensor([0, 1, 2, 3, 4, 5, 7, 9])
    assert torch.allclose(d[touched].norm(dim=1), torch.full((8,), 0.1), atol=1e-6)
    untouched = torch.ones(data.n_items, dtype=torch.bool)
    untouched[touched] = False
    assert d[untouched].abs().sum() == 0
    # the same direction by hand: the gradient w.r.t. the features, normalised per row
    f = net.features.clone().requires_grad_(True)
    net.features = f
    grad = torch.autograd.grad(net.loss(batch, l2=False), f)[0]
    assert torch.allclose(d, fgsm_direction(grad, 0.1), atol=1e-6)


def test_content_fgsm_raises_the_loss_more_than_random_noise_of_the_same_norm(clustered):
    data, content = clustered
    model = VBPR(**{**FAST, "epochs": 10}).fit(data, item_features=content, progress=False)
    adv = fgsm(model, data, 0.5, blocks="item_content")
    noise = random_perturbation(model, 0.5, blocks="item_content", seed=0)
    assert torch.allclose(adv["item_content"].norm(dim=1), noise["item_content"].norm(dim=1))
    objective = AttackObjective(model, data)
    clean, hurt, rand = (objective.gradient(d)[1] for d in
                         ({"item_content": torch.zeros_like(adv["item_content"])}, adv, noise))
    assert hurt - clean > 5 * abs(rand - clean)


def test_warm_start_keeps_the_features_and_checks_sizes(clustered):
    data, content = clustered
    vbpr = VBPR(**FAST).fit(data, item_features=content, progress=False)
    amr = AMR(**FAST).fit(data, init_from=vbpr, progress=False)
    assert torch.equal(amr.parameter_blocks()["item_content"],
                       vbpr.parameter_blocks()["item_content"])
    with pytest.raises(ParamError, match="init_from"):
        AMR(**{**FAST, "n_factors": 5}).fit(data, init_from=vbpr, progress=False)
