"""The shared context of an experiment's cells: the config, the prepared split of each seed, the
trained models (loaded if an earlier run saved them, else trained and saved), the evaluator, and
the poisoned / defended training data of shilling cells, each built once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from advrec.errors import ConfigError
from advrec.experiments.cells import Cell, CellResult, ModelJob, Plan
from advrec.experiments.config import ExperimentConfig, canonical_hash
from advrec.experiments.scenarios import SCENARIOS
from advrec.vocabulary import CERTIFIED


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
        self._training_profiles: dict[int, dict] = {}  # defend's cache, per seed
        self.fit_progress: bool | None = False  # the models' epoch progress (runner sets it)
        self._clean: dict[str, Any] = {}
        self._clean_targets: dict[str, Any] = {}
        self._certificates: dict[str, dict] = {}  # PORE's clean certificate, per seed × options
        self._content: dict[int, Any] = {}
        self._content_attacks: dict[str, Any] = {}
        self._clean_chr: dict[str, dict] = {}
        self._pixel_attacks: dict[str, Any] = {}  # TAaMR results, shared across image defences
        self._fgsm: dict[str, Any] = {"job": None, "grads": {}}  # the current model's ∇J
        self._spec = lambda seed: DataSpec(**config.data.spec_fields(), seed=seed)
        self._prepare = prepare

    def parts(self, seed: int):
        if seed not in self._parts:
            self._parts[seed] = self._prepare(self._spec(seed))
        return self._parts[seed]

    def model_dir(self, key: str) -> Path:
        return self.output / "models" / key

    def extra(self, key: str) -> dict:
        """What was recorded when the model of ``key`` was trained (history, fit seconds)."""
        return self._extra.get(key, {})

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
        if "progress" in cls.capabilities.fit_options:
            fit_kw["progress"] = self.fit_progress
        if job.early_stopping is not None:
            fit_kw["validate"] = _validator(parts, job.early_stopping["metric"])
            params.update(patience=job.early_stopping["patience"],
                          validate_every=job.early_stopping["every"])
        if job.init_key is not None:
            parent_job = plan_.job(job.init_key)
            parent = (self.train(parent_job, plan_, data, poisoned)[0] if poisoned
                      else self.obtain(parent_job, plan_)[0])
            fit_kw["init_from"] = parent
        if cls.capabilities.content_features:
            fit_kw["item_features"] = self.content(job.seed)
        model = cls(**params)
        if "valid" in cls.capabilities.fit_options and "validate" not in fit_kw:
            from advrec.evaluation import holdout_validation

            fit_kw.update(holdout_validation(model, data))  # CFGAN, IRGAN: their own hold-out
        t0 = time.perf_counter()
        model.fit(data, **fit_kw)
        return model, time.perf_counter() - t0

    def content(self, seed: int):
        """The ``ItemFeatures`` of the seed's training items (``data.content``), built once
        (image features are also cached on disk by the image set's hash)."""
        from advrec.experiments.content import content_source, item_features

        if seed not in self._content:
            recipe = content_source(self.config)
            if recipe is None:
                raise ConfigError("data.content: a content-aware model (vbpr, amr) needs the "
                                  "items' content features; give data.content")
            self._content[seed] = item_features(recipe, self.parts(seed).train,
                                                device=self.config.device,
                                                progress=self.fit_progress)
        return self._content[seed]

    def content_attacked(self, seed: int, attack: dict[str, Any]):
        """One content-attack variant's outcome on the seed's items (run once, shared by the
        models: the attack is on the CNN)."""
        from advrec.experiments.content import attack_content, content_source

        key = canonical_hash({"seed": seed, "content_attack": attack})
        if key not in self._content_attacks:
            self._content_attacks[key] = attack_content(
                content_source(self.config), self.content(seed), self.parts(seed).train, attack,
                seed, device=self.config.device, progress=self.fit_progress,
                cache=self._pixel_attacks)
        return self._content_attacks[key]

    def clean_category_hit_ratio(self, job: ModelJob, model, in_category, ks) -> dict:
        """The category hit ratio of ``job``'s clean model (once per category)."""
        import numpy as np

        from advrec.evaluation.robustness import category_hit_ratio

        key = canonical_hash({"job": job.key, "items": np.flatnonzero(in_category).tolist(),
                              "ks": list(ks)})
        if key not in self._clean_chr:
            self._clean_chr[key] = category_hit_ratio(model, self.evaluator(job.seed),
                                                      in_category, ks)
        return self._clean_chr[key]

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

    def poisoned(self, seed: int, attack: dict[str, Any]) -> tuple[Any, list, Any]:
        """(training data + the attack's fake profiles, raw target ids, the attack), built once
        per seed. The profiles are kept in the output's ``profiles/`` folder
        (:meth:`profiles_path`); a later run reads them back instead of optimising again."""
        from advrec.attacks.injection import ProfileFile, make_injection, save_profiles
        from advrec.attacks.shilling import select_targets

        key = canonical_hash({"seed": seed, "attack": attack})
        if key not in self._poisoned:
            train = self.parts(seed).train
            targets = attack.get("targets")
            if targets is None:
                targets = select_targets(train, attack["n_targets"], attack["target_strategy"],
                                         seed=seed).tolist()
            implicit = attack.get("implicit")
            made = make_injection(
                attack["attack"], size=attack["size"], filler=attack["filler"],
                intent=attack["intent"],
                implicit=train.ratings is None if implicit is None else implicit,
                **attack.get("params", {}))
            path = self.profiles_path(seed, attack)
            if path.is_file():
                fake = ProfileFile(path=str(path)).generate(train, targets)
            else:
                fake = made.generate(train, targets,
                                     seed=seed + attack.get("profile_seed_offset", 0))
                path.parent.mkdir(parents=True, exist_ok=True)
                save_profiles(fake, path)
            self._poisoned[key] = (train.concat(fake), list(targets), made)
        return self._poisoned[key]

    def profiles_path(self, seed: int, attack: dict[str, Any]) -> Path:
        """Where the fake profiles of ``attack`` at ``seed`` are kept (TAB-separated)."""
        key = canonical_hash({"seed": seed, "attack": attack})
        return self.output / "profiles" / f"{attack['attack']}-{key[:16]}.tsv"

    def defended(self, seed: int, attack: dict[str, Any], defense: dict[str, Any] | None
                 ) -> tuple[Any, dict | None]:
        """(the poisoned training data less the profiles ``defense`` flags, its detection
        metrics with curves and feature histograms); the data as is without a defence."""
        from advrec.defenses import filter_profiles
        from advrec.evaluation.detection import defend

        data, targets, _ = self.poisoned(seed, attack)
        if defense is None:
            return data, None
        key = canonical_hash({"seed": seed, "attack": attack, "defense": defense})
        if key not in self._defended:
            train = self.parts(seed).train
            options = {k: v for k, v in defense.items() if k != "detector"}
            t0 = time.perf_counter()
            flags, info = defend(train, data, defense["detector"], attack["attack"], targets,
                                 intent=attack["intent"],
                                 target_strategy=attack.get("target_strategy", "quantile"),
                                 curves=True, histograms=True, seed=seed,
                                 cache=self._training_profiles.setdefault(seed, {}), **options)
            info["seconds"] = time.perf_counter() - t0
            info["removed_real"] = int(flags[:train.n_users].sum())
            self._defended[key] = (filter_profiles(data, flags, drop_from=train.n_users), info)
        return self._defended[key]

    def robustly_trained(self, job: ModelJob, plan_: Plan, attack: dict[str, Any],
                         defense: dict[str, Any]) -> tuple[Any, dict | None, float, dict | None]:
        """``job``'s model trained on the poisoned data by a robust-training defence: trimmed
        learning (detection metrics of the users it left out) or APT (a summary of its ERM
        users); (model, detection metrics or None, seconds of all its fits, APT summary or None)."""
        import numpy as np

        from advrec.defenses.trim import trimmed_fit
        from advrec.evaluation.detection import detection_metrics

        data, _, _ = self.poisoned(job.seed, attack)
        n_real = self.parts(job.seed).train.n_users
        t0 = time.perf_counter()
        if defense["detector"] == "apt":
            from advrec.defenses.apt import apt_fit

            res = apt_fit(lambda d: self.train(job, plan_, d, poisoned=True)[0], data,
                          seed=job.seed, **defense.get("params", {}))
            seconds = time.perf_counter() - t0
            return res.model, None, seconds, {**res.summary(), "seconds": seconds}
        res = trimmed_fit(lambda d: self.train(job, plan_, d, poisoned=True)[0], data,
                          fraction=defense["fraction"], rounds=defense["rounds"])
        seconds = time.perf_counter() - t0
        fake = np.arange(data.n_users) >= n_real
        active = np.bincount(data.users, minlength=data.n_users) > 0
        info = detection_metrics(fake[active], res.losses[active], res.flags[active],
                                 curves=True)  # the loss ranks users as a detector's score
        info.update(removed_real=int(res.flags[:n_real].sum()), rounds=res.rounds,
                    converged=res.converged, seconds=seconds)
        return res.model, info, seconds, None

    def _pore(self, seed: int, defense: dict[str, Any]):
        from advrec.defenses.pore import PORE

        params = {**defense.get("params", {}), "seed": seed}
        params.setdefault("device", self.config.device)
        return PORE(**params)

    def certified(self, job: ModelJob, attack: dict[str, Any], defense: dict[str, Any]
                  ) -> tuple[Any, float]:
        """The PORE ensemble (its own base recommender, SAR unless ``params.base`` names
        another) fitted on the poisoned data in place of ``job``'s model; (model, seconds)."""
        data, _, _ = self.poisoned(job.seed, attack)
        t0 = time.perf_counter()
        model = self._pore(job.seed, defense).fit(data)
        return model, time.perf_counter() - t0

    def clean_certificate(self, seed: int, defense: dict[str, Any]) -> dict[str, Any]:
        """PORE fitted on the clean training data and certified on the test users for 0 to
        ``max_fake`` fake users (the paper's setting): e, certified precision, recall and hit
        ratio at N per e, and the ensemble's clean metrics. Once per seed and options."""
        key = canonical_hash({"seed": seed, "pore": defense})
        if key not in self._certificates:
            parts = self.parts(seed)
            t0 = time.perf_counter()
            model = self._pore(seed, defense).fit(parts.train)
            cert = model.certify(parts.test, max_fake=defense["max_fake"])
            self._certificates[key] = {**cert.to_dict(), "certified_hr": cert.hit_ratio.tolist(),
                                "T": model.T, "s": model.s, "base": model.base,
                                "seconds": time.perf_counter() - t0}
        return self._certificates[key]

    def fgsm_gradient(self, job: ModelJob, model, options: dict[str, Any]):
        """FGSM's ∇J for ``job``'s model and these attack options, computed once for all the ε
        of a sweep (kept for the current model only, so memory stays one gradient per option
        set)."""
        from advrec.attacks.perturbation import fgsm_gradient

        wanted = ("blocks", "targets", "mode")
        given = {k: options[k] for k in wanted if k in options}
        key = canonical_hash({k: (v.tolist() if hasattr(v, "tolist") else v)
                              for k, v in given.items()})
        cache = self._fgsm
        if cache["job"] != job.key:
            cache["job"], cache["grads"] = job.key, {}
        if key not in cache["grads"]:
            cache["grads"][key] = fgsm_gradient(model, self.parts(job.seed).train, seed=job.seed,
                                                **given)
        return cache["grads"][key]

    def clean_evaluation(self, job: ModelJob, model):
        """The evaluation of ``job``'s clean model (computed once; shilling cells compare to it)."""
        if job.key not in self._clean:
            self._clean[job.key] = self.evaluator(job.seed).evaluate(model)
        return self._clean[job.key]

    def clean_targets(self, job: ModelJob, model, targets, rank_by: str):
        """The targets' measures under ``job``'s clean model (computed once per target set)."""
        from advrec.evaluation.shilling import measure_targets

        key = canonical_hash({"job": job.key, "targets": [int(t) for t in targets],
                              "rank_by": rank_by})
        if key not in self._clean_targets:
            self._clean_targets[key] = measure_targets(model, self.parts(job.seed).train,
                                                       targets, rank_by)
        return self._clean_targets[key]

    def evaluate(self, cell: Cell, model, job: ModelJob, plan: Plan) -> CellResult:
        """The result of one cell, computed by its scenario."""
        return SCENARIOS[cell.scenario].run(self, cell, model, job, plan)

    def result(self, cell: Cell, job: ModelJob, *, attack: str, eps: float | None,
               attack_config: dict | None, evaluation, history: list, timings: dict,
               extra_metrics: dict | None = None, defense: str | None = None,
               detection: dict | None = None, measures: dict | None = None,
               per_user: dict[str, dict] | None = None) -> CellResult:
        """A cell's typed result from its evaluation (the parts every scenario shares);
        ``per_user``: a scenario's own per-user blocks (each with its ``users``), stored beside
        the evaluation's so that the report can test them paired."""
        from advrec.models.base import library_versions

        return CellResult(
            key=cell.key, experiment=self.config.name, model_key=job.key,
            model_label=job.label, model_name=job.name, seed=job.seed, scenario=cell.scenario,
            attack=attack, eps=eps, attack_config=attack_config, config=cell.config,
            metrics={**evaluation.summary, **(extra_metrics or {})},
            per_user={"users": evaluation.users, **evaluation.per_user, **(per_user or {})},
            history=history,
            timings=timings, versions=library_versions(), defense=defense, detection=detection,
            measures=measures)


def _validator(parts, metric: str):
    """The early-stopping validator of a job: ``metric`` on the seed's validation split."""
    from advrec.evaluation.selection import metric_validator

    return metric_validator(parts.train, parts.valid, metric)


def check_detectors_have_ratings(ctx: Context) -> None:
    """Detectors read rating profiles (RDMA, WDMA, …) and an explicit shilling attack rates its
    items, an implicit one does not: refuse what does not fit the data before any cell runs."""
    if not ctx.config.shilling and not ctx.config.defenses:
        return  # nothing to check against the data: it is not loaded
    rated = ctx.parts(ctx.config.seeds[0]).train.ratings is not None
    for i, entry in enumerate(ctx.config.shilling):
        if entry.implicit is not None and entry.implicit != (not rated):
            fix = ("drop the ratings (data.binarize) or set implicit: false" if rated
                   else "set implicit: true (or leave it unset)")
            raise ConfigError(f"shilling.{i}.implicit: {entry.implicit} does not fit "
                              f"{ctx.config.data.dataset!r}, whose training data "
                              f"{'has' if rated else 'has no'} ratings; {fix}")
    without = ("perfect", "trim", *CERTIFIED)  # defences that need no ratings
    detectors = [d.detector for d in ctx.config.defenses if d.detector not in without]
    if detectors and not rated:
        raise ConfigError(f"defenses: {', '.join(detectors)} read rating profiles (apt: its "
                          f"ERM users' ratings), but the training data of "
                          f"{ctx.config.data.dataset!r} has no ratings (implicit data or "
                          f"data.binarize); only {', '.join(map(repr, without))} work without "
                          f"ratings")
