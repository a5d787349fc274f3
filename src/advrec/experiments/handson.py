"""The RecSys 2020 hands-on, end to end: BPR-MF → FGSM attack → APR → FGSM attack again, plus the
ε sweep (adversarial vs random, BPR-MF vs APR) as a table and a plot. A preset: it builds an
experiment and runs it on the engine (the same store, report and resuming as `advrec run`).

A BPR-MF trained for the same total number of epochs as APR ("BPR-MF longer") is reported beside
it, so that the effect of adversarial training is not confused with the effect of training longer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from advrec.errors import ConfigError
from advrec.evaluation.evaluator import EvaluationResult
from advrec.evaluation.robustness import AttackOutcome
from advrec.experiments.config import ExperimentConfig, parse_config
from advrec.experiments.store import ResultsStore
from advrec.models.base import library_versions
from advrec.outputs import atomic_write, claim_dir


@dataclass(frozen=True)
class HandsOnConfig:
    """The hands-on's settings; defaults are the tutorial's (dim 64, Adagrad 0.05, batch 512,
    FGSM ε = 0.5, APR ε = 0.5, λ = 1, @100). ``bpr_epochs``/``apr_epochs`` set the schedule: the
    tutorial's is short; the paper trains 1000 + 1000."""

    dataset: str = "movielens-500"
    bpr_epochs: int = 5
    apr_epochs: int = 100
    n_factors: int = 64
    lr: float = 0.05
    batch_size: int = 512
    eps: float = 0.5
    adv_reg: float = 1.0
    attack_eps: float = 0.5
    sweep_eps: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
    k: int = 100
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.bpr_epochs < 1 or self.apr_epochs < 0:
            raise ConfigError("bpr_epochs must be >= 1 and apr_epochs >= 0")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if any(e <= 0 for e in self.sweep_eps) or self.attack_eps <= 0 or self.eps <= 0:
            raise ConfigError("every ε must be positive")


@dataclass
class HandsOnResult:
    """The stages' metrics, the attack outcomes and the sweep rows."""

    config: HandsOnConfig
    stages: list[dict] = field(default_factory=list)
    sweep: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "stages": self.stages, "sweep": self.sweep,
                "seconds": self.seconds, "versions": library_versions()}


NAME = "handson"  # the experiment's name: its folder resumes across calls


def handson_experiment(config: HandsOnConfig, output: str | os.PathLike) -> ExperimentConfig:
    """The hands-on as an experiment: BPR-MF; APR trained on from it and the BPR-MF trained as
    long (the control); FGSM and random noise at every ε of the sweep and the stage's ε."""
    cfg = config
    common = {"n_factors": cfg.n_factors, "lr": cfg.lr, "batch_size": cfg.batch_size}
    models = [{"name": "bprmf", "label": "BPR-MF", "params": {"epochs": cfg.bpr_epochs, **common}}]
    if cfg.apr_epochs:
        models += [
            {"name": "apr", "label": "APR", "init": "BPR-MF",
             "params": {"epochs": cfg.apr_epochs, "eps": cfg.eps, "adv_reg": cfg.adv_reg,
                        **common}},
            {"name": "bprmf", "label": "BPR-MF longer", "init": "BPR-MF",
             "params": {"epochs": cfg.apr_epochs, **common}}]
    eps = sorted({*cfg.sweep_eps, cfg.attack_eps})
    return parse_config({
        "name": NAME, "description": "The RecSys 2020 hands-on: BPR-MF, FGSM, APR, FGSM again",
        "data": {"dataset": cfg.dataset}, "models": models,
        "attacks": [{"method": "fgsm", "eps": eps}, {"method": "random", "eps": eps}],
        "evaluation": {"ks": [cfg.k], "metrics": ["hr", "ndcg", "auc"]},
        "seeds": [cfg.seed], "device": cfg.device, "output": str(output)}, source="handson")


def run_handson(config: HandsOnConfig = HandsOnConfig(),
                output: str | os.PathLike = "runs/handson",
                log: Callable[[str], None] = lambda _msg: None,
                progress: bool | None = False, overwrite: bool = False) -> HandsOnResult:
    """Run the hands-on on the experiment engine (results store, models and report in
    ``output``; a re-run resumes there) and read its stages and sweep back from the store;
    ``log`` receives one line per stage."""
    from advrec.experiments.runner import plan, run_experiment

    cfg = config
    experiment = handson_experiment(cfg, output)
    summary = run_experiment(experiment, progress=progress, overwrite=overwrite, source="handson")
    keys = {c.key for c in plan(experiment).cells}
    with ResultsStore(summary.output, read_only=True) as store:
        rows = [r for r in store.rows() if r["key"] in keys]
    cells = {(r["model_label"], r["attack"], r["eps"]): r for r in rows}
    result = HandsOnResult(cfg)
    labels = ["BPR-MF"] + (["APR", "BPR-MF longer"] if cfg.apr_epochs else [])
    epochs = {"BPR-MF": cfg.bpr_epochs, "APR": cfg.bpr_epochs + cfg.apr_epochs,
              "BPR-MF longer": cfg.bpr_epochs + cfg.apr_epochs}
    ndcg = f"ndcg@{cfg.k}"
    for label in labels:
        clean = _evaluation(cells[(label, "none", None)], cfg.k)
        stage = AttackOutcome("fgsm", cfg.attack_eps, clean,
                              _evaluation(cells[(label, "fgsm", cfg.attack_eps)], cfg.k))
        result.stages.append({"model": label, "epochs": epochs[label], **stage.row()})
        log(f"{label} ({epochs[label]} epochs): nDCG@{cfg.k} {stage.before.summary[ndcg]:.4f}"
            f" → {stage.after.summary[ndcg]:.4f} under FGSM ε={cfg.attack_eps}")
        for method in ("fgsm", "random"):
            for eps in cfg.sweep_eps:
                attacked = _evaluation(cells[(label, method, float(eps))], cfg.k)
                result.sweep.append({"model": label,
                                     **AttackOutcome(method, float(eps), clean, attacked).row()})
    fit = {r["model_label"]: r["timings"].get("fit_seconds") for r in rows
           if r["attack"] == "none"}
    result.seconds = {"bpr": fit.get("BPR-MF"), "apr": fit.get("APR"),
                      "sweep": sum(r["timings"].get("evaluate_seconds") or 0.0 for r in rows
                                   if r["attack"] != "none")}
    log(f"ε sweep: {len(result.sweep)} attacked evaluations, {summary.done_now} cell(s) run now, "
        f"{summary.done_before} found done")
    return result


