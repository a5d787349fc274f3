"""RevAdv's official synthetic experiment (Tang, Wen & Wang, RecSys 2020, ``synthetic_exp.ipynb``)
and a real-data check on ML-100K, one JSON line per figure.

**Synthetic** (``--part synthetic``): 1000 users of which the last 100 are fake, 300 items,
X = 1{N(0,1)^{1000×20} · N(0,1)^{20×300} > 5}; one random training item of each real user is
held out as its test item; target item 0. The fake rows start as their own generated rows. The
surrogate is the notebook's LFM (the same WMF as the attack's: d 16, randn init, Adam lr 0.5, no
weight decay, full batch, 100 epochs all unrolled); 50 outer epochs of SGD (lr 1, momentum 0.99)
on the raw gradient, threshold projection at 0.2; one call of ``optimise_fake_rows``, the
attack's own loop. Measured as the notebook does, on the surrogate: HR@10 of the target (over
all 900 real users; a user holding item 0 never counts) and of the test item, at the first
outer epoch (the initial fake rows: ``before``) and the last (``after``), plus the best epoch
and the mean of the last ten (the curve has dips, in the notebook too). The paper/notebook:
target 0.039 → 0.639, test ≈ 0.48. Each seed draws its own data set. Figures per seed:
``synthetic_target_hr10_{before,after,best,last10_mean}``, ``synthetic_test_hr10_{before,
after}``, ``synthetic_target_hr10_eligible_after`` (advrec's measure: users without item 0,
ties against the target), ``synthetic_adv_loss``, ``synthetic_fake_profile_length``,
``synthetic_seconds``, ``synthetic_peak_rss`` (MiB: the optimisation's peak resident memory
over the process's before it) and ``synthetic_unroll_floats_per_cell`` (that peak in floats
per unrolled step × row × item: the constant of the revadv docstring).

**Real data** (``--part ml100k``): ML-100K binarised (ratings ≥ 4), the u1 training fold; five
targets of middling popularity; 1 % fake users (9) with the default topk budget (an average
profile: 47 items). revadv (official WMF-SGD settings, 30 outer epochs) against the random
attack of the same size and budget (``make_attack("random", implicit=True)``, same filler
count). Each is injected and measured over the real users (``measure_targets``: target
HR@10/@50 over the users not holding the target) on WMF surrogates retrained with fresh seeds
(not the attack's own) and on BPR-MF. Figures ``ml100k_{wmf,bprmf}_hr{10,50}`` with ``attack``
in (none, random, revadv), ``ml100k_revadv_own_surrogate_hr50`` (the attack's selection
measure: at its start and its best epoch, with the entries it flipped), ``ml100k_revadv_seconds``,
``ml100k_revadv_peak_rss`` and ``ml100k_unroll_floats_per_cell``.

    python benchmarks/bench_poisoning_synthetic.py [--part synthetic|ml100k|all] [--seeds 3]
        [--projections topk,threshold] [--adv-epochs N] [--threads 1]

About 1–1.5 min per synthetic seed and 4–5 min for ML-100K on one CPU thread (three times that
on a loaded machine). Each measured case runs in a fresh subprocess, so its peak resident
memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from advrec.attacks.poisoning import revadv
from advrec.attacks.poisoning.revadv import (
    RevAdvAttack,
    WMFConfig,
    optimise_fake_rows,
    target_hit_ratio,
    threshold_projection,
    train_wmf,
)

SYNTHETIC = dict(n_users=1000, n_fakes=100, n_items=300, rank=20, threshold=5.0, target=0)
LFM = WMFConfig(n_factors=16, epochs=100, unroll_steps=100, lr=0.5, l2=0.0, batch_size=None,
                weight_alpha=20.0, init_std=1.0)
OUTER = dict(adv_epochs=50, adv_lr=1.0, adv_momentum=0.99, normalize_grad=False)
PAPER = {"target_before": 0.039, "target_after": 0.639, "test": 0.48}


def emit(bench: str, dataset: str, value: float, unit: str, **settings) -> None:
    row = {"bench": bench, "impl": "advrec", "dataset": dataset,
           "value": float(f"{value:.4g}"), "unit": unit, **settings,
           "threads": torch.get_num_threads(), "load1": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- synthetic
def synthetic_data(seed: int, n_users: int = 1000, n_fakes: int = 100, n_items: int = 300,
                   rank: int = 20, threshold: float = 5.0):
    """The notebook's data: (rows: n_users × n_items 0/1, the real users' test items (-1:
    none)); the real users' test items are removed from their rows, the fakes keep theirs."""
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(n_users, rank, generator=gen) @ torch.randn(rank, n_items, generator=gen)
    rows = (dense > threshold).float()
    n_real = n_users - n_fakes
    keys = torch.rand(n_real, n_items, generator=gen).masked_fill(rows[:n_real] == 0, -1.0)
    test = keys.argmax(dim=1)
    has = keys.max(dim=1).values >= 0
    rows[torch.arange(n_real)[has], test[has]] = 0.0
    return rows, torch.where(has, test, torch.full_like(test, -1))


