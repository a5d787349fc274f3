"""The fast paths of issue 18 compute what the reference paths compute: the closed-form PyTorch
BPR/APR epoch equals autograd with the AdversarialRegularizer, RowAdagrad equals torch's
Adagrad, the reused Δ buffer leaves no trace, Hogwild threads train as well as one thread, and an
ε sweep computes FGSM's gradient once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import advrec.attacks.perturbation as perturbation_module
from advrec.attacks.perturbation import fgsm, fgsm_gradient
from advrec.data.datasets import load_split
from advrec.data.sampling import UniformSampler
from advrec.evaluation import Evaluator
from advrec.experiments.config import parse_config
from advrec.experiments.runner import run_experiment
from advrec.models import APR, BPRMF
from advrec.training.adversarial import AdversarialRegularizer
from advrec.training.optim import RowAdagrad
from advrec.training.trainer import Trainer


@pytest.fixture(scope="module")
def ml500(data_dir):
    return load_split("movielens-500")


@pytest.mark.parametrize(("optimizer", "adv_reg", "blocks"), [
    ("adagrad", 0.0, ("user", "item")), ("sgd", 0.0, ("user", "item")),
    ("adagrad", 1.0, ("user", "item")), ("adagrad", 1.0, ("item",)), ("sgd", 1.0, ("user",))])
def test_closed_form_torch_epoch_equals_autograd(ml500, optimizer, adv_reg, blocks):
    """TorchBPRRunner (closed-form gradient on the batch's distinct rows) against the generic
    Trainer: autograd on sparse embeddings + AdversarialRegularizer + the torch optimiser."""
    train = ml500[0]
    # from trained embeddings, as APR runs (at the 0.01-std init Δ's direction is chaotic)
    start = BPRMF(epochs=2, seed=0).fit(train, progress=False)
    kw = dict(epochs=2, optimizer=optimizer, lr=0.05, reg=0.01, seed=4, backend="torch",
              adv_reg=adv_reg, adv_blocks=blocks)
    fast = APR(**kw).fit(train, init_from=start, progress=False)
    net = APR(**kw).init_net(train.n_users, train.n_items)
    net.load_state_dict({k: v.clone() for k, v in start.net_.state_dict().items()})
    trainer = Trainer(epochs=2, batch_size=512, optimizer=optimizer, lr=0.05,
                      regularizer=AdversarialRegularizer(0.5, adv_reg, blocks), progress=False)
    history = trainer.fit(net, UniformSampler(train, seed=4))  # the generic autograd runner
    torch.testing.assert_close(fast.net_.user.data, net.user.data, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast.net_.item.data, net.item.data, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose([h["loss"] for h in fast.history_],
                               [h["loss"] for h in history], rtol=1e-5)


def test_row_adagrad_equals_torch_adagrad_on_sparse_and_dense_gradients():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(20, 4, generator=gen)
    ours = torch.nn.Parameter(start.clone())
    theirs = torch.nn.Parameter(start.clone())
    opt_a = RowAdagrad([ours], lr=0.1, initial_accumulator=0.1)
    opt_b = torch.optim.Adagrad([theirs], lr=0.1, initial_accumulator_value=0.1, eps=1e-10)
    for step in range(6):
        idx = torch.randint(0, 20, (15,), generator=gen)  # repeated rows: summed first
        weights = torch.randn(15, 4, generator=gen)
        for p, opt in ((ours, opt_a), (theirs, opt_b)):
            opt.zero_grad()
            if step % 3 == 2:  # a dense step now and then
                (p * weights[:1]).sum().backward()
            else:
                (torch.nn.functional.embedding(idx, p, sparse=True) * weights).sum().backward()
            opt.step()
        torch.testing.assert_close(ours.data, theirs.data)
    torch.testing.assert_close(opt_a.state[ours]["sum"], opt_b.state[theirs]["sum"])


def test_reused_delta_buffer_is_zero_after_each_step_and_changes_nothing(ml500):
    train = ml500[0]
    net = BPRMF(epochs=1, seed=0).fit(train, progress=False).net_
    reg = AdversarialRegularizer(eps=0.5, reg=1.0)
    sampler = UniformSampler(train, seed=1)
    for users, pos, neg in list(sampler.batches(256))[:3]:
        batch = tuple(torch.from_numpy(a.copy()) for a in (users, pos, neg))
        clean = net.loss(batch)
        expected = reg.reg * net.loss(batch, perturbation=reg.perturbation(net, batch, clean),
                                      l2=False)
        torch.testing.assert_close(reg(net, batch, clean), expected)
        assert all(float(b.abs().sum()) == 0.0 for b in reg._buffers.values())


def test_hogwild_threads_train_as_well_and_one_thread_is_reproducible(ml500):
    train, test = ml500
    ev = Evaluator(train, test, ks=(10,), metrics=("hr", "ndcg", "auc"), coverage=False)
    one = [BPRMF(epochs=5, seed=0, threads=1).fit(train, progress=False) for _ in range(2)]
    assert torch.equal(one[0].net_.user, one[1].net_.user)
    two = BPRMF(epochs=5, seed=0, threads=2).fit(train, progress=False)
    a, b = ev.evaluate(one[0]).summary, ev.evaluate(two).summary
    # Hogwild runs differ from one thread by ~0.001 here; seeds differ by up to 0.008 nDCG@10
    assert abs(a["auc"] - b["auc"]) < 0.005, (a, b)
    assert abs(a["ndcg@10"] - b["ndcg@10"]) < 0.005, (a, b)
    apr = APR(epochs=2, seed=0, threads=2).fit(train, init_from=two, progress=False)
    assert np.isfinite(apr.history_[-1]["loss"])


def test_fgsm_with_a_known_gradient_equals_fgsm(ml500):
    model = BPRMF(epochs=1, seed=0).fit(ml500[0], progress=False)
    grad = fgsm_gradient(model, ml500[0], seed=3)
    for eps in (0.1, 1.0):
        direct = fgsm(model, ml500[0], eps, seed=3)
        reused = fgsm(model, ml500[0], eps, seed=3, gradient=grad)
        for block in direct:
            assert torch.equal(direct[block], reused[block])


def test_an_eps_sweep_computes_the_fgsm_gradient_once_per_model(tmp_path, monkeypatch, data_dir):
    calls = []
    real = perturbation_module.fgsm_gradient

    def counted(*args, **kwargs):
        calls.append(kwargs.get("blocks"))
        return real(*args, **kwargs)

    monkeypatch.setattr(perturbation_module, "fgsm_gradient", counted)
    raw = {"name": "sweep", "data": {"dataset": "movielens-500"},
           "models": [{"name": "bprmf", "params": {"epochs": 1}}],
           "attacks": [{"method": "fgsm", "eps": [0.25, 0.5, 1.0, 2.0]},
                       {"method": "fgsm", "eps": [0.5, 1.0], "blocks": "item"}],
           "evaluation": {"ks": [10], "metrics": ["hr", "ndcg"]}, "seeds": [0]}
    config = parse_config(json.loads(json.dumps(raw))).model_copy(
        update={"output": str(tmp_path)})
    summary = run_experiment(config)
    assert summary.done_now == 7
    assert calls == ["both", "item"]  # one gradient per option set, not one per ε


@pytest.mark.parametrize(("name", "params"), [
    ("neumf", {"epochs": 1, "adv_reg": 1.0, "batch_size": 1024}),
    ("neumf", {"epochs": 1, "adv_reg": 1.0, "batch_size": 1024, "reg": 1e-3}),  # L2 split off
    ("lightgcn", {"epochs": 1, "adv_reg": 1.0, "n_layers": 2}),  # reg 1e-4: L2 split off
    ("multvae", {"epochs": 2, "adv_reg": 1.0, "total_anneal_steps": 3}),  # β moves per update
    ("multdae", {"epochs": 2, "adv_reg": 1.0}),  # reg 0.01/500: L2 split off
])
def test_shared_clean_backward_equals_differentiating_the_whole_objective(
        ml500, monkeypatch, name, params):
    from advrec.models.registry import get_model

    cls = get_model(name)
    fast = cls(seed=0, **params).fit(ml500[0], progress=False)

    def whole_objective(self, module, batch):
        clean = module.loss(batch)
        (clean + self(module, batch, clean)).backward()
        return clean.detach()

    monkeypatch.setattr(AdversarialRegularizer, "backward", whole_objective)
    whole = cls(seed=0, **params).fit(ml500[0], progress=False)
    for key, value in fast.net_.state_dict().items():
        torch.testing.assert_close(value, whole.net_.state_dict()[key], atol=1e-5, rtol=1e-4,
                                   msg=key)
    for a, b in zip(fast.history_, whole.history_, strict=True):  # the logged clean loss
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


@pytest.mark.parametrize("params", [
    {"corruption": 0.3},  # the mask of each step drawn once from its seed, for every loss
    {"adv_scope": "row", "adv_blocks": ["user", "encoder", "decoder"]},
])
def test_acae_shared_backward_gives_each_steps_whole_objective_gradient(ml500, monkeypatch,
                                                                         params):
    """ACAE (one loss per noise source, L2 on): at every step of a fit, the shared backward's
    gradient equals differentiating clean + Σ_b λ_b·L(Θ, n_b) as one objective. (Compared per
    step: Adagrad's first steps are sign-like, so whole fits drift apart by rounding.)"""
    from advrec.models import ACAE

    shared = AdversarialRegularizer.backward
    steps = []

    def checked(self, module, batch):
        params_ = [p for p in module.parameters() if p.requires_grad]
        clean = module.loss(batch)
        (clean + self(module, batch, clean)).backward()
        whole = [p.grad.clone() for p in params_]
        module.zero_grad(set_to_none=True)
        logged = shared(self, module, batch)
        for p, g in zip(params_, whole, strict=True):
            torch.testing.assert_close(p.grad, g, atol=1e-6, rtol=1e-5)
        assert float(logged) == pytest.approx(float(clean.detach()), rel=1e-6)
        steps.append(1)
        return logged

    monkeypatch.setattr(AdversarialRegularizer, "backward", checked)
    ACAE(epochs=1, adv_start_epoch=0, seed=0, **params).fit(ml500[0], progress=False)
    assert len(steps) >= 10


def test_a_split_l2_term_keeps_the_adversarial_step_at_two_forward_passes(ml500, monkeypatch):
    """LightGCN (L2 on): the ranking loss, its adversarial twin and the L2 term alone; the
    propagation (the costly forward) runs twice per step, not three times."""
    from advrec.models import LightGCN
    from advrec.models.lightgcn_net import LightGCNNet

    calls = []
    propagate = LightGCNNet.propagate

    def counted(self, perturbation=None):
        if torch.is_grad_enabled():
            calls.append(bool(perturbation))
        return propagate(self, perturbation)

    monkeypatch.setattr(LightGCNNet, "propagate", counted)
    model = LightGCN(epochs=1, adv_reg=1.0, n_layers=1, batch_size=4096, reg=1e-4, seed=0)
    model.fit(ml500[0], progress=False)
    steps = -(-len(ml500[0]) // 4096)
    assert calls == [False, True] * steps
