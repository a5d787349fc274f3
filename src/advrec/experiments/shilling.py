"""Shilling studies: the ``advrec shill`` preset (victims × attacks × attack sizes on one data
set, run on the experiment engine), a plot of the target hit ratio against attack size, and the
data-characteristics study of Deldjoo et al. (SIGIR'20).

    advrec shill mf userknn --dataset ml-100k --attack average --attack bandwagon \\
        --size 0.01 --size 0.05 --filler 0.03 --n-targets 5 --target-strategy quantile \\
        [--targets 50,181] [--intent push|nuke] [--implicit] [--rank-by score|predict] \\
        --k 10 --seed 0 [--fold u1] [--plot hr.png]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from advrec.attacks.shilling import ShillingAttack, make_attack, select_targets
from advrec.data.datasets import load
from advrec.data.interactions import Interactions
from advrec.data.stats import characteristics, impact_regression, subsample
from advrec.errors import ConfigError, DataError
from advrec.evaluation.shilling import attack_impact
from advrec.outputs import write_file

__all__ = [
    "PLOT_SUFFIXES",
    "save_profiles_of",
    "plot_hit_ratio_vs_size",
    "resolve_victim",
    "run_characteristics_study",
    "run_shilling_preset",
    "shilling_experiment",
]

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
Log = Callable[[str], None]


# ----------------------------------------------------------------------------- victims
def _model_class(name: str) -> type:
    """A model class by registry name; falls back to the kNN and MF modules until registered."""
    from advrec.models import get_model

    try:
        return get_model(name)
    except ConfigError:
        from advrec.models import knn, mf

        for module in (knn, mf):
            for obj in vars(module).values():
                if isinstance(obj, type) and getattr(obj, "name", None) == str(name).lower():
                    return obj
        raise


def resolve_victim(spec, params: Mapping | None = None) -> Callable[[], object]:
    """A zero-argument factory from a model name (+ ``params``), class, instance or factory."""
    if isinstance(spec, str):
        cls = _model_class(spec)
        return lambda: cls(**dict(params or {}))
    if isinstance(spec, type) or callable(spec) or hasattr(spec, "get_params"):
        return spec
    raise ConfigError(f"a victim must be a model name, class, instance or factory, got {spec!r}")


def _log_row(log: Log | None, row: Mapping, attack: str, k: int) -> None:
    """One progress line per study row: the targets' hit ratio before → after."""
    if log is not None:
        log(f"{row['victim']} {attack} size={row['size']}: hr@{k} "
            f"{row[f'hr@{k}_before']:.4f} -> {row[f'hr@{k}_after']:.4f} "
            f"(p={row[f'hr@{k}_p']:.2g})")


# ----------------------------------------------------------------------------- preset
PRESET = "shill"  # the experiment name of `advrec shill`: its folder resumes across calls


