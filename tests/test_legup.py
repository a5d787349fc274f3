"""Leg-UP (Lin et al., TNNLS 2022): parameters, the contract of injection attacks, determinism,
the pieces on hand-checked inputs (discretiser, surrogate gradients, attack loss, gradient
through the unrolled surrogate), and (slow) its effect on an MF victim on the authors'
FilmTrust split against no attack and the average attack.

The fast tests train tiny networks for a few steps on a small synthetic rating set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advrec.attacks.poisoning.legup import (
    LegUPAttack,
    _mf_step_grads,
    attack_loss,
    boundaries,
    discretise,
    heaviside_tanh,
    rating_levels,
    train_surrogate_mf,
)
from advrec.attacks.shilling import RatingScale, make_attack
from advrec.data.interactions import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import ConfigError, DataError, ParamError

TINY = dict(epochs=1, pretrain_g_epochs=1, pretrain_d_epochs=1, d_epochs=1, attack_steps=2,
            hidden_g=16, hidden_d=(16,), n_factors=8, surrogate_epochs=3, device="cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(80, 50, 800, n_clusters=4, seed=3, with_ratings=True)


@pytest.fixture(scope="module")
def targets(data):
    counts = data.item_counts
    rated = np.flatnonzero(counts)
    return data.item_ids[rated[np.argsort(counts[rated], kind="stable")[:2]]]  # unpopular


def dense(x: Interactions) -> np.ndarray:
    return x.csr.toarray()


# ----------------------------------------------------------------------------- parameters
def test_defaults_are_the_official_settings():
    a = LegUPAttack()
    assert (a.epochs, a.pretrain_g_epochs, a.pretrain_d_epochs, a.d_epochs, a.adv_steps,
            a.attack_steps) == (3, 15, 5, 5, 1, 50)
    assert (a.hidden_g, a.lr_g, a.hidden_d, a.lr_d, a.batch_size_d) == (
        125, 1e-2, (512, 128), 1e-2, 64)
    assert (a.surrogate, a.n_factors, a.surrogate_epochs, a.unroll_steps, a.surrogate_lr,
            a.surrogate_l2, a.surrogate_batch_size, a.weight_pos, a.weight_neg) == (
        "wmf", 64, 50, 1, 1e-2, 1e-5, 64, 1.0, 0.0)
    assert a.intent == "push" and a.implicit is False and a.filler is None
    assert a.targets_in_surrogate is True and a.known_fraction == 1.0
    assert LegUPAttack.surrogates == ("wmf",) and "surrogate wmf" in a.knowledge()
    assert a.params()["attack"] == "legup"


@pytest.mark.parametrize("kwargs, word", [
    ({"epochs": -1}, "epochs"),
    ({"attack_steps": 2.5}, "attack_steps"),
    ({"pretrain_g_epochs": -1}, "pretrain_g_epochs"),
    ({"hidden_g": 0}, "hidden_g"),
    ({"hidden_d": []}, "hidden_d"),
    ({"hidden_d": (16, 0)}, "hidden_d"),
    ({"lr_g": 0.0}, "lr_g"),
    ({"lr_d": float("nan")}, "lr_d"),
    ({"batch_size_d": 0}, "batch_size_d"),
    ({"n_factors": 0}, "n_factors"),
    ({"surrogate_epochs": 0}, "surrogate_epochs"),
    ({"unroll_steps": 0}, "unroll_steps"),
    ({"surrogate_batch_size": 0}, "surrogate_batch_size"),
    ({"surrogate_l2": -1.0}, "surrogate_l2"),
    ({"weight_pos": 0.0}, "weight_pos"),
    ({"weight_neg": -0.5}, "weight_neg"),
    ({"init_std": 0.0}, "init_std"),
    ({"targets_in_surrogate": "yes"}, "targets_in_surrogate"),
    ({"progress": "yes"}, "progress"),
    ({"device": "tpu9"}, "device"),
    ({"implicit": True}, "implicit: the legup attack generates ratings"),
    ({"intent": "nuke"}, "intent: the legup attack pushes"),
])
def test_bad_parameters_are_refused_by_name(kwargs, word):
    with pytest.raises(ParamError, match=word):
        LegUPAttack(**kwargs)


@pytest.mark.parametrize("kwargs, word", [
    ({"size": 0.0}, "size"), ({"filler": -1}, "filler"), ({"intent": "sideways"}, "intent"),
    ({"surrogate": "neumf"}, "surrogate"), ({"known_fraction": 0.0}, "known_fraction"),
    ({"unroll_steps": 4, "surrogate_epochs": 3}, "unroll_steps"),
])
def test_bad_budget_and_threat_model_are_refused(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        LegUPAttack(**kwargs)


def test_unusable_data_is_refused(data, targets):
    with pytest.raises(DataError, match="legup attack writes ratings"):
        LegUPAttack(filler=5, **TINY).generate(data.with_ratings(None), targets)
    longest = int(data.user_counts.max())
    with pytest.raises(ConfigError, match="filler: no real user has"):
        LegUPAttack(filler=longest + 1, **TINY).generate(data, targets)
    fine = data.with_ratings(data.ratings * 0 + np.round(np.linspace(0, 3, len(data)), 1))
    with pytest.raises(DataError, match="at most 21 are supported"):
        LegUPAttack(filler=5, **TINY).generate(fine, targets)


# ----------------------------------------------------------------------------- the profiles
@pytest.fixture(scope="module")
def attack():
    return LegUPAttack(size=0.1, filler=5, **TINY)


@pytest.fixture(scope="module")
def fake(attack, data, targets):
    return attack.generate(data, targets, seed=1)


def test_profiles_keep_the_contract(attack, data, targets, fake):
    n, t = attack.n_fake(data), data.item_index(targets)
    assert n == 8
    assert fake.n_users == n and list(fake.user_ids) == [f"fake-{j}" for j in range(n)]
    assert np.array_equal(fake.item_ids, data.item_ids)
    counts = np.bincount(fake.users, minlength=n)
    assert (counts == 5 + len(t)).all()  # fillers + targets, no repeats
    x = dense(fake)
    assert ((x > 0).sum(axis=1) == counts).all()
    assert (x[:, t] == data.ratings.max()).all()  # targets at r_max
    assert set(np.unique(fake.ratings)) <= set(np.unique(data.ratings))  # discrete, on scale
    merged = data.concat(fake)
    assert merged.n_users == data.n_users + n and len(merged) == len(data) + len(fake)


def test_fillers_are_items_a_real_template_user_rated(data, targets, fake):
    """Each profile's fillers (its non-target items) are all rated by one real user."""
    real = dense(data) > 0
    t = data.item_index(targets)
    filler = dense(fake) > 0
    filler[:, t] = False
    covered = ((real[None, :, :] | ~filler[:, None, :]).all(axis=2))  # fake × real user
    assert covered.any(axis=1).all()


