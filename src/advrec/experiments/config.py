"""Experiment files: one YAML file declares data, models (with grids), attacks (with grids),
evaluation and seeds. Validated by a pydantic schema whose errors name the key path."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from advrec.errors import AdvrecError, ConfigError
from advrec.validation import plain
from advrec.vocabulary import (
    ALL_METRICS,
    CERTIFIED,
    CONTENT_ATTACKS,
    DEFENSES,
    EXECUTORS,
    IMAGE_ATTACK_METHODS,
    IMAGE_DEFENSES,
    INJECTION_ATTACKS,
    INTENTS,
    NORMS,
    PERTURBATIONS,
    POISONING_ATTACKS,
    PROTOCOLS,
    ROBUST_TRAINING,
    SHILLING_ATTACKS,
    SIGNIFICANCE_TESTS,
    SPLITS,
    TARGET_MODES,
    TARGET_STRATEGIES,
    UNSEEN,
    VALIDATION_SPLITS,
)

SEQUENCE_PARAMS = {"adv_blocks"}  # model parameters whose value itself is a list
# set by the experiment (threads: cells run one thread each, bit-reproducible)
NOT_MODEL_PARAMS = {"device", "seed", "patience", "validate_every", "threads"}


MAX_FILE_BYTES = 1 << 20  # an experiment file is a few kB; 1 MiB is generous
MAX_YAML_NODES = 100_000  # values after alias expansion (a "billion laughs" file is refused)
MAX_SEED = 2**63 - 1


class _Strict(BaseModel):
    """Unknown keys are errors; no coercion (``"5"``, ``true`` and ``2.0`` are not integers);
    no NaN or ±inf."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ContentConfig(_Strict):
    """The items' content features (``data.content``): ``images`` (a folder of one image per
    item, named by ``pattern`` from the raw item id, through the pretrained ``encoder``), a
    feature ``file`` (.npy or .safetensors, one row per item) or ``tags`` (a TAB-separated file of
    ``item<TAB>tag|tag|…`` lines, multi-hot). ``ml-1m-posters`` brings its posters by default."""

    source: Literal["images", "file", "tags"]
    path: str
    pattern: str = "{id}.jpg"
    encoder: Literal["efficientnet-lite0"] = "efficientnet-lite0"
    batch_size: int = Field(64, ge=1, le=4096)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        if v.count("{id}") != 1 or "/" in v or "\\" in v or ".." in v:
            raise ValueError(f"must name a file in the folder with one '{{id}}' for the raw item "
                             f"id, e.g. '{{id}}.jpg', got {v!r}")
        return v


