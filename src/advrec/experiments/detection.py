"""``advrec detect`` as an experiment: held-out attack types × detectors, each detector trained
leave-one-attack-type-out (:func:`advrec.evaluation.detection.defend`), and what removing the
flagged users does to a victim (no defence / filtered / perfect removal / clean).

The preset builds one shilling entry per held-out type (its fake profiles drawn with the seed +
100 + the type's place, so each type has profiles of its own) and one defence per detector, all
trained on the other types of the list; the engine runs it in the preset's folder (store,
models, report; a re-run resumes), and :func:`detection_rows` turns its cells into one row per
held-out type × detector. The ROC / PR curves and the feature distributions of real and fake
profiles come from the same cells (:func:`plot_curves`, :func:`plot_feature_distributions`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from advrec.defenses.detectors import CLASSIFIERS
from advrec.errors import ConfigError
from advrec.evaluation.detection import DEFAULT_ATTACKS
from advrec.outputs import atomic_write

__all__ = ["PRESET", "VICTIM_PARAMS", "detection_experiment", "detection_rows",
           "plot_curves", "plot_feature_distributions", "run_detection_preset"]

PRESET = "detect"  # the experiment name of `advrec detect`: its folder resumes across calls
NO_VICTIM = "itempop"  # fitted (in milliseconds) when no victim is asked for: cells need a model
PROFILE_SEED_OFFSET = 100  # held-out type j is drawn with seed + 100 + j
VICTIM_PARAMS = {"mf": {"epochs": 5}, "userknn": {"k": 40}, "itemknn": {"k": 40},
                 "bprmf": {"epochs": 20}}
"""The preset's victims' hyper-parameters where they differ from the models' defaults."""
METRIC_KEYS = ("precision", "recall", "f1", "roc_auc", "pr_auc", "flagged", "false_positives")
Log = Callable[[str], None]


def detection_experiment(
    dataset: str = "ml-100k",
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    size: float = 0.05,
    filler: float | int = 0.05,
    *,
    output: str | os.PathLike,
    detectors: Sequence[str] = ("svm", "pca", "rule"),
    victim: str | None = "mf",
    victim_params: Mapping[str, Any] | None = None,
    train_attacks: Sequence[str] | None = None,
    train_sizes: Sequence[float] = (0.03, 0.1),
    train_fillers: Sequence[float] = (0.03, 0.1),
    n_targets: int = 3,
    target_strategy: str = "quantile",
    intent: str = "push",
    real_split: float = 0.5,
    k_features: int = 10,
    features: Sequence[str] | None = None,
    k: int = 10,
    fold: str | None = None,
    seed: int = 0,
):
    """The detection study as an experiment. ``attacks``: the held-out (tested) types, injected
    at ``size``/``filler``; supervised detectors train on ``train_attacks`` (default: the other
    types of ``attacks``) at ``train_sizes`` × ``train_fillers``. ``victim``: a model name
    (:data:`VICTIM_PARAMS` and ``victim_params`` on top of its defaults), None for detection
    metrics only. The data set's own split (``fold``), else a seeded 80/20 hold-out."""
    from advrec.data.datasets import info
    from advrec.experiments.config import parse_config

    data: dict[str, Any] = {"dataset": dataset}
    if fold is not None:
        data["fold"] = fold
    if not info(dataset).presplit:
        data.update(split="holdout", test_ratio=0.2)
    name = victim or NO_VICTIM
    params = {**VICTIM_PARAMS.get(name, {}), **dict(victim_params or {})}
    attacks = list(dict.fromkeys(attacks))
    pool = list(train_attacks or attacks)
    if any(d in CLASSIFIERS for d in detectors):
        for held in attacks:
            if not [a for a in pool if a != held]:
                raise ConfigError(f"attacks: no training attack type is left when {held!r} is "
                                  f"held out; hold out two types or more, or name train_attacks")
    shared = {"train_attacks": pool, "train_sizes": list(train_sizes),
              "train_fillers": list(train_fillers), "real_split": real_split,
              "k_features": k_features, "features": None if features is None else list(features)}
    defenses = [{"detector": d, **shared} for d in dict.fromkeys(detectors) if d != "perfect"]
    if victim is not None:
        defenses.append({"detector": "perfect"})
    return parse_config({
        "name": PRESET,
        "description": "advrec detect: fake-profile detection, leave-one-attack-type-out",
        "data": data, "models": [{"name": name, "params": params}],
        "shilling": [{"attack": a, "size": size, "filler": filler, "n_targets": n_targets,
                      "target_strategy": target_strategy, "intent": intent,
                      "profile_seed_offset": PROFILE_SEED_OFFSET + j}
                     for j, a in enumerate(attacks)],
        "defenses": defenses,
        "evaluation": {"ks": [k], "metrics": ["hr", "ndcg"]}, "seeds": [seed],
        "output": str(output)}, source="detect")