def _evaluation(row: dict, k: int) -> EvaluationResult:
    """A stored cell's evaluation (its means and per-user values) as an EvaluationResult."""
    per_user = {m: np.asarray(v, dtype=np.float64) for m, v in row["per_user"].items()
                if m != "users"}
    return EvaluationResult(summary=row["metrics"], per_user=per_user,
                            users=np.asarray(row["per_user"]["users"]), protocol="full",
                            ks=(k,), n_users=len(row["per_user"]["users"]), n_items=0)


# ---------------------------------------------------------------------------- output
def stage_table(result: HandsOnResult) -> tuple[list[str], list[list[str]]]:
    """One row per metric, one column per stage: "clean → attacked (change)"; last row: the
    paired p-value of the nDCG change over users."""
    k = result.config.k
    names = [f"hr@{k}", f"ndcg@{k}", "auc"]
    header = ["metric"] + [f"{s['model']} ({s['epochs']} ep.)" for s in result.stages]
    rows = [[n] + [f"{s[n]:.4f} → {s[n + '_attacked']:.4f} ({100 * s[n + '_change']:+.1f}%)"
                   for s in result.stages] for n in names]
    rows.append([f"p ({names[1]})"] + [f"{s[names[1] + '_p']:.2g}" for s in result.stages])
    return header, rows


def sweep_table(result: HandsOnResult) -> tuple[list[str], list[list[str]]]:
    """nDCG@k change by model × method (rows) and ε (columns)."""
    k = result.config.k
    eps_values = sorted({r["eps"] for r in result.sweep})
    header = ["model", "method"] + [f"ε={e:g}" for e in eps_values]
    rows = []
    for model in dict.fromkeys(r["model"] for r in result.sweep):
        for method in ("fgsm", "random"):
            by_eps = {r["eps"]: r for r in result.sweep
                      if r["model"] == model and r["method"] == method}
            rows.append([model, method] + [f"{100 * by_eps[e][f'ndcg@{k}_change']:+.1f}%"
                                           for e in eps_values])
    return header, rows


def plot_sweep(result: HandsOnResult, path: str | os.PathLike,
               write: Callable[[Path, Callable[[Path], object]], object] = atomic_write) -> Path:
    """nDCG@k under attack vs ε (log scale), one line per model × method; PNG or SVG by suffix.
    ``write(path, writer)`` puts the file in place (atomically, by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = result.config.k
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {}
    for model in dict.fromkeys(r["model"] for r in result.sweep):
        for method, style in (("fgsm", "-o"), ("random", "--s")):
            rows = sorted((r for r in result.sweep
                           if r["model"] == model and r["method"] == method),
                          key=lambda r: r["eps"])
            line, = ax.plot([r["eps"] for r in rows], [r[f"ndcg@{k}_attacked"] for r in rows],
                            style, color=colours.get(model), label=f"{model}, {method}")
            colours[model] = line.get_color()
        clean = next(r[f"ndcg@{k}"] for r in result.sweep if r["model"] == model)
        ax.axhline(clean, color=colours[model], lw=0.8, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("ε (L2 norm of each perturbed embedding row)")
    ax.set_ylabel(f"nDCG@{k}")
    ax.set_title(f"{result.config.dataset}: robustness to parameter perturbations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    try:
        write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120))
    finally:
        plt.close(fig)
    return path


def write_outputs(result: HandsOnResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """results.json, sweep.png and sweep.svg in the hands-on's experiment folder ``out_dir``
    (each written atomically and recorded there as advrec's)."""
    out = claim_dir(out_dir, "experiment", identity=NAME)
    paths = {"json": out / "results.json", "png": out / "sweep.png", "svg": out / "sweep.svg"}
    out.write_text("results.json", json.dumps(result.to_dict(), indent=1))
    for key in ("png", "svg"):
        plot_sweep(result, paths[key], write=lambda path, writer: out.write(path.name, writer))
    return paths


def format_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table (for logs and tests)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
