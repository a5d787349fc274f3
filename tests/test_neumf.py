"""NCF (He et al., WWW'17): GMF/MLP/NeuMF logits by hand, NeuMF's fusion of pre-trained GMF and
MLP, the point-wise sampler, λ = 0 is the plain model, chunked scoring, and on real data
(movielens-500, the sampled-99 protocol) NeuMF with pre-training ≥ GMF and ≥ MLP alone, and FGSM
hurts far more than random noise of the same norm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrec.attacks import fgsm, perturbed_scorer, random_perturbation
from advrec.data.interactions import Interactions
from advrec.data.sampling import PointwiseSampler
from advrec.errors import ParamError
from advrec.evaluation import Evaluator
from advrec.models import GMF, MLP, NeuMF, neumf_net
from advrec.models.neumf_net import NCFNet

torch.set_num_threads(1)


def small(n_users: int = 30, n_items: int = 40, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 6)
    items = rng.integers(0, n_items, len(users))
    pairs = np.unique(np.stack([users, items], 1), axis=0)
    return Interactions(pairs[:, 0], pairs[:, 1], np.arange(n_users), np.arange(n_items))


def test_gmf_logit_by_hand():
    net = NCFNet(2, 3, "gmf", 2, (4,)).reset(torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.gmf_user.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0]]))
        net.gmf_item.copy_(torch.tensor([[3.0, 1.0], [0.0, 2.0], [1.0, 1.0]]))
        net.predict.weight.copy_(torch.tensor([[0.5, -1.0]]))
        net.predict.bias.fill_(0.25)
        got = net.logits(torch.tensor([0, 1]), torch.tensor([0, 1]))
    # u0·i0: 0.5·(1·3) − 1·(2·1) + 0.25 = −0.25; u1·i1: 0.5·0 − 1·(−1·2) + 0.25 = 2.25
    torch.testing.assert_close(got, torch.tensor([-0.25, 2.25]))


def test_mlp_tower_by_hand():
    net = NCFNet(1, 1, "mlp", 8, (4, 2)).reset(torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.mlp_user.copy_(torch.tensor([[1.0, -1.0]]))
        net.mlp_item.copy_(torch.tensor([[2.0, 0.5]]))
        got = net.logits(torch.tensor([0]), torch.tensor([0]))
        h = torch.relu(net.tower[0](torch.tensor([[1.0, -1.0, 2.0, 0.5]])))
        expected = net.predict(h).squeeze(-1)
    torch.testing.assert_close(got, expected)
    assert net.tower[0].in_features == 4 and net.tower[0].out_features == 2


def test_neumf_fusion_starts_as_the_weighted_sum_of_the_pretrained_logits():
    data = small()
    kw = dict(mf_dim=3, epochs=0, batch_size=32, seed=1, device="cpu")
    model = NeuMF(layers=(8, 4), pretrain_epochs=2, alpha=0.3, **kw).fit(data, progress=False)
    gmf = GMF(mf_dim=3, epochs=2, batch_size=32, seed=1, device="cpu").fit(data, progress=False)
    mlp = MLP(layers=(8, 4), epochs=2, batch_size=32, seed=1, device="cpu").fit(
        data, progress=False)
    # epochs=0: NeuMF is exactly the fusion; the logits add up: α·ŷ_GMF + (1−α)·ŷ_MLP
    torch.testing.assert_close(model.score(), 0.3 * gmf.score() + 0.7 * mlp.score(),
                               rtol=1e-5, atol=1e-5)


def test_pointwise_sampler_draws_four_unobserved_items_per_positive():
    data = small()
    sampler = PointwiseSampler(data, n_negatives=4, seed=0)
    users, items, labels = sampler.instances()
    assert len(users) == 5 * len(data) and labels.sum() == len(data)
    seen = set(zip(data.users.tolist(), data.items.tolist(), strict=True))
    pos = {(u, i) for u, i, y in zip(users, items, labels, strict=True) if y == 1}
    assert pos == seen  # every training pair once
    negatives = [(u, i) for u, i, y in zip(users, items, labels, strict=True) if y == 0]
    assert not set(negatives) & seen  # never a positive
    again = PointwiseSampler(data, n_negatives=4, seed=0).instances()
    assert all(np.array_equal(a, b) for a, b in zip(again, (users, items, labels), strict=True))
    assert sum(len(b[0]) for b in sampler.batches(64)) == 5 * len(data)


def test_adv_reg_zero_is_the_plain_model_and_positive_differs():
    data = small()
    kw = dict(mf_dim=3, layers=(8, 4), epochs=2, batch_size=32, seed=2, device="cpu")
    plain = NeuMF(**kw).fit(data, progress=False).score()
    zero = NeuMF(**kw, adv_reg=0.0, eps=3.0).fit(data, progress=False).score()
    adv = NeuMF(**kw, adv_reg=1.0).fit(data, progress=False).score()
    torch.testing.assert_close(plain, zero, rtol=0, atol=0)
    assert not torch.allclose(plain, adv)


def test_chunked_scores_equal_the_pairwise_logits(monkeypatch):
    model = NeuMF(mf_dim=3, layers=(8, 4), epochs=1, batch_size=32, device="cpu").fit(
        small(), progress=False)
    whole = model.score()
    monkeypatch.setattr(neumf_net, "PAIRS_PER_CHUNK", 50)  # a chunk of one user
    torch.testing.assert_close(model.score(), whole)
    users = torch.arange(30)[:, None]
    torch.testing.assert_close(model.pair_scores(users, torch.arange(40)[None, :]), whole)


def test_bad_parameters_name_themselves():
    with pytest.raises(ParamError, match="layers"):
        MLP(layers=(7, 4)).fit(small())  # the first width is split in two
    with pytest.raises(ParamError, match="alpha"):
        NeuMF(alpha=1.5).fit(small())
    with pytest.raises(ParamError, match="adv_blocks"):
        GMF(adv_blocks=("mlp_user",)).fit(small())


@pytest.mark.slow
def test_pretrained_neumf_beats_gmf_and_mlp_and_fgsm_beats_noise(data_dir):
    from advrec.data.datasets import load_split

    train, test = load_split("movielens-500", root=data_dir)
    ev = Evaluator(train, test, ks=(10,), metrics=("hr", "ndcg"), protocol="sampled",
                   n_negatives=99, seed=0)
    gmf = GMF(epochs=3).fit(train, progress=False)
    mlp = MLP(epochs=3).fit(train, progress=False)
    neumf = NeuMF(epochs=3, pretrain_epochs=3).fit(train, progress=False)
    hr = {n: ev.evaluate(m).summary["hr@10"] for n, m in
          (("gmf", gmf), ("mlp", mlp), ("neumf", neumf))}
    # the paper's claim (Table 2/Fig. 4): NeuMF with pre-training ≥ GMF and ≥ MLP
    assert hr["neumf"] >= max(hr["gmf"], hr["mlp"]), hr
    clean = ev.evaluate(neumf).summary["ndcg@10"]
    attacked = ev.evaluate(perturbed_scorer(neumf, fgsm(neumf, train, 0.5))).summary["ndcg@10"]
    noisy = ev.evaluate(perturbed_scorer(neumf, random_perturbation(neumf, 0.5))).summary
    # measured (seed 0): clean 0.293, FGSM 0.194, random 0.271
    assert attacked < noisy["ndcg@10"] - 0.03 and noisy["ndcg@10"] < clean + 1e-9
