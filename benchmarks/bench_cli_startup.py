"""The command line's cold start: wall-clock seconds of advrec commands in fresh processes.

Prints one JSON line per figure to stdout (progress on stderr)::

    python benchmarks/bench_cli_startup.py [--repeat 5] [--timeout 120]

Every figure is the median of ``--repeat`` fresh subprocess runs, after one warm-up run that
fills the OS file cache (and the ``__pycache__`` folders), with ``min``/``max`` alongside:

- baselines of the same run: ``python -c pass``, ``python -c "import numpy"`` and
  ``python -c "import torch"`` (what a torch import costs on this machine);
- ``advrec --help``, ``advrec validate --help`` and ``advrec --version`` (target 0.3 s for the
  help screens);
- ``advrec validate examples/handson.yaml`` (target 1.0 s), ``advrec datasets``, and
  ``advrec results DIR`` on a one-cell experiment (ItemPop on movielens-500) that the script
  runs once beforehand in a temporary folder.

advrec runs as ``python -m advrec`` (the console script next to the interpreter if that does
not work), with cwd = the repository and ``ADVREC_DATA_DIR`` from the environment (default
``../shared/datasets`` relative to the repository). A command that exits with an error (e.g.
an option that does not exist yet) gets ``"value": null`` and an ``"error"`` field.

Each row also has ``imports``: which heavy libraries (torch, pandas, scipy, sklearn, duckdb,
matplotlib, numba, numpy) were in ``sys.modules`` at the end of one extra run of the command
in-process, and ``import_ms``: their cumulative import time in that run (``-X importtime``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "scipy", "sklearn", "duckdb", "matplotlib", "numba", "numpy")
HELP_TARGET_S = 0.3
VALIDATE_TARGET_S = 1.0

# Runs a command in-process, then writes the heavy modules it imported to the file argv[1].
# argv[2] is "code" (argv[3] is Python source) or "advrec" (argv[3:] are the CLI arguments).
PROBE = f"""\
import json, runpy, sys
out, mode, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
heavy = {HEAVY!r}
rc = 0
try:
    if mode == "code":
        exec(compile(rest[0], "<bench>", "exec"), {{"__name__": "__main__"}})
    else:
        sys.argv = ["advrec", *rest]
        runpy.run_module("advrec", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    with open(out, "w") as f:
        json.dump({{"rc": rc, "imports": [m for m in heavy if m in sys.modules],
                   "n_modules": len(sys.modules)}}, f)
"""


def emit(bench: str, impl: str, dataset: str, value: float | None, unit: str,
         **settings) -> None:
    row = {"bench": bench, "impl": impl, "dataset": dataset,
           "value": None if value is None else float(f"{value:.4g}"), "unit": unit,
           **settings, "load1": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)


def advrec_prefix(env: dict[str, str]) -> list[str]:
    """``python -m advrec`` when it works here, else the console script beside the interpreter."""
    prefix = [sys.executable, "-m", "advrec"]
    done = subprocess.run([*prefix, "--help"], cwd=REPO, env=env, capture_output=True)
    if done.returncode == 0:
        return prefix
    script = Path(sys.executable).with_name("advrec")
    if script.is_file():
        print(f"[bench_cli_startup] `python -m advrec` failed; using {script}", file=sys.stderr)
        return [str(script)]
    sys.exit(f"neither `python -m advrec` nor {script} works:\n{done.stderr.decode()}")


def error_text(done: subprocess.CompletedProcess) -> str:
    """The last meaningful line of a failed command's output, without rich's box drawing."""
    text = (done.stderr or b"").decode(errors="replace") + (done.stdout or b"").decode(
        errors="replace")
    lines = [ln.strip(" │╭╮╰╯─┃━\t") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Usage:", "Try "))]
    message = lines[-1] if lines else "(no output)"
    return f"exit code {done.returncode}: {message}"


def run_once(argv: list[str], env: dict[str, str], timeout: float
             ) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=timeout)
    return time.perf_counter() - t0, done


def probe(kind: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    """Heavy modules imported (in-process run) and their cumulative import times (ms)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.json"
        argv = [sys.executable, "-X", "importtime", "-c", PROBE, str(out), kind, *args]
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=timeout)
        if not out.is_file():
            return {"imports": None, "probe_error": error_text(done)}
        info = json.loads(out.read_text())
    return {"imports": info["imports"], "import_ms": import_times(done.stderr),
            "n_modules": info["n_modules"]}


def import_times(stderr: bytes) -> dict[str, float]:
    """Cumulative ``-X importtime`` milliseconds per heavy package: the sum over its outermost
    entries (``scipy`` alone is cheap, ``scipy.sparse`` is where the time goes); a package
    imported by another one counts for both."""
    entries = []
    for line in stderr.decode(errors="replace").splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            level = (len(name) - len(name.lstrip())) // 2
            entries.append((level, name.strip().split(".")[0], int(parts[1])))
    totals: dict[str, float] = {}
    outer: list[str] = []  # the packages of the enclosing imports, outermost first
    for level, package, cumulative_us in reversed(entries):  # parents come before children
        outer = outer[:level]
        if package in HEAVY and package not in outer:
            totals[package] = totals.get(package, 0) + cumulative_us
        outer.append(package)
    return {name: round(us / 1000, 1) for name, us in sorted(totals.items(), key=lambda kv: -kv[1])}


