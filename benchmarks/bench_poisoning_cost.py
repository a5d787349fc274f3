"""What the optimised and generated poisoning attacks cost: wall time and peak memory of
generating 1 % fake users on ML-100K (u1) and ML-1M-implicit, each attack in a fresh process
(one JSON line per figure).

Baselines in the same run: the hand-crafted average attack of the same size and profile length
(what a recipe costs), and a process that only loads the data (the memory floor every attack
starts from). The optimised attacks run with their own defaults except the counts named in
``RUNS`` (outer epochs, rounds, steps), lowered where the default would take hours on a CPU;
each line states the settings it ran with and ``units``, the count its time grows with, so the
default's cost can be read off (linearly). RevAdv runs at several unroll lengths on ML-1M-implicit
to show how memory grows with the unroll (the graph of the last ``unroll_steps`` epochs is kept).

    python benchmarks/bench_poisoning_cost.py [--datasets ml-100k ml-1m-implicit] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time

SIZE = 0.01
N_TARGETS = 3
# (attack, params, what the time grows with); per data set
RUNS = {
    "ml-100k": [
        ("pga", {}, "iterations=20"),
        ("sgld", {}, "iterations=50"),
        ("revadv", {"adv_epochs": 3}, "adv_epochs (default 30)"),
        ("influence", {"steps": 20}, "steps (default 100)"),
        ("dlattack", {"fake_per_round": 9}, "rounds (default: one per fake user, 9)"),
        ("aush", {}, "epochs=150 (the default)"),
        ("legup", {"epochs": 1}, "outer epochs (default 3)"),
        ("poisonrec", {"iterations": 2}, "iterations × episodes retrainings (default 10 × 4)"),
    ],
    "ml-1m-implicit": [
        ("pga", {}, "iterations=20"),
        ("revadv", {"adv_epochs": 1, "unroll_steps": 2}, "adv_epochs (default 30)"),
        ("revadv", {"adv_epochs": 1, "unroll_steps": 5}, "adv_epochs (default 30)"),
        ("revadv", {"adv_epochs": 1}, "adv_epochs (default 30)"),
        ("influence", {"steps": 5}, "steps (default 100)"),
        ("dlattack", {"epochs": 1, "fake_per_round": 60},
         "surrogate epochs × rounds (default 20 × 60)"),
    ],
}
FOLDS = {"ml-100k": "u1", "ml-1m-implicit": None}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(dataset: str, attack: str | None, params: dict, threads: int, out) -> None:
    """Load the data, then (unless ``attack`` is None) generate the fake profiles; report
    seconds, peak RSS before and after, and the number and length of the profiles."""
    import torch

    torch.set_num_threads(threads)
    from advrec.attacks.injection import make_injection
    from advrec.attacks.shilling import select_targets
    from advrec.data.datasets import load_split
    from advrec.errors import AdvrecError

    train = load_split(dataset, fold=FOLDS[dataset])[0]
    targets = select_targets(train, N_TARGETS, "quantile", seed=0)
    loaded = rss_mib()
    if attack is None:
        out.send({"seconds": 0.0, "rss_loaded_mib": loaded, "peak_rss_mib": loaded})
        return
    try:
        implicit = train.ratings is None  # as experiments do: rated data get rated profiles
        if attack == "average":
            length = int(round(len(train) / len(train.active_users)))
            made = make_injection(attack, size=SIZE, filler=max(1, length - N_TARGETS),
                                  implicit=implicit)
        else:
            made = make_injection(attack, size=SIZE, device="cpu", implicit=implicit, **params)
        t0 = time.perf_counter()
        fake = made.generate(train, targets, seed=0)  # raw ids, as select_targets gives
        seconds = time.perf_counter() - t0
    except AdvrecError as exc:
        out.send({"error": str(exc), "rss_loaded_mib": loaded})
        return
    cuda = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None
    out.send({"seconds": seconds, "rss_loaded_mib": loaded, "peak_rss_mib": rss_mib(),
              "n_fake": fake.n_users, "profile_length": len(fake) / max(1, fake.n_users),
              "cuda_peak_mib": cuda})


def in_fresh_process(target, *args) -> dict:
    """``target(*args, pipe)`` in a spawned process (its own peak RSS); what it sends back."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, send))
    proc.start()
    result = recv.recv() if recv.poll(3 * 3600) else {"error": "no answer in 3 h"}
    proc.join()
    return result


def measure(dataset: str, attack: str | None, params: dict, threads: int) -> dict:
    return in_fresh_process(_child, dataset, attack, params, threads)


def emit(dataset: str, attack: str, params: dict, units: str, threads: int, res: dict) -> None:
    row = {"bench": "poisoning_cost", "impl": "advrec", "dataset": dataset, "attack": attack,
           "size": SIZE, "params": params, "units": units, "threads": threads,
           **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}}
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--attacks", nargs="+", default=None, help="only these attacks")
    args = ap.parse_args()
    for dataset in args.datasets:
        emit(dataset, "none (data loaded)", {}, "baseline: memory floor", args.threads,
             measure(dataset, None, {}, args.threads))
        emit(dataset, "average", {}, "baseline: hand-crafted, same size and length",
             args.threads, measure(dataset, "average", {}, args.threads))
        for attack, params, units in RUNS[dataset]:
            if args.attacks and attack not in args.attacks:
                continue
            res = measure(dataset, attack, params, args.threads)
            emit(dataset, attack, params, units, args.threads, res)


if __name__ == "__main__":
    main()
