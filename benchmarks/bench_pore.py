"""Benchmark PORE (Jia et al., USENIX Security 2023) on ml-100k u1: certified precision@10 and
recall@10 against the number of fake users e, the ensemble's clean accuracy against its base
recommender (SAR) trained on all users and against ItemPop, fit time and peak memory.

One JSON line per figure (``bench``, ``impl``, ``dataset``, ``value``, ``unit``, the settings,
``load1``). Runs are ``T:mode`` pairs (mode ``sampled``: the paper's ensemble, each base model
recommends to its sampled users only; ``all``: each also recommends to the users outside its
sample). ``--official DIR`` also certifies the official repository's frequency aggregation
(``DIR/100k/100k_200_1_100000_{sar,bpr}_default``, T = 100,000) for every user.

    python benchmarks/bench_pore.py [--runs 1000:sampled,10000:sampled,1000:all] [--official DIR]

About 20 s of CPU per 1,000 SAR models on one core (ml-100k, s = 200), five times that with
``all``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import time
from pathlib import Path

import numpy as np
import torch

from advrec.data.datasets import load_split
from advrec.defenses.pore import PORE, certified_hits, sar_recommend
from advrec.evaluation.evaluator import Evaluator
from advrec.models import ItemPop

E_SHOWN = (0, 1, 2, 5, 10, 20, 50)
DATASET = "ml-100k/u1"


def emit(**fields) -> None:
    fields.setdefault("dataset", DATASET)
    fields["load1"] = round(os.getloadavg()[0], 2)
    print(json.dumps(fields), flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def top_hits(top: np.ndarray, test_csr, users: np.ndarray, k: int) -> dict[str, float]:
    rel = test_csr[users]
    hits = np.asarray(rel[np.arange(len(users))[:, None], top[users]].sum(1)).reshape(-1)
    n_rel = np.diff(rel.indptr)
    return {f"precision@{k}": float((hits / k).mean()),
            f"recall@{k}": float((hits / n_rel).mean()), f"hr@{k}": float((hits > 0).mean())}


def full_sar(train, test, k: int) -> dict[str, float]:
    """SAR (the official settings) trained on every user: its top-k unseen items."""
    counts = np.zeros(train.shape, dtype=np.int32)
    sar_recommend(train, np.arange(train.n_users)[None, :], k, counts)
    order = np.argsort(-counts, axis=1, kind="stable")[:, :k]
    users = np.flatnonzero(np.diff(test.binary_csr.indptr))
    assert np.all(counts[users].sum(1) == k)
    return top_hits(order, test.binary_csr, users, k)


def run_pore(train, test, T: int, mode: str, seed: int) -> None:
    settings = {"T": T, "s": 200, "n_prime": 1, "N": 10, "alpha": 0.001, "base": "sar",
                "recommend_to": mode, "seed": seed, "threads": torch.get_num_threads()}
    model = PORE(T=T, recommend_to=mode, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(train)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    emit(bench="pore_fit", impl="advrec-numba", value=round(wall, 2), unit="s",
         cpu_s=round(cpu, 2), ms_per_model_cpu=round(1000 * cpu / T, 2),
         peak_rss_mib=round(peak_rss_mib(), 1),
         counts_mib=round(model.counts_.nbytes / 2 ** 20, 1), **settings)
    t0 = time.perf_counter()
    cert = model.certify(test, max_fake=50)
    emit(bench="pore_certify", impl="advrec", value=round(time.perf_counter() - t0, 3),
         unit="s", n_users=len(cert.users), e_max=50, **settings)
    idx = list(E_SHOWN)
    emit(bench="pore_certified_precision@10", impl="advrec", e=idx,
         value=[round(float(v), 4) for v in cert.precision[idx]], unit="mean pi/N", **settings)
    emit(bench="pore_certified_recall@10", impl="advrec", e=idx,
         value=[round(float(v), 4) for v in cert.recall[idx]], unit="mean pi/|I_u|", **settings)
    emit(bench="pore_clean", impl="advrec", value={k: round(v, 4) for k, v in cert.clean.items()},
         unit="full ranking, ties to popularity", **settings)


def official(folder: Path) -> None:
    """Certify the official frequency aggregation of every user (T = 100,000, s = 200)."""
    for alg in ("sar", "bpr"):
        d = folder / "100k" / f"100k_200_1_100000_{alg}_default"
        if not d.is_dir():
            continue
        counts = np.zeros((943, 1682), dtype=np.int64)
        for u, line in enumerate((d / "frequency_aggregation_1.txt").read_text().splitlines()):
            pairs = np.array(re.findall(r"\((\d+),(\d+)\)", line), dtype=np.int64).reshape(-1, 2)
            counts[u, pairs[:, 0] - 1] = pairs[:, 1]
        rel = np.zeros(counts.shape, dtype=bool)
        rows = [r.split(",") for r in (d / "test_1.csv").read_text().splitlines()[1:]]
        test = np.array([[int(a), int(b)] for a, b, *_ in rows])
        rel[test[:, 0] - 1, test[:, 1] - 1] = True
        t0 = time.perf_counter()
        pi = certified_hits(counts, rel, 100000, 200, 943, 1, 10, 0.001, np.arange(51))
        seconds = time.perf_counter() - t0
        idx = list(E_SHOWN)
        settings = {"T": 100000, "s": 200, "n_prime": 1, "N": 10, "alpha": 0.001, "base": alg,
                    "recommend_to": "sampled", "source": "official frequency_aggregation_1.txt"}
        emit(bench="pore_certified_precision@10", impl="advrec on official counts",
             dataset="ml-100k (official split)", e=idx,
             value=[round(float(v), 4) for v in (pi / 10).mean(0)[idx]], unit="mean pi/N",
             certify_s=round(seconds, 2), **settings)
        emit(bench="pore_certified_recall@10", impl="advrec on official counts",
             dataset="ml-100k (official split)", e=idx,
             value=[round(float(v), 4) for v in (pi / rel.sum(1)[:, None]).mean(0)[idx]],
             unit="mean pi/|I_u|", **settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1000:sampled,10000:sampled,1000:all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--official", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_split("ml-100k", fold="u1")
    ev = Evaluator(train, test, ks=(10,), metrics=("precision", "recall", "hr"))
    pop = ev.evaluate(ItemPop().fit(train)).summary
    emit(bench="baseline_clean", impl="itempop",
         value={k: round(v, 4) for k, v in pop.items() if not k.startswith("coverage")},
         unit="full ranking")
    t0 = time.perf_counter()
    emit(bench="baseline_clean", impl="sar (all users, the PORE base)",
         value={k: round(v, 4) for k, v in full_sar(train, test, 10).items()},
         unit="full ranking", seconds=round(time.perf_counter() - t0, 2))
    for run in args.runs.split(","):
        T, mode = run.split(":")
        run_pore(train, test, int(T), mode, args.seed)
    if args.official is not None:
        official(args.official)


if __name__ == "__main__":
    main()
