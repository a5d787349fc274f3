"""The experiment runner: expand the file into cells, train each distinct model once, evaluate
every cell (clean or attacked), and write each finished cell to the results store.

Parameter attacks perturb the trained model. Shilling attacks append fake profiles to the
training data and train the model again on it (its parent too, for ``init:`` entries), with no
defence and once per detector of ``defenses:``, which removes the profiles it flags first.

A model is keyed by the hash of everything that determines it (data recipe, model type,
parameters, the model it starts from, seed); a cell by its model key, its attack and the
evaluation settings. Finished cells are skipped on a re-run, and trained models are kept under
``<output>/models/<key>/``, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
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
    DefenseConfig,
    ExperimentConfig,
    ShillingConfig,
    canonical_hash,
    check_config,
    expand,
    grid_size,
)
from advrec.experiments.store import DB_NAME, ResultsStore

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
    """One result row: a model, clean (``attack is None``) or under one attack variant; for a
    shilling attack (``attack["method"]`` = ``shill:<name>``) with ``defense`` (None: none)."""

    key: str
    model_key: str
    attack: dict[str, Any] | None
    config: dict[str, Any] = field(compare=False)
    defense: dict[str, Any] | None = None

    @property
    def shilling(self) -> bool:
        return self.attack is not None and self.attack["method"].startswith(SHILL)

    def describe(self) -> str:
        if self.attack is None:
            return "clean"
        if self.shilling:
            return (f"{self.attack['method']} size={self.attack['size']} "
                    f"defence={(self.defense or {}).get('detector', 'none')}")
        return f"{self.attack['method']} ε={self.attack['eps']}"


SHILL = "shill:"  # the attack column of shilling cells: shill:<attack name>
VALUE_KEYS = ("targets",)  # attack options whose list is one value (a grid only as a list of lists)


@dataclass
class Plan:
    jobs: list[ModelJob]
    cells: list[Cell]

    def job(self, key: str) -> ModelJob:
        return next(j for j in self.jobs if j.key == key)


DEFAULT_MAX_CELLS = 10_000


# ---------------------------------------------------------------------------- planning
def count_cells(config: ExperimentConfig) -> int:
    """How many cells :func:`plan` would make, by arithmetic on the grids (nothing expanded)."""
    from advrec.models import get_model

    attacks = sum(grid_size(_attack_axes(a), VALUE_KEYS) for a in config.attacks)
    shillings = sum(grid_size(_shilling_axes(s), VALUE_KEYS) for s in config.shilling)
    per_seed = 0
    for entry in config.models:
        variants = grid_size(entry.params, SEQUENCE_PARAMS)
        attackable = hasattr(get_model(entry.name), "parameter_blocks")
        per_seed += variants * (1 + (attacks if attackable else 0)
                                + shillings * (1 + len(config.defenses)))
    return per_seed * len(config.seeds)


def preflight(config: ExperimentConfig, max_cells: int = DEFAULT_MAX_CELLS,
              source: str = "experiment", overwrite: bool = False,
              ctx: Context | None = None) -> Plan:
    """Everything :func:`run_experiment` checks before its first cell, and nothing it runs: the
    grid's size (refused past ``max_cells`` before anything is expanded), each model variant,
    the data set, the plan (no two entries may make the same cell) and the output folder."""
    from advrec.outputs import check_dir

    total = count_cells(config)
    if total > max_cells:
        raise ConfigError(f"{source}: the grid expands to {total:,} cells, more than the limit "
                          f"of {max_cells:,}; shrink a grid or raise the limit (--max-cells)")
    check_config(config, source)
    the_plan = plan(config)
    ctx = ctx or Context(config)
    check_dir(ctx.output, "experiment", identity=config.name, overwrite=overwrite)
    _check_detectors_have_ratings(ctx)
    return the_plan


def plan(config: ExperimentConfig) -> Plan:
    """Expand seeds × model grids × (clean + attack grids) into model jobs and cells; two model
    entries (or attack variants) that make the same cell are refused, naming both."""
    from advrec.models import get_model

    data = config.data.model_dump()
    evaluation = config.evaluation.model_dump()
    evaluation.pop("significance")  # how p-values are computed does not change a cell's numbers
    attacks = _unique_variants("attacks", [(i, a) for i, entry in enumerate(config.attacks)
                                           for a in expand(_attack_axes(entry), VALUE_KEYS)])
    shillings = _unique_variants("shilling", [(i, v) for i, entry in enumerate(config.shilling)
                                              for v in expand(_shilling_axes(entry), VALUE_KEYS)])
    defenses = [None, *(_defense(d) for d in config.defenses)]
    jobs: list[ModelJob] = []
    cells: list[Cell] = []
    for seed in config.seeds:
        by_label: dict[str, list[ModelJob]] = {}
        made_by: dict[str, str] = {}  # model key → the entry (and variant) that made it
        for index, entry in enumerate(config.models):
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
                if job.key in made_by:
                    raise ConfigError(f"models.{index} ({label!r}) is the same model as "
                                      f"{made_by[job.key]} (same model, parameters, start and "
                                      f"seed): its cells would be computed twice under two "
                                      f"labels; remove one or change a parameter")
                made_by[job.key] = f"models.{index} ({label!r})"
                made.append(job)
            by_label[entry.key_label] = made
            jobs.extend(made)
            attackable = hasattr(get_model(entry.name), "parameter_blocks")
            for job in made:
                variants = [(a, None) for a in ([None, *attacks] if attackable else [None])]
                variants += [(s, d) for s in shillings for d in defenses]
                for attack, defense in variants:
                    cfg = {"model_key": job.key, "attack": attack, "evaluation": evaluation,
                           "data": data}
                    if defense is not None:
                        cfg["defense"] = defense
                    cells.append(Cell(canonical_hash(cfg), job.key, attack,
                                      {**cfg, "model": {"name": job.name, "label": job.label,
                                                        "params": job.params, "seed": seed,
                                                        "init": job.init_key,
                                                        "early_stopping": es}}, defense))
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


def _unique_variants(section: str, variants: list[tuple[int, dict]]) -> list[dict[str, Any]]:
    """The variants in order; the same variant from two entries (or twice from one grid) is
    refused, naming the entries."""
    seen: dict[str, int] = {}
    for i, v in variants:
        key = canonical_hash(v)
        if key in seen:
            where = f"{section}.{seen[key]}" + (f" and {section}.{i}" if seen[key] != i else "")
            raise ConfigError(f"{where}: the same variant twice ({_plain_variant(v)}); each cell "
                              f"is run once: remove the repeat")
        seen[key] = i
    return [v for _, v in variants]


def _plain_variant(v: dict[str, Any]) -> str:
    return ", ".join(f"{k}={x}" for k, x in v.items())


def _attack_axes(entry: AttackConfig) -> dict[str, Any]:
    """An attack entry as the dict whose grid :func:`expand` expands (inapplicable options
    dropped, so they neither multiply cells nor change keys)."""
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
    return raw


def _shilling_axes(entry: ShillingConfig) -> dict[str, Any]:
    raw = entry.model_dump()
    raw["method"] = SHILL + raw.pop("attack")
    if raw["targets"] is None:
        raw.pop("targets")
    else:
        raw.pop("n_targets")
        raw.pop("target_strategy")
    return raw


def _defense(entry: DefenseConfig) -> dict[str, Any]:
    raw = entry.model_dump()
    if raw["detector"] in ("pca", "rule", "perfect"):  # options of the supervised detectors
        for k in ("train_attacks", "train_sizes", "train_fillers", "features"):
            raw.pop(k)
    if raw["detector"] == "perfect":
        raw.pop("k_features")
    return raw


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
        self._poisoned: dict[str, tuple] = {}
        self._defended: dict[str, tuple] = {}
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
        from advrec.models import load_model
        from advrec.models.base import read_manifest

        path = self.model_dir(job.key)
        if (path / "manifest.json").is_file():
            self._extra[job.key] = read_manifest(path).get("extra", {})
            return load_model(path, device=self.config.device), False
        parts = self.parts(job.seed)
        model, seconds = self.train(job, plan_, parts.train)
        extra = {"job": job.__dict__, "history": getattr(model, "history_", []),
                 "fit_seconds": seconds}
        model.save(path, extra=extra, overwrite=True)  # a half-written folder of this run
        self._extra[job.key] = extra
        return model, True

    def train(self, job: ModelJob, plan_: Plan, data, poisoned: bool = False) -> tuple[Any, float]:
        """A fresh model of ``job`` fitted on ``data`` (its ``init:`` parent first: the saved one
        for the clean data, trained again on the same data when ``poisoned``); (model, seconds)."""
        from advrec.models import get_model

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
            parent_job = plan_.job(job.init_key)
            parent = (self.train(parent_job, plan_, data, poisoned)[0] if poisoned
                      else self.obtain(parent_job, plan_)[0])
            fit_kw["init_from"] = parent
        model = cls(**params)
        t0 = time.perf_counter()
        model.fit(data, **fit_kw)
        return model, time.perf_counter() - t0

    def evaluator(self, seed: int):
        """The evaluator of the seed's split (clean training items masked)."""
        from advrec.evaluation import Evaluator

        if seed not in self._evaluators:
            parts = self.parts(seed)
            ev_cfg = self.config.evaluation
            self._evaluators[seed] = Evaluator(
                parts.train, parts.test, ks=tuple(ev_cfg.ks), metrics=tuple(ev_cfg.metrics),
                protocol=ev_cfg.protocol, n_negatives=ev_cfg.n_negatives, seed=seed,
                coverage=False, device=self.config.device)
        return self._evaluators[seed]

    def poisoned(self, seed: int, attack: dict[str, Any]) -> tuple[Any, list]:
        """(training data + the attack's fake profiles, raw target ids), built once per seed."""
        from advrec.attacks.shilling import generate, select_targets

        key = canonical_hash({"seed": seed, "attack": attack})
        if key not in self._poisoned:
            train = self.parts(seed).train
            targets = attack.get("targets")
            if targets is None:
                targets = select_targets(train, attack["n_targets"], attack["target_strategy"],
                                         seed=seed).tolist()
            fake = generate(attack["method"].removeprefix(SHILL), train, targets,
                            size=attack["size"], filler=attack["filler"], seed=seed,
                            intent=attack["intent"], implicit=train.ratings is None)
            self._poisoned[key] = (train.concat(fake), list(targets))
        return self._poisoned[key]

    def defended(self, seed: int, attack: dict[str, Any], defense: dict[str, Any] | None
                 ) -> tuple[Any, dict | None]:
        """(the poisoned training data less the profiles ``defense`` flags, its detection
        metrics with curves and feature histograms); the data as is without a defence."""
        from advrec.defenses import filter_profiles
        from advrec.evaluation.detection import defend

        data, targets = self.poisoned(seed, attack)
        if defense is None:
            return data, None
        key = canonical_hash({"seed": seed, "attack": attack, "defense": defense})
        if key not in self._defended:
            train = self.parts(seed).train
            options = {k: v for k, v in defense.items() if k != "detector"}
            t0 = time.perf_counter()
            flags, info = defend(train, data, defense["detector"],
                                 attack["method"].removeprefix(SHILL), targets,
                                 intent=attack["intent"],
                                 target_strategy=attack.get("target_strategy", "quantile"),
                                 curves=True, histograms=True, seed=seed, **options)
            info["seconds"] = time.perf_counter() - t0
            info["removed_real"] = int(flags[:train.n_users].sum())
            self._defended[key] = (filter_profiles(data, flags, drop_from=train.n_users), info)
        return self._defended[key]

    def evaluate(self, cell: Cell, model, job: ModelJob, plan_: Plan | None = None
                 ) -> dict[str, Any]:
        """The result row of one cell (the evaluation under its attack, if any); shilling cells
        train the model again on the poisoned (and filtered) data, which needs ``plan_``."""
        from advrec.attacks import perturb, perturbed_scorer
        from advrec.models.base import library_versions

        if cell.shilling:
            return self._evaluate_shilling(cell, model, job, plan_)
        parts = self.parts(job.seed)
        evaluator = self.evaluator(job.seed)
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
            "defense": None, "detection": None,
        }

    def _evaluate_shilling(self, cell: Cell, clean_model, job: ModelJob, plan_: Plan | None
                           ) -> dict[str, Any]:
        """Train ``job``'s model on the poisoned (and defended) data; test accuracy on the real
        users and the targets' hit ratio over the real users who had not rated them, before
        (``target_hr@k_before``, the clean model) and after the attack."""
        from advrec.attacks.shilling import resolve_items
        from advrec.evaluation.shilling import measure_targets
        from advrec.models.base import library_versions

        if plan_ is None:
            raise ValueError("a shilling cell trains its model again: pass the plan")
        parts = self.parts(job.seed)
        t0 = time.perf_counter()
        data, detection = self.defended(job.seed, cell.attack, cell.defense)
        _, targets = self.poisoned(job.seed, cell.attack)
        t_detect = time.perf_counter() - t0
        model, fit_seconds = self.train(job, plan_, data, poisoned=True)
        t1 = time.perf_counter()
        result = self.evaluator(job.seed).evaluate(model)
        internal = resolve_items(parts.train, targets, "target")
        after = measure_targets(model, parts.train, internal)
        before = measure_targets(clean_model, parts.train, internal)
        metrics = dict(result.summary)
        for k in self.config.evaluation.ks:
            metrics[f"target_hr@{k}"] = after.hit_ratio(k)
            metrics[f"target_hr@{k}_before"] = before.hit_ratio(k)
        defense = (cell.defense or {}).get("detector", "none")
        return {
            "key": cell.key, "experiment": self.config.name, "model_key": job.key,
            "model_label": job.label, "model_name": job.name, "seed": job.seed,
            "attack": cell.attack["method"], "eps": None,
            "attack_config": {**cell.attack, "targets": targets, "defense": defense},
            "config": cell.config, "metrics": metrics,
            "per_user": {"users": result.users, **result.per_user},
            "history": [],
            "timings": {"fit_seconds": fit_seconds, "detect_seconds": t_detect,
                        "evaluate_seconds": time.perf_counter() - t1},
            "versions": library_versions(),
            "defense": defense, "detection": detection,
        }


