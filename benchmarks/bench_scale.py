"""Scale check: one BPR-MF epoch and one full-ranking evaluation on a MovieLens-20M-sized set.

Prints one JSON line per figure to stdout (progress goes to stderr)::

    python benchmarks/bench_scale.py [--scale 1.0] [--threads 1]

The data are synthetic (``advrec.data.synthetic.synthetic_interactions``) with ML-20M's shape:
138,000 users, 27,000 items, 20,000,000 distinct interactions; ``--scale s`` multiplies the users
and the interactions by ``s`` and keeps the 27,000 items (so the per-user profile and the
density stay those of ML-20M, and both the epoch and the evaluation cost scale by ``s``).
One item per user is held out with ``leave_one_out``; the evaluation runs twice, with the
Evaluator's default ``coverage=True`` and with ``coverage=False`` (metrics only). Every phase
reports its wall time, the process's resident memory before and after (VmRSS) and the peak so
far (``ru_maxrss``; a phase's own peak shows only when it raises the maximum).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch

DATASET = "synthetic-ml20m"
ML20M = {"n_users": 138_000, "n_items": 27_000, "n_interactions": 20_000_000}


def log(msg: str) -> None:
    print(f"[bench_scale] {msg}", file=sys.stderr, flush=True)


def _round(v):
    if isinstance(v, float | np.floating):
        return float(f"{float(v):.5g}")
    return v


def emit(bench: str, impl: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": DATASET, "value": _round(value), "unit": unit}
    row.update({k: _round(v) for k, v in settings.items()})
    print(json.dumps(row), flush=True)


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_mib()


def peak_mib() -> float:
    """Peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@contextmanager
def phase(name: str, impl: str = "advrec", **settings):
    """Time a phase and emit its figure with memory before/after; the body may add fields."""
    gc.collect()
    extra: dict = {}
    before, peak_before = rss_mib(), peak_mib()
    log(f"{name} ...")
    t0 = time.perf_counter()
    yield extra
    wall = time.perf_counter() - t0
    value = extra.pop("value", wall)
    unit = extra.pop("unit", "s")
    emit(name, impl, value, unit, wall_s=wall, rss_before_mib=before, rss_after_mib=rss_mib(),
         peak_before_mib=peak_before, peak_after_mib=peak_mib(), load1=round(os.getloadavg()[0], 2),
         **settings, **extra)
    log(f"{name}: {wall:.2f} s, peak {peak_mib():.0f} MiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of ML-20M's users and interactions (items stay 27,000)")
    parser.add_argument("--threads", type=int, default=1, help="torch (and BLAS) threads")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--k", type=int, default=100, help="cut-off of the evaluation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1.0:
        parser.error("--scale must lie in (0, 1]")

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    from advrec.data.sampling import UniformSampler
    from advrec.data.splits import leave_one_out
    from advrec.data.synthetic import synthetic_interactions
    from advrec.evaluation import Evaluator
    from advrec.models import BPRMF

    n_users = round(ML20M["n_users"] * args.scale)
    n_items = ML20M["n_items"]
    n_inter = round(ML20M["n_interactions"] * args.scale)
    shape = dict(scale=args.scale, n_users=n_users, n_items=n_items, n_interactions=n_inter,
                 threads=args.threads)
    emit("baseline_memory", "python", rss_mib(), "MiB", peak_mib=peak_mib(),
         note="process RSS after imports (torch, numba, advrec)", **shape)

    # numba JIT (or on-disk cache load) on a tiny set, so the timed epoch excludes it.
    with phase("numba_warmup", **shape):
        tiny = synthetic_interactions(200, 100, 2000, seed=args.seed)
        BPRMF(epochs=1, batch_size=64, backend="numba", seed=args.seed).fit(tiny, progress=False)

    with phase("synthetic_generation", **shape):
        data = synthetic_interactions(n_users, n_items, n_inter, seed=args.seed)

    with phase("leave_one_out", **shape) as extra:
        train, test = leave_one_out(data, seed=args.seed)
        extra.update(n_train=len(train), n_test=len(test))
    del data

    with phase("sampler_build", **shape):
        sampler = UniformSampler(train, seed=args.seed)

    with phase("negative_sampling_epoch", **shape) as extra:
        users, pos, neg = sampler.triples()
        extra.update(n_triples=len(users), note="UniformSampler.triples(): one epoch")
    del users, pos, neg, sampler

    model = BPRMF(n_factors=args.dim, epochs=1, batch_size=args.batch_size, optimizer="adagrad",
                  backend="numba", device="cpu", seed=args.seed)
    with phase("bprmf_fit_1_epoch", "advrec-numba", dim=args.dim, batch_size=args.batch_size,
               optimizer="adagrad", **shape) as extra:
        model.fit(train, progress=False)
        epoch = model.history_[0]["seconds"]
        extra.update(epoch_s=epoch, triples_per_s=len(train) / epoch,
                     loss=model.history_[0]["loss"],
                     note="wall_s = whole fit (sampler, init, workspace); epoch_s = the epoch "
                          "(its negative sampling included)")

    # Evaluator's default (coverage@k on: it sorts every score row), then metrics only.
    for coverage in (True, False):
        with phase("evaluator_init", coverage=coverage, **shape):
            evaluator = Evaluator(train, test, ks=(args.k,), coverage=coverage)
        with phase("eval_full_ranking", "advrec", k=args.k, chunk_size=evaluator.chunk_size,
                   coverage=coverage, **shape) as extra:
            result = evaluator.evaluate(model)
            extra.update(n_eval_users=evaluator.n_users,
                         **{m: result.summary[m] for m in (f"hr@{args.k}", f"ndcg@{args.k}")})
        del evaluator, result

    emit("peak_memory", "process", peak_mib(), "MiB", note="ru_maxrss at the end", **shape)


if __name__ == "__main__":
    main()
