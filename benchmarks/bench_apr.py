"""APR's cost: an APR epoch beside a BPR-MF epoch, measured in the same run.

Prints one JSON line per figure to stdout::

    python benchmarks/bench_apr.py [--epochs 5] [--threads 1]

- ``ml-1m-implicit`` (800k training pairs, dim 64, batch 512 and 4096): median epoch time of
  BPR-MF and of APR (ε = 0.5, λ = 1) on the compiled CPU path and on the PyTorch path; the
  target is APR ≤ 2× BPR-MF.
- ``movielens-500`` (the hands-on data): our APR epoch, and the tutorial notebook's scheme
  (a full-data FGSM attack recomputed before every mini-batch, O(|D|²/B) per epoch) measured on
  a few mini-batches with the same library and extrapolated to one epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from advrec.attacks.perturbation import AttackObjective
from advrec.data.datasets import load_split
from advrec.models import APR, BPRMF
from advrec.training.perturbation import fgsm_direction


def emit(bench: str, impl: str, dataset: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": dataset,
           "value": float(f"{value:.4g}"), "unit": unit, **settings}
    print(json.dumps(row), flush=True)


def epoch_seconds(model) -> float:
    """Median epoch time after the first (warm-up / JIT) epoch."""
    times = [h["seconds"] for h in model.history_]
    return statistics.median(times[1:] if len(times) > 1 else times)


def bench_ml1m(epochs: int) -> None:
    train, _ = load_split("ml-1m-implicit")
    start = BPRMF(epochs=1, seed=0).fit(train, progress=False)  # also compiles the kernel
    for backend, batch in (("numba", 512), ("numba", 4096), ("torch", 4096)):
        n = epochs if backend == "numba" else 2
        kw = dict(epochs=n, batch_size=batch, backend=backend, seed=0)
        bpr = BPRMF(**kw).fit(train, init_from=start, progress=False)
        apr = APR(eps=0.5, adv_reg=1.0, **kw).fit(train, init_from=start, progress=False)
        b, a = epoch_seconds(bpr), epoch_seconds(apr)
        settings = dict(backend=backend, batch_size=batch, dim=64, epochs=n)
        emit("epoch_time", "advrec-bprmf", "ml-1m-implicit", b, "s/epoch", **settings)
        emit("epoch_time", "advrec-apr", "ml-1m-implicit", a, "s/epoch", **settings)
        emit("apr_over_bpr", "advrec", "ml-1m-implicit", a / b, "ratio", target="<= 2",
             **settings)


def bench_handson(batches: int) -> None:
    train, _ = load_split("movielens-500")
    bpr = BPRMF(epochs=5, seed=0).fit(train, progress=False)
    apr = APR(epochs=6, seed=0).fit(train, init_from=bpr, progress=False)
    emit("epoch_time", "advrec-apr", "movielens-500", epoch_seconds(apr), "s/epoch",
         backend="numba", batch_size=512)
    # The notebook's scheme: before every mini-batch, the attack's gradient over ALL training
    # data, then the APR step. Timed on `batches` mini-batches, extrapolated to an epoch.
    net, n_batches = bpr.net_, int(np.ceil(len(train) / 512))
    objective = AttackObjective(bpr, train, seed=0)
    opt = torch.optim.Adagrad(net.parameters(), lr=0.05, initial_accumulator_value=0.1)
    users, pos, neg = objective._users, objective._pos, objective._neg
    t0 = time.perf_counter()
    for b in range(batches):
        zero = {k: torch.zeros_like(v.detach()) for k, v in bpr.parameter_blocks().items()}
        grads, _ = objective.gradient(zero)
        delta = {k: fgsm_direction(g, 0.5) for k, g in grads.items()}
        sl = slice(b * 512, (b + 1) * 512)
        batch = tuple(torch.from_numpy(a[sl].copy()) for a in (users, pos, neg))
        opt.zero_grad()
        (net.loss(batch) + net.loss(batch, perturbation=delta)).backward()
        opt.step()
    per_batch = (time.perf_counter() - t0) / batches
    emit("epoch_time", "full-data-attack-per-batch (tutorial scheme)", "movielens-500",
         per_batch * n_batches, "s/epoch", measured_batches=batches, batches_per_epoch=n_batches,
         note="the tutorial notebook reports about 2 minutes per APR epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=10,
                        help="mini-batches timed for the tutorial scheme")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"[bench_apr] threads={args.threads}", file=sys.stderr)
    bench_handson(args.batches)
    bench_ml1m(args.epochs)


if __name__ == "__main__":
    main()
