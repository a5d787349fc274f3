"""Shared fixtures: the real data sets live in ADVREC_DATA_DIR (default ../shared/datasets)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ADVREC_DATA_DIR", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data sets not found in {DATA_DIR} (set ADVREC_DATA_DIR)")
    return DATA_DIR
