"""Presets run on the experiment engine and print what the former pipelines printed.

The hands-on numbers pinned here are those of the hands-on pipeline before it became a preset
(advrec at commit 004dd69, `advrec handson --apr-epochs 3 --sweep 0.25,1`, seed 0, movielens-500),
to six decimals; the shill and detect numbers say where they come from below.
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


SHILL = {  # (victim, attack): hr@10 before, after, p; mean rank before, after; test hr@10 after
    ("mf", "average"): (0.0, 0.003253, 0.005288, 1294.099545, 590.836478, 0.416122),
    ("mf", "love_hate"): (0.0, 0.0, 1.0, 1294.099545, 1507.997398, 0.492375),
    ("mf", "bandwagon"): (0.0, 0.003687, 0.0123, 1294.099545, 739.590978, 0.464052),
    ("userknn", "average"): (0.0, 0.0, 1.0, 1094.860551, 1094.533073, 0.943355),
}
"""`advrec shill mf userknn --attack average --attack love_hate --attack bandwagon --size 0.05`
on ml-100k u1, seed 0: 47 fake users, targets 571 765 834 1222 1258; love_hate nukes (its own
intent). Until commit aef9273 these were, to six decimals, the former study pipeline's numbers
(commit 004dd69); the filler draw then became independent of numpy's SIMD build (AVX2 and
AVX-512 ordered ``argpartition``'s output differently, so a fresh machine drew other profiles),
and the numbers were re-measured, identical under both builds."""


def test_shill_numbers_are_pinned(data_dir, tmp_path):
    result = CliRunner().invoke(app, ["shill", "mf", "userknn", "--attack", "average",
                                      "--attack", "love_hate", "--attack", "bandwagon",
                                      "--size", "0.05", "--out", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["victim"], r["attack"]): r for r in json.loads(result.stdout)}
    assert len(rows) == 6
    for key, values in SHILL.items():
        r = rows[key]
        got = (r["hr@10_before"], r["hr@10_after"], r["hr@10_p"], r["mean_rank_before"],
               r["mean_rank_after"], r["test_hr@10_after"])
        assert got == pytest.approx(values, abs=5e-6), key
        assert r["n_fake"] == 47 and r["targets"] == "571 765 834 1222 1258"
    assert rows[("mf", "love_hate")]["intent"] == "nuke"
    with ResultsStore(tmp_path / "s", read_only=True) as store:
        assert {r["scenario"] for r in store.rows(per_user=False)} == {"clean", "shilling"}


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


DETECT_COLUMNS = ("precision", "recall", "f1", "roc_auc", "pr_auc", "flagged",
                  "target_hr@10_attacked", "target_hr@10_filtered", "hr@10_filtered",
                  "ndcg@10_filtered", "hr@10_attacked")
DETECT = {  # (held-out, detector): the DETECT_COLUMNS
    ("random", "svm"): (0.0, 0.0, 0.0, 0.988952, 0.776825, 2, 0.027407, 0.026325, 0.464052,
                        0.086779, 0.461874),
    ("random", "pca"): (0.921569, 1.0, 0.959184, 0.999525, 0.994662, 51, 0.027407, 0.0, 0.427015,
                        0.079693, 0.461874),
    ("random", "rule"): (0.959184, 1.0, 0.979167, 1.0, 1.0, 49, 0.027407, 0.0, 0.433551, 0.08136,
                         0.461874),
    ("average", "svm"): (0.978261, 0.957447, 0.967742, 0.998187, 0.959874, 46, 0.03498, 0.000361,
                         0.429194, 0.082393, 0.357298),
    ("average", "pca"): (0.921569, 1.0, 0.959184, 0.999223, 0.990624, 51, 0.03498, 0.0,
                         0.427015, 0.079693, 0.357298),
    ("average", "rule"): (0.947368, 0.765957, 0.847059, 0.996979, 0.949054, 38, 0.03498,
                          0.002885, 0.424837, 0.079498, 0.357298),
    ("love_hate", "svm"): (0.0, 0.0, 0.0, 0.94929, 0.444228, 1, 0.443924, 0.455103, 0.53159,
                           0.110147, 0.53159),
    ("love_hate", "pca"): (0.921569, 1.0, 0.959184, 0.999655, 0.996165, 51, 0.443924, 0.0,
                           0.427015, 0.079693, 0.53159),
    ("love_hate", "rule"): (0.979167, 1.0, 0.989474, 1.0, 1.0, 48, 0.443924, 0.0, 0.429194,
                            0.079992, 0.53159),
}
"""`advrec detect --attack random --attack average --attack love_hate --detector svm --detector
pca --detector rule` (victim mf, 5 epochs) on ml-100k u1, seed 0: 47 fake users per held-out
type, pushed (push is the preset's intent for every type, love_hate included); the clean MF has
HR@10 0.431373. Until commit aef9273 these were, to six decimals, the former ``detection_study``
pipeline's (commit a88e08e); re-measured when the filler draw became independent of numpy's SIMD
build (see SHILL), identical under AVX2 and AVX-512."""


def test_detect_numbers_are_pinned(data_dir, tmp_path):
    args = ["detect", "--out", str(tmp_path / "d"), "--json"]
    for attack in ("random", "average", "love_hate"):
        args += ["--attack", attack]
    for detector in ("svm", "pca", "rule"):
        args += ["--detector", detector]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {(r["held_out"], r["detector"]): r for r in json.loads(result.stdout)}
    assert list(rows) == list(DETECT)
    for key, values in DETECT.items():
        r = rows[key]
        assert tuple(r[c] for c in DETECT_COLUMNS) == pytest.approx(values, abs=5e-6), key
        assert r["n_fake"] == 47 and r["victim"] == "mf"
        assert r["hr@10_clean"] == r["hr@10_perfect"] == pytest.approx(0.431373, abs=5e-6)
        assert r["target_hr@10_clean"] == r["target_hr@10_perfect"] == 0.0
    assert rows[("random", "svm")]["train_attacks"] == "average+love_hate"
    with ResultsStore(tmp_path / "d", read_only=True) as store:
        cells = store.rows(per_user=False)
    # the clean model, then per held-out type: no defence, 3 detectors, perfect removal
    assert len(cells) == 1 + 3 * 5
    again = CliRunner().invoke(app, args)  # resumes: every cell is in the store
    assert again.exit_code == 0 and json.loads(again.stdout) == json.loads(result.stdout)
