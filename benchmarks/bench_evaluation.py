"""Benchmark the Evaluator on ML-1M-shaped data against a naive per-user loop (one JSON line each).

Data: ``$ADVREC_DATA_DIR/ml-1m-implicit/{train,test}.txt`` (LightGCN format, default data dir
``/work/shared/datasets``), else a synthetic 6,040 x 3,706 set with ~800k/200k interactions.
Scorer: random user/item factors of dimension 64. Figures: leave-one-out (first test item of each
user) and the ~80/20 hold-out, full ranking at k=100, with and without coverage (top-k lists).

    python benchmarks/bench_evaluation.py [--threads 1] [--repeat 5] [--skip-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from advrec.data import Interactions
from advrec.evaluation import Evaluator

DATA_DIR = Path(os.environ.get("ADVREC_DATA_DIR", "/work/shared/datasets"))
K = 100


# ----------------------------------------------------------------------------- data
def read_lightgcn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``user item item ...`` lines as parallel (user, item) arrays."""
    users, items = [], []
    for line in path.read_text().splitlines():
        ids = np.array(line.split(), dtype=np.int64)
        if len(ids) > 1:
            users.append(np.full(len(ids) - 1, ids[0]))
            items.append(ids[1:])
    return np.concatenate(users), np.concatenate(items)


def synthetic(seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """ML-1M-shaped random data: 6,040 users, 3,706 items, ~1M pairs, Zipf-ish, 80/20 split."""
    rng = np.random.default_rng(seed)
    n_users, n_items, nnz = 6040, 3706, 1_000_209
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    u = rng.integers(0, n_users, int(nnz * 1.3))
    i = rng.choice(n_items, size=len(u), p=pop / pop.sum())
    keys = np.unique(u * n_items + i)[:nnz]
    u, i = keys // n_items, keys % n_items
    is_test = rng.random(len(u)) < 0.2
    return (u[~is_test], i[~is_test]), (u[is_test], i[is_test])


def load() -> tuple[Interactions, Interactions, str]:
    folder = DATA_DIR / "ml-1m-implicit"
    if (folder / "train.txt").is_file() and (folder / "test.txt").is_file():
        (tu, ti), (su, si) = read_lightgcn(folder / "train.txt"), read_lightgcn(folder / "test.txt")
        source = "ml-1m-implicit"
    else:
        (tu, ti), (su, si) = synthetic()
        source = "synthetic ml-1m-shaped"
    user_ids = np.arange(max(tu.max(), su.max()) + 1)
    item_ids = np.unique(np.concatenate([ti, si]))
    train = Interactions.from_raw(tu, ti, user_ids=user_ids, item_ids=item_ids, name="train")
    test = Interactions.from_raw(su, si, user_ids=user_ids, item_ids=item_ids, name="test")
    return train, test, source


def leave_one_out(test: Interactions) -> Interactions:
    """The first test record of every test user (one held-out item per user)."""
    _, first = np.unique(test.users, return_index=True)
    return test.subset(np.sort(first), name="test-loo")


# ----------------------------------------------------------------------------- naive baseline
def naive_evaluate(train: Interactions, test: Interactions, p: torch.Tensor, q: torch.Tensor,
                   k: int) -> dict[str, float]:
    """The per-user loop peers use: score one user, mask, top-k, metrics from membership."""
    tr, te = train.binary_csr, test.binary_csr
    qn, pn = q.numpy(), p.numpy()
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    sums = dict.fromkeys(("hr", "ndcg", "recall", "auc"), 0.0)
    users = np.flatnonzero(np.diff(te.indptr))
    for u in users:
        s = qn @ pn[u]
        s[tr.indices[tr.indptr[u]:tr.indptr[u + 1]]] = -np.inf
        rel = te.indices[te.indptr[u]:te.indptr[u + 1]]
        top = np.argpartition(-s, k)[:k]
        top = top[np.argsort(-s[top])]
        hit = np.isin(top, rel)
        sums["hr"] += float(hit.any())
        sums["ndcg"] += disc[hit].sum() / disc[:min(k, len(rel))].sum()
        sums["recall"] += hit.sum() / len(rel)
        neg = np.isfinite(s)
        neg[rel] = False
        n_neg = neg.sum()
        sums["auc"] += np.mean([1.0 - (s[neg] >= s[i]).sum() / n_neg for i in rel])
    return {f"{m}@{k}" if m != "auc" else m: v / len(users) for m, v in sums.items()}


# ----------------------------------------------------------------------------- timing
def best_time(fn, repeat: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def emit(name: str, value: float, unit: str, **settings) -> None:
    print(json.dumps({"name": name, "value": round(value, 6), "unit": unit, "settings": settings}),
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test, source = load()
    loo = leave_one_out(test)
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(train.n_users, 64, generator=gen) * 0.1
    q = torch.randn(train.n_items, 64, generator=gen) * 0.1
    scorer = lambda users: p[users] @ q.T  # noqa: E731
    common = {"data": source, "users": train.n_users, "items": train.n_items, "dim": 64,
              "k": K, "threads": args.threads, "chunk_size": args.chunk_size,
              "device": "cpu", "torch": torch.__version__}

    cases = [
        ("eval_full_loo_ranks_only", loo, ("hr", "ndcg", "auc"), False),
        ("eval_full_loo_with_coverage", loo, ("hr", "ndcg", "auc"), True),
        ("eval_full_holdout_all_metrics", test, ("hr", "ndcg", "auc", "precision", "recall",
                                                 "mrr", "map"), True),
        ("eval_full_holdout_ranks_only", test, ("hr", "ndcg", "auc", "precision", "recall",
                                                "mrr", "map"), False),
    ]
    results = {}
    for name, split, metrics, coverage in cases:
        ev = Evaluator(train, split, ks=(K,), metrics=metrics, chunk_size=args.chunk_size,
                       coverage=coverage)
        secs, res = best_time(lambda ev=ev: ev.evaluate(scorer), args.repeat)
        results[name] = res
        emit(name, secs, "s", **common, test_rows=len(split), metrics=list(metrics),
             coverage=coverage, repeat=args.repeat, stat="min")

    ev = Evaluator(train, loo, ks=(10, K), metrics=("hr", "ndcg", "auc"), protocol="sampled",
                   coverage=False, chunk_size=args.chunk_size)
    secs, _ = best_time(lambda: ev.evaluate(scorer), args.repeat)
    emit("eval_sampled99_loo", secs, "s", **common, test_rows=len(loo), repeat=args.repeat,
         stat="min")

    if not args.skip_naive:
        for name, split, ref in (("naive_loop_full_loo", loo, "eval_full_loo_ranks_only"),
                                 ("naive_loop_full_holdout", test, "eval_full_holdout_ranks_only")):
            t0 = time.perf_counter()
            naive = naive_evaluate(train, split, p, q, K)
            secs = time.perf_counter() - t0
            summary = results[ref].summary
            diff = max(abs(v - summary[m]) for m, v in naive.items() if m in summary)
            emit(name, secs, "s", **common, test_rows=len(split), repeat=1,
                 max_abs_diff_vs_evaluator=diff, baseline="per-user numpy loop",
                 note="the loop scores by per-user matvec, whose rounding can flip near-ties")


if __name__ == "__main__":
    main()