def run_detection_preset(experiment, plots: str | os.PathLike | None = None,
                         overwrite: bool = False, progress: bool | None = False,
                         log: Log | None = None) -> list[dict]:
    """Run a :func:`detection_experiment` on the engine (a re-run resumes) and return
    :func:`detection_rows` of its cells; ``plots``: a folder (that exists) for ``roc.png``,
    ``pr.png`` and ``features.png`` (the first held-out attack)."""
    from advrec.experiments.runner import plan, run_experiment
    from advrec.experiments.store import ResultsStore

    summary = run_experiment(experiment, progress=progress, overwrite=overwrite, source="detect")
    keys = {c.key for c in plan(experiment).cells}
    with ResultsStore(summary.output, read_only=True) as store:
        found = [r for r in store.rows(per_user=False) if r["key"] in keys]
    rows = detection_rows(found, experiment, curves=plots is not None)
    if plots is not None:
        plot_curves(rows, plots)
        plot_feature_distributions(found, experiment.shilling[0].attack, plots)
        for r in rows:
            del r["roc_curve"], r["pr_curve"]
    for r in rows if log is not None else ():
        log(f"held out {r['held_out']}, {r['detector']}: precision {r['precision']:.3f} "
            f"recall {r['recall']:.3f} ROC-AUC {r['roc_auc']:.3f}")
    return rows


def detection_rows(cells: Sequence[Mapping], experiment, curves: bool = False) -> list[dict]:
    """One row per held-out attack × detector (file order) from the store rows of a
    :func:`detection_experiment`: the detection metrics and, when it has a victim (a
    ``perfect`` defence), the target hit ratio and HR/nDCG@k of the victim trained on the clean
    data, the poisoned data (no defence), the data less the flagged users and less exactly the
    fakes (``perfect``)."""
    k = experiment.evaluation.ks[0]
    victim = any(d.detector == "perfect" for d in experiment.defenses)
    clean = next(r for r in cells if r["scenario"] == "clean")
    by = {(r["attack"], r["defense"]): r for r in cells if r["scenario"] == "shilling"}
    names = [f"target_hr@{k}", f"hr@{k}", f"ndcg@{k}"]
    rows = []
    for entry in experiment.shilling:
        held = entry.attack
        attacked = by[(held, "none")]
        pool = experiment.defenses[0].train_attacks or []
        base = {"dataset": experiment.data.dataset, "held_out": held,
                "train_attacks": "+".join(a for a in dict.fromkeys(pool) if a != held),
                "size": entry.size, "filler": entry.filler,
                "n_fake": attacked["measures"]["n_fake"], "n_targets": entry.n_targets,
                "seed": experiment.seeds[0]}
        for defense in experiment.defenses:
            if defense.detector == "perfect":
                continue
            cell = by[(held, defense.detector)]
            info = cell["detection"]
            row = {**base, "detector": defense.detector,
                   "victim": clean["model_name"] if victim else None,
                   **{m: info[m] for m in METRIC_KEYS}}
            if curves:
                row.update(roc_curve=info["roc_curve"], pr_curve=info["pr_curve"])
            if victim:
                perfect = by[(held, "perfect")]
                row.update({f"{m}_clean": (attacked["metrics"][f"{m}_before"]
                                           if m.startswith("target") else clean["metrics"][m])
                            for m in names})
                for variant, source in (("attacked", attacked), ("perfect", perfect),
                                        ("filtered", cell)):
                    row.update({f"{m}_{variant}": source["metrics"][m] for m in names})
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- plots
def _save(fig, path: Path) -> Path:
    """Write a figure atomically into a folder that exists; the format follows the suffix."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=110))
    return path


def plot_curves(rows: Sequence[Mapping], folder: str | os.PathLike, suffix: str = ".png"
                ) -> list[Path]:
    """``roc`` and ``pr`` figures (rows from :func:`detection_rows` with ``curves``): one panel
    per held-out attack, one line per detector."""
    from matplotlib.figure import Figure

    attacks = list(dict.fromkeys(r["held_out"] for r in rows))
    out = []
    for kind, (x, y), labels in (("roc", ("fpr", "tpr"), ("false positive rate", "recall")),
                                 ("pr", ("recall", "precision"), ("recall", "precision"))):
        fig = Figure(figsize=(3.2 * len(attacks), 3.2))
        axes = fig.subplots(1, len(attacks), squeeze=False)[0]
        for ax, attack in zip(axes, attacks, strict=True):
            for r in rows:
                if r["held_out"] == attack and f"{kind}_curve" in r:
                    curve = r[f"{kind}_curve"]
                    auc = r["roc_auc"] if kind == "roc" else r["pr_auc"]
                    ax.plot(curve[x], curve[y], label=f"{r['detector']} ({auc:.2f})")
            ax.set_title(f"held out: {attack}", fontsize=9)
            ax.set_xlabel(labels[0], fontsize=8)
            ax.set_ylabel(labels[1], fontsize=8)
            ax.legend(fontsize=7)
        fig.tight_layout()
        out.append(_save(fig, Path(folder) / f"{kind}{suffix}"))
    return out


def plot_feature_distributions(cells: Sequence[Mapping], attack: str,
                               folder: str | os.PathLike, suffix: str = ".png") -> Path:
    """Histograms of every profile feature for the real users and the injected ``attack``
    profiles, as a defended cell of that attack recorded them (store rows)."""
    from matplotlib.figure import Figure

    hist = next(r["detection"]["features"] for r in cells
                if r["attack"] == attack and (r.get("detection") or {}).get("features"))
    names = list(hist)
    cols = 4
    n_rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(3.0 * cols, 2.4 * n_rows))
    axes = fig.subplots(n_rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        edges = hist[name]["edges"]
        widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
        for part, label in (("real", "real"), ("fake", f"fake ({attack})")):
            ax.bar(edges[:-1], hist[name][part], width=widths, align="edge", alpha=0.6,
                   label=label)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    for ax in axes[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, Path(folder) / f"features{suffix}")