def test_the_same_seed_gives_the_same_profiles(attack, data, targets, fake):
    again = attack.generate(data, targets, seed=1)
    for name in ("users", "items", "ratings"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fake, name))
    other = attack.generate(data, targets, seed=2)
    assert not np.array_equal(dense(other), dense(fake))


def test_average_profile_length_by_default(data, targets):
    a = LegUPAttack(size=0.05, **TINY)
    assert a.n_filler(data) == round(data.user_counts.mean()) == 10
    fake = a.generate(data, targets, seed=0)
    assert (np.bincount(fake.users) == 10 + len(targets)).all()


def test_official_surrogate_data_without_targets_runs(data, targets):
    fake = LegUPAttack(size=0.05, filler=4, targets_in_surrogate=False, **TINY).generate(
        data, targets, seed=0)
    assert (np.bincount(fake.users) == 4 + len(targets)).all()


# ----------------------------------------------------------------------------- the pieces
def test_rating_levels_follow_the_scale():
    assert rating_levels(RatingScale(1.0, 5.0, 1.0)).tolist() == [1, 2, 3, 4, 5]
    assert rating_levels(RatingScale(0.5, 2.0, 0.5)).tolist() == [0.5, 1.0, 1.5, 2.0]


def test_discretiser_on_hand_checked_values():
    """Boundaries start at 1, 2, 3, 4 (+1e-4 per interval): (0, 1] → 1, …, (4, 5) → 5; the
    gradient is the tanh surrogate's, non-zero, and reaches the boundaries."""
    levels = torch.tensor([1.0, 2, 3, 4, 5])
    lo = torch.ones(3, requires_grad=True)
    lengths = torch.ones(3, 3, requires_grad=True)
    b = boundaries(lo, lengths)
    assert torch.allclose(b[0], torch.tensor([1.0, 2.0001, 3.0002, 4.0003]))
    a = torch.tensor([[0.5, 1.5, 4.7], [2.2, 3.9, 3.1]], requires_grad=True)
    dist, value = discretise(a, b, levels)
    assert value.tolist() == [[1, 2, 5], [3, 4, 4]]
    assert (dist.sum(dim=2) == 1).all() and set(dist.unique().tolist()) == {0.0, 1.0}
    value.sum().backward()
    assert (a.grad > 0).all()  # a larger continuous rating: a larger rating
    assert lo.grad.abs().sum() > 0 and lengths.grad.abs().sum() > 0
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    h = heaviside_tanh(x)
    assert h.tolist() == [0.0, 0.0, 1.0]
    h.sum().backward()
    assert torch.allclose(x.grad, 1 - torch.tanh(torch.tensor([-1.0, 0.0, 2.0])) ** 2)


