"""What the defences against poisoning cost: wall time and peak memory on ML-100K (u1) poisoned
with 5 % average-attack profiles, each defence in a fresh process (one JSON line per figure).

Baselines in the same run: the victim's plain fit on the same poisoned data (what trimmed
learning multiplies: up to ``rounds + 1`` fits) and a process that only loads and poisons the
data (the memory floor). Defences: trimmed learning around BPR-MF and ALS MF (fraction 0.05,
3 rounds), APT around both (50 ERM users, one round: two fits of the victim, plus one fit of
the influence MF for BPR-MF), the PORE ensemble (SAR, T = 1,000 and 10,000, s = 200) with its
certificate for up to 50 fake users, and an SVM detector trained leave-one-type-out
(``defend``, its default training attacks and sizes).

    python benchmarks/bench_defence_cost.py [--threads 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from bench_poisoning_cost import in_fresh_process, rss_mib  # the same fresh-process harness

SIZE, FILLER, N_TARGETS = 0.05, 82, 3
VICTIMS = {"bprmf": {"epochs": 30}, "mf": {}}
RUNS = [  # (name, kind, options)
    ("bprmf", "fit", {}), ("mf", "fit", {}),
    ("trim-bprmf", "trim", {"model": "bprmf"}), ("trim-mf", "trim", {"model": "mf"}),
    ("apt-bprmf", "apt", {"model": "bprmf"}), ("apt-mf", "apt", {"model": "mf"}),
    ("pore-T1000", "pore", {"T": 1000}), ("pore-T10000", "pore", {"T": 10000}),
    ("svm", "detector", {}),
]


def _child(name: str | None, kind: str, options: dict, threads: int, out) -> None:
    import torch

    torch.set_num_threads(threads)
    from advrec.attacks.injection import make_injection
    from advrec.attacks.shilling import select_targets
    from advrec.data.datasets import load_split
    from advrec.models import get_model

    train, test = load_split("ml-100k", fold="u1")
    targets = select_targets(train, N_TARGETS, "quantile", seed=0)
    fake = make_injection("average", size=SIZE, filler=FILLER).generate(train, targets, seed=0)
    poisoned = train.concat(fake)
    loaded = rss_mib()
    extra: dict = {}
    t0 = time.perf_counter()
    if kind == "fit":
        get_model(name)(**VICTIMS[name], device="cpu", seed=0).fit(poisoned, progress=False)
    elif kind == "trim":
        from advrec.defenses.trim import trimmed_fit

        model = options["model"]
        res = trimmed_fit(lambda d: get_model(model)(**VICTIMS[model], device="cpu", seed=0)
                          .fit(d, progress=False), poisoned, fraction=0.05, rounds=3)
        extra = {"rounds": res.rounds, "fits": res.rounds + 1}
    elif kind == "apt":
        from advrec.defenses.apt import apt_fit

        model = options["model"]
        res = apt_fit(lambda d: get_model(model)(**VICTIMS[model], device="cpu", seed=0)
                      .fit(d, progress=False), poisoned, seed=0)
        extra = {"fits": 2, "erm_ratings": len(res.erm),
                 "surrogate_fits": 0 if model == "mf" else 1}
    elif kind == "pore":
        from advrec.defenses.pore import PORE

        PORE(T=options["T"], seed=0, device="cpu").fit(poisoned)  # the defended victim
        fit_s = time.perf_counter() - t0
        # and, as experiments do, the clean-data ensemble's certificate for 0..50 fake users
        cert = PORE(T=options["T"], seed=0, device="cpu").fit(train).certify(test, 50)
        extra = {"fit_seconds": round(fit_s, 3), "certified_hr_e0": float(cert.hit_ratio[0]),
                 "certified_hr_e5": float(cert.hit_ratio[5])}
    elif kind == "detector":
        from advrec.evaluation.detection import defend

        flags, info = defend(train, poisoned, "svm", "average", targets, seed=0)
        extra = {"recall": info["recall"], "precision": info["precision"]}
    out.send({"seconds": time.perf_counter() - t0, "rss_loaded_mib": loaded,
              "peak_rss_mib": rss_mib(), **extra})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--only", nargs="+", default=None, help="only these runs")
    args = ap.parse_args()
    runs = [("none (data loaded, poisoned)", "none", {}), *RUNS]
    for name, kind, options in runs:
        if args.only and name not in args.only and kind != "none":
            continue
        res = in_fresh_process(_child, name, kind, options, args.threads)
        row = {"bench": "defence_cost", "impl": "advrec", "dataset": "ml-100k/u1",
               "defence": name, "kind": kind, "options": options, "attack": "average",
               "size": SIZE, "threads": args.threads,
               **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
