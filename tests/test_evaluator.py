"""Evaluator: hand-computed ties, a naive per-user reference, protocols, errors, significance."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from advrec.data import Interactions
from advrec.errors import ConfigError, DataError
from advrec.evaluation import (
    ALL_METRICS,
    EvaluationResult,
    Evaluator,
    compare_results,
    paired_test,
)
from advrec.evaluation.evaluator import auto_chunk_size

L3 = math.log2(3)


def split(state: np.ndarray) -> tuple[Interactions, Interactions]:
    """Train/test from a users x items matrix: 1 = training pair, 2 = test pair."""
    n_users, n_items = state.shape
    ids = {"user_ids": np.arange(n_users), "item_ids": np.arange(n_items)}
    tu, ti = np.nonzero(state == 1)
    su, si = np.nonzero(state == 2)
    return Interactions.from_raw(tu, ti, **ids), Interactions.from_raw(su, si, **ids)


def fixed(scores) -> callable:
    """A scorer returning rows of a fixed score matrix."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    return lambda users: s[users]


# ----------------------------------------------------------------------------- naive reference
def naive_user(s: np.ndarray, cand: np.ndarray, rel: np.ndarray, ks) -> dict[str, float]:
    """Metrics of one user by the definitions: build the pessimistic ordering and read it."""
    is_rel = np.isin(cand, rel)
    order = np.lexsort((is_rel, -s[cand]))  # by score descending, non-relevant first on ties
    pos = np.sort(np.flatnonzero(is_rel[order]))
    neg = cand[~is_rel]
    out = {}
    for k in ks:
        hits = pos[pos < k]
        idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(rel))))
        out[f"hr@{k}"] = float(len(hits) > 0)
        out[f"ndcg@{k}"] = sum(1 / math.log2(p + 2) for p in hits) / idcg
        out[f"precision@{k}"] = len(hits) / k
        out[f"recall@{k}"] = len(hits) / len(rel)
        out[f"mrr@{k}"] = 1 / (pos[0] + 1) if pos[0] < k else 0.0
        out[f"map@{k}"] = sum((j + 1) / (p + 1) for j, p in enumerate(hits)) / min(k, len(rel))
    if len(neg):
        out["auc"] = float(np.mean([1 - np.sum(s[neg] >= s[i]) / len(neg) for i in rel]))
    else:
        out["auc"] = 1.0
    return out


def naive_evaluate(state: np.ndarray, scores: np.ndarray, ks, candidates=None):
    """Per-user loop over the users with a test item; candidates default to non-training items."""
    users = np.flatnonzero((state == 2).any(1))
    rows = []
    for j, u in enumerate(users):
        cand = np.flatnonzero(state[u] != 1) if candidates is None else candidates[j]
        rows.append(naive_user(scores[u], cand, np.flatnonzero(state[u] == 2), ks))
    return users, {m: np.array([r[m] for r in rows]) for m in rows[0]}


