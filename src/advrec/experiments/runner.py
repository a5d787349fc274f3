"""The experiment runner: expand the file into cells, train each distinct model once, evaluate
every cell (clean or attacked), and write each finished cell to the results store.

A model is keyed by the hash of everything that determines it (data recipe, model type,
parameters, the model it starts from, seed); a cell by its model key, its attack and the
evaluation settings. Finished cells are skipped on a re-run, and trained models are kept under
``<output>/models/<key>/``, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advrec.errors import ConfigError
from advrec.experiments.config import (
    SEQUENCE_PARAMS,
    AttackConfig,
    ExperimentConfig,
    canonical_hash,
    expand,
)
from advrec.experiments.store import ResultsStore

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelJob:
    """One model to train: a variant of a model entry for one seed."""

    key: str
    label: str
    name: str
    params: dict[str, Any]
    seed: int
    init_key: str | None = None
    early_stopping: dict | None = None


@dataclass(frozen=True)
class Cell:
    """One result row: a model, clean (``attack is None``) or under one attack variant."""

    key: str
    model_key: str
    attack: dict[str, Any] | None
    config: dict[str, Any] = field(compare=False)


@dataclass
class Plan:
    jobs: list[ModelJob]
    cells: list[Cell]

    def job(self, key: str) -> ModelJob:
        return next(j for j in self.jobs if j.key == key)


# ---------------------------------------------------------------------------- planning
def plan(config: ExperimentConfig) -> Plan:
    """Expand seeds × model grids × (clean + attack grids) into model jobs and cells."""
    from advrec.models import get_model

    data = config.data.model_dump()
    evaluation = config.evaluation.model_dump()
    evaluation.pop("significance")  # how p-values are computed does not change a cell's numbers
    attacks = [a for entry in config.attacks for a in _attack_variants(entry)]
    jobs: list[ModelJob] = []
    cells: list[Cell] = []
    for seed in config.seeds:
        by_label: dict[str, list[ModelJob]] = {}
        for entry in config.models:
            variants = expand(entry.params, SEQUENCE_PARAMS)
            parents = by_label.get(entry.init, [None]) if entry.init else [None]
            if entry.init and len(parents) > 1:
                raise ConfigError(f"models: {entry.key_label!r} starts from {entry.init!r}, "
                                  f"which expands into {len(parents)} variants; give it one")
            parent = parents[0]
            es = entry.early_stopping.model_dump() if entry.early_stopping else None
            made = []
            defaults = _defaults(get_model(entry.name))
            for params in variants:
                full = {**defaults, **params}  # a default spelled out gives the same model
                identity = {"data": data, "model": entry.name, "params": full, "seed": seed,
                            "init": parent.key if parent else None, "early_stopping": es}
                label = entry.key_label + (_suffix(params, entry.params) if len(variants) > 1
                                           else "")
                job = ModelJob(canonical_hash(identity), label, entry.name, params, seed,
                               parent.key if parent else None, es)
                made.append(job)
            by_label[entry.key_label] = made
            jobs.extend(made)
            attackable = hasattr(get_model(entry.name), "parameter_blocks")
            for job in made:
                for attack in [None, *attacks] if attackable else [None]:
                    cfg = {"model_key": job.key, "attack": attack, "evaluation": evaluation,
                           "data": data}
                    cells.append(Cell(canonical_hash(cfg), job.key, attack,
                                      {**cfg, "model": {"name": job.name, "label": job.label,
                                                        "params": job.params, "seed": seed,
                                                        "init": job.init_key,
                                                        "early_stopping": es}}))
    if not cells:
        raise ConfigError("the experiment expands into zero cells")
    return Plan(jobs, cells)


def _defaults(cls) -> dict[str, Any]:
    """A model class's ``__init__`` defaults, less what the experiment sets itself."""
    import inspect

    from advrec.experiments.config import NOT_MODEL_PARAMS

    sig = inspect.signature(cls.__init__)
    return {n: (list(p.default) if isinstance(p.default, tuple) else p.default)
            for n, p in sig.parameters.items()
            if n != "self" and p.default is not inspect.Parameter.empty
            and n not in NOT_MODEL_PARAMS}


