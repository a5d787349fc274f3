"""The experiment runner: plan the file into cells, train each distinct model once, run every
unfinished cell through its scenario, and write each finished cell to the results store.

Scenarios (``experiments.scenarios``): a clean evaluation; a parameter attack, which perturbs
the trained model; a shilling injection, which appends fake profiles to the training data and
trains the model again on it (its ``init:`` parent too), with no defence and once per detector
of ``defenses:``, which removes the profiles it flags first.

Finished cells are skipped on a re-run, and trained models are kept under
``<output>/models/<key>/``, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advrec._lazy import lazy
from advrec.errors import ConfigError
from advrec.experiments.cells import Cell, Plan
from advrec.experiments.config import ExperimentConfig
from advrec.experiments.context import Context
from advrec.experiments.planning import DEFAULT_MAX_CELLS, count_cells, plan, preflight
from advrec.experiments.scenarios import SCENARIOS
from advrec.experiments.store import DB_NAME, ResultsStore

torch = lazy("torch")

__all__ = ["DEFAULT_MAX_CELLS", "RunSummary", "count_cells", "plan", "preflight",
           "run_experiment"]

Log = Callable[[str], None]


@dataclass
class RunSummary:
    total: int
    done_before: int
    done_now: int
    models_trained: int
    seconds: float
    output: Path


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


def _run_local(ctx: Context, the_plan: Plan, todo: list[Cell], store: ResultsStore,
               progress: bool | None, log: Log) -> int:
    from advrec.training.progress import Progress

    trained = 0
    ctx.fit_progress = progress  # the models' epochs join the cells' display
    with Progress("cells", len(todo), enabled=progress, unit="cells") as bar:
        for job in the_plan.jobs:
            cells = [c for c in todo if c.model_key == job.key]
            if not cells:
                continue
            bar.describe(f"{job.label} (seed {job.seed}): training")
            model, fresh = ctx.obtain(job, the_plan)
            trained += fresh
            for cell in cells:
                what = SCENARIOS[cell.scenario].describe(cell.condition)
                bar.describe(f"{job.label} (seed {job.seed}): {what}")
                store.write(ctx.evaluate(cell, model, job, the_plan))
                bar.advance()
                log(f"done: {job.label} seed {job.seed} {what}")
    return trained
