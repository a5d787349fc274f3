"""UserKNN / ItemKNN: hand-computed similarities and predictions (per-pair "rated" and global
neighbourhoods), naive loop references (Hypothesis), and accuracy on ml-100k u1 against the mean
and ItemPop baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advrec.data import Interactions
from advrec.data.datasets import load_split
from advrec.data.filters import binarize
from advrec.errors import ConfigError, DataError
from advrec.evaluation import Evaluator
from advrec.models import MODELS, ItemPop, Recommender
from advrec.models import knn as knn_module
from advrec.models.knn import SIM_EPS, ItemKNN, UserKNN

# 4 users × 5 items (item 4 has no rating); 0 = missing
R = np.array([[5, 3, 0, 1, 0],
              [4, 0, 0, 1, 0],
              [1, 1, 0, 5, 0],
              [0, 0, 5, 4, 0]], dtype=float)


def from_dense(m: np.ndarray, ratings: bool = True) -> Interactions:
    u, i = np.nonzero(m)
    return Interactions(u, i, np.arange(m.shape[0]), np.arange(m.shape[1]),
                        m[u, i] if ratings else None)


def dense_sim(model) -> np.ndarray:
    return model.similarity_matrix.toarray()


# ----------------------------------------------------------------------------- by hand
def test_cosine_similarities_by_hand():
    w = dense_sim(UserKNN(k=3).fit(from_dense(R)))
    assert w[0, 1] == pytest.approx(21 / (math.sqrt(35) * math.sqrt(17)))
    assert w[1, 2] == pytest.approx(9 / (math.sqrt(17) * math.sqrt(27)))
    assert w[0, 3] == pytest.approx(4 / (math.sqrt(35) * math.sqrt(41)))
    assert np.allclose(w, w.T) and np.all(np.diag(w) == 0)
    wi = dense_sim(ItemKNN(k=4).fit(from_dense(R)))
    assert wi[0, 3] == pytest.approx(14 / (math.sqrt(42) * math.sqrt(43)))
    assert wi[0, 2] == 0  # no co-rating user: not a neighbour
    assert wi[4].sum() == 0 and wi[:, 4].sum() == 0  # unrated item


def test_pearson_and_adjusted_cosine_by_hand():
    # user means 3, 2.5, 7/3, 4.5: centred u0 = (2, 0, ·, -2), u1 = (1.5, ·, ·, -1.5)
    w = dense_sim(UserKNN(k=3, similarity="pearson").fit(from_dense(R)))
    assert w[0, 1] == pytest.approx(6 / (math.sqrt(8) * math.sqrt(4.5)))  # = 1
    u2 = np.array([1, 1, 5]) - 7 / 3
    assert w[0, 2] == pytest.approx((2 * u2[0] + 0 * u2[1] - 2 * u2[2])
                                    / (math.sqrt(8) * np.linalg.norm(u2)))
    # adjusted cosine (ItemKNN): items as columns centred by the user means
    wi = dense_sim(ItemKNN(k=4, similarity="adjusted_cosine").fit(from_dense(R)))
    i0 = np.array([2, 1.5, 1 - 7 / 3])  # users 0, 1, 2
    i3 = np.array([-2, -1.5, 5 - 7 / 3, -0.5])  # users 0, 1, 2, 3
    assert wi[0, 3] == pytest.approx(i0 @ i3[:3] / (np.linalg.norm(i0) * np.linalg.norm(i3)))
    # Pearson for ItemKNN centres on the item mean: item 0 = (5, 4, 1) - 10/3
    wp = dense_sim(ItemKNN(k=4, similarity="pearson").fit(from_dense(R)))
    c0, c3 = np.array([5, 4, 1]) - 10 / 3, np.array([1, 1, 5, 4]) - 11 / 4
    assert wp[0, 3] == pytest.approx(c0 @ c3[:3] / (np.linalg.norm(c0) * np.linalg.norm(c3)))


def test_shrinkage_support_and_top_k_truncation():
    w = dense_sim(UserKNN(k=3, shrinkage=2.0).fit(from_dense(R)))
    assert w[0, 1] == pytest.approx(21 / (math.sqrt(35) * math.sqrt(17)) * 2 / (2 + 2))  # 2 common
    assert w[0, 3] == pytest.approx(4 / (math.sqrt(35) * math.sqrt(41)) * 1 / (1 + 2))  # 1 common
    w2 = dense_sim(UserKNN(k=3, min_support=2).fit(from_dense(R)))
    assert w2[0, 3] == 0 and w2[0, 1] > 0  # u0 and u3 co-rate only item 3
    full = dense_sim(UserKNN(k=3).fit(from_dense(R)))
    top1 = dense_sim(UserKNN(k=1).fit(from_dense(R)))
    assert np.array_equal((top1 != 0).sum(1), [1, 1, 1, 1])
    assert np.array_equal(top1.argmax(1), full.argmax(1))
    assert np.allclose(top1.max(1), full.max(1))


def test_ties_at_the_kth_neighbour_go_to_the_lower_id():
    m = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    w = dense_sim(UserKNN(k=1).fit(from_dense(m, ratings=False)))
    assert w[0, 1] > 0 and w[0, 2] == 0  # u1 and u2 tie for u0: u1 kept
    assert (w[3] == 0).all()  # u3 shares nothing with anyone


def test_global_predictions_by_hand():
    """neighbourhood="global" (the previous default): numbers unchanged."""
    data = from_dense(R)
    user = UserKNN(k=3, neighbourhood="global").fit(data)
    s10 = 21 / (math.sqrt(35) * math.sqrt(17))
    s12 = 9 / (math.sqrt(17) * math.sqrt(27))
    # u1 on i1: raters u0 (3 − 3 = 0) and u2 (1 − 7/3) among u1's neighbours
    expected = 2.5 + (s10 * 0 + s12 * (1 - 7 / 3)) / (s10 + s12)
    item = ItemKNN(k=4, neighbourhood="global").fit(data)
    # u3 on i0: i0's only neighbour u3 rated is i3 (r = 4, item mean 11/4); base r̄_i0 = 10/3
    pred = item.predict([3, 0, 0], [0, 4, 2])
    assert user.predict([1], [1])[0] == pytest.approx(expected)
    assert pred[0] == pytest.approx(10 / 3 + (4 - 11 / 4))
    assert pred[1] == pytest.approx(3.0)  # unrated item: the user's mean
    assert user.predict([0], [4])[0] == pytest.approx(3.0)  # nobody rated it: r̄_u
    assert pred[2] == pytest.approx(5 + (1 - 11 / 4))  # i2's neighbour i3, rated 1 by u0
    clipped = UserKNN(k=3, neighbourhood="global").fit(
        from_dense(np.array([[5, 5, 0], [1, 5, 1], [5, 0, 0]], float)))
    assert 1.0 <= clipped.predict([2], [2])[0] <= 5.0
    # k=1: u0's only neighbour u1 did not rate i2 → r̄_u; i0's only neighbour i1 not rated by u3
    assert UserKNN(k=1, neighbourhood="global").fit(data).predict([0], [2])[0] == 3.0
    assert ItemKNN(k=1, neighbourhood="global").fit(data).predict([3], [0])[0] == pytest.approx(
        10 / 3)


def test_rated_user_predictions_by_hand():
    """Herlocker et al.: the k users most similar to u among those who rated i."""
    data = from_dense(R)
    s03, s13 = 4 / math.sqrt(35 * 41), 4 / math.sqrt(17 * 41)
    s23 = 20 / math.sqrt(27 * 41)
    one = UserKNN(k=1).fit(data)
    # u0 on i2: u0's most similar user (u1, 0.86) did not rate i2 and is skipped; the only rater
    # u3 (similarity 0.11, r = 5, r̄ = 4.5) is the neighbour
    assert one.predict([0], [2])[0] == pytest.approx(3 + (5 - 4.5))
    # u0 on i1 (a training pair): raters u0 (self, never a neighbour) and u2 (1 − 7/3)
    assert one.predict([0], [1])[0] == pytest.approx(3 + (1 - 7 / 3))
    # u3 on i0, k=2: raters u0 (0.11), u1 (0.15), u2 (0.60) → u2 and u1
    two = UserKNN(k=2).fit(data).predict([3], [0])[0]
    assert two == pytest.approx(4.5 + (s23 * (1 - 7 / 3) + s13 * (4 - 2.5)) / (s23 + s13))
    three = UserKNN(k=3).fit(data).predict([3], [0])[0]
    devs = s03 * (5 - 3) + s13 * (4 - 2.5) + s23 * (1 - 7 / 3)
    assert three == pytest.approx(4.5 + devs / (s03 + s13 + s23))
    assert one.predict([0], [4])[0] == pytest.approx(3.0)  # nobody rated it: r̄_u
    clipped = UserKNN(k=3).fit(from_dense(np.array([[5, 5, 0], [1, 5, 1], [5, 0, 0]], float)))
    assert 1.0 <= clipped.predict([2], [2])[0] <= 5.0


def test_rated_item_predictions_by_hand():
    """Sarwar et al.: weighted sum of u's ratings of the k items most similar to i that u rated,
    not centred on the target item's mean."""
    data = from_dense(R)
    s01, s13 = 16 / math.sqrt(42 * 10), 8 / math.sqrt(10 * 43)
    one, two = ItemKNN(k=1).fit(data), ItemKNN(k=2).fit(data)
    # u3 on i0: i0's most similar item (i1, 0.78) was not rated by u3 and is skipped; i2 has
    # similarity 0 with i0, so i3 (0.33, rated 4) is the only neighbour: 4, not r̄_i0-centred
    assert one.predict([3], [0])[0] == pytest.approx(4.0)
    # u1 on i1: u1 rated i0 (4; similarity 0.78) and i3 (1; 0.39)
    assert one.predict([1], [1])[0] == pytest.approx(4.0)
    assert two.predict([1], [1])[0] == pytest.approx((s01 * 4 + s13 * 1) / (s01 + s13))
    # no positive neighbour among u's items (i4 unrated): the user's mean; then the global mean
    assert two.predict([3, 0], [4, 4]).tolist() == pytest.approx([4.5, 3.0])
    assert np.allclose(two.full_similarity_, two.full_similarity_.T)
    assert two.full_similarity_[0, 1] == pytest.approx(s01)
    assert ItemKNN(k=2, neighbourhood="global").fit(data).full_similarity_ is None