class DataConfig(_Strict):
    """The data recipe (see `advrec.data.DataSpec`): a registered data set, or your own file
    (``path`` + ``format``, optionally ``test_path`` for a predefined split); ``content``: the
    items' content features, for the models that use them (VBPR, AMR)."""

    dataset: str = "movielens-500"
    path: str | None = None
    format: str | None = None
    test_path: str | None = None
    options: dict[str, Any] | None = None
    unseen: Literal[UNSEEN] = "error"
    split: Literal[SPLITS] = "auto"
    test_ratio: float = Field(0.2, gt=0, lt=1)
    valid: Literal[VALIDATION_SPLITS] = "none"
    valid_ratio: float = Field(0.1, gt=0, lt=1)
    binarize: float | None = None
    min_user_count: int = Field(0, ge=0)
    min_item_count: int = Field(0, ge=0)
    fold: str | None = None
    content: ContentConfig | None = None

    def identity(self) -> dict[str, Any]:
        """What model and cell keys hash of the recipe: the own-file keys only when a file is
        given, so the keys of registered data sets stay what they were before those keys."""
        raw = self.model_dump()
        if self.path is None:
            for k in ("path", "format", "test_path", "options", "unseen"):
                raw.pop(k)
        if self.content is None:
            raw.pop("content")
        return raw

    def spec_fields(self) -> dict[str, Any]:
        """The fields of the interactions' recipe (`advrec.data.DataSpec`): all but content."""
        raw = self.model_dump()
        raw.pop("content")
        return raw

    @model_validator(mode="before")
    @classmethod
    def _label_of_own_file(cls, v):
        """A file of your own is labelled by its file name unless ``dataset`` names it."""
        if isinstance(v, dict) and v.get("path") and "dataset" not in v:
            return {**v, "dataset": Path(str(v["path"])).name}
        return v

    @field_validator("format")
    @classmethod
    def _known_format(cls, v):
        from advrec.data.io import FORMATS

        if v is not None:
            _require_known(v, FORMATS, "format")
        return v

    @model_validator(mode="after")
    def _own_file(self) -> DataConfig:
        if self.path is None:
            if self.format or self.test_path or self.options:
                raise ValueError("format, test_path and options describe a file of your own: "
                                 "give data.path")
        elif self.format is None:
            raise ValueError("data.path needs data.format (one of the readers: advrec formats)")
        return self


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

    method: Literal[PERTURBATIONS]
    eps: float | list[float] = 0.5
    blocks: str | list[str] = "both"
    norm: Literal[NORMS] | list[Literal[NORMS]] = "l2"
    steps: int | list[int] = 10
    step_size: float | None = None
    targets: list[int | str] | None = None
    mode: Literal[TARGET_MODES] = "push"

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
            if not isinstance(b, str) or not b:
                raise ValueError(f"expected a block name, got {b!r}")
        return v  # names are checked against the models' blocks by check_config


class ContentAttackConfig(_Strict):
    """An attack on the items' images (TAaMR): the images of the ``source`` class's items are
    perturbed (``method`` pgd or fgsm, L∞ ``eps`` in 0–255 units, ``steps`` PGD steps) so that
    the CNN sees the ``target`` class; their features are re-extracted, after the image defence
    ``transform`` (none, jpeg, bit_depth; ``transform_params`` per name, e.g. ``{jpeg: {quality:
    75}}``). Classes are ImageNet class
    names or indices, or ``auto`` (source: the least popular of the frequent visual classes,
    target: the most popular). ``max_items``: attack at most that many of the source's items
    (the first by item id). List-valued ``method``/``eps``/``transform`` expand."""

    attack: Literal[CONTENT_ATTACKS] = "taamr"
    method: Literal[IMAGE_ATTACK_METHODS] | list[Literal[IMAGE_ATTACK_METHODS]] = "pgd"
    eps: float | list[float] = Field(default_factory=lambda: [4.0, 8.0, 16.0])
    steps: int = Field(10, ge=1, le=1000)
    source: str | int = "auto"
    target: str | int = "auto"
    max_items: int | None = Field(None, ge=1)
    min_class_items: int = Field(10, ge=1)
    transform: Literal[IMAGE_DEFENSES] | list[Literal[IMAGE_DEFENSES]] = "none"
    transform_params: dict[Literal[IMAGE_DEFENSES], dict[str, Any]] = Field(default_factory=dict)
    examples: int = Field(3, ge=0, le=12)

    @field_validator("eps")
    @classmethod
    def _pixel_eps(cls, v):
        for e in v if isinstance(v, list) else [v]:
            if not 0 < e <= 255:
                raise ValueError(f"eps is in 0-255 pixel units (e.g. 4, 8, 16); got {e}")
        return v


def _require_known(value: str | list[str], allowed: Iterable[str], what: str) -> None:
    """ValueError naming what in ``value`` (a name or a list of names) is not in ``allowed``."""
    allowed = list(allowed)
    bad = [x for x in (value if isinstance(value, list) else [value]) if x not in allowed]
    if bad:
        named = f"{what}(s) {bad}" if isinstance(value, list) else f"{what} {value!r}"
        raise ValueError(f"unknown {named}; allowed: {', '.join(allowed)}")


