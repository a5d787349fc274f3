"""Your own data, without Python code: a file and its format in an experiment file or on the
command line, with the split options that exist for registered data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from advrec.cli import app
from advrec.data.datasets import load_split
from advrec.data.prepare import DataSpec, prepare
from advrec.errors import ConfigError, ParamError
from advrec.experiments.config import load_config
from advrec.experiments.runner import run_experiment
from advrec.experiments.store import ResultsStore

runner = CliRunner()


def write_csv(path: Path, data_dir: Path, n: int = 20000) -> Path:
    """The first ``n`` ML-100K ratings as the CSV a user might have: own header, commas."""
    lines = (data_dir / "ml-100k" / "u.data").read_text().splitlines()[:n]
    path.write_text("uid,iid,stars,ts\n" + "\n".join(",".join(x.split("\t")) for x in lines))
    return path


OWN = {"format": "delimited",
       "options": {"sep": ",", "header": True, "columns": ["user", "item", "rating", "timestamp"]}}


def test_a_users_csv_runs_end_to_end_from_a_yaml_file(data_dir, tmp_path):
    write_csv(tmp_path / "my ratings.csv", data_dir)
    file = tmp_path / "exp.yaml"
    file.write_text(yaml.safe_dump({
        "name": "own", "data": {"path": "my ratings.csv", "split": "holdout", **OWN},
        "models": [{"name": "itempop"}, {"name": "bprmf", "params": {"epochs": 2}}],
        "attacks": [{"method": "fgsm", "eps": 0.5}], "evaluation": {"ks": [10]}}))
    config = load_config(file)
    assert config.data.dataset == "my ratings.csv"  # labelled by its file name
    assert Path(config.data.path).is_absolute()  # relative to the experiment file
    summary = run_experiment(config)
    assert summary.done_now == 3
    with ResultsStore(summary.output, read_only=True) as store:
        frame = store.frame()
    assert set(frame["model_label"]) == {"itempop", "bprmf"}
    assert frame["hr@10"].between(0, 1).all() and frame["hr@10"].max() > 0.05


def test_the_same_file_through_the_registry_and_as_own_data_gives_one_split(data_dir):
    train, test = load_split("ml-100k", fold="u1")
    own = prepare(DataSpec(dataset="u1", path=str(data_dir / "ml-100k" / "u1.base"),
                           format="ml-100k", test_path=str(data_dir / "ml-100k" / "u1.test"),
                           unseen="keep"))
    assert own.train.shape == train.shape and len(own.test) == len(test)
    assert (own.train.users == train.users).all() and (own.test.items == test.items).all()


@pytest.mark.parametrize(("fields", "error", "words"), [
    ({"format": "ml-100k"}, ConfigError, "give path"),
    ({"path": "x.csv"}, ParamError, "format"),
    ({"path": "x.csv", "format": "excel"}, ParamError, "excel"),
    ({"path": "x.csv", "format": "ml-100k", "fold": "u1"}, ParamError, "fold"),
    ({"path": "x.csv", "format": "ml-100k", "unseen": "ignore"}, ParamError, "unseen"),
])
def test_bad_data_specs(fields, error, words):
    with pytest.raises(error, match=words):
        DataSpec(**fields)


@pytest.mark.parametrize(("data", "words"), [
    ({"path": "missing.csv", "format": "delimited"}, "data.path: "),
    ({"path": "mine.csv", "format": "excel"}, "unknown format"),
    ({"path": "mine.csv", "format": "ml-100k", "options": {"sep": ","}}, "takes no option"),
    ({"path": "mine.csv"}, "needs data.format"),
    ({"format": "ml-100k"}, "give data.path"),
    ({"path": "mine.csv", "format": "ml-100k", "split": "predefined"}, "test_path"),
])
def test_validate_names_what_is_wrong_with_own_data(data_dir, tmp_path, data, words):
    write_csv(tmp_path / "mine.csv", data_dir, n=100)
    file = tmp_path / "exp.yaml"
    file.write_text(yaml.safe_dump({"name": "own", "data": data,
                                    "models": [{"name": "itempop"}]}))
    result = runner.invoke(app, ["validate", str(file)])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_train_and_evaluate_own_data_on_the_command_line(data_dir, tmp_path, monkeypatch):
    write_csv(tmp_path / "mine.csv", data_dir)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "itempop", "--data", "mine.csv", "--format",
                                 "delimited", "--sep", ",", "--header", "--columns",
                                 "user,item,rating,timestamp", "--split", "holdout",
                                 "--out", "pop", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    monkeypatch.chdir(data_dir)  # the saved recipe holds absolute paths
    again = runner.invoke(app, ["evaluate", str(tmp_path / "pop"), "--k", "10", "--k", "100",
                                "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["hr@10"] == pytest.approx(trained["hr@10"])


@pytest.mark.parametrize(("args", "words"), [
    (("--format", "ml-100k"), "give --data"),
    (("--data", "mine.csv"), "--data needs --format"),
    (("--data", "mine.csv", "--format", "ml-100k", "--sep", ","), "takes no option"),
    (("--data", "nope.csv", "--format", "ml-100k"), "nope.csv"),
])
def test_own_data_options_on_the_command_line(data_dir, tmp_path, monkeypatch, args, words):
    write_csv(tmp_path / "mine.csv", data_dir, n=100)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "itempop", *args, "--out", "m", "--quiet"])
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m").exists()
