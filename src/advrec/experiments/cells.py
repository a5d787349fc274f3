"""The plain data of an experiment: model jobs, conditions, cells, the plan, and the typed result
of one cell (what the results store persists)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
class Condition:
    """What a cell does with a trained model: its scenario's name and variant.

    ``options`` is the variant (a parameter attack's method, ε, blocks …; a shilling attack's
    name, size, filler …; ``None`` for a clean evaluation); ``defense`` a detector's options.
    """

    scenario: str
    options: dict[str, Any] | None = None
    defense: dict[str, Any] | None = None


@dataclass(frozen=True)
class Cell:
    """One result row to compute: a model (``model_key``) under one condition."""

    key: str
    model_key: str
    condition: Condition
    config: dict[str, Any] = field(compare=False)

    @property
    def scenario(self) -> str:
        return self.condition.scenario

    @property
    def options(self) -> dict[str, Any] | None:
        return self.condition.options

    @property
    def defense(self) -> dict[str, Any] | None:
        return self.condition.defense


@dataclass
class Plan:
    jobs: list[ModelJob]
    cells: list[Cell]

    def job(self, key: str) -> ModelJob:
        return next(j for j in self.jobs if j.key == key)


@dataclass
class CellResult:
    """The result of one cell, as the results store keeps it (one row)."""

    key: str
    experiment: str
    model_key: str
    model_label: str
    model_name: str
    seed: int
    scenario: str  # "clean", "perturbation" or "shilling"
    attack: str  # the attack's name ("fgsm", "average", …); "none" for a clean cell
    eps: float | None
    attack_config: dict[str, Any] | None
    config: dict[str, Any]
    metrics: dict[str, float]
    per_user: dict[str, Any]
    history: list[dict[str, Any]]
    timings: dict[str, Any]
    versions: dict[str, str]
    defense: str | None = None
    detection: dict[str, Any] | None = None
    measures: dict[str, Any] | None = None  # a scenario's own measures (shilling: its impact)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)
