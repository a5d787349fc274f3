"""BPR-MF speed and quality on ml-1m-implicit: advrec (numba, torch) against implicit and cornac.

Prints one JSON line per figure to stdout (progress goes to stderr)::

    python benchmarks/bench_bprmf.py [--epochs 20] [--threads 1] [--dim 64]

Every model is trained ONCE for ``--epochs`` epochs; its epoch time is the median of epochs
2..N (epoch 1 is the warm-up and is reported on its own as ``bprmf_first_epoch``), and its
HR/nDCG/recall come from advrec's full-ranking ``Evaluator`` after those same N epochs. The
numba JIT compile time is measured separately in fresh subprocesses (``numba_compile``: cold
cache and warm on-disk cache). See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

DATASET = "ml-1m-implicit"
METRICS = ("hr@10", "ndcg@10", "recall@20", "ndcg@20")

Scorer = Callable[[torch.Tensor], torch.Tensor]

# ----------------------------------------------------------------------------- output


def log(msg: str) -> None:
    print(f"[bench_bprmf] {msg}", file=sys.stderr, flush=True)


def emit(bench: str, impl: str, value: float, unit: str, **settings) -> None:
    """One figure as one JSON line on stdout."""
    row = {"bench": bench, "impl": impl, "dataset": DATASET, "value": _round(value), "unit": unit}
    row.update({k: _round(v) for k, v in settings.items()})
    print(json.dumps(row), flush=True)


def _round(v):
    if isinstance(v, float | np.floating):
        return float(f"{float(v):.5g}")
    return v


def load1() -> float:
    """1-minute load average: the machine may be shared; high values mean noisy timings."""
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------- data


def read_lightgcn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``user item item ...`` lines -> (users, items) raw-id arrays."""
    users, items = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) > 1:
            ids = np.asarray(parts, dtype=np.int64)
            users.append(np.full(len(ids) - 1, ids[0]))
            items.append(ids[1:])
    return np.concatenate(users), np.concatenate(items)


def load_data():
    """(train, test) Interactions in one id space; advrec's loader when it exists."""
    try:
        from advrec.data.datasets import load_split
    except ImportError:
        load_split = None
    if load_split is not None:
        return load_split(DATASET)
    from advrec.data.interactions import Interactions

    root = Path(os.environ.get("ADVREC_DATA_DIR", "/work/shared/datasets")) / DATASET
    tr_u, tr_i = read_lightgcn(root / "train.txt")
    te_u, te_i = read_lightgcn(root / "test.txt")
    user_ids = np.unique(np.concatenate([tr_u, te_u]))
    item_ids = np.unique(np.concatenate([tr_i, te_i]))
    kw = {"user_ids": user_ids, "item_ids": item_ids}
    return (Interactions.from_raw(tr_u, tr_i, name=f"{DATASET}/train", **kw),
            Interactions.from_raw(te_u, te_i, name=f"{DATASET}/test", **kw))


# ----------------------------------------------------------------------------- figures


def report_run(impl: str, seconds: list[float], n_train: int, quality: dict[str, float],
               settings: dict) -> None:
    """Epoch time (median after warm-up), throughput, first epoch, and quality lines."""
    steady = seconds[1:] if len(seconds) > 1 else seconds
    med = statistics.median(steady)
    common = dict(settings, epochs=len(seconds), load1=load1())
    emit("bprmf_epoch", impl, med, "s/epoch", timed_epochs=len(steady), min=min(steady),
         max=max(steady), **common)
    emit("bprmf_throughput", impl, n_train / med, "triples/s", **common)
    emit("bprmf_first_epoch", impl, seconds[0], "s", **common)
    for name in METRICS:
        emit("bprmf_quality", impl, quality[name], "", metric=name, protocol="full-ranking",
             **common)


def evaluate(evaluator, scorer) -> dict[str, float]:
    summary = evaluator.evaluate(scorer).summary
    return {k: summary[k] for k in METRICS}


def bench_compile(threads: int) -> None:
    """The first tiny fit in fresh processes: cold (empty numba cache dir: the kernels compile,
    announced on stderr), then warm (loaded from that cache); ``numba_compile`` is cold − warm."""
    code = (
        "import time, torch\n"
        f"torch.set_num_threads({threads})\n"
        "from advrec.data.synthetic import synthetic_interactions\n"
        "from advrec.models import BPRMF\n"
        "x = synthetic_interactions(200, 100, 2000, seed=0)\n"
        "t0 = time.perf_counter()\n"
        "BPRMF(epochs=2, batch_size=64, backend='numba').fit(x, progress=False)\n"
        "print(time.perf_counter() - t0)\n"
    )
    with tempfile.TemporaryDirectory(prefix="advrec-numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        fit = {}
        for state in ("cold", "warm"):
            run = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True)
            fit[state] = float(run.stdout.split()[-1])
            emit("first_fit", "advrec-numba", fit[state], "s", cache=state,
                 announced="advrec: compiling" in run.stderr,
                 note="a 2-epoch fit of a 2,000-interaction set in a fresh process")
        emit("numba_compile", "advrec-numba", fit["cold"] - fit["warm"], "s",
             note="cold first fit minus warm first fit: the one-time JIT of the BPR epoch and "
                  "the sampler")