def naive_coverage(state: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Items scoring at least some user's k-th best candidate score (ties included, -inf never)."""
    covered = set()
    for u in np.flatnonzero((state == 2).any(1)):
        cand = np.flatnonzero(state[u] != 1)
        kth = np.sort(scores[u, cand])[::-1][min(k, len(cand)) - 1]
        covered |= {i for i in cand if scores[u, i] >= kth and scores[u, i] > -np.inf}
    return len(covered) / state.shape[1]


def assert_matches(result, users, expected) -> None:
    np.testing.assert_array_equal(result.users, users)
    for name, values in expected.items():
        np.testing.assert_allclose(result.per_user[name], values, atol=1e-12, err_msg=name)


# ----------------------------------------------------------------------------- hand-computed cases
def test_tie_with_test_item_counts_against_it():
    # items 1, 2, 3 tie at 0.5; item 0 (highest) is a training item, masked; test item = 2
    state = np.array([[1, 0, 2, 0, 0]])
    res = Evaluator(*split(state), ks=(1, 2, 3)).evaluate(fixed([[0.9, 0.5, 0.5, 0.5, 0.1]]))
    s = res.summary
    assert (s["hr@1"], s["hr@2"], s["hr@3"]) == (0.0, 0.0, 1.0)  # rank = 2 (items 1 and 3)
    assert s["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert s["mrr@3"] == pytest.approx(1 / 3)
    assert s["auc"] == pytest.approx(1 - 2 / 3)  # 3 non-relevant candidates: 1, 3, 4
    assert s["coverage@1"] == pytest.approx(3 / 5)  # items 1, 2, 3 all tie for the top


def test_masked_training_item_does_not_count():
    state = np.array([[1, 2, 0]])
    res = Evaluator(*split(state), ks=(1,)).evaluate(fixed([[5.0, 1.0, 0.0]]))
    assert res.summary["hr@1"] == 1.0 and res.summary["auc"] == 1.0


def test_multiple_relevant_tied_with_non_relevant():
    # train {0}; test {1, 2} at 2.0, tied with non-relevant item 3; item 4 below.
    # pessimistic ordering of candidates: 3, 1, 2, 4 -> relevant positions {1, 2}
    state = np.array([[1, 2, 2, 0, 0, 0]])
    scores = [[3.0, 2.0, 2.0, 2.0, 1.0, 0.0]]
    s = Evaluator(*split(state), ks=(1, 2, 3)).evaluate(fixed(scores)).summary
    assert (s["hr@1"], s["hr@2"]) == (0.0, 1.0)
    assert (s["precision@2"], s["precision@3"]) == pytest.approx((1 / 2, 2 / 3))
    assert (s["recall@2"], s["recall@3"]) == pytest.approx((1 / 2, 1.0))
    assert s["ndcg@3"] == pytest.approx((1 / L3 + 1 / 2) / (1 + 1 / L3))
    assert s["mrr@3"] == pytest.approx(1 / 2)
    assert s["map@3"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["auc"] == pytest.approx(1 - 1 / 3)  # per relevant item: 1 of 3 non-relevant >= it


def test_relevant_items_tied_with_each_other_get_distinct_positions():
    state = np.array([[2, 2, 0]])
    s = Evaluator(*split(state), ks=(1, 2)).evaluate(fixed([[1.0, 1.0, 0.0]])).summary
    assert (s["precision@1"], s["precision@2"], s["ndcg@2"], s["auc"]) == (1.0, 1.0, 1.0, 1.0)


def test_per_user_values_are_aligned_with_users():
    state = np.array([[1, 0, 2, 0], [0, 0, 0, 1], [2, 1, 0, 0]])  # user 1 has no test item
    res = Evaluator(*split(state), ks=(1,)).evaluate(fixed(np.tile([4.0, 3, 2, 1], (3, 1))))
    np.testing.assert_array_equal(res.users, [0, 2])
    np.testing.assert_array_equal(res.per_user["hr@1"], [0.0, 1.0])
    assert res.n_users == 2


# ------------------------------------------------------------------------ naive-reference property
@st.composite
def evaluation_cases(draw):
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(2, 9))
    state = draw(arrays(np.int8, (n_users, n_items), elements=st.integers(0, 2)))
    if draw(st.booleans()):  # leave-one-out: exactly one test item per user (the fast path)
        state[state == 2] = 0
        state[np.arange(n_users), draw(arrays(np.int64, n_users,
                                              elements=st.integers(0, n_items - 1)))] = 2
    elif not (state == 2).any():
        state[draw(st.integers(0, n_users - 1)), draw(st.integers(0, n_items - 1))] = 2
    values = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0])  # few values: many ties
    scores = draw(arrays(np.float32, (n_users, n_items), elements=values))
    return state, scores, draw(st.integers(1, 8))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evaluation_cases())
@example((np.array([[0, 0] + [2] * 6, [2] * 8], dtype=np.int8),  # chunk 1 vs 256: 1 ulp apart
          np.full((2, 8), -np.inf, dtype=np.float32), 1))
def test_chunked_evaluator_matches_naive_reference(case):
    state, scores, chunk = case
    ks = (1, 2, 4, 20)
    train, test = split(state)
    res = Evaluator(train, test, ks=ks, chunk_size=chunk).evaluate(fixed(scores))
    users, expected = naive_evaluate(state, scores, ks)
    assert_matches(res, users, expected)
    for k in ks:
        assert res.summary[f"coverage@{k}"] == pytest.approx(naive_coverage(state, scores, k))
    # without AUC the counts saturate at the largest cut-off (4 < most rows' item counts here)
    top_only = Evaluator(train, test, ks=(1, 2, 4), chunk_size=chunk, coverage=False,
                         metrics=("hr", "ndcg", "precision", "recall", "mrr", "map"))
    for name, values in top_only.evaluate(fixed(scores)).per_user.items():
        np.testing.assert_array_equal(values, res.per_user[name], err_msg=name)
    other = Evaluator(train, test, ks=ks, chunk_size=256, coverage=False).evaluate(fixed(scores))
    for name, values in other.per_user.items():
        # equal up to the order of float64 sums, which vectorised reductions pick by chunk shape
        np.testing.assert_allclose(values, res.per_user[name], rtol=1e-12, atol=0, err_msg=name)


