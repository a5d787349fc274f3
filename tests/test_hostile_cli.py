"""Hostile input at the command line and in experiment files: every failure a user can cause is
one line naming the problem, exit code 2, no traceback, and nothing on disk changes; advrec
never destroys a file or folder it did not write.

Each case snapshots the folder it works in (every path and the bytes of every file) before the
command and compares after it.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from advrec.cli import app
from advrec.outputs import MARKER
from conftest import snapshot

runner = CliRunner()


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *words: str) -> None:
    """Exit 2, one line on stderr naming the problem (each of ``words``), no traceback."""
    assert result.exit_code == 2, result.output
    text = result.output
    assert "Traceback" not in text
    for w in words:
        assert w in text, (w, text)
    error_lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, text


def unchanged(root: Path, before: dict) -> None:
    assert snapshot(root) == before


@pytest.fixture()
def user_tree(tmp_path) -> Path:
    """A user's own files and folders, none written by advrec."""
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("\\section{One}\n")
    (tmp_path / "thesis" / "figures").mkdir()
    (tmp_path / "thesis" / "figures" / "plot.pdf").write_bytes(b"%PDF-1.4 not really")
    (tmp_path / "empty").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def saved_pop(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "pop"
    result = run("train", "itempop", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def experiment(data_dir, tmp_path_factory) -> Path:
    """A finished one-cell experiment folder."""
    root = tmp_path_factory.mktemp("exp")
    file = root / "exp.yaml"
    file.write_text(yaml.safe_dump({"name": "tiny", "models": [{"name": "itempop"}],
                                    "evaluation": {"ks": [10]}}))
    result = run("run", file, "--quiet", "--no-report")
    assert result.exit_code == 0, result.output
    return root / "runs" / "tiny"


# ---------------------------------------------------------------------------- never destroy
@pytest.mark.parametrize("target", ["notes.txt", "thesis", "thesis/figures"])
def test_train_refuses_what_advrec_did_not_write(data_dir, user_tree, target):
    before = snapshot(user_tree)
    result = run("train", "itempop", "--out", user_tree / target, "--quiet")
    refused(result, target.split("/")[-1])
    unchanged(user_tree, before)


def test_train_refuses_the_current_folder(data_dir, user_tree, monkeypatch):
    monkeypatch.chdir(user_tree / "thesis")
    before = snapshot(user_tree)
    refused(run("train", "itempop", "--out", ".", "--quiet"), "current folder")
    unchanged(user_tree, before)


def test_train_refuses_an_empty_current_folder_too(data_dir, user_tree, monkeypatch):
    monkeypatch.chdir(user_tree / "empty")
    before = snapshot(user_tree)
    refused(run("train", "itempop", "--out", ".", "--quiet"), "current folder")
    unchanged(user_tree, before)


def test_train_refuses_a_folder_below_a_file(data_dir, user_tree):
    before = snapshot(user_tree)
    refused(run("train", "itempop", "--out", user_tree / "notes.txt" / "model", "--quiet"),
            "notes.txt", "not a writable folder")
    unchanged(user_tree, before)


def test_train_refuses_an_experiment_folder(data_dir, experiment):
    before = snapshot(experiment)
    refused(run("train", "itempop", "--out", experiment, "--quiet"), "experiment's results")
    refused(run("train", "itempop", "--out", experiment, "--quiet", "--overwrite"),
            "experiment's results")
    unchanged(experiment, before)


def test_train_replaces_its_own_model_only_with_overwrite(data_dir, tmp_path):
    out = tmp_path / "pop"
    assert run("train", "itempop", "--out", out, "--quiet").exit_code == 0
    (out / "README.md").write_text("what I did")
    before = snapshot(tmp_path)
    refused(run("train", "itempop", "--out", out, "--quiet"), "--overwrite")
    unchanged(tmp_path, before)
    result = run("train", "itempop", "--out", out, "--quiet", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (out / "README.md").read_text() == "what I did"  # not advrec's: kept
    assert (out / "manifest.json").is_file()


def test_train_into_an_empty_folder_is_fine(data_dir, user_tree):
    result = run("train", "itempop", "--out", user_tree / "empty", "--quiet")
    assert result.exit_code == 0, result.output
    assert (user_tree / "empty" / "manifest.json").is_file()


def test_overwrite_removes_only_what_the_marker_lists(data_dir, tmp_path):
    out = tmp_path / "pop"
    assert run("train", "itempop", "--out", out, "--quiet").exit_code == 0
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["entries"]) == {"manifest.json", "state.safetensors"}
    (out / "mine").mkdir()
    (out / "mine" / "data.csv").write_text("1,2\n")
    assert run("train", "itempop", "--out", out, "--quiet", "--overwrite").exit_code == 0
    assert (out / "mine" / "data.csv").read_text() == "1,2\n"


@pytest.mark.parametrize("option", ["--csv", "--parquet"])
def test_results_export_refuses_a_users_file_even_with_overwrite(experiment, user_tree, option):
    before = snapshot(user_tree)
    refused(run("results", experiment, option, user_tree / "notes.txt"), "notes.txt", "exists")
    refused(run("results", experiment, option, user_tree / "notes.txt", "--overwrite"),
            "not written by advrec")
    unchanged(user_tree, before)


def test_results_export_replaces_its_own_file_with_overwrite(experiment, tmp_path):
    path = tmp_path / "rows.csv"
    assert run("results", experiment, "--csv", path).exit_code == 0
    first = path.read_bytes()
    refused(run("results", experiment, "--csv", path), "--overwrite")
    assert path.read_bytes() == first
    assert run("results", experiment, "--csv", path, "--overwrite").exit_code == 0
    path.write_text("edited by me\n")
    refused(run("results", experiment, "--csv", path, "--overwrite"), "changed since")
    assert path.read_text() == "edited by me\n"


@pytest.mark.parametrize(("where", "words"), [
    ("thesis", ("thesis", "is a folder")),
    ("missing/rows.csv", ("missing", "does not exist")),
])
def test_results_csv_bad_places(experiment, user_tree, where, words):
    before = snapshot(user_tree)
    refused(run("results", experiment, "--csv", user_tree / where), "--csv", *words)
    unchanged(user_tree, before)


def test_results_csv_and_parquet_on_one_file(experiment, tmp_path):
    refused(run("results", experiment, "--csv", tmp_path / "x", "--parquet", tmp_path / "x"),
            "same file")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("where", "words"), [
    ("notes.txt", ("notes.txt", "exists")),
    ("thesis", ("thesis", "is a folder")),
    ("nowhere/report.html", ("nowhere", "does not exist")),
])
def test_report_out_bad_places(experiment, user_tree, where, words):
    before = snapshot(user_tree)
    exp_before = snapshot(experiment)
    refused(run("report", experiment, "--out", user_tree / where), *words)
    unchanged(user_tree, before)
    unchanged(experiment, exp_before)


def test_report_needs_an_experiment_folder(user_tree):
    before = snapshot(user_tree)
    refused(run("report", user_tree / "thesis"), "no results")
    unchanged(user_tree, before)


def test_handson_refuses_a_users_folder_before_any_work(data_dir, user_tree):
    before = snapshot(user_tree)
    refused(run("handson", "--out", user_tree / "thesis", "--quiet"), "thesis", "did not write")
    unchanged(user_tree, before)


def test_shill_plot_refuses_a_users_file_before_any_work(data_dir, user_tree):
    before = snapshot(user_tree)
    refused(run("shill", "itempop", "--plot", user_tree / "thesis" / "figures" / "plot.pdf"),
            "plot.pdf", "exists")
    unchanged(user_tree, before)


def test_detect_plot_refuses_a_users_folder_before_any_work(data_dir, user_tree):
    before = snapshot(user_tree)
    refused(run("detect", "--plot", user_tree / "thesis", "--victim", "none"), "thesis")
    unchanged(user_tree, before)


# ---------------------------------------------------------------------------- experiment files
def write_exp(folder: Path, body: dict | str, name: str = "exp.yaml") -> Path:
    path = folder / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False))
    return path


