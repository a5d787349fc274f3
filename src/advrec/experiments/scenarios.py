"""Scenarios: the kinds of experiment cell. Each plans its conditions from the validated config,
says which models it applies to, and runs one cell on the shared context (data, trained models,
the evaluator), returning a typed :class:`~advrec.experiments.cells.CellResult`.

Adding a kind of cell is one new :class:`Scenario` subclass and a line in :data:`SCENARIOS`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from advrec.errors import ConfigError
from advrec.experiments.cells import Cell, CellResult, Condition, ModelJob, Plan
from advrec.experiments.config import (
    AttackConfig,
    ContentAttackConfig,
    DefenseConfig,
    ExperimentConfig,
    ShillingConfig,
    canonical_hash,
    expand,
    grid_size,
)
from advrec.vocabulary import CERTIFIED, ROBUST_TRAINING

VALUE_KEYS = ("targets",)  # options whose list is one value (a grid only as a list of lists)


class Scenario(ABC):
    """One kind of cell."""

    name: ClassVar[str]
    variant_prefix: ClassVar[str] = ""  # before its attack variants' names in the report

    @abstractmethod
    def conditions(self, config: ExperimentConfig) -> list[Condition]:
        """Every condition of this scenario in the config, in file order (grids expanded)."""

    def count(self, config: ExperimentConfig) -> int:
        """How many conditions :meth:`conditions` makes, without expanding anything."""
        return len(self.conditions(config))

    def applies(self, model_cls: type) -> bool:
        """Whether the scenario has cells for models of ``model_cls``."""
        return True

    def applies_to(self, model_cls: type, condition: Condition) -> bool:
        """Whether ``condition`` makes a cell for models of ``model_cls`` (after
        :meth:`applies`)."""
        return True

    def identity(self, condition: Condition) -> dict[str, Any] | None:
        """What a cell key hashes of the condition (stable across versions: stores resume)."""
        return condition.options

    @abstractmethod
    def describe(self, condition: Condition) -> str:
        """A short text for progress lines."""

    @abstractmethod
    def run(self, ctx, cell: Cell, model, job: ModelJob, plan: Plan) -> CellResult:
        """Compute one cell on the context ``ctx`` (see ``experiments.context.Context``)."""

    def report_sections(self, data, groups: list) -> list:
        """The report's sections on this scenario's cell groups (``experiments.reporting``'s
        ``ReportData`` and ``Group``; ``Section`` objects); the results table and the
        significance tests already cover every cell."""
        return []


# ---------------------------------------------------------------------------- clean
class CleanEvaluation(Scenario):
    """The trained model as it is."""

    name = "clean"

    def conditions(self, config: ExperimentConfig) -> list[Condition]:
        return [Condition(self.name)]

    def describe(self, condition: Condition) -> str:
        return "clean"

    def run(self, ctx, cell: Cell, model, job: ModelJob, plan: Plan) -> CellResult:
        t0 = time.perf_counter()
        result = ctx.evaluator(job.seed).evaluate(model)
        extra = ctx.extra(job.key)
        return ctx.result(cell, job, attack="none", eps=None, attack_config=None,
                          evaluation=result, history=extra.get("history", []),
                          timings={"fit_seconds": extra.get("fit_seconds"),
                                   "evaluate_seconds": time.perf_counter() - t0})

    def report_sections(self, data, groups: list) -> list:
        from advrec.experiments.report_plots import training_section

        return [training_section(data, groups)]


# ---------------------------------------------------------------------------- parameter attacks
class ParameterAttack(Scenario):
    """A perturbation of the trained model's parameter blocks (FGSM, random noise, PGD); the
    model itself is not modified."""

    name = "perturbation"

    def conditions(self, config: ExperimentConfig) -> list[Condition]:
        variants = _unique_variants("attacks", [
            (i, v) for i, entry in enumerate(config.attacks)
            for v in expand(attack_axes(entry), VALUE_KEYS)])
        return [Condition(self.name, v) for v in variants]

    def count(self, config: ExperimentConfig) -> int:
        return sum(grid_size(attack_axes(a), VALUE_KEYS) for a in config.attacks)

    def applies(self, model_cls: type) -> bool:
        return model_cls.supports("parameter_blocks")

    def applies_to(self, model_cls: type, condition: Condition) -> bool:
        """A variant on one named block has cells for the models that have that block."""
        block = condition.options.get("blocks", "both")
        return block in ("both", "all") or block in model_cls.capabilities.parameter_blocks

    def describe(self, condition: Condition) -> str:
        return f"{condition.options['method']} ε={condition.options['eps']}"

    def report_sections(self, data, groups: list) -> list:
        from advrec.experiments.report_plots import robustness_section

        return [robustness_section(data, groups)]

    def run(self, ctx, cell: Cell, model, job: ModelJob, plan: Plan) -> CellResult:
        from advrec.attacks import perturb, perturbed_scorer

        attack = cell.options
        train = ctx.parts(job.seed).train
        t0 = time.perf_counter()
        options = {k: v for k, v in attack.items() if k not in ("method", "eps", "seed")}
        if "targets" in options:
            options["targets"] = train.item_index(options["targets"])
        if attack["method"] == "fgsm":  # one gradient for the whole ε sweep
            options["gradient"] = ctx.fgsm_gradient(job, model, options)
        delta = perturb(model, train, attack["method"], attack["eps"], seed=job.seed, **options)
        result = ctx.evaluator(job.seed).evaluate(perturbed_scorer(model, delta))
        return ctx.result(cell, job, attack=attack["method"], eps=float(attack["eps"]),
                          attack_config=attack, evaluation=result, history=[],
                          timings={"fit_seconds": ctx.extra(job.key).get("fit_seconds"),
                                   "evaluate_seconds": time.perf_counter() - t0})


def attack_axes(entry: AttackConfig) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------- injection
LEGACY_SHILLING_PREFIX = "shill:"  # how cell keys of shilling cells have always hashed the name


class Injection(Scenario):
    """Fake profiles appended to the training data; the victim (and its ``init:`` parent) is
    trained again on them, with no defence and once per detector, which removes the profiles
    it flags first. Test accuracy is measured on the real users, the targets' hit ratio over
    the real users who had not rated them, before (the clean model) and after."""

    name = "shilling"
    variant_prefix = "shilling: "

    def conditions(self, config: ExperimentConfig) -> list[Condition]:
        variants = _unique_variants("shilling", [
            (i, v) for i, entry in enumerate(config.shilling)
            for v in expand(shilling_axes(entry), VALUE_KEYS)])
        defenses = [None, *(defense_options(d) for d in config.defenses)]
        return [Condition(self.name, v, d) for v in variants for d in defenses]

    def count(self, config: ExperimentConfig) -> int:
        variants = sum(grid_size(shilling_axes(s), VALUE_KEYS) for s in config.shilling)
        return variants * (1 + len(config.defenses))

    def identity(self, condition: Condition) -> dict[str, Any] | None:
        options = dict(condition.options)
        name = options.pop("attack")
        return {**options, "method": LEGACY_SHILLING_PREFIX + name}

    def describe(self, condition: Condition) -> str:
        return (f"{condition.options['attack']} size={condition.options['size']} "
                f"defence={(condition.defense or {}).get('detector', 'none')}")

    def report_sections(self, data, groups: list) -> list:
        from advrec.experiments.report_shilling import shilling_section

        return [shilling_section(data, groups)]

    def run(self, ctx, cell: Cell, model, job: ModelJob, plan: Plan) -> CellResult:
        from advrec.attacks.shilling import resolve_items
        from advrec.evaluation.shilling import ShillingImpact, measure_targets, rating_errors

        attack = cell.options
        rank_by = attack.get("rank_by", "score")
        parts = ctx.parts(job.seed)
        train = parts.train
        t0 = time.perf_counter()
        _, targets, made = ctx.poisoned(job.seed, attack)
        certificate = None
        robust = None
        if (cell.defense or {}).get("detector") in ROBUST_TRAINING:
            t_detect = time.perf_counter() - t0
            poisoned_model, detection, fit_seconds, robust = ctx.robustly_trained(
                job, plan, attack, cell.defense)
        elif (cell.defense or {}).get("detector") in CERTIFIED:
            t_detect, detection = time.perf_counter() - t0, None
            poisoned_model, fit_seconds = ctx.certified(job, attack, cell.defense)
            certificate = ctx.clean_certificate(job.seed, cell.defense)
        else:
            data, detection = ctx.defended(job.seed, attack, cell.defense)
            t_detect = time.perf_counter() - t0
            poisoned_model, fit_seconds = ctx.train(job, plan, data, poisoned=True)
        t1 = time.perf_counter()
        evaluator = ctx.evaluator(job.seed)
        result = evaluator.evaluate(poisoned_model)
        internal = resolve_items(train, targets, "target")
        after = measure_targets(poisoned_model, train, internal, rank_by)
        before = ctx.clean_targets(job, model, internal, rank_by)
        clean = ctx.clean_evaluation(job, model)
        collateral = {m: (clean.summary[m], result.summary[m]) for m in clean.per_user}
        tests = {f"test_{m}": _paired(result, clean, m) for m in clean.per_user}
        errors = (rating_errors(poisoned_model, parts.test), rating_errors(model, parts.test))
        if errors[0] is not None and errors[1] is not None:
            collateral.update({m: (errors[1][m], errors[0][m]) for m in errors[0]})
        ks = tuple(ctx.config.evaluation.ks)
        impact = ShillingImpact(
            victim=poisoned_model.name, attack=made.params(),
            targets=train.item_ids[internal].tolist(), n_fake=made.n_fake(train), ks=ks,
            rank_by=rank_by,
            before=before, after=after, collateral=collateral,
            fit_seconds=(ctx.extra(job.key).get("fit_seconds") or 0.0) + fit_seconds,
            tests=tests)
        extra_metrics = {}
        for k in ks:
            extra_metrics[f"target_hr@{k}"] = after.hit_ratio(k)
            extra_metrics[f"target_hr@{k}_before"] = before.hit_ratio(k)
        defense = (cell.defense or {}).get("detector", "none")
        return ctx.result(cell, job, attack=attack["attack"], eps=None,
                          attack_config={**attack, "targets": targets, "defense": defense},
                          evaluation=result, history=[], extra_metrics=extra_metrics,
                          timings={"fit_seconds": fit_seconds, "detect_seconds": t_detect,
                                   "evaluate_seconds": time.perf_counter() - t1},
                          defense=defense, detection=detection,
                          measures={**impact.row(), "profiles": _relative(
                              ctx.profiles_path(job.seed, attack), ctx.output),
                              **({"certificate": certificate} if certificate else {}),
                              **({"apt": robust} if robust else {})},
                          per_user={"targets": target_block(after, ks)})


def target_block(measures, ks) -> dict:
    """The targets' per-user hit ratios and mean rank after the attack (the real users with an
    eligible target), kept so that two attacks can be compared paired over users."""
    return {"users": measures.users, "target_rank": measures.per_user_rank(),
            **{f"target_hr@{k}": measures.per_user_hits(k) for k in ks}}


def _relative(path, root) -> str:
    """``path`` relative to the experiment folder (as stored with the results)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _paired(after, before, metric: str) -> dict:
    from advrec.evaluation.significance import compare_results

    return compare_results(after, before, metric)


