"""LightGCN's cost: graph propagation, a training step and an evaluation pass, beside the
straightforward implementation (``torch.sparse.mm`` on a COO adjacency, as in the official
PyTorch code) measured in the same run; peak memory beside what a dense users × items matrix
would take.

Prints one JSON line per figure to stdout::

    python benchmarks/bench_lightgcn.py [--dataset yelp2018-lightgcn] [--batches 20]
        [--threads 2] [--device cpu]

- ``propagation``: K = 3 layers forward and backward over Â (dim 64), median of 5: ours (CSR,
  backward Â·G as Â is symmetric) and the COO ``torch.sparse.mm`` baseline.
- ``step``: one training step at batch 2048 (propagation, BPR loss, L2, Adam), median over
  ``--batches`` batches, and the epoch time it implies (|R| / 2048 steps; the paper trains up to
  1,000 epochs).
- ``evaluate``: one full-ranking Recall/NDCG@20 pass over every test user.
- ``peak_rss``: the process's peak resident memory after all of the above, beside the bytes of
  one dense float32 users × items matrix (which LightGCN never builds).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import torch

from advrec.data.datasets import load_split
from advrec.evaluation import Evaluator
from advrec.models import LightGCN
from advrec.models.lightgcn_net import normalized_adjacency


def emit(bench: str, impl: str, dataset: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": dataset,
           "value": float(f"{value:.4g}"), "unit": unit, **settings}
    print(json.dumps(row), flush=True)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="yelp2018-lightgcn")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_split(args.dataset)
    n_users, n_items = train.shape
    settings = dict(threads=args.threads, device=args.device, users=n_users, items=n_items,
                    pairs=len(train))
    print(f"[bench_lightgcn] {args.dataset}: {n_users} users, {n_items} items, "
          f"{len(train)} pairs", file=sys.stderr)

    # propagation: ours vs torch.sparse.mm on COO
    csr = normalized_adjacency(train.binary_csr).to(args.device)
    coo = csr.to_sparse_coo().coalesce()
    x = torch.randn(n_users + n_items, 64, device=args.device, requires_grad=True)
    from advrec.models.lightgcn_net import _Propagate

    def ours():
        h = x
        for _ in range(3):
            h = _Propagate.apply(csr, h)
        h.sum().backward()

    def baseline():
        h = x
        for _ in range(3):
            h = torch.sparse.mm(coo, h)
        h.sum().backward()

    for impl, fn in (("advrec", ours), ("torch.sparse.mm-coo", baseline)):
        fn()  # warm-up
        emit("propagation", impl, args.dataset, timed(fn, 5), "s", layers=3, dim=64,
             **settings)

    # a training step at batch 2048 and the epoch it implies
    model = LightGCN(epochs=0, device=args.device, seed=0).fit(train, progress=False)
    net = model.net_
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    from advrec.data.sampling import UniformSampler

    batches = UniformSampler(train, seed=0).batches(2048)
    steps = []
    for _, (u, i, j) in zip(range(args.batches + 1), batches, strict=False):
        t0 = time.perf_counter()
        batch = tuple(torch.from_numpy(a).to(args.device) for a in (u, i, j))
        opt.zero_grad(set_to_none=True)
        net.loss(batch).backward()
        opt.step()
        steps.append(time.perf_counter() - t0)
    step = statistics.median(steps[1:])
    emit("step", "advrec", args.dataset, step, "s", batch_size=2048, **settings)
    emit("epoch_estimate", "advrec", args.dataset, step * len(train) / 2048, "s",
         batch_size=2048, paper_epochs=1000, **settings)

    # evaluation: full ranking over every test user
    ev = Evaluator(train, test, ks=(20,), metrics=("recall", "ndcg"), coverage=False,
                   device=args.device)
    t0 = time.perf_counter()
    ev.evaluate(model)
    emit("evaluate", "advrec", args.dataset, time.perf_counter() - t0, "s", ks=[20],
         **settings)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    emit("peak_rss", "advrec", args.dataset, peak / 2**20, "MiB", **settings)
    emit("peak_rss", "dense users×items float32 (not built)", args.dataset,
         n_users * n_items * 4 / 2**20, "MiB", **settings)


if __name__ == "__main__":
    main()
