"""Every injection attack by name, fake profiles written and read back (``--save``,
``--profiles``, the ``file`` attack, an experiment's ``profiles/`` folder), and the experiment
config of optimised attacks (``params``, ``filler: null``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from advrec.attacks.injection import (
    ProfileFile,
    attack_class,
    make_injection,
    read_profiles,
    save_profiles,
)
from advrec.attacks.shilling import make_attack
from advrec.cli import app
from advrec.data.datasets import load_split
from advrec.errors import ConfigError, DataError
from advrec.experiments.config import parse_config
from advrec.vocabulary import INJECTION_ATTACKS, SHILLING_ATTACKS

runner = CliRunner()


@pytest.fixture(scope="module")
def train(data_dir):
    return load_split("ml-100k", fold="u1")[0]


def same_interactions(a, b) -> None:
    for name in ("users", "items", "user_ids", "item_ids", "ratings", "timestamps"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)
            assert x.dtype == y.dtype, name


# ---------------------------------------------------------------------------- registry
def test_every_name_has_a_class():
    for name in SHILLING_ATTACKS:
        assert attack_class(name).name == name
    assert attack_class("file") is ProfileFile
    assert set(INJECTION_ATTACKS) >= set(SHILLING_ATTACKS) | {"file"}
    with pytest.raises(ConfigError, match="unknown injection attack 'sybil'"):
        attack_class("sybil")
    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['k'\]"):
        make_injection("average", k=3)


# ---------------------------------------------------------------------------- files
def test_saved_profiles_read_back_exactly(train, tmp_path):
    fake = make_attack("average", size=0.03, filler=0.02).generate(train, [50, 181], seed=4)
    path = save_profiles(fake, tmp_path / "fake.tsv")
    assert path.read_text().splitlines()[0] == "user\titem\trating\ttimestamp"
    again = ProfileFile(path=str(path)).generate(train, [50, 181])
    same_interactions(again, fake)
    same_interactions(train.concat(again), train.concat(fake))
    assert ProfileFile(path=str(path)).n_fake(train) == len(fake.active_users)


def test_bad_profile_files_name_the_file(train, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("u\ti\n1\t2\n")
    with pytest.raises(DataError, match=r"bad.tsv, line 1: expected a header"):
        read_profiles(bad)
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("user\titem\trating\nx\t99999\t5\n")
    with pytest.raises(DataError, match=r"unknown.tsv: item id\(s\) \[99999\] are not in the "):
        ProfileFile(path=str(unknown)).generate(train, [50])
    unrated = tmp_path / "unrated.tsv"
    unrated.write_text("user\titem\nx\t50\n")
    with pytest.raises(DataError, match="carry no ratings but the data has ratings"):
        ProfileFile(path=str(unrated)).generate(train, [50])
    with pytest.raises(DataError, match="missing.tsv"):
        ProfileFile(path=str(tmp_path / "missing.tsv")).generate(train, [50])
    with pytest.raises(ConfigError, match="needs path"):
        ProfileFile()


# ---------------------------------------------------------------------------- config
BASE = {"name": "inj", "data": {"dataset": "ml-100k", "fold": "u1"},
        "models": [{"name": "itempop"}], "seeds": [0]}


def config(**shilling):
    return parse_config({**BASE, "shilling": [shilling]})


def test_config_of_injection_entries(tmp_path):
    f = tmp_path / "f.tsv"
    entry = config(attack="file", params={"path": str(f)}, targets=[50]).shilling[0]
    assert entry.params == {"path": str(f)}
    with pytest.raises(ConfigError, match=r"shilling\.0.*filler: the average attack needs a "):
        config(attack="average", filler=None)
    with pytest.raises(ConfigError, match=r"shilling\.0.*no parameter\(s\) \['depth'\]"):
        config(attack="file", params={"path": "x", "depth": 2})
    with pytest.raises(ConfigError, match=r"params: \['size'\] are options of the entry"):
        config(attack="file", params={"path": "x", "size": 0.1})


# ---------------------------------------------------------------------------- CLI
def test_shill_saves_profiles_and_injects_them_again(data_dir, tmp_path):
    common = ["--size", "0.05", "--targets", "50,181", "--json", "-q"]
    first = runner.invoke(app, ["shill", "itemknn", "--attack", "average", *common,
                                "--out", str(tmp_path / "a"), "--save", str(tmp_path / "fake")])
    assert first.exit_code == 0, first.output
    row = json.loads(first.stdout)[0]
    saved = tmp_path / "fake" / "average-size0.05.tsv"
    assert row["saved_profiles"] == str(saved) and saved.is_file()
    assert (tmp_path / "a" / row["profiles"]).read_bytes() == saved.read_bytes()
    # the saved profiles, injected from the file, move the targets exactly as the attack did
    again = runner.invoke(app, ["shill", "itemknn", "--attack", "average", *common,
                                "--out", str(tmp_path / "b"), "--profiles", str(saved)])
    assert again.exit_code == 0, again.output
    rows = {r["attack"]: r for r in json.loads(again.stdout)}
    assert set(rows) == {"average", "file"}
    for key in ("hr@10_after", "mean_rank_after", "n_fake"):
        assert rows["file"][key] == rows["average"][key] == row[key]
    # --save refuses a folder advrec did not write; --profiles wants the targets
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["shill", "itemknn", *common, "--out", str(tmp_path / "c"),
                                  "--save", str(tmp_path / "mine")])
    assert refused.exit_code == 2 and "--save" in refused.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    no_targets = runner.invoke(app, ["shill", "itemknn", "--profiles", str(saved), "-q",
                                     "--out", str(tmp_path / "d")])
    assert no_targets.exit_code == 2 and "--targets" in no_targets.output
    stray = runner.invoke(app, ["shill", "itemknn", "--attack-param", "surrogate=wmf", "-q",
                                "--out", str(tmp_path / "e")])
    assert stray.exit_code == 2 and "optimised attacks" in stray.output


def test_shill_runs_an_optimised_attack_and_keeps_its_profiles(data_dir, tmp_path):
    cheap = ["--attack-param", "adv_epochs=2", "--attack-param", "surrogate_epochs=3",
             "--attack-param", "unroll_steps=1", "--attack-param", "n_factors=8"]
    args = ["shill", "itemknn", "--attack", "revadv", "--size", "0.01", "--targets", "50",
            *cheap, "--json", "-q", "--out", str(tmp_path / "s")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    row = json.loads(first.stdout)[0]
    assert row["attack"] == "revadv" and row["surrogate"] == "wmf" and row["n_fake"] == 9
    assert row["knowledge"].startswith("grey box: surrogate wmf")
    assert row["filler"] is None  # a real user's average profile, the optimised default
    kept = tmp_path / "s" / row["profiles"]
    lines = kept.read_text().splitlines()
    assert lines[0] == "user\titem\trating\ttimestamp" and len(lines) > 1
    assert {ln.split("\t")[2] for ln in lines[1:]} == {"5.0"}  # rated data: the top rating
    again = runner.invoke(app, args)  # resumes: the same row, the profiles read back
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)[0]["hr@10_after"] == row["hr@10_after"]
    bad = runner.invoke(app, ["shill", "itemknn", "--attack", "revadv", "--attack-param",
                              "surrogate=itempop", "-q", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "cannot optimise against surrogate 'itempop'" in bad.output
    assert "Traceback" not in bad.output
