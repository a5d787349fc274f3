"""RevAdv (Tang, Wen & Wang, RecSys 2020): parameters, the differentiable Adam step, the unrolled
gradient, the profiles it returns, a small version of the paper's synthetic experiment and (slow)
the real-data comparison with the random attack on ML-100K."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advrec.attacks.poisoning.base import dense_rows
from advrec.attacks.poisoning.revadv import (
    AdamState,
    RevAdvAttack,
    WMFConfig,
    adam_step,
    adversarial_gradient,
    optimise_fake_rows,
    target_hit_ratio,
    threshold_projection,
    topk_projection,
    train_wmf,
)
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError

FAST = dict(n_factors=8, surrogate_epochs=6, unroll_steps=3, adv_epochs=3, device="cpu")


def low_rank(n_users: int, n_items: int, rank: int, threshold: float, seed: int):
    """The paper's synthetic data: 1{N(0,1)^{n×r} · N(0,1)^{r×m} > threshold} (0/1 rows)."""
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(n_users, rank, generator=gen) @ torch.randn(rank, n_items, generator=gen)
    return (dense > threshold).float()


def as_interactions(rows: torch.Tensor) -> Interactions:
    u, i = torch.nonzero(rows, as_tuple=True)
    return Interactions(u.numpy(), i.numpy(), np.arange(rows.shape[0]),
                        np.arange(rows.shape[1]), name="low-rank")


@pytest.fixture(scope="module")
def small() -> Interactions:
    return as_interactions(low_rank(200, 60, 6, 3.0, seed=0))


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(("params", "named"), [
    (dict(n_factors=0), "n_factors"),
    (dict(n_factors=2.5), "n_factors"),
    (dict(surrogate_epochs=0), "surrogate_epochs"),
    (dict(adv_epochs=0), "adv_epochs"),
    (dict(select_k=0), "select_k"),
    (dict(unroll_steps=0), "unroll_steps"),
    (dict(unroll_steps=11, surrogate_epochs=10), "unroll_steps"),
    (dict(surrogate_batch_size=0), "surrogate_batch_size"),
    (dict(surrogate_lr=0.0), "surrogate_lr"),
    (dict(surrogate_l2=-1e-5), "surrogate_l2"),
    (dict(weight_alpha=-1.0), "weight_alpha"),
    (dict(init_std=0.0), "init_std"),
    (dict(adv_lr=float("nan")), "adv_lr"),
    (dict(adv_momentum=1.0), "adv_momentum"),
    (dict(proj_threshold=0.0), "proj_threshold"),
    (dict(proj_threshold=1.5), "proj_threshold"),
    (dict(normalize_grad="yes"), "normalize_grad"),
    (dict(projection="round"), "projection"),
    (dict(progress="loud"), "progress"),
    (dict(surrogate="bprmf"), "surrogate"),
    (dict(device="tpu9"), "device"),
    (dict(size=0.0), "size"),
])
def test_bad_parameters_are_refused(params, named):
    with pytest.raises(ConfigError, match=named) as err:
        RevAdvAttack(**params)
    assert "\n" not in str(err.value)


def test_defaults_are_the_official_wmf_sgd_settings():
    a = RevAdvAttack()
    assert (a.name, a.surrogate, a.explicit, a.surrogates) == ("revadv", "wmf", False, ("wmf",))
    assert a.wmf_config() == WMFConfig(n_factors=128, epochs=50, unroll_steps=10, lr=1e-2,
                                       l2=1e-5, batch_size=2048, weight_alpha=20.0,
                                       init_std=0.1)
    assert (a.size, a.adv_epochs, a.adv_lr, a.adv_momentum, a.normalize_grad) == \
        (0.01, 30, 1.0, 0.95, True)
    assert (a.projection, a.proj_threshold, a.select_k) == ("topk", 0.05, 50)
    assert RevAdvAttack(projection="THRESHOLD").projection == "threshold"


def test_rated_data_needs_implicit_false(small):
    rated = small.with_ratings(np.full(len(small), 5.0, np.float32))
    with pytest.raises(DataError, match="ratings"):
        RevAdvAttack(**FAST).generate(rated, [0])


