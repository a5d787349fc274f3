"""Content in experiment files: content-aware models get the items' features from
``data.content``, parameter attacks reach the ``item_content`` block, the TAaMR scenario attacks
real posters and measures the category hit ratio, the report shows it; bad content recipes are
refused before anything runs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from advrec.errors import ConfigError
from advrec.evaluation.robustness import category_hit_ratio
from advrec.experiments.config import parse_config
from advrec.experiments.runner import run_experiment
from advrec.experiments.store import ResultsStore

pytest.importorskip("efficientnet_lite_pytorch")

# posters the CNN classes as comic_book (MovieIDs 1, 2, 12, 13) and four others
POSTERS = (1, 2, 12, 13, 260, 1196, 2571, 3952)


@pytest.fixture(scope="module")
def own_data(data_dir, tmp_path_factory):
    """A small rated data set whose items are the MovieIDs of eight posters, with the poster
    folder beside it (images named ``<MovieID>.jpg``)."""
    folder = tmp_path_factory.mktemp("content")
    images = folder / "images"
    images.mkdir()
    source = data_dir / "ml-1m-posters" / "MovieImages"
    for movie in POSTERS:
        shutil.copy(source / f"{movie}.jpg", images / f"{movie}.jpg")
    rng = np.random.default_rng(0)
    lines = []
    for user in range(40):
        chosen = rng.choice(len(POSTERS), size=4, replace=False)
        lines += [f"{user}\t{POSTERS[i]}\t{int(rng.integers(1, 6))}" for i in chosen]
    (folder / "ratings.tsv").write_text("\n".join(lines) + "\n")
    return folder


def raw_config(folder, **changes) -> dict:
    raw = {
        "name": "content-test",
        "data": {"path": str(folder / "ratings.tsv"), "format": "delimited",
                 "options": {"columns": ["user", "item", "rating"], "sep": "\t"},
                 "split": "holdout", "test_ratio": 0.25,
                 "content": {"source": "images", "path": str(folder / "images")}},
        "models": [{"name": "vbpr", "params": {"n_factors": 4, "n_visual_factors": 2,
                                               "epochs": 2, "batch_size": 32}},
                   {"name": "amr", "params": {"n_factors": 4, "n_visual_factors": 2,
                                              "epochs": 2, "batch_size": 32}},
                   {"name": "itempop"}],
        "attacks": [{"method": "fgsm", "eps": 0.5, "blocks": "item_content"},
                    {"method": "random", "eps": 0.5, "blocks": "item_content"}],
        "content_attacks": [{"method": "fgsm", "eps": 8, "source": "comic_book",
                             "target": "analog_clock", "max_items": 2,
                             "transform": ["none", "jpeg"],
                             "transform_params": {"jpeg": {"quality": 75}}, "examples": 1}],
        "evaluation": {"ks": [2, 4], "metrics": ["hr", "ndcg"]},
    }
    raw.update(changes)
    return raw


def test_a_content_study_runs_end_to_end_and_reports(own_data, tmp_path):
    from advrec.experiments.report import write_report

    config = parse_config(raw_config(own_data)).model_copy(update={"output": str(tmp_path)})
    run_experiment(config, progress=False)
    with ResultsStore(tmp_path, read_only=True) as store:
        rows = store.rows(per_user=False)
    by = {(r["model_label"], r["scenario"], r["attack"],
           (r["attack_config"] or {}).get("transform")): r for r in rows}
    # itempop has no content block and no content: only its clean cell
    assert {k[1] for k in by if k[0] == "itempop"} == {"clean"}
    assert ("vbpr", "perturbation", "fgsm", None) in by
    content = by[("vbpr", "content", "taamr", "none")]
    m = content["measures"]
    assert m["source_name"] == "comic_book" and m["target_name"] == "analog_clock"
    assert m["n_attacked"] == 2 and m["linf"] <= 8
    assert 0 <= m["success_rate"] <= 1 and 20 < m["mean_psnr"] < 60
    assert len(m["examples"]) == 1 and m["examples"][0]["after"].startswith("data:image/png")
    for k in (2, 4):
        assert 0 <= content["metrics"][f"chr@{k}_before"] <= 1
    # the attack is on the CNN: both models see the same attacked features
    amr = by[("amr", "content", "taamr", "none")]["measures"]
    assert amr["success_rate"] == m["success_rate"] and amr["mean_psnr"] == m["mean_psnr"]
    report = write_report(tmp_path).read_text()
    assert "Content attacks (TAaMR)" in report and "comic_book" in report
    assert "data:image/png;base64," in report


def test_category_hit_ratio_by_hand():
    from advrec.data.interactions import Interactions
    from advrec.evaluation.evaluator import Evaluator

    train = Interactions.from_raw([0, 1], [0, 0], item_ids=[0, 1, 2, 3])
    test = Interactions.from_raw([0, 1], [1, 2], item_ids=[0, 1, 2, 3])
    ev = Evaluator(train, test, ks=(2,), metrics=("hr",), coverage=False)
    import torch

    scores = torch.tensor([[9.0, 3.0, 2.0, 1.0], [9.0, 1.0, 2.0, 3.0]])

    def scorer(users):
        return scores[users]

    # user 0's top-2 (item 0 masked): 1, 2; user 1's: 3, 2; category {2}: one slot each
    assert category_hit_ratio(scorer, ev, [False, False, True, False], ks=(1, 2)) == {
        "chr@1": 0.0, "chr@2": 0.5}
    with pytest.raises(ConfigError, match="in_category"):
        category_hit_ratio(scorer, ev, [True, False], ks=(2,))


@pytest.mark.parametrize(("change", "where"), [
    ({"content": None}, "models.0"),
    ({"content": {"source": "file", "path": "/nonexistent/features.npy"}}, "data.content.path"),
    ({"content": {"source": "tags", "path": "/nonexistent/tags.tsv"}}, "data.content"),
])
def test_bad_content_recipes_are_refused_before_anything_runs(own_data, tmp_path, change,
                                                              where):
    raw = raw_config(own_data)
    raw["data"] = {**raw["data"], **change}
    if raw["data"]["content"] is None:
        raw["data"].pop("content")
    config = parse_config(raw).model_copy(update={"output": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match=where):
        run_experiment(config, progress=False)
    assert not (tmp_path / "x").exists()


def test_content_attack_options_are_checked(own_data, tmp_path):
    raw = raw_config(own_data)
    raw["content_attacks"][0]["transform_params"] = {"jpeg": {"quality": 75, "bogus": 1}}
    config = parse_config(raw).model_copy(update={"output": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="content_attacks.0.transform_params"):
        run_experiment(config, progress=False)
    raw = raw_config(own_data)
    raw["content_attacks"][0]["eps"] = 300
    with pytest.raises(ConfigError, match="0-255"):
        parse_config(raw)
