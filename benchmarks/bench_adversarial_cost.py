"""The cost of adversarial training: each model's adversarial epoch beside its plain epoch, in the
same run (one JSON line each).

    python benchmarks/bench_adversarial_cost.py [--dataset ml-100k] [--epochs 3] [--threads 1]
        [--repeat 3] [--models bprmf neumf lightgcn multvae cdae]

Each pair trains the same model with the same settings and seed, once with ``adv_reg = 0`` (the
plain model exactly) and once with ``adv_reg = 1`` switched on from the first epoch; the figure
is the median epoch time after the first, the smaller over ``--repeat`` fits of each, run
alternately (plain, adversarial, plain, ...) so that a slow spell of the machine hits both.
Targets (issue 18): APR ≤ 1.25 × BPR-MF, a deep model's adversarial epoch ≤ 1.5 × its plain
epoch. BPR-MF runs on its compiled CPU path (APR's step is built into the kernel) and on the
PyTorch path (``bprmf-torch``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

from advrec.data.datasets import load_split
from advrec.models.registry import get_model

PAIRS = {  # model name -> (plain name, adversarial name, shared params, adversarial params)
    "bprmf": ("bprmf", "apr", {"batch_size": 512}, {"eps": 0.5, "adv_reg": 1.0}),
    "bprmf-4096": ("bprmf", "apr", {"batch_size": 4096}, {"eps": 0.5, "adv_reg": 1.0}),
    "bprmf-torch": ("bprmf", "apr", {"batch_size": 4096, "backend": "torch"},
                    {"eps": 0.5, "adv_reg": 1.0}),
    "neumf": ("neumf", "neumf", {}, {"adv_reg": 1.0}),
    "lightgcn": ("lightgcn", "lightgcn", {}, {"adv_reg": 1.0}),
    "multvae": ("multvae", "multvae", {}, {"adv_reg": 1.0}),
    "cdae": ("cdae", "acae", {}, {"adv_reg": 1.0, "adv_start_epoch": 0}),
}


def emit(bench: str, impl: str, dataset: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": dataset, "value": float(f"{value:.4g}"),
           "unit": unit, **settings, "load1": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)


def epoch_seconds(model) -> float:
    times = [h["seconds"] for h in model.history_]
    return statistics.median(times[1:] if len(times) > 1 else times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=list(PAIRS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"[bench_adversarial_cost] threads={args.threads}", file=sys.stderr)
    train, _ = load_split(args.dataset)
    for key in args.models:
        plain_name, adv_name, shared, adv = PAIRS[key]
        common = {"epochs": args.epochs, "seed": 0, **shared}
        plain_cls, adv_cls = get_model(plain_name), get_model(adv_name)
        extra = {} if adv_cls is not plain_cls else {"adv_reg": 0.0}  # λ = 0: the plain model
        p = a = float("inf")
        for _ in range(args.repeat):
            plain = plain_cls(**common, **extra).fit(train, progress=False)
            robust = adv_cls(**common, **adv).fit(train, progress=False)
            p, a = min(p, epoch_seconds(plain)), min(a, epoch_seconds(robust))
        target = "<= 1.25" if key.startswith("bprmf") and "torch" not in key else "<= 1.5"
        settings = dict(epochs=args.epochs, threads=args.threads, repeat=args.repeat, **shared)
        emit("epoch_time", plain_name, args.dataset, p, "s/epoch", **settings)
        emit("epoch_time", f"{adv_name} (adversarial)", args.dataset, a, "s/epoch",
             **settings, **adv)
        emit("adversarial_over_plain", key, args.dataset, a / p, "ratio", target=target,
             **settings)


if __name__ == "__main__":
    main()