BASE = {"name": "t", "models": [{"name": "itempop"}], "evaluation": {"ks": [10]}}


def both_refuse(folder: Path, file: Path, *words: str) -> None:
    """``validate`` and ``run`` refuse the file alike, and neither writes anything."""
    before = snapshot(folder)
    refused(run("validate", file), *words)
    refused(run("run", file, "--quiet"), *words)
    unchanged(folder, before)


@pytest.mark.parametrize(("change", "words"), [
    ({"name": "../../escaped"}, ("name", "label")),
    ({"name": "a/b"}, ("name", "label")),
    ({"name": ""}, ("name", "must not be empty")),
    ({"name": "  "}, ("name", "must not be empty")),
    ({"seeds": [True]}, ("seeds.0", "valid integer", "True")),
    ({"seeds": ["1"]}, ("seeds.0", "valid integer", "'1'")),
    ({"seeds": [2.0]}, ("seeds.0", "valid integer", "2.0")),
    ({"seeds": [1, 2, 1]}, ("seeds", "repeated", "[1]")),
    ({"seeds": [-1]}, ("seeds", "-1")),
    ({"models": [{"name": "bprmf", "params": {"epochs": -5}}]},
     ("models.0.params.epochs: must be >= 0, got -5",)),
    ({"models": [{"name": "bprmf", "params": {"n_factors": 2.5}}]},
     ("models.0.params.n_factors", "integer", "2.5")),
    ({"models": [{"name": "bprmf", "params": {"lr": [0.1, -1.0]}}]},
     ("models.0.params.lr", "-1.0")),
    ({"models": [{"name": "mf", "early_stopping": {"patience": 2}}],
      "data": {"valid": "holdout", "dataset": "movielens-500"}},
     ("models.0.early_stopping", "'mf'", "early stopping")),
    ({"models": [{"name": "bprmf", "early_stopping": {"metric": "ndcg@x"}}],
      "data": {"valid": "holdout"}}, ("models.0.early_stopping.metric", "ndcg@x")),
    ({"models": [{"name": "bprmf", "label": "a"}, {"name": "itempop", "init": "a"}]},
     ("models.1.init", "'itempop'", "cannot start")),
    ({"models": [{"name": "bprmf", "label": "A", "params": {"epochs": 1}},
                 {"name": "bprmf", "label": "B", "params": {"epochs": 1}}]},
     ("models.1", "'B'", "same model as models.0", "'A'")),
    ({"models": [{"name": "bprmf", "params": {"epochs": 1}}],
      "attacks": [{"method": "fgsm", "eps": [0.5, 0.5]}]}, ("attacks.0", "same variant")),
    ({"models": [{"name": "bprmf", "params": {"epochs": 1}}],
      "attacks": [{"method": "fgsm", "eps": 0.5}, {"method": "fgsm", "eps": 0.5}]},
     ("attacks.0 and attacks.1", "same variant")),
    ({"attacks": [{"method": "fgsm", "eps": float("inf")}]}, ("attacks.0.eps", "finite", "inf")),
    ({"attacks": [{"method": "pgd", "steps": 0}]}, ("attacks.0.steps", "got 0")),
    ({"evaluation": {"ks": [0]}}, ("evaluation.ks.0", "positive")),
    ({"data": {"dataset": "no-such-set"}}, ("data.dataset", "no-such-set")),
    ({"data": {"dataset": "ml-100k", "fold": "u9"}}, ("data.fold", "u9")),
    ({"device": "tpu9"}, ("device", "tpu9")),
    ({"workers": 0}, ("workers", "0")),
    ({"models": [{"name": "nosuchmodel"}]}, ("models.0.name", "nosuchmodel")),
    ({"surprise": 1}, ("surprise", "unknown key")),
])
def test_validate_and_run_refuse_alike(data_dir, tmp_path, change, words):
    file = write_exp(tmp_path, {**BASE, **change})
    both_refuse(tmp_path, file, *words)


