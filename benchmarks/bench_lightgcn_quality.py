"""LightGCN's quality against BPR-MF trained with the same number of epochs, on the NGCF/LightGCN
protocol (full ranking over every test user, Recall@20 / NDCG@20), logged as training goes.

Prints one JSON line per evaluation to stdout::

    python benchmarks/bench_lightgcn_quality.py [--dataset yelp2018-lightgcn] [--epochs 1000]
        [--batch-size 2048] [--lr 0.001] [--eval-every 20] [--minutes 0] [--threads 2]
        [--device cpu] [--models lightgcn,bprmf]

The defaults are the paper's schedule (batch 2048, Adam lr 0.001, L2 1e-4, 3 layers, dim 64,
up to 1,000 epochs; its Table 3 reports Recall@20 0.0649 / NDCG@20 0.0530 on yelp2018). Where a
CPU cannot afford it, a larger batch with a larger learning rate is the schedule to try, and
``--minutes`` stops each model after that much training time (each model gets the same number of
epochs: BPR-MF runs as many as LightGCN managed). Each line has the model, the epoch, the
training seconds so far and the metrics, beside the paper's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

import torch

from advrec.data.datasets import load_split
from advrec.evaluation import Evaluator
from advrec.models import BPRMF, LightGCN

PAPER = {"yelp2018-lightgcn": {"recall@20": 0.0649, "ndcg@20": 0.0530}}


class _Stop(Exception):
    """Raised by the validation hook once the time budget is spent."""


def run(name: str, model, train, evaluator, dataset: str, minutes: float, settings: dict) -> int:
    """Train ``model`` with an evaluation every ``validate_every`` epochs; the last epoch run."""
    clock = {"train": 0.0, "start": time.perf_counter(), "epoch": 0}

    def validate(m) -> float:
        clock["train"] += time.perf_counter() - clock["start"]
        clock["epoch"] += m.validate_every
        t0 = time.perf_counter()
        summary = evaluator.evaluate(m).summary
        row = {"bench": "quality", "model": name, "dataset": dataset, "epoch": clock["epoch"],
               "train_s": round(clock["train"], 1),
               "eval_s": round(time.perf_counter() - t0, 1),
               "recall@20": round(summary["recall@20"], 4),
               "ndcg@20": round(summary["ndcg@20"], 4),
               "paper": PAPER.get(dataset), **settings}
        print(json.dumps(row), flush=True)
        clock["start"] = time.perf_counter()
        if minutes and clock["train"] > 60 * minutes:
            raise _Stop
        return summary["ndcg@20"]

    with contextlib.suppress(_Stop):
        model.fit(train, validate=validate, progress=False)
    return clock["epoch"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="yelp2018-lightgcn")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="stop each model after this much training time (0: no limit)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="lightgcn,bprmf")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_split(args.dataset)
    print(f"[bench_lightgcn_quality] {args.dataset}: {train.shape[0]} users, "
          f"{train.shape[1]} items, {len(train)} pairs", file=sys.stderr)
    evaluator = Evaluator(train, test, ks=(20,), metrics=("recall", "ndcg"), coverage=False,
                          device=args.device)
    settings = dict(threads=args.threads, device=args.device)
    epochs = args.epochs
    for name in args.models.split(","):
        if name == "lightgcn":
            model = LightGCN(epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                             validate_every=args.eval_every, device=args.device, seed=0)
            cfg = dict(batch_size=args.batch_size, lr=args.lr)
        elif name == "bprmf":
            # BPR-MF's own defaults, the same number of epochs as LightGCN ran
            model = BPRMF(epochs=epochs, validate_every=args.eval_every, device=args.device,
                          seed=0)
            cfg = dict(batch_size=model.batch_size, lr=model.lr, optimizer=model.optimizer)
        else:
            raise SystemExit(f"--models: unknown model {name!r} (expected lightgcn or bprmf)")
        ran = run(name, model, train, evaluator, args.dataset, args.minutes,
                  {**settings, **cfg})
        epochs = min(epochs, ran)


if __name__ == "__main__":
    main()