def shilling_experiment(dataset: str, victims: Sequence[str | Mapping], attacks: Sequence[str],
                        sizes: Sequence[float] = (0.01, 0.05, 0.1), filler: float | int = 0.03,
                        n_targets: int = 5, target_strategy: str = "quantile", k: int = 10,
                        seed: int = 0, *, output: str | os.PathLike, targets=None,
                        intent: str | None = None, implicit: bool | None = None,
                        rank_by: str = "score", fold: str | None = None,
                        data: Mapping | None = None, attack_params: Mapping | None = None,
                        profile_files: Sequence[str] = ()):
    """The shilling study of named victims and attacks as an experiment: the data set's own
    split (else a seeded 80/20 hold-out; ``data``: an experiment file's ``data:`` section
    instead, e.g. a trained model's recipe), one model entry per victim (a name, or a
    ``models:`` entry such as ``{"name": "mf", "params": {...}, "label": ...}``), one shilling
    entry per
    attack with the sizes as a grid. Each victim is trained once on the clean data and again on
    each poisoned copy; ``targets`` (raw item ids) overrides ``n_targets`` /
    ``target_strategy``; ``implicit`` None: the implicit variants iff the data has no ratings.
    ``filler`` None: 0.03 for the hand-crafted attacks, a real user's average profile for the
    optimised ones, which also take ``attack_params`` (``surrogate``, …); each of
    ``profile_files`` is injected as it is (the ``file`` attack; ``targets`` required)."""
    from advrec.data.datasets import info
    from advrec.experiments.config import parse_config

    if data is not None:
        data = {k: v for k, v in data.items() if k != "seed"}  # the study's seed splits
    else:
        data = {"dataset": dataset}
        if fold is not None:
            data["fold"] = fold
        if not info(dataset).presplit:
            data.update(split="holdout", test_ratio=0.2)
    from advrec.attacks.injection import is_poisoning

    entry = {"size": [float(x) for x in sizes], "n_targets": n_targets,
             "target_strategy": target_strategy, "intent": intent, "implicit": implicit,
             "rank_by": rank_by}
    if targets is not None:
        entry["targets"] = list(targets)
    elif profile_files:
        raise ConfigError("--profiles: name the targets the profiles push (--targets)")

    def shilling(name: str) -> dict:
        optimised = is_poisoning(name)
        own = {"filler": filler if filler is not None or optimised else 0.03}
        if optimised and attack_params:
            own["params"] = dict(attack_params)
        return {"attack": name, **entry, **own}

    if attack_params and not any(is_poisoning(a) for a in attacks):
        raise ConfigError("--attack-param applies to the optimised attacks; none is requested")
    files = [{"attack": "file", **entry, "size": entry["size"][0], "filler": 0.03,
              "params": {"path": str(f)}} for f in profile_files]
    return parse_config({
        "name": PRESET, "description": "advrec shill: hand-crafted fake profiles against victims",
        "data": data,
        "models": [{"name": v} if isinstance(v, str) else dict(v) for v in victims],
        "shilling": [*(shilling(a) for a in attacks), *files],
        "evaluation": {"ks": [k], "metrics": ["hr", "ndcg"]}, "seeds": [seed],
        "output": str(output)}, source="shill")


def run_shilling_preset(experiment, log: Log | None = None, overwrite: bool = False,
                        progress: bool | None = False) -> list[dict]:
    """Run a :func:`shilling_experiment` on the engine (store, models and report in its
    output; a re-run resumes) and return one row per victim × attack × size: target hit
    ratio@k and mean rank before/after with paired p-values, prediction shift (rating models),
    collateral test accuracy."""
    from advrec.experiments.context import Context
    from advrec.experiments.runner import plan, run_experiment
    from advrec.experiments.store import ResultsStore

    summary = run_experiment(experiment, progress=progress, overwrite=overwrite, source="shill")
    keys = {c.key for c in plan(experiment).cells if c.scenario == "shilling"}
    name = Context(experiment).parts(experiment.seeds[0]).train.name
    with ResultsStore(summary.output, read_only=True) as store:
        found = [r for r in store.rows(per_user=False) if r["key"] in keys]
    k = experiment.evaluation.ks[0]
    rows = []
    for r in found:
        rows.append({"dataset": name, **r["measures"], "victim": r["model_label"]})
        _log_row(log, rows[-1], r["attack"], k)
    return rows


def save_profiles_of(rows: Sequence[Mapping], output: str | os.PathLike,
                     folder: str | os.PathLike) -> list[Path]:
    """Copy each row's fake profiles (kept in the experiment's ``profiles/``) into ``folder``
    (a new or empty folder, or one advrec wrote as fake profiles), one file per attack and
    size: ``<attack>-size<size>.tsv``; the paths in row order."""
    from advrec.outputs import claim_dir, write_file

    claim_dir(folder, "fake-profiles")
    written: dict[str, Path] = {}
    for r in rows:
        source = Path(output) / r["profiles"]
        name = f"{r['attack']}-size{r['size']:g}.tsv"
        if name not in written:
            written[name] = write_file(Path(folder) / name,
                                       lambda tmp, src=source: tmp.write_bytes(src.read_bytes()))
    return [written[f"{r['attack']}-size{r['size']:g}.tsv"] for r in rows]


