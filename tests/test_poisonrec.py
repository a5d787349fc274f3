"""PoisonRec (Song et al., ICDE 2020): the biased item tree, the policy's sampler, the attack's
contract, determinism, the exact query budget, parameter errors, and (slow) a real run on
ML-100K u1 whose reward rises over the iterations and beats a random attack of the same size.

The fast tests run against ItemPop (a retraining costs a bincount) on a small synthetic data set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advrec.attacks.poisoning.poisonrec import (
    BCBT,
    PoisonRecAttack,
    _log_probs,
    _policy,
    _sample,
    _Tree,
    build_bcbt,
    complete_tree,
)
from advrec.attacks.shilling import RandomAttack
from advrec.data.datasets import load_split
from advrec.data.interactions import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import ConfigError, DataError, ParamError
from advrec.models.itempop import ItemPop

TINY = dict(victim="itempop", iterations=2, episodes=3, query_users=30, hidden=8, device="cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(80, 50, 800, n_clusters=4, seed=3)


@pytest.fixture(scope="module")
def targets(data):
    counts = data.item_counts
    rated = np.flatnonzero(counts)
    return data.item_ids[rated[np.argsort(counts[rated], kind="stable")[:2]]]  # unpopular


def _internal(data, raw):
    return np.flatnonzero(np.isin(data.item_ids, raw))


# ----------------------------------------------------------------------------- the tree
@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 13, 64, 100])
def test_complete_tree_has_log_depth_and_every_item_once(m):
    items = np.arange(100, 100 + m)
    tree = complete_tree(items)
    assert tree.n_nodes == 2 * m - 1
    assert sorted(tree.items.tolist()) == items.tolist()
    assert tree.max_depth == math.ceil(math.log2(m))
    depth = tree.item_depth(200)[items]
    assert (np.diff(depth) >= 0).all()  # earlier (more popular) items never deeper
    assert tree.leaves[0] == m
    inner = ~tree.is_leaf
    idx = np.arange(tree.n_nodes)
    assert (tree.left[inner] > idx[inner]).all() and (tree.right[inner] > idx[inner]).all()
    assert complete_tree(np.empty(0, np.int64)) is None


def test_bcbt_puts_targets_then_popular_items_near_the_root():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 500, 1000)
    counts[[5, 17, 900]] = 0  # items nobody interacted with are not actions ...
    targets = np.array([17, 40, 41])  # ... except a target
    tree = build_bcbt(targets, counts, n_popular=30)
    pool = np.setdiff1d(np.flatnonzero(counts), targets)
    expected = np.union1d(pool, targets)
    assert sorted(tree.items.tolist()) == expected.tolist()  # each item exactly once
    d = tree.item_depth(len(counts))
    assert (d[[5, 900]] == -1).all()
    assert (d[targets] <= 1 + math.ceil(math.log2(3))).all()  # root → target subtree
    popular = pool[np.argsort(-counts[pool], kind="stable")[:30]]
    rest = np.setdiff1d(pool, popular)
    assert (d[popular] <= 2 + math.ceil(math.log2(30))).all()
    assert d[targets].max() <= d[popular].min()
    assert d[popular].max() <= d[rest].min()
    assert tree.max_depth == 2 + math.ceil(math.log2(len(rest)))  # O(log n)
    assert tree.leaves[0] == len(expected)
    # the root's left child is the targets' subtree, its right child the rest
    left_items = _subtree_items(tree, tree.left[0])
    assert sorted(left_items) == targets.tolist()


def test_bcbt_without_targets_and_without_popular_group():
    counts = np.array([3, 0, 9, 1, 7, 2])
    tree = build_bcbt(np.array([2]), counts, n_popular=0, include_targets=False)
    assert sorted(tree.items.tolist()) == [0, 3, 4, 5]
    assert tree.max_depth == 2  # one complete tree of 4 items
    assert isinstance(tree, BCBT)
    with pytest.raises(DataError, match="no item"):
        build_bcbt(np.array([0]), np.array([5, 0]), 3, include_targets=False)


def _subtree_items(tree, node):
    stack, out = [int(node)], []
    while stack:
        n = stack.pop()
        if tree.left[n] < 0:
            out.append(int(tree.item[n]))
        else:
            stack += [int(tree.left[n]), int(tree.right[n])]
    return out


# ----------------------------------------------------------------------------- the sampler
def _tiny_policy(tree, n_items, seed=0, scale=2.0):
    policy = _policy(n_items, tree.n_nodes, 4, seed)
    with torch.no_grad():  # decisions far from 50/50, so frequencies are informative
        policy.node_w.mul_(0).add_(torch.randn(policy.node_w.shape,
                                               generator=torch.Generator().manual_seed(1)))
        policy.node_b.copy_(scale * torch.randn(tree.n_nodes,
                                                generator=torch.Generator().manual_seed(2)))
    return policy


def test_sampler_and_replayed_log_probabilities_agree():
    n_items = 7
    tree = build_bcbt(np.array([6]), np.arange(1, n_items + 1), n_popular=2)
    policy = _tiny_policy(tree, n_items)
    t = _Tree.of(tree, "cpu")
    rows = 20000
    u = torch.rand(1, t.depth, rows, generator=torch.Generator().manual_seed(3))
    batch = _sample(policy, t, rows, 1, u, n_items)
    logp = _log_probs(policy, batch, n_items)[0].detach().numpy()
    items = batch.items[:, 0].numpy()
    probs = {}
    for i in np.unique(items):
        lp = logp[items == i]
        assert np.allclose(lp, lp[0], atol=1e-5)  # one first step: one probability per item
        probs[int(i)] = float(np.exp(lp[0]))
    assert sorted(probs) == list(range(n_items))
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    freq = np.bincount(items, minlength=n_items) / rows
    assert np.abs(freq - np.array([probs[i] for i in range(n_items)])).max() < 0.015


def test_sampler_never_repeats_an_item():
    n_items = 9
    tree = build_bcbt(np.array([0, 4]), np.full(n_items, 3), n_popular=3)
    policy = _tiny_policy(tree, n_items, scale=4.0)
    t = _Tree.of(tree, "cpu")
    u = torch.rand(n_items, t.depth, 50, generator=torch.Generator().manual_seed(0))
    batch = _sample(policy, t, 50, n_items, u, n_items)
    assert (np.sort(batch.items.numpy(), axis=1) == np.arange(n_items)).all()
    # the last choice is forced everywhere: no free decision, log-probability 0
    logp = _log_probs(policy, batch, n_items)
    assert torch.all(logp[-1] == 0) and not batch.free[-1].any()


# ----------------------------------------------------------------------------- the contract
def test_profiles_follow_the_contract(data, targets):
    attack = PoisonRecAttack(size=0.05, **TINY)
    fake, result = attack.run(data, targets, seed=0)
    n_fake = attack.n_fake(data)
    length = attack.profile_length(data, len(targets))
    assert n_fake == 4 and fake.n_users == n_fake == len(fake.active_users)
    assert not set(fake.user_ids.tolist()) & set(data.user_ids.tolist())
    assert (fake.user_counts == length).all()
    t = _internal(fake, targets)
    assert (fake.binary_csr[:, t].toarray() == 1).all()  # every target in every profile
    assert fake.ratings is None
    csr = fake.binary_csr
    assert csr.sum() == n_fake * length  # distinct items
    chosen = np.setdiff1d(np.unique(fake.items), t)
    assert (data.item_counts[chosen] > 0).all()  # the policy picks items with interactions
    poisoned = data.concat(fake)
    assert (poisoned.user_ids[: data.n_users] == data.user_ids).all()
    assert result.profiles.shape == (n_fake, length)
    assert 0 <= result.best_reward <= result.query_users * len(targets)
    assert len(result.history) == TINY["iterations"]


def test_policy_may_leave_targets_out_when_not_forced(data, targets):
    attack = PoisonRecAttack(size=0.05, force_targets=False, filler=6, **TINY)
    fake = attack.generate(data, targets, seed=0)
    assert (fake.user_counts == 6 + len(targets)).all()
    assert fake.binary_csr.sum() == fake.n_users * (6 + len(targets))


def test_best_reward_is_the_exposure_of_the_profiles_returned(data, targets):
    attack = PoisonRecAttack(size=0.05, **{**TINY, "query_users": None},
                             victim_params={"seed": 0})
    fake, result = attack.run(data, targets, seed=4)
    t = _internal(data, targets)
    held = np.asarray(data.binary_csr[:, t].sum(axis=1)).ravel()
    pool = np.flatnonzero((data.user_counts > 0) & (held < len(t)))
    assert result.query_users == len(pool)
    model = ItemPop(seed=0).fit(data.concat(fake))
    top, _ = model.recommend(pool, k=attack.top_k)
    assert result.best_reward == int(np.isin(top, t).sum())
    assert result.best_reward == max(h["max_reward"] for h in result.history)


def test_rated_profiles_give_targets_the_top_and_others_their_mean():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 40, 600), rng.integers(0, 30, 600)
    key = np.unique(users * 30 + items)
    users, items = key // 30, key % 30
    ratings = rng.integers(1, 6, len(users)).astype(np.float32)
    data = Interactions(users, items, np.arange(40), np.arange(30), ratings)
    attack = PoisonRecAttack(size=0.05, implicit=False, filler=5, **TINY)
    fake = attack.generate(data, [3], seed=0)
    assert fake.ratings is not None
    mean = np.bincount(data.items, data.ratings, 30) / np.bincount(data.items, minlength=30)
    target = fake.items == 3
    assert (fake.ratings[target] == 5).all() and target.sum() == fake.n_users
    np.testing.assert_array_equal(fake.ratings[~target],
                                  np.floor(mean[fake.items[~target]] + 0.5))
    with pytest.raises(DataError, match="implicit=False"):
        PoisonRecAttack(**TINY).generate(data, [3])
    with pytest.raises(DataError, match="implicit=True"):
        PoisonRecAttack(implicit=False, **TINY).generate(data.with_ratings(None), [3])


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_profiles(data, targets):
    attack = PoisonRecAttack(size=0.05, **TINY)
    a, ra = attack.run(data, targets, seed=7)
    b, rb = attack.run(data, targets, seed=7)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.users, b.users)
    assert ra.history == rb.history
    c = attack.generate(data, targets, seed=8)
    assert not np.array_equal(np.sort(a.items), np.sort(c.items))


# ----------------------------------------------------------------------------- the budget
def test_query_budget_counts_every_retraining_and_list(data, targets, monkeypatch):
    calls = {"fit": 0, "lists": 0}
    fit, recommend = ItemPop.fit, ItemPop.recommend

    def counting_fit(self, train, **kw):
        calls["fit"] += 1
        return fit(self, train, **kw)

    def counting_recommend(self, users=None, k=10, **kw):
        calls["lists"] += len(np.atleast_1d(users))
        return recommend(self, users, k, **kw)

    monkeypatch.setattr(ItemPop, "fit", counting_fit)
    monkeypatch.setattr(ItemPop, "recommend", counting_recommend)
    attack = PoisonRecAttack(size=0.05, **{**TINY, "iterations": 3, "episodes": 2,
                                           "query_users": 25})
    _, result = attack.run(data, targets, seed=0)
    assert calls == {"fit": 6, "lists": 150}
    assert (result.retrainings, result.topk_lists, result.query_users) == (6, 150, 25)
    assert attack.query_budget(data, targets) == result.budget() == {
        "victim_retrainings": 6, "topk_lists": 150, "query_users": 25}
    params = attack.params()
    assert params["query_budget"]["victim_retrainings"] == 6
    assert "black box" in params["knowledge"] and "itempop" in params["knowledge"]
    assert "retrained 6 times" in attack.knowledge()
    # more query users than eligible ones: the lists of every eligible user
    big = PoisonRecAttack(**{**TINY, "query_users": 10_000})
    assert big.query_budget(data, targets)["query_users"] < data.n_users + 1


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, word", [
    ({"episodes": 1}, "episodes"),
    ({"iterations": 0}, "iterations"),
    ({"top_k": 0}, "top_k"),
    ({"query_users": 0}, "query_users"),
    ({"hidden": 2.5}, "hidden"),
    ({"lr": 0}, "lr"),
    ({"clip": 1.5}, "clip"),
    ({"n_popular": -1}, "n_popular"),
    ({"ppo_epochs": 0}, "ppo_epochs"),
    ({"force_targets": 1}, "force_targets"),
    ({"known_fraction": 0}, "known_fraction"),
    ({"intent": "nuke"}, "intent"),
    ({"victim": "nope"}, "victim"),
    ({"victim": 3}, "victim"),
    ({"victim_params": [1, 2]}, "victim_params"),
    ({"victim_params": {"bogus": 1}}, "bogus"),
    ({"victim": "itemknn", "victim_params": {"k": 0}}, "victim_params.k"),
])
def test_bad_parameters_are_refused_by_name(kwargs, word):
    with pytest.raises(ParamError, match=word):
        PoisonRecAttack(**kwargs)


def test_victim_params_are_normalised_and_reported():
    a = PoisonRecAttack(victim="ItemKNN", victim_params={"k": 5, "similarity": "cosine"})
    assert a.victim == "itemknn" and dict(a.victim_params) == {"k": 5, "similarity": "cosine"}
    hash(a)  # a frozen attack stays hashable
    assert a.params()["victim_params"] == {"k": 5, "similarity": "cosine"}
    again = {k: v for k, v in a.params().items()
             if k not in ("knowledge", "query_budget", "attack")}
    assert PoisonRecAttack(**again) == a

def test_data_errors(data, targets):
    with pytest.raises(ConfigError, match="longer than the catalogue"):
        PoisonRecAttack(filler=49, **TINY).generate(data, targets)
    with pytest.raises(ConfigError, match="larger than the catalogue"):
        PoisonRecAttack(filler=60, **TINY).generate(data, targets)
    sparse = data.subset(~np.isin(data.items, [0, 1, 2]))  # three items nobody holds
    n_rated = int((sparse.item_counts > 0).sum()) - len(targets)
    with pytest.raises(ConfigError, match=f"tree holds only {n_rated}"):
        PoisonRecAttack(filler=n_rated + 1, **TINY).generate(sparse, targets)
    holder = Interactions(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.arange(2),
                          np.arange(3))
    with pytest.raises(DataError, match="every real user holds every target"):
        PoisonRecAttack(size=0.25, filler=0, **TINY).generate(holder, [0])
    with pytest.raises(DataError, match="unknown target"):
        PoisonRecAttack(**TINY).generate(data, ["no-such-item"])


# ----------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_ml100k_reward_rises_and_beats_a_random_attack(data_dir):
    """ML-100K u1 (implicit), three targets with 54–78 interactions, 2 % fake users, an ItemKNN
    victim, top-50 lists: the mean reward of the last two iterations exceeds the first's, and
    the profiles returned expose the targets (over every eligible user) more than a random
    attack of the same size and profile length does, and more than no attack."""
    torch.set_num_threads(1)
    train, _ = load_split("ml-100k", fold="u1", root=data_dir)
    train = train.with_ratings(None)
    targets = [584, 477, 780]
    attack = PoisonRecAttack(size=0.02, top_k=50, iterations=8, episodes=4, device="cpu")
    fake, result = attack.run(train, targets, seed=0)
    mean = [h["mean_reward"] for h in result.history]
    assert np.mean(mean[-2:]) > mean[0]
    t = _internal(train, targets)

    def exposure(fake_users):
        from advrec.models.knn import ItemKNN

        model = ItemKNN().fit(train if fake_users is None else train.concat(fake_users))
        held = np.asarray(train.binary_csr[:, t].sum(axis=1)).ravel()
        top, _ = model.recommend(np.flatnonzero(held < len(t)), k=50)
        return int(np.isin(top, t).sum())

    length = attack.profile_length(train, len(t))
    random = [exposure(RandomAttack(size=0.02, filler=length - len(t), implicit=True)
                       .generate(train, targets, seed=s)) for s in range(2)]
    ours, clean = exposure(fake), exposure(None)
    assert ours > max(random) and ours > clean
    assert result.retrainings == 32 and result.topk_lists == 32 * 200
