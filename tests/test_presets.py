"""Presets run on the experiment engine and print what the former pipelines printed.

The numbers pinned here are those of the hands-on pipeline before it became a preset (advrec at
commit 004dd69, `advrec handson --apr-epochs 3 --sweep 0.25,1`, seed 0, movielens-500), to six
decimals.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from advrec.cli import app
from advrec.experiments.store import ResultsStore

STAGES = {  # model: (epochs, ndcg@100, ndcg@100 attacked, p of the nDCG change, hr@100, auc)
    "BPR-MF": (5, 0.06951, 0.055811, 0.00078, 0.278, 0.819293),
    "APR": (8, 0.065793, 0.05558, 0.001298, 0.26, 0.826045),
    "BPR-MF longer": (8, 0.069234, 0.055478, 0.000523, 0.282, 0.841751),
}
SWEEP = {  # (model, method, ε): (ndcg@100 attacked, relative change)
    ("BPR-MF", "fgsm", 0.25): (0.061599, -0.113814), ("BPR-MF", "fgsm", 1.0): (0.043587, -0.372935),
    ("BPR-MF", "random", 0.25): (0.067203, -0.033187),
    ("BPR-MF", "random", 1.0): (0.063952, -0.079961),
    ("APR", "fgsm", 0.25): (0.062071, -0.056571), ("APR", "fgsm", 1.0): (0.043001, -0.346419),
    ("APR", "random", 0.25): (0.065706, -0.001315), ("APR", "random", 1.0): (0.063983, -0.027501),
    ("BPR-MF longer", "fgsm", 0.25): (0.064037, -0.075066),
    ("BPR-MF longer", "fgsm", 1.0): (0.046051, -0.334851),
    ("BPR-MF longer", "random", 0.25): (0.06502, -0.060866),
    ("BPR-MF longer", "random", 1.0): (0.063735, -0.079429),
}


@pytest.fixture(scope="module")
def handson(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("handson") / "run"
    result = CliRunner().invoke(app, ["handson", "--apr-epochs", "3", "--sweep", "0.25,1",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_handson_numbers_are_those_of_the_former_pipeline(handson):
    _, report = handson
    got = {s["model"]: (s["epochs"], s["ndcg@100"], s["ndcg@100_attacked"], s["ndcg@100_p"],
                        s["hr@100"], s["auc"]) for s in report["stages"]}
    assert list(got) == list(STAGES)
    for model, values in STAGES.items():
        assert got[model][0] == values[0]
        assert got[model][1:] == pytest.approx(values[1:], abs=5e-6), model
    sweep = {(r["model"], r["method"], r["eps"]): (r["ndcg@100_attacked"], r["ndcg@100_change"])
             for r in report["sweep"]}
    assert set(sweep) == set(SWEEP)
    for key, values in SWEEP.items():
        assert sweep[key] == pytest.approx(values, abs=5e-6), key


def test_handson_is_an_experiment_folder_that_resumes(handson):
    out, report = handson
    with ResultsStore(out, read_only=True) as store:
        frame = store.frame()
    # 3 models × (clean + fgsm and random at ε ∈ {0.25, 0.5, 1})
    assert len(frame) == 3 * 7 and set(frame["scenario"]) == {"clean", "perturbation"}
    for name in ("report.html", "results.json", "sweep.png", "sweep.svg", "experiment.json"):
        assert (out / name).stat().st_size > 0
    again = CliRunner().invoke(app, ["handson", "--apr-epochs", "3", "--sweep", "0.25,1",
                                     "--out", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["stages"] == report["stages"]  # read back, not re-run
    results = CliRunner().invoke(app, ["results", str(out), "--where", "attack=fgsm"])
    assert results.exit_code == 0 and "APR" in results.output