def _validator(parts, metric: str):
    from advrec.evaluation import Evaluator
    from advrec.metric_names import metric_key, parse_metric

    name, k = parse_metric(metric)
    evaluator = Evaluator(parts.train, parts.valid, ks=(k or 10,), metrics=(name,),
                          coverage=False)
    key = metric_key(name, k)
    return lambda model: evaluator.evaluate(model).summary[key]


def run_experiment(config: ExperimentConfig, executor: str | None = None,
                   address: str | None = None, progress: bool | None = None,
                   log: Log = lambda _m: None, max_cells: int = DEFAULT_MAX_CELLS,
                   overwrite: bool = False, source: str = "experiment") -> RunSummary:
    """Run every unfinished cell; ``executor`` overrides the file's (``local`` or ``ray``).

    The whole file is checked first (:func:`preflight`), so an invalid file writes nothing. The
    output folder must be new, empty, or this experiment's own (a re-run resumes there); the
    results of another experiment are replaced only with ``overwrite``.
    """
    from advrec.outputs import claim_dir

    torch.set_num_threads(1)
    ctx = Context(config)
    the_plan = preflight(config, max_cells, source, overwrite, ctx)
    out = claim_dir(ctx.output, "experiment", identity=config.name, overwrite=overwrite)
    out.subdir("models", "models", identity=config.name)
    out.record(DB_NAME, f"{DB_NAME}.wal")
    store = ResultsStore(ctx.output)
    out.write_text("experiment.json", json.dumps(config.model_dump(), indent=1))
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


def _check_detectors_have_ratings(ctx: Context) -> None:
    """Detectors read rating profiles (RDMA, WDMA, …): refuse unrated data before any cell runs."""
    detectors = [d.detector for d in ctx.config.defenses if d.detector != "perfect"]
    if detectors and ctx.parts(ctx.config.seeds[0]).train.ratings is None:
        raise ConfigError(f"defenses: {', '.join(detectors)} read rating profiles, but the "
                          f"training data of {ctx.config.data.dataset!r} has no ratings (implicit "
                          f"data or data.binarize); only 'perfect' works without ratings")


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
                what = cell.describe()
                bar.describe(f"{job.label} (seed {job.seed}): {what}")
                store.write(ctx.evaluate(cell, model, job, the_plan))
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
