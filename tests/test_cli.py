"""The `advrec` command end to end on real data, and its handling of bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from advrec.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("command", ["datasets", "fetch", "train", "evaluate", "demo"])
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
        (("train", "bprmf", "--epochs", "1", "--lr", "-1", "--out", "X"), "lr must be positive"),
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