def bench_sampling(train, seed: int) -> None:
    """advrec's uniform negative sampling of one epoch (included in advrec's epoch times)."""
    from advrec.data.sampling import UniformSampler

    t0 = time.perf_counter()
    sampler = UniformSampler(train, seed=seed)
    build = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        sampler.triples()
        times.append(time.perf_counter() - t0)
    emit("bprmf_sampling", "advrec", statistics.median(times), "s/epoch", n_triples=len(train),
         sampler_build_s=build, repeats=len(times), load1=load1(),
         note="UniformSampler.triples(): permutation + one uniform negative per positive")


def run_advrec(train, evaluator, args, backend: str, optimizer: str, batch_size: int,
               lr: float) -> None:
    from advrec.models import BPRMF

    log(f"advrec {backend} {optimizer} batch {batch_size} lr {lr}")
    model = BPRMF(n_factors=args.dim, epochs=args.epochs, batch_size=batch_size,
                  optimizer=optimizer, lr=lr, reg=0.0, init_std=0.01, backend=backend,
                  threads=args.threads, device="cpu", seed=args.seed)
    model.fit(train, progress=False)
    seconds = [h["seconds"] for h in model.history_]
    settings = dict(dim=args.dim, optimizer=optimizer, batch_size=batch_size, lr=lr, reg=0.0,
                    threads=args.threads, final_loss=model.history_[-1]["loss"])
    report_run(f"advrec-{model.backend_}", seconds, len(train), evaluate(evaluator, model),
               settings)


def run_implicit(train, evaluator, args) -> None:
    try:
        import implicit
        from implicit.cpu.bpr import BayesianPersonalizedRanking
    except ImportError as exc:
        log(f"implicit not available ({exc}); skipped")
        return
    # implicit appends a bias column (item bias, user side fixed to 1): factors = dim - 1 gives
    # the same dim-wide rows, i.e. the same per-triple work, as advrec's dim factors.
    factors = args.dim - 1
    lr, reg = 0.01, 0.01  # implicit's defaults
    log(f"implicit factors {factors} lr {lr}")
    model = BayesianPersonalizedRanking(factors=factors, learning_rate=lr, regularization=reg,
                                        iterations=args.epochs, num_threads=args.threads,
                                        random_state=args.seed)
    seconds: list[float] = []
    matrix = sp.csr_matrix(train.csr, dtype=np.float32)  # advrec ids = implicit ids
    t0 = time.perf_counter()
    model.fit(matrix, show_progress=False,
              callback=lambda epoch, elapsed, *rest: seconds.append(float(elapsed)))
    wall = time.perf_counter() - t0
    users, items = torch.from_numpy(model.user_factors), torch.from_numpy(model.item_factors)
    settings = dict(dim=args.dim, factors=factors, columns=int(items.shape[1]), optimizer="sgd",
                    batch_size=1, lr=lr, reg=reg, threads=args.threads, headline=True,
                    fit_wall_s=wall, impl_version=implicit.__version__,
                    timing="fit callback elapsed per iteration")
    report_run("implicit", seconds, len(train), evaluate(evaluator, lambda u: users[u] @ items.T),
               settings)


def cornac_data(train):
    """A cornac Dataset of train's pairs, and advrec-internal -> cornac index maps (-1: absent)."""
    from cornac.data import Dataset

    coo = train.csr.tocoo()
    data = list(zip(coo.row.tolist(), coo.col.tolist(), [1.0] * coo.nnz, strict=True))
    ds = Dataset.build(data, seed=0)
    uidx = np.array([ds.uid_map.get(u, -1) for u in range(train.n_users)])
    iidx = np.array([ds.iid_map.get(i, -1) for i in range(train.n_items)])
    return ds, uidx, iidx