def _attack_variants(entry: AttackConfig) -> list[dict[str, Any]]:
    raw = entry.model_dump()
    if raw["method"] == "random":  # options that do not apply to random noise
        for k in ("steps", "step_size", "targets", "mode"):
            raw.pop(k)
    elif raw["method"] == "fgsm":
        raw.pop("steps")
        raw.pop("step_size")
    if raw.get("targets") is None:
        raw.pop("targets", None)
        raw.pop("mode", None)
    return expand(raw)


def _suffix(params: dict, declared: dict) -> str:
    varying = [k for k, v in declared.items() if isinstance(v, list) and k in params
               and not (k in SEQUENCE_PARAMS and not isinstance(v[0], list))]
    return "[" + ", ".join(f"{k}={params[k]}" for k in varying) + "]" if varying else ""


# ---------------------------------------------------------------------------- running
@dataclass
class RunSummary:
    total: int
    done_before: int
    done_now: int
    models_trained: int
    seconds: float
    output: Path


class Context:
    """What every cell needs: the config, the prepared split, and model loading/training."""

    def __init__(self, config: ExperimentConfig):
        from advrec.data.prepare import DataSpec, prepare

        self.config = config
        self.output = Path(config.output or f"runs/{config.name}")
        self._parts: dict[int, Any] = {}
        self._extra: dict[str, dict] = {}
        self._evaluators: dict[int, Any] = {}
        self._spec = lambda seed: DataSpec(**config.data.model_dump(), seed=seed)
        self._prepare = prepare

    def parts(self, seed: int):
        if seed not in self._parts:
            self._parts[seed] = self._prepare(self._spec(seed))
        return self._parts[seed]

    def model_dir(self, key: str) -> Path:
        return self.output / "models" / key

    def obtain(self, job: ModelJob, plan_: Plan) -> tuple[Any, bool]:
        """The trained model of ``job``: loaded if saved by an earlier run, else trained now."""
        from advrec.models import get_model, load_model
        from advrec.models.base import read_manifest

        path = self.model_dir(job.key)
        if (path / "manifest.json").is_file():
            self._extra[job.key] = read_manifest(path).get("extra", {})
            return load_model(path, device=self.config.device), False
        parts = self.parts(job.seed)
        cls = get_model(job.name)
        params = dict(job.params)
        known = cls._param_names()
        if "device" in known:
            params["device"] = self.config.device
        params["seed"] = job.seed
        fit_kw: dict[str, Any] = {}
        if "epochs" in known:
            fit_kw["progress"] = False
        if job.early_stopping is not None:
            fit_kw["validate"] = _validator(parts, job.early_stopping["metric"])
            params.update(patience=job.early_stopping["patience"],
                          validate_every=job.early_stopping["every"])
        if job.init_key is not None:
            parent, _ = self.obtain(plan_.job(job.init_key), plan_)
            fit_kw["init_from"] = parent
        model = cls(**params)
        t0 = time.perf_counter()
        model.fit(parts.train, **fit_kw)
        seconds = time.perf_counter() - t0
        extra = {"job": job.__dict__, "history": getattr(model, "history_", []),
                 "fit_seconds": seconds}
        model.save(path, extra=extra)
        self._extra[job.key] = extra
        return model, True

    def evaluate(self, cell: Cell, model, job: ModelJob) -> dict[str, Any]:
        """The result row of one cell (the evaluation under its attack, if any)."""
        from advrec.attacks import perturb, perturbed_scorer
        from advrec.evaluation import Evaluator
        from advrec.models.base import library_versions

        parts = self.parts(job.seed)
        ev_cfg = self.config.evaluation
        if job.seed not in self._evaluators:
            self._evaluators[job.seed] = Evaluator(
                parts.train, parts.test, ks=tuple(ev_cfg.ks), metrics=tuple(ev_cfg.metrics),
                protocol=ev_cfg.protocol, n_negatives=ev_cfg.n_negatives, seed=job.seed,
                coverage=False, device=self.config.device)
        evaluator = self._evaluators[job.seed]
        t0 = time.perf_counter()
        scorer = model
        if cell.attack is not None:
            options = {k: v for k, v in cell.attack.items() if k not in ("method", "eps")}
            if "targets" in options:
                options["targets"] = parts.train.item_index(options["targets"])
            delta = perturb(model, parts.train, cell.attack["method"], cell.attack["eps"],
                            seed=job.seed, **{k: v for k, v in options.items() if k != "seed"})
            scorer = perturbed_scorer(model, delta)
        result = evaluator.evaluate(scorer)
        extra = self._extra.get(job.key, {})
        return {
            "key": cell.key, "experiment": self.config.name, "model_key": job.key,
            "model_label": job.label, "model_name": job.name, "seed": job.seed,
            "attack": cell.attack["method"] if cell.attack else "none",
            "eps": float(cell.attack["eps"]) if cell.attack else None,
            "attack_config": cell.attack, "config": cell.config,
            "metrics": result.summary,
            "per_user": {"users": result.users, **result.per_user},
            "history": extra.get("history", []) if cell.attack is None else [],
            "timings": {"fit_seconds": extra.get("fit_seconds"),
                        "evaluate_seconds": time.perf_counter() - t0},
            "versions": library_versions(),
        }


