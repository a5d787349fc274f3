"""How noticeable optimised fake profiles are: the fake-profile detectors of docs/detection.md,
trained on hand-crafted attacks only, run against the profiles of the optimised attacks (one
JSON line per attack × size × detector).

The profiles are those an experiment kept (``<output>/profiles/``, e.g. of
``advrec run examples/poisoning.yaml``), read back with the targets they were made for, so the
detectors face exactly what the victims were trained on. Supervised detectors (svm, knn, forest)
learn from the hand-crafted types of ``advrec.evaluation.detection.DEFAULT_ATTACKS`` at sizes
3/10 % and fillers 3/10 % and half the real users (the detection protocol); pca and rule need no
training. The baseline in the same run is the same detectors against the hand-crafted attacks
of the experiment, each held out of the detectors' training (leave-one-type-out).

    python benchmarks/bench_poisoning_detection.py runs/poisoning [--detectors svm pca ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from advrec.attacks.injection import ProfileFile, is_poisoning
from advrec.data.datasets import load_split
from advrec.evaluation.detection import defend
from advrec.experiments.store import ResultsStore

DETECTORS = ("svm", "knn", "forest", "pca", "rule")


def emit(**fields) -> None:
    print(json.dumps({"bench": "detection_of_fake_profiles", "impl": "advrec", **fields}),
          flush=True)


def kept_profiles(folder: Path) -> list[dict]:
    """One entry per (attack, size) of the undefended shilling cells of the experiment in
    ``folder``: its profiles file, targets, data set and fold (the first seed's)."""
    seen, out = set(), []
    rows = ResultsStore(folder, read_only=True).rows(per_user=False)
    for r in sorted(rows, key=lambda r: r["seed"]):
        cfg, measures = r.get("attack_config") or {}, r.get("measures") or {}
        if r["scenario"] != "shilling" or cfg.get("defense") != "none" or \
                "profiles" not in measures:
            continue
        key = (r["attack"], float(cfg["size"]))
        if key in seen:
            continue
        seen.add(key)
        data = r["config"]["data"]
        out.append({"attack": r["attack"], "size": float(cfg["size"]), "seed": r["seed"],
                    "targets": cfg["targets"], "path": folder / measures["profiles"],
                    "dataset": data["dataset"], "fold": data.get("fold")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="an experiment's output folder (with profiles/)")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    args = ap.parse_args()
    entries = kept_profiles(args.run)
    if not entries:
        raise SystemExit(f"{args.run}: no shilling cells with kept profiles")
    splits, caches = {}, {}
    for e in entries:
        split = (e["dataset"], e["fold"], e["seed"])
        if split not in splits:
            splits[split] = load_split(e["dataset"], fold=e["fold"])[0]
        train = splits[split]
        fake = ProfileFile(path=str(e["path"])).generate(train, e["targets"])
        poisoned = train.concat(fake)
        kind = "optimised" if is_poisoning(e["attack"]) else "hand-crafted (held out)"
        for detector in args.detectors:
            _, m = defend(train, poisoned, detector, e["attack"], e["targets"], seed=e["seed"],
                          cache=caches.setdefault(split, {}))
            emit(dataset=f"{e['dataset']}/{e['fold']}", attack=e["attack"], kind=kind,
                 size=e["size"], n_fake=fake.n_users, detector=detector,
                 recall=round(m["recall"], 4), precision=round(m["precision"], 4),
                 roc_auc=round(m["roc_auc"], 4), flagged=m["flagged"],
                 false_positives=m["false_positives"])


if __name__ == "__main__":
    main()
