"""Readers and writers: real files (counts from each SOURCE.md), round trips, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advrec.data.interactions import Interactions
from advrec.data.io import (
    read_delimited,
    read_lightgcn,
    read_movielens_100k,
    read_movielens_csv,
    read_movielens_dat,
    read_split,
    read_user_item_rating,
    write_delimited,
)
from advrec.errors import ConfigError, DataError, OutputError

ROWS = [(1, 10, 5, 881250949), (1, 20, 3, 881250950), (2, 10, 4, 881250951),
        (2, 30, 1, 881250952), (3, 20, 2, 881250953), (3, 30, 4, 881250954),
        (4, 10, 5, 881250955), (4, 40, 3, 881250956)]


def _lines(sep: str = "\t", rows=ROWS) -> list[str]:
    return [sep.join(map(str, r)) for r in rows]


def _write(tmp_path: Path, name: str, lines: list[str], end: str = "\n") -> Path:
    p = tmp_path / name
    p.write_bytes((end.join(lines) + end).encode())
    return p


# ----------------------------------------------------------------------------- real data
def test_ml100k_u_data(data_dir):
    x = read_movielens_100k(data_dir / "ml-100k" / "u.data")
    assert (len(x), x.n_users, x.n_items) == (100_000, 943, 1682)
    np.testing.assert_array_equal(x.user_ids, np.arange(1, 944))
    np.testing.assert_array_equal(x.item_ids, np.arange(1, 1683))
    counts = np.bincount(x.ratings.astype(int), minlength=6)[1:]
    assert counts.tolist() == [6110, 11370, 27145, 34174, 21201]
    assert x.has_timestamps and x.timestamps.min() > 870_000_000


def test_ml100k_fold_files(data_dir):
    base = read_movielens_100k(data_dir / "ml-100k" / "u1.base")
    test = read_movielens_100k(data_dir / "ml-100k" / "u1.test")
    assert (len(base), len(test)) == (80_000, 20_000)


def test_ml_latest_small_csv(data_dir):
    x = read_movielens_csv(data_dir / "ml-latest-small" / "ratings.csv")
    assert (len(x), x.n_users, x.n_items) == (100_836, 610, 9724)
    assert set(np.unique(x.ratings).tolist()) == {0.5 * k for k in range(1, 11)}
    assert x.item_ids.max() == 193609
    assert int((x.ratings == 4.0).sum()) == 26_818


def test_movielens_500_split_keeps_unseen_items(data_dir):
    d = data_dir / "movielens-500"
    train, test = read_split(d / "trainingset.tsv", d / "testset.tsv", unseen="keep")
    assert (len(train), len(test)) == (73_371, 500)
    assert train.n_users == 500 and train.n_items == 3172
    assert train.user_ids is test.user_ids and train.item_ids is test.item_ids
    assert len(np.unique(train.items)) == 3168
    np.testing.assert_array_equal(train.user_ids, np.arange(500))
    # each test row's raw ids survive the re-indexing
    first = pd.read_csv(d / "testset.tsv", sep="\t", header=None, nrows=1).iloc[0]
    assert (test.user_ids[test.users[0]], test.item_ids[test.items[0]]) == (first[0], first[1])


def test_movielens_500_split_unseen_error_and_drop(data_dir):
    d = data_dir / "movielens-500"
    with pytest.raises(DataError, match=r"testset\.tsv: 4 test interaction") as err:
        read_split(d / "trainingset.tsv", d / "testset.tsv")
    assert "item 1805" in str(err.value)
    train, test = read_split(d / "trainingset.tsv", d / "testset.tsv", unseen="drop")
    assert len(test) == 496 and train.n_items == 3168 and train.same_space(test)


def test_ml_1m_implicit_lightgcn_split(data_dir):
    d = data_dir / "ml-1m-implicit"
    train, test = read_split(d / "train.txt", d / "test.txt", reader=read_lightgcn,
                             unseen="keep")
    assert (len(train), len(test)) == (800_167, 200_042)
    assert train.shape == test.shape == (6040, 3706)
    assert not train.has_ratings
    assert 4463 not in set(test.user_ids[test.active_users].tolist())
    pairs = np.concatenate([train.users * 4000 + train.items, test.users * 4000 + test.items])
    assert len(np.unique(pairs)) == 1_000_209


def test_cfgan_split(data_dir):
    d = data_dir / "cfgan-ml100k"
    train, test = read_split(d / "ML100K.train", d / "ML100K.test",
                             reader=read_user_item_rating)
    assert (len(train), len(test)) == (80_000, 19_963)
    assert train.shape == (943, 1653) and test.same_space(train)
    np.testing.assert_array_equal(train.item_ids, np.arange(1653))
    assert train.ratings.min() == 1.0 and train.ratings.max() == 5.0


# ----------------------------------------------------------------------------- formats
def test_movielens_dat(tmp_path):
    p = _write(tmp_path, "ratings.dat", _lines("::"))
    x = read_movielens_dat(p)
    assert (len(x), x.n_users, x.n_items) == (8, 4, 4)
    np.testing.assert_array_equal(x.item_ids, [10, 20, 30, 40])
    assert x.timestamps[0] == 881250949


def test_movielens_csv_crlf_and_half_stars(tmp_path):
    p = _write(tmp_path, "ratings.csv",
               ["userId,movieId,rating,timestamp", "1,1,4.0,964982703", "1,3,3.5,964981247",
                "2,3,0.5,964982224"], end="\r\n")
    x = read_movielens_csv(p)
    np.testing.assert_array_equal(x.ratings, [4.0, 3.5, 0.5])
    assert x.shape == (2, 2)


def test_user_item_rating_crlf(tmp_path):
    p = _write(tmp_path, "x.train", ["0 0 3.0", "1 1 5.0", "1 2 4.0"], end="\r\n")
    x = read_user_item_rating(p)
    assert x.shape == (2, 3) and x.ratings.tolist() == [3.0, 5.0, 4.0]


def test_lightgcn_lone_user_and_blank_lines(tmp_path):
    p = _write(tmp_path, "train.txt", ["0 5 6 7", "1", "", "2 5"], end="\r\n")
    x = read_lightgcn(p)
    assert len(x) == 4
    np.testing.assert_array_equal(x.user_ids, [0, 1, 2])  # the lone user stays in the catalogue
    np.testing.assert_array_equal(x.user_counts, [3, 0, 1])
    np.testing.assert_array_equal(x.item_ids[x.items], [5, 6, 7, 5])


def test_no_final_newline_and_blank_lines(tmp_path):
    p = tmp_path / "a.tsv"
    lines = _lines()
    p.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]))
    assert len(read_movielens_100k(p)) == 8


def test_read_delimited_string_ids_ignored_columns_header_skip(tmp_path):
    p = _write(tmp_path, "log.csv", ["# exported", "who;what;score;junk",
                                     "alice;m1;4.5;x", "bob;m2;3;y", "alice;007;1;z"])
    x = read_delimited(p, columns=("user", "item", "rating", None), sep=";", header=True,
                       skip_rows=1, rating_scale=(1, 5))
    assert x.user_ids.tolist() == ["alice", "bob"]
    assert sorted(x.item_ids.tolist()) == ["007", "m1", "m2"]
    assert not x.has_timestamps and x.ratings.tolist() == [4.5, 3.0, 1.0]


def test_read_delimited_id_type(tmp_path):
    p = _write(tmp_path, "a.tsv", ["007\t1", "8\t2"])
    auto = read_delimited(p, columns=("user", "item"))
    assert auto.user_ids.dtype.kind == "i" and auto.user_ids.tolist() == [7, 8]
    strs = read_delimited(p, columns=("user", "item"), id_type="str")
    assert strs.user_ids.tolist() == ["007", "8"]


def test_read_delimited_column_spec_errors(tmp_path):
    p = _write(tmp_path, "a.tsv", ["1\t2"])
    with pytest.raises(ConfigError, match="must include 'user' and 'item'"):
        read_delimited(p, columns=("user", None))
    with pytest.raises(ConfigError, match="unknown column 'score'"):
        read_delimited(p, columns=("user", "item", "score"))


def test_read_split_mixed_id_types(tmp_path):
    tr = _write(tmp_path, "tr.tsv", ["1\t10", "2\t20"])
    te = _write(tmp_path, "te.tsv", ["1\tx"])
    train, test = read_split(tr, te, reader=read_delimited, unseen="keep",
                             columns=("user", "item"))
    assert train.same_space(test) and train.n_items == 3
    assert test.item_ids[test.items].tolist() == ["x"]


def test_read_split_bad_unseen(tmp_path):
    p = _write(tmp_path, "a.tsv", _lines())
    with pytest.raises(ConfigError, match="unseen"):
        read_split(p, p, unseen="ignore")


# ----------------------------------------------------------------------------- writer
def _sample(with_extras: bool = True) -> Interactions:
    return Interactions.from_raw(
        np.array([3, 1, 1, 7]), np.array([100, 200, 100, 300]),
        np.array([4.5, 1.0, 3.0, 0.5]) if with_extras else None,
        np.array([10, 11, 12, 13]) if with_extras else None,
    )


def test_write_read_round_trip(tmp_path):
    x = _sample()
    p = write_delimited(x, tmp_path / "out.tsv")
    assert p.read_text().splitlines()[0] == "user\titem\trating\ttimestamp"
    y = read_delimited(p, header=True)
    pd.testing.assert_frame_equal(x.to_frame(), y.to_frame())
    np.testing.assert_array_equal(x.user_ids, y.user_ids)


def test_write_read_round_trip_no_ratings_csv(tmp_path):
    x = _sample(with_extras=False)
    p = write_delimited(x, tmp_path / "out.csv", sep=",", header=False)
    y = read_delimited(p, columns=("user", "item"), sep=",")
    pd.testing.assert_frame_equal(x.to_frame(), y.to_frame())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "u 1", "x-y"]),
                          st.integers(0, 10**9),
                          st.integers(1, 10).map(lambda k: k / 2)), min_size=1, max_size=30))
def test_round_trip_property(tmp_path_factory, rows):
    users, items, ratings = map(np.array, zip(*rows, strict=True))
    x = Interactions.from_raw(users, items.astype(str), ratings)
    p = write_delimited(x, tmp_path_factory.mktemp("rt") / "r.tsv")
    y = read_delimited(p, columns=("user", "item", "rating"), header=True, id_type="str")
    pd.testing.assert_frame_equal(x.to_frame(), y.to_frame())


def test_write_to_unwritable_target_leaves_nothing(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(OutputError, match="is a folder"):
        write_delimited(_sample(), target)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert list(target.iterdir()) == []


def test_failed_write_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.tsv"
    write_delimited(_sample(), target)
    old = target.read_text()

    def broken(self, f, **kw):
        f.write("user\titem\n1\t")  # half a file, then the disk "fails"
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_delimited(_sample(), target, overwrite=True)
    assert target.read_text() == old
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


# ----------------------------------------------------------------------------- bad input
def _with(line_no: int, text: str, sep: str = "\t") -> list[str]:
    lines = _lines(sep)
    lines[line_no - 1] = text
    return lines


BAD = [
    ("rating_abc", read_movielens_100k, _with(7, "4\t10\tabc\t881250955"),
     ["line 7", "'rating'", "'abc'", "number"]),
    ("too_many", read_movielens_100k, _with(5, "3\t20\t2\t881250953\t9"),
     ["line 5", "expected 4 fields", "found 5"]),
    ("first_long", read_movielens_100k, _with(1, "1\t10\t5\t881250949\t7"),
     ["line 1", "expected 4 fields", "found 5"]),
    ("too_few", read_movielens_100k, _with(4, "2\t30\t1"),
     ["line 4", "'timestamp'", "missing", "4 fields"]),
    ("bad_user", read_movielens_100k, _with(2, "u1\t20\t3\t881250950"),
     ["line 2", "'user'", "integer id"]),
    ("bad_time", read_movielens_100k, _with(3, "2\t10\t4\tyesterday"),
     ["line 3", "'timestamp'", "'yesterday'"]),
    ("scale_hi", read_movielens_100k, _with(6, "3\t30\t6\t881250954"),
     ["line 6", "'rating'", "6", "rating_scale [1, 5]"]),
    ("scale_lo", read_movielens_100k, _with(8, "4\t40\t0\t881250956"),
     ["line 8", "outside", "[1, 5]"]),
    ("dat_short", read_movielens_dat, _with(3, "2::10::4", "::"),
     ["line 3", "'timestamp'", "'::'"]),
    ("dat_long", read_movielens_dat, _with(2, "1::20::3::5::6", "::"),
     ["line 2", "expected 4 fields", "found 5"]),
    ("uir_bad", read_user_item_rating, ["0 0 3.0", "1 1 five", "1 2 4.0"],
     ["line 2", "'rating'", "'five'"]),
    ("lightgcn_bad", read_lightgcn, ["0 1 2", "1 2", "2 3 x4 5"],
     ["line 3", "'item'", "'x4'", "integer id"]),
    ("lightgcn_bad_user", read_lightgcn, ["0 1 2", "u 2"], ["line 2", "'user'", "'u'"]),
]


@pytest.mark.parametrize("name, reader, lines, parts", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_line_field(tmp_path, name, reader, lines, parts):
    p = _write(tmp_path, f"{name}.data", lines)
    with pytest.raises(DataError) as err:
        reader(p)
    msg = str(err.value)
    assert f"{name}.data" in msg
    for part in parts:
        assert part in msg, (part, msg)


def test_csv_bad_rating_counts_header_line(tmp_path):
    p = _write(tmp_path, "ratings.csv", ["userId,movieId,rating,timestamp", "1,1,4.0,9",
                                         "1,2,3.5,9", "1,3,abc,9"], end="\r\n")
    with pytest.raises(DataError, match=r"ratings\.csv: line 4: field 'rating' is 'abc'"):
        read_movielens_csv(p)


def test_csv_wrong_header(tmp_path):
    p = _write(tmp_path, "ratings.csv", ["user,movie,rating,ts", "1,1,4.0,9"])
    with pytest.raises(DataError, match=r"ratings\.csv: line 1: header .*userId,movieId"):
        read_movielens_csv(p)


def test_rating_scale_for_generic_reader(tmp_path):
    p = _write(tmp_path, "r.tsv", ["a\tb\t1.5", "a\tc\t10"])
    msg = r"r\.tsv: line 2: field 'rating' is 10, outside .*\[1, 5\]"
    with pytest.raises(DataError, match=msg):
        read_delimited(p, columns=("user", "item", "rating"), rating_scale=(1, 5))


@pytest.mark.parametrize("reader", [read_movielens_100k, read_movielens_csv, read_lightgcn,
                                    read_user_item_rating, read_movielens_dat])
def test_missing_file(tmp_path, reader):
    with pytest.raises(DataError, match=r"nope\.txt: file not found"):
        reader(tmp_path / "nope.txt")


@pytest.mark.parametrize("reader", [read_movielens_100k, read_movielens_csv, read_lightgcn,
                                    read_user_item_rating, read_movielens_dat])
def test_empty_file(tmp_path, reader):
    p = tmp_path / "empty.txt"
    p.write_text("")
    with pytest.raises(DataError, match=r"empty\.txt: file is empty"):
        reader(p)


@pytest.mark.parametrize("reader, text", [
    (read_movielens_100k, "\n\n"),
    (read_movielens_csv, "userId,movieId,rating,timestamp\r\n"),
    (read_lightgcn, "0\n1\n"),
])
def test_no_data_lines(tmp_path, reader, text):
    p = tmp_path / "blank.txt"
    p.write_text(text)
    with pytest.raises(DataError, match=r"blank\.txt: .*no interactions"):
        reader(p)
