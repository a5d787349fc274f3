"""The `advrec` command end to end on real data, and its handling of bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from advrec.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    "command", ["datasets", "fetch", "train", "evaluate", "attack", "handson", "demo"]
)
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_datasets_lists_local_sets(data_dir):
    result = run("datasets", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["datasets"]}
    assert rows["movielens-500"]["users"] == 500
    assert rows["movielens-500"]["items"] == 3172
    assert rows["ml-1m-implicit"]["interactions"] == 1_000_209


def test_train_then_evaluate_round_trip(data_dir, tmp_path):
    out = tmp_path / "bpr"
    result = run("train", "bprmf", "--dataset", "movielens-500", "--epochs", "5", "--out",
                 str(out), "--quiet", "--json")
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert 0.25 <= trained["hr@100"] <= 0.33
    result = run("evaluate", str(out), "--k", "10", "--k", "100", "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["hr@100"] == pytest.approx(trained["hr@100"])
    assert evaluated["ndcg@100"] == pytest.approx(trained["ndcg@100"])
    sampled = json.loads(run("evaluate", str(out), "--protocol", "sampled", "--json").stdout)
    assert sampled["hr@10"] > evaluated["hr@10"]  # 99 sampled negatives are an easier task


def test_train_with_early_stopping_and_holdout(data_dir, tmp_path):
    result = run("train", "bprmf", "--dataset", "ml-latest-small", "--split", "holdout",
                 "--valid", "holdout", "--patience", "2", "--epochs", "6", "--out",
                 str(tmp_path / "m"), "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert 0 < json.loads(result.stdout)["recall@100"] <= 1


def test_itempop_trains(data_dir, tmp_path):
    result = run("train", "itempop", "--out", str(tmp_path / "pop"), "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hr@100"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "bprmf", "--dataset", "no-such-set", "--out", "X"), "no-such-set"),
        (("train", "xyz", "--out", "X"), "unknown model 'xyz'"),
        (("train", "bprmf", "--patience", "3", "--out", "X"), "--patience needs a validation"),
        (("train", "bprmf", "--split", "predefined", "--dataset", "ml-latest-small", "--out", "X"),
         "no predefined split"),
        (("train", "bprmf", "--epochs", "1", "--lr", "-1", "--out", "X"), "--lr: must be > 0"),
        (("evaluate", "NOPE"), "not a saved advrec model"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(data_dir, tmp_path, args, message):
    args = tuple(str(tmp_path / a) if a in ("X", "NOPE") else a for a in args)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "X").exists()  # nothing half-written


def test_unreadable_checkpoint(data_dir, tmp_path):
    out = tmp_path / "pop"
    assert run("train", "itempop", "--out", str(out), "--quiet").exit_code == 0
    (out / "state.safetensors").write_bytes(b"\x00" * 10)
    result = run("evaluate", str(out))
    assert result.exit_code == 2
    assert "unreadable model state" in result.output


@pytest.fixture(scope="module")
def trained_bpr(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "bpr"
    result = run("train", "bprmf", "--epochs", "5", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_attack_reports_before_after_and_changes(trained_bpr):
    fgsm = json.loads(run("attack", str(trained_bpr), "--eps", "0.5", "--json").stdout)
    rnd = json.loads(run("attack", str(trained_bpr), "--method", "random", "--eps", "0.5",
                         "--json").stdout)
    assert fgsm["before"] == rnd["before"]
    assert fgsm["relative_change"]["ndcg@100"] < 3 * rnd["relative_change"]["ndcg@100"] < 0
    assert fgsm["p_value"]["ndcg@100"] < 0.01
    table = run("attack", str(trained_bpr), "--method", "pgd", "--steps", "2", "--block", "item")
    assert table.exit_code == 0 and "pgd" in table.output


def test_targeted_attack_on_the_cli(trained_bpr):
    result = run("attack", str(trained_bpr), "--targets", "100,200", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    targets = report["targets"]
    assert targets["after"]["target_hr@100"] > targets["before"]["target_hr@100"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--eps", "0"), "--eps: must be > 0"),
     (("--targets", "999999"), "unknown item id"),
     (("--targets", "abc"), "integer item ids"),
     (("--method", "random", "--targets", "5"), "no targets")],
)
def test_attack_bad_input(trained_bpr, args, message):
    result = run("attack", str(trained_bpr), *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_attack_refuses_itempop(data_dir, tmp_path):
    out = tmp_path / "pop"
    assert run("train", "itempop", "--out", str(out), "--quiet").exit_code == 0
    result = run("attack", str(out))
    assert result.exit_code == 2 and "no parameter blocks" in result.output


def test_train_apr_from_a_saved_bprmf(trained_bpr, tmp_path):
    out = tmp_path / "apr"
    result = run("train", "bprmf", "--adversarial", "apr", "--eps", "0.5", "--adv-reg", "1",
                 "--init", str(trained_bpr), "--epochs", "3", "--out", str(out), "--quiet",
                 "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "apr" and manifest["params"]["eps"] == 0.5
    assert run("attack", str(out), "--json").exit_code == 0


def test_handson_end_to_end(data_dir, tmp_path):
    result = run("handson", "--apr-epochs", "3", "--sweep", "0.5,1", "--out", str(tmp_path),
                 "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["model"] for s in report["stages"]] == ["BPR-MF", "APR", "BPR-MF longer"]
    assert {(r["model"], r["method"], r["eps"]) for r in report["sweep"]} >= {
        ("APR", "fgsm", 0.5), ("BPR-MF", "random", 1.0)}
    for name in ("results.json", "sweep.png", "sweep.svg"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    table = run("handson", "--apr-epochs", "0", "--sweep", "0.5", "--out", str(tmp_path / "t"))
    assert table.exit_code == 0 and "BPR-MF" in table.output


def test_handson_bad_sweep(data_dir, tmp_path):
    result = run("handson", "--sweep", "a,b", "--out", str(tmp_path))
    assert result.exit_code == 2 and "--sweep" in result.output


def test_shill_end_to_end(data_dir, tmp_path):
    result = run("shill", "mf", "itempop", "--attack", "average", "--size", "0.1",
                 "--plot", str(tmp_path / "hr.png"), "--json", "--out", str(tmp_path / "study"))
    assert result.exit_code == 0, result.output
    rows = {r["victim"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"mf", "itempop"}
    mf = rows["mf"]
    assert mf["hr@10_after"] > mf["hr@10_before"] and mf["hr@10_p"] < 0.01
    assert mf["mean_rank_after"] < mf["mean_rank_before"]
    assert (tmp_path / "hr.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "study" / "report.html").is_file()  # a preset: an experiment folder
    bad = run("shill", "itempop", "--size", "0", "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_detect_end_to_end(data_dir, tmp_path):
    result = run("detect", "--attack", "average", "--attack", "random", "--attack", "bandwagon",
                 "--detector", "pca", "--victim", "none", "--json", "--out", str(tmp_path / "d"))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["held_out"] for r in rows} == {"average", "random", "bandwagon"}
    assert all(r["recall"] > 0.9 for r in rows if r["held_out"] != "segment")


def test_detect_plots(data_dir, tmp_path):
    table = run("detect", "--attack", "average", "--attack", "random", "--detector", "pca",
                "--victim", "none", "--plot", str(tmp_path / "plots"), "--out",
                str(tmp_path / "d"))
    assert table.exit_code == 0 and "average" in table.output
    assert (tmp_path / "d" / "report.html").is_file()  # a preset: an experiment folder
    tmp_path = tmp_path / "plots"
    for name in ("roc.png", "pr.png", "features.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