def measure(bench: str, impl: str, dataset: str, argv: list[str], display: list[str],
            probe_args: tuple[str, list[str]], env: dict[str, str], repeat: int,
            timeout: float, baseline: float | None = None, **extra) -> float | None:
    """Warm-up run, then the median of `repeat` runs; emits the row and returns the median."""
    print(f"[bench_cli_startup] {' '.join(display)}", file=sys.stderr)
    row = dict(command=display, repeat=repeat, warmup=1, **extra)
    seconds, done = run_once(argv, env, timeout)
    median = None
    if done.returncode != 0:
        row["error"] = error_text(done)
    else:
        times = [run_once(argv, env, timeout)[0] for _ in range(repeat)]
        median = statistics.median(times)
        row.update(min=round(min(times), 4), max=round(max(times), 4))
        if baseline is not None:
            row["over_python_s"] = round(median - baseline, 4)
        if "target" in row:
            row["met"] = median <= row["target"]
    row.update(probe(*probe_args, env=env, timeout=timeout))
    emit(bench, impl, dataset, median, "s", **row)
    return median


def prepare_results(tmp: Path, prefix: list[str], env: dict[str, str], timeout: float
                    ) -> tuple[Path | None, str | None]:
    """Run a one-cell experiment (ItemPop, movielens-500) so that `advrec results` has a folder."""
    out = tmp / "out"
    spec = tmp / "cli-startup.yaml"
    spec.write_text(
        "name: cli-startup-bench\n"
        "data: {dataset: movielens-500}\n"
        "models: [{name: itempop}]\n"
        "evaluation: {ks: [10]}\n"
        "seeds: [0]\n"
        f"output: {json.dumps(str(out))}\n"
    )
    print("[bench_cli_startup] preparing the results folder (advrec run)", file=sys.stderr)
    _, done = run_once([*prefix, "run", str(spec), "--quiet", "--no-report"], env, timeout)
    if done.returncode != 0:
        return None, error_text(done)
    return out, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--skip-torch", action="store_true",
                        help="leave out the `import torch` baseline")
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("ADVREC_DATA_DIR", str((REPO / ".." / "shared" / "datasets").resolve()))
    env["COLUMNS"] = "100"  # the same help layout whatever the terminal
    prefix = advrec_prefix(env)
    shown = ["python", *prefix[1:]] if prefix[0] == sys.executable else ["advrec"]
    print(f"[bench_cli_startup] python={sys.executable} advrec={' '.join(shown)} "
          f"ADVREC_DATA_DIR={env['ADVREC_DATA_DIR']} repeat={args.repeat}", file=sys.stderr)
    common = dict(env=env, repeat=args.repeat, timeout=args.timeout)

    baselines = [("python_pass", "python", "pass"), ("python_import_numpy", "numpy",
                                                        "import numpy")]
    if not args.skip_torch:
        baselines.append(("python_import_torch", "torch", "import torch"))
    python_s = None
    for bench, impl, code in baselines:
        seconds = measure(bench, impl, "none", [sys.executable, "-c", code],
                          ["python", "-c", code], ("code", [code]), **common)
        if bench == "python_pass":
            python_s = seconds

    def cli(bench: str, dataset: str, cli_args: list[str], display_args: list[str] | None = None,
            **extra) -> None:
        measure(bench, "advrec", dataset, [*prefix, *cli_args],
                [*shown, *(cli_args if display_args is None else display_args)],
                ("advrec", cli_args), baseline=python_s, **common, **extra)

    cli("cli_help", "none", ["--help"], target=HELP_TARGET_S)
    cli("cli_subcommand_help", "none", ["validate", "--help"], target=HELP_TARGET_S)
    cli("cli_version", "none", ["--version"])
    cli("cli_validate", "movielens-500", ["validate", "examples/handson.yaml"],
        target=VALIDATE_TARGET_S)
    cli("cli_datasets", "none", ["datasets"])

    tmp = Path(tempfile.mkdtemp(prefix="advrec-cli-bench-"))
    try:
        folder, error = prepare_results(tmp, prefix, env, args.timeout)
        if folder is None:
            emit("cli_results", "advrec", "movielens-500", None, "s",
                 command=[*shown, "results", "<tmp>/out"], error=f"advrec run: {error}")
        else:
            cli("cli_results", "movielens-500", ["results", str(folder)],
                ["results", "<tmp>/out"], experiment="itempop, movielens-500, 1 seed, 1 cell")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
