"""Li et al.'s (NeurIPS 2016) poisoning of ALS matrix factorisation against the random and average
attacks of the same size on ML-100K fold u1 (one JSON line per figure).

Every attack injects ``round(size · 943)`` profiles of the same length (a real user's average, the
targets included); the victim, advrec's ``MF(solver="als")``, is refitted on the poisoned data.

- ``availability_rmse``: the victim's test RMSE, clean and after each attack (``pga`` and
  ``sgld`` with ``utility="availability"``, the paper's utility on the unrated entries;
  ``pga-seen``, the same on the rated entries; ``random``; ``average``) at sizes 1, 3 and 5 %
  (the claim: the availability attacks raise it more than random and average);
- ``integrity_targets``: the targets' mean predicted rating, hit ratio@10 and mean rank on the
  victim, clean and after ``pga``/``sgld`` (``utility="integrity"``) and ``average`` (3 targets of
  middling popularity);
- every line carries the seconds the attack took to generate its profiles.

    python benchmarks/bench_poisoning_availability.py [--sizes 0.01 0.03 0.05] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from advrec.attacks.poisoning.pga import PGAAttack, SGLDAttack
from advrec.attacks.shilling import make_attack, select_targets
from advrec.data.datasets import load_split
from advrec.evaluation.shilling import measure_targets, rating_errors
from advrec.models.mf import MF


def emit(bench: str, value: float, unit: str, **fields) -> None:
    row = {"bench": bench, "impl": "advrec", "dataset": "ml-100k/u1",
           "value": float(f"{value:.5g}"), "unit": unit, **fields}
    print(json.dumps(row), flush=True)


def victim() -> MF:
    return MF(solver="als", device="cpu")


def attacks(size: float, filler: int, utility: str) -> dict:
    """The compared attacks at one size: the same number of profiles, the same length."""
    return {
        "pga": PGAAttack(size=size, utility=utility, device="cpu"),
        # the availability utility measured on the rated entries (what test RMSE weighs)
        "pga-seen": PGAAttack(size=size, utility=utility, entries="seen", device="cpu"),
        "sgld": SGLDAttack(size=size, utility=utility, device="cpu"),
        "random": make_attack("random", size=size, filler=filler),
        "average": make_attack("average", size=size, filler=filler),
    }


def run(train, test, targets, size: float, utility: str, names, seed: int) -> dict:
    """Each attack's generation time and the refitted victim's measures."""
    t = train.item_index(targets)
    length = PGAAttack(size=size).profile_length(train, len(t))
    out = {}
    for name, attack in attacks(size, length - len(t), utility).items():
        if name not in names:
            continue
        t0 = time.perf_counter()
        fake = attack.generate(train, targets, seed=seed)
        seconds = time.perf_counter() - t0
        assert fake.n_users == attack.n_fake(train) and len(fake) == fake.n_users * length
        model = victim().fit(train.concat(fake), progress=False)
        m = measure_targets(model, train, t)
        out[name] = {"entries": getattr(attack, "entries", None),
                     "rmse": rating_errors(model, test)["rmse"], "seconds": seconds,
                     "n_fake": fake.n_users, "length": length,
                     "target_rating": float(np.nanmean(m.predictions)),
                     "hr@10": m.hit_ratio(10), "mean_rank": m.mean_rank()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.01, 0.03, 0.05])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-integrity", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_split("ml-100k", fold="u1")
    common = {"threads": args.threads, "seed": args.seed, "load1": round(os.getloadavg()[0], 2)}

    clean = victim().fit(train, progress=False)
    clean_rmse = rating_errors(clean, test)["rmse"]
    emit("availability_rmse", clean_rmse, "rmse", attack="none", size=0.0, **common)
    targets = select_targets(train, 1, "random", seed=args.seed)  # irrelevant to availability
    for size in args.sizes:
        res = run(train, test, targets, size, "availability",
                  ("pga", "pga-seen", "sgld", "random", "average"), args.seed)
        for name, r in res.items():
            emit("availability_rmse", r["rmse"], "rmse", attack=name, size=size,
                 rmse_shift=round(r["rmse"] - clean_rmse, 5), seconds=round(r["seconds"], 2),
                 n_fake=r["n_fake"], profile_length=r["length"], entries=r["entries"],
                 **common)

    if args.skip_integrity:
        return
    targets = select_targets(train, 3, "quantile", seed=args.seed)
    t = train.item_index(targets)
    before = measure_targets(clean, train, t)
    emit("integrity_targets", float(np.nanmean(before.predictions)), "rating", attack="none",
         size=0.0, **{"hr@10": before.hit_ratio(10), "mean_rank": before.mean_rank()},
         targets=[int(x) for x in targets], **common)
    for size in args.sizes:
        res = run(train, test, targets, size, "integrity", ("pga", "sgld", "average"),
                  args.seed)
        for name, r in res.items():
            emit("integrity_targets", r["target_rating"], "rating", attack=name, size=size,
                 **{"hr@10": r["hr@10"], "mean_rank": round(r["mean_rank"], 1)},
                 rmse=round(r["rmse"], 5), seconds=round(r["seconds"], 2), n_fake=r["n_fake"],
                 profile_length=r["length"], utility="integrity", **common)


if __name__ == "__main__":
    main()
