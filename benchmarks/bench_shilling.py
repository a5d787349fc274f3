"""Benchmark a shilling attack end to end: generate 5 % average-attack profiles, refit ItemKNN on
the poisoned data and measure the targets' hit ratio@10 over the real users (one JSON line each).

Figures, each timed: ``shilling_generate`` (profile generation), ``shilling_refit`` (ItemKNN fit
on clean + fake), ``shilling_measure`` (target ranks of every real user), ``shilling_total`` (the
three together; targets: < 2 s on ML-100K explicit, < 20 s on ML-1M-implicit with the implicit
variant), and as sanity figures ``shilling_hr_shift`` / ``shilling_rank_shift`` (change of the
targets' hit ratio@10 and mean rank; five targets of middling popularity).

    python benchmarks/bench_shilling.py [--threads 1] [--repeat 3] [--k 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from advrec.attacks.shilling import make_attack, select_targets
from advrec.data.datasets import load
from advrec.evaluation.shilling import measure_targets
from advrec.models.knn import ItemKNN

TARGETS = {"ml-100k": 2.0, "ml-1m-implicit": 20.0}


def emit(bench: str, impl: str, dataset: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": dataset,
           "value": float(f"{value:.4g}"), "unit": unit, **settings}
    print(json.dumps(row), flush=True)


def once(data, attack, targets, k: int) -> tuple[dict[str, float], tuple[float, float]]:
    """One generate → refit → measure pass; (seconds per step, (hit-ratio, mean-rank) shift)."""
    clean = ItemKNN(k=k).fit(data)
    t = data.item_index(targets)
    before = measure_targets(clean, data, t)
    t0 = time.perf_counter()
    fake = attack.generate(data, targets, seed=0)
    t1 = time.perf_counter()
    model = ItemKNN(k=k).fit(data.concat(fake))
    t2 = time.perf_counter()
    after = measure_targets(model, data, t)
    t3 = time.perf_counter()
    steps = {"generate": t1 - t0, "refit": t2 - t1, "measure": t3 - t2, "total": t3 - t0}
    return steps, (after.hit_ratio(10) - before.hit_ratio(10),
                   after.mean_rank() - before.mean_rank())


def bench(dataset: str, repeat: int, k: int) -> None:
    data = load(dataset)
    implicit = data.ratings is None
    attack = make_attack("average", size=0.05, filler=0.03, implicit=implicit)
    targets = select_targets(data, 5, "quantile", seed=0)
    runs = [once(data, attack, targets, k) for _ in range(repeat)]
    settings = dict(attack=attack.label, size=0.05, filler=0.03, n_fake=attack.n_fake(data),
                    n_targets=len(targets), knn_k=k, users=data.n_users, items=data.n_items,
                    interactions=len(data), repeats=repeat, threads=torch.get_num_threads(),
                    load1=round(os.getloadavg()[0], 2))
    for step in ("generate", "refit", "measure", "total"):
        values = [r[0][step] for r in runs]
        extra = {"target_s": TARGETS[dataset]} if step == "total" else {}
        emit(f"shilling_{step}", "advrec", dataset, statistics.median(values), "s",
             min=round(min(values), 4), max=round(max(values), 4), **extra, **settings)
    emit("shilling_hr_shift", "advrec", dataset, runs[0][1][0], "hr@10", **settings)
    emit("shilling_rank_shift", "advrec", dataset, runs[0][1][1], "rank", **settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--k", type=int, default=40, help="ItemKNN neighbours")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    for dataset in TARGETS:
        bench(dataset, args.repeat, args.k)


if __name__ == "__main__":
    main()