def test_rated_rule_skips_negative_similarities():
    # Pearson: u0 and u2 are anti-correlated; u1 is u0's only positive neighbour
    m = np.array([[5, 1, 0, 3], [4, 2, 0, 3], [1, 5, 5, 3], [2, 4, 1, 3]], float)
    model = UserKNN(k=3, similarity="pearson").fit(from_dense(m))
    full = model.full_similarity_
    assert full[0, 2] < 0 and full[0, 3] < 0 and full[0, 1] > 0
    # i2 was rated by u2 and u3 only, both negatively similar to u0: no neighbour → r̄_u0
    assert model.predict([0], [2])[0] == pytest.approx(3.0)
    glob = UserKNN(k=3, similarity="pearson", neighbourhood="global").fit(from_dense(m))
    assert glob.predict([0], [2])[0] != pytest.approx(3.0)  # global keeps negative neighbours


def test_rated_chunking_does_not_change_predictions(monkeypatch):
    rng = np.random.default_rng(3)
    m = rng.integers(1, 6, (30, 25)) * (rng.random((30, 25)) < 0.4)
    users, items = np.repeat(np.arange(30), 25), np.tile(np.arange(25), 30)
    for cls in (UserKNN, ItemKNN):
        model = cls(k=3).fit(from_dense(m.astype(float)))
        whole = model.predict(users, items)
        monkeypatch.setattr(knn_module, "_PAIR_ENTRIES", 7)  # many chunks, most without top-k
        assert np.allclose(model.predict(users, items), whole, rtol=0, atol=1e-12)  # sum order
        monkeypatch.undo()