@settings(max_examples=60, deadline=None)
@given(evaluation_cases(), st.integers(1, 5))
def test_training_items_never_in_top_k(case, k):
    state, scores, chunk = case
    train, test = split(state)
    ev = Evaluator(train, test, chunk_size=chunk)
    top = ev.top_k(fixed(scores), k)
    assert top.shape == (ev.n_users, min(k, state.shape[1]))
    for row, u in zip(top, ev.users, strict=True):
        ids = row[row >= 0]
        assert not (state[u, ids] == 1).any()
        assert len(set(ids)) == len(ids)
        cand = np.sort(scores[u, state[u] != 1])[::-1]
        finite = cand[cand > -np.inf][:k]
        np.testing.assert_array_equal(scores[u, ids], finite)  # the best k, best first


# ----------------------------------------------------------------------------- sampled protocol
def random_split(n_users=40, n_items=300, seed=0, loo=True):
    rng = np.random.default_rng(seed)
    state = (rng.random((n_users, n_items)) < 0.1).astype(np.int8)
    if loo:
        state[np.arange(n_users), rng.integers(0, n_items, n_users)] = 2
    else:
        state[rng.random((n_users, n_items)) < 0.05] = 2
    return state, rng.normal(size=(n_users, n_items)).astype(np.float32)


def test_sampled_protocol_matches_naive_reference_on_its_candidates():
    state, scores = random_split(loo=False)
    ev = Evaluator(*split(state), ks=(1, 5, 10), protocol="sampled", n_negatives=20, chunk_size=7)
    res = ev.evaluate(fixed(scores))
    neg = ev.negatives
    cands = [np.concatenate([np.flatnonzero(state[u] == 2), row]) for u, row in zip(ev.users, neg,
                                                                                    strict=True)]
    users, expected = naive_evaluate(state, scores, (1, 5, 10), candidates=cands)
    assert_matches(res, users, expected)


def test_sampled_negatives_are_valid_distinct_and_seeded():
    state, scores = random_split()
    train, test = split(state)
    a = Evaluator(train, test, protocol="sampled", n_negatives=50, seed=1)
    b = Evaluator(train, test, protocol="sampled", n_negatives=50, seed=1, chunk_size=3)
    c = Evaluator(train, test, protocol="sampled", n_negatives=50, seed=2)
    np.testing.assert_array_equal(a.negatives, b.negatives)
    assert not np.array_equal(a.negatives, c.negatives)
    for u, row in zip(a.users, a.negatives, strict=True):
        assert (row >= 0).all() and len(set(row)) == len(row)
        assert (state[u, row] == 0).all()  # neither training nor test items
    ra, rb = a.evaluate(fixed(scores)), b.evaluate(fixed(scores))
    for name in ra.per_user:
        np.testing.assert_array_equal(ra.per_user[name], rb.per_user[name])


def test_sampled_ranks_are_at_most_n_negatives_and_labelled():
    state, scores = random_split()
    n = 10
    res = Evaluator(*split(state), ks=(n, n + 1), protocol="sampled", n_negatives=n).evaluate(
        fixed(-np.abs(scores) - 10.0))  # test items score low: ranks near the bottom
    assert (res.per_user[f"hr@{n + 1}"] == 1.0).all()  # rank <= n_negatives for every user
    assert res.summary[f"hr@{n}"] < 1.0
    assert res.protocol == "sampled" and res.n_negatives == n
    assert "NOT full ranking" in res.table() and "sampled" in repr(res)
    assert not any(k.startswith("coverage") for k in res.summary)


def test_sampled_with_too_few_items_uses_what_is_left():
    state = np.array([[1, 2, 0, 0], [0, 2, 0, 0]])
    ev = Evaluator(*split(state), ks=(1, 3), protocol="sampled", n_negatives=5)
    assert ((ev.negatives >= 0).sum(1) == [2, 3]).all()
    res = ev.evaluate(fixed([[0.0, 1.0, 2.0, 3.0]] * 2))
    np.testing.assert_allclose(res.per_user["auc"], [0.0, 1 / 3])  # 2 of 2, 2 of 3 above
    np.testing.assert_allclose(res.per_user["hr@3"], [1.0, 1.0])


