"""Experiment files: validation, grid expansion and hashing, the runner, resume after a kill,
local vs Ray executors, and the results store's refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advrec.cli import app
from advrec.errors import ConfigError
from advrec.experiments.config import canonical_hash, expand, load_config, parse_config
from advrec.experiments.runner import plan, run_experiment
from advrec.experiments.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]

SMALL = {
    "name": "small",
    "data": {"dataset": "movielens-500"},
    "models": [
        {"name": "bprmf", "label": "BPR", "params": {"epochs": 2}},
        {"name": "apr", "label": "APR", "init": "BPR", "params": {"epochs": 2, "eps": 0.5}},
        {"name": "itempop"},
    ],
    "attacks": [{"method": "fgsm", "eps": [0.5, 1.0]}, {"method": "random", "eps": 0.5}],
    "evaluation": {"ks": [10], "metrics": ["hr", "ndcg", "auc"]},
    "seeds": [0, 1],
}


def small(tmp_path: Path, **changes):
    raw = json.loads(json.dumps(SMALL))
    raw.update(changes)
    return parse_config(raw).model_copy(update={"output": str(tmp_path)})


def table(folder) -> dict[str, dict]:
    with ResultsStore(folder, read_only=True) as store:
        return {r["key"]: r["metrics"] for r in store.rows(per_user=False)}


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": [{"name": "bprmf", "params": {"epoch": 3}}]},
         "models.0: unknown parameter(s) ['epoch']"),
        ({"models": [{"name": "svd"}]}, "models.0.name: unknown model 'svd'"),
        ({"attacks": [{"method": "deepfool"}]}, "attacks.0.method"),
        ({"attacks": [{"method": "fgsm", "eps": [0.5, -1]}]}, "eps must be positive"),
        ({"data": {"split": "weird"}}, "data.split"),
        ({"data": {"datset": "x"}}, "data.datset: unknown key"),
        ({"models": []}, "models"),
        ({"seeds": "zero"}, "seeds"),
        ({"models": [{"name": "apr", "init": "nothing"}]}, "'nothing' must be the label"),
        ({"models": [{"name": "bprmf"}, {"name": "bprmf"}]}, "labels must be unique"),
    ],
)
def test_bad_files_name_the_key(change, message):
    raw = {**SMALL, **change}
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert message in str(exc.value)


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_examples_validate():
    for name, cells in (("handson.yaml", 9), ("robustness-sweep.yaml", 78),
                        ("deep-victims.yaml", 8 * 9),
                        ("poisoning.yaml", 5 * (1 + 9 * 3)),
                        ("poisoning-defences.yaml", 2 * (1 + 3 * 5)),
                        ("content.yaml", 1 + 2 * (1 + 2 * 4 + 2 * 3 * 2)),
                        ("aush-filmtrust.yaml", 3 * (1 + 4 * 2)),
                        ("aush-automotive.yaml", 3 * (1 + 4 * 2))):
        config = load_config(REPO / "examples" / name)
        assert len(plan(config).cells) == cells
        assert Path(config.output).parent == REPO / "examples" / "runs"


def test_grid_expansion():
    grid = expand({"lr": [0.01, 0.1], "eps": [0.5, 1.0], "reg": 0.0})
    assert grid == [{"lr": 0.01, "eps": 0.5, "reg": 0.0}, {"lr": 0.01, "eps": 1.0, "reg": 0.0},
                    {"lr": 0.1, "eps": 0.5, "reg": 0.0}, {"lr": 0.1, "eps": 1.0, "reg": 0.0}]
    assert expand({"adv_blocks": ["user", "item"]}, {"adv_blocks"}) == [
        {"adv_blocks": ["user", "item"]}]
    assert len(expand({"adv_blocks": [["user"], ["item"]]}, {"adv_blocks"})) == 2
    with pytest.raises(ConfigError, match="zero cells"):
        expand({"eps": []})


def test_plan_counts_and_shares_models(tmp_path):
    the_plan = plan(small(tmp_path))
    # per seed: BPR and APR get clean + 3 attacks, ItemPop clean only
    assert len(the_plan.cells) == 2 * (4 + 4 + 1)
    assert len(the_plan.jobs) == 2 * 3
    apr = [j for j in the_plan.jobs if j.label == "APR"]
    assert all(the_plan.job(j.init_key).label == "BPR" for j in apr)
    grid = small(tmp_path, models=[{"name": "bprmf", "params": {"epochs": [1, 2]}}])
    labels = {j.label for j in plan(grid).jobs}
    assert labels == {"bprmf[epochs=1]", "bprmf[epochs=2]"}


def test_hash_changes_only_with_what_matters(tmp_path):
    base = {c.key for c in plan(small(tmp_path)).cells}
    cosmetic = small(tmp_path / "other", name="renamed", description="words", workers=2,
                     executor="ray")
    assert {c.key for c in plan(cosmetic).cells} == base
    relabelled = json.loads(json.dumps(SMALL))
    relabelled["models"][0]["label"] = "Plain"
    relabelled["models"][1]["init"] = "Plain"
    assert {c.key for c in plan(parse_config(relabelled)).cells} == base
    for change in ({"data": {"dataset": "movielens-500", "split": "leave-one-out"}},
                   {"evaluation": {"ks": [20]}},
                   {"seeds": [0, 2]}):
        assert {c.key for c in plan(small(tmp_path, **change)).cells} != base
    lr = json.loads(json.dumps(SMALL))
    lr["models"][0]["params"]["lr"] = 0.01
    changed = {c.key for c in plan(parse_config(lr)).cells}
    assert changed != base
    # ItemPop's cells do not depend on BPR's learning rate; APR's do (it starts from BPR)
    assert len(base & changed) == 2
    assert canonical_hash({"a": 1, "b": 2}) == canonical_hash({"b": 2, "a": 1})


# ---------------------------------------------------------------------------- runner
def test_run_skips_finished_cells_and_reuses_models(tmp_path):
    config = small(tmp_path)
    first = run_experiment(config)
    assert first.done_now == 18 and first.models_trained == 6
    again = run_experiment(config)
    assert again.done_now == 0 and again.done_before == 18
    rows = ResultsStore(tmp_path, read_only=True).rows()
    by = {(r["model_label"], r["seed"], r["attack"], r["eps"]): r for r in rows}
    clean, attacked = by[("BPR", 0, "none", None)], by[("BPR", 0, "fgsm", 1.0)]
    assert attacked["metrics"]["ndcg@10"] < clean["metrics"]["ndcg@10"]
    assert clean["history"] and attacked["history"] == []
    assert len(clean["per_user"]["users"]) == 500 and len(clean["per_user"]["ndcg@10"]) == 500
    assert clean["versions"]["advrec"] and clean["config"]["model"]["seed"] == 0
    # a new attack re-uses the trained models: only the new cells run, no model is retrained
    more = small(tmp_path, attacks=SMALL["attacks"] + [{"method": "fgsm", "eps": 2.0}])
    extra = run_experiment(more)
    assert extra.done_now == 4 and extra.models_trained == 0


_CHILD = textwrap.dedent("""
    import sys, json
    from advrec.experiments.config import parse_config
    from advrec.experiments.runner import run_experiment
    raw = json.loads(sys.argv[1])
    config = parse_config(raw).model_copy(update={"output": sys.argv[2]})
    run_experiment(config, log=lambda m: print(m, flush=True))
