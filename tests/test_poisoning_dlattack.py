"""DL-attack (Huang et al., NDSS 2021): parameters, profiles, determinism, and (slow) its effect
on a NeuMF victim on ML-100K u1 against random, popular and bandwagon attacks of the same size.

The fast tests run a tiny attack (two surrogate epochs) on a small synthetic data set; the slow
one measures target HR@10 before and after each attack in one run (baseline included).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advrec.attacks.poisoning.dlattack import DLAttack, _round_sizes
from advrec.attacks.shilling import make_attack, select_targets
from advrec.data.datasets import load_split
from advrec.data.filters import binarize
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import ConfigError, DataError

TINY = dict(epochs=2, attack_epochs=2, batch_size=512, attack_batch_size=16, device="cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(80, 50, 800, n_clusters=4, seed=3)


@pytest.fixture(scope="module")
def targets(data):
    counts = data.item_counts
    rated = np.flatnonzero(counts)
    return data.item_ids[rated[np.argsort(counts[rated], kind="stable")[:2]]]  # unpopular


@pytest.fixture(scope="module")
def fake(data, targets):
    return DLAttack(size=0.05, fake_per_round=2, **TINY).generate(data, targets, seed=1)


# ----------------------------------------------------------------------------- parameters
def test_defaults_are_the_official_settings():
    a = DLAttack()
    assert (a.surrogate, a.fake_per_round, a.epochs, a.attack_epochs) == ("neumf", 1, 20, 5)
    assert (a.mf_dim, a.layers, a.lr, a.batch_size, a.n_negatives) == (
        8, (64, 32, 16, 8), 1e-3, 256, 4)
    assert (a.top_k, a.kappa, a.alpha, a.eta, a.decay) == (10, 1.0, 1e-2, 100.0, 0.9)
    assert a.filler is None and a.implicit and a.size == 0.01
    assert DLAttack.name == "dlattack" and not DLAttack.explicit
    assert "neumf" in a.knowledge() and a.params()["attack"] == "dlattack"
    assert DLAttack(layers=[32, 16]).layers == (32, 16)


@pytest.mark.parametrize("kwargs, word", [
    ({"surrogate": "lightgcn"}, "surrogate"),
    ({"fake_per_round": 0}, "fake_per_round"),
    ({"fake_per_round": 1.5}, "fake_per_round"),
    ({"epochs": 0}, "epochs"),
    ({"attack_epochs": -1}, "attack_epochs"),
    ({"mf_dim": 0}, "mf_dim"),
    ({"layers": ()}, "layers"),
    ({"layers": (63, 8)}, "layers"),
    ({"layers": (64, 0)}, "layers"),
    ({"layers": 64}, "layers"),
    ({"lr": 0.0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"n_negatives": -1}, "n_negatives"),
    ({"top_k": 0}, "top_k"),
    ({"kappa": -0.1}, "kappa"),
    ({"kappa": float("nan")}, "kappa"),
    ({"alpha": -1.0}, "alpha"),
    ({"eta": "big"}, "eta"),
    ({"decay": 0.0}, "decay"),
    ({"decay": 1.5}, "decay"),
    ({"attack_batch_size": 0}, "attack_batch_size"),
    ({"progress": "yes"}, "progress"),
    ({"known_fraction": 0.0}, "known_fraction"),
    ({"size": 0.0}, "size"),
    ({"intent": "nuke"}, "intent"),
])
def test_bad_parameters_raise_config_error(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        DLAttack(**kwargs)


def test_rated_data_needs_implicit_false_or_binarising(data, targets):
    rated = data.with_ratings(np.full(len(data), 5.0, np.float32))
    with pytest.raises(DataError, match="ratings"):
        DLAttack(**TINY).generate(rated, targets)


def test_a_profile_longer_than_the_fillers_available_is_refused(data, targets):
    with pytest.raises(ConfigError, match="catalogue"):
        DLAttack(filler=60, **TINY).generate(data, targets)
    t = data.item_index(targets)
    unrated = np.setdiff1d(np.arange(10), t)  # items nobody interacted with are no fillers
    sparse = data.subset(~np.isin(data.items, unrated))
    with pytest.raises(ConfigError, match=r"filler size 45 exceeds the \d+ items"):
        DLAttack(filler=45, **TINY).generate(sparse, targets)


def test_rounds_split_the_fake_users():
    assert _round_sizes(7, 3) == [3, 3, 1]
    assert _round_sizes(6, 3) == [3, 3]
    assert _round_sizes(2, 5) == [2]


# ----------------------------------------------------------------------------- profiles
def test_new_users_only_with_budget_and_targets(data, targets, fake):
    a = DLAttack(size=0.05, **TINY)
    assert fake.n_users == a.n_fake(data) == 4
    assert not np.isin(fake.user_ids, data.user_ids).any()
    assert all(str(u).startswith("fake-") for u in fake.user_ids)
    assert np.array_equal(fake.item_ids, data.item_ids) and fake.ratings is None
    length = a.profile_length(data, len(targets))
    assert length == round(data.user_counts.mean())
    assert np.array_equal(np.bincount(fake.users, minlength=fake.n_users),
                          np.full(fake.n_users, length))
    m = fake.binary_csr.toarray() > 0
    assert m[:, data.item_index(targets)].all()
    assert len(fake) == int(m.sum())  # no item twice in a profile
    assert (data.item_counts[m.any(axis=0)] > 0).all()  # fillers: items with an interaction
    poisoned = data.concat(fake)
    assert poisoned.n_users == data.n_users + fake.n_users
    assert np.array_equal(poisoned.users[: len(data)], data.users)


def test_explicit_filler_count_and_rated_profiles(data, targets):
    rated = data.with_ratings(np.full(len(data), 4.0, np.float32)).concat(
        data.subset(np.arange(1)).with_ratings(np.array([1.0], np.float32)))
    out = DLAttack(size=0.03, filler=5, implicit=False, attack_epochs=0, **{
        k: v for k, v in TINY.items() if k != "attack_epochs"}).generate(rated, targets[:1])
    assert np.array_equal(np.bincount(out.users), np.full(out.n_users, 6))
    assert np.all(out.ratings == 4.0)


def test_deterministic_for_a_seed(data, targets, fake):
    again = DLAttack(size=0.05, fake_per_round=2, **TINY).generate(data, targets, seed=1)
    assert np.array_equal(fake.users, again.users) and np.array_equal(fake.items, again.items)


def test_selection_probabilities_spread_the_fillers(data, targets):
    """With δ < 1 later fake users turn away from items already chosen; δ = 1 repeats them."""
    kwargs = dict(size=0.05, filler=6, fake_per_round=1, **TINY)
    spread = DLAttack(decay=0.01, **kwargs).generate(data, targets, seed=0)
    same = DLAttack(decay=1.0, **kwargs).generate(data, targets, seed=0)
    distinct = [len(np.unique(f.items)) for f in (spread, same)]
    assert distinct[0] > distinct[1]


def test_partial_knowledge_and_progress(data, targets, capsys):
    out = DLAttack(size=0.05, fake_per_round=4, known_fraction=0.5, progress=None,
                   **TINY).generate(data, targets, seed=0)
    assert out.n_users == 4
    assert "dlattack rounds: 1/1" in capsys.readouterr().err


def test_the_attack_steps_lower_the_loss_and_the_best_state_is_kept(data, targets):
    """Attack steps shrink Σ max(log ŷ_u[K] − log ŷ_ut, −κ); a round never returns a surrogate
    of lower target HR than its plain fit; the new fake users follow the real ones."""
    from advrec.attacks.poisoning import dlattack as mod
    from advrec.attacks.shilling import _Context

    t = data.item_index(targets)
    a = DLAttack(size=0.05, fake_per_round=4, **TINY)
    real = mod._Real(data, t, a.top_k)
    empty = np.empty((0, a.profile_length(data, len(t)) - len(t)), np.int64)
    plain = DLAttack(size=0.05, fake_per_round=4, **{**TINY, "attack_epochs": 0})
    net0, _ = plain._round(_Context(data, t, 4, np.random.default_rng(0)), data, t, empty, 4,
                           real)
    hr0 = real.hit_ratio(net0)

    def loss(net) -> float:
        with torch.no_grad():
            z, seen, eligible = real.logits(net, np.arange(len(real.users)))
            kth = z.masked_fill(seen, -torch.inf).topk(real.k, dim=1).values[:, -1]
            gap = torch.nn.functional.logsigmoid(kth)[:, None] - \
                torch.nn.functional.logsigmoid(z[:, real.t])
            return float(gap.clamp(min=-a.kappa)[eligible].sum())

    before = loss(net0)
    opt = torch.optim.Adam(net0.parameters(), lr=a.lr)
    for _ in range(3):
        a._attack_steps(net0, opt, real, np.random.default_rng(0))
    assert loss(net0) < before
    net1, fakes = a._round(_Context(data, t, 4, np.random.default_rng(0)), data, t, empty, 4,
                           real)
    assert real.hit_ratio(net1) >= hr0
    assert fakes.tolist() == list(range(data.n_users, data.n_users + 4))


# ----------------------------------------------------------------------------- effect (slow)
VICTIM_EPOCHS = 20  # the official NeuMF settings otherwise (8 factors, [64, 32, 16, 8], ...)


def _victim_measures(train, data, t):
    from advrec.evaluation.shilling import measure_targets
    from advrec.models import NeuMF

    model = NeuMF(epochs=VICTIM_EPOCHS, seed=0, device="cpu").fit(data, progress=False)
    m = measure_targets(model, train, t)
    return {"hr10": m.hit_ratio(10), "hr50": m.hit_ratio(50), "rank": m.mean_rank()}


@pytest.fixture(scope="module")
def ml100k(data_dir):
    """ML-100K u1 train binarised (ratings >= 4), 5 random targets and the clean NeuMF victim's
    measures."""
    train = binarize(load_split("ml-100k", fold="u1", root=data_dir)[0], 4)
    raw = select_targets(train, 5, "random", seed=0)
    t = train.item_index(raw)
    return train, raw, t, _victim_measures(train, train, t)


@pytest.mark.long
@pytest.mark.parametrize("size", [0.01, 0.03])
def test_dlattack_against_heuristic_attacks_on_a_neumf_victim(ml100k, size):
    """Target HR@10/@50 and mean rank on a NeuMF victim refitted on train + fake, DL-attack vs
    random, popular and bandwagon attacks of the same size and profile length (clean baseline in
    the same run). DL-attack has the official settings but builds its fake users in 2 rounds
    (the official one user per round costs a surrogate fit per fake user). Long: ~3 minutes per
    size on an idle core (the victim is refitted 4 times), the clean fit once more.

    Measured (single victim seed): every attack moves HR@10 by a few hits only (~4,600 pairs;
    the victim's own seed moves it as much), so DL-attack's HR@10 is NOT asserted above the
    others' (it was not, at 1 % popular was best, at 3 % random). What held and is asserted:
    DL-attack raises HR@10, HR@50 and the mean rank over the clean victim at both sizes, and at
    3 % its mean rank and HR@50 are the best of all four attacks."""
    train, raw, t, clean = ml100k
    torch.manual_seed(0)
    probe = DLAttack(size=size)
    n_fake, length = probe.n_fake(train), probe.profile_length(train, len(t))
    attack = DLAttack(size=size, device="cpu", fake_per_round=math.ceil(n_fake / 2))
    out = {"clean": clean,
           "dlattack": _victim_measures(train, train.concat(attack.generate(train, raw)), t)}
    for name, n_sel in (("random", 0), ("popular", 0), ("bandwagon", 3)):
        extra = {"n_selected": n_sel} if n_sel else {}
        other = make_attack(name, size=size, filler=length - len(t) - n_sel, implicit=True,
                            **extra)
        out[name] = _victim_measures(train, train.concat(other.generate(train, raw)), t)
    print(f"\nsize {size} ({n_fake} fake users, {length} items each):")
    for name, m in out.items():
        print(f"  {name:9s} HR@10 {m['hr10']:.4f}  HR@50 {m['hr50']:.4f}  "
              f"mean rank {m['rank']:.1f}")
    dl = out["dlattack"]
    assert dl["hr10"] > clean["hr10"] and dl["hr50"] > clean["hr50"]
    assert dl["rank"] < clean["rank"]
    if size >= 0.03:
        others = [out[k] for k in ("random", "popular", "bandwagon")]
        assert dl["rank"] < min(m["rank"] for m in others)
        assert dl["hr50"] > max(m["hr50"] for m in others)
