"""Visual recommenders on real posters: the claims of VBPR, AMR and TAaMR on ml-1m-implicit with
the ml-1m-posters features (EfficientNet-Lite0), one JSON line per figure, baselines in the same
run.

1. quality: BPR-MF (the baseline), VBPR and AMR (warm-started from that VBPR, as the AMR code
   does), Recall/nDCG@20 and HR@10 overall and recall@20 per item-popularity bucket (the test
   items' training counts), VBPR's cold-start claim;
2. feature attack: FGSM on the item features vs random noise of the same per-item L2 norm, ε a
   fraction of the feature scale, against VBPR and AMR (AMR's claim: it loses at most half);
3. TAaMR: targeted PGD / FGSM on the source class's posters (auto: the least popular frequent
   visual class toward the most popular), ε 4, 8, 16 of 255, with and without JPEG
   re-compression (q 75): success rate, PSNR, SSIM, and the source category's CHR@20 before and
   after against VBPR and AMR.

    python benchmarks/bench_content.py [--epochs 20] [--adv-epochs 5] [--threads 2]
        [--max-items 40] [--device cpu] [--skip quality attack taamr]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

BUCKETS = ((0, 10), (11, 50), (51, 200), (201, 10**9))  # training interactions of the item


def emit(**row) -> None:
    print(json.dumps({"bench": "content", "dataset": "ml-1m-implicit", **row}), flush=True)


def bucket_recall(evaluator, scorer, train, test, k: int = 20) -> dict[str, float]:
    """Recall@k of the test pairs whose item has a training count in each bucket."""
    top = evaluator.top_k(scorer, k)
    users = evaluator.users  # ascending
    counts = np.bincount(train.items, minlength=train.n_items)
    row = np.clip(np.searchsorted(users, test.users), 0, len(users) - 1)
    keep = users[row] == test.users
    hits = (top[row[keep]] == test.items[keep, None]).any(1)
    c = counts[test.items[keep]]
    out = {}
    for lo, hi in BUCKETS:
        m = (c >= lo) & (c <= hi)
        out[f"recall@{k}[{lo}-{hi if hi < 10**9 else 'inf'}]"] = (
            float(hits[m].mean()) if m.any() else float("nan"))
        out[f"pairs[{lo}-{hi if hi < 10**9 else 'inf'}]"] = int(m.sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--adv-epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-items", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", nargs="*", default=[])
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from advrec.attacks.perturbation import fgsm, perturbed_scorer, random_perturbation
    from advrec.data.datasets import load_split
    from advrec.evaluation import Evaluator
    from advrec.evaluation.robustness import category_hit_ratio
    from advrec.models import AMR, BPRMF, VBPR
    from advrec.models.vision import poster_features

    train, test = load_split("ml-1m-implicit")
    t0 = time.perf_counter()
    features = poster_features(items=train.item_ids, progress=False)
    emit(figure="features", seconds=round(time.perf_counter() - t0, 2),
         items=int(features.n_items), present=int(features.present.sum()), dim=features.dim)
    ev = Evaluator(train, test, ks=(10, 20), metrics=("recall", "ndcg", "hr"), coverage=False,
                   device=args.device)
    models = {}
    for name, make in (
            ("bprmf", lambda: BPRMF(epochs=args.epochs, device=args.device)),
            ("vbpr", lambda: VBPR(epochs=args.epochs, device=args.device)),
            ("amr", lambda: AMR(epochs=args.adv_epochs, device=args.device))):
        t0 = time.perf_counter()
        model = make()
        if name == "bprmf":
            model.fit(train, progress=False)
        elif name == "vbpr":
            model.fit(train, item_features=features, progress=False)
        else:
            model.fit(train, init_from=models["vbpr"], progress=False)
        seconds = time.perf_counter() - t0
        models[name] = model
        if "quality" in args.skip:
            continue
        res = ev.evaluate(model)
        emit(figure="quality", model=name, epochs=args.adv_epochs if name == "amr"
             else args.epochs, fit_seconds=round(seconds, 1),
             **{m: round(v, 4) for m, v in res.summary.items()},
             **{k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in bucket_recall(ev, model, train, test).items()})

    if "attack" not in args.skip:
        for name in ("vbpr", "amr"):
            model = models[name]
            clean = ev.evaluate(model).summary
            for eps in (0.05, 0.1, 0.2, 0.5):
                row = {"figure": "feature-attack", "model": name, "eps": eps,
                       "ndcg@20_clean": round(clean["ndcg@20"], 4)}
                for method in ("fgsm", "random"):
                    delta = (fgsm(model, train, eps, blocks="item_content") if method == "fgsm"
                             else random_perturbation(model, eps, blocks="item_content"))
                    after = ev.evaluate(perturbed_scorer(model, delta)).summary["ndcg@20"]
                    row[f"ndcg@20_{method}"] = round(after, 4)
                    row[f"change_{method}"] = round(after / clean["ndcg@20"] - 1, 4)
                emit(**row)

    if "taamr" not in args.skip:
        from advrec.experiments.content import attack_content

        recipe = {"source": "posters", "path": None, "pattern": "{id}.jpg",
                  "encoder": "efficientnet-lite0", "batch_size": 64}
        for method in ("fgsm", "pgd"):
            for eps in (4.0, 8.0, 16.0):
                for transform in ("none", "jpeg"):
                    attack = {"attack": "taamr", "method": method, "eps": eps, "steps": 10,
                              "source": "auto", "target": "auto",
                              "max_items": args.max_items, "min_class_items": 10,
                              "transform": transform, "transform_params": {}, "examples": 0}
                    t0 = time.perf_counter()
                    done = attack_content(recipe, features, train, attack, seed=0,
                                          device=args.device)
                    seconds = time.perf_counter() - t0
                    info = done.summary()
                    row = {"figure": "taamr", "method": method, "eps": eps,
                           "transform": transform, "seconds": round(seconds, 1),
                           "source": info["source_name"], "target": info["target_name"],
                           "attacked": info["n_attacked"],
                           "source_items": info["n_source_items"],
                           "success_rate": round(info["success_rate"], 3),
                           "success_rate_before_transform": round(
                               info["success_rate_attack"], 3),
                           "psnr": round(info["mean_psnr"], 2),
                           "ssim": round(info["mean_ssim"], 4)}
                    for name in ("vbpr", "amr"):
                        model = models[name]
                        scorer = perturbed_scorer(model,
                                                  {"item_content": done.feature_delta(model)})
                        before = category_hit_ratio(model, ev, done.in_source, (20,))
                        after = category_hit_ratio(scorer, ev, done.in_source, (20,))
                        row[f"{name}_chr@20_before"] = round(before["chr@20"], 5)
                        row[f"{name}_chr@20_after"] = round(after["chr@20"], 5)
                    emit(**row)


if __name__ == "__main__":
    main()