def test_an_error_further_down_stops_run_before_the_first_cell(data_dir, tmp_path):
    body = {**BASE, "models": [{"name": "itempop"},
                               {"name": "bprmf", "params": {"epochs": -1}}]}
    file = write_exp(tmp_path, body)
    both_refuse(tmp_path, file, "models.1.params.epochs")
    assert not (tmp_path / "runs").exists()


def test_a_huge_grid_is_refused_before_expansion(data_dir, tmp_path):
    values = list(range(1, 101))
    body = {**BASE, "models": [{"name": "bprmf", "params": {
        "epochs": values, "n_factors": values, "batch_size": values, "lr": [0.1, 0.2]}}]}
    file = write_exp(tmp_path, body)
    t0 = time.perf_counter()
    both_refuse(tmp_path, file, "2,000,000 cells", "--max-cells")
    assert time.perf_counter() - t0 < 60  # refused by arithmetic, not by expanding 2M cells


def test_max_cells_lowers_the_limit(data_dir, tmp_path):
    file = write_exp(tmp_path, {**BASE, "seeds": [0, 1, 2]})
    refused(run("validate", file, "--max-cells", "2"), "3 cells", "limit of 2")
    assert run("validate", file, "--max-cells", "3").exit_code == 0


BOMB = """name: bomb
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
models: [{name: itempop}]
"""


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    file = write_exp(tmp_path, BOMB)
    assert file.stat().st_size < 1024
    both_refuse(tmp_path, file, "100,000 values", "aliases")