def run_cornac(train, evaluator, args, ds, uidx, iidx, lr: float, headline: bool) -> None:
    import cornac

    log(f"cornac lr {lr}")
    # cornac forces one thread when a seed is given; with --threads > 1 leave the seed out.
    seed = args.seed if args.threads == 1 else None
    model = cornac.models.BPR(k=args.dim, max_iter=args.epochs, learning_rate=lr,
                              lambda_reg=0.01, use_bias=True, num_threads=args.threads,
                              seed=seed)
    seconds: list[float] = []
    fit_sgd = model._fit_sgd  # one call per epoch: wrap it to time the epochs (no callback API)

    def timed(*a, **kw):
        t0 = time.perf_counter()
        out = fit_sgd(*a, **kw)
        seconds.append(time.perf_counter() - t0)
        return out

    model._fit_sgd = timed
    t0 = time.perf_counter()
    model.fit(ds)
    wall = time.perf_counter() - t0
    timing = "per-epoch _fit_sgd calls"
    if len(seconds) != args.epochs:  # cornac changed its internals: fall back to fit / N
        seconds, timing = [wall / args.epochs] * args.epochs, "fit wall / epochs"
    # Items absent from train (cornac never saw them) score 0: zero factors and zero bias.
    known = iidx >= 0
    u_f = torch.from_numpy(np.asarray(model.u_factors, np.float32)[uidx])
    i_f = torch.zeros(train.n_items, args.dim)
    i_f[known] = torch.from_numpy(np.asarray(model.i_factors, np.float32)[iidx[known]])
    i_b = torch.zeros(train.n_items)
    i_b[known] = torch.from_numpy(np.asarray(model.i_biases, np.float32)[iidx[known]])
    settings = dict(dim=args.dim, k=args.dim, columns=args.dim + 1, optimizer="sgd",
                    batch_size=1, lr=lr, reg=0.01, threads=int(model.num_threads),
                    headline=headline, lr_note="cornac default" if headline else "tuned",
                    fit_wall_s=wall, impl_version=cornac.__version__, timing=timing)
    report_run("cornac", seconds, len(train),
               evaluate(evaluator, lambda u: u_f[u] @ i_f.T + i_b), settings)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs for every model")
    parser.add_argument("--threads", type=int, default=1, help="threads for every library")
    parser.add_argument("--dim", type=int, default=64, help="embedding size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sgd-lr", type=float, default=0.05,
                        help="advrec SGD learning rate (0.05 learns; 0.1 is worse, 0.2 diverges)")
    parser.add_argument("--cornac-tuned-lr", type=float, default=0.05,
                        help="second cornac run with this lr (its default 0.001 barely learns); "
                             "0 to skip")
    parser.add_argument("--skip-baselines", action="store_true", help="advrec only")
    parser.add_argument("--skip-compile", action="store_true",
                        help="skip the numba compile-time subprocesses")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (epoch 1 is the warm-up)")

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    from advrec.evaluation import Evaluator

    log(f"{dt.date.today()} python {platform.python_version()} torch {torch.__version__} "
        f"cpus {os.cpu_count()} threads {args.threads}")
    t0 = time.perf_counter()
    train, test = load_data()
    emit("load", "advrec", time.perf_counter() - t0, "s", n_users=train.n_users,
         n_items=train.n_items, n_train=len(train), n_test=len(test))
    t0 = time.perf_counter()
    evaluator = Evaluator(train, test, ks=(10, 20), metrics=("hr", "ndcg", "recall"))
    init_s = time.perf_counter() - t0

    if not args.skip_compile:
        bench_compile(args.threads)
    bench_sampling(train, args.seed)

    runs = [("numba", "adagrad", 512, 0.05), ("numba", "adagrad", 4096, 0.05),
            ("numba", "sgd", 4096, args.sgd_lr), ("torch", "adagrad", 4096, 0.05)]
    for backend, optimizer, batch_size, lr in runs:
        run_advrec(train, evaluator, args, backend, optimizer, batch_size, lr)

    # Full-ranking evaluation time itself (the last advrec model is still warm in cache).
    from advrec.models import BPRMF

    model = BPRMF(n_factors=args.dim, epochs=1, backend="numba", seed=args.seed).fit(
        train, progress=False)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        evaluator.evaluate(model)
        times.append(time.perf_counter() - t0)
    emit("eval_full_ranking", "advrec", statistics.median(times), "s", ks=[10, 20],
         n_eval_users=evaluator.n_users, evaluator_init_s=init_s, threads=args.threads,
         load1=load1())

    if args.skip_baselines:
        return
    run_implicit(train, evaluator, args)
    try:
        import cornac  # noqa: F401
    except ImportError as exc:
        log(f"cornac not available ({exc}); skipped")
        return
    ds, uidx, iidx = cornac_data(train)
    run_cornac(train, evaluator, args, ds, uidx, iidx, lr=0.001, headline=True)
    if args.cornac_tuned_lr > 0:
        run_cornac(train, evaluator, args, ds, uidx, iidx, lr=args.cornac_tuned_lr,
                   headline=False)


if __name__ == "__main__":
    main()
