"""Planning: a validated experiment becomes model jobs (each distinct model trained once) and
cells (each model under each condition of each scenario that applies to it).

A model is keyed by the hash of everything that determines it (data recipe, model type,
parameters, the model it starts from, seed); a cell by its model key, its condition and the
evaluation settings, so a re-run finds the cells that are done.
"""

from __future__ import annotations

import inspect
from typing import Any

from advrec.errors import ConfigError
from advrec.experiments.cells import Cell, ModelJob, Plan
from advrec.experiments.config import (
    NOT_MODEL_PARAMS,
    SEQUENCE_PARAMS,
    ExperimentConfig,
    canonical_hash,
    check_config,
    expand,
    grid_size,
)
from advrec.experiments.context import Context, check_detectors_have_ratings
from advrec.experiments.scenarios import SCENARIOS

DEFAULT_MAX_CELLS = 10_000


def count_cells(config: ExperimentConfig) -> int:
    """How many cells :func:`plan` would make, by arithmetic on the grids (nothing expanded)."""
    from advrec.models import get_model

    per_model = {name: s.count(config) for name, s in SCENARIOS.items()}
    per_seed = 0
    for entry in config.models:
        cls = get_model(entry.name)
        conditions = sum(n for name, n in per_model.items() if SCENARIOS[name].applies(cls))
        per_seed += grid_size(entry.params, SEQUENCE_PARAMS) * conditions
    return per_seed * len(config.seeds)


def preflight(config: ExperimentConfig, max_cells: int = DEFAULT_MAX_CELLS,
              source: str = "experiment", overwrite: bool = False,
              ctx: Context | None = None) -> Plan:
    """Everything ``run_experiment`` checks before its first cell, and nothing it runs: the
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
    check_detectors_have_ratings(ctx)
    return the_plan


def plan(config: ExperimentConfig) -> Plan:
    """Expand seeds × model grids × the scenarios' conditions into model jobs and cells; two
    model entries (or condition variants) that make the same cell are refused, naming both."""
    from advrec.models import get_model

    data = config.data.identity()
    evaluation = config.evaluation.model_dump()
    evaluation.pop("significance")  # how p-values are computed does not change a cell's numbers
    conditions = {name: s.conditions(config) for name, s in SCENARIOS.items()}
    jobs: list[ModelJob] = []
    cells: list[Cell] = []
    for seed in config.seeds:
        by_label: dict[str, list[ModelJob]] = {}
        made_by: dict[str, str] = {}  # model key → the entry (and variant) that made it
        for index, entry in enumerate(config.models):
            made = _jobs(config, index, seed, data, by_label, made_by)
            by_label[entry.key_label] = made
            jobs.extend(made)
            cls = get_model(entry.name)
            applicable = [(SCENARIOS[name], c) for name, conds in conditions.items()
                          if SCENARIOS[name].applies(cls) for c in conds
                          if SCENARIOS[name].applies_to(cls, c)]
            for job in made:
                for scenario, condition in applicable:
                    cfg = {"model_key": job.key, "attack": scenario.identity(condition),
                           "evaluation": evaluation, "data": data}
                    if condition.defense is not None:
                        cfg["defense"] = condition.defense
                    cells.append(Cell(canonical_hash(cfg), job.key, condition,
                                      {**cfg, "model": {"name": job.name, "label": job.label,
                                                        "params": job.params, "seed": seed,
                                                        "init": job.init_key,
                                                        "early_stopping": job.early_stopping}}))
    if not cells:
        raise ConfigError("the experiment expands into zero cells")
    return Plan(jobs, cells)


def _jobs(config: ExperimentConfig, index: int, seed: int, data: dict,
          by_label: dict[str, list[ModelJob]], made_by: dict[str, str]) -> list[ModelJob]:
    """The model jobs of one model entry for one seed (one per variant of its grid)."""
    from advrec.models import get_model

    entry = config.models[index]
    variants = expand(entry.params, SEQUENCE_PARAMS)
    parents = by_label.get(entry.init, [None]) if entry.init else [None]
    if entry.init and len(parents) > 1:
        raise ConfigError(f"models: {entry.key_label!r} starts from {entry.init!r}, which "
                          f"expands into {len(parents)} variants; give it one")
    parent = parents[0]
    es = entry.early_stopping.model_dump() if entry.early_stopping else None
    defaults = _defaults(get_model(entry.name))
    made = []
    for params in variants:
        full = {**defaults, **params}  # a default spelled out gives the same model
        identity = {"data": data, "model": entry.name, "params": full, "seed": seed,
                    "init": parent.key if parent else None, "early_stopping": es}
        label = entry.key_label + (_suffix(params, entry.params) if len(variants) > 1 else "")
        job = ModelJob(canonical_hash(identity), label, entry.name, params, seed,
                       parent.key if parent else None, es)
        if job.key in made_by:
            raise ConfigError(f"models.{index} ({label!r}) is the same model as "
                              f"{made_by[job.key]} (same model, parameters, start and seed): its "
                              f"cells would be computed twice under two labels; remove one or "
                              f"change a parameter")
        made_by[job.key] = f"models.{index} ({label!r})"
        made.append(job)
    return made


def _defaults(cls) -> dict[str, Any]:
    """A model class's ``__init__`` defaults, less what the experiment sets itself."""
    sig = inspect.signature(cls.__init__)
    return {n: (list(p.default) if isinstance(p.default, tuple) else p.default)
            for n, p in sig.parameters.items()
            if n != "self" and p.default is not inspect.Parameter.empty
            and n not in NOT_MODEL_PARAMS}


def _suffix(params: dict, declared: dict) -> str:
    varying = [k for k, v in declared.items() if isinstance(v, list) and k in params
               and not (k in SEQUENCE_PARAMS and not isinstance(v[0], list))]
    return "[" + ", ".join(f"{k}={params[k]}" for k in varying) + "]" if varying else ""
