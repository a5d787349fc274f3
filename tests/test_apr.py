"""APR (He et al., SIGIR'18): λ = 0 is BPR-MF, both backends agree, and it shrinks FGSM's damage."""

from __future__ import annotations

import pytest
import torch

from advrec.attacks import fgsm, perturbed_scorer
from advrec.data.datasets import load_split
from advrec.errors import ConfigError
from advrec.evaluation import Evaluator
from advrec.models import APR, BPRMF
from advrec.training.adversarial import AdversarialRegularizer


@pytest.fixture(scope="module")
def ml500(data_dir):
    return load_split("movielens-500")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_lambda_zero_reproduces_bprmf_bit_for_bit(ml500, backend):
    bpr = BPRMF(epochs=3, seed=2, backend=backend).fit(ml500[0], progress=False)
    apr = APR(epochs=3, seed=2, adv_reg=0.0, backend=backend).fit(ml500[0], progress=False)
    assert torch.equal(bpr.net_.user, apr.net_.user)
    assert torch.equal(bpr.net_.item, apr.net_.item)
    assert [h["loss"] for h in bpr.history_] == [h["loss"] for h in apr.history_]


@pytest.mark.parametrize("blocks", [("user", "item"), ("item",)])
def test_compiled_and_autograd_apr_agree(ml500, blocks):
    """The compiled epoch's built-in APR step equals the Trainer's AdversarialRegularizer, which
    builds Δ with the same fgsm_direction the attack uses."""
    start = BPRMF(epochs=2, seed=0).fit(ml500[0], progress=False)
    kw = dict(epochs=2, seed=1, adv_blocks=blocks)
    fast = APR(backend="numba", **kw).fit(ml500[0], init_from=start, progress=False)
    slow = APR(backend="torch", **kw).fit(ml500[0], init_from=start, progress=False)
    assert torch.allclose(fast.net_.user, slow.net_.user, atol=1e-5)
    assert torch.allclose(fast.net_.item, slow.net_.item, atol=1e-5)


def test_adversarial_term_uses_fresh_perturbed_parameters(ml500):
    """Δ comes from this batch's clean gradient, and the adversarial loss is at Θ + Δ."""
    bpr = BPRMF(epochs=1, seed=0).fit(ml500[0], progress=False)
    net = bpr.net_
    reg = AdversarialRegularizer(eps=0.5, reg=1.0)
    users, pos, neg = (torch.from_numpy(a[:256].copy()) for a in
                       (ml500[0].users, ml500[0].items, ml500[0].items[::-1]))
    batch = (users, pos, neg)
    clean = net.loss(batch)
    delta = reg.perturbation(net, batch, clean)
    assert not any(d.requires_grad for d in delta.values())
    rows = delta["user"][users].norm(dim=1)
    torch.testing.assert_close(rows, torch.full_like(rows, 0.5))
    adversarial = reg(net, batch, clean)
    assert adversarial > clean  # the worst case within ε costs more than the clean loss
    torch.testing.assert_close(adversarial, net.loss(batch, perturbation=delta))


def test_switch_on_epoch(ml500):
    plain = BPRMF(epochs=2, seed=0).fit(ml500[0], progress=False)
    late = APR(epochs=3, seed=0, adv_start_epoch=2).fit(ml500[0], progress=False)
    early = APR(epochs=2, seed=0, adv_start_epoch=2).fit(ml500[0], progress=False)
    assert torch.equal(plain.net_.user, early.net_.user)  # never switched on
    assert [h["loss"] for h in late.history_[:2]] == [h["loss"] for h in plain.history_]


def test_apr_shrinks_the_fgsm_damage(ml500):
    """The hands-on protocol: BPR-MF → FGSM ε = 0.5; APR trained on from it → FGSM again.
    The nDCG@100 drop is clearly smaller after APR (and APR is at least as accurate)."""
    train, test = ml500
    ev = Evaluator(train, test, ks=(100,), metrics=("ndcg",), coverage=False)

    def drop(model):
        clean = ev.evaluate(model).summary["ndcg@100"]
        attacked = ev.evaluate(perturbed_scorer(model, fgsm(model, train, 0.5))).summary
        return clean, (attacked["ndcg@100"] - clean) / clean

    drops = []
    for seed in (0, 1):
        bpr = BPRMF(epochs=5, seed=seed).fit(train, progress=False)
        apr = APR(epochs=100, seed=seed).fit(train, init_from=bpr, progress=False)
        (bpr_clean, bpr_drop), (apr_clean, apr_drop) = drop(bpr), drop(apr)
        assert apr_clean > bpr_clean
        drops.append((bpr_drop, apr_drop))
    for bpr_drop, apr_drop in drops:
        assert bpr_drop < -0.12
        assert apr_drop > bpr_drop + 0.04


def test_bad_apr_options(ml500):
    with pytest.raises(ConfigError, match=r"eps\b.*(positive|> 0)"):
        APR(epochs=1, eps=0).fit(ml500[0], progress=False)
    with pytest.raises(ConfigError, match="adv_blocks"):
        APR(epochs=1, adv_blocks=("bias",)).fit(ml500[0], progress=False)
    with pytest.raises(ConfigError, match=">= 0"):
        APR(epochs=1, adv_reg=-1).fit(ml500[0], progress=False)
    with pytest.raises(ConfigError, match="init_from"):
        APR(epochs=1).fit(ml500[0], init_from="not a model", progress=False)