def test_top_n_scores_are_similarity_weighted_sums():
    data = from_dense(R)
    x = (R > 0).astype(float)
    for model in (UserKNN(k=2), UserKNN(k=2, score_with="ratings"), ItemKNN(k=2)):
        model.fit(data)
        w = dense_sim(model)
        xm = R if model.score_with == "ratings" else x
        expected = w @ xm if isinstance(model, UserKNN) else xm @ w.T
        assert np.allclose(model.score().numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------------- naive reference
def naive_similarities(m: np.ndarray, by_user: bool, similarity: str, shrinkage: float,
                       min_support: int) -> np.ndarray:
    """Pairwise loops over the definitions (entity rows; 0 = missing)."""
    e = m if by_user else m.T
    rated = e > 0
    n = e.shape[0]

    def mean(v, mask):
        return v[mask].mean() if mask.any() else m[m > 0].mean()

    c = e.copy()
    for a in range(n):
        for f in range(e.shape[1]):
            if rated[a, f]:
                if similarity == "pearson":
                    c[a, f] -= mean(e[a], rated[a])
                elif similarity == "adjusted_cosine":
                    c[a, f] -= mean(e[:, f], rated[:, f])
    s = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            common = int((rated[a] & rated[b]).sum())
            na, nb = math.sqrt((c[a] ** 2).sum()), math.sqrt((c[b] ** 2).sum())
            if a == b or common < min_support or na == 0 or nb == 0:
                continue
            v = (c[a] * c[b]).sum() / (na * nb) * common / (common + shrinkage)
            s[a, b] = 0.0 if abs(v) < SIM_EPS else v
    return s


def naive_predict(m: np.ndarray, w: np.ndarray, by_user: bool, u: int, i: int) -> float:
    rated = m > 0
    gmean = m[rated].mean()
    umean = [m[v][rated[v]].mean() if rated[v].any() else gmean for v in range(m.shape[0])]
    imean = [m[:, j][rated[:, j]].mean() if rated[:, j].any() else gmean
             for j in range(m.shape[1])]
    num = den = 0.0
    if by_user:
        base = umean[u]
        for v in range(m.shape[0]):
            if w[u, v] != 0 and rated[v, i]:
                num += w[u, v] * (m[v, i] - umean[v])
                den += abs(w[u, v])
    else:
        base = imean[i] if rated[:, i].any() else umean[u]
        for j in range(m.shape[1]):
            if w[i, j] != 0 and rated[u, j]:
                num += w[i, j] * (m[u, j] - imean[j])
                den += abs(w[i, j])
    pred = base + num / den if den > 0 else base
    return min(max(pred, m[rated].min()), m[rated].max())


def naive_predict_rated(m: np.ndarray, full: np.ndarray, by_user: bool, k: int, u: int,
                        i: int) -> float:
    """The textbook rules: top-k positive similarities among i's raters / u's rated items."""
    rated = m > 0
    gmean = m[rated].mean()
    umean = [m[v][rated[v]].mean() if rated[v].any() else gmean for v in range(m.shape[0])]
    if by_user:
        cands, sims = [v for v in range(m.shape[0]) if rated[v, i]], full[u]
        value, offset = (lambda v: m[v, i] - umean[v]), umean[u]
    else:
        cands, sims = [j for j in range(m.shape[1]) if rated[u, j]], full[i]
        value, offset = (lambda j: m[u, j]), 0.0
    top = sorted((c for c in cands if sims[c] > 0), key=lambda c: (-sims[c], c))[:k]
    pred = (offset + sum(sims[c] * value(c) for c in top) / sum(sims[c] for c in top)
            if top else umean[u])
    return min(max(pred, m[rated].min()), m[rated].max())


@st.composite
def rating_matrices(draw):
    n_users, n_items = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    cells = draw(st.lists(st.sampled_from([0, 0, 1, 2, 3, 4, 5]),
                          min_size=n_users * n_items, max_size=n_users * n_items))
    m = np.array(cells, dtype=float).reshape(n_users, n_items)
    if not (m > 0).any():
        m[0, 0] = 3.0
    return m


@settings(max_examples=60, deadline=None)
@given(m=rating_matrices(), by_user=st.booleans(),
       similarity=st.sampled_from(["cosine", "pearson", "adjusted_cosine"]),
       k=st.integers(1, 6), shrinkage=st.sampled_from([0.0, 2.5]),
       min_support=st.integers(1, 2), neighbourhood=st.sampled_from(["rated", "global"]))
def test_against_naive_loops(m, by_user, similarity, k, shrinkage, min_support, neighbourhood):
    cls = UserKNN if by_user else ItemKNN
    model = cls(k=k, similarity=similarity, shrinkage=shrinkage, min_support=min_support,
                neighbourhood=neighbourhood)
    model.fit(from_dense(m))
    ref = naive_similarities(m, by_user, similarity, shrinkage, min_support)
    w = dense_sim(model)
    for row, ref_row in zip(w, ref, strict=True):
        kept = np.flatnonzero(row)
        assert np.allclose(row[kept], ref_row[kept], atol=1e-9)  # kept values are the sims
        n_valid = int((ref_row != 0).sum())
        assert len(kept) == min(k, n_valid)
        others = np.setdiff1d(np.flatnonzero(ref_row), kept)
        if len(kept) and len(others):  # a true top-k: nothing left out beats what is kept
            assert ref_row[others].max() <= row[kept].min() + 1e-9
    users, items = (a.ravel() for a in np.meshgrid(np.arange(m.shape[0]),
                                                   np.arange(m.shape[1]), indexing="ij"))
    if neighbourhood == "rated":  # every similarity, float32; the reference ranks by the same
        full = model.full_similarity_.astype(np.float64)
        assert np.allclose(full, ref, atol=1e-6)
        expected = [naive_predict_rated(m, full, by_user, k, u, i)
                    for u, i in zip(users, items, strict=True)]
    else:
        expected = [naive_predict(m, w, by_user, u, i) for u, i in zip(users, items, strict=True)]
    assert np.allclose(model.predict(users, items), expected, atol=1e-9)
    if k >= max(m.shape):  # no truncation: identical to the naive similarities
        assert np.allclose(w, ref, atol=1e-9)


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("bad", [dict(k=0), dict(k=-3), dict(k=2.5), dict(similarity="jaccard"),
                                 dict(shrinkage=-1.0), dict(min_support=0),
                                 dict(score_with="both"), dict(neighbourhood="local")])
def test_bad_parameters_raise(bad):
    with pytest.raises(ConfigError):
        UserKNN(**bad).fit(from_dense(R))
    with pytest.raises(ConfigError):
        ItemKNN(**bad).fit(from_dense(R))


@pytest.mark.parametrize("similarity", ["pearson", "adjusted_cosine"])
def test_centred_similarities_on_implicit_data_raise(similarity):
    implicit = from_dense(R, ratings=False)
    for cls in (UserKNN, ItemKNN):
        with pytest.raises(ConfigError, match="implicit"):
            cls(similarity=similarity).fit(implicit)
    assert np.allclose(UserKNN().fit(implicit).predict([0], [2]), 1.0)  # cosine works


def test_rated_neighbourhood_size_limit(monkeypatch):
    monkeypatch.setattr(knn_module, "MAX_DENSE_ENTITIES", 4)
    UserKNN().fit(from_dense(R))  # 4 users: fine
    with pytest.raises(ConfigError, match="neighbourhood='global'"):
        ItemKNN().fit(from_dense(R))  # 5 items
    ItemKNN(neighbourhood="global").fit(from_dense(R))


def test_rule_switched_after_fit():
    fitted_global = UserKNN(neighbourhood="global").fit(from_dense(R))
    with pytest.raises(ConfigError, match="refit"):  # no full similarities were kept
        fitted_global.set_params(neighbourhood="rated").predict([0], [2])
    rated = UserKNN(k=1).fit(from_dense(R))
    assert rated.set_params(neighbourhood="global").predict([0], [2])[0] == 3.0


def test_bad_prediction_pairs_raise():
    model = UserKNN().fit(from_dense(R))
    with pytest.raises(DataError, match="equal length"):
        model.predict([0, 1], [0])
    with pytest.raises(DataError, match="0..4"):
        model.predict([0], [5])


def test_save_load_round_trip(tmp_path, monkeypatch):
    for cls, rule in ((UserKNN, "rated"), (ItemKNN, "rated"), (UserKNN, "global")):
        monkeypatch.setitem(MODELS, cls.name, cls)  # until the registry lists them
        model = cls(k=2, similarity="pearson", shrinkage=1.0, neighbourhood=rule)
        model.fit(from_dense(R))
        loaded = Recommender.load(model.save(tmp_path / f"{cls.name}-{rule}"))
        assert type(loaded) is cls and loaded.get_params() == model.get_params()
        users, items = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
        assert np.array_equal(loaded.predict(users, items), model.predict(users, items))
        assert np.array_equal(loaded.score().numpy(), model.score().numpy())
        assert (loaded.similarity_matrix != model.similarity_matrix).nnz == 0
        if rule == "rated":  # recomputed on load, not saved
            assert np.array_equal(loaded.full_similarity_, model.full_similarity_)


# ----------------------------------------------------------------------------- ml-100k u1
@pytest.fixture(scope="module")
def u1(data_dir):
    return load_split("ml-100k", fold="u1")


def rmse(model, test: Interactions) -> float:
    return float(np.sqrt(np.mean((model.predict(test.users, test.items) - test.ratings) ** 2)))


# u1 RMSE as measured for docs/models.md (deterministic fits)
U1_RMSE = [
    (UserKNN(), 0.958), (ItemKNN(), 1.009),
    (UserKNN(similarity="pearson", shrinkage=100), 0.948),
    (ItemKNN(similarity="adjusted_cosine"), 0.952),
    (UserKNN(neighbourhood="global"), 0.983), (ItemKNN(neighbourhood="global"), 0.957),
]


def test_ml100k_rmse_and_top_n(u1):
    train, test = u1
    item_mean = np.bincount(train.items, train.ratings, train.n_items) / np.maximum(
        train.item_counts, 1)
    item_mean[train.item_counts == 0] = train.ratings.mean()
    item_baseline = float(np.sqrt(np.mean((item_mean[test.items] - test.ratings) ** 2)))
    evaluator = Evaluator(train, binarize(test, 4.0), ks=(10,),
                          metrics=("precision", "recall"), coverage=False)
    pop = evaluator.evaluate(ItemPop().fit(train)).summary
    models = []
    for template, expected in U1_RMSE:
        model = type(template)(**template.get_params()).fit(train)
        err = rmse(model, test)
        assert abs(err - expected) < 0.002 and err < item_baseline - 0.02, (model, err)
        models.append(model)
    for model, same_global in ((models[0], models[4]), (models[1], models[5])):
        got = evaluator.evaluate(model).summary
        assert got["precision@10"] > pop["precision@10"] + 0.05, (model, got, pop)
        assert got["recall@10"] > pop["recall@10"], (model, got, pop)
        # top-N scores use the global neighbourhoods whatever the rating-prediction rule
        assert np.array_equal(model.score().numpy(), same_global.score().numpy())
    again = UserKNN().fit(train)
    assert (again.similarity_matrix != models[0].similarity_matrix).nnz == 0
    assert np.array_equal(again.predict(test.users, test.items),
                          models[0].predict(test.users, test.items))