def shilling_axes(entry: ShillingConfig) -> dict[str, Any]:
    """A shilling entry as the dict :func:`expand` expands: the attack's own intent spelled
    out, the defaults of ``implicit``, ``rank_by`` and ``profile_seed_offset`` left out (so cell
    keys stay as they were before those options existed)."""
    from advrec.attacks.injection import attack_class

    raw = entry.model_dump()
    if raw["intent"] is None:
        raw["intent"] = attack_class(raw["attack"]).default_intent
    if raw["implicit"] is None:
        raw.pop("implicit")
    if raw["rank_by"] == "score":
        raw.pop("rank_by")
    if raw["profile_seed_offset"] == 0:
        raw.pop("profile_seed_offset")
    if not raw["params"]:
        raw.pop("params")
    if raw["targets"] is None:
        raw.pop("targets")
    else:
        raw.pop("n_targets")
        raw.pop("target_strategy")
    return raw


def defense_options(entry: DefenseConfig) -> dict[str, Any]:
    raw = entry.model_dump()
    if raw["detector"] == "trim":  # trimmed learning: only its own options
        return {k: raw[k] for k in ("detector", "fraction", "rounds")}
    if raw["detector"] == "apt":  # adversarial poisoning training: its parameters
        return {k: raw[k] for k in ("detector", "params")}
    if raw["detector"] in CERTIFIED:  # the certified ensemble: its parameters
        return {k: raw[k] for k in ("detector", "params", "max_fake")}
    for k in ("fraction", "rounds", "params", "max_fake"):
        raw.pop(k)
    if raw["detector"] in ("pca", "rule", "perfect"):  # options of the supervised detectors
        for k in ("train_attacks", "train_sizes", "train_fillers", "features"):
            raw.pop(k)
    if raw["detector"] == "perfect":
        raw.pop("k_features")
    return raw


