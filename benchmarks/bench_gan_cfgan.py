"""CFGAN epoch time on cfgan-ml100k with the official ML-100K hyper-parameters.

Prints one JSON line per figure to stdout (progress goes to stderr)::

    python benchmarks/bench_gan_cfgan.py [--epochs 3] [--threads 1] [--mode item] [--device cpu]

One epoch = one official outer iteration: ZR/PM sampling, 2 D passes (batch 64) and 4 G passes
(batch 32) over all rows (1,653 item vectors in item mode). ``cfgan_epoch`` is the median of
epochs 2..N (epoch 1 is reported as ``cfgan_first_epoch``), without validation; the parts of an
epoch and the validation/scoring cost are timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

from advrec.data.datasets import load_split
from advrec.data.splits import validation_split
from advrec.evaluation import Evaluator
from advrec.models.gan.cfgan import (
    CFGAN,
    _adam,
    _set_trainable,
    discriminator_loss,
    generator_loss,
)

DATASET = "cfgan-ml100k"


def log(msg: str) -> None:
    print(f"[bench_gan_cfgan] {msg}", file=sys.stderr, flush=True)


def emit(bench: str, value: float, unit: str, **settings) -> None:
    """One figure as one JSON line on stdout."""
    row = {"bench": bench, "impl": "advrec-torch", "dataset": DATASET,
           "value": float(f"{value:.5g}"), "unit": unit, "load1": round(os.getloadavg()[0], 2)}
    print(json.dumps({**row, **settings}), flush=True)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of ``fn`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_epochs(train, args, settings: dict) -> CFGAN:
    model = CFGAN(epochs=args.epochs, mode=args.mode, valid_ratio=0.0, device=args.device)
    model.fit(train, progress=False)
    seconds = [h["seconds"] for h in model.history_]
    steady = seconds[1:] or seconds
    emit("cfgan_epoch", statistics.median(steady), "s/epoch", min=min(steady), max=max(steady),
         timed_epochs=len(steady), **settings)
    emit("cfgan_first_epoch", seconds[0], "s", **settings)
    n_rows = model.cond_.shape[0]
    updates = (model.g_steps * -(-n_rows // model.g_batch_size)
               + model.d_steps * -(-n_rows // model.d_batch_size))
    emit("cfgan_updates_per_epoch", updates, "mini-batch updates", **settings)
    return model


def bench_parts(model: CFGAN, settings: dict) -> None:
    """Sampling, one D pass, one G pass (fresh optimisers on the trained net)."""
    net, rows = model.net_, model.cond_
    rng = torch.Generator(device=rows.device).manual_seed(0)
    zr, pm = model._negatives(rows, rng)
    emit("cfgan_sampling", timed(lambda: model._negatives(rows, rng)), "s", **settings)
    d_opt, g_opt = _adam(net.dis, 1e-4, 0.0), _adam(net.gen, 1e-4, 1e-3)
    d_pass = lambda: model._pass(rows, model.d_batch_size, rng, d_opt,  # noqa: E731
                                 lambda b: discriminator_loss(net, rows[b], pm[b]))
    g_pass = lambda: model._pass(rows, model.g_batch_size, rng, g_opt,  # noqa: E731
                                 lambda b: generator_loss(net, rows[b], pm[b], zr[b], 0.03))
    emit("cfgan_d_pass", timed(d_pass), "s", batch_size=model.d_batch_size, **settings)
    _set_trainable(net.dis, False)  # as in training: D's weights get no gradient in G passes
    emit("cfgan_g_pass", timed(g_pass), "s", batch_size=model.g_batch_size, **settings)
    _set_trainable(net.dis, True)


def bench_scoring(model: CFGAN, train, settings: dict) -> None:
    """Full score matrix (G over every row) and one validation evaluation of P@5."""
    def full() -> None:
        model._cache = None
        model.score()
    emit("cfgan_score_all_users", timed(full), "s", **settings)
    fit_part, valid = validation_split(train, "random", 0.1, seed=0)
    evaluator = Evaluator(fit_part, valid, ks=(5,), metrics=("precision",), coverage=False)
    emit("cfgan_validation_eval", timed(lambda: evaluator.evaluate(model)), "s", **settings)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mode", default="item", choices=("user", "item"))
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train, _ = load_split(DATASET)
    settings = dict(mode=args.mode, threads=args.threads, device=args.device)
    log(f"training {args.epochs} epochs ({args.mode} mode, {args.device})")
    model = bench_epochs(train, args, settings)
    bench_parts(model, settings)
    bench_scoring(model, train, settings)


if __name__ == "__main__":
    main()