class ShillingConfig(_Strict):
    """An injection attack: fake profiles (hand-crafted, optimised against a surrogate, or read
    from a file) are appended to the training data and every victim model is trained again on
    it; list-valued ``size``/``filler`` expand. ``params``: the attack's own hyper-parameters
    (an optimised attack's ``surrogate``, ``known_fraction``, …; the ``file`` attack's
    ``path`` and ``format``)."""

    attack: str
    size: float | list[float] = 0.05
    filler: float | int | list[float | int] | None = 0.05  # None: an average real profile
    n_targets: int = Field(3, ge=1)
    target_strategy: Literal[TARGET_STRATEGIES] = "quantile"
    targets: list[int | str] | None = None
    intent: Literal[INTENTS] | None = None  # None: the attack's own (love_hate nukes)
    implicit: bool | None = None  # None: the implicit variant iff the data has no ratings
    rank_by: Literal["score", "predict"] = "score"  # how the targets' ranks are measured
    profile_seed_offset: int = Field(0, ge=0)  # fake profiles drawn with the cell's seed + this
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _poisoning_filler(cls, v):
        """An optimised attack's profiles default to a real user's average length."""
        if isinstance(v, dict) and "filler" not in v and \
                str(v.get("attack", "")).lower() in POISONING_ATTACKS:
            return {**v, "filler": None}
        return v

    @field_validator("attack")
    @classmethod
    def _known_attack(cls, v: str) -> str:
        _require_known(v.lower(), INJECTION_ATTACKS, "shilling attack")
        return v.lower()

    @field_validator("size")
    @classmethod
    def _fractions(cls, v):
        for x in v if isinstance(v, list) else [v]:
            if not 0 < x < 1:
                raise ValueError(f"must lie in (0, 1) (a share of users), got {x}")
        return v

    @field_validator("filler")
    @classmethod
    def _filler(cls, v):
        for x in v if isinstance(v, list) else [v]:
            if x is None:
                continue
            if not (0 < x < 1 if isinstance(x, float) else x >= 1):
                raise ValueError(f"must be a share of the items in (0, 1) or a count >= 1, "
                                 f"got {x}")
        return v

    @model_validator(mode="after")
    def _attack_params(self):
        """The attack's own parameters are known to it and valid (checked by building it)."""
        from advrec.attacks.injection import make_injection

        if self.filler is None and self.attack not in POISONING_ATTACKS:
            raise ValueError(f"filler: the {self.attack} attack needs a filler size (only the "
                             f"optimised attacks take null: a real user's average profile)")
        reserved = {"size", "filler", "intent", "implicit"} & set(self.params)
        if reserved:
            raise ValueError(f"params: {sorted(reserved)} are options of the entry itself, "
                             f"not of params")
        if self.params or self.attack in POISONING_ATTACKS:
            size = self.size[0] if isinstance(self.size, list) else self.size
            filler = self.filler[0] if isinstance(self.filler, list) else self.filler
            try:
                make_injection(self.attack, size=size, filler=filler, intent=self.intent,
                               **self.params)
            except AdvrecError as exc:
                raise ValueError(f"params: {exc}") from None
        return self


