"""Reproduce CFGAN (Chae et al., CIKM'18) on the authors' ML-100K split, with an ablation.

    python examples/cfgan_ml100k.py [--epochs 200] [--ablation-epochs 50] [--threads 1]
                                    [--refit | --no-validation] [--progress]

Trains CFGAN with the official ML-100K hyper-parameters (item-based, ZP with ZR 70 % / PM 70 %,
α = 0.03, G 400×1, D 125×1, Adam 1e-4, batches 32/64, 4 G and 2 D passes per epoch, reg_G 1e-3),
picks the epoch on a 10 % validation hold-out carved from training (never on test), and prints
P/R/nDCG/MRR@5 and @20 on the test split next to the paper's numbers. The ablation "no negative
sampling" is the same model with both ratios 0 (G only has to reproduce the purchased entries).
A table goes to stderr, and one JSON line per figure to stdout. ``--refit`` retrains on all the
training data for the chosen number of epochs (twice the time); ``--no-validation`` is the
authors' script's protocol (all training data, the last epoch of a fixed-length run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from advrec.data.datasets import load_split
from advrec.evaluation import Evaluator, holdout_validation
from advrec.models.gan.cfgan import CFGAN

PAPER = {"precision@5": 0.444, "precision@20": 0.294, "recall@5": 0.152, "recall@20": 0.360,
         "ndcg@5": 0.476, "ndcg@20": 0.433, "mrr@5": 0.681, "mrr@20": 0.693}
METRICS = ("precision", "recall", "ndcg", "mrr")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def run(name: str, model: CFGAN, train, evaluator: Evaluator, progress: bool) -> dict:
    """Fit (the epoch chosen on the model's own hold-out, unless valid_ratio is 0), evaluate on
    test, emit the figures; returns the test summary."""
    t0 = time.perf_counter()
    model.fit(train, **holdout_validation(model, train), progress=progress)
    seconds = time.perf_counter() - t0
    summary = evaluator.evaluate(model).summary
    per_epoch = sum(h["seconds"] for h in model.history_) / max(len(model.history_), 1)
    logs = getattr(model, "selection_history_", model.history_)
    best_valid = max((h.get("validation", float("nan")) for h in logs), default=float("nan"))
    selection = ("none (last epoch)" if model.valid_ratio == 0 else
                 "validation + refit" if model.refit else "validation")
    log(f"{name}: {model.epochs} epochs in {seconds:.0f} s ({per_epoch:.2f} s/epoch training), "
        f"best epoch {model.best_epoch_} (validation {model.valid_metric} {best_valid:.4f})")
    for metric, value in summary.items():
        emit(model=name, figure=metric, value=round(value, 4), paper=PAPER.get(metric),
             split="test", epochs=model.epochs, best_epoch=model.best_epoch_,
             selection=selection)
    emit(model=name, figure="fit_seconds", value=round(seconds, 1), unit="s")
    emit(model=name, figure="seconds_per_epoch", value=round(per_epoch, 3), unit="s")
    emit(model=name, figure="best_validation_" + model.valid_metric, value=round(best_valid, 4))
    return summary


def table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["| metric | paper | " + " | ".join(names) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for metric, paper in PAPER.items():
        cells = " | ".join(f"{results[n][metric]:.3f}" for n in names)
        lines.append(f"| {metric} | {paper:.3f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=CFGAN().epochs,
                   help="official outer iterations (each: 2 D passes + 4 G passes)")
    p.add_argument("--ablation-epochs", type=int, default=50,
                   help="epochs of the no-negative-sampling run (0 skips it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--refit", action="store_true",
                   help="after choosing the epoch on validation, retrain on all training data")
    p.add_argument("--no-validation", action="store_true",
                   help="the authors' protocol: all training data, keep the last epoch")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    train, test = load_split("cfgan-ml100k")
    evaluator = Evaluator(train, test, ks=(5, 20), metrics=METRICS, coverage=False)
    common = dict(seed=args.seed, device=args.device, refit=args.refit,
                  valid_ratio=0.0 if args.no_validation else 0.1)
    results = {"CFGAN (ZP)": run("cfgan-zp", CFGAN(epochs=args.epochs, **common),
                                 train, evaluator, args.progress)}
    if args.ablation_epochs > 0:
        ablation = CFGAN(epochs=args.ablation_epochs, zr_ratio=0.0, pm_ratio=0.0, **common)
        results["no negative sampling"] = run("cfgan-no-negatives", ablation, train, evaluator,
                                              args.progress)
    log("\ncfgan-ml100k, full ranking over non-training items (test split)\n")
    log(table(results))


if __name__ == "__main__":
    main()
