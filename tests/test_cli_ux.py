"""The command line's user experience: --version, `advrec list`, `train --param`, tables that fit
80 columns without cutting a number, progress lines when stderr is not a terminal, and `fetch`
without a network next to a read-only data folder."""

from __future__ import annotations

import inspect
import io
import json
import re
import socket
import stat
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

import advrec.cli as cli
import advrec.vocabulary as V
from advrec.cli import app
from conftest import snapshot

try:  # click < 8.2 mixes stderr into stdout unless told not to; 8.2+ always keeps both
    runner = CliRunner(mix_stderr=False)
except TypeError:
    runner = CliRunner()

WIDTH = 80
ANSI = re.compile(r"\x1b\[")
CELL_LINE = re.compile(r"^(?P<label>.+?) \(seed 0\): (?P<what>.+): (?P<i>\d+)/(?P<n>\d+) cells "
                       r"\((?P<time>[^()]*elapsed[^()]*)\)$")


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def stderr_of(result) -> str:
    try:
        return result.stderr
    except ValueError:  # an old click that mixed stderr into output
        return result.output


def one_error_line(result, *words: str) -> str:
    """Exit 2, exactly one ``error:`` line (returned), no traceback, each of ``words`` in it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def jsonable(v):
    return json.loads(json.dumps(v))  # tuples become lists, as in the JSON listing


def signature_defaults(func, skip=("self", "seed", "device")) -> dict:
    return {p.name: p.default for p in inspect.signature(func).parameters.values()
            if p.name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


# ----------------------------------------------------------------------------- 80 columns
@pytest.fixture
def narrow(monkeypatch) -> io.StringIO:
    """advrec's stdout console replaced by an 80-column one writing into the returned buffer."""
    buf = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(width=WIDTH, soft_wrap=True, file=buf,
                                            color_system=None))
    return buf


def parse_tables(text: str) -> list[dict]:
    """Rich's tables in ``text``: each with its title, column labels and body rows (cells)."""
    tables, title, current = [], [], None
    for line in text.splitlines():
        if line.startswith("┏"):
            current = {"title": " ".join(title).strip(), "head": [], "rows": []}
            tables.append(current)
            title = []
        elif line.startswith("┃") and current is not None:
            parts = [p.strip() for p in line.strip().strip("┃").split("┃")]
            if not current["head"]:
                current["head"] = parts
            else:  # a wrapped header label
                current["head"] = [f"{a} {b}".strip() for a, b in zip(current["head"], parts,
                                                                       strict=True)]
        elif line.startswith("│") and current is not None:
            current["rows"].append([p.strip() for p in line.strip().strip("│").split("│")])
        elif line.startswith("└"):
            current = None
        elif current is None and line.strip() and not line.startswith(("┡", "├")):
            title.append(line.strip())
    return tables


def check_fits(text: str, title: str, head: list[str], rows: list[list[str]], keys: int) -> None:
    """The printed tables fit 80 columns, nothing is cut, every cell appears whole in its row,
    and each continuation table repeats the ``keys`` columns."""
    lines = text.splitlines()
    assert lines, "nothing printed"
    too_long = [line for line in lines if len(line) > WIDTH]
    assert not too_long, too_long
    assert "…" not in text
    tables = parse_tables(text)
    assert len(tables) >= 2, text  # the wide table did not fit side by side
    assert tables[0]["title"] == title
    for t in tables[1:]:
        assert t["title"] == f"{title} (continued)", t["title"]
    seen: list[str] = []
    for t in tables:
        assert t["head"][:keys] == head[:keys], t["head"]
        seen += t["head"][keys:]
        assert len(t["rows"]) == len(rows), t
        for printed, row in zip(t["rows"], rows, strict=True):
            columns = [head.index(h) for h in t["head"]]
            assert printed == [row[i] for i in columns], (printed, row)
    assert seen == head[keys:]  # every column once, in order


