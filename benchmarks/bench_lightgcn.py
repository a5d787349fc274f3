"""LightGCN's cost: graph propagation, a training step and an evaluation pass, beside the
straightforward implementation (``torch.sparse.mm`` on a COO adjacency, as in the official
PyTorch code) measured in the same run; peak memory beside what a dense users × items matrix
would take.

Prints one JSON line per figure to stdout::

    python benchmarks/bench_lightgcn.py [--dataset yelp2018-lightgcn] [--batches 20]
        [--threads 2] [--device cpu]

- ``propagation``: K = 3 layers forward and backward over Â (dim 64), median of 5: ours (CSR,
  backward Â·G as Â is symmetric), the COO ``torch.sparse.mm`` baseline and, where
  ``torch-geometric`` is installed (requirements/bench.txt), PyG's ``LightGCN`` as its example
  uses it (an ``edge_index`` over both directions, normalised by ``LGConv`` on each call).
- ``step``: one training step at batch 2048 (propagation, BPR loss, L2, Adam), median over
  ``--batches`` batches, and the epoch time it implies (|R| / 2048 steps; the paper trains up to
  1,000 epochs); PyG's ``LightGCN`` step (``forward`` on the batch's positive and negative
  pairs, ``recommendation_loss`` with λ 1e-4, Adam) beside it.
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

import numpy as np
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

    impls = [("advrec", ours), ("torch.sparse.mm-coo", baseline)]
    pyg = _pyg_lightgcn(train, args.device)
    if pyg is not None:
        pyg_model, edge_index = pyg

        def pyg_propagation():
            pyg_model.zero_grad(set_to_none=True)
            pyg_model.get_embedding(edge_index).sum().backward()

        impls.append((f"torch_geometric {pyg_model.version}", pyg_propagation))
    for impl, fn in impls:
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
    if pyg is not None:
        pyg_step = _pyg_step(pyg_model, edge_index, train, n_users, args.batches, args.device)
        impl = f"torch_geometric {pyg_model.version}"
        emit("step", impl, args.dataset, pyg_step, "s", batch_size=2048, **settings)
        emit("epoch_estimate", impl, args.dataset, pyg_step * len(train) / 2048, "s",
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


def _pyg_lightgcn(train, device: str):
    """PyG's LightGCN on the same graph (users 0..n-1, items n..n+m-1), or None if absent."""
    try:
        import torch_geometric
        from torch_geometric.nn.models import LightGCN as PyGLightGCN
    except ImportError:
        print("[bench_lightgcn] torch-geometric not installed: no PyG baseline",
              file=sys.stderr)
        return None
    n_users, n_items = train.shape
    users = torch.from_numpy(np.array(train.users, dtype=np.int64))
    items = torch.from_numpy(np.array(train.items, dtype=np.int64)) + n_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])]).to(device)
    model = PyGLightGCN(n_users + n_items, embedding_dim=64, num_layers=3).to(device)
    model.version = torch_geometric.__version__
    return model, edge_index


def _pyg_step(model, edge_index, train, n_users: int, batches: int, device: str) -> float:
    """Median time of one PyG LightGCN training step on the same uniform triples."""
    from advrec.data.sampling import UniformSampler

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = []
    sampled = UniformSampler(train, seed=0).batches(2048)
    for _, (u, i, j) in zip(range(batches + 1), sampled, strict=False):
        t0 = time.perf_counter()
        u, i, j = (torch.from_numpy(a).long().to(device) for a in (u, i, j))
        pairs = torch.stack([torch.cat([u, u]), torch.cat([i, j]) + n_users])
        opt.zero_grad(set_to_none=True)
        rank = model(edge_index, pairs)
        pos, neg = rank.chunk(2)
        node_id = torch.unique(torch.cat([u, i + n_users, j + n_users]))
        model.recommendation_loss(pos, neg, node_id=node_id).backward()
        opt.step()
        steps.append(time.perf_counter() - t0)
    return statistics.median(steps[1:])


if __name__ == "__main__":
    main()