# ----------------------------------------------------------------------------- Adam, gradient
def test_adam_step_equals_torch_adam():
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=gen, dtype=torch.float64),
             torch.randn(4, 3, generator=gen, dtype=torch.float64)]
    ref = [p.clone().requires_grad_() for p in start]
    opt = torch.optim.Adam(ref, lr=0.05, weight_decay=1e-2)
    ours, state = [p.clone() for p in start], AdamState.zeros(start)
    for step in range(6):
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in start]
        if step == 0:
            grads[0][1] = 0.0  # a row without gradient (v = 0 where there is no decay yet)
        for p, g in zip(ref, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        ours, state = adam_step(ours, grads, state, lr=0.05, weight_decay=1e-2)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)
    torch_state = opt.state[ref[0]]
    torch.testing.assert_close(state.exp_avg_sq[0], torch_state["exp_avg_sq"])
    assert state.step == int(torch_state["step"]) == 6


def test_adam_step_is_differentiable_without_nan_at_zero_moments():
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    g = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64, requires_grad=True)
    (new,), _ = adam_step([p], [g], AdamState.zeros([p]), lr=0.1)
    dp, dg = torch.autograd.grad(new.sum(), [p, g])
    assert torch.isfinite(dp).all() and torch.isfinite(dg).all()
    # at g = v = 0 only the √v term is cut: the first moment's path stays, -lr / eps
    assert dg[0].item() == pytest.approx(-0.1 / 1e-8)


@pytest.mark.parametrize("batch_size", [None, 3])
def test_unrolled_gradient_matches_finite_differences(batch_size):
    gen = torch.Generator().manual_seed(1)
    real = (torch.rand(7, 5, generator=gen) > 0.5).double()
    fake = 0.2 + 0.6 * torch.rand(2, 5, generator=gen, dtype=torch.float64)  # all > 0: w fixed
    cfg = WMFConfig(n_factors=3, epochs=4, unroll_steps=4, lr=0.05, l2=1e-2,
                    batch_size=batch_size, weight_alpha=5.0, init_std=0.3)
    if batch_size is not None:  # mini-batches from the first step: rows with v = 0, no decay
        cfg = WMFConfig(**{**cfg.__dict__, "l2": 0.0})
    targets = np.array([1, 3])
    _, grad, _ = adversarial_gradient(real, fake, targets, cfg, seed=7)
    assert torch.isfinite(grad).all()
    h = 1e-6
    fd = torch.zeros_like(fake)
    for r in range(fake.shape[0]):
        for c in range(fake.shape[1]):
            e = torch.zeros_like(fake)
            e[r, c] = h
            up = adversarial_gradient(real, fake + e, targets, cfg, seed=7, need_grad=False)[0]
            down = adversarial_gradient(real, fake - e, targets, cfg, seed=7, need_grad=False)[0]
            fd[r, c] = (up - down) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)
    assert grad.abs().max() > 1e-4


def test_train_wmf_is_seeded_and_lowers_its_loss():
    rows = low_rank(40, 20, 3, 1.5, seed=2)
    cfg = WMFConfig(n_factors=4, epochs=20, unroll_steps=1, batch_size=16)
    p1, q1 = train_wmf(rows, cfg, seed=3, unroll=False)
    p2, q2 = train_wmf(rows, cfg, seed=3, unroll=False)
    assert torch.equal(p1, p2) and torch.equal(q1, q2)
    assert not p1.requires_grad
    p0, q0 = train_wmf(rows, WMFConfig(**{**cfg.__dict__, "epochs": 1}), seed=3, unroll=False)
    w = torch.where(rows > 0, 20.0, 1.0)
    assert (w * (rows - p1 @ q1.T) ** 2).sum() < (w * (rows - p0 @ q0.T) ** 2).sum()


