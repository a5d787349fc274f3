"""Experiment files: one YAML file declares data, models (with grids), attacks (with grids),
evaluation and seeds. Validated by a pydantic schema whose errors name the key path."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advrec.errors import ConfigError

SEQUENCE_PARAMS = {"adv_blocks"}  # model parameters whose value itself is a list
NOT_MODEL_PARAMS = {"device", "seed", "patience", "validate_every"}  # set by the experiment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """The data recipe (see `advrec.data.DataSpec`)."""

    dataset: str = "movielens-500"
    split: Literal["auto", "predefined", "leave-one-out", "holdout", "temporal"] = "auto"
    test_ratio: float = Field(0.2, gt=0, lt=1)
    valid: Literal["none", "leave-one-out", "holdout"] = "none"
    valid_ratio: float = Field(0.1, gt=0, lt=1)
    binarize: float | None = None
    min_user_count: int = Field(0, ge=0)
    min_item_count: int = Field(0, ge=0)
    fold: str | None = None


class EarlyStopping(_Strict):
    """Early stopping on a validation split carved from training (needs ``data.valid``)."""

    metric: str = "ndcg@100"
    patience: int = Field(5, ge=1)
    every: int = Field(1, ge=1)


class ModelConfig(_Strict):
    """A model entry; list-valued ``params`` expand into a grid of variants."""

    name: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    init: str | None = None
    early_stopping: EarlyStopping | None = None

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from advrec.models import MODELS

        if v.lower() not in MODELS:
            raise ValueError(f"unknown model {v!r}; allowed: {', '.join(sorted(MODELS))}")
        return v.lower()

    @model_validator(mode="after")
    def _known_params(self) -> ModelConfig:
        from advrec.models import MODELS

        allowed = set(MODELS[self.name]._param_names()) - NOT_MODEL_PARAMS
        unknown = sorted(set(self.params) - allowed)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for model {self.name!r}; "
                             f"allowed: {', '.join(sorted(allowed))}")
        return self

    @property
    def key_label(self) -> str:
        return self.label or self.name


class AttackConfig(_Strict):
    """A parameter attack; list-valued ``eps``/``blocks``/``norm``/``steps`` expand."""

    method: Literal["fgsm", "random", "pgd"]
    eps: float | list[float] = 0.5
    blocks: str | list[str] = "both"
    norm: Literal["l2", "linf"] | list[Literal["l2", "linf"]] = "l2"
    steps: int | list[int] = 10
    step_size: float | None = None
    targets: list[int | str] | None = None
    mode: Literal["push", "nuke"] = "push"

    @field_validator("eps")
    @classmethod
    def _positive(cls, v):
        for e in v if isinstance(v, list) else [v]:
            if not e > 0:
                raise ValueError(f"eps must be positive, got {e}")
        return v

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v):
        for b in v if isinstance(v, list) else [v]:
            if b not in ("user", "item", "both"):
                raise ValueError(f"unknown block {b!r}; allowed: user, item, both")
        return v


def _require_known(value: str | list[str], allowed: Iterable[str], what: str) -> None:
    """ValueError naming what in ``value`` (a name or a list of names) is not in ``allowed``."""
    allowed = list(allowed)
    bad = [x for x in (value if isinstance(value, list) else [value]) if x not in allowed]
    if bad:
        named = f"{what}(s) {bad}" if isinstance(value, list) else f"{what} {value!r}"
        raise ValueError(f"unknown {named}; allowed: {', '.join(allowed)}")


class ShillingConfig(_Strict):
    """A shilling (profile-injection) attack: fake profiles are appended to the training data
    and every victim model is trained again on it; list-valued ``size``/``filler`` expand."""

    attack: str
    size: float | list[float] = 0.05
    filler: float | list[float] = 0.05
    n_targets: int = Field(3, ge=1)
    target_strategy: Literal["random", "popular", "unpopular", "quantile"] = "quantile"
    targets: list[int | str] | None = None
    intent: Literal["push", "nuke"] = "push"

    @field_validator("attack")
    @classmethod
    def _known_attack(cls, v: str) -> str:
        from advrec.attacks.shilling import ATTACKS

        _require_known(v.lower(), ATTACKS, "shilling attack")
        return v.lower()

    @field_validator("size", "filler")
    @classmethod
    def _fractions(cls, v):
        for x in v if isinstance(v, list) else [v]:
            if not 0 < x < 1:
                raise ValueError(f"must lie in (0, 1) (a share of users / items), got {x}")
        return v


class DefenseConfig(_Strict):
    """A detector that removes the profiles it flags before the victim is trained again (see
    `advrec.evaluation.detection.defend`); ``perfect`` removes exactly the fake ones (the upper
    bound)."""

    detector: str
    train_attacks: list[str] | None = None
    train_sizes: list[float] = Field(default_factory=lambda: [0.03, 0.1], min_length=1)
    train_fillers: list[float] = Field(default_factory=lambda: [0.03, 0.1], min_length=1)
    real_split: float = Field(0.5, gt=0, lt=1)
    k_features: int = Field(10, ge=1)
    features: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"detector": v} if isinstance(v, str) else v

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        from advrec.defenses.detectors import DEFENSES

        _require_known(v.lower(), DEFENSES, "detector")
        return v.lower()

    @field_validator("train_attacks")
    @classmethod
    def _known_train_attacks(cls, v):
        from advrec.attacks.shilling import ATTACKS

        _require_known(v or [], ATTACKS, "shilling attack")
        return v

    @field_validator("features")
    @classmethod
    def _known_features(cls, v):
        from advrec.defenses.features import FEATURES

        _require_known(v or [], FEATURES, "feature")
        return v


class EvaluationConfig(_Strict):
    ks: list[int] = Field(default_factory=lambda: [10, 100], min_length=1)
    metrics: list[Literal["hr", "ndcg", "auc", "precision", "recall", "mrr", "map"]] = Field(
        default_factory=lambda: ["hr", "ndcg", "auc"], min_length=1)
    protocol: Literal["full", "sampled"] = "full"
    n_negatives: int = Field(99, ge=1)
    significance: Literal["ttest", "wilcoxon"] = "ttest"


class ExperimentConfig(_Strict):
    """The whole experiment file."""

    name: str
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    models: list[ModelConfig] = Field(min_length=1)
    attacks: list[AttackConfig] = Field(default_factory=list)
    shilling: list[ShillingConfig] = Field(default_factory=list)
    defenses: list[DefenseConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    device: str | None = "cpu"
    output: str | None = None
    executor: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _labels_and_inits(self) -> ExperimentConfig:
        labels = [m.key_label for m in self.models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"models: labels must be unique, repeated: {dupes} "
                             f"(give each entry a label)")
        for i, m in enumerate(self.models):
            if m.init is not None and m.init not in labels[:i]:
                raise ValueError(f"models[{i}].init: {m.init!r} must be the label of an earlier "
                                 f"model entry; earlier labels: {labels[:i] or 'none'}")
            if m.early_stopping is not None and self.data.valid == "none":
                raise ValueError(f"models[{i}].early_stopping needs data.valid "
                                 f"(leave-one-out or holdout)")
        if self.defenses and not self.shilling:
            raise ValueError("defenses filter injected profiles: they need shilling attacks")
        labels_d = [d.detector for d in self.defenses]
        if len(set(labels_d)) < len(labels_d):
            raise ValueError(f"defenses: each detector once, got {labels_d}")
        held = {s.attack for s in self.shilling}
        for i, d in enumerate(self.defenses):
            left = [h for h in held if d.train_attacks and not set(d.train_attacks) - {h}]
            if left:
                raise ValueError(f"defenses[{i}].train_attacks: nothing is left to train on when "
                                 f"{left[0]!r} is the attack tested (detectors never train on "
                                 f"it); add other attack types")
        return self


# ---------------------------------------------------------------------------- loading
def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file (ConfigError naming the key path on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    config = parse_config(raw, source=str(path))
    if config.output is None:
        config = config.model_copy(update={"output": str(path.parent / "runs" / config.name)})
    elif not Path(config.output).is_absolute():
        config = config.model_copy(update={"output": str(path.parent / config.output)})
    return config


def parse_config(raw: dict, source: str = "experiment") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if err["type"].startswith("literal_error"):
            msg = f"{msg}"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- grid
def expand(values: dict[str, Any], sequence_keys: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The Cartesian product of every list-valued entry (lists under ``sequence_keys`` are values
    unless they are lists of lists). Keys keep their order; an empty list is an error."""
    sequence_keys = set(sequence_keys)
    axes = []
    for k, v in values.items():
        is_grid = isinstance(v, list) and (k not in sequence_keys or
                                           (v and all(isinstance(x, list) for x in v)))
        if is_grid and not v:
            raise ConfigError(f"{k}: an empty list gives a grid with zero cells")
        axes.append([(k, x) for x in v] if is_grid else [(k, v)])
    return [dict(combo) for combo in itertools.product(*axes)]


def canonical_hash(obj: Any) -> str:
    """A stable short hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