@pytest.mark.parametrize(("text", "words"), [
    ("name: x\nmodels: [{name: itempop}]\nname: y\n", ("exp.yaml:3", "'name'", "repeats")),
    ("- name: x\n", ("mapping",)),
    ("name: [unclosed\n", ("not valid YAML",)),
    ("", ("mapping",)),
    ("name: x\nmodels: !!python/object:os.system [echo]\n", ("not valid YAML",)),
    ("name: x\nmodels: [{name: itempop}]\nseeds: [.nan]\n", ("seeds.0",)),
])
def test_malformed_yaml(tmp_path, text, words):
    both_refuse(tmp_path, write_exp(tmp_path, text), *words)


def test_a_non_utf8_file(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_bytes(b"name: caf\xe9\nmodels: [{name: itempop}]\n")
    both_refuse(tmp_path, file, "exp.yaml:1", "UTF-8")


def test_a_huge_file(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text("name: x\n# " + "x" * (2 << 20) + "\n")
    both_refuse(tmp_path, file, "bytes", "at most")


def test_a_folder_given_as_the_file(tmp_path):
    (tmp_path / "d").mkdir()
    refused(run("validate", tmp_path / "d"), "not a file")


def test_run_refuses_a_users_output_folder(data_dir, user_tree):
    file = write_exp(user_tree, {**BASE, "output": "thesis"})
    both_refuse(user_tree, file, "thesis", "did not write")


def test_run_refuses_another_experiments_folder_without_overwrite(data_dir, experiment, tmp_path):
    file = write_exp(tmp_path, {**BASE, "name": "other", "output": str(experiment)})
    before = snapshot(experiment)
    refused(run("run", file, "--quiet"), "'tiny'", "--overwrite")
    unchanged(experiment, before)


def test_run_overwrite_replaces_another_experiment_but_keeps_user_files(data_dir, tmp_path):
    first = write_exp(tmp_path, {**BASE, "name": "one", "output": "out"}, "one.yaml")
    assert run("run", first, "--quiet", "--no-report").exit_code == 0
    (tmp_path / "out" / "my-notes.md").write_text("keep me")
    second = write_exp(tmp_path, {**BASE, "name": "two", "output": "out"}, "two.yaml")
    result = run("run", second, "--quiet", "--no-report", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "my-notes.md").read_text() == "keep me"
    assert json.loads((tmp_path / "out" / "experiment.json").read_text())["name"] == "two"


def test_rerun_resumes_in_its_own_folder(data_dir, experiment):
    result = run("run", experiment.parent.parent / "exp.yaml", "--quiet", "--no-report")
    assert result.exit_code == 0, result.output
    assert "0 cell(s) run, 1 already done" in result.output


@pytest.mark.parametrize("damage", [
    b"", b"DUCK", b"\x00" * 4096, os.urandom(20000),
])
def test_a_corrupted_results_store(data_dir, experiment, tmp_path, damage):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(experiment, folder)
    (folder / "results.duckdb").write_bytes(damage)
    before = snapshot(folder)
    refused(run("results", folder), "results.duckdb")
    refused(run("report", folder), "results.duckdb")
    unchanged(folder, before)


def test_a_store_without_advrec_tables(data_dir, experiment, tmp_path):
    import shutil

    import duckdb

    folder = tmp_path / "copy"
    shutil.copytree(experiment, folder)
    (folder / "results.duckdb").unlink()
    con = duckdb.connect(str(folder / "results.duckdb"))
    con.execute("CREATE TABLE something (x INTEGER)")
    con.close()
    before = snapshot(folder)
    refused(run("results", folder), "not an advrec results database")
    unchanged(folder, before)


# ---------------------------------------------------------------------------- options
@pytest.mark.parametrize(("args", "words"), [
    (("train", "bprmf", "--epochs", "2", "--lr", "1e30", "--optimizer", "sgd"),
     ("diverged", "learning rate")),
    (("train", "bprmf", "--device", "tpu9"), ("--device", "tpu9")),
    (("train", "bprmf", "--threads", "-1"), ("--threads", "-1")),
    (("train", "bprmf", "--threads", "0"), ("--threads",)),
    (("train", "bprmf", "--dim", "0"), ("--dim", "got 0")),
    (("train", "bprmf", "--lr", "inf"), ("--lr", "finite", "inf")),
    (("train", "bprmf", "--lr", "nan"), ("--lr", "nan")),
    (("train", "bprmf", "--batch-size", "0"), ("--batch-size",)),
    (("train", "bprmf", "--optimizer", "rmsprop"), ("--optimizer", "rmsprop")),
    (("train", "apr", "--eps", "inf"), ("--eps", "inf")),
    (("train", "itempop", "--epochs", "3"), ("--epochs", "'itempop' does not take it")),
    (("train", "itempop", "--dim", "8"), ("--dim", "does not take it")),
    (("train", "mf", "--valid", "holdout"), ("--valid", "'mf'", "early stopping")),
    (("train", "bprmf", "--valid", "holdout", "--valid-metric", "ndcg@ten"), ("ndcg@ten",)),
    (("train", "bprmf", "--valid", "holdout", "--valid-metric", "gini@10"), ("gini@10",)),
    (("train", "bprmf", "--test-ratio", "1.5", "--split", "holdout"), ("test_ratio",)),
    (("train", "bprmf", "--adversarial", "fgsm"), ("--adversarial",)),
])
def test_train_options(data_dir, tmp_path, args, words):
    before = snapshot(tmp_path)
    refused(run(*args, "--out", tmp_path / "m", "--quiet"), *words)
    unchanged(tmp_path, before)


def test_train_itempop_refuses_init(data_dir, saved_pop, tmp_path):
    refused(run("train", "itempop", "--init", saved_pop, "--out", tmp_path / "m", "--quiet"),
            "--init", "'itempop'")
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def saved_bpr(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "bpr"
    result = run("train", "bprmf", "--epochs", "1", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(("args", "words"), [
    (("--eps", "inf"), ("--eps", "finite", "inf")),
    (("--eps", "nan"), ("--eps", "nan")),
    (("--eps", "-0.5"), ("--eps", "-0.5")),
    (("--method", "pgd", "--steps", "0"), ("--steps", "got 0")),
    (("--method", "pgd", "--step-size", "inf"), ("--step-size", "inf")),
    (("--k", "0"), ("cut-off",)),
])
def test_attack_options(saved_bpr, args, words):
    before = snapshot(saved_bpr)
    refused(run("attack", saved_bpr, *args), *words)
    unchanged(saved_bpr, before)


def test_train_apr_init_from_itempop(data_dir, saved_pop, tmp_path):
    refused(run("train", "apr", "--init", saved_pop, "--epochs", "1", "--out", tmp_path / "m",
                "--quiet"), "--init", "'itempop'", "warm_start")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("args", "words"), [
    (("--sweep", "0.5,inf"), ("--sweep", "inf")),
    (("--sweep", "0.5,-1"), ("--sweep", "-1")),
    (("--attack-eps", "inf"), ("--attack-eps", "inf")),
])
def test_handson_options(data_dir, tmp_path, args, words):
    refused(run("handson", *args, "--out", tmp_path / "h", "--quiet"), *words)
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize("edit", [
    lambda m: {**m, "model": "nosuch"},
    lambda m: {**m, "params": [1, 2]},
    lambda m: {**m, "params": {**m["params"], "bogus": 1}},
    lambda m: {**m, "n_items": -3},
])
def test_evaluate_an_edited_checkpoint(data_dir, saved_bpr, tmp_path, edit):
    import shutil

    folder = tmp_path / "bpr"
    shutil.copytree(saved_bpr, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(edit(manifest)))
    before = snapshot(folder)
    refused(run("evaluate", folder), "manifest.json")
    unchanged(folder, before)


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "validate", tmp_path / "missing.yaml")
    assert result.exit_code != 0
    assert result.exception is not None  # raised, so Python prints the traceback


def test_an_internal_error_is_one_line_with_exit_1(tmp_path, monkeypatch):
    import advrec.experiments.config as config

    def broken(*_a, **_k):
        raise TypeError("something deep went wrong")

    monkeypatch.setattr(config, "load_config", broken)
    result = run("validate", tmp_path / "x.yaml")
    assert result.exit_code == 1
    assert "internal error (TypeError: something deep went wrong)" in result.output
    assert "--debug" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------- umask
def test_written_files_follow_the_umask(data_dir, tmp_path):
    old = os.umask(0o027)
    try:
        assert run("train", "itempop", "--out", tmp_path / "pop", "--quiet").exit_code == 0
    finally:
        os.umask(old)
    folder = tmp_path / "pop"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
