"""The AUSH / Leg-UP shilling data sets and their official targets, against the staged files
(counts from aush-shilling/SOURCE.md and legup-shilling/SOURCE.md) and damaged copies of them."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from advrec.data.datasets import info, list_datasets, load, load_split
from advrec.data.shilling_sets import (
    AUTOMOTIVE_AUSH_TARGETS,
    AUTOMOTIVE_LEGUP_TARGETS,
    FILMTRUST_AUSH_TARGETS,
    SHILLING_SETS,
    candidate_targets,
    official_targets,
    selected_items,
    target_users,
)
from advrec.errors import DataError, ParamError

AUSH = ("filmtrust", "automotive")
LEGUP = ("appandroid", "groceryfood", "toolhome", "yelp-legup")
PREFIX = {"filmtrust": "filmTrust", "automotive": "automotive", "appandroid": "AppAndroid",
          "groceryfood": "GroceryFood", "toolhome": "ToolHome", "yelp-legup": "yelp"}
FOLDER = {**dict.fromkeys(AUSH, "aush-shilling"), **dict.fromkeys(LEGUP, "legup-shilling")}


@pytest.fixture
def shared(data_dir, monkeypatch):
    """Point ADVREC_DATA_DIR at the real data sets; skip when the shilling folders are absent."""
    for folder in ("aush-shilling", "legup-shilling"):
        if not (data_dir / folder / "SOURCE.md").is_file():
            pytest.skip(f"{data_dir / folder} is not staged (set ADVREC_DATA_DIR)")
    monkeypatch.setenv("ADVREC_DATA_DIR", str(data_dir))
    return data_dir


def pair_codes(users, items) -> np.ndarray:
    """(user, item) raw pairs as one int64 code each (raw ids here are < 2**20)."""
    return np.asarray(users, dtype=np.int64) << 20 | np.asarray(items, dtype=np.int64)


def raw_pairs(x) -> np.ndarray:
    return pair_codes(x.user_ids[x.users], x.item_ids[x.items])


# ----------------------------------------------------------------------------- registry
def test_registered_and_listed(shared):
    infos = {i.name: i for i in list_datasets()}
    assert set(SHILLING_SETS) == set(AUSH) | set(LEGUP) <= set(infos)
    for name in SHILLING_SETS:
        i = infos[name]
        assert i.local and i.path == shared / FOLDER[name]
        assert i.presplit and i.folds == ("default",) and not i.downloadable
        assert "XMUDM/ShillingAttack" in i.licence and "GPL-3.0" in i.licence
        assert f"official_targets({name!r})" in i.protocol
    assert "CIKM 2020" in info("filmtrust").licence and "TNNLS 2022" in info("toolhome").licence
    assert "(user 154, item 89)" in info("filmtrust").protocol
    assert "Yelp dataset terms" in info("yelp-legup").licence


# name: users, items, train rows, test rows, ratings 1..5, test items not in train, largest id
COUNTS = {
    "filmtrust": (780, 721, 25_917, 2_879, (851, 2_254, 6_286, 8_823, 10_582), 0, 720),
    "automotive": (2_928, 1_835, 18_425, 2_048, (542, 606, 1_430, 3_967, 13_928), 0, 1_834),
    "yelp-legup": (2_762, 10_477, 106_112, 13_124, (6_086, 11_128, 22_944, 46_753, 32_325),
                   206, 11_536),
    "groceryfood": (1_777, 7_790, 49_410, 6_292, (1_768, 3_255, 7_921, 14_672, 28_086), 224,
                    8_712),
    "toolhome": (891, 7_916, 20_816, 2_711, (623, 789, 1_836, 5_503, 14_776), 332, 10_215),
    "appandroid": (5_880, 12_300, 144_936, 18_657, (18_833, 12_488, 22_578, 33_851, 75_843),
                   244, 13_208),
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_counts_match_source(shared, name):
    users, items, n_train, n_test, per_rating, fresh, max_id = COUNTS[name]
    train, test = load_split(name)
    assert train.shape == (users, items) and train.same_space(test)
    assert (len(train), len(test)) == (n_train, n_test)
    assert (train.name, test.name) == (f"{name}/train", f"{name}/test")
    # raw ids are the files' 0-based ids: users contiguous, items sparse for the Leg-UP sets
    assert np.array_equal(train.user_ids, np.arange(users))
    assert int(train.item_ids.max()) == max_id
    ratings = np.concatenate([train.ratings, test.ratings])
    assert tuple(np.bincount(ratings.astype(int), minlength=6)[1:]) == per_rating
    assert np.all(ratings == np.round(ratings))
    in_train = np.unique(train.items)
    assert len(np.setdiff1d(np.unique(test.items), in_train)) == fresh  # kept (unseen="keep")
    assert np.all(np.isin(np.unique(test.users), np.unique(train.users)))


@pytest.mark.parametrize("name, pair, ratings", [
    ("filmtrust", (154, 89), (2.0, 5.0)),
    ("yelp-legup", (49, 7615), (5.0, 5.0)),
])
def test_the_one_pair_in_train_and_test_stays_in_train_only(shared, name, pair, ratings):
    train, test = load_split(name)
    code = pair_codes([pair[0]], [pair[1]])
    assert not np.intersect1d(raw_pairs(train), raw_pairs(test)).size  # no leakage in the split
    assert float(train.ratings[raw_pairs(train) == code[0]][0]) == ratings[0]
    assert len(load(name)) == len(train) + len(test)  # load: the split's rows


def test_automotive_has_no_pair_in_train_and_test(shared):
    train, test = load_split("automotive")
    assert len(np.intersect1d(raw_pairs(train), raw_pairs(test))) == 0


# ----------------------------------------------------------------------------- targets
def test_official_targets(shared):
    assert official_targets("filmtrust") == [5, 395, 181, 565, 254, 601, 623, 619, 64, 558]
    assert official_targets("filmtrust", "aush") == list(FILMTRUST_AUSH_TARGETS)
    assert official_targets("filmtrust", "legup") == [5, 395, 181, 565, 254]
    assert official_targets("automotive") == [88, 22, 122, 339, 1431, 1141, 1656, 477, 1089,
                                              866]
    assert official_targets("automotive", paper="legup") == [119, 422, 594, 884, 1593]
    assert list(AUTOMOTIVE_AUSH_TARGETS) == official_targets("automotive", "aush")
    assert list(AUTOMOTIVE_LEGUP_TARGETS) == official_targets("automotive", "legup")


@pytest.mark.parametrize("name, n, present, head", [
    ("yelp-legup", 2_307, 2_063, [8390, 5591, 7125]),
    ("groceryfood", 1_743, 1_574, None),
    ("toolhome", 2_043, 1_579, None),
    ("appandroid", 2_641, 2_343, None),
])
def test_legup_targets_are_the_candidate_files(shared, name, n, present, head):
    targets = official_targets(name)
    assert targets == official_targets(name, "legup") == candidate_targets(name)
    assert len(targets) == len(set(targets)) == n
    train, test = load_split(name)
    assert np.isin(targets, train.item_ids).sum() == present  # the rest never occur
    if head is not None:
        assert targets[:3] == head
    sel = selected_items(name)
    assert list(sel) == targets and all(len(v) == 1 for v in sel.values())


@pytest.mark.parametrize("name, n_candidates, per_target", [("filmtrust", 40, 3),
                                                             ("automotive", 15, 1)])
def test_aush_selected_items_and_target_users(shared, name, n_candidates, per_target):
    sel, groups = selected_items(name), target_users(name)
    assert list(sel) == list(groups) == candidate_targets(name)
    assert len(sel) == n_candidates
    assert {len(v) for v in sel.values()} == {per_target}
    assert set(official_targets(name)) | set(official_targets(name, "legup")) <= set(sel)
    train, _ = load_split(name)
    assert set(np.concatenate([v for v in sel.values()])) <= set(train.item_ids.tolist())
    # no target user has rated its target in train (SOURCE.md: checked)
    users = np.concatenate([np.asarray(u) for u in groups.values()])
    items = np.repeat(list(groups), [len(u) for u in groups.values()])
    assert np.all(np.isin(users, train.user_ids))
    assert not np.isin(pair_codes(users, items), raw_pairs(train)).any()
    assert all(len(set(u)) == len(u) for u in groups.values())


def test_filmtrust_official_targets_are_cold(shared):
    train, _ = load_split("filmtrust")
    counts = train.item_counts[train.item_index(official_targets("filmtrust"))]
    assert counts.min() == 2 and counts.max() == 5
    sizes = [len(target_users("filmtrust")[t]) for t in official_targets("filmtrust")]
    assert (min(sizes), max(sizes)) == (169, 193)
    assert selected_items("filmtrust")[5] == [98, 118, 112]


def test_automotive_targets_train_counts(shared):
    train, _ = load_split("automotive")
    both = official_targets("automotive") + official_targets("automotive", "legup")
    counts = train.item_counts[train.item_index(both)]
    assert (counts.min(), counts.max()) == (3, 155)
    sizes = [len(target_users("automotive")[t]) for t in both]
    assert (min(sizes), max(sizes)) == (50, 151)
    assert selected_items("automotive")[22] == [866]


def test_bad_names_and_papers(shared):
    with pytest.raises(DataError, match="'ml-100k' has no official shilling targets.*filmtrust"):
        official_targets("ml-100k")
    with pytest.raises(ParamError, match=r"paper: expected one of 'legup' for 'toolhome'"):
        official_targets("toolhome", "aush")
    with pytest.raises(ParamError, match="paper: expected one of 'aush', 'legup'"):
        official_targets("filmtrust", "AUSH")
    with pytest.raises(DataError, match="'yelp-legup' has no target-user file.*filmtrust"):
        target_users("yelp-legup")


# ----------------------------------------------------------------------------- damaged files
def staged_copy(shared, tmp_path, name: str, *kinds: str):
    """``tmp_path/<folder>`` holding the data set's train/test files and the given target files;
    returns that folder."""
    folder = tmp_path / FOLDER[name]
    folder.mkdir(exist_ok=True)
    for kind in ("train.dat", "test.dat", *kinds):
        shutil.copy(shared / FOLDER[name] / f"{PREFIX[name]}_{kind}", folder)
    return folder


def test_found_through_advrec_data_dir(shared, tmp_path, monkeypatch):
    folder = staged_copy(shared, tmp_path, "filmtrust", "selected_items")
    (folder / "filmTrust_selected_items").write_text("5\t1,2,3\n")
    monkeypatch.setenv("ADVREC_DATA_DIR", str(tmp_path))
    assert selected_items("filmtrust") == {5: [1, 2, 3]}
    with pytest.raises(DataError, match=r"filmTrust_target_users: file not found"):
        target_users("filmtrust")
    with pytest.raises(DataError, match="official aush target.*395, 181"):
        official_targets("filmtrust")
    monkeypatch.setenv("ADVREC_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="data set 'filmtrust' not found"):
        selected_items("filmtrust")


LINES = "29\t83,98,110\n5\t98,118,112\n395\t118,110,119\n"


@pytest.mark.parametrize("text, line, message", [
    (LINES.replace("98,118,112", "98,x,112"), 2, "field 'selected' is 'x'; expected a "
                                                 "non-negative integer id"),
    (LINES.replace("5\t", "5 "), 2, "expected 2 fields separated by TAB, found 1"),
    (LINES + "5\t1\n", 4, "target 5 appears again (first on line 2)"),
    (LINES.replace("98,118,112", ""), 2, "field 'selected' is empty"),
    (LINES.replace("98,118,112", "98,,112"), 2, "field 'selected' is ''"),
    ("-5\t1,2\n", 1, "field 'target' is '-5'"),
    ("\n\n" + LINES.replace("395", "3.5"), 5, "field 'target' is '3.5'"),
    (LINES.replace("110\n", "110\t7\n", 1), 1, "expected 2 fields separated by TAB, found 3"),
    (LINES.replace("118", "1\0"), 2, "contains a NUL byte"),
    (LINES.replace("118", "\xe9", 1), 2, "not valid utf-8 text"),
    ("99999999999999999999\t1\n", 1, "field 'target' is '99999999999999999999'"),
])
def test_malformed_selected_items(shared, tmp_path, text, line, message):
    folder = staged_copy(shared, tmp_path, "filmtrust")
    path = folder / "filmTrust_selected_items"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as err:
        selected_items("filmtrust", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: line {line}: ") and message in msg, msg
    assert "\n" not in msg


def test_malformed_target_users_and_empty_file(shared, tmp_path):
    folder = staged_copy(shared, tmp_path, "automotive", "target_users")
    path = folder / "automotive_target_users"
    lines = path.read_text().split("\n")
    lines[6] = lines[6].replace(",", ",u", 1)
    path.write_text("\n".join(lines))
    where = re.escape(str(path))
    with pytest.raises(DataError, match=rf"^{where}: line 7: field 'users' is 'u\d+'"):
        target_users("automotive", root=tmp_path)
    path.write_text("\n \n")
    with pytest.raises(DataError, match=rf"^{where}: file is empty"):
        target_users("automotive", root=tmp_path)


def test_malformed_target_item_file(shared, tmp_path):
    folder = staged_copy(shared, tmp_path, "toolhome", "target_item")
    path = folder / "ToolHome_target_item"
    lines = path.read_text().split("\n")
    assert candidate_targets("toolhome", root=tmp_path) == [int(v) for v in lines if v]
    lines[41] = "12a"
    path.write_text("\n".join(lines))
    where = re.escape(str(path))
    with pytest.raises(DataError, match=rf"^{where}: line 42: field 'item' is '12a'"):
        official_targets("toolhome", root=tmp_path)
    lines[41] = lines[0]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"^{where}: line 42: item \d+ appears again \(first "
                                        rf"on line 1\)"):
        candidate_targets("toolhome", root=tmp_path)
