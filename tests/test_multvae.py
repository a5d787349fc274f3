"""Mult-VAE / Mult-DAE (Liang et al., WWW'18): shapes, the multinomial likelihood and the KL term
by hand, the β schedule and its per-update counter, noise only in training, adv_reg = 0 is the
plain model, save/load and checkpoint/resume, perturbable blocks, and on real data
(ml-1m-implicit) both beat ItemPop."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import advrec.models.base
from advrec.attacks import fgsm
from advrec.data.interactions import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import CheckpointError, ParamError
from advrec.models import load_model
from advrec.models.multvae import BLOCKS, MultDAE, MultVAE, UserBatchSampler
from advrec.models.multvae_net import MultVAENet, anneal_beta

torch.set_num_threads(1)

# 3 users × 5 items; user 1 has two clicks, the others three
R = sp.csr_matrix(np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 0], [1, 0, 0, 1, 1]], np.float64))
USERS = torch.tensor([0, 1, 2])
TINY = dict(hidden_dims=(6,), latent_dim=3, epochs=2, batch_size=8, device="cpu")


def tiny_net(variational: bool = True, dropout: float = 0.0, reg: float = 0.0,
             total: int = 10, cap: float = 0.3, hidden=(4,), seed: int = 0) -> MultVAENet:
    net = MultVAENet(R.indptr, R.indices, 5, hidden, 2, dropout, variational, reg, total, cap)
    net.initialize(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # biases of 0.001 would hide a missing term: make them count
        for b in net._biases():
            b.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(seed + 1))
    return net


def value(loss: torch.Tensor) -> float:
    return float(loss.detach())


def by_hand(net: MultVAENet, eps: np.ndarray | None = None) -> dict[str, float]:
    """The notebook's forward pass in float64 NumPy, from the net's own parameters."""
    w = [p.detach().double().numpy() for p in net._weights()]
    b = [p.detach().double().numpy() for p in net._biases()]
    w[-1] = w[-1].T  # the decoder block is stored item-major: the notebook's weights_p[-1].T
    x = R.toarray()
    h = x / np.linalg.norm(x, axis=1, keepdims=True)
    n_q = len(net.q_dims) - 1
    for layer in range(n_q):
        h = h @ w[layer] + b[layer]
        if layer != n_q - 1 or not net.variational:
            h = np.tanh(h)
    out: dict[str, float] = {}
    if net.variational:
        mu, logvar = h[:, :2], h[:, 2:]
        out["kl"] = float((0.5 * (-logvar + np.exp(logvar) + mu ** 2 - 1)).sum())
        h = mu if eps is None else mu + eps * np.exp(0.5 * logvar)
    for layer in range(n_q, len(w)):
        h = h @ w[layer] + b[layer]
        if layer != len(w) - 1:
            h = np.tanh(h)
    logits = h
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    out["nll"] = float(-(x * log_softmax).sum())
    out["l2"] = float(sum((m ** 2).sum() for m in w))
    out["logits"] = logits
    return out


# ----------------------------------------------------------------------------- the network
def test_layer_sizes_and_blocks():
    vae = MultVAENet(R.indptr, R.indices, 5, (600,), 200, 0.5, True)
    assert vae.q_dims == [5, 600, 400] and vae.p_dims == [200, 600, 5]  # 2 × 200: μ | log σ²
    assert vae.encoder.shape == (5, 600) and vae.decoder.shape == (5, 600)
    assert vae.q_weights[0].shape == (600, 400) and vae.p_weights[0].shape == (200, 600)
    dae = MultVAENet(R.indptr, R.indices, 5, (), 200, 0.5, False)  # the notebook's I-200-I
    assert dae.q_dims == [5, 200] and dae.p_dims == [200, 5]
    assert len(dae.q_weights) == len(dae.p_weights) == 0
    assert tuple(vae.blocks()) == BLOCKS == MultVAENet.block_names


def test_initialisation_is_glorot_uniform_and_small_truncated_normal_biases():
    net = MultVAENet(R.indptr, R.indices, 50, (60,), 20, 0.5, True)
    net.initialize(torch.Generator().manual_seed(0))
    limit = np.sqrt(6 / (50 + 60))
    encoder = net.encoder.detach()
    assert limit >= float(encoder.abs().max()) > 0.9 * limit
    assert float(net.q_weights[0].detach().abs().max()) <= np.sqrt(6 / (60 + 40))  # fan-out 2K
    biases = torch.cat([b.detach() for b in net._biases()])
    assert float(biases.abs().max()) <= 0.002  # TF's truncated normal: cut at 2 std
    assert 0.0005 < float(biases.std()) < 0.001


def test_multinomial_likelihood_and_kl_by_hand():
    net = tiny_net().eval()
    hand = by_hand(net)
    net.anneal_step = 0  # β = 0: the likelihood alone
    assert value(net.loss((USERS,))) == pytest.approx(hand["nll"], rel=1e-5)
    net.anneal_step = 2  # β = 2 / 10
    assert value(net.loss((USERS,))) == pytest.approx(hand["nll"] + 0.2 * hand["kl"], rel=1e-5)
    net.anneal_step = 9  # β = min(0.3, 0.9)
    assert value(net.loss((USERS,))) == pytest.approx(hand["nll"] + 0.3 * hand["kl"], rel=1e-5)
    assert hand["kl"] > 0.01  # the term is really there
    with torch.no_grad():
        np.testing.assert_allclose(net.score(USERS).double().numpy(), hand["logits"], rtol=1e-5,
                                   atol=1e-6)


def test_dae_loss_by_hand_has_l2_and_no_kl():
    net = tiny_net(variational=False, reg=0.01).eval()
    hand = by_hand(net)
    assert "kl" not in hand
    assert value(net.loss((USERS,), l2=False)) == pytest.approx(hand["nll"], rel=1e-5)
    # B · λ · Σ‖W‖²: the notebook's mean loss neg_ll + 2·reg_var times the batch size
    assert value(net.loss((USERS,))) == pytest.approx(hand["nll"] + 3 * 0.01 * hand["l2"],
                                                      rel=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(net.score(USERS).double().numpy(), hand["logits"], rtol=1e-5,
                                   atol=1e-6)


def test_training_samples_z_from_the_batch_seed():
    net = tiny_net().train()
    net.anneal_step = 2
    seed = 1234
    eps = torch.randn((3, 2), generator=torch.Generator().manual_seed(seed))  # no dropout draw
    hand = by_hand(net, eps.double().numpy())
    batch = (USERS, torch.tensor([seed]))
    loss = value(net.loss(batch))
    assert loss == pytest.approx(hand["nll"] + 0.2 * hand["kl"], rel=1e-5)
    assert value(net.loss(batch)) == loss  # same batch, same noise (the regulariser's calls)
    assert value(net.loss((USERS, torch.tensor([seed + 1])))) != loss


def test_input_is_l2_normalised_then_dropped_out():
    net = tiny_net(dropout=0.5)
    pos, cols, values, offsets = net._input(USERS, None, noisy=False)
    norm = 1 / np.sqrt(R.getnnz(axis=1))
    np.testing.assert_allclose(values.numpy(), norm[pos.numpy()], rtol=1e-6)
    assert cols.tolist() == R.indices.tolist() and offsets.tolist() == [0, 3, 5]
    # training: each click kept with probability 0.5 and rescaled by 1 / 0.5
    big = sp.random(200, 300, density=0.2, format="csr", random_state=0)
    big.data[:] = 1
    net = MultVAENet(big.indptr, big.indices, 300, (4,), 2, 0.5, True)
    users = torch.arange(200)
    _pos, _cols, clean, _ = net._input(users, None, noisy=False)
    gen = torch.Generator().manual_seed(0)
    _pos, _cols, dropped, _ = net._input(users, gen, noisy=True)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], 2 * clean[kept])
    assert 0.47 < float(kept.float().mean()) < 0.53


def test_anneal_schedule():
    assert anneal_beta(0, 200_000, 0.2) == 0.0
    assert anneal_beta(1, 200_000, 0.2) == pytest.approx(1 / 200_000)
    assert anneal_beta(1000, 200_000, 0.2) == pytest.approx(1000 / 200_000)
    assert anneal_beta(40_000, 200_000, 0.2) == pytest.approx(0.2)  # reaches the cap
    assert anneal_beta(10 ** 7, 200_000, 0.2) == 0.2  # and stays there
    assert anneal_beta(0, 0, 0.2) == 0.2  # total_anneal_steps 0: β = cap (the notebook)
    steps = [anneal_beta(s, 10, 0.5) for s in range(8)]
    assert np.allclose(np.diff(steps[:6]), 0.1) and steps[5:] == [0.5] * 3


def test_the_step_counter_advances_once_per_update_and_travels_in_the_state_dict():
    net = tiny_net().train()
    batch = (USERS, torch.tensor([7]))
    net.loss(batch).backward()  # a backward pass is not an update
    torch.autograd.grad(net.loss(batch), [net.encoder])
    assert net.anneal_step == 0
    net.after_step()  # the Trainer's call after each optimiser step
    assert net.anneal_step == 1
    beta = net.beta()
    net.loss(batch, l2=False).backward()  # an adversarial step's two backward passes ...
    net.loss(batch, perturbation={"encoder": torch.zeros(5, 4)}, l2=False).backward()
    assert net.beta() == beta  # ... see one β
    net.after_step()
    assert net.anneal_step == 2
    net.eval()
    net.after_step()  # not training
    assert net.anneal_step == 2
    fresh = tiny_net(seed=5)
    fresh.load_state_dict(net.state_dict())
    assert fresh.anneal_step == 2


def test_the_l2_penalty_is_the_l2_part_of_the_loss():
    net = tiny_net(reg=0.3).train()
    batch = (USERS, torch.tensor([7]))
    split = net.loss(batch, l2=False) + net.l2_penalty(batch)
    torch.testing.assert_close(net.loss(batch), split)
    weights = sum((w * w).sum() for w in net._weights())
    torch.testing.assert_close(net.l2_penalty(batch), len(USERS) * 0.3 * weights)


# ----------------------------------------------------------------------------- the model
def small() -> Interactions:
    return synthetic_interactions(40, 30, 300, n_clusters=3, seed=0)


def test_fit_score_shapes_and_the_step_count():
    data = small()
    vae = MultVAE(**TINY, total_anneal_steps=7, anneal_cap=0.25).fit(data, progress=False)
    scores = vae.score([0, 3, 7])
    assert scores.shape == (3, data.n_items) and bool(torch.isfinite(scores).all())
    assert vae.score().shape == (data.n_users, data.n_items)
    blocks = vae.parameter_blocks()
    assert tuple(blocks) == BLOCKS
    assert blocks["encoder"].shape == (data.n_items, 6)
    assert blocks["decoder"].shape == (data.n_items, 6)
    active = int((data.user_counts > 0).sum())
    updates = 2 * -(-active // 8)  # 2 epochs of ⌈users / 8⌉ batches
    assert vae.anneal_step_ == updates
    assert vae.beta_ == pytest.approx(min(0.25, updates / 7))
    # the adversarial regulariser's extra loss evaluations are not updates
    adv = MultVAE(**TINY, adv_reg=1.0).fit(data, progress=False)
    assert adv.anneal_step_ == updates
    dae = MultDAE(**TINY).fit(data, progress=False)
    assert dae.beta_ == 0.0 and dae.score([1]).shape == (1, data.n_items)


def test_scores_are_deterministic_without_dropout_or_sampling():
    data = small()
    for cls in (MultVAE, MultDAE):
        model = cls(**TINY).fit(data, progress=False)
        assert not model.net_.training
        first = model.score()
        assert torch.equal(model.score(), first)
        model.net_.train(True)  # scoring never draws noise, whatever the module's mode
        assert torch.equal(model.score(), first)
        model.net_.train(False)
        users = torch.tensor([0, 0, 5, 9])
        items = torch.tensor([1, 4, 4, 29])
        pairs = model.pair_scores(users, items)
        torch.testing.assert_close(pairs, first[users, items], rtol=1e-5, atol=1e-6)
        grid = model.pair_scores(users[:, None], items[None, :])  # broadcast, as the attacks do
        torch.testing.assert_close(grid, first[users][:, items], rtol=1e-5, atol=1e-6)
        # distinct users and items in aligned pairs: dotted pair by pair, not via a table
        users, items = torch.arange(30), torch.randperm(30, generator=torch.Generator())
        torch.testing.assert_close(model.pair_scores(users, items), first[users, items],
                                   rtol=1e-5, atol=1e-6)


def test_seed_reproduces_and_changes_the_fit():
    data = small()
    a = MultVAE(**TINY, seed=3).fit(data, progress=False).score()
    b = MultVAE(**TINY, seed=3).fit(data, progress=False).score()
    c = MultVAE(**TINY, seed=4).fit(data, progress=False).score()
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_adv_reg_zero_is_the_plain_model_and_positive_differs(cls):
    data = small()
    plain = cls(**TINY, seed=2).fit(data, progress=False).score()
    zero = cls(**TINY, seed=2, adv_reg=0.0, eps=3.0).fit(data, progress=False).score()
    adv = cls(**TINY, seed=2, adv_reg=1.0, eps=0.5).fit(data, progress=False).score()
    torch.testing.assert_close(plain, zero, rtol=0, atol=0)
    assert not torch.allclose(plain, adv)
    late = cls(**TINY, seed=2, adv_reg=1.0, adv_start_epoch=2).fit(data, progress=False)
    torch.testing.assert_close(late.score(), plain, rtol=0, atol=0)  # never switched on


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_save_load_round_trip(cls, tmp_path, monkeypatch):
    monkeypatch.setitem(advrec.models.base.MODELS, cls.name, cls)
    data = small()
    model = cls(**{**TINY, "hidden_dims": [6]}).fit(data, progress=False)
    assert model.hidden_dims == (6,)  # the canonical spelling, as the manifest gives it back
    loaded = load_model(model.save(tmp_path / cls.name))
    assert type(loaded) is cls and loaded.get_params() == model.get_params()
    assert torch.equal(loaded.score(), model.score())
    assert loaded.anneal_step_ == (model.anneal_step_ if cls.variational else 0)
    users, items = torch.tensor([0, 1]), torch.tensor([2, 3])
    assert torch.equal(loaded.pair_scores(users, items), model.pair_scores(users, items))


@pytest.mark.parametrize(("edit", "words"), [
    (lambda m, s: s.update({"model.anneal_step": torch.tensor([-1.0], dtype=torch.float64)}),
     "anneal_step"),
    (lambda m, s: s.update({"model.anneal_step": torch.tensor([2.5], dtype=torch.float64)}),
     "anneal_step"),
    (lambda m, s: m["params"].update({"hidden_dims": [7]}), "expected shape"),
    (lambda m, s: m["params"].update({"hidden_dims": [0]}), "params.hidden_dims"),
    (lambda m, s: s.pop("model.decoder"), "model.decoder"),
])
def test_an_edited_checkpoint_is_refused(tmp_path, monkeypatch, edit, words):
    from safetensors.torch import load_file, save_file

    monkeypatch.setitem(advrec.models.base.MODELS, "multvae", MultVAE)
    path = MultVAE(**TINY).fit(small(), progress=False).save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    state = load_file(str(path / "state.safetensors"))
    edit(manifest, state)
    (path / "manifest.json").write_text(json.dumps(manifest))
    save_file(state, str(path / "state.safetensors"))
    with pytest.raises(CheckpointError, match=words):
        load_model(path)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_fit(tmp_path):
    data = small()
    kw = dict(TINY, total_anneal_steps=5, anneal_cap=1.0, dropout=0.5)  # β matters
    whole = MultVAE(**{**kw, "epochs": 4}).fit(data, progress=False)
    MultVAE(**{**kw, "epochs": 2}).fit(data, progress=False, checkpoint_dir=tmp_path)
    resumed = MultVAE(**{**kw, "epochs": 4}).fit(data, progress=False, checkpoint_dir=tmp_path,
                                                resume=True)
    assert resumed.anneal_step_ == whole.anneal_step_
    assert torch.equal(resumed.score(), whole.score())


def test_early_stopping_keeps_the_best_epoch():
    data = small()
    values = iter([0.3, 0.5, 0.4, 0.2])
    model = MultVAE(**{**TINY, "epochs": 6, "patience": 2}).fit(
        data, progress=False, validate=lambda m: next(values))
    assert len(model.history_) == 4 and model.best_epoch_ == 2


def test_perturbation_of_the_blocks():
    data = small()
    model = MultVAE(**TINY).fit(data, progress=False)
    blocks = model.parameter_blocks()
    before = {b: t.detach().clone() for b, t in blocks.items()}
    clean = model.score()
    users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    for b, t in blocks.items():
        assert torch.equal(model.score(perturbation={b: torch.zeros_like(t)}), clean)
        delta = torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
        moved = model.score(perturbation={b: delta})
        assert not torch.allclose(moved, clean)
        torch.testing.assert_close(model.pair_scores(users, items, {b: delta}),
                                   moved[users, items], rtol=1e-5, atol=1e-6)
        leaf = torch.zeros_like(t, requires_grad=True)
        (grad,) = torch.autograd.grad(model.pair_scores(users, items, {b: leaf}).sum(), [leaf])
        assert float(grad.abs().sum()) > 0
    for b, t in model.parameter_blocks().items():
        assert torch.equal(t.detach(), before[b])
    attack = fgsm(model, data, eps=1.0, blocks="both")
    assert {b: tuple(d.shape) for b, d in attack.items()} == {
        b: tuple(t.shape) for b, t in blocks.items()}
    assert not torch.allclose(model.score(perturbation=attack), clean)
    with pytest.raises(ParamError, match="perturbation"):
        model.score(perturbation={"user": torch.zeros(3, 3)})


def test_sampler_visits_every_training_user_once_per_epoch():
    sampler = UserBatchSampler(np.array([0, 2, 3, 5, 8, 9, 11]), seed=0)
    epochs = [list(sampler.batches(3)) for _ in range(2)]
    for batches in epochs:
        assert [len(u) for u, _ in batches] == [3, 3, 1]
        assert sorted(np.concatenate([u for u, _ in batches]).tolist()) == [0, 2, 3, 5, 8, 9, 11]
        assert all(s.shape == (1,) and s.dtype == np.int64 for _, s in batches)
    assert not np.array_equal(np.concatenate([u for u, _ in epochs[0]]),
                              np.concatenate([u for u, _ in epochs[1]]))  # reshuffled


def test_users_without_clicks_are_not_trained_on_but_scored():
    data = Interactions(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 2, 3]), np.arange(3),
                        np.arange(4))  # user 2 has no training clicks
    model = MultDAE(**TINY).fit(data, progress=False)
    assert model.anneal_step_ == 2  # one batch of the two active users per epoch
    assert bool(torch.isfinite(model.score([2])).all())


def test_bad_parameters_name_themselves():
    for kw, name in ((dict(hidden_dims=(0,)), "hidden_dims"), (dict(hidden_dims=600),
                                                               "hidden_dims"),
                     (dict(dropout=1.0), "dropout"), (dict(latent_dim=0), "latent_dim"),
                     (dict(total_anneal_steps=-1), "total_anneal_steps"),
                     (dict(anneal_cap=-0.1), "anneal_cap"),
                     (dict(adv_blocks=("user",)), "adv_blocks")):
        with pytest.raises(ParamError) as info:
            MultVAE(**kw).fit(small())
        assert info.value.name == name
    assert "total_anneal_steps" not in MultDAE._param_names()
    assert MultDAE().reg == pytest.approx(0.01 / 500) and MultVAE().reg == 0.0


def test_importing_the_models_does_not_import_torch():
    code = ("import sys\nimport advrec.models.multvae\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def ml1m(data_dir):
    from advrec.data.datasets import load_split
    from advrec.evaluation import Evaluator
    from advrec.models import ItemPop

    train, test = load_split("ml-1m-implicit", root=data_dir)
    ev = Evaluator(train, test, ks=(20,), metrics=("ndcg", "recall"))
    return train, ev, {"itempop": ev.evaluate(ItemPop().fit(train)).summary}


def _result(ml1m, cls) -> dict[str, float]:
    train, ev, results = ml1m
    if cls.name not in results:
        model = cls(epochs=REAL_EPOCHS, seed=0, device="cpu").fit(train, progress=False)
        results[cls.name] = ev.evaluate(model).summary
    return results[cls.name]


REAL_EPOCHS = 10  # the default is 20 and the paper trains 200; 10 keeps each test under a minute


@pytest.mark.slow
def test_multvae_beats_itempop_on_ml1m(ml1m):
    ours, pop = _result(ml1m, MultVAE), ml1m[2]["itempop"]
    # measured (seed 0, 10 epochs, CPU): nDCG@20 0.284 vs 0.193, Recall@20 0.182 vs 0.114
    assert ours["ndcg@20"] > pop["ndcg@20"] + 0.05
    assert ours["recall@20"] > pop["recall@20"] + 0.04


@pytest.mark.slow
def test_multdae_beats_itempop_on_ml1m(ml1m):
    ours, pop = _result(ml1m, MultDAE), ml1m[2]["itempop"]
    # measured (seed 0, 10 epochs, CPU): nDCG@20 0.331 vs 0.193, Recall@20 0.212 vs 0.114
    assert ours["ndcg@20"] > pop["ndcg@20"] + 0.05
    assert ours["recall@20"] > pop["recall@20"] + 0.04


@pytest.mark.slow
def test_vae_and_dae_are_close_on_ml1m(ml1m):
    """The paper has Mult-VAE^PR ≥ Mult-DAE, by little (ML-20M nDCG@100 0.426 vs 0.419, strong
    generalisation, 200 epochs). Here (weak generalisation, ML-1M's active users, few epochs)
    the DAE is ahead: measured nDCG@20 VAE 0.284 vs DAE 0.331 at 10 epochs, 0.335 vs 0.363 at
    20; best of 100 epochs 0.354 (epoch 80) vs 0.374 (epoch 40), after which the DAE overfits
    (0.338 vs the VAE's 0.344 at epoch 100). Only closeness is asserted."""
    vae, dae = _result(ml1m, MultVAE), _result(ml1m, MultDAE)
    assert abs(vae["ndcg@20"] - dae["ndcg@20"]) < 0.08
    assert abs(vae["recall@20"] - dae["recall@20"]) < 0.06