# ----------------------------------------------------------------------------- plot
def plot_hit_ratio_vs_size(rows: Sequence[Mapping], path: str | os.PathLike,
                           k: int = 10, overwrite: bool = False) -> Path:
    """Target hit ratio@k after the attack against attack size: one panel per victim, one line
    per attack (clean hit ratio dashed). PNG, SVG or PDF by suffix; written atomically, and an
    existing file is replaced only with ``overwrite`` and only if advrec wrote it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"plot file must end in one of {PLOT_SUFFIXES}, got {path.name!r}")
    col = f"hr@{k}_after"
    rows = [r for r in rows if col in r]
    if not rows:
        raise DataError(f"no row has {col!r}: nothing to plot")
    victims = list(dict.fromkeys(r["victim"] for r in rows))
    fig, axes = plt.subplots(1, len(victims), figsize=(4.2 * len(victims), 3.6), squeeze=False,
                             sharey=True)
    for ax, victim in zip(axes[0], victims, strict=True):
        _panel(ax, [r for r in rows if r["victim"] == victim], victim, k)
    axes[0][0].set_ylabel(f"target hit ratio@{k}")
    fig.tight_layout()
    try:
        write_file(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=120),
                   overwrite)
    finally:
        plt.close(fig)
    return path


def _panel(ax, rows: list[Mapping], victim: str, k: int) -> None:
    labels = list(dict.fromkeys(_attack_label(r) for r in rows))
    for label in labels:
        mine = sorted((r for r in rows if _attack_label(r) == label), key=lambda r: r["size"])
        ax.plot([r["size"] for r in mine], [r[f"hr@{k}_after"] for r in mine], marker="o",
                label=label)
    ax.axhline(float(np.mean([r[f"hr@{k}_before"] for r in rows])), color="grey",
               linestyle="--", label="clean")
    ax.set_title(victim)
    ax.set_xlabel("attack size (fraction of users)")
    ax.legend(fontsize=7)


def _attack_label(row: Mapping) -> str:
    label = str(row.get("attack", ""))
    if row.get("implicit"):
        label += "-implicit"
    return f"{label} ({row['intent']})" if row.get("intent") == "nuke" else label


# ----------------------------------------------------------------------------- characteristics
def run_characteristics_study(dataset, victim, attack: str | ShillingAttack = "average",
                              n_samples: int = 20, users: tuple[float, float] = (0.3, 1.0),
                              items: tuple[float, float] = (0.3, 1.0), n_targets: int = 5,
                              target_strategy: str = "quantile", k: int = 10, seed: int = 0,
                              target: str = "hit_ratio_shift",
                              features: Sequence[str] | None = None,
                              rank_by: str = "score") -> tuple[list[dict], object]:
    """Deldjoo et al.'s study: ``n_samples`` random sub-data-sets (user and item fractions drawn
    uniformly in ``users``/``items``), each attacked; rows = characteristics + impact
    (``hit_ratio_shift``, ``rank_shift``, ``prediction_shift``), then :func:`impact_regression`.
    Returns (rows, regression result)."""
    data = dataset if isinstance(dataset, Interactions) else load(str(dataset))
    factory = resolve_victim(victim)
    attack = attack if isinstance(attack, ShillingAttack) else make_attack(
        attack, implicit=data.ratings is None)
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(int(n_samples)):
        sub = subsample(data, float(rng.uniform(*users)), float(rng.uniform(*items)),
                        seed=seed + j)
        chosen = select_targets(sub, n_targets, target_strategy, seed=seed + j)
        impact = attack_impact(factory, sub, None, attack, chosen, (k,), seed + j, rank_by)
        before, after = impact.hit_ratio[k]
        rows.append({**characteristics(sub), "sample": j, "hit_ratio_shift": after - before,
                     "rank_shift": impact.mean_rank[1] - impact.mean_rank[0],
                     "prediction_shift": impact.prediction_shift})
    return rows, impact_regression(rows, target, features)