# ----------------------------------------------------------------------------- interface and errors
class TinyModel:
    """Anything with ``score(users)`` is a model to the evaluator."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = torch.as_tensor(scores, dtype=torch.float64)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores[users]


def test_model_and_callable_give_same_result():
    state, scores = random_split(loo=False)
    ev = Evaluator(*split(state), ks=(5,), device="cpu")
    a, b = ev.evaluate(TinyModel(scores)), ev.evaluate(fixed(scores))
    assert a.summary == pytest.approx(b.summary)


def test_score_dtypes_and_layouts_do_not_matter():
    state, scores = random_split(loo=False)
    ints = np.round(scores * 4).astype(np.int64)  # many ties
    ev = Evaluator(*split(state), ks=(1, 10), chunk_size=16)
    ref = ev.evaluate(fixed(ints.astype(np.float32)))
    t = torch.as_tensor(ints)
    for scorer in (lambda u: t[u], lambda u: t[u].double().T.contiguous().T,
                   lambda u: t[u].numpy()):
        res = ev.evaluate(scorer)
        for name, values in ref.per_user.items():
            np.testing.assert_array_equal(res.per_user[name], values)


@pytest.mark.parametrize("loo", [True, False])
def test_torch_only_path_matches_numpy_path(monkeypatch, loo):
    """The GPU code path (torch.sort / torch comparison instead of the compiled counter) run on
    CPU gives identical results."""
    import advrec.evaluation.evaluator as module

    state, scores = random_split(loo=loo)
    for coverage in (False, True):
        ev = Evaluator(*split(state), ks=(1, 10), chunk_size=9, coverage=coverage)
        ref = ev.evaluate(fixed(scores))
        with monkeypatch.context() as m:
            m.setattr(module, "_sort_rows", lambda x, inplace=False: torch.sort(x, dim=1).values)
            m.setattr(module, "_count_ge", lambda s, t: (s >= t[:, None]).sum(1))
            m.setattr(module, "_COUNT_EXACT", 0)
            res = ev.evaluate(fixed(scores))
        assert res.summary == ref.summary


def test_result_serialises_and_round_trips():
    state, scores = random_split()
    res = Evaluator(*split(state), ks=(5, 10)).evaluate(fixed(scores))
    d = json.loads(json.dumps(res.to_dict()))
    back = EvaluationResult.from_dict(d)
    assert back.summary == res.summary and back.ks == (5, 10) and back.protocol == "full"
    np.testing.assert_array_equal(back.per_user["ndcg@10"], res.per_user["ndcg@10"])
    assert "per_user" not in res.to_dict(per_user=False)
    table = res.table()
    assert "full ranking" in table and "| hr@10 |" in table and "coverage@10" in table


def test_leakage_is_an_error_naming_a_pair():
    train = Interactions.from_raw([10, 11], ["a", "b"], user_ids=[10, 11], item_ids=["a", "b"])
    test = Interactions.from_raw([11], ["b"], user_ids=[10, 11], item_ids=["a", "b"])
    with pytest.raises(DataError, match=r"leakage.*user 11, item 'b'"):
        Evaluator(train, test)


def test_test_outside_train_id_space_is_an_error():
    train = Interactions.from_raw([0, 1], [0, 1], user_ids=np.arange(2), item_ids=np.arange(3))
    test = Interactions.from_raw([0], [2], user_ids=np.arange(2), item_ids=np.arange(4))
    with pytest.raises(DataError, match="id space"):
        Evaluator(train, test)
    with pytest.raises(DataError, match="no interactions"):
        Evaluator(train, train.subset(np.zeros(2, bool)))


def test_bad_options_are_config_errors():
    train, test = split(np.array([[1, 2, 0]]))
    for kwargs in ({"protocol": "loo"}, {"ks": (0,)}, {"metrics": ("hr", "ndgc")},
                   {"chunk_size": 0}, {"chunk_size": 2.5}, {"chunk_size": True},
                   {"protocol": "sampled", "n_negatives": 0}):
        with pytest.raises(ConfigError):
            Evaluator(train, test, **kwargs)
    with pytest.raises(ConfigError):
        Evaluator(train, test).evaluate(42)


def test_automatic_chunk_size_grows_only_on_small_catalogues():
    assert auto_chunk_size(3706) == 2**22 // 3706 == 1131  # ML-1M
    assert auto_chunk_size(38_048) == auto_chunk_size(10**7) == 256  # yelp2018 and beyond
    assert auto_chunk_size(1) == 2**22
    train, test = split(np.array([[1, 2, 0]]))
    assert Evaluator(train, test).chunk_size == 2**22 // 3
    assert Evaluator(train, test, chunk_size=5).chunk_size == 5


def test_bad_scores_are_data_errors():
    ev = Evaluator(*split(np.array([[1, 2, 0]])))
    with pytest.raises(DataError, match="shape"):
        ev.evaluate(lambda users: torch.zeros(len(users), 2))
    with pytest.raises(DataError, match="NaN"):
        ev.evaluate(lambda users: torch.tensor([[0.0, float("nan"), 1.0]]))


# ----------------------------------------------------------------------------- significance
def test_paired_test_identical_arrays_give_p_one():
    a = np.random.default_rng(0).random(50)
    for test in ("ttest", "wilcoxon"):
        out = paired_test(a, a.copy(), test)
        assert out == {"statistic": 0.0, "p_value": 1.0, "mean_diff": 0.0, "n": 50}


def test_paired_test_detects_a_clear_shift():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a - 0.1 + rng.normal(0, 0.02, 200)
    for test in ("ttest", "wilcoxon"):
        out = paired_test(a, b, test)
        assert out["p_value"] < 1e-10 and out["mean_diff"] == pytest.approx(0.1, abs=0.01)
    assert paired_test(a, b)["statistic"] > 0
    with pytest.raises(ConfigError):
        paired_test(a, b, "sign")
    with pytest.raises(DataError):
        paired_test(a, b[:-1])


def test_compare_results_aligns_users():
    state, scores = random_split(loo=False)
    scores = scores + 2.0 * (state == 2)  # informative: test items score higher
    train, test = split(state)
    full = Evaluator(train, test, ks=(10,))
    good, bad = full.evaluate(fixed(scores)), full.evaluate(fixed(-scores))
    keep = test.users != test.users.max()  # the second result misses one user
    part = Evaluator(train, test.subset(keep), ks=(10,)).evaluate(fixed(-scores))
    out = compare_results(good, part, "ndcg@10")
    assert out["n"] == good.n_users - 1
    exp = paired_test(good.per_user["ndcg@10"][:-1], bad.per_user["ndcg@10"][:-1])
    assert out == pytest.approx(exp)
    assert good.compare(bad, "auc", test="wilcoxon")["p_value"] < 0.01
    with pytest.raises(ConfigError):
        good.compare(bad, "coverage@10")
    sampled = Evaluator(train, test, ks=(10,), protocol="sampled").evaluate(fixed(scores))
    with pytest.raises(ConfigError):
        good.compare(sampled, "ndcg@10")


# ----------------------------------------------------------------------------- real data
def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "ts"])


@pytest.mark.slow
def test_popularity_on_movielens_500(data_dir):
    folder = data_dir / "movielens-500"
    tr, te = read_tsv(folder / "trainingset.tsv"), read_tsv(folder / "testset.tsv")
    n_items = int(max(tr.item.max(), te.item.max())) + 1
    assert n_items == 3172
    ids = {"user_ids": np.arange(500), "item_ids": np.arange(n_items)}
    train = Interactions.from_raw(tr.user, tr.item, tr.rating, tr.ts, **ids)
    test = Interactions.from_raw(te.user, te.item, te.rating, te.ts, **ids)
    popularity = torch.as_tensor(train.item_counts, dtype=torch.float32)
    scorer = lambda users: popularity.expand(len(users), -1)  # noqa: E731
    a = Evaluator(train, test, ks=(10, 100), chunk_size=7).evaluate(scorer)
    b = Evaluator(train, test, ks=(10, 100), chunk_size=256).evaluate(scorer)
    auto = Evaluator(train, test, ks=(10, 100))  # 2**22 // 3172 = 1322 users: one chunk here
    assert auto.chunk_size == 1322
    c = auto.evaluate(scorer)
    assert a.n_users == 500 and a.summary == b.summary == c.summary
    for name in a.per_user:
        np.testing.assert_array_equal(a.per_user[name], b.per_user[name])
        np.testing.assert_array_equal(a.per_user[name], c.per_user[name])
    s = a.summary
    assert 0.0 < s["hr@10"] < s["hr@100"] < 1.0
    assert s["ndcg@10"] < s["ndcg@100"] < s["hr@100"]
    assert 0.75 < s["auc"] < 0.95  # popularity ranks held-out MovieLens items well above chance
    assert s["coverage@10"] < s["coverage@100"] < 0.2  # popularity recommends the same few items
    state = np.zeros((500, n_items), np.int8)
    state[train.users, train.items] = 1
    state[test.users, test.items] = 2
    users, expected = naive_evaluate(state, np.tile(popularity.numpy(), (500, 1)), (10, 100))
    assert_matches(a, users, {m: expected[m] for m in ("hr@10", "ndcg@100", "auc")})


def test_all_metric_names_reported():
    state, scores = random_split(loo=False)
    res = Evaluator(*split(state), ks=(3,)).evaluate(fixed(scores))
    assert set(res.per_user) == {f"{m}@3" for m in ALL_METRICS if m != "auc"} | {"auc"}