def test_version():
    from advrec._version import __version__

    result = run("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"advrec {__version__}\n"


@pytest.mark.parametrize("keys", [1, 2])
@pytest.mark.parametrize("cell", ["{:.6f}", "{:.4f}±0.0012"])
def test_print_table_fits_80_columns_and_never_cuts(narrow, keys, cell):
    head = ["model", "attack", *(f"{m}@{k}" for m in ("hr", "ndcg", "precision", "recall",
                                                       "mrr", "map") for k in (10, 100))]
    rows = [["BPR-MF", "fgsm", *(cell.format((r * 12 + c + 1) / 997) for c in range(12))]
            for r in range(3)]
    if keys == 1:
        head, rows = [head[0], *head[2:]], [[r[0], *r[2:]] for r in rows]
    cli._print_table("wide", head, rows, left=keys, keys=keys)
    check_fits(narrow.getvalue(), "wide", head, rows, keys)


def test_print_table_that_fits_is_one_table(narrow):
    cli._print_table("small", ["metric", "value"], [["hr@10", "0.123456"]])
    tables = parse_tables(narrow.getvalue())
    assert [t["title"] for t in tables] == ["small"]
    assert tables[0]["rows"] == [["hr@10", "0.123456"]]


class TooWide(AssertionError):
    """A line wider than the console."""


def lines_over_80(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH]


def test_results_with_a_long_folder_title_fits_80_columns(data_dir, tmp_path, narrow,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("tiny.yaml").write_text(yaml.safe_dump(TINY))
    folder = Path("home-alice-projects-thesis", "experiments", "robustness-sweep-results")
    result = run("run", "tiny.yaml", "--no-report", "--quiet", "--output", folder)
    assert result.exit_code == 0, result.output
    narrow.truncate(0)
    narrow.seek(0)
    result = run("results", folder)
    assert result.exit_code == 0, result.output
    text = narrow.getvalue()
    title = f"{folder}: mean ± std over seeds"
    assert len(str(folder)) < WIDTH < len(title)  # fits when wrapped at its spaces
    assert "…" not in text and str(folder) in text
    if lines_over_80(text):
        raise TooWide(lines_over_80(text))


def test_print_table_with_a_long_label_fits_80_columns(narrow):
    label = "APR (eps=0.5, adv_reg=1.0, init from BPR-MF, 1000 epochs, seed)"
    head = ["model_label", "attack", "eps", "hr@10", "ndcg@10"]
    rows = [[label, "fgsm", "0.25", "0.1234±0.0001", "0.2345±0.0002"]]
    cli._print_table("t", head, rows, left=3, keys=2)
    text = narrow.getvalue()
    assert "…" not in text
    for cell in rows[0][1:]:
        assert cell in text
    for word in label.split():
        assert word in text
    if lines_over_80(text):
        raise TooWide(lines_over_80(text))


# ----------------------------------------------------------------------------- advrec list
LISTED = {
    "models": V.MODELS,
    "attacks": (*V.PERTURBATIONS, *V.INJECTION_ATTACKS, *V.CONTENT_ATTACKS),
    "defenses": (*V.DEFENSES, *V.ROBUST_TRAINING, *V.CERTIFIED,
                 *(d for d in V.IMAGE_DEFENSES if d != "none")),
    "metrics": V.ALL_METRICS,
}


def expected_names(kind: str) -> tuple[str, ...]:
    if kind == "datasets":
        from advrec.data.datasets import list_datasets

        return tuple(info.name for info in list_datasets())
    return LISTED[kind]


@pytest.mark.parametrize("kind", ["models", "attacks", "defenses", "metrics", "datasets"])
def test_list_names_every_entry(kind):
    result = run("list", kind)
    assert result.exit_code == 0, result.output
    entries = [line.split("  ")[0] for line in result.stdout.splitlines()
               if line and not line.startswith(" ")]
    assert Counter(entries) == Counter(expected_names(kind)), result.stdout

    result = run("list", kind, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    assert Counter(e["name"] for e in found) == Counter(expected_names(kind))
    for e in found:
        assert set(e) == {"name", "kind", "description", "params", "required", "notes"}, e
        assert isinstance(e["description"], str) and e["description"].strip(), e
        assert isinstance(e["params"], dict) and isinstance(e["notes"], list), e
        assert set(e["required"]) <= set(e["params"]), e


def test_list_models_shows_each_class_defaults():
    from advrec.models import MODELS

    found = {e["name"]: e for e in json.loads(run("list", "models", "--json").stdout)}
    for name, cls in MODELS.items():
        defaults = signature_defaults(cls.__init__)
        assert found[name]["params"] == jsonable(defaults), name
    bprmf = signature_defaults(MODELS["bprmf"].__init__)
    mf = signature_defaults(MODELS["mf"].__init__)
    assert found["bprmf"]["params"]["n_factors"] == bprmf["n_factors"] == 64
    assert found["mf"]["params"]["reg"] == mf["reg"] == 0.1
    text = run("list", "models").stdout
    bprmf_text = text.split("\nbprmf  ")[1].split("\napr  ")[0]
    assert f"n_factors={bprmf['n_factors']!r}" in bprmf_text
    mf_text = text.split("\nmf  ")[1].split("\ncfgan  ")[0]
    assert f"reg={mf['reg']!r}" in mf_text


def test_list_attacks_parameters():
    from advrec.attacks import perturbation

    found = {(e["kind"], e["name"]): e for e in json.loads(run("list", "attacks", "--json").stdout)}
    for name, func in (("fgsm", perturbation.fgsm), ("pgd", perturbation.pgd),
                       ("random", perturbation.random_perturbation)):
        e = found[("parameter attack", name)]
        assert e["required"] == ["eps"]
        defaults = signature_defaults(func, ("self", "seed", "device", "model", "train", "eps"))
        assert {k: v for k, v in e["params"].items() if k != "eps"} == jsonable(defaults), name
    assert ("shilling attack", "random") in found


@pytest.mark.parametrize("kind", ["models", "attacks"])
def test_list_text_fits_80_columns(narrow, kind):
    result = run("list", kind)
    assert result.exit_code == 0, result.output
    text = narrow.getvalue()
    assert text
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    assert "…" not in text


def test_list_unknown_kind_is_a_usage_error():
    result = run("list", "bogus")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "bogus" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_metric_descriptions_cover_every_metric():
    from advrec.metric_names import ALL_METRICS, DESCRIPTIONS

    assert set(DESCRIPTIONS) == set(ALL_METRICS)
    assert len(DESCRIPTIONS) == len(ALL_METRICS)
    assert all(d.strip() for d in DESCRIPTIONS.values())


# ----------------------------------------------------------------------------- train --param
def train(out: Path, model: str, *args):
    return run("train", model, "--dataset", "movielens-500", "--out", out, "--json", *args)


def test_train_param_sets_a_model_parameter(data_dir, tmp_path):
    from advrec.models import MODELS
    from advrec.models.base import read_manifest

    out = tmp_path / "knn"
    result = train(out, "userknn", "--param", "k=20")
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.stdout)["hr@100"] <= 1
    params = read_manifest(out)["params"]
    assert params["k"] == 20
    assert signature_defaults(MODELS["userknn"].__init__)["k"] != 20  # the option did it


def test_train_param_keeps_the_model_own_defaults(data_dir, tmp_path):
    from advrec.models import MODELS
    from advrec.models.base import read_manifest

    out = tmp_path / "mf"
    result = train(out, "mf", "--param", "epochs=1")
    assert result.exit_code == 0, result.output
    params = read_manifest(out)["params"]
    defaults = signature_defaults(MODELS["mf"].__init__)
    assert params["epochs"] == 1
    assert params["reg"] == defaults["reg"] == 0.1  # not train's --reg default (BPR-MF's 0.0)
    assert params["n_factors"] == defaults["n_factors"]
    assert params["lr"] == defaults["lr"]


@pytest.mark.parametrize(
    ("model", "args", "words"),
    [
        ("mf", ("--param", "bogus=1"), ("--param bogus", "'bogus'")),
        ("mf", ("--param", "epochs"), ("--param", "'epochs'", "KEY=VALUE")),
        ("mf", ("--param", "=3"), ("--param", "KEY=VALUE")),
        ("userknn", ("--param", "k=abc"), ("--param k", "abc")),
        ("bprmf", ("--dim", "8", "--param", "n_factors=4"), ("--param n_factors", "--dim")),
        ("bprmf", ("--param", "n-factors=4", "--dim", "8"), ("--param n_factors", "--dim")),
        ("bprmf", ("--param", "epochs=1", "--param", "epochs=2"),
         ("--param epochs", "twice")),
    ],
)
def test_train_param_errors(data_dir, tmp_path, model, args, words):
    before = snapshot(tmp_path)
    out = tmp_path / "model"
    result = train(out, model, *args)
    line = one_error_line(result, *words)
    assert line.startswith("error: --param"), line
    assert not out.exists()
    assert snapshot(tmp_path) == before


def test_train_param_unknown_key_lists_the_model_parameters(data_dir, tmp_path):
    from advrec.models import MODELS

    result = train(tmp_path / "model", "mf", "--param", "bogus=1")
    line = one_error_line(result, "bogus")
    listed = line.split("it takes", 1)[1]
    for name in MODELS["mf"]._param_names():
        assert re.search(rf"\b{name}\b", listed), (name, line)
    assert not (tmp_path / "model").exists()


# ----------------------------------------------------------------------------- experiments
TINY = {
    "name": "tiny-ux",
    "data": {"dataset": "movielens-500"},
    "models": [{"name": "bprmf", "params": {"epochs": 1}}],
    "attacks": [{"method": "fgsm", "eps": [0.25, 0.5]}],
    "evaluation": {"ks": [10, 100], "metrics": ["hr", "ndcg", "precision", "recall", "mrr",
                                                 "map"]},
}
TINY_CELLS = 3  # clean + two ε


@pytest.fixture(scope="module")
def tiny(data_dir, tmp_path_factory):
    """The tiny experiment, run once with progress (not --quiet): (output folder, result)."""
    root = tmp_path_factory.mktemp("tiny")
    file = root / "tiny.yaml"
    file.write_text(yaml.safe_dump(TINY))
    result = run("run", file, "--no-report", "--output", root / "out")
    assert result.exit_code == 0, result.output
    return root / "out", result


def test_run_progress_is_one_plain_line_per_cell(tiny):
    _, result = tiny
    err = stderr_of(result)
    assert not ANSI.search(err), repr(err)
    assert "\r" not in err
    matches = [CELL_LINE.match(line) for line in err.splitlines()]
    cells = [m for m in matches if m]
    assert [int(m["i"]) for m in cells] == list(range(1, TINY_CELLS + 1)), err
    assert {int(m["n"]) for m in cells} == {TINY_CELLS}
    assert {m["label"] for m in cells} == {"bprmf"}
    whats = [m["what"] for m in cells]
    assert len(set(whats)) == TINY_CELLS and "clean" in whats, whats
    assert f"{TINY_CELLS} cell(s) run" in result.stdout


def test_run_quiet_writes_no_progress(data_dir, tmp_path):
    file = tmp_path / "tiny.yaml"
    file.write_text(yaml.safe_dump(TINY))
    result = run("run", file, "--no-report", "--quiet", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    err = stderr_of(result)
    assert not [line for line in err.splitlines() if CELL_LINE.match(line)], err
    assert "epochs" not in err and "elapsed" not in err, err
    assert f"{TINY_CELLS} cell(s) run" in result.stdout


def test_results_table_fits_80_columns(tiny, narrow):
    folder, _ = tiny
    data = run("results", folder, "--json")
    assert data.exit_code == 0, data.output
    records = json.loads(data.stdout)
    assert len(records) == TINY_CELLS
    result = run("results", folder)
    assert result.exit_code == 0, result.output
    metrics = [f"{m}@{k}" for m in TINY["evaluation"]["metrics"] for k in (10, 100)]
    head = ["model_label", "attack", "eps", *metrics, "n"]
    rows = [[r["model_label"], r["attack"], "—" if r["eps"] is None else f"{r['eps']:g}",
             *(f"{r[f'{m}_mean']:.4f}" for m in metrics), str(r[f"{metrics[0]}_count"])]
            for r in records]
    text = narrow.getvalue()
    check_fits(text, f"{folder}: mean ± std over seeds", head, rows, keys=2)


# ----------------------------------------------------------------------------- progress
@pytest.fixture
def prog(monkeypatch, capsys):
    """The progress module with a fake clock; stderr is capsys's (not a terminal).
    ``prog.err()`` reads what was written to stderr since the last call."""
    from advrec.training import progress

    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    assert not sys.stderr.isatty()
    return types.SimpleNamespace(mod=progress, Progress=progress.Progress, clock=clock,
                                 err=lambda: capsys.readouterr().err)


LINE = re.compile(r"^(?P<d>.+): (?P<i>\d+)/(?P<n>\d+)(?: (?P<unit>\w+))? "
                  r"\((?P<elapsed>\d+:\d\d) elapsed(?:, about \d+:\d\d left)?\)"
                  r"(?:  (?P<info>.*))?$")


def parsed(text: str) -> list[re.Match]:
    out = [LINE.match(line) for line in text.splitlines()]
    assert all(out), text
    return out


def test_progress_plain_line_per_advance(prog):
    P = prog.Progress
    with P("cells", 3, unit="cells") as bar:
        assert bar.mode == "plain"
        for _ in range(3):
            prog.clock.now += 5
            bar.advance()
    text = prog.err()
    lines = parsed(text)
    assert [(int(m["i"]), int(m["n"]), m["unit"]) for m in lines] == [
        (1, 3, "cells"), (2, 3, "cells"), (3, 3, "cells")]
    assert [m["elapsed"] for m in lines] == ["0:05", "0:10", "0:15"]  # the fake clock's
    assert "about 0:10 left" in text.splitlines()[0]
    assert "left" not in text.splitlines()[-1]
    assert not ANSI.search(text)


def test_progress_stream_and_logs(prog):
    stream = io.StringIO()
    with prog.Progress("fit", 2, stream=stream) as bar:
        bar.advance({"loss": 0.5, "other": 1.0})
        bar({"loss": 0.25})
    assert prog.err() == ""
    lines = parsed(stream.getvalue())
    assert [m["info"] for m in lines] == ["loss 0.5000", "loss 0.2500"]
    assert [m["d"] for m in lines] == ["fit", "fit"]


def test_progress_heartbeat_every_30_seconds(prog):
    P, clock = prog.Progress, prog.clock
    times = [10, 20, 31, 40, 50, 62, 70, 80]  # lines due at 31 (≥30 s) and 62 (≥30 s after 31)
    with P("bprmf", len(times), unit="epochs", every=30) as bar:
        for t in times:
            clock.now = t
            bar.advance({"loss": 0.1})
    lines = parsed(prog.err())
    assert [int(m["i"]) for m in lines] == [3, 6, 8]  # and the last epoch
    assert [m["elapsed"] for m in lines] == ["0:31", "1:02", "1:20"]


def test_progress_heartbeat_last_line_when_stopped_early(prog):
    P, clock = prog.Progress, prog.clock
    with P("bprmf", 100, unit="epochs", every=30) as bar:
        for t in (1, 2, 3):  # early stopping after 3 of 100 epochs
            clock.now = t
            bar.advance()
    lines = parsed(prog.err())
    assert [int(m["i"]) for m in lines] == [3]


def test_epoch_progress_is_a_heartbeat(prog):
    bar = prog.mod.epoch_progress(None, "m", 5)
    assert bar.every == prog.mod.HEARTBEAT_SECONDS == 30
    assert bar.unit == "epochs"


def test_progress_disabled_prints_nothing(prog):
    stream = io.StringIO()
    with prog.Progress("cells", 3, enabled=False, stream=stream) as bar:
        for _ in range(3):
            bar.advance()
    with prog.Progress("cells", 3, enabled=False) as bar:
        bar.advance()
    assert stream.getvalue() == ""
    assert prog.err() == ""


def test_progress_nested_rich_shares_one_display(prog):
    P = prog.Progress
    assert prog.mod._live == []
    with P("cells", 2, enabled=True, unit="cells") as outer:
        assert outer.mode == "rich"
        display = prog.mod._live[0]
        for cell in range(2):
            outer.describe(f"cell {cell}")
            with P("epochs", 3, enabled=True) as inner:
                assert prog.mod._live == [display]  # joined, not a second display
                assert len(display.tasks) == 2
                for _ in range(3):
                    inner.advance({"loss": 0.3})
            assert len(display.tasks) == 1  # the inner bar left the screen
            outer.advance()
    assert prog.mod._live == []
    assert prog.mod._depth == [0]


def test_progress_nested_rich_cleans_up_after_an_error(prog):
    P = prog.Progress
    # entered in order: the cells' display, then the epochs' nested in it
    with pytest.raises(RuntimeError), P("cells", 2, enabled=True), \
            P("epochs", 3, enabled=True) as inner:
        assert len(prog.mod._live[0].tasks) == 2
        inner.advance()
        raise RuntimeError("boom")
    assert prog.mod._live == []
    assert prog.mod._depth == [0]
    with P("again", 1, enabled=True) as bar:  # a new display starts afterwards
        bar.advance()
    assert prog.mod._live == []


# ----------------------------------------------------------------------------- fetch offline
def closed_port_url() -> str:
    """A local URL nothing listens on: connecting is refused at once, as with no network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """HOME and a read-only ADVREC_DATA_DIR in tmp_path; downloads go to a closed port."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    home = tmp_path / "home"
    home.mkdir()
    shared = tmp_path / "shared"
    (shared / "movielens-500").mkdir(parents=True)
    (shared / "movielens-500" / "ratings.txt").write_text("1 2\n")
    (shared / "README").write_text("read-only data\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ADVREC_DATA_DIR", str(shared))
    mirror = closed_port_url()
    monkeypatch.setenv("ADVREC_DOWNLOAD_URL", mirror)
    for d in (shared / "movielens-500", shared):
        d.chmod(0o555)
    try:
        yield types.SimpleNamespace(home=home, shared=shared, mirror=mirror)
    finally:
        for d in (shared, shared / "movielens-500"):
            d.chmod(0o755)


def test_default_cache_dir_skips_a_read_only_data_dir(offline, monkeypatch, tmp_path):
    from advrec.data.datasets import default_cache_dir

    assert default_cache_dir() == offline.home / ".cache" / "advrec"
    writable = tmp_path / "writable"
    writable.mkdir()
    monkeypatch.setenv("ADVREC_DATA_DIR", str(writable))
    assert default_cache_dir() == writable
    monkeypatch.setenv("ADVREC_DATA_DIR", str(writable / "not-yet"))  # made on first fetch
    assert default_cache_dir() == writable / "not-yet"
    monkeypatch.setenv("ADVREC_DATA_DIR", str(offline.shared / "sub"))  # under a read-only one
    assert default_cache_dir() == offline.home / ".cache" / "advrec"


def test_fetch_offline_says_what_to_do_and_spares_the_read_only_dir(offline):
    before = snapshot(offline.shared)
    mtimes = {p: p.stat().st_mtime_ns for p in (offline.shared, offline.shared / "movielens-500")}
    result = run("fetch", "ml-1m")
    line = one_error_line(result, "ADVREC_DOWNLOAD_URL", offline.mirror)
    target = offline.home / ".cache" / "advrec" / "ml-1m" / "ratings.dat"
    assert str(target) in line, line
    assert str(offline.shared / "ml-1m") not in line  # not told to write the read-only one
    assert snapshot(offline.shared) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert stat.S_IMODE(offline.shared.stat().st_mode) == 0o555
    assert not (offline.home / ".cache" / "advrec" / "ml-1m").exists()  # nothing half-written
    leftovers = list((offline.home / ".cache" / "advrec").glob("*"))
    assert leftovers == [], leftovers


def test_fetch_library_offline_raises_data_error(offline):
    from advrec.data.datasets import fetch
    from advrec.errors import DataError

    before = snapshot(offline.shared)
    with pytest.raises(DataError, match="ADVREC_DOWNLOAD_URL"):
        fetch("ml-1m")
    assert snapshot(offline.shared) == before