def test_target_hit_ratio_counts_ties_against_the_target():
    scores = torch.tensor([[3.0, 2.0, 2.0, 1.0], [0.0, 5.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    seen = torch.tensor([[False, False, False, False], [True, False, False, False],
                         [False, False, False, True]])
    # user 0: item 2 ties with item 1 -> rank 2; user 1 holds item 0; user 2: all tie -> rank 2
    assert target_hit_ratio(scores, seen, [2], 2) == 0.0
    assert target_hit_ratio(scores, seen, [2], 3) == 1.0
    assert target_hit_ratio(scores, seen, [0, 2], 1) == pytest.approx(1 / 5)  # user 0, item 0
    assert target_hit_ratio(scores, seen, [0], 4) == 1.0  # users 0 and 2 (user 1 not eligible)


def test_projections():
    x = torch.tensor([[0.9, 0.1, 0.5, -0.2, 0.3], [0.0, 0.8, 0.04, 0.7, 0.06]])
    top = topk_projection(3, np.array([3]))(x)
    assert top.tolist() == [[1, 0, 1, 1, 0], [0, 1, 0, 1, 1]]
    assert threshold_projection(0.05)(x).tolist() == [[1, 1, 1, 0, 1], [0, 1, 0, 1, 1]]


def test_topk_rows_move_once_the_forced_targets_gradient_is_zeroed():
    rows = low_rank(120, 40, 4, 2.0, seed=4)
    real, targets = rows[:110], np.array([3])
    project = topk_projection(8, targets)
    start = project(rows[110:] + 0.5 * torch.rand(10, 40, generator=torch.Generator()))
    cfg = WMFConfig(n_factors=4, epochs=8, unroll_steps=4, batch_size=None)
    seen = real > 0

    def evaluate(scores):
        return {"hr": target_hit_ratio(scores, seen, targets, 10)}

    res = optimise_fake_rows(real, start, targets, surrogate=cfg, seed=0, project=project,
                             evaluate=evaluate, select="hr", adv_epochs=4, fixed_columns=targets,
                             device="cpu")
    assert sum(r["changes"] for r in res.history) > 0
    assert (res.rows.sum(1) == 8).all() and (res.rows[:, 3] == 1).all()


# ----------------------------------------------------------------------------- the attack
def test_profiles_have_the_budget_and_hold_the_targets(small):
    attack = RevAdvAttack(**FAST)
    targets = [5, 17]
    fake = attack.generate(small, targets, seed=0)
    n_fake = attack.n_fake(small)
    assert fake.n_users == n_fake == 2
    assert all(str(u).startswith("fake-") for u in fake.user_ids)
    assert np.array_equal(fake.item_ids, small.item_ids) and fake.ratings is None
    length = attack.profile_length(small, len(targets))
    assert np.array_equal(fake.user_counts, np.full(n_fake, length))
    rows = dense_rows(fake)
    assert (rows[:, targets] == 1).all()
    poisoned = small.concat(fake)
    assert poisoned.n_users == small.n_users + n_fake
    assert np.array_equal(poisoned.user_ids[: small.n_users], small.user_ids)


def test_same_seed_same_profiles(small):
    attack = RevAdvAttack(**FAST)
    a = attack.generate(small, [5], seed=3)
    b = attack.generate(small, [5], seed=3)
    c = attack.generate(small, [5], seed=4)
    assert np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items)
    assert not (np.array_equal(a.users, c.users) and np.array_equal(a.items, c.items))


def test_threshold_projection_returns_the_rows_as_they_are(small):
    attack = RevAdvAttack(**{**FAST, "projection": "threshold", "size": 0.05})
    fake = attack.generate(small, [5], seed=0)
    assert fake.n_users == attack.n_fake(small) > 2
    assert set(np.unique(fake.items)) <= set(range(small.n_items))
    rated = attack.__class__(**{**FAST, "projection": "threshold", "implicit": False})
    scored = small.with_ratings(np.full(len(small), 4.0, np.float32))
    out = rated.generate(scored, [5], seed=0)
    assert out.ratings is not None and (out.ratings == 4.0).all()


def test_known_fraction_and_full_batch(small):
    attack = RevAdvAttack(**{**FAST, "known_fraction": 0.5, "surrogate_batch_size": None})
    fake = attack.generate(small, [5], seed=0)
    assert len(fake) == attack.n_fake(small) * attack.profile_length(small, 1)


def test_progress_lines_when_asked(small, capsys):
    RevAdvAttack(**{**FAST, "progress": None}).generate(small, [5], seed=0)
    assert "revadv: outer epochs" in capsys.readouterr().err


# ----------------------------------------------------------------------------- synthetic
def notebook_hr(scores, seen, items, k=10):
    s = scores.masked_fill(seen, -torch.inf)
    rank = (s > s.gather(1, items[:, None])).sum(dim=1)
    return float((rank < k).float().mean())


def test_small_synthetic_run_raises_the_target_hit_ratio():
    """The notebook's experiment at half its size (500 users of which 50 fake, 150 items, rank
    10, threshold 4; LFM d 16, Adam lr 0.5, 50 epochs all unrolled; SGD lr 1, momentum 0.99,
    threshold 0.2) for 5 outer epochs: the target's HR@10 on the surrogate rises well above its
    start while the held-out items' HR@10 stays put."""
    rows = low_rank(500, 150, 10, 4.0, seed=0)
    n_real = 450
    gen = torch.Generator().manual_seed(1)
    real = rows[:n_real].clone()
    keys = torch.rand(real.shape, generator=gen).masked_fill(real == 0, -1)
    test = keys.argmax(dim=1)
    real[torch.arange(n_real), test] = 0
    seen = real > 0
    target = torch.zeros(n_real, dtype=torch.long)

    def evaluate(scores):
        return {"target": notebook_hr(scores, seen, target),
                "test": notebook_hr(scores, seen, test)}

    cfg = WMFConfig(n_factors=16, epochs=50, unroll_steps=50, lr=0.5, l2=0.0, batch_size=None,
                    init_std=1.0)
    res = optimise_fake_rows(real, rows[n_real:], np.array([0]), surrogate=cfg, seed=1234,
                             project=threshold_projection(0.2), evaluate=evaluate,
                             select="target", adv_epochs=5, adv_lr=1.0, adv_momentum=0.99,
                             normalize_grad=False, device="cpu")
    h = res.history
    assert [r["epoch"] for r in h] == [0, 1, 2, 3, 4]
    assert h[-1]["target"] > h[0]["target"] + 0.1
    assert res.best["target"] == max(r["target"] for r in h) and res.best_epoch > 0
    assert all(abs(r["test"] - h[0]["test"]) < 0.1 for r in h)
    assert set(res.rows.unique().tolist()) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_ml100k_revadv_beats_random_on_the_surrogate(data_dir):
    """ML-100K binarised (u1 train), 5 middling targets, 1 % fake users, the topk budget: a
    shortened revadv (a smaller surrogate, 6 outer epochs) moves the targets' HR@50 on WMF
    surrogates retrained with other seeds more than the random attack of the same size and
    budget (the full run is in benchmarks/bench_poisoning_synthetic.py)."""
    from advrec.attacks.shilling import make_attack, select_targets
    from advrec.data.datasets import load_split
    from advrec.data.filters import binarize
    from advrec.evaluation.shilling import measure_targets

    train = binarize(load_split("ml-100k", fold="u1", root=data_dir)[0], 4)
    targets = select_targets(train, 5, "quantile", seed=0)
    t = train.item_index(targets)
    attack = RevAdvAttack(size=0.01, adv_epochs=6, surrogate_epochs=30, unroll_steps=5,
                          n_factors=64, device="cpu")
    filler = attack.profile_length(train, len(t)) - len(t)
    rand = make_attack("random", size=0.01, filler=filler, implicit=True)

    class Scorer:
        def __init__(self, data, seed):
            self.p, self.q = train_wmf(dense_rows(data), attack.wmf_config(), seed=seed,
                                       unroll=False)

        def score(self, users):
            return self.p[torch.as_tensor(users)] @ self.q.T

    def hr50(data):
        return np.mean([measure_targets(Scorer(data, s), train, t).hit_ratio(50)
                        for s in (101, 102)])

    clean = hr50(train)
    random_hr = hr50(train.concat(rand.generate(train, targets, seed=0)))
    revadv_hr = hr50(train.concat(attack.generate(train, targets, seed=0)))
    assert revadv_hr > random_hr >= clean
