"""IRGAN on MovieLens-100K u1.base/u1.test, the paper's item-recommendation protocol.

Ratings ≥ 4 are the positives, for training and for relevance (both parts binarised); full ranking
over the items a user has no positive for in training; P@3/5/10 and nDCG@3/5/10 averaged over the
users with at least one test positive. Rows: the DNS-pre-trained MF (the generator's start), IRGAN
with REINFORCE (official update) and IRGAN with the Gumbel-softmax update, both started from that
same MF. Epochs are selected on a validation split carved from u1.base, never on u1.test.

    .venv/bin/python examples/irgan_ml100k.py                # default run, ≈ 3 min on 2 cores
    .venv/bin/python examples/irgan_ml100k.py --quick        # smoke run, < 1 min

Prints a Markdown table, then one JSON line per model (stdout). The official schedule is 15 outer
epochs of 100 discriminator + 50 generator passes; the default here keeps it for REINFORCE and
shortens the Gumbel run (``--gumbel-epochs``/``--gumbel-g-epochs``), whose step costs
O(samples × items).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from advrec.data.datasets import load_split
from advrec.data.filters import binarize
from advrec.evaluation.evaluator import Evaluator
from advrec.evaluation.selection import holdout_validation
from advrec.models.gan.irgan import IRGAN

KS = (3, 5, 10)
METRICS = ("precision", "ndcg")
PAPER = {  # Wang et al. SIGIR'17, Table 3 (MovieLens); "MF" is their best pre-trained baseline
    "paper LambdaFM (pre-trained MF)": {"precision@3": 0.3845, "precision@5": 0.3474,
                                        "ndcg@3": 0.3902},
    "paper IRGAN": {"precision@3": 0.4072, "precision@5": 0.3750, "ndcg@3": 0.4222},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=15, help="outer epochs, REINFORCE (paper: 15)")
    p.add_argument("--d-epochs", type=int, default=100, help="D passes per outer epoch (100)")
    p.add_argument("--g-epochs", type=int, default=50, help="G passes per outer epoch (50)")
    p.add_argument("--gumbel-epochs", type=int, default=12, help="outer epochs, Gumbel run")
    p.add_argument("--gumbel-g-epochs", type=int, default=20, help="G passes per epoch, Gumbel")
    p.add_argument("--gumbel-samples", type=float, default=0.25,
                   help="relaxed samples per positive in the Gumbel run (REINFORCE: 2)")
    p.add_argument("--gumbel-temperature", type=float, default=0.5)
    p.add_argument("--pretrain-epochs", type=int, default=200)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a smoke run with a tiny schedule")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.d_epochs, args.g_epochs = 2, 10, 5
        args.gumbel_epochs, args.gumbel_g_epochs, args.pretrain_epochs = 2, 3, 30
    return args


def log(msg: str) -> None:
    print(f"[irgan_ml100k] {msg}", file=sys.stderr, flush=True)


def fit(model: IRGAN, train, label: str, **kw) -> tuple[IRGAN, float]:
    log(f"training {label} …")
    start = time.perf_counter()
    # the epoch is chosen on the model's own validation hold-out of train (valid_ratio 0.1)
    model.fit(train, **holdout_validation(model, train), progress=None, **kw)
    seconds = time.perf_counter() - start
    log(f"{label}: {seconds:.0f} s, best epoch {model.best_epoch_} of {model.epochs}")
    return model, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    train, test = load_split("ml-100k", fold="u1")
    train, test = binarize(train, 4), binarize(test, 4)
    evaluator = Evaluator(train, test, ks=KS, metrics=METRICS, coverage=False)
    common = dict(device=args.device, seed=args.seed, d_epochs=args.d_epochs,
                  pretrain_epochs=args.pretrain_epochs, pretrain_batch_size=256)
    reinforce, t_reinforce = fit(
        IRGAN(epochs=args.epochs, g_epochs=args.g_epochs, **common), train, "IRGAN (REINFORCE)")
    gumbel, t_gumbel = fit(
        IRGAN(epochs=args.gumbel_epochs, g_epochs=args.gumbel_g_epochs, generator_update="gumbel",
              gumbel_temperature=args.gumbel_temperature,
              samples_per_positive=args.gumbel_samples, **common),
        train, "IRGAN (Gumbel)", init_from=reinforce)
    rows = [
        ("pre-trained MF (DNS)", reinforce.score_pretrained, reinforce.pretrain_time_, None),
        ("IRGAN REINFORCE", reinforce, t_reinforce - reinforce.pretrain_time_, reinforce),
        ("IRGAN Gumbel", gumbel, t_gumbel, gumbel),
    ]
    evaluated = [(name, evaluator.evaluate(m), sec, model) for name, m, sec, model in rows]
    results = [(name, res.summary, sec, model) for name, res, sec, model in evaluated]
    print(table(results))
    for name, summary, seconds, model in results:
        print(json.dumps(record(name, summary, seconds, model, args)))
    base = evaluated[0][1]
    for name, res, _, _ in evaluated[1:]:
        for metric in ("precision@3", "precision@5", "ndcg@3"):
            test = res.compare(base, metric)  # paired t-test over the test users
            print(json.dumps({"example": "irgan_ml100k", "paired_ttest": f"{name} vs pre-trained",
                              "metric": metric, **{k: _clean(v) for k, v in test.items()}}))


def table(results) -> str:
    keys = [f"{m}@{k}" for m in METRICS for k in KS]
    lines = ["| model | " + " | ".join(keys) + " | seconds |",
             "| --- |" + " ---: |" * (len(keys) + 1)]
    for name, summary, seconds, _ in results:
        cells = " | ".join(f"{summary[k]:.4f}" for k in keys)
        lines.append(f"| {name} | {cells} | {seconds:.0f} |")
    for name, summary in PAPER.items():
        cells = " | ".join(f"{summary[k]:.4f}" if k in summary else "–" for k in keys)
        lines.append(f"| {name} | {cells} | |")
    return "\n".join(lines)


def record(name: str, summary: dict, seconds: float, model: IRGAN | None, args) -> dict:
    row = {"example": "irgan_ml100k", "model": name, "dataset": "ml-100k/u1", "seed": args.seed,
           "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in summary.items()}}
    if model is not None:
        row.update(epochs=model.epochs, d_epochs=model.d_epochs, g_epochs=model.g_epochs,
                   best_epoch=model.best_epoch_, generator_update=model.generator_update,
                   history=[{k: _clean(v) for k, v in h.items()} for h in model.history_])
    return row


def _clean(v):
    """Rounded floats, NaN as null (strict JSON)."""
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 5)
    return v


if __name__ == "__main__":
    main()
