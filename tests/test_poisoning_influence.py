"""The influence-function poisoning attack (Fang, Gong & Liu, WWW 2020).

Fast tests: parameters, determinism, the profiles' contract, the influence function against
brute-force leave-one-out retraining and an exact Hessian, and a tiny end-to-end run. The slow
test measures the claims on ML-100K binarised (BPR-MF victim, HR@10 of the targets) against the
random, popular and bandwagon attacks of the same size, and the paper's ablation (influential
users vs every user), and asserts only what was measured to hold.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from advrec.attacks.poisoning.base import dense_rows
from advrec.attacks.poisoning.influence import (
    InfluenceAttack,
    _hvp,
    _Prepared,
    discrete_profiles,
    fit_surrogate,
    hit_loss,
    project_budget,
    top_lists,
    user_influence,
)
from advrec.attacks.shilling import make_attack, select_targets
from advrec.data.datasets import load
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError
from advrec.evaluation.shilling import attack_impact, clean_baseline, measure_targets
from advrec.models import BPRMF

FAST = dict(steps=15, cg_steps=20, n_factors=8)


def synthetic(n_users: int = 80, n_items: int = 40, seed: int = 0, ratings: bool = False
              ) -> Interactions:
    """Two taste groups over two halves of the catalogue, item popularity decaying with id."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n_users)
    half = np.arange(n_items) < n_items // 2
    pop = np.exp(-np.arange(n_items) / (n_items / 3))
    prob = 0.08 + 0.5 * pop[None, :] * np.where(group[:, None] == 1, half, ~half)
    prob[:, -1] = 0.03  # a rare item: the natural target
    u, i = np.nonzero(rng.random((n_users, n_items)) < prob)
    r = rng.integers(1, 6, len(u)).astype(np.float32) if ratings else None
    return Interactions.from_raw(u, i, r, user_ids=np.arange(n_users),
                                 item_ids=np.arange(n_items), name="synthetic")


@pytest.fixture(scope="module")
def data() -> Interactions:
    return synthetic()


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("bad", [
    dict(n_factors=0), dict(n_factors=2.5), dict(reg=0.0), dict(reg=-1.0),
    dict(neg_weight=0.0), dict(neg_weight=1.5), dict(epochs=0), dict(top_n=0),
    dict(width=0.0), dict(influential_fraction=0.0), dict(influential_fraction=1.2),
    dict(steps=-1), dict(lr=0.0), dict(unroll=0), dict(damping=-0.1), dict(cg_steps=0),
    dict(width=float("nan")), dict(n_factors=True),
])
def test_bad_parameters_are_config_errors(bad):
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        InfluenceAttack(**bad)


def test_contract_parameters():
    a = InfluenceAttack()
    assert a.name == "influence" and a.surrogate == "mf" and a.surrogates == ("mf",)
    assert not a.explicit and a.implicit and a.push and "Fang" in a.reference
    assert a.size == 0.01 and a.filler is None and a.top_n == 10
    assert a.params()["knowledge"].startswith("grey box: surrogate mf")
    with pytest.raises(ConfigError, match="surrogate"):
        InfluenceAttack(surrogate="bpr")
    with pytest.raises(ConfigError, match="push"):
        InfluenceAttack(intent="nuke")
    with pytest.raises(ConfigError, match="known_fraction"):
        InfluenceAttack(known_fraction=0)


def test_data_checks(data):
    rated = synthetic(ratings=True)
    with pytest.raises(DataError, match="implicit=False"):
        InfluenceAttack(**FAST).generate(rated, [39])
    with pytest.raises(DataError, match="implicit=True"):
        InfluenceAttack(implicit=False, **FAST).generate(data, [39])
    everyone = Interactions.from_raw(np.arange(6), np.zeros(6, int), item_ids=np.arange(3),
                                     user_ids=np.arange(6))
    with pytest.raises(DataError, match="already interacted"):
        InfluenceAttack(**FAST, top_n=1).generate(everyone, [0])
    with pytest.raises(DataError, match="top_n"):
        InfluenceAttack(**{**FAST, "top_n": 40}).generate(data, [39])


# ----------------------------------------------------------------------------- the profiles
def test_profiles_budget_targets_new_users(data):
    attack = InfluenceAttack(size=0.1, **FAST)
    targets = [38, 39]
    fake = attack.generate(data, targets, seed=3)
    n_fake = attack.n_fake(data)
    length = attack.profile_length(data, len(targets))
    assert fake.n_users == n_fake == 8 and fake.ratings is None
    assert np.all(np.char.startswith(fake.user_ids.astype(str), "fake-"))
    np.testing.assert_array_equal(fake.item_ids, data.item_ids)  # the victim's item space
    assert not np.isin(fake.user_ids, data.user_ids).any()
    rows = fake.binary_csr.toarray()
    assert np.all(rows.sum(1) == length)
    assert np.all(rows[:, data.item_index(targets)] == 1)
    assert np.all(rows[:, data.item_counts == 0] == 0)  # only items the attacker saw
    poisoned = data.concat(fake)
    assert poisoned.n_users == data.n_users + n_fake
    np.testing.assert_array_equal(poisoned.user_ids[: data.n_users], data.user_ids)


