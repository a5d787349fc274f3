"""tools/check_layers.py: the tree keeps its layering, and the checker fails on a bad package."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "check_layers.py"


def run(*args: str | Path) -> subprocess.CompletedProcess:
    """The checker in an isolated interpreter without site-packages: standard library only."""
    return subprocess.run([sys.executable, "-I", "-S", str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def ci_arguments() -> list[str]:
    """The arguments .ci/run gives the checker (its allowances), so this test and CI agree."""
    for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        if "tools/check_layers.py" in line and not line.lstrip().startswith("#"):
            words = shlex.split(line, comments=True)
            return words[[w.endswith("check_layers.py") for w in words].index(True) + 1:]
    raise AssertionError(".ci/run does not run tools/check_layers.py")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "src"


GOOD = {
    "advrec/__init__.py": "from advrec._version import __version__\nfrom advrec.data import io\n",
    "advrec/_version.py": "__version__ = '0'\n",
    "advrec/errors.py": "class E(Exception): ...\n",
    "advrec/validation.py": "from advrec.errors import E\n",
    "advrec/data/__init__.py": "from advrec.data.io import read\n",
    "advrec/data/io.py": "from advrec.errors import E\n\ndef read(): ...\n",
    "advrec/models/__init__.py": "from advrec.models.base import Base\n",
    "advrec/models/base.py": """\
        import advrec.data.io as io
        from advrec._version import __version__
        from advrec.validation import E

        class Base: ...
        """,
    "advrec/models/gan/__init__.py": "",
    "advrec/models/gan/cfgan.py": "from ..base import Base\nfrom advrec.data import io\n",
    "advrec/evaluation/__init__.py": "",
    "advrec/evaluation/evaluator.py": "from advrec.models.gan import cfgan\n",
    "advrec/cli.py": "def main():\n    from advrec.evaluation.evaluator import Evaluator\n",
    "advrec/__main__.py": "from advrec.cli import main\n",
}


def test_the_tree_keeps_its_layering():
    out = run(REPO / "src", *ci_arguments())
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("layers ok: "), out.stdout


def test_a_clean_package_passes_with_a_one_line_summary(tmp_path):
    out = run(write(tmp_path, GOOD))
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.fullmatch(r"layers ok: 14 modules, 1\d imports, no upward import, no cycle\n",
                        out.stdout), out.stdout


BAD = {
    **GOOD,
    # the package face, through a lazy import
    "advrec/models/base.py": """\
        from advrec.validation import E

        class Base: ...

        def versions():
            from advrec import __version__
            return __version__
        """,
    # its own package's face (and so a cycle through it)
    "advrec/data/io.py": "from advrec.data import read_more\n\ndef read(): ...\n",
    "advrec/data/more.py": "def read_more(): ...\n",
    "advrec/data/__init__.py": "from advrec.data.io import read\n"
                               "from advrec.data.more import read_more\n",
    # upward: relative, under TYPE_CHECKING, and through importlib
    "advrec/models/gan/cfgan.py": """\
        from typing import TYPE_CHECKING
        from ..base import Base
        if TYPE_CHECKING:
            from ...evaluation.metrics import Result
        """,
    "advrec/evaluation/metrics.py": "class Result: ...\n",
    "advrec/training/__init__.py": "",
    "advrec/training/loop.py": "import importlib\nCLI = importlib.import_module('advrec.cli')\n",
    # sideways between layers of one rank; a foundation module importing a layer
    "advrec/attacks/__init__.py": "",
    "advrec/attacks/fgsm.py": "import advrec.defenses.filters\n",
    "advrec/defenses/__init__.py": "",
    "advrec/defenses/filters.py": "",
    "advrec/errors.py": "import advrec.data.io\n",
    # a cycle between two modules (lazy on one side) and a module outside the layer table
    "advrec/experiments/__init__.py": "",
    "advrec/experiments/runner.py": "from advrec.experiments.ray_executor import run_ray\n",
    "advrec/experiments/ray_executor.py": """\
        def run_ray():
            from advrec.experiments.runner import go
        """,
    "advrec/plugins/__init__.py": "",
}

EXPECTED = [
    "advrec.attacks.fgsm (line 1) imports advrec.defenses.filters (layer defenses beside attacks",
    "advrec.data.io (line 1) imports its own package's face advrec.data",
    "advrec.errors (line 1) imports advrec.data.io (layer data above foundation",
    "advrec.models.base (line 6) imports the package face advrec",
    "advrec.models.gan.cfgan (line 4) imports advrec.evaluation.metrics (layer evaluation "
    "above models",
    "advrec.plugins: layer 'plugins' is not in the layer table",
    "advrec.training.loop (line 2) imports advrec.cli (layer cli above training",
    "import cycle: advrec.data -> advrec.data.io -> advrec.data",
    "import cycle: advrec.experiments.ray_executor -> advrec.experiments.runner -> "
    "advrec.experiments.ray_executor",
]
RAY = "advrec.experiments.ray_executor<->advrec.experiments.runner"


def test_a_bad_package_fails_with_one_line_per_violation(tmp_path):
    out = run(write(tmp_path, BAD))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert out.stderr.strip() == f"{len(lines)} layering violation(s)"
    assert len(lines) == len(EXPECTED), out.stdout
    for want in EXPECTED:
        assert sum(line.startswith(want) for line in lines) == 1, (want, out.stdout)


def test_an_allowance_tolerates_exactly_its_cycle(tmp_path):
    src = write(tmp_path, BAD)
    out = run(src, "--allow", RAY)
    assert out.returncode == 1
    assert not any("experiments" in line for line in out.stdout.splitlines())
    assert len(out.stdout.splitlines()) == len(EXPECTED) - 1
    # a third module in the cycle: the allowance no longer matches it
    (src / "advrec/experiments/runner.py").write_text(
        "from advrec.experiments.ray_executor import run_ray\nimport advrec.experiments.store\n")
    (src / "advrec/experiments/store.py").write_text("import advrec.experiments.runner\n")
    out = run(src, "--allow", RAY)
    assert any(line.startswith("import cycle: advrec.experiments.") for line in
               out.stdout.splitlines()), out.stdout


def test_an_unused_allowance_is_named_in_the_summary(tmp_path):
    out = run(write(tmp_path, GOOD), "--allow", RAY)
    assert out.returncode == 0
    assert out.stdout.strip().endswith(f"unused --allow {RAY} (no such cycle: remove it)")


@pytest.mark.parametrize("allowance", ["advrec.a", "advrec.a<->", "<->advrec.b"])
def test_a_malformed_allowance_is_refused(tmp_path, allowance):
    out = run(write(tmp_path, GOOD), "--allow", allowance)
    assert out.returncode == 2 and "A<->B" in out.stderr


def test_a_folder_without_the_package_is_refused(tmp_path):
    out = run(tmp_path)
    assert out.returncode != 0 and "no package 'advrec'" in out.stderr