""")


def test_resume_after_kill_gives_the_uninterrupted_table(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(SMALL), str(killed)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    done = 0
    for line in proc.stdout:
        done += line.startswith("done:")
        if done == 5:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    partial = table(killed)
    assert 5 <= len(partial) < 18
    resumed = run_experiment(small(killed))
    assert resumed.done_before == len(partial)
    run_experiment(small(clean))
    assert table(killed) == table(clean)


def test_local_and_ray_executors_agree(tmp_path):
    pytest.importorskip("ray")
    config = small(tmp_path / "local", seeds=[0], attacks=[{"method": "fgsm", "eps": 0.5}])
    run_experiment(config)
    ray_config = config.model_copy(update={"output": str(tmp_path / "ray"), "workers": 2})
    summary = run_experiment(ray_config, executor="ray")
    assert summary.done_now == 5
    assert table(tmp_path / "ray") == table(tmp_path / "local")


# ---------------------------------------------------------------------------- store
def test_store_refuses_incompatible_and_locked(tmp_path):
    store = ResultsStore(tmp_path)
    store.con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(ConfigError, match="incompatible advrec"):
        ResultsStore(tmp_path)
    with pytest.raises(ConfigError, match="no results here"):
        ResultsStore(tmp_path / "empty", read_only=True)
    other = tmp_path / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(30)", str(other / "results.duckdb")],
        stdout=subprocess.PIPE, text=True)
    other.mkdir()
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConfigError, match="locked by another process"):
            ResultsStore(other)
    finally:
        holder.kill()
        holder.wait()


def test_failed_write_leaves_no_row(tmp_path):
    import duckdb

    from advrec.experiments.cells import CellResult

    bad = CellResult(key="x", experiment="e", model_key="m", model_label="m", model_name="m",
                     seed="not a number", scenario="clean", attack="none", eps=None,
                     attack_config=None, config={}, metrics={}, per_user={}, history=[],
                     timings={}, versions={})
    with ResultsStore(tmp_path) as store:
        with pytest.raises(TypeError, match="CellResult"):
            store.write({"key": "x"})
        with pytest.raises(duckdb.Error):  # the INSERT fails half-way: rolled back
            store.write(bad)
        assert store.done_keys() == set()


# ---------------------------------------------------------------------------- CLI
runner = CliRunner()


def test_cli_validate_run_results(tmp_path):
    path = tmp_path / "exp.yaml"
    raw = {**SMALL, "seeds": [0], "output": "out"}
    path.write_text(json.dumps(raw))  # JSON is YAML
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "9 cell(s)" in result.output
    result = runner.invoke(app, ["run", str(path), "--quiet", "--no-report"])
    assert result.exit_code == 0, result.output
    assert "9 cell(s) run" in result.output
    result = runner.invoke(app, ["results", str(tmp_path / "out"), "--json",
                                 "--where", "attack=fgsm", "--csv", str(tmp_path / "r.csv"),
                                 "--parquet", str(tmp_path / "r.parquet")])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {r["model_label"] for r in records} == {"BPR", "APR"}
    assert (tmp_path / "r.csv").read_text().count("\n") == 1 + 4
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "r.parquet")) == 4


def test_cli_bad_experiment_inputs(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodels:\n  - name: bprmf\n    params: {epoch: 3}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "models.0" in result.output
    path.write_text("name: x\ndata: {dataset: nope}\nmodels:\n  - name: bprmf\n")
    result = runner.invoke(app, ["run", str(path), "--quiet"])
    assert result.exit_code == 2 and "nope" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["results", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no results here" in result.output


def test_spelled_out_defaults_and_significance_do_not_change_the_hash(tmp_path):
    base = {c.key for c in plan(small(tmp_path)).cells}
    spelled = json.loads(json.dumps(SMALL))
    spelled["models"][0]["params"].update(lr=0.05, n_factors=64)  # BPRMF's defaults
    spelled["evaluation"]["significance"] = "wilcoxon"
    assert {c.key for c in plan(parse_config(spelled)).cells} == base


def test_gan_models_choose_their_epoch_on_their_own_holdout_in_cells(data_dir, tmp_path):
    """CFGAN takes a validation callable; the context builds it from the model's hold-out."""
    config = parse_config({"name": "gan", "data": {"dataset": "cfgan-ml100k"},
                           "models": [{"name": "cfgan", "params": {"epochs": 2}}],
                           "evaluation": {"ks": [10]}, "output": str(tmp_path / "out")})
    summary = run_experiment(config)
    with ResultsStore(summary.output, read_only=True) as store:
        (row,) = store.rows()
    assert row["model_name"] == "cfgan" and 0 < row["metrics"]["hr@10"] <= 1
    assert len(row["history"]) == 2  # one validation per epoch


def test_an_attack_on_a_named_block_has_cells_for_the_models_that_have_it():
    from advrec.experiments.planning import preflight

    raw = {"name": "blocks", "data": {"dataset": "movielens-500"},
           "models": [{"name": "bprmf", "label": "B", "params": {"epochs": 1}},
                      {"name": "gmf", "label": "G", "params": {"epochs": 1}}],
           "attacks": [{"method": "fgsm", "eps": 0.5, "blocks": ["gmf_user", "both"]}],
           "evaluation": {"ks": [10]}}
    the_plan = plan(parse_config(raw))
    attacked = [(c.model_key, c.options["blocks"]) for c in the_plan.cells
                if c.scenario == "perturbation"]
    by_label = {j.key: j.label for j in the_plan.jobs}
    assert sorted((by_label[k], b) for k, b in attacked) == [
        ("B", "both"), ("G", "both"), ("G", "gmf_user")]
    raw["attacks"][0]["blocks"] = "encoder"
    with pytest.raises(ConfigError, match=r"attacks\.0\.blocks: unknown block 'encoder'"):
        preflight(parse_config(raw))