class DefenseConfig(_Strict):
    """A detector that removes the profiles it flags before the victim is trained again (see
    `advrec.evaluation.detection.defend`); ``perfect`` removes exactly the fake ones (the upper
    bound); ``trim`` trains the victim by trimmed learning (`advrec.defenses.trim`: ``fraction``
    of users dropped by loss, at most ``rounds`` refits); ``apt`` trains it with the defender's
    ERM users (`advrec.defenses.apt.apt_fit`, its hyper-parameters in ``params``); ``pore``
    replaces the victim by the PORE ensemble (`advrec.defenses.pore.PORE`, its hyper-parameters
    in ``params``; the cell's seed seeds it) and records its certificate for up to
    ``max_fake`` fake users."""

    detector: str
    train_attacks: list[str] | None = None
    train_sizes: list[float] = Field(default_factory=lambda: [0.03, 0.1], min_length=1)
    train_fillers: list[float] = Field(default_factory=lambda: [0.03, 0.1], min_length=1)
    real_split: float = Field(0.5, gt=0, lt=1)
    k_features: int = Field(10, ge=1)
    features: list[str] | None = None
    fraction: float = Field(0.05, gt=0, lt=1)  # trim: the share of users dropped
    rounds: int = Field(3, ge=1)  # trim: refits at most
    params: dict[str, Any] = Field(default_factory=dict)  # pore / apt: their hyper-parameters
    max_fake: int = Field(50, ge=0)  # pore: the certificate's largest number of fake users

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"detector": v} if isinstance(v, str) else v

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        _require_known(v.lower(), (*DEFENSES, *ROBUST_TRAINING, *CERTIFIED), "detector")
        return v.lower()

    @model_validator(mode="after")
    def _certified_params(self) -> DefenseConfig:
        if self.params and self.detector not in (*CERTIFIED, "apt"):
            raise ValueError(f"params: only {', '.join(map(repr, (*CERTIFIED, 'apt')))} take "
                             f"params, not {self.detector!r}")
        if self.detector == "apt":
            from advrec.defenses.apt import check_params

            if "seed" in self.params:
                raise ValueError("params.seed: the cell's seed seeds APT; set seeds at the top "
                                 "of the file")
            try:
                check_params(self.params)
            except AdvrecError as exc:
                raise ValueError(f"params.{exc}") from None
        if self.detector in CERTIFIED:
            from advrec.defenses.pore import PORE

            if "seed" in self.params:
                raise ValueError("params.seed: the cell's seed seeds the ensemble; set seeds "
                                 "at the top of the file")
            unknown = sorted(set(self.params) - set(PORE._param_names()))
            if unknown:
                raise ValueError(f"params: unknown PORE parameter(s) {unknown}; allowed: "
                                 f"{', '.join(n for n in PORE._param_names() if n != 'seed')}")
            try:
                PORE(**self.params).validate_params()
            except AdvrecError as exc:
                raise ValueError(f"params: {exc}") from None
        return self

    @field_validator("train_attacks")
    @classmethod
    def _known_train_attacks(cls, v):
        # hand-crafted recipes, and generated or optimised profiles (the detector learns them)
        _require_known(v or [], (*SHILLING_ATTACKS, *POISONING_ATTACKS), "injection attack")
        return v

    @field_validator("features")
    @classmethod
    def _known_features(cls, v):
        from advrec.defenses.features import FEATURES

        _require_known(v or [], FEATURES, "feature")
        return v


class EvaluationConfig(_Strict):
    ks: list[int] = Field(default_factory=lambda: [10, 100], min_length=1)
    metrics: list[Literal[ALL_METRICS]] = Field(
        default_factory=lambda: ["hr", "ndcg", "auc"], min_length=1)
    protocol: Literal[PROTOCOLS] = "full"
    n_negatives: int = Field(99, ge=1)
    significance: Literal[SIGNIFICANCE_TESTS] = "ttest"