def _validator(parts, metric: str):
    from advrec.evaluation import Evaluator

    name, _, k = metric.partition("@")
    ks = (int(k),) if k else (10,)
    evaluator = Evaluator(parts.train, parts.valid, ks=ks, metrics=(name,), coverage=False)
    return lambda model: evaluator.evaluate(model).summary[metric if k else f"{name}@10"]


def run_experiment(config: ExperimentConfig, executor: str | None = None,
                   address: str | None = None, progress: bool | None = None,
                   log: Log = lambda _m: None) -> RunSummary:
    """Run every unfinished cell; ``executor`` overrides the file's (``local`` or ``ray``)."""
    torch.set_num_threads(1)
    the_plan = plan(config)
    ctx = Context(config)
    store = ResultsStore(ctx.output)
    _write_config(ctx.output, config)
    try:
        done = store.done_keys()
        todo = [c for c in the_plan.cells if c.key not in done]
        t0 = time.perf_counter()
        executor = executor or config.executor
        if executor == "ray":
            from advrec.experiments.ray_executor import run_ray

            trained = run_ray(ctx, the_plan, todo, store, address, progress, log)
        elif executor == "local":
            trained = _run_local(ctx, the_plan, todo, store, progress, log)
        else:
            raise ConfigError(f"unknown executor {executor!r}; expected local or ray")
        return RunSummary(len(the_plan.cells), len(done), len(todo), trained,
                          time.perf_counter() - t0, ctx.output)
    finally:
        store.close()


def _write_config(output: Path, config: ExperimentConfig) -> None:
    """``experiment.json``: the validated configuration the results came from (atomic write)."""
    import json
    import os

    path = output / "experiment.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(config.model_dump(), indent=1))
    os.replace(tmp, path)


def _run_local(ctx: Context, the_plan: Plan, todo: list[Cell], store: ResultsStore,
               progress: bool | None, log: Log) -> int:
    trained = 0
    with _Progress(progress, len(todo)) as bar:
        for job in the_plan.jobs:
            cells = [c for c in todo if c.model_key == job.key]
            if not cells:
                continue
            bar.describe(f"{job.label} (seed {job.seed}): training")
            model, fresh = ctx.obtain(job, the_plan)
            trained += fresh
            for cell in cells:
                what = "clean" if cell.attack is None else (
                    f"{cell.attack['method']} ε={cell.attack['eps']}")
                bar.describe(f"{job.label} (seed {job.seed}): {what}")
                store.write(ctx.evaluate(cell, model, job))
                bar.advance()
                log(f"done: {job.label} seed {job.seed} {what}")
    return trained


class _Progress:
    """One overall Rich progress bar plus the current cell (silent when not on a TTY)."""

    def __init__(self, enabled: bool | None, total: int):
        import sys

        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = total

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"))
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self.enabled:
            self._bar.update(self._task, description=text)

    def advance(self) -> None:
        if self.enabled:
            self._bar.update(self._task, advance=1)

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            self._bar.stop()
        return False
