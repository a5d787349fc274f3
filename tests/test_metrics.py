"""Rank metrics on hand-computed cases: single and multiple relevant items, padding, AUC."""

from __future__ import annotations

import math

import pytest
import torch

from advrec.errors import ConfigError, DataError
from advrec.evaluation import (
    PAD,
    auc,
    average_precision,
    hit_ratio,
    mrr,
    ndcg,
    precision,
    rank_metrics,
    recall,
)

INF = PAD
L3, L5, L7 = math.log2(3), math.log2(5), math.log2(7)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64))


# ----------------------------------------------------------------------------- one relevant item
LOO = torch.tensor([0, 1, 5, 100])  # positions of each user's single test item


def test_hit_ratio_leave_one_out():
    close(hit_ratio(LOO, (1, 5, 10)), [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]])


def test_ndcg_leave_one_out_is_inverse_log_position():
    close(ndcg(LOO, (5, 10)), [[1, 1 / L3, 0, 0], [1, 1 / L3, 1 / L7, 0]])


def test_mrr_and_map_leave_one_out():
    close(mrr(LOO, 10), [[1, 1 / 2, 1 / 6, 0]])
    close(average_precision(LOO, 10), [[1, 1 / 2, 1 / 6, 0]])  # one relevant: AP = 1/(pos+1)


def test_precision_recall_leave_one_out():
    close(precision(LOO, 5), [[1 / 5, 1 / 5, 0, 0]])
    close(recall(LOO, 5), [[1, 1, 0, 0]])


def test_int_and_bare_k_accepted():
    assert hit_ratio(torch.tensor([3]), 4).shape == (1, 1)


# ------------------------------------------------------------------------ several relevant items
# user 0: three relevant items at positions 0, 2, 3 (given unsorted); user 1: one at position 5.
MULTI = torch.tensor([[3.0, 0.0, 2.0], [5.0, INF, INF]])


def test_precision_recall_multiple_relevant():
    close(precision(MULTI, (1, 2, 4)), [[1, 0], [1 / 2, 0], [3 / 4, 0]])
    close(recall(MULTI, (1, 2, 4, 6)), [[1 / 3, 0], [1 / 3, 0], [1, 0], [1, 1]])


def test_ndcg_ideal_over_min_k_and_relevant():
    dcg4 = 1 + 1 / 2 + 1 / L5  # positions 0, 2, 3
    idcg3 = 1 + 1 / L3 + 1 / 2  # min(k=4, #rel=3) = 3 ideal slots
    idcg2 = 1 + 1 / L3  # min(k=2, #rel=3) = 2
    close(ndcg(MULTI, (2, 4)), [[1 / idcg2, 0], [dcg4 / idcg3, 0]])
    # k larger than #relevant: the ideal list holds only the relevant items
    close(ndcg(torch.tensor([[0.0, 1.0]]), 10), [[1.0]])
    close(ndcg(torch.tensor([[1.0, 2.0]]), 10), [[(1 / L3 + 1 / 2) / (1 + 1 / L3)]])


def test_map_multiple_relevant():
    # AP@4 = (1/1 + 2/3 + 3/4) / min(4, 3); AP@2 = (1/1) / min(2, 3)
    close(average_precision(MULTI, (2, 4)), [[1 / 2, 0], [(1 + 2 / 3 + 3 / 4) / 3, 0]])
    # user 1 at k=6: one relevant at position 5 -> (1/6) / min(6, 1)
    close(average_precision(MULTI, 6)[:, 1], [1 / 6])


def test_mrr_uses_best_position():
    close(mrr(MULTI, (1, 6)), [[1, 0], [1, 1 / 6]])
    close(mrr(torch.tensor([[4.0, 2.0]]), (2, 3)), [[0], [1 / 3]])


def test_user_without_relevant_item_scores_zero():
    empty = torch.tensor([[INF, INF]])
    for fn in (hit_ratio, ndcg, precision, recall, mrr, average_precision):
        close(fn(empty, (1, 10)), [[0.0], [0.0]])


def test_unsorted_input_gives_same_values():
    shuffled = torch.tensor([[2.0, 3.0, 0.0], [INF, 5.0, INF]])
    for fn in (hit_ratio, ndcg, precision, recall, mrr, average_precision):
        torch.testing.assert_close(fn(shuffled, (1, 3, 5)), fn(MULTI, (1, 3, 5)))


# ----------------------------------------------------------------------------- AUC
def test_auc_leave_one_out_matches_apr_formula():
    # APR: AUC = 1 - rank / #candidates, #candidates = non-training items other than the test item
    close(auc(torch.tensor([1, 0, 3]), torch.tensor([2, 3, 3])), [0.5, 1.0, 0.0])


def test_auc_averages_over_relevant_items_and_skips_padding():
    counts = torch.tensor([[0.0, 2.0, INF], [1.0, INF, INF]])
    close(auc(counts, torch.tensor([4, 4])), [(1 + 0.5) / 2, 0.75])


def test_auc_without_negative_candidates_is_one():
    close(auc(torch.tensor([[0.0]]), torch.tensor([0])), [1.0])


# ----------------------------------------------------------------------------- rank_metrics
def test_rank_metrics_keys_and_values_agree_with_functions():
    out = rank_metrics(MULTI, (1, 4), neg_counts=torch.tensor([[0.0, 1, 1], [3, INF, INF]]),
                       n_negatives=torch.tensor([5, 5]))
    assert list(out) == ["hr@1", "hr@4", "ndcg@1", "ndcg@4", "precision@1", "precision@4",
                         "recall@1", "recall@4", "mrr@1", "mrr@4", "map@1", "map@4", "auc"]
    torch.testing.assert_close(out["ndcg@4"], ndcg(MULTI, 4)[0])
    torch.testing.assert_close(out["map@1"], average_precision(MULTI, 1)[0])
    close(out["auc"], [1 - (0 + 1 + 1) / 15, 1 - 3 / 5])


def test_rank_metrics_rejects_bad_input():
    with pytest.raises(ConfigError):
        rank_metrics(LOO, (10,), metrics=("hr", "nope"))
    with pytest.raises(ConfigError):
        rank_metrics(LOO, (10,), metrics=("auc",))  # no neg_counts / n_negatives
    with pytest.raises(ConfigError):
        hit_ratio(LOO, (0,))
    with pytest.raises(ConfigError):
        hit_ratio(LOO, ())
    with pytest.raises(DataError):
        hit_ratio(torch.tensor([-1.0]), 1)
    with pytest.raises(DataError):
        hit_ratio(torch.zeros(2, 2, 2), 1)
