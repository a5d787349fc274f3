"""IRGAN speed on ml-100k u1 (ratings ≥ 4): one outer iteration of the official schedule.

Prints one JSON line per figure to stdout (progress goes to stderr)::

    python benchmarks/bench_gan_irgan.py [--epochs 1] [--threads 1] [--device cpu]   # ≈ 5 min

Figures (``value`` in seconds; outer iterations: median over ``--epochs``, after the compiled
discriminator pass has been warmed up on a toy input; components: median of 3–5 calls):

* ``irgan_outer_epoch``: one outer iteration = ``d_epochs`` (100) discriminator passes, with the
  generator's negatives redrawn every 5, + ``g_epochs`` (50) generator passes; for REINFORCE
  (2 samples per positive, official) and Gumbel-softmax (2 and 0.25 samples per positive).
  Validation is not included (it is timed on its own as ``irgan_validation``).
* ``irgan_d_pass``: one discriminator pass over the 2·|positives| examples, batch 16, for the
  compiled CPU kernel (``advrec-numba``) and the PyTorch path (``advrec-torch``);
* ``irgan_d_resample``: drawing |pos_u| generator items for every user (softmax over all items);
* ``irgan_g_pass``: one generator pass over the users (REINFORCE / Gumbel);
* ``irgan_dns_pretrain_epoch``: one DNS pre-training epoch (batch 256).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from advrec.data.datasets import load_split
from advrec.data.filters import binarize
from advrec.evaluation.selection import holdout_validation
from advrec.models.gan.irgan import IRGAN

DATASET = "ml-100k/u1 (ratings >= 4)"


def log(msg: str) -> None:
    print(f"[bench_gan_irgan] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    """1-minute load average: the machine may be shared; high values mean noisy timings."""
    return round(os.getloadavg()[0], 2)


def emit(bench: str, impl: str, value: float, unit: str = "s", **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": DATASET, "value": float(f"{value:.5g}"),
           "unit": unit, **settings, "load1": load1()}
    print(json.dumps(row), flush=True)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit(model: IRGAN, train) -> IRGAN:
    """The fit of the example: the epoch chosen on the model's own validation hold-out."""
    return model.fit(train, **holdout_validation(model, train), progress=False)


def outer_epoch(train, args, **params) -> float:
    """Median seconds of the ``--epochs`` outer iterations of a fit (validation excluded)."""
    model = fit(IRGAN(epochs=args.epochs, pretrain="none", device=args.device, seed=0, **params),
                train)
    return statistics.median(h["seconds"] for h in model.history_[1:])


def warm_up(train, args) -> None:
    """Compile (or load from the cache) the numba discriminator pass outside the timings."""
    IRGAN(epochs=1, d_epochs=1, g_epochs=1, pretrain="none", device=args.device,
          valid_ratio=0).fit(train.subset(np.arange(500)), progress=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="timed outer iterations")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = binarize(load_split("ml-100k", fold="u1")[0], 4)
    settings = dict(threads=args.threads, device=args.device, emb_dim=5, d_epochs=100,
                    g_epochs=50, d_batch_size=16, g_batch_users=64)
    warm_up(train, args)

    for update, spp in (("reinforce", 2.0), ("gumbel", 2.0), ("gumbel", 0.25)):
        log(f"outer iteration, {update}, {spp} samples per positive …")
        value = outer_epoch(train, args, generator_update=update, samples_per_positive=spp)
        emit("irgan_outer_epoch", f"advrec-{update}", value, samples_per_positive=spp,
             **settings)

    log("components …")
    model = fit(IRGAN(epochs=0, pretrain="none", device=args.device, seed=0), train)
    pairs = model._d_pairs()
    emit("irgan_d_resample", "advrec-torch", timed(model._d_pairs, 5), **settings)
    for backend in ("numba", "torch"):
        if backend == "numba" and model.device_.type != "cpu":
            continue
        model.backend_ = backend
        emit("irgan_d_pass", f"advrec-{backend}", timed(lambda: model._d_epoch(*pairs), 5),
             examples=2 * len(pairs[0]), **settings)
    model.g_epochs = 1
    for update, spp in (("reinforce", 2.0), ("gumbel", 2.0), ("gumbel", 0.25)):
        model.generator_update, model.samples_per_positive = update, spp
        emit("irgan_g_pass", f"advrec-{update}", timed(model._g_phase, 3),
             samples_per_positive=spp, **settings)
    emit("irgan_validation", "advrec-torch",
         timed(lambda: model._validate(model.generator_), 5), **settings)
    pre = fit(IRGAN(epochs=0, pretrain_epochs=3, pretrain_batch_size=256, device=args.device),
              train)
    emit("irgan_dns_pretrain_epoch", "advrec-torch", pre.pretrain_time_ / 3, dns_k=5,
         pretrain_batch_size=256, **settings)


if __name__ == "__main__":
    main()