def test_weighted_surrogate_runs(data):
    """neg_weight < 1: ALS surrogate, per-item Gram solves in the unrolled retraining."""
    attack = InfluenceAttack(size=0.05, neg_weight=0.2, epochs=5, **FAST)
    fake = attack.generate(data, [39], seed=0)
    rows = fake.binary_csr.toarray()
    assert np.all(rows.sum(1) == attack.profile_length(data, 1)) and np.all(rows[:, 39] == 1)


def test_explicit_variant_rates_at_the_top(data):
    rated = synthetic(ratings=True)
    fake = InfluenceAttack(implicit=False, filler=5, **FAST).generate(rated, [39], seed=0)
    assert fake.ratings is not None and np.all(fake.ratings == 5.0)
    assert np.all(fake.user_counts == 6)  # 5 fillers + the target


def test_deterministic_given_the_seed(data):
    attack = InfluenceAttack(size=0.1, known_fraction=0.8, **FAST)
    a, b = attack.generate(data, [39], seed=7), attack.generate(data, [39], seed=7)
    np.testing.assert_array_equal(a.binary_csr.toarray(), b.binary_csr.toarray())
    c = attack.generate(data, [39], seed=8)
    assert not np.array_equal(a.binary_csr.toarray(), c.binary_csr.toarray())


def test_project_budget_and_discrete_profiles():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 30, generator=gen, dtype=torch.float64) * 2
    fixed = torch.zeros(30, dtype=torch.bool)
    fixed[[3, 7]] = True
    allowed = torch.ones(30, dtype=torch.bool)
    allowed[[0, 1]] = False
    x = project_budget(w, 9, fixed, allowed)
    assert torch.allclose(x.sum(1), torch.full((5,), 9.0, dtype=torch.float64), atol=1e-8)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.all(x[:, fixed] == 1) and torch.all(x[:, ~allowed] == 0)
    assert torch.allclose(project_budget(x, 9, fixed, allowed), x, atol=1e-8)  # a projection
    # no feasible point is closer to w (the projection is Euclidean)
    y = project_budget(torch.rand(5, 30, generator=gen, dtype=torch.float64), 9, fixed, allowed)
    assert torch.all((w - x).norm(dim=1) <= (w - y).norm(dim=1) + 1e-9)
    hard = discrete_profiles(x, 9, fixed, allowed)
    assert torch.all(hard.sum(1) == 9) and torch.all(hard[:, fixed] == 1)
    assert torch.all(hard[:, ~allowed] == 0)


