"""One source of truth per vocabulary: every registry, the experiment-file schema, the command
line's choices and help texts, and the docs name exactly what advrec.vocabulary lists."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import advrec.vocabulary as V
from advrec.cli import app

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_registries_match_their_vocabularies():
    from advrec.attacks.shilling import ATTACKS
    from advrec.data.io import FORMATS
    from advrec.defenses.detectors import DEFENSES, make_detector
    from advrec.models import MODELS

    assert tuple(MODELS) == V.MODELS
    assert tuple(ATTACKS) == V.SHILLING_ATTACKS
    assert tuple(FORMATS) == V.FORMATS
    assert DEFENSES == V.DEFENSES
    for name in V.DETECTORS:
        make_detector(name)  # every named detector exists


def test_schema_literals_are_the_vocabularies():
    from advrec.experiments.config import AttackConfig, DataConfig, EvaluationConfig

    def literal(model, field):
        args = typing.get_args(model.model_fields[field].annotation)
        return args if all(isinstance(a, str) for a in args) else typing.get_args(args[0])

    assert literal(DataConfig, "split") == V.SPLITS
    assert literal(DataConfig, "valid") == V.VALIDATION_SPLITS
    assert literal(AttackConfig, "method") == V.PERTURBATIONS
    assert literal(EvaluationConfig, "protocol") == V.PROTOCOLS


@pytest.mark.parametrize(("command", "names"), [
    ("train", V.MODELS), ("shill", V.SHILLING_ATTACKS), ("detect", V.DETECTORS),
    ("attack", V.PERTURBATIONS), ("train", V.FORMATS), ("train", V.OPTIMIZERS),
])
def test_help_texts_list_every_name(command, names):
    text = " ".join(CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
                    .output.split())
    for name in names:
        assert name in text, (command, name)


@pytest.mark.parametrize(("page", "names"), [
    ("models.md", V.MODELS), ("shilling.md", V.SHILLING_ATTACKS),
    ("detection.md", V.DEFENSES), ("attacks.md", V.PERTURBATIONS),
    ("experiments.md", V.FORMATS),
])
def test_docs_name_every_entry(page, names):
    text = (DOCS / page).read_text().lower()
    missing = [n for n in names if n not in text and n.replace("_", "-") not in text]
    assert not missing, f"docs/{page} does not mention {missing}"