def notebook_hr(scores, seen, items, k: int = 10) -> float:
    """The notebook's hit ratio: share of users (item -1: left out) whose ``items`` entry ranks
    in the top ``k`` of their scores with their training items at −inf."""
    s = scores.masked_fill(seen, -torch.inf)
    ok = items >= 0
    it = items.clamp_min(0)
    rank = (s > s.gather(1, it[:, None])).sum(dim=1)
    return float(((rank < k) & ok).sum()) / int(ok.sum())


def synthetic_case(seed: int, adv_epochs: int = OUTER["adv_epochs"],
                   surrogate: WMFConfig = LFM) -> dict:
    """One run of the notebook's experiment (the same optimise_fake_rows as the attack)."""
    rows, test = synthetic_data(seed)
    n_real = SYNTHETIC["n_users"] - SYNTHETIC["n_fakes"]
    real, fake = rows[:n_real], rows[n_real:]
    seen = real > 0
    target = torch.full((n_real,), SYNTHETIC["target"], dtype=torch.long)
    targets = np.array([SYNTHETIC["target"]])

    def evaluate(scores) -> dict:
        return {"target_hr@10": notebook_hr(scores, seen, target),
                "test_hr@10": notebook_hr(scores, seen, test),
                "target_hr@10_eligible": target_hit_ratio(scores, seen, targets, 10)}

    outer = {**OUTER, "adv_epochs": adv_epochs}
    base = rss_mib()
    t0 = time.perf_counter()
    result = optimise_fake_rows(real, fake, targets, surrogate=surrogate, seed=1234,
                                project=threshold_projection(0.2), evaluate=evaluate,
                                select="target_hr@10", device="cpu", **outer)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib() - base
    return {"history": result.history, "best_epoch": result.best_epoch, "seconds": seconds,
            "peak_rss_mib": peak, "fake_items": float(result.rows.sum(1).mean()),
            "initial_fake_items": float(fake.sum(1).mean())}