def test_surrogate_gradients_match_autograd():
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(6, 3, generator=gen, requires_grad=True)
    q = torch.randn(5, 3, generator=gen, requires_grad=True)
    x, w = torch.rand(6, 5, generator=gen), torch.rand(6, 5, generator=gen)
    rows = torch.tensor([4, 1, 2])
    loss = (w[rows] * (x[rows] - p[rows] @ q.T) ** 2).sum()
    auto = torch.autograd.grad(loss, [p, q])
    mine = _mf_step_grads(p, q, x[rows], w[rows], rows)
    for u, v in zip(auto, mine, strict=True):
        assert torch.allclose(u, v, atol=1e-5)
    assert (mine[0][[0, 3, 5]] == 0).all()  # rows outside the batch get no gradient


def _toy_rows(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(20, 8, generator=gen) < 0.5
    return torch.randint(1, 6, (20, 8), generator=gen).float() * mask


def test_surrogate_fits_the_rated_entries_and_is_seeded():
    data = _toy_rows()
    kw = dict(n_factors=8, epochs=200, unroll_steps=1, lr=5e-2, l2=0.0, batch_size=None,
              weight_pos=1.0, weight_neg=0.0, init_std=0.1)
    p, q = train_surrogate_mf(data, seed=0, **kw)
    pred = p @ q.T
    rated = data > 0
    assert float(((pred - data)[rated] ** 2).mean()) < 0.05  # unrated entries cost nothing
    p2, q2 = train_surrogate_mf(data, seed=0, **kw)
    assert torch.equal(p, p2) and torch.equal(q, q2)


def test_attack_gradient_flows_through_the_unrolled_epochs():
    """The fake rows' gradient through the unrolled surrogate epochs is non-zero and points
    uphill: a small step against it lowers the attack loss, a step along it raises it."""
    real = _toy_rows()
    fake0 = _toy_rows(1)[:3].clone()
    kw = dict(n_factors=4, epochs=20, unroll_steps=2, lr=5e-2, l2=1e-5, batch_size=8,
              weight_pos=1.0, weight_neg=0.0, init_std=0.1, seed=0)
    eligible = real[:, 2:3] == 0

    def loss(fake):
        p, q = train_surrogate_mf(torch.cat([real, fake]), **kw)
        return attack_loss(p[:20] @ q.T, np.array([2]), eligible)

    fake = fake0.clone().requires_grad_(True)
    value = loss(fake)
    grad, = torch.autograd.grad(value, fake)
    grad = grad * (fake0 > 0)  # only the rated entries carry weight in the surrogate
    assert grad.abs().sum() > 0
    step = 0.1 * grad / grad.norm()
    with torch.no_grad():
        assert loss(fake0 - step).item() < value.item() < loss(fake0 + step).item()


def test_attack_loss_on_a_hand_checked_batch():
    """User 0: items scoring >= the target's 1.0 keep their logits (1, 2), item 0 (0.5) gets 0:
    −log(e¹ / (e⁰ + e¹ + e²)) / 1.1. User 1 holds the target: not counted."""
    scores = torch.tensor([[0.5, 1.0, 2.0], [3.0, 0.0, 1.0]])
    eligible = torch.tensor([[True], [False]])
    want = -(1 - math.log(1 + math.e + math.e ** 2)) / 1.1
    assert attack_loss(scores, np.array([1]), eligible).item() == pytest.approx(want)


# ----------------------------------------------------------------------------- real data
@pytest.mark.long  # minutes (205 s / 91 s here): run with pytest -m long
def test_legup_pushes_the_target_on_filmtrust(data_dir, monkeypatch):
    """The paper's FilmTrust setting (Leg-UP run.sh's first target, item 5: 5 ratings in
    train), 50 fake users, 36 fillers, a short schedule: 1 outer epoch of the official 50
    attack steps and no adversarial step (``adv_steps=0``; pre-training of G and D as
    official); the victim advrec's MF (defaults) refitted on train + fake; target HR@10 and
    mean predicted rating over the real users without the target. ~35 s.

    Measured (attack seed 0): clean HR@10 0.0116 / predicted 4.171; this run 0.996 / 4.992;
    the average attack of the same size 0.600 / 4.766 (printed, not asserted). With the
    official adversarial step and 1 outer epoch: 0.009 / 4.329 (the step's large gradient
    fills G's shared Adam state and the 50 following attack steps barely move G); the full
    default schedule (3 × (5 D epochs, 1 adversarial, 50 attack steps), ~140 s): 0.196 /
    4.498. Asserted: this run above no attack on both measures."""
    from advrec.data.datasets import load_split
    from advrec.evaluation.shilling import measure_targets
    from advrec.models.mf import MF

    if not (data_dir / "aush-shilling" / "SOURCE.md").is_file():
        pytest.skip("the aush-shilling folder is not staged")
    monkeypatch.setenv("ADVREC_DATA_DIR", str(data_dir))
    torch.set_num_threads(1)
    train, _ = load_split("filmtrust")
    target = 5
    t = train.item_index([target])
    size = 50 / len(train.active_users)

    def measure(d) -> tuple[float, float]:
        m = measure_targets(MF(seed=0, device="cpu").fit(d, progress=False), train, t)
        return m.hit_ratio(10), float(np.nanmean(m.predictions))

    attack = LegUPAttack(size=size, filler=36, epochs=1, adv_steps=0, device="cpu")
    assert attack.n_fake(train) == 50
    fake = attack.generate(train, [target], seed=0)
    assert (np.bincount(fake.users) == 37).all()
    out = {"clean": measure(train), "legup": measure(train.concat(fake)),
           "average": measure(train.concat(make_attack("average", size=size, filler=36)
                                           .generate(train, [target], seed=0)))}
    print("\nFilmTrust, target 5, 50 fake users, filler 36, MF victim: HR@10, mean prediction")
    for name, (hr, pred) in out.items():
        print(f"  {name:8s} HR@10 {hr:.4f}  predicted {pred:.3f}")
    assert out["legup"][0] > out["clean"][0] and out["legup"][1] > out["clean"][1]
