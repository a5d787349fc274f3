"""The command line imports heavy libraries only where a command needs them (issue 13): the
registry, experiment checks and `advrec validate` never import torch, pandas, scipy or numba."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "pandas", "scipy", "numba", "sklearn", "duckdb", "matplotlib", "safetensors")


def loaded_after(code: str, env_data: str | None = None) -> list[str]:
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (f"{code}\nimport sys\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = None
    if env_data is not None:
        import os

        env = {**os.environ, "ADVREC_DATA_DIR": env_data}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=env)
    last = (out.stdout.strip().splitlines() or [""])[-1]
    return [m for m in last.split(",") if m]


def test_importing_the_model_registry_and_the_engine_imports_no_heavy_library():
    assert loaded_after("import advrec.cli, advrec.models, advrec.experiments.planning, "
                        "advrec.experiments.config, advrec.experiments.runner, "
                        "advrec.data.datasets") == []


def test_validate_imports_no_heavy_library(data_dir):
    code = ("from typer.testing import CliRunner\nfrom advrec.cli import app\n"
            "r = CliRunner().invoke(app, ['validate', 'examples/handson.yaml'])\n"
            "assert r.exit_code == 0, r.output\nassert 'valid' in r.output")
    assert loaded_after(code, str(data_dir)) == []


def test_a_stand_in_imports_its_module_on_first_use():
    code = ("import sys\nfrom advrec._lazy import lazy\nsk = lazy('sklearn.metrics')\n"
            "assert 'sklearn' not in sys.modules\n"
            "assert sk.f1_score([1, 0], [1, 0]) == 1.0\n"
            "assert 'f1_score' in vars(sk)  # the namespace was copied: no more lookups")
    assert "sklearn" in loaded_after(code)