class ExperimentConfig(_Strict):
    """The whole experiment file."""

    name: str
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    models: list[ModelConfig] = Field(min_length=1)
    attacks: list[AttackConfig] = Field(default_factory=list)
    shilling: list[ShillingConfig] = Field(default_factory=list)
    defenses: list[DefenseConfig] = Field(default_factory=list)
    content_attacks: list[ContentAttackConfig] = Field(default_factory=list)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    seeds: list[StrictInt] = Field(default_factory=lambda: [0], min_length=1)
    device: str | None = "cpu"
    output: str | None = None
    executor: Literal[EXECUTORS] = "local"
    workers: int = Field(1, ge=1)

    @field_validator("name")
    @classmethod
    def _label_not_path(cls, v: str) -> str:
        """The name is a label (it names the default output folder), never a path."""
        if not v.strip():
            raise ValueError("must not be empty")
        bad = [c for c in v if c in "/\\" or ord(c) < 32 or ord(c) == 127]
        if bad or v in (".", "..") or len(v) > 200:
            raise ValueError(f"must be a label of at most 200 characters without '/', '\\' "
                             f"or control characters (it names a folder), got {v!r}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 0 <= s <= MAX_SEED]
        if bad:
            raise ValueError(f"seeds must lie in 0..2**63-1, got {bad[0]}")
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"each seed once, repeated: {dupes}")
        return v

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
    """Read and validate an experiment file (ConfigError naming the key path on any problem).

    Bounded work whatever the file holds: at most :data:`MAX_FILE_BYTES`, and at most
    :data:`MAX_YAML_NODES` values once YAML aliases are expanded.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found" if not path.exists()
                          else f"{path}: not a file (expected an experiment YAML file)")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes; an experiment file may have at most "
                              f"{MAX_FILE_BYTES:,}")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as "
                          f"UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    raw = safe_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping (key: value lines) at the top level")
    config = parse_config(raw, source=str(path))
    data = config.data
    own = {k: str(path.parent / v) for k in ("path", "test_path")
           if (v := getattr(data, k)) is not None and not Path(v).is_absolute()}
    if own:  # your own files, relative to the experiment file's folder (as output is)
        config = config.model_copy(update={"data": data.model_copy(update=own)})
    if config.output is None:
        config = config.model_copy(update={"output": str(path.parent / "runs" / config.name)})
    elif not Path(config.output).is_absolute():
        config = config.model_copy(update={"output": str(path.parent / config.output)})
    return config


def safe_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with bounded work: the node graph is composed first and its size after
    alias expansion counted (shared nodes once each, so counting is linear in the file), and a
    mapping that repeats a key is refused instead of keeping the last value silently."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f":{mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node, source: str) -> None:
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to itself")
        if depth > 100:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: nested more than 100 levels")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen and k.value != "<<":
                        raise ConfigError(f"{source}:{k.start_mark.line + 1}: key {k.value!r} "
                                          f"repeats line {seen[k.value]}; give each key once")
                    seen[k.value] = k.start_mark.line + 1
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v, depth + 1)
                if total > MAX_YAML_NODES:
                    break
        on_path.discard(key)
        if total > MAX_YAML_NODES:
            raise ConfigError(f"{source}: expands to more than {MAX_YAML_NODES:,} values (through "
                              f"YAML aliases such as *name?); an experiment file needs far fewer")
        sizes[key] = total
        return total

    size(root, 0)


def parse_config(raw: dict, source: str = "experiment") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def format_errors(exc: ValidationError, source: str) -> str:
    """One line per problem, each with its key path; a single problem is a single line."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] in ("finite_number",):
            msg = f"must be a finite number, got {plain(err.get('input'))}"
        elif err["type"].endswith("_type") or err["type"].startswith(
                ("literal_error", "greater_than", "less_than", "too_short", "too_long")):
            msg = f"{msg}, got {plain(err.get('input'))}"
        problems.append((loc, msg))
    return join_problems(source, problems)


def join_problems(source: str, problems: list[tuple[str, str]]) -> str:
    if len(problems) == 1:
        return f"{source}: {problems[0][0]}: {problems[0][1]}"
    return "\n".join([f"{source}: {len(problems)} problems"]
                     + [f"  {loc}: {msg}" for loc, msg in problems])


# ---------------------------------------------------------------------------- grid
def _is_grid(key: str, value: Any, sequence_keys: set[str]) -> bool:
    return isinstance(value, list) and (key not in sequence_keys or
                                        (bool(value) and all(isinstance(x, list) for x in value)))


def grid_size(values: dict[str, Any], sequence_keys: Iterable[str] = ()) -> int:
    """How many dicts :func:`expand` would make, computed without making them."""
    sequence_keys = set(sequence_keys)
    return math.prod(len(v) for k, v in values.items() if _is_grid(k, v, sequence_keys))


