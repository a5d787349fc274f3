"""The numba kernels' compile is paid once per installation and announced, never silent."""

from __future__ import annotations

import os
import subprocess
import sys

import advrec._lazy as lazy_module
from advrec._lazy import compile_once

SCRIPT = """
from advrec.data.datasets import load_split
from advrec.models import BPRMF
train, _ = load_split("movielens-500")
BPRMF(epochs=1).fit(train, progress=False)
"""


def test_notice_only_when_the_cache_is_cold(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(lazy_module, "_compiled", set())
    monkeypatch.setattr(lazy_module, "_cache_is_warm", lambda d: False)
    compile_once("kernel A", [object()], lambda: calls.append("A"))
    compile_once("kernel A", [object()], lambda: calls.append("again"))  # once per process
    err = capsys.readouterr().err
    assert calls == ["A"]
    assert "compiling kernel A (once per installation" in err and "compiled in" in err
    monkeypatch.setattr(lazy_module, "_cache_is_warm", lambda d: True)
    compile_once("kernel B", [object()], lambda: calls.append("B"))
    assert calls == ["A"] and capsys.readouterr().err == ""


def test_first_fit_on_a_fresh_cache_says_it_compiles_and_the_next_does_not(tmp_path, data_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "ADVREC_DATA_DIR": str(data_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    first = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                           text=True, check=True)
    assert "advrec: compiling the BPR-MF CPU epoch (once per installation" in first.stderr
    second = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, check=True)
    assert "compiling" not in second.stderr