# ---------------------------------------------------------------------------- registry
# ---------------------------------------------------------------------------- content attacks
class ContentAttack(Scenario):
    """An attack on the items' images (TAaMR): the source class's images are perturbed toward
    the target class, their features re-extracted (after the image defence, if any) and the
    content-aware model scored with them; the measures are the source category's hit ratio
    before and after, the attack's success rate and the images' PSNR / SSIM."""

    name = "content"
    variant_prefix = "content: "

    def conditions(self, config: ExperimentConfig) -> list[Condition]:
        variants = _unique_variants("content_attacks", [
            (i, v) for i, entry in enumerate(config.content_attacks)
            for v in expand(content_axes(entry))])
        return [Condition(self.name, v) for v in variants]

    def count(self, config: ExperimentConfig) -> int:
        return sum(grid_size(content_axes(a)) for a in config.content_attacks)

    def applies(self, model_cls: type) -> bool:
        return model_cls.supports("content_features")

    def describe(self, condition: Condition) -> str:
        o = condition.options
        return f"{o['attack']} {o['method']} ε={o['eps']:g}/255 transform={o['transform']}"

    def report_sections(self, data, groups: list) -> list:
        from advrec.experiments.report_content import content_section

        return [content_section(data, groups)]

    def run(self, ctx, cell: Cell, model, job: ModelJob, plan: Plan) -> CellResult:
        from advrec.attacks import perturbed_scorer
        from advrec.evaluation.robustness import category_hit_ratio

        attack = cell.options
        t0 = time.perf_counter()
        attacked = ctx.content_attacked(job.seed, attack)
        t_attack = time.perf_counter() - t0
        delta = attacked.feature_delta(model)
        evaluator = ctx.evaluator(job.seed)
        ks = tuple(ctx.config.evaluation.ks)
        t1 = time.perf_counter()
        scorer = perturbed_scorer(model, {"item_content": delta})
        result = evaluator.evaluate(scorer)
        before = ctx.clean_category_hit_ratio(job, model, attacked.in_source, ks)
        after = category_hit_ratio(scorer, evaluator, attacked.in_source, ks)
        clean = ctx.clean_evaluation(job, model)
        extra_metrics = {}
        for k in ks:
            extra_metrics[f"chr@{k}"] = after[f"chr@{k}"]
            extra_metrics[f"chr@{k}_before"] = before[f"chr@{k}"]
        tests = {f"test_{m}": _paired(result, clean, m) for m in clean.per_user}
        return ctx.result(cell, job, attack=attack["attack"], eps=float(attack["eps"]),
                          attack_config=attack, evaluation=result, history=[],
                          extra_metrics=extra_metrics,
                          timings={"attack_seconds": t_attack,
                                   "evaluate_seconds": time.perf_counter() - t1},
                          measures={**attacked.summary(), "tests": tests,
                                    "examples": attacked.examples})


def content_axes(entry: ContentAttackConfig) -> dict[str, Any]:
    """A content-attack entry's options, list-valued ones (method, eps, transform) as axes."""
    return entry.model_dump()


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (CleanEvaluation(), ParameterAttack(),
                                                      Injection(), ContentAttack())}
"""Every scenario by name, in the order cells are planned for each model."""


def _unique_variants(section: str, variants: list[tuple[int, dict]]) -> list[dict[str, Any]]:
    """The variants in order; the same variant from two entries (or twice from one grid) is
    refused, naming the entries."""
    seen: dict[str, int] = {}
    for i, v in variants:
        key = canonical_hash(v)
        if key in seen:
            where = f"{section}.{seen[key]}" + (f" and {section}.{i}" if seen[key] != i else "")
            shown = ", ".join(f"{k}={x}" for k, x in v.items())
            raise ConfigError(f"{where}: the same variant twice ({shown}); each cell is run "
                              f"once: remove the repeat")
        seen[key] = i
    return [v for _, v in variants]