def report_synthetic(seed: int, out: dict) -> None:
    h = out["history"]
    first, last = h[0], h[-1]
    best = max(h, key=lambda r: r["target_hr@10"])
    cells = LFM.unroll_steps * SYNTHETIC["n_users"] * SYNTHETIC["n_items"]
    kw = dict(seed=seed, outer_epochs=len(h), surrogate="lfm-d16-adam0.5-unroll100",
              paper_before=PAPER["target_before"], paper_after=PAPER["target_after"])
    ds = "synthetic-1000x300"
    emit("synthetic_target_hr10_before", ds, first["target_hr@10"], "hr@10", **kw)
    emit("synthetic_target_hr10_after", ds, last["target_hr@10"], "hr@10",
         within_20pct=bool(0.8 * PAPER["target_after"] <= last["target_hr@10"]
                           <= 1.2 * PAPER["target_after"]), **kw)
    emit("synthetic_target_hr10_best", ds, best["target_hr@10"], "hr@10",
         epoch=best["epoch"], **kw)
    tail = [r["target_hr@10"] for r in h[-10:]]
    emit("synthetic_target_hr10_last10_mean", ds, float(np.mean(tail)), "hr@10",
         min=round(min(tail), 4), max=round(max(tail), 4), **kw)
    emit("synthetic_target_hr10_eligible_after", ds, last["target_hr@10_eligible"], "hr@10",
         before=round(first["target_hr@10_eligible"], 4), **kw)
    emit("synthetic_test_hr10_before", ds, first["test_hr@10"], "hr@10", paper=PAPER["test"],
         **kw)
    emit("synthetic_test_hr10_after", ds, last["test_hr@10"], "hr@10", paper=PAPER["test"],
         **kw)
    emit("synthetic_adv_loss", ds, last["adv_loss"], "loss", before=round(first["adv_loss"], 2),
         **kw)
    emit("synthetic_fake_profile_length", ds, out["fake_items"], "items",
         initial=round(out["initial_fake_items"], 1), **kw)
    emit("synthetic_seconds", ds, out["seconds"], "s", **kw)
    emit("synthetic_peak_rss", ds, out["peak_rss_mib"], "MiB", **kw)
    emit("synthetic_unroll_floats_per_cell", ds, out["peak_rss_mib"] * 2**20 / 4 / cells,
         "floats", cells=cells, **kw)


# ----------------------------------------------------------------------------- ml-100k
class _Scorer:
    """A fitted WMF surrogate as a scorer (``score(users)``) for measure_targets."""

    def __init__(self, p, q):
        self.p, self.q = p, q

    def score(self, users):
        return self.p[torch.as_tensor(users)] @ self.q.T


def _recorded(runs: list):
    """optimise_fake_rows that also keeps each run's result (the attack's own history)."""
    original = revadv.optimise_fake_rows

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        runs.append(result)
        return result

    return wrapper


def ml100k_case(adv_epochs: int, victim_seeds: int, projection: str) -> dict:
    """revadv vs random on ML-100K u1 (binarised), measured on WMF and BPR-MF."""
    from advrec.attacks.poisoning.base import dense_rows
    from advrec.attacks.shilling import make_attack, select_targets
    from advrec.data.datasets import load_split
    from advrec.data.filters import binarize
    from advrec.evaluation.shilling import measure_targets
    from advrec.models.bprmf import BPRMF

    train = binarize(load_split("ml-100k", fold="u1")[0], 4)
    targets_raw = select_targets(train, 5, "quantile", seed=0)
    t = train.item_index(targets_raw)
    attack = RevAdvAttack(size=0.01, adv_epochs=adv_epochs, projection=projection,
                          device="cpu")
    n_filler = attack.profile_length(train, len(t)) - len(t)
    random_attack = make_attack("random", size=0.01, filler=n_filler, implicit=True)
    base = rss_mib()
    t0 = time.perf_counter()
    runs: list = []
    revadv.optimise_fake_rows = _recorded(runs)
    fake = attack.generate(train, targets_raw, seed=0)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib() - base
    history = runs[0].history
    key = f"target_hr@{attack.select_k}"
    poisoned = {"none": train, "random": train.concat(random_attack.generate(train, targets_raw,
                                                                             seed=0)),
                "revadv": train.concat(fake)}
    out = {"seconds": seconds, "peak_rss_mib": peak, "n_fake": attack.n_fake(train),
           "profile_length": n_filler + len(t), "targets": [str(x) for x in targets_raw],
           "measures": {}, "own_initial": history[0][key], "own_best": runs[0].best[key],
           "best_epoch": runs[0].best_epoch, "changes": sum(r["changes"] for r in history),
           "fake_items": len(fake) / attack.n_fake(train),
           "cells": attack.unroll_steps * (train.n_users + attack.n_fake(train)) * train.n_items}
    wmf = WMFConfig()
    for name, data in poisoned.items():
        rows = dense_rows(data)
        res = {}
        for k in (10, 50):
            res[f"wmf_hr{k}"] = []
        for s in range(victim_seeds):
            p, q = train_wmf(rows, wmf, seed=10_000 + s, unroll=False)
            m = measure_targets(_Scorer(p, q), train, t)
            for k in (10, 50):
                res[f"wmf_hr{k}"].append(m.hit_ratio(k))
        bpr = BPRMF(n_factors=64, epochs=30, lr=0.05, batch_size=256, seed=0).fit(data)
        m = measure_targets(bpr, train, t)
        for k in (10, 50):
            res[f"wmf_hr{k}"] = float(np.mean(res[f"wmf_hr{k}"]))
            res[f"bprmf_hr{k}"] = m.hit_ratio(k)
        out["measures"][name] = res
    return out