def test_hit_loss_matches_its_definition():
    """Σ over each user's top-N unseen non-targets of sigmoid((s_i − s_t)/b), mean over pairs."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 7, generator=gen, dtype=torch.float64)
    seen = torch.zeros(4, 7, dtype=torch.float64)
    seen[0, [1, 2]] = 1
    seen[2, :5] = 1  # only one unseen non-target: a short list
    seen[3, 6] = 1  # user 3 already has target 6
    targets = torch.tensor([5, 6])
    elig = seen[:, targets] == 0
    got = hit_loss(scores, seen, targets, elig, 3, 0.4)
    total, pairs = 0.0, 0
    for u in range(4):
        cand = [i for i in range(7) if seen[u, i] == 0 and i not in (5, 6)]
        top = sorted(cand, key=lambda i: -float(scores[u, i]))[:3]
        for t in (5, 6):
            if seen[u, t] == 0:
                pairs += 1
                total += sum(float(torch.sigmoid((scores[u, i] - scores[u, t]) / 0.4))
                             for i in top)
    assert float(got) == pytest.approx(total / pairs)


def test_influential_users_are_the_largest_influences(data):
    y = dense_rows(data)
    targets = torch.tensor([39])
    p, q = fit_surrogate(y, 8, 1.0)
    rows = torch.nonzero(y[:, 39] == 0).flatten()
    attack = InfluenceAttack(influential_fraction=0.25, **FAST)
    chosen = attack._influential(y, p, q, targets, rows)
    assert len(chosen) == int(np.ceil(0.25 * len(rows))) and np.isin(chosen, rows).all()
    infl = user_influence(y.double(), p, q, 1.0, 1.0, targets, 10, 0.1, 0.1, 20).abs()
    rest = rows[~np.isin(rows, chosen)]
    assert infl[chosen].min() >= infl[rest].max()
    assert torch.equal(replace(attack, influential_fraction=1.0)._influential(
        y, p, q, targets, rows), rows)


# ----------------------------------------------------------------------------- influence
def test_influence_agrees_with_leave_one_out_retraining():
    """π(u) against removing each user and refitting the surrogate exactly: sign and order."""
    gen = torch.Generator().manual_seed(1)
    n_users, n_items, k, reg = 150, 20, 2, 1.0
    y = (torch.rand(n_users, n_items, generator=gen) < 0.25).double()
    y[:, -1] = (torch.rand(n_users, generator=gen) < 0.1).double()
    t = torch.tensor([n_items - 1])
    ev, cand = torch.arange(20), torch.arange(20, 40)
    p, q = fit_surrogate(y, k, reg)
    top = top_lists(p[ev] @ q.T, y[ev], t, 3)
    elig = y[ev][:, t] == 0

    def f(p, q) -> float:
        return float(hit_loss(p[ev] @ q.T, y[ev], t, elig, 3, 0.5, top=top))

    f0 = f(p, q)
    actual = []
    for u in cand.tolist():  # the brute force: one exact refit per removed user
        keep = torch.ones(n_users, dtype=torch.bool)
        keep[u] = False
        pp, qq = fit_surrogate(y[keep], k, reg)
        actual.append(f(pp, qq) - f0)  # evaluation users keep their rows (ids < u)
    actual = np.array(actual)
    pred = user_influence(y, p, q, reg, 1.0, t, 3, 0.5, damping=0.0, cg_steps=300,
                          eval_users=ev)[cand].numpy()
    assert spearmanr(actual, pred)[0] > 0.75
    assert np.mean(np.sign(actual) == np.sign(pred)) >= 0.75


@pytest.mark.parametrize("neg_weight", [1.0, 0.3])
def test_influence_equals_the_exact_inverse_hessian(neg_weight):
    """The CG solve and the batched per-user gradients against an explicit Hessian."""
    gen = torch.Generator().manual_seed(0)
    n_users, n_items, k, reg = 12, 9, 2, 0.5
    y = (torch.rand(n_users, n_items, generator=gen) < 0.35).double()
    t = torch.tensor([4])
    p, q = fit_surrogate(y, k, reg, neg_weight, epochs=3000)
    c = neg_weight + (1 - neg_weight) * y

    def loss(theta, rows=None):
        pp, qq = theta[: n_users * k].view(n_users, k), theta[n_users * k:].view(n_items, k)
        m = torch.ones(n_users, 1, dtype=y.dtype) if rows is None else rows
        data = 0.5 * (m * c * (y - pp @ qq.T) ** 2).sum()
        return data + 0.5 * reg * ((m * pp * pp).sum() + (qq * qq).sum() * (rows is None))

    theta = torch.cat([p.flatten(), q.flatten()])
    assert torch.autograd.grad(loss(theta.requires_grad_()), theta)[0].norm() < 1e-6
    h = torch.autograd.functional.hessian(loss, theta.detach())
    e = c * (p @ q.T - y)
    vp = torch.randn(n_users, k, generator=gen, dtype=y.dtype)
    vq = torch.randn(n_items, k, generator=gen, dtype=y.dtype)
    hp, hq = _hvp(e, None if neg_weight == 1 else c, p, q, reg, vp, vq)
    np.testing.assert_allclose(torch.cat([hp.flatten(), hq.flatten()]),
                               h @ torch.cat([vp.flatten(), vq.flatten()]), atol=1e-8)
    damping = 0.1
    pp, qq = p.clone().requires_grad_(True), q.clone().requires_grad_(True)
    elig = (y[:, t] == 0) & (y.sum(1, keepdim=True) > 0)
    hit_loss(pp @ qq.T, y, t, elig, 2, 0.3).backward()
    grad_f = torch.cat([pp.grad.flatten(), qq.grad.flatten()])
    s = torch.linalg.solve(h + damping * torch.eye(len(h), dtype=h.dtype), grad_f)
    want = []
    for u in range(n_users):  # ∇L_u one user at a time
        rows = torch.zeros(n_users, 1, dtype=y.dtype)
        rows[u] = 1
        th = theta.detach().clone().requires_grad_(True)
        want.append(float(s @ torch.autograd.grad(loss(th, rows), th)[0]))
    got = user_influence(y, p, q, reg, neg_weight, t, 2, 0.3, damping=damping, cg_steps=500)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)


def test_unrolled_retraining_tracks_the_exact_refit(data):
    """The differentiable one-round ALS response moves the target like an exact refit."""
    y = dense_rows(data).double()
    p, q = fit_surrogate(y, 8, 1.0)
    t = 39
    fake = torch.zeros(2, y.shape[1], dtype=y.dtype)
    fake[:, :12] = 1.0
    fake[:, t] = 1.0
    users = torch.arange(len(y))
    approx = _Prepared(y, p, q, 1.0, 1.0, users).poisoned_scores(fake, 1)
    pp, qq = fit_surrogate(torch.cat([y, fake]), 8, 1.0)
    exact = (pp @ qq.T)[: len(y)]
    shift_a, shift_e = approx[:, t] - (p @ q.T)[:, t], exact[:, t] - (p @ q.T)[:, t]
    assert shift_e.mean() > 0 and shift_a.mean() == pytest.approx(float(shift_e.mean()), rel=0.2)
    assert np.corrcoef(shift_a.numpy(), shift_e.numpy())[0, 1] > 0.95


# ----------------------------------------------------------------------------- end to end
def test_tiny_end_to_end(data):
    """Generate, inject, retrain the surrogate and a BPR-MF victim: the targets climb."""
    target = [39]
    attack = InfluenceAttack(size=0.1, steps=40, cg_steps=30, n_factors=8, influential_fraction=0.5)
    fake = attack.generate(data, target, seed=0)
    rand = make_attack("random", size=0.1, filler=attack.n_filler(data) - 1,
                       implicit=True).generate(data, target, seed=0)
    t = data.item_index(target)

    def surrogate_rank(extra) -> float:
        y = dense_rows(data if extra is None else data.concat(extra)).double()
        p, q = fit_surrogate(y, 8, 1.0)
        s = (p @ q.T)[: data.n_users]
        real = dense_rows(data) > 0
        s[real] = -torch.inf
        rank = (s > s[:, t]).sum(1).double()
        return float(rank[~real[:, t[0]]].mean())

    assert surrogate_rank(fake) < surrogate_rank(rand) < surrogate_rank(None)
    victim = BPRMF(n_factors=8, epochs=3, seed=0)
    after = measure_targets(victim.fit(data.concat(fake)), data, t)
    assert np.isfinite(after.mean_rank())


# ----------------------------------------------------------------------------- real data
@pytest.mark.long  # minutes (205 s / 91 s here): run with pytest -m long
def test_ml100k_influence_beats_heuristics_on_bprmf(data_dir):
    """HR@10 of five random targets (one attack per target) on a retrained BPR-MF.

    Measured (seed 0; mean HR@10 over the targets, clean 0.0000): 1 % fake users: influence
    0.0017, all users 0.0019, random 0.0002, popular 0.0002, bandwagon 0.0000; 3 %: influence
    0.0106, all users 0.0125, random 0.0006, popular 0.0002, bandwagon 0.0000. The attack beats
    the heuristics; concentrating on the influential 20 % does NOT beat using every user here
    (it only beats a random 20 % subset, 0.0032 at 3 %), so only the first claim is asserted.
    """
    d = load("ml-100k", root=data_dir)
    d = d.subset(d.ratings >= 4).with_ratings(None)
    targets = select_targets(d, 5, "random", seed=0)
    victim = lambda: BPRMF(epochs=30, seed=0)  # noqa: E731
    length = InfluenceAttack().profile_length(d, 1)
    hr: dict[tuple[str, float], list[float]] = {}
    for t in targets:
        base = clean_baseline(victim, d, None, [t], ks=(10,))
        for size in (0.01, 0.03):
            attacks = {
                "random": make_attack("random", size=size, filler=length - 1, implicit=True),
                "popular": make_attack("popular", size=size, filler=length - 1, implicit=True),
                "bandwagon": make_attack("bandwagon", size=size, filler=length - 4,
                                         implicit=True),
                "influence": InfluenceAttack(size=size),
                "all_users": InfluenceAttack(size=size, influential_fraction=1.0),
            }
            for name, attack in attacks.items():
                imp = attack_impact(victim, d, None, attack, [t], ks=(10,), baseline=base)
                hr.setdefault((name, size), []).append(imp.hit_ratio[10][1])
                hr.setdefault(("clean", size), []).append(imp.hit_ratio[10][0])
    mean = {key: float(np.mean(v)) for key, v in hr.items()}
    print({f"{n}@{s}": round(v, 4) for (n, s), v in sorted(mean.items())})
    for size in (0.01, 0.03):
        best_heuristic = max(mean[(n, size)] for n in ("random", "popular", "bandwagon"))
        assert mean[("influence", size)] > best_heuristic, (size, mean)
