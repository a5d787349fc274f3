"""The Ray executor: one task per model to train and one task per cell, results streamed back
to the driver, which alone writes the store. Needs the optional extra ``advrec[ray]``."""

from __future__ import annotations

from typing import Any

from advrec.errors import ConfigError


def _train_task(config, the_plan, job, *parents) -> str:
    import torch

    from advrec.experiments.context import Context

    torch.set_num_threads(1)
    Context(config).obtain(job, the_plan)
    return job.key


def _cell_task(config, the_plan, cell, job, _trained: str):
    import torch

    from advrec.experiments.context import Context

    torch.set_num_threads(1)
    ctx = Context(config)
    model, _ = ctx.obtain(job, the_plan)  # loads the model the train task saved
    return ctx.evaluate(cell, model, job, the_plan)


def run_ray(ctx, the_plan, todo, store, address, progress, log) -> int:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'advrec[ray]'") from None
    from advrec.training.progress import Progress

    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "ignore_reinit_error": True}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = max(1, ctx.config.workers)
        ray.init(**kwargs)
    train = ray.remote(num_cpus=1)(_train_task)
    evaluate = ray.remote(num_cpus=1)(_cell_task)
    needed = {c.model_key for c in todo}
    refs: dict[str, Any] = {}
    trained = 0
    for job in the_plan.jobs:  # parents come before children in the plan
        if job.key not in needed and not _is_parent_of(job.key, needed, the_plan):
            continue
        parent = [refs[job.init_key]] if job.init_key in refs else []
        fresh = not (ctx.model_dir(job.key) / "manifest.json").is_file()
        trained += fresh
        refs[job.key] = train.remote(ctx.config, the_plan, job, *parent)
    pending = {evaluate.remote(ctx.config, the_plan, cell, the_plan.job(cell.model_key),
                               refs[cell.model_key]): cell for cell in todo}
    try:
        with Progress("cells", len(todo), enabled=progress, unit="cells") as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                pending.pop(ready[0])
                row = ray.get(ready[0])
                store.write(row)
                bar.describe(f"{row.model_label} (seed {row.seed}): {row.scenario} {row.attack}")
                bar.advance()
                log(f"done: {row.model_label} seed {row.seed} {row.scenario} {row.attack}")
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        if started:
            ray.shutdown()
    return trained


def _is_parent_of(key: str, needed: set[str], the_plan) -> bool:
    children = {j.key for j in the_plan.jobs if j.init_key == key}
    return bool(children & needed) or any(_is_parent_of(c, needed, the_plan) for c in children)
