"""Shilling attacks and defences in experiment files: validation, planning, what a shilling cell
measures on real data (ml-100k), resume, the results table, and the store's schema migration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from advrec.cli import app
from advrec.errors import ConfigError
from advrec.experiments.config import parse_config
from advrec.experiments.runner import plan, run_experiment
from advrec.experiments.store import SCHEMA_VERSION, ResultsStore

BASE = {
    "name": "shill",
    "data": {"dataset": "ml-100k", "fold": "u1"},
    "models": [{"name": "mf", "label": "MF", "params": {"epochs": 5}}],
    "shilling": [{"attack": "average", "size": 0.05, "filler": 0.05, "n_targets": 3}],
    "defenses": ["svm", "pca", "perfect"],
    "evaluation": {"ks": [10], "metrics": ["hr", "ndcg"]},
    "seeds": [0],
}


def config(tmp_path=None, **changes):
    raw = json.loads(json.dumps(BASE))
    raw.update(changes)
    parsed = parse_config(raw)
    return parsed.model_copy(update={"output": str(tmp_path)}) if tmp_path else parsed


def rows_by_defense(folder) -> dict[str | None, dict]:
    with ResultsStore(folder, read_only=True) as store:
        return {r["defense"]: r for r in store.rows(per_user=False)}


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shilling": [{"attack": "sybil"}]}, "shilling.0.attack: unknown shilling attack 'sybil'"),
        ({"shilling": [{"attack": "average", "size": 1.5}]}, "shilling.0.size: must lie in (0, 1)"),
        ({"shilling": [{"attack": "average", "filler": [0.05, 0]}]}, "shilling.0.filler"),
        ({"defenses": ["oracle"]}, "defenses.0.detector: unknown detector 'oracle'"),
        ({"defenses": [{"detector": "svm", "train_attacks": ["x"]}]},
         "defenses.0.train_attacks: unknown injection attack(s) ['x']"),
        ({"defenses": [{"detector": "svm", "features": ["rdma", "zz"]}]},
         "defenses.0.features: unknown feature(s) ['zz']"),
        ({"defenses": [{"detector": "svm", "thresh": 1}]}, "defenses.0.thresh: unknown key"),
        ({"defenses": ["svm", "svm"]}, "each detector once"),
        ({"defenses": [{"detector": "svm", "train_attacks": ["average"]}]},
         "nothing is left to train on when 'average' is the attack tested"),
        ({"shilling": []}, "defenses filter injected profiles: they need shilling attacks"),
    ],
)
def test_bad_shilling_blocks_name_the_key(change, message):
    with pytest.raises(ConfigError) as exc:
        config(**change)
    assert message in str(exc.value)


def test_plan_cells_keys_and_shorthand():
    attacks = [{"attack": "average", "size": [0.01, 0.05]}, {"attack": "random"}]
    the_plan = plan(config(shilling=attacks))
    # one model: clean + 3 shilling variants × (no defence + 3 detectors)
    assert len(the_plan.cells) == 1 + 3 * 4
    shill = [c for c in the_plan.cells if c.scenario == "shilling"]
    assert {c.options["attack"] for c in shill} == {"average", "random"}
    assert sorted({c.options["size"] for c in shill}) == [0.01, 0.05]
    assert len({c.key for c in the_plan.cells}) == len(the_plan.cells)
    # "svm" is shorthand for {"detector": "svm"} with the defaults: same cells, same keys
    svm = {"detector": "svm", "train_sizes": [0.03, 0.1]}
    spelled = plan(config(shilling=attacks, defenses=[svm, "pca", "perfect"]))
    assert [c.key for c in spelled.cells] == [c.key for c in the_plan.cells]
    # a detector option changes only that detector's cells
    svm = {"detector": "svm", "real_split": 0.3}
    changed = plan(config(shilling=attacks, defenses=[svm, "pca", "perfect"]))
    differ = {c.key for c in changed.cells} ^ {c.key for c in the_plan.cells}
    assert len(differ) == 2 * 3  # the three svm cells, old and new keys
    # the profiles' seed offset: 0 is the default (keys as before), another one is other cells
    zero = plan(config(shilling=[{**attacks[0], "profile_seed_offset": 0}, attacks[1]]))
    assert [c.key for c in zero.cells] == [c.key for c in the_plan.cells]
    moved = plan(config(shilling=[{**attacks[0], "profile_seed_offset": 7}, attacks[1]]))
    assert len({c.key for c in moved.cells} - {c.key for c in the_plan.cells}) == 2 * 4
    # a model trained from another is trained again on the poisoned data: it gets cells too
    chained = plan(config(data={"dataset": "movielens-500"}, models=[
        {"name": "bprmf", "label": "BPR", "params": {"epochs": 1}},
        {"name": "apr", "label": "APR", "init": "BPR", "params": {"epochs": 1}}]))
    assert sum(c.scenario == "shilling" for c in chained.cells) == 2 * 4
    # a parameter attack's targets list is one value too, not a grid
    targeted = plan(config(data={"dataset": "movielens-500"}, shilling=[], defenses=[],
                           models=[{"name": "bprmf", "params": {"epochs": 1}}],
                           attacks=[{"method": "fgsm", "targets": [1, 2]}]))
    assert [c.options["targets"] for c in targeted.cells if c.options] == [[1, 2]]


# ---------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def shilling_run(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("shill")
    summary = run_experiment(config(folder))
    return folder, summary


def test_shilling_cells_show_attack_and_defences(shilling_run):
    """ml-100k u1, MF victim, average attack at 5 % size / 5 % filler against 3 targets: the
    attack raises the targets' hit ratio; removing the fakes (perfect) gives back the clean
    model; detectors find most fakes and filtering undoes most of the attack."""
    folder, summary = shilling_run
    assert summary.total == 5 and summary.done_now == 5
    rows = rows_by_defense(folder)
    clean, attacked = rows[None], rows["none"]
    assert clean["attack"] == "none" and clean["scenario"] == "clean"
    assert attacked["attack"] == "average" and attacked["scenario"] == "shilling"
    m = attacked["metrics"]
    assert m["target_hr@10_before"] < 0.01 < m["target_hr@10"]  # the attack works
    assert attacked["detection"] is None and attacked["eps"] is None
    assert len(attacked["attack_config"]["targets"]) == 3
    perfect = rows["perfect"]
    assert perfect["metrics"]["target_hr@10"] <= m["target_hr@10_before"] + 0.005
    # perfect removal gives back the clean data (fake ids leave the id space): the clean model
    assert {k: perfect["metrics"][k] for k in clean["metrics"]} == clean["metrics"]
    assert perfect["detection"]["recall"] == 1.0 and perfect["detection"]["removed_real"] == 0
    for name in ("svm", "pca"):
        det = rows[name]["detection"]
        assert det["detector"] == name and det["n_fake"] == 47
        assert det["recall"] >= 0.7 and det["precision"] >= 0.8 and det["roc_auc"] > 0.95
        assert rows[name]["metrics"]["target_hr@10"] < m["target_hr@10"] / 2
        assert len(det["roc_curve"]["fpr"]) == len(det["roc_curve"]["tpr"]) > 2
        assert {"rdma", "wdma"} <= set(det["features"])
        hist = det["features"]["rdma"]
        assert len(hist["edges"]) == len(hist["real"]) + 1
        assert sum(hist["fake"]) == pytest.approx(1.0)


def test_rerun_and_a_new_defence_train_nothing_again(shilling_run, tmp_path):
    folder, _ = shilling_run
    again = run_experiment(config(folder))
    assert again.done_now == 0
    more = run_experiment(config(folder, defenses=["svm", "pca", "perfect", "rule"]))
    assert more.done_now == 1 and more.models_trained == 0
    assert "rule" in rows_by_defense(folder)


def test_results_table_groups_by_defence(shilling_run):
    folder, _ = shilling_run
    result = CliRunner().invoke(app, ["results", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert {"defense", "size", "filler"} <= set(records[0])
    by = {r["defense"]: r for r in records}
    assert by["perfect"]["detect_recall_mean"] == 1.0
    assert by["none"]["target_hr@10_mean"] > by["perfect"]["target_hr@10_mean"]
    result = CliRunner().invoke(app, ["results", str(folder), "--where", "defense=pca",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert [r["defense"] for r in json.loads(result.output)] == ["pca"]


def test_implicit_data_and_init_chain(tmp_path, data_dir):
    """Binarized data (no ratings): the implicit attack variant, fixed targets, and only the
    ``perfect`` defence (detectors read ratings: a clear error before any cell runs). APR starts
    from a BPR-MF that is itself trained again on the poisoned data."""
    models = [{"name": "bprmf", "label": "BPR", "params": {"epochs": 1}},
              {"name": "apr", "label": "APR", "init": "BPR", "params": {"epochs": 1, "eps": 0.5}}]
    data = {"dataset": "movielens-500", "binarize": 1}
    with pytest.raises(ConfigError, match="defenses: pca read rating profiles"):
        run_experiment(config(tmp_path / "pca", data=data, defenses=["pca"], models=models))
    shilling = [{"attack": "average", "targets": [1, 2]}]
    cfg = config(tmp_path, data=data, defenses=["perfect"], models=models, shilling=shilling)
    summary = run_experiment(cfg)
    assert summary.done_now == 2 * 3  # targets: [1, 2] is one value, not a grid
    with ResultsStore(tmp_path, read_only=True) as store:
        rows = store.rows(per_user=False)
    shill = [r for r in rows if r["defense"] is not None]
    assert {r["attack_config"]["targets"] == [1, 2] for r in shill} == {True}
    perfect = [r for r in shill if r["defense"] == "perfect"]
    assert len(perfect) == 2
    assert all(r["detection"]["recall"] == 1 and "features" not in r["detection"]
               for r in perfect)


# ---------------------------------------------------------------------------- store
def test_schema_1_store_gains_the_shilling_and_scenario_columns(tmp_path):
    import duckdb

    con = duckdb.connect(str(tmp_path / "results.duckdb"))
    con.execute("CREATE TABLE cells (key VARCHAR PRIMARY KEY, experiment VARCHAR, "
                "model_key VARCHAR, model_label VARCHAR, model_name VARCHAR, seed INTEGER, "
                "attack VARCHAR, eps DOUBLE, attack_config VARCHAR, config VARCHAR, "
                "metrics VARCHAR, per_user VARCHAR, history VARCHAR, timings VARCHAR, "
                "versions VARCHAR, status VARCHAR, created TIMESTAMP)")
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO cells VALUES ('k', 'e', 'm', 'M', 'mf', 0, 'none', NULL, 'null', "
                "'{}', '{\"hr@10\": 0.5}', '{}', '[]', '{}', '{}', 'done', now())")
    con.execute("INSERT INTO cells VALUES ('s', 'e', 'm', 'M', 'mf', 0, 'shill:average', NULL, "
                "'{}', '{}', '{\"hr@10\": 0.4}', '{}', '[]', '{}', '{}', 'done', now())")
    con.close()
    expected = {"k": ("clean", "none"), "s": ("shilling", "average")}
    with ResultsStore(tmp_path, read_only=True) as store:  # read as is, new columns None
        rows = store.rows()
        assert rows[0]["defense"] is None and rows[0]["metrics"] == {"hr@10": 0.5}
        assert {r["key"]: (r["scenario"], r["attack"]) for r in rows} == expected
    with ResultsStore(tmp_path) as store:  # opened for writing: migrated
        rows = store.rows()
        assert rows[0]["metrics"] == {"hr@10": 0.5}
        assert rows[0]["defense"] is None and rows[0]["detection"] is None
        assert {r["key"]: (r["scenario"], r["attack"]) for r in rows} == expected
        version = store.con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == 3


def test_profile_seed_offset_draws_other_profiles_with_the_same_targets():
    from advrec.experiments.context import Context

    ctx = Context(config(data={"dataset": "movielens-500"}))
    attack = {"attack": "random", "size": 0.05, "filler": 0.05, "n_targets": 2,
              "target_strategy": "quantile", "intent": "push"}
    base, targets, _ = ctx.poisoned(0, attack)
    moved, moved_targets, _ = ctx.poisoned(0, {**attack, "profile_seed_offset": 3})
    assert moved_targets == targets and moved.n_users == base.n_users
    assert not np.array_equal(moved.items, base.items)
