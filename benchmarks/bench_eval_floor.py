"""Full-ranking evaluation against its floor, timed in the same process (one JSON line each).

The floor is what any full-ranking evaluation must do at least: the score GEMM of every test user
against every item (the faster of NumPy's and PyTorch's BLAS on this machine, in chunks of 256
users or of the evaluator's automatic size, whichever is faster) plus ``topk`` at the largest
cut-off. advrec's figure is one ``Evaluator.evaluate`` of a BPR-MF (dim 64) at ks 10 and 20
without coverage (as experiments run it), the model's own ``score`` included: with hr, ndcg
and recall (what the floor computes: the top-k), and with auc added (AUC needs every test item's
exact rank, beyond the floor's work).

    python benchmarks/bench_eval_floor.py [--threads 1] [--repeat 3] [--scale 0.25]
        [--datasets ml-1m-implicit yelp2018-lightgcn ml-20m-synthetic]

``ml-20m-synthetic`` is the MovieLens-20M-shaped set of ``bench_scale.py`` (138,000 users ×
27,000 items, 20 M interactions, leave-one-out) with users and interactions times ``--scale``.
Target: advrec ≤ 1.5 × the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from advrec.data.datasets import load_split
from advrec.data.splits import leave_one_out
from advrec.data.synthetic import synthetic_interactions
from advrec.evaluation import Evaluator
from advrec.models import BPRMF

KS = (10, 20)
METRICS = {"topk": ("hr", "ndcg", "recall"), "with-auc": ("hr", "ndcg", "recall", "auc")}
CHUNK = 256


def emit(bench: str, impl: str, dataset: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": dataset, "value": float(f"{value:.4g}"),
           "unit": unit, **settings, "load1": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)


def best(fn, repeat: int) -> float:
    fn()  # warm-up: caches, BLAS buffers, the kernels' compile
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def data(name: str, scale: float):
    if name == "ml-20m-synthetic":
        n_users = int(138_000 * scale)
        full = synthetic_interactions(n_users, 27_000, int(20_000_000 * scale), seed=0)
        return leave_one_out(full, seed=0)
    return load_split(name)


def floor_parts(p: np.ndarray, q: np.ndarray, users: np.ndarray, k: int, repeat: int,
                chunk: int):
    """(NumPy GEMM, PyTorch GEMM, topk) seconds over the test users in chunks of ``chunk``."""
    qt_np = np.ascontiguousarray(q.T)
    pt, qt = torch.from_numpy(p), torch.from_numpy(qt_np)
    chunks = [users[s:s + chunk] for s in range(0, len(users), chunk)]
    scores = torch.from_numpy(p[chunks[0]] @ qt_np)

    def numpy_gemm():
        for c in chunks:
            p[c] @ qt_np

    def torch_gemm():
        for c in chunks:
            pt[torch.from_numpy(c)] @ qt

    def topk():  # on a chunk-sized score block, as many times as there are chunks
        for c in chunks:
            torch.topk(scores[:len(c)], k, dim=1)

    return best(numpy_gemm, repeat), best(torch_gemm, repeat), best(topk, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--datasets", nargs="+",
                    default=["ml-1m-implicit", "yelp2018-lightgcn", "ml-20m-synthetic"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"[bench_eval_floor] threads={args.threads}", file=sys.stderr)
    with threadpool_limits(args.threads):
        for name in args.datasets:
            train, test = data(name, args.scale)
            model = BPRMF(epochs=0, seed=0).fit(train, progress=False)  # seeded random factors
            model.net_.user.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
            model.net_.item.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
            ours = {}
            for label, metrics in METRICS.items():
                ev = Evaluator(train, test, ks=KS, metrics=metrics, coverage=False)
                ours[label] = best(lambda ev=ev, m=model: ev.evaluate(m), args.repeat)
            p = model.net_.user.detach().numpy()
            q = model.net_.item.detach().numpy()
            common = dict(users=int(ev.n_users), items=int(train.n_items),
                          test_rows=int(len(test)), dim=64, ks=list(KS), threads=args.threads)
            if name == "ml-20m-synthetic":
                common["scale"] = args.scale
            # the floor takes the faster BLAS at the faster chunking: 256 users or the
            # evaluator's own (larger on a small catalogue)
            floor = float("inf")
            for chunk in sorted({CHUNK, ev.chunk_size}):
                g_np, g_torch, tk = floor_parts(p, q, ev.users, max(KS), args.repeat, chunk)
                floor = min(floor, min(g_np, g_torch) + tk)
                emit("eval_floor_gemm", "numpy", name, g_np, "s", chunk=chunk, **common)
                emit("eval_floor_gemm", "torch", name, g_torch, "s", chunk=chunk, **common)
                emit("eval_floor_topk", "torch", name, tk, "s", k=max(KS), chunk=chunk, **common)
            emit("eval_floor", "floor", name, floor, "s", **common)
            for label, metrics in METRICS.items():
                emit("eval_full_ranking", "advrec", name, ours[label], "s", metrics=list(metrics),
                     coverage=False, chunk=ev.chunk_size, **common)
                emit("eval_over_floor", "advrec", name, ours[label] / floor, "ratio",
                     metrics=list(metrics), target="<= 1.5" if label == "topk" else None,
                     **common)

if __name__ == "__main__":
    main()
