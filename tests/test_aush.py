"""AUSH (Lin et al., CIKM 2020): parameters, the contract of injection attacks, determinism, the
loss terms and the selected-item choice on hand-made examples, and (long) its effect on an MF
victim on the authors' FilmTrust split against the average and bandwagon attacks.

The fast tests train a tiny GAN (a few epochs, narrow layers) on a small synthetic rating set.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from advrec.attacks.injection import attack_class, is_poisoning, make_injection
from advrec.attacks.poisoning.aush import (
    AUSHAttack,
    build_generator,
    choose_selected,
    discriminator_loss,
    generator_losses,
    generator_widths,
)
from advrec.attacks.shilling import make_attack
from advrec.data.interactions import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import ConfigError, DataError, ParamError
from advrec.vocabulary import INJECTION_ATTACKS, POISONING_ATTACKS

TINY = dict(epochs=3, hidden_g=40, hidden_d=16, layers_d=2, device="cpu")


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
    a = AUSHAttack()
    assert (a.epochs, a.hidden_g, a.decay_g, a.lr_g, a.reg_g, a.batch_size_g) == (
        150, 400, 3, 1e-2, 1e-4, 256)
    assert (a.hidden_d, a.layers_d, a.lr_d, a.reg_d, a.batch_size_d) == (150, 3, 1e-4, 1e-5, 64)
    assert (a.zr_ratio, a.adv_weight, a.shilling_weight, a.reconstruction_weight) == (
        0.5, 1.0, 1.0, 1.0)
    assert (a.filler, a.selected, a.n_selected, a.filler_sampling) == (None, None, 3, "uniform")
    assert a.intent == "push" and a.implicit is False and a.known_fraction == 1.0
    assert AUSHAttack.surrogates == () and "no surrogate" in a.knowledge()
    assert a.params()["attack"] == "aush"


def test_registered_as_an_injection_attack():
    assert "aush" in POISONING_ATTACKS and "aush" in INJECTION_ATTACKS
    assert attack_class("AUSH") is AUSHAttack and is_poisoning("aush")
    a = make_injection("aush", size=0.1, filler=5, selected="3,7", epochs=1)
    assert a.selected == (3, 7) and a.filler == 5
    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['surrogate'\]"):
        make_injection("aush", surrogate="wmf")


def test_an_experiment_entry_takes_aush_with_its_params():
    from advrec.experiments.config import parse_config

    base = {"name": "x", "data": {"dataset": "ml-100k", "fold": "u1"},
            "models": [{"name": "mf"}], "seeds": [0]}
    entry = parse_config({**base, "shilling": [{
        "attack": "aush", "size": 0.05, "targets": [5],
        "params": {"selected": {5: [98, 118, 112]}, "epochs": 10}}]}).shilling[0]
    assert entry.filler is None and entry.params["selected"] == {5: [98, 118, 112]}
    with pytest.raises(ConfigError, match="zr_ratio"):
        parse_config({**base, "shilling": [{"attack": "aush", "params": {"zr_ratio": 2.0}}]})


@pytest.mark.parametrize("kwargs, word", [
    ({"n_selected": 0}, "n_selected"),
    ({"epochs": -1}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"hidden_g": 0}, "hidden_g"),
    ({"decay_g": 1}, "decay_g"),
    ({"lr_g": 0.0}, "lr_g"),
    ({"lr_d": float("nan")}, "lr_d"),
    ({"reg_g": -1e-4}, "reg_g"),
    ({"batch_size_g": 0}, "batch_size_g"),
    ({"hidden_d": 0}, "hidden_d"),
    ({"layers_d": 0}, "layers_d"),
    ({"batch_size_d": 0}, "batch_size_d"),
    ({"zr_ratio": 1.5}, "zr_ratio"),
    ({"adv_weight": -1.0}, "adv_weight"),
    ({"shilling_weight": "big"}, "shilling_weight"),
    ({"reconstruction_weight": -0.5}, "reconstruction_weight"),
    ({"filler_sampling": "gumbel"}, "filler_sampling"),
    ({"known_fraction": 0.0}, "known_fraction"),
    ({"progress": "yes"}, "progress"),
    ({"selected": []}, "selected"),
    ({"selected": [1.5]}, "selected"),
    ({"selected": {}}, "selected"),
    ({"selected": {5: []}}, "selected"),
    ({"device": "tpu9"}, "device"),
])
def test_bad_parameters_are_refused_by_name(kwargs, word):
    with pytest.raises(ParamError, match=word):
        AUSHAttack(**kwargs)


@pytest.mark.parametrize("kwargs, word", [
    ({"size": 0.0}, "size"), ({"filler": -1}, "filler"), ({"intent": "sideways"}, "intent"),
])
def test_bad_budget_is_refused(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        AUSHAttack(**kwargs)


def test_nuke_and_implicit_profiles_are_refused(data, targets):
    with pytest.raises(ParamError, match="intent: the aush attack pushes"):
        AUSHAttack(intent="nuke")
    with pytest.raises(ParamError, match="implicit: the aush attack generates ratings"):
        AUSHAttack(implicit=True)
    with pytest.raises(DataError, match="aush attack needs explicit ratings"):
        AUSHAttack(filler=5, **TINY).generate(data.with_ratings(None), targets)


# ----------------------------------------------------------------------------- the profiles
@pytest.fixture(scope="module")
def attack():
    return AUSHAttack(size=0.1, filler=5, **TINY)


@pytest.fixture(scope="module")
def fake(attack, data, targets):
    return attack.generate(data, targets, seed=1)


def test_profiles_keep_the_contract(attack, data, targets, fake):
    n, t = attack.n_fake(data), data.item_index(targets)
    sel = attack.selected_items(data, targets)
    assert n == 8 and len(sel) == 3 and not np.isin(sel, t).any()
    assert fake.n_users == n and list(fake.user_ids) == [f"fake-{j}" for j in range(n)]
    assert np.array_equal(fake.item_ids, data.item_ids)
    counts = np.bincount(fake.users, minlength=n)
    assert (counts == len(t) + len(sel) + 5).all()  # targets + selected + fillers, no repeats
    x = dense(fake)
    assert ((x > 0).sum(axis=1) == counts).all()
    assert set(np.unique(fake.ratings)) <= set(np.unique(data.ratings))  # on the data's scale
    assert (x[:, t] == data.ratings.max()).all()  # targets at r_max
    assert (x[:, sel] >= data.ratings.min()).all()  # every selected item rated
    merged = data.concat(fake)
    assert merged.n_users == data.n_users + n and len(merged) == len(data) + len(fake)


def test_fillers_are_a_real_template_users_ratings(attack, data, targets, fake):
    """Each profile's fillers are items one real user rated, with that user's ratings, and
    that user rated at least ``filler`` items besides the selected and target items."""
    real, x = dense(data), dense(fake)
    fixed = np.zeros(data.n_items, bool)
    fixed[data.item_index(targets)] = True
    fixed[attack.selected_items(data, targets)] = True
    filler = (x > 0) & ~fixed
    # match[j, u]: real user u has exactly fake j's ratings on fake j's fillers
    agree = (real[None, :, :] == x[:, None, :]) | ~filler[:, None, :]
    match = agree.all(axis=2)
    assert match.any(axis=1).all()
    eligible = ((real > 0) & ~fixed).sum(axis=1) >= 5
    assert (match & eligible[None, :]).any(axis=1).all()


def test_the_same_seed_gives_the_same_profiles(attack, data, targets, fake):
    again = attack.generate(data, targets, seed=1)
    for name in ("users", "items", "ratings"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fake, name))
    other = attack.generate(data, targets, seed=2)
    assert not np.array_equal(dense(other), dense(fake))


def test_average_profile_length_by_default(data, targets):
    a = AUSHAttack(size=0.05, selected=[0], **TINY)
    assert a.n_filler(data) == round(data.user_counts.mean()) == 10
    fake = a.generate(data, targets, seed=0)
    assert (np.bincount(fake.users) == 10 + 1 + len(targets)).all()


@pytest.mark.parametrize("sampling", ["mean", "popularity"])
def test_weighted_filler_sampling_runs(data, targets, sampling):
    fake = AUSHAttack(size=0.05, filler=4, filler_sampling=sampling, **TINY).generate(
        data, targets, seed=0)
    assert (np.bincount(fake.users) == 4 + 3 + len(targets)).all()


def test_too_long_fillers_for_any_template_are_refused(data, targets):
    longest = int(data.user_counts.max())
    with pytest.raises(ConfigError, match="filler: no real user has"):
        AUSHAttack(filler=longest, **TINY).generate(data, targets)


# ----------------------------------------------------------------------------- selected items
def test_selected_items_in_every_form(data, targets):
    t0, t1 = (int(t) for t in targets)
    as_list = AUSHAttack(selected=[3, 7]).selected_items(data, targets)
    assert list(as_list) == list(data.item_index([3, 7]))
    assert list(AUSHAttack(selected="7, 3").selected_items(data, targets)) == list(as_list)
    mapping = AUSHAttack(selected={t0: [3], str(t1): [7, 3], 999: [1]})
    assert list(mapping.selected_items(data, targets)) == list(as_list)
    assert json.loads(json.dumps(mapping.params()))["selected"]["999"] == [1]
    with pytest.raises(ConfigError, match=f"selected: no selected items for target.*{t1}"):
        AUSHAttack(selected={t0: [3]}).selected_items(data, targets)
    with pytest.raises(ConfigError, match="are also targets"):
        AUSHAttack(selected=[t0, 3]).selected_items(data, targets)
    with pytest.raises(DataError, match="unknown selected item"):
        AUSHAttack(selected=[12345]).selected_items(data, targets)


def test_default_selected_items_on_a_hand_made_example():
    """Item 4 is the target, users 0 and 5 hold it. Liked (>= min(mean 4.0, midpoint 3) = 3)
    by the non-holders: item 0 by none (it is the most popular: bandwagon would take it), item
    1 by users 1, 2, item 2 by users 1, 2, 3, item 3 by users 3, 4 (and by both holders, who do
    not count). Greedy: item 2, then item 1 (users 1, 2 of {1, 2, 3}), then the most popular of
    the rest, item 0 (none left likes item 0 or 3)."""
    rows = [(0, 0, 5), (0, 1, 5), (0, 4, 5), (0, 3, 5),
            (1, 0, 1), (1, 1, 5), (1, 2, 5),
            (2, 0, 1), (2, 1, 5), (2, 2, 4),
            (3, 0, 2), (3, 2, 5), (3, 3, 5),
            (4, 0, 1), (4, 3, 4),
            (5, 4, 5), (5, 3, 5)]
    u, i, r = (np.array(c) for c in zip(*rows, strict=True))
    data = Interactions.from_raw(u, i, r.astype(np.float32), name="hand")
    t = np.array([4])
    assert float(data.ratings.mean()) == 4.0
    assert list(choose_selected(data, t, 1)) == [2]
    assert list(choose_selected(data, t, 2)) == [1, 2]
    assert list(choose_selected(data, t, 3)) == [0, 1, 2]
    with pytest.raises(ConfigError, match="n_selected"):
        choose_selected(data, t, 5)


# ----------------------------------------------------------------------------- the networks
def test_generator_widths_follow_the_official_loop():
    assert generator_widths(400, 3, 3) == [133, 44, 14, 4, 1]
    assert generator_widths(400, 3, 1) == [133, 44, 14, 4, 1]
    assert generator_widths(400, 3, 20) == [133, 44, 14]
    assert generator_widths(2, 3, 1) == [1, 1]
    g = build_generator(50, 3, 400, 3, torch.Generator().manual_seed(0))
    shapes = [tuple(m.weight.shape) for m in g if isinstance(m, torch.nn.Linear)]
    assert shapes == [(133, 50), (44, 133), (14, 44), (4, 14), (1, 4), (3, 1)]
    first = g[0]
    bound = math.sqrt(6 / (50 + 133))
    assert first.weight.abs().max() <= bound and first.bias.abs().max() <= 0.01


def test_loss_terms_on_a_hand_checked_batch():
    ratings = torch.tensor([[4.0, 2.0], [5.0, 5.0]])
    template = torch.tensor([[5.0, 0.0], [5.0, 5.0]])
    zr = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    logits = torch.tensor([[0.0], [math.log(3.0)]])  # D(fake) = 0.5 and 0.75
    terms = generator_losses(ratings, template, zr, logits, r_max=5.0)
    assert terms["adversarial"].item() == pytest.approx((math.log(2) - math.log(0.75)) / 2)
    assert terms["shilling"].item() == pytest.approx((1 + 9 + 0 + 0) / 4)
    assert terms["reconstruction"].item() == pytest.approx((1 + 0) / 2)  # (4-5)², 0 masked
    zr[0, 1] = 1.0  # zero reconstruction of the second item: (2 - 0)² counts
    assert generator_losses(ratings, template, zr, logits, 5.0)["reconstruction"].item() == \
        pytest.approx((1 + 4) / 2)
    zero = torch.zeros(3, 1)
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))


def test_the_shilling_loss_alone_rates_the_selected_items_at_the_top(data, targets):
    """Only L_shill (no adversarial, reconstruction or L2 term): G learns r_max everywhere,
    while the untrained G rates about r_max / 2."""
    only = dict(TINY, adv_weight=0.0, reconstruction_weight=0.0, reg_g=0.0, lr_g=0.1)
    sel = AUSHAttack(filler=4).selected_items(data, targets)
    trained = dense(AUSHAttack(filler=4, **{**only, "epochs": 40}).generate(data, targets))
    untrained = dense(AUSHAttack(filler=4, **{**only, "epochs": 0}).generate(data, targets))
    assert (trained[:, sel] == 5).all()
    assert set(np.unique(untrained[:, sel])) <= {2.0, 3.0}


# ----------------------------------------------------------------------------- real data
FILMTRUST = "aush-shilling"


def _read_filmtrust(data_dir):
    from advrec.data.io import read_delimited, read_split

    folder = data_dir / FILMTRUST
    train, _ = read_split(folder / "filmTrust_train.dat", folder / "filmTrust_test.dat",
                          reader=read_delimited, columns=("user", "item", "rating"), sep="\t")
    with open(folder / "filmTrust_selected_items") as f:
        selected = {int(k): [int(i) for i in v.split(",")]
                    for k, v in (line.split("\t") for line in f.read().splitlines() if line)}
    return train, selected


@pytest.mark.long
def test_aush_against_average_and_bandwagon_on_filmtrust(data_dir):
    """The paper's FilmTrust setting: target item 5 (5 ratings in train) with its official
    selected items (98, 112, 118), 50 fake users, 36 fillers; the victim advrec's MF (defaults,
    seed 0) refitted on train + fake; target HR@10 over the real users without the target, for
    three attack seeds. Long: ~2 minutes (3 GANs of 150 epochs, 10 MF fits).

    Measured (attack seeds 0, 1, 2): clean 0.012; average 0.574 / 0.532 / 0.466; bandwagon
    0.311 / 0.281 / 0.283; AUSH 0.639 / 0.703 / 0.759. The paper's claim (AUSH above average
    and bandwagon) holds on every seed; asserted on the means, and every attack above clean."""
    from advrec.evaluation.shilling import measure_targets
    from advrec.models.mf import MF

    torch.manual_seed(0)
    train, selected = _read_filmtrust(data_dir)
    target = 5
    t = train.item_index([target])
    size = 50 / len(train.active_users)

    def hr10(data) -> float:
        model = MF(seed=0, device="cpu").fit(data, progress=False)
        return measure_targets(model, train, t).hit_ratio(10)

    attacks = {
        "average": make_attack("average", size=size, filler=36),
        "bandwagon": make_attack("bandwagon", size=size, filler=36),
        "aush": make_injection("aush", size=size, filler=36, selected=selected, device="cpu"),
    }
    assert attacks["aush"].n_fake(train) == 50
    out = {"clean": [hr10(train)]}
    for name, attack in attacks.items():
        out[name] = [hr10(train.concat(attack.generate(train, [target], seed=s)))
                     for s in (0, 1, 2)]
    print("\nFilmTrust, target 5, 50 fake users, filler 36, MF victim: target HR@10")
    for name, values in out.items():
        print(f"  {name:9s} mean {np.mean(values):.4f}  per seed "
              f"{' / '.join(f'{v:.4f}' for v in values)}")
    mean = {k: float(np.mean(v)) for k, v in out.items()}
    assert mean["aush"] > mean["average"] and mean["aush"] > mean["bandwagon"]
    assert min(mean["average"], mean["bandwagon"]) > mean["clean"]