def expand(values: dict[str, Any], sequence_keys: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The Cartesian product of every list-valued entry (lists under ``sequence_keys`` are values
    unless they are lists of lists). Keys keep their order; an empty list is an error."""
    sequence_keys = set(sequence_keys)
    axes = []
    for k, v in values.items():
        is_grid = _is_grid(k, v, sequence_keys)
        if is_grid and not v:
            raise ConfigError(f"{k}: an empty list gives a grid with zero cells")
        axes.append([(k, x) for x in v] if is_grid else [(k, v)])
    return [dict(combo) for combo in itertools.product(*axes)]


# ---------------------------------------------------------------------------- meaning
def check_config(config: ExperimentConfig, source: str = "experiment") -> None:
    """What the schema cannot see: every model variant's parameter values, what each model
    supports (``init:``, ``early_stopping:``), metric names, the data set and its fold, and the
    device. ConfigError with one line per problem, each with its key path; nothing is run.
    Call it after the grid size is known to be bounded (each model variant is checked)."""
    from advrec.errors import ParamError
    from advrec.metric_names import parse_metric
    from advrec.models import capability_problems, get_model
    from advrec.models.base import check_device

    problems: list[tuple[str, str]] = []
    labels = {m.key_label: m.name for m in config.models}
    for i, entry in enumerate(config.models):
        cls = get_model(entry.name)
        for params in expand(entry.params, SEQUENCE_PARAMS) if entry.params else [{}]:
            try:
                cls(**params).validate_params()
            except ParamError as exc:
                problems.append((f"models.{i}.params.{exc.name}", exc.reason))
                break
            except (TypeError, ValueError) as exc:
                problems.append((f"models.{i}.params", str(exc)))
                break
        asked = {"warm_start": labels.get(entry.init) if entry.init else None,
                 "early_stopping": entry.early_stopping is not None}
        where = {"warm_start": "init", "early_stopping": "early_stopping"}
        for capability, reason in capability_problems(cls, **asked).items():
            problems.append((f"models.{i}.{where[capability]}", reason))
        if entry.early_stopping is not None:
            try:
                parse_metric(entry.early_stopping.metric)
            except ConfigError as exc:
                problems.append((f"models.{i}.early_stopping.metric", str(exc)))
    for j, k in enumerate(config.evaluation.ks):
        if k < 1:
            problems.append((f"evaluation.ks.{j}", f"cut-offs must be positive, got {k}"))
    if len(set(config.evaluation.ks)) < len(config.evaluation.ks):
        problems.append(("evaluation.ks", f"each cut-off once, got {config.evaluation.ks}"))
    for j, a in enumerate(config.attacks):
        for s in a.steps if isinstance(a.steps, list) else [a.steps]:
            if s < 1:
                problems.append((f"attacks.{j}.steps", f"must be >= 1, got {s}"))
        if a.step_size is not None and not a.step_size > 0:
            problems.append((f"attacks.{j}.step_size", f"must be > 0, got {plain(a.step_size)}"))
        if a.targets is not None and not a.targets:
            problems.append((f"attacks.{j}.targets", "an empty list; give target item ids"))
        declared = {b for m in config.models for b in get_model(m.name).capabilities
                    .parameter_blocks}
        for b in a.blocks if isinstance(a.blocks, list) else [a.blocks]:
            if b not in ("both", "all") and b not in declared:
                shown = ", ".join(sorted(declared)) or "none"
                problems.append((f"attacks.{j}.blocks", f"unknown block {b!r}: no model of this "
                                 f"file has it (their blocks: {shown}; or 'both' for all)"))
    try:
        check_device(config.device)  # the form, then whether this machine has it
    except ParamError as exc:
        problems.append(("device", exc.reason))
    except ConfigError as exc:
        problems.append(("device", str(exc)))
    _check_data(config.data, problems)
    _check_content(config, problems)
    if problems:
        raise ConfigError(join_problems(source, problems))


def _check_content(config: ExperimentConfig, problems: list[tuple[str, str]]) -> None:
    """Content-aware models and content attacks have the content they need; its files exist;
    the image defences' parameters are theirs."""
    from advrec.models import get_model

    content = config.data.content
    posters = config.data.path is None and config.data.dataset == "ml-1m-posters"
    users = [i for i, m in enumerate(config.models)
             if get_model(m.name).capabilities.content_features]
    if content is None and not posters:
        for i in users:
            problems.append((f"models.{i}", f"{config.models[i].name} needs the items' content "
                                            f"features: give data.content (images, file or "
                                            f"tags) or use the data set ml-1m-posters"))
    if content is not None:
        where = Path(content.path)
        if content.source == "images" and not where.is_dir():
            problems.append(("data.content.path", f"{content.path}: no such folder of images"))
        elif content.source != "images" and not where.is_file():
            problems.append(("data.content.path", f"{content.path}: no such file"))
    if not config.content_attacks:
        return
    if content is not None and content.source != "images":
        problems.append(("data.content.source", f"content_attacks perturb images, but the "
                                                f"content comes from a {content.source}; give "
                                                f"source: images"))
    if not users:
        problems.append(("content_attacks", "no model of this file uses content features: add "
                                            "vbpr or amr"))
    import numpy as np

    from advrec.defenses.images import transform

    for j, a in enumerate(config.content_attacks):
        names = a.transform if isinstance(a.transform, list) else [a.transform]
        for name in (n for n in names if n != "none"):
            try:
                transform(name, np.zeros((1, 8, 8, 3), np.uint8),
                          **a.transform_params.get(name, {}))
            except AdvrecError as exc:
                problems.append((f"content_attacks.{j}.transform_params", str(exc)))
            except TypeError as exc:
                problems.append((f"content_attacks.{j}.transform_params", str(exc)))


def _check_data(data: DataConfig, problems: list[tuple[str, str]]) -> None:
    """The data set exists here, and the split options suit it (as ``prepare`` would find)."""
    from advrec.data import datasets
    from advrec.data.io import FORMAT_OPTIONS

    if data.path is not None:
        for key in ("path", "test_path"):
            where = getattr(data, key)
            if where is not None and not Path(where).is_file():
                problems.append((f"data.{key}", f"{where}: no such file"))
        unknown = sorted(set(data.options or {}) - set(FORMAT_OPTIONS[data.format]))
        if unknown:
            problems.append(("data.options", f"format {data.format!r} takes no option(s) "
                                             f"{unknown}; its options: "
                                             f"{', '.join(FORMAT_OPTIONS[data.format]) or 'none'}"))
        if data.split == "predefined" and data.test_path is None:
            problems.append(("data.split", "predefined needs data.test_path (the test file)"))
        if data.fold is not None:
            problems.append(("data.fold", "a file of your own has no folds"))
        return
    try:
        info = datasets.info(data.dataset)
    except AdvrecError as exc:
        problems.append(("data.dataset", str(exc)))
        return
    if not info.local:
        hint = f"advrec fetch {data.dataset}" if info.downloadable else "put its files there"
        problems.append(("data.dataset", f"{data.dataset!r} is not on this machine (looked in "
                                         f"{datasets.data_dir()}); {hint}"))
    if data.split == "predefined" and not info.presplit:
        problems.append(("data.split", f"{data.dataset!r} has no predefined split; use "
                                       f"leave-one-out, holdout or temporal"))
    uses_folds = info.presplit and data.split in ("auto", "predefined")
    if data.fold is not None and (not uses_folds or data.fold not in info.folds):
        known = ", ".join(info.folds) if uses_folds else "none with this split"
        problems.append(("data.fold", f"unknown fold {data.fold!r} of {data.dataset!r}; "
                                      f"folds: {known}"))
    if uses_folds and (data.min_user_count or data.min_item_count):
        problems.append(("data.min_user_count", "k-core filtering of a predefined split is not "
                                                "supported (it would change the protocol)"))


def canonical_hash(obj: Any) -> str:
    """A stable short hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