def report_ml100k(out: dict, adv_epochs: int, victim_seeds: int, projection: str) -> None:
    ds = "ml-100k-u1-binarised"
    kw = dict(n_fake=out["n_fake"], profile_length=out["profile_length"],
              targets=out["targets"], adv_epochs=adv_epochs, projection=projection)
    for name, res in out["measures"].items():
        for key, value in res.items():
            extra = {"victim_seeds": victim_seeds} if key.startswith("wmf") else {}
            emit(f"ml100k_{key}", ds, value, "hr", attack=name, **extra, **kw)
    emit("ml100k_revadv_own_surrogate_hr50", ds, out["own_best"], "hr",
         initial=round(out["own_initial"], 4), best_epoch=out["best_epoch"],
         changes=out["changes"], fake_items=out["fake_items"], **kw)
    emit("ml100k_revadv_seconds", ds, out["seconds"], "s", **kw)
    emit("ml100k_revadv_peak_rss", ds, out["peak_rss_mib"], "MiB", **kw)
    emit("ml100k_unroll_floats_per_cell", ds, out["peak_rss_mib"] * 2**20 / 4 / out["cells"],
         "floats", cells=out["cells"], **kw)


# ----------------------------------------------------------------------------- driver
def child(args) -> None:
    torch.set_num_threads(args.threads)
    if args.case == "synthetic":
        print(json.dumps(synthetic_case(args.seed, args.adv_epochs or OUTER["adv_epochs"])))
    else:
        print(json.dumps(ml100k_case(args.adv_epochs or 30, args.victim_seeds,
                                     args.projection)))


def run_child(*extra: str) -> dict:
    cmd = [sys.executable, __file__, *extra]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("synthetic", "ml100k", "all"), default="all")
    ap.add_argument("--seeds", type=int, default=3, help="synthetic data sets (seeds 0..n-1)")
    ap.add_argument("--adv-epochs", type=int, default=0, help="0: the paper's (50 / 30)")
    ap.add_argument("--victim-seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--projections", default="topk",
                    help="revadv projections on ML-100K, comma-separated (topk, threshold)")
    ap.add_argument("--projection", default="topk", help=argparse.SUPPRESS)
    ap.add_argument("--case", choices=("synthetic", "ml100k"), help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:
        child(args)
        return
    common = ["--threads", str(args.threads), "--adv-epochs", str(args.adv_epochs)]
    if args.part in ("synthetic", "all"):
        for seed in range(args.seeds):
            report_synthetic(seed, run_child("--case", "synthetic", "--seed", str(seed),
                                             *common))
    if args.part in ("ml100k", "all"):
        for projection in args.projections.split(","):
            out = run_child("--case", "ml100k", "--victim-seeds", str(args.victim_seeds),
                            "--projection", projection, *common)
            report_ml100k(out, args.adv_epochs or 30, args.victim_seeds, projection)


if __name__ == "__main__":
    main()
