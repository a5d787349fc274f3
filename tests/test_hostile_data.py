"""Hostile input to the data layer: every bad file, archive or argument gets one advrec error
naming the file and line/field (or the argument), nothing on disk changes, nothing hangs."""

from __future__ import annotations

import hashlib
import http.server
import socket
import struct
import threading
import time
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from advrec.data import datasets, filters, splits, stats
from advrec.data.datasets import DatasetSpec, RemoteSource, fetch, load, register
from advrec.data.interactions import Interactions
from advrec.data.io import (
    read_delimited,
    read_lightgcn,
    read_movielens_100k,
    read_movielens_csv,
    read_movielens_dat,
    read_split,
    read_user_item_rating,
)
from advrec.data.prepare import DataSpec
from advrec.data.sampling import UniformSampler, sample_items
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import AdvrecError, DataError, OutputError, ParamError
from advrec.outputs import MARKER
from conftest import snapshot

HUGE = ["9223372036854775808", "18446744073709551617", "9223372036854775999"]
CSV_HEADER = "userId,movieId,rating,timestamp"


def _lines(rows, sep: str) -> str:
    return "".join(sep.join(map(str, r)) + "\n" for r in rows)


def _refused(call, path: Path, *parts: str, error=DataError) -> str:
    """Run ``call``; it must raise ``error`` naming ``path`` and every part; the folder holding
    ``path`` must be unchanged. Returns the message."""
    before = snapshot(path.parent)
    with pytest.raises(error) as err:
        call()
    msg = str(err.value)
    assert isinstance(err.value, AdvrecError)
    assert str(path) in msg, msg
    for part in parts:
        assert part in msg, (part, msg)
    assert "\n" not in msg and "Traceback" not in msg
    assert snapshot(path.parent) == before
    return msg


# ============================================================================ readers
# ---------------------------------------------------------------------------- int64 ids
def _huge_users(fmt: str) -> str:
    rows = [(u, 10, 5, 881250949) for u in HUGE]
    if fmt == "tsv":
        return _lines(rows, "\t")
    if fmt == "dat":
        return _lines(rows, "::")
    if fmt == "csv":
        return CSV_HEADER + "\n" + _lines(rows, ",")
    if fmt == "uir":
        return _lines([r[:3] for r in rows], " ")
    return _lines([(u, 10, 11) for u in HUGE], " ")  # LightGCN: user item item


OVERFLOW = [
    ("ml100k", read_movielens_100k, "tsv", 1),
    ("dat", read_movielens_dat, "dat", 1),
    ("csv", read_movielens_csv, "csv", 2),
    ("cfgan", read_user_item_rating, "uir", 1),
    ("lightgcn", read_lightgcn, "lightgcn", 1),
    ("delimited_auto", read_delimited, "tsv", 1),
    ("delimited_int", partial(read_delimited, id_type="int"), "tsv", 1),
]


@pytest.mark.parametrize("label, reader, fmt, line", OVERFLOW, ids=[c[0] for c in OVERFLOW])
def test_ids_beyond_int64_are_refused_not_wrapped(tmp_path, label, reader, fmt, line):
    """2**63, 2**64 + 1 and 2**63 + 191 used to wrap into ONE user; now line 1 is refused."""
    p = tmp_path / f"{label}.data"
    p.write_text(_huge_users(fmt))
    _refused(lambda: reader(p), p, f"line {line}", "'user'", "int64", HUGE[0])


def test_huge_ids_stay_distinct_as_text(tmp_path):
    """Asked for text ids, the three huge ids are three users (nothing collapses)."""
    p = tmp_path / "big.tsv"
    p.write_text(_huge_users("tsv"))
    x = read_delimited(p, id_type="str")
    assert x.n_users == 3 and sorted(x.user_ids.tolist()) == sorted(HUGE)


@pytest.mark.parametrize("line_text, field", [
    ("1\t9223372036854775808\t5\t881250949", "'item'"),
    ("-9223372036854775809\t10\t5\t881250949", "'user'"),
    ("1\t10\t5\t99999999999999999999", "'timestamp'"),
])
def test_other_int64_fields(tmp_path, line_text, field):
    p = tmp_path / "u.data"
    p.write_text("1\t10\t5\t881250949\n" + line_text + "\n")
    _refused(lambda: read_movielens_100k(p), p, "line 2", field, "int64")


# ---------------------------------------------------------------------------- damaged lines
BAD_LINES = [
    ("nan_rating", "2\t20\tnan\t881250950", "'rating'", "finite"),
    ("inf_rating", "2\t20\tinf\t881250950", "'rating'", "finite"),
    ("word_rating", "2\t20\tfive\t881250950", "'rating'", "'five'"),
    ("float32_overflow", "2\t20\t1e39\t881250950", "'rating'", "float32"),
    ("negative_time", "2\t20\t3\t-5", "'timestamp'", "non-negative"),
    ("fractional_time", "2\t20\t3\t881250950.5", "'timestamp'", "integer"),
    ("too_few", "2\t20", "'rating'", "4 fields"),
    ("stray_quote", '2\t"20\t3\t881250950', "'item'", "'\"20'"),
]


@pytest.mark.parametrize("label, text, field, expected", BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_damaged_line_names_line_and_field(tmp_path, label, text, field, expected):
    p = tmp_path / f"{label}.data"
    p.write_text("1\t10\t5\t881250949\n" + text + "\n3\t30\t4\t881250951\n")
    _refused(lambda: read_movielens_100k(p, rating_scale=None), p, "line 2", field, expected)


def test_nan_rating_in_csv(tmp_path):
    p = tmp_path / "ratings.csv"
    p.write_text(f"{CSV_HEADER}\n1,1,4.0,9\n1,2,NaN,9\n")
    _refused(lambda: read_movielens_csv(p), p, "line 3", "'rating'", "finite number")


def test_unterminated_csv_quote_names_its_line(tmp_path):
    p = tmp_path / "ratings.csv"
    p.write_text(f'{CSV_HEADER}\n1,1,4.0,9\n1,"2,3.0,9\n1,3,3.0,9\n')
    _refused(lambda: read_movielens_csv(p), p, "line 3", "quote")


def test_quoted_line_break_in_csv(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text('u1,"a\nb",4\nu2,c,3\n')
    _refused(lambda: read_delimited(p, ("user", "item", "rating"), sep=","), p, "line 1",
             "'item'", "line break")


# ---------------------------------------------------------------------------- not text
ALL_READERS = [read_movielens_100k, read_movielens_dat, read_movielens_csv,
               read_user_item_rating, read_lightgcn]
READER_IDS = ["ml100k", "dat", "csv", "cfgan", "lightgcn"]


@pytest.mark.parametrize("reader", ALL_READERS, ids=READER_IDS)
def test_binary_file(tmp_path, reader):
    p = tmp_path / "picture.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
    _refused(lambda: reader(p), p, "line", "NUL")


@pytest.mark.parametrize("reader", [read_movielens_100k, read_user_item_rating,
                                    read_movielens_csv], ids=["ml100k", "cfgan", "csv"])
def test_not_utf8(tmp_path, reader):
    p = tmp_path / "latin1.txt"
    rows = [CSV_HEADER] if reader is read_movielens_csv else []
    sep = "," if reader is read_movielens_csv else "\t" if reader is read_movielens_100k else " "
    fields = ["1", "10", "5", "9"] if reader is not read_user_item_rating else ["1", "10", "5"]
    rows += [sep.join(fields), sep.join(fields)]
    rows[-1] = rows[-1].replace("10", "1\xe9")  # é in latin-1: byte 0xe9, not UTF-8
    p.write_bytes("\n".join(rows).encode("latin-1") + b"\n")
    _refused(lambda: reader(p), p, f"line {len(rows)}", "utf-8")


@pytest.mark.parametrize("reader", ALL_READERS, ids=READER_IDS)
def test_empty_folder_and_missing(tmp_path, reader):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    _refused(lambda: reader(empty), empty, "empty")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    _refused(lambda: reader(folder), folder, "folder")
    missing = tmp_path / "missing.txt"
    _refused(lambda: reader(missing), missing, "not found")


@pytest.mark.parametrize("reader, data, line", [
    (read_movielens_100k, b"1\t" * 1_000_000, 1),
    (read_user_item_rating, b"1 2 3\n" + b"7 " * 1_000_000, 2),
    (read_movielens_dat, b"1::2::3::4\n" + b"9::" * 700_000, 2),
    (read_movielens_csv, b"u" * 3_000_000, 1),
    (read_lightgcn, b"0 1 2\n" + b"9" * 3_000_000, 2),
], ids=["tsv_fields", "cfgan_fields", "dat_fields", "csv_header", "lightgcn_token"])
def test_enormous_line_is_refused_quickly(tmp_path, reader, data, line):
    """pandas needs quadratic time for a first line of 1M fields; the reader counts first."""
    p = tmp_path / "huge_line.txt"
    p.write_bytes(data)
    start = time.perf_counter()
    _refused(lambda: reader(p), p, f"line {line}")
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("token", ["+1", "-1", "1_000", "\u0663"])
def test_lightgcn_ids_are_plain_digits(tmp_path, token):
    """Python's int() reads '+1', '1_000' and Arabic digits; a LightGCN id is ASCII digits."""
    p = tmp_path / "train.txt"
    p.write_text(f"0 1 2\n1 {token} 3\n", encoding="utf-8")
    _refused(lambda: read_lightgcn(p), p, "line 2", "'item'", "non-negative integer id")


def test_lightgcn_lone_cr_ends_lines(tmp_path):
    p = tmp_path / "train.txt"
    p.write_bytes(b"0 5 6\r1 7\r")
    x = read_lightgcn(p)
    assert x.n_users == 2 and x.user_counts.tolist() == [2, 1]


def test_boolean_words_stay_text_ids(tmp_path):
    """pandas reads 'True' as a boolean; as an id it must not become user 1."""
    p = tmp_path / "a.tsv"
    p.write_text("True\t1\n1\t2\n")
    x = read_delimited(p, columns=("user", "item"))
    assert sorted(x.user_ids.tolist()) == ["1", "True"]


def test_read_split_names_the_bad_file(tmp_path):
    good = tmp_path / "train.tsv"
    good.write_text("1\t10\t5\t9\n")
    bad = tmp_path / "test.tsv"
    bad.write_text("1\t10\t5\t9\n18446744073709551617\t10\t5\t9\n")
    _refused(lambda: read_split(good, bad), bad, "line 2", "'user'", "int64")


@pytest.mark.parametrize("kwargs, name", [
    ({"sep": ""}, "sep"), ({"skip_rows": -1}, "skip_rows"), ({"skip_rows": 1.5}, "skip_rows"),
    ({"header": "yes"}, "header"), ({"rating_scale": (5, 1)}, "rating_scale"),
    ({"rating_scale": (1, float("nan"))}, "rating_scale"), ({"encoding": "klingon"}, "encoding"),
])
def test_reader_arguments(tmp_path, kwargs, name):
    p = tmp_path / "a.tsv"
    p.write_text("1\t2\t3\n")
    with pytest.raises(ParamError) as err:
        read_delimited(p, ("user", "item", "rating"), **kwargs)
    assert err.value.name == name


# ============================================================================ Interactions
@pytest.mark.parametrize("kwargs, name, part", [
    ({"ratings": [4.0, float("nan"), 3.0]}, "ratings", "value 1 is nan"),
    ({"ratings": [4.0, 3.0, float("inf")]}, "ratings", "value 2 is inf"),
    ({"ratings": [1e300, 3.0, 3.0]}, "ratings", "float32"),
    ({"ratings": ["a", "b", "c"]}, "ratings", "numbers"),
    ({"timestamps": [1, 2.5, 3]}, "timestamps", "value 1 is 2.5"),
    ({"timestamps": [1, float("nan"), 3]}, "timestamps", "nan"),
    ({"users": [True, False, True]}, "users", "booleans"),
    ({"items": [1.0, float("nan"), 2.0]}, "items", "nan"),
    ({"users": np.array([1, "a", 2], dtype=object)}, "users", "mixes"),
    ({"user_ids": [1, 2, 2]}, "user_ids", "more than once"),
])
def test_from_raw_refuses_bad_values(kwargs, name, part):
    args = {"users": [1, 2, 1], "items": [10, 20, 30], **kwargs}
    with pytest.raises(ParamError) as err:
        Interactions.from_raw(**args)
    assert err.value.name == name and part in str(err.value)


def test_from_raw_lengths_and_internal_ids():
    with pytest.raises(DataError, match="equal length.*3 users and 2 items"):
        Interactions.from_raw([1, 2, 3], [1, 2])
    with pytest.raises(DataError, match="ratings has 2 values for 3"):
        Interactions.from_raw([1, 2, 3], [1, 2, 3], [1.0, 2.0])
    with pytest.raises(ParamError, match="users: expected internal integer ids"):
        Interactions(np.array([0.7]), np.array([0]), np.array([1]), np.array([1]))
    x = Interactions.from_raw([1, 2], [1, 2])
    with pytest.raises(ParamError, match="mask_or_index"):
        x.subset(np.array([0.5]))
    with pytest.raises(ParamError, match="mask_or_index"):
        x.subset(np.array([True]))


# ============================================================================ downloads
TINY = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n"


@pytest.fixture
def cache(tmp_path):
    c = tmp_path / "cache"
    c.mkdir()
    return c


def _zip(path: Path, members: dict[str, str | bytes],
         compression: int = zipfile.ZIP_DEFLATED) -> str:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def custom(server):
    """Register data set 'hostile-test' (folder 'hostile') served from the local server."""
    root, base = server

    def make(**remote_kwargs) -> str:
        remote = RemoteSource(f"{base}/hostile.zip", **remote_kwargs)
        register(DatasetSpec(name="hostile-test", description="test", protocol="none",
                             licence="test", folder="hostile", files=("u.data",),
                             reader=read_movielens_100k, all_file="u.data", remote=remote),
                 overwrite=True)
        return "hostile-test"

    yield root, base, make
    datasets._REGISTRY.pop("hostile-test", None)


def _fetch_refused(call, cache: Path, *parts: str, error=DataError) -> str:
    before = snapshot(cache)
    with pytest.raises(error) as err:
        call()
    msg = str(err.value)
    for part in parts:
        assert part in msg, (part, msg)
    assert "\n" not in msg and "pooch" not in msg.lower() and "registry" not in msg.lower()
    assert snapshot(cache) == before  # no temp folder, no half-written data set
    return msg


def test_zip_bomb_over_the_size_limit(custom, cache):
    root, base, make = custom
    name = make(max_unpacked_bytes=50_000)
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY, "hostile/pad": b"0" * 60_000})
    assert (root / "hostile.zip").stat().st_size < 2_000  # a tiny archive ...
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest), cache,
                   f"{base}/hostile.zip", "60", "max_unpacked_bytes")


def test_zip_bomb_compression_ratio(custom, cache):
    """2 MiB of zeros deflate to ~2 KB: a ratio of ~1000, refused under the default limits."""
    root, base, make = custom
    name = make()
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY, "hostile/zeros": bytes(2 << 20)})
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest), cache,
                   "'hostile/zeros'", "max_ratio")


def test_many_small_members_bounded_by_the_archive_ratio(custom, cache):
    """Members under 1 MiB escape the per-member ratio check, but not the whole archive's:
    a zip of a few KB may not unpack to 1.5 MB (more than 200 times its size)."""
    root, base, make = custom
    name = make()
    members = {f"hostile/z{k}": bytes(500_000) for k in range(3)}
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY, **members})
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest), cache,
                   "declares 1500", "max_ratio")


def _lie_about_size(path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size of ``member`` in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<I", data, info.header_offset + 22, size)
    start = 0
    while (central := data.find(b"PK\x01\x02", start)) >= 0:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_len] == member.encode():
            struct.pack_into("<I", data, central + 24, size)
        start = central + 4
    path.write_bytes(bytes(data))


def test_zip_header_that_lies_about_sizes(custom, cache):
    """The headers declare 100 bytes; the data inflates to 40 KB: refused, nothing kept."""
    root, base, make = custom
    name = make(max_unpacked_bytes=10_000)
    path = root / "hostile.zip"
    _zip(path, {"hostile/u.data": TINY, "hostile/pad": b"x" * 40_000})
    _lie_about_size(path, "hostile/pad", 100)
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest), cache,
                   "'hostile/pad'", "refusing the archive")


def test_bytes_written_are_counted_even_if_declared_sizes_pass(custom, cache, monkeypatch):
    """Second line of defence: with the declared-size check out of the way, the bytes
    actually written still stop the archive at the limit."""
    root, base, make = custom
    name = make(max_unpacked_bytes=10_000)
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY, "hostile/pad": b"y" * 40_000})
    monkeypatch.setattr(datasets, "_check_sizes", lambda *args: None)
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest), cache,
                   "more than 10000 bytes", "max_unpacked_bytes")


def test_too_many_members(custom, cache, monkeypatch):
    root, base, make = custom
    name = make()
    monkeypatch.setattr(datasets, "MAX_MEMBERS", 5)
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY,
                                         **{f"hostile/f{k}": "" for k in range(10)}})
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest), cache,
                   "11 entries", "limit of 5")


def test_member_with_a_wrong_hash(custom, cache):
    root, base, make = custom
    good = hashlib.sha256(TINY.encode()).hexdigest()
    name = make(member_sha256={"u.data": (good,)})
    _zip(root / "hostile.zip", {"hostile/u.data": TINY.replace("5", "1")})
    _fetch_refused(lambda: fetch(name, cache_dir=cache), cache, "u.data has sha256", good)
    # the right bytes install, and members without a known hash are left out
    _zip(root / "hostile.zip", {"hostile/u.data": TINY, "hostile/unchecked.sh": "rm -rf ~"})
    folder = fetch(name, cache_dir=cache)
    assert sorted(p.name for p in folder.iterdir() if p.name != MARKER) == ["u.data"]
    assert len(load(name, root=cache)) == 3


def test_fetch_refuses_a_users_folder(custom, cache):
    root, base, make = custom
    name = make()
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY})
    mine = cache / "hostile"
    mine.mkdir()
    (mine / "thesis.tex").write_text("three years of work")
    for force in (False, True):
        msg = _fetch_refused(lambda f=force: fetch(name, cache_dir=cache, known_hash=digest,
                                                   force=f),
                             cache, str(mine), "did not write", error=OutputError)
        assert "not empty" in msg


def test_force_refetch_keeps_the_users_files(custom, cache):
    root, base, make = custom
    name = make()
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY, "hostile/old.txt": "v1",
                                         "hostile/docs/a.txt": "nested"})
    folder = fetch(name, cache_dir=cache, known_hash=digest)
    assert (folder / MARKER).is_file() and (folder / "docs" / "a.txt").is_file()
    (folder / "notes.txt").write_text("mine")
    (folder / "docs" / "mine.txt").write_text("also mine")
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY + "3\t30\t1\t881250952\n"})
    assert fetch(name, cache_dir=cache, known_hash=digest, force=True) == folder
    assert (folder / "notes.txt").read_text() == "mine"  # the user's file stays
    assert (folder / "docs" / "mine.txt").read_text() == "also mine"
    assert not (folder / "old.txt").exists()  # advrec's earlier files are gone
    assert not (folder / "docs" / "a.txt").exists()
    assert len(load(name, root=cache)) == 4
    assert sorted(p.name for p in cache.iterdir()) == ["hostile"]


def test_archive_member_named_like_a_users_file(custom, cache):
    root, base, make = custom
    name = make()
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY})
    folder = fetch(name, cache_dir=cache, known_hash=digest)
    (folder / "README").write_text("my readme")
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY, "hostile/README": "theirs"})
    _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash=digest, force=True), cache,
                   str(folder / "README"), "did not write", error=OutputError)


def test_another_data_sets_download_needs_force(custom, cache):
    root, base, make = custom
    name = make()
    digest = _zip(root / "hostile.zip", {"hostile/u.data": TINY})
    folder = fetch(name, cache_dir=cache, known_hash=digest)
    other = DatasetSpec(name="hostile-other", description="", protocol="", licence="",
                        folder="hostile", files=("v.data",), reader=read_movielens_100k,
                        all_file="v.data", remote=RemoteSource(f"{base}/other.zip"))
    register(other, overwrite=True)
    try:
        digest = _zip(root / "other.zip", {"v.data": TINY})
        _fetch_refused(lambda: fetch("hostile-other", cache_dir=cache, known_hash=digest),
                       cache, str(folder), "'hostile-test'", "force=True", error=OutputError)
        fetch("hostile-other", cache_dir=cache, known_hash=digest, force=True)
        assert sorted(p.name for p in folder.iterdir() if p.name != MARKER) == ["v.data"]
    finally:
        datasets._REGISTRY.pop("hostile-other", None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused(custom, cache):
    _, _, make = custom
    url = f"http://127.0.0.1:{_closed_port()}/hostile.zip"
    msg = _fetch_refused(lambda: fetch(make(), cache_dir=cache, url=url, known_hash="0" * 64),
                         cache, f"could not download {url}", "refused")
    assert msg.count(url) == 1


def test_http_404(custom, cache):
    _, base, make = custom
    url = f"{base}/nope.zip"
    _fetch_refused(lambda: fetch(make(), cache_dir=cache, url=url, known_hash="0" * 64), cache,
                   f"could not download {url}", "HTTP 404")


def test_checksum_mismatch_is_one_line(custom, cache):
    root, base, make = custom
    _zip(root / "hostile.zip", {"hostile/u.data": TINY})
    actual = hashlib.sha256((root / "hostile.zip").read_bytes()).hexdigest()
    _fetch_refused(lambda: fetch(make(), cache_dir=cache, known_hash="md5:" + "0" * 32), cache,
                   f"{base}/hostile.zip", "failed its checksum", "expected md5:" + "0" * 32)
    _fetch_refused(lambda: fetch(make(), cache_dir=cache, known_hash="1" * 64), cache,
                   f"got sha256:{actual}")


def test_download_bigger_than_the_limit(custom, cache):
    root, base, make = custom
    name = make(max_unpacked_bytes=1000)
    (root / "hostile.zip").write_bytes(b"x" * (2 << 20))  # 2 MiB > 1000 + 1 MiB
    msg = _fetch_refused(lambda: fetch(name, cache_dir=cache, known_hash="0" * 64), cache,
                         f"could not download {base}/hostile.zip", "limit")
    assert msg.count("could not download") == 1


class _Endless(http.server.BaseHTTPRequestHandler):
    """Streams zeros without a Content-Length, as a hostile server might, for ever."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(bytes(1 << 16))
        except OSError:  # the client hung up
            pass


def test_endless_download_is_cut_at_the_limit(custom, cache):
    _, _, make = custom
    name = make(max_unpacked_bytes=1000)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/endless.zip"
    try:
        _fetch_refused(lambda: fetch(name, cache_dir=cache, url=url, known_hash="0" * 64), cache,
                       f"could not download {url}", "exceeds the limit")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("kwargs, name", [
    ({"url": "file:///etc/passwd"}, "url"), ({"url": "ftp://example.invalid/x.zip"}, "url"),
    ({"known_hash": "sha256:xyz"}, "known_hash"), ({"known_hash": "crc32:1234"}, "known_hash"),
    ({"force": "yes"}, "force"), ({"cache_dir": 42}, "cache_dir"),
])
def test_fetch_arguments(cache, kwargs, name):
    with pytest.raises(ParamError) as err:
        fetch("ml-100k", **{"cache_dir": cache, **kwargs})
    assert err.value.name == name
    assert list(cache.iterdir()) == []


# ============================================================================ other arguments
def _data() -> Interactions:
    users = np.repeat(np.arange(6), 4)
    items = np.tile(np.arange(4), 6)
    return Interactions.from_raw(users, items, np.full(24, 4.0), np.arange(24))


ARGUMENTS = [
    (lambda d: splits.random_holdout(d, test_ratio=1.5), "test_ratio"),
    (lambda d: splits.random_holdout(d, test_ratio=float("nan")), "test_ratio"),
    (lambda d: splits.random_holdout(d, test_ratio="0.2"), "test_ratio"),
    (lambda d: splits.temporal_split(d, test_ratio=0.0), "test_ratio"),
    (lambda d: splits.leave_one_out(d, min_train=1.5), "min_train"),
    (lambda d: splits.leave_one_out(d, seed=-1), "seed"),
    (lambda d: splits.leave_one_out(d, seed=0.5), "seed"),
    (lambda d: splits.validation_split(d, "random", ratio=2), "ratio"),
    (lambda d: splits.temporal_split(d, drop_cold="no"), "drop_cold"),
    (lambda d: splits.leave_one_out([1, 2, 3]), "data"),
    (lambda d: filters.k_core(d, user_k=2.5), "user_k"),
    (lambda d: filters.k_core(d, item_k=-3), "item_k"),
    (lambda d: filters.binarize(d, threshold=float("nan")), "threshold"),
    (lambda d: filters.deduplicate(d, policy=5), "policy"),
    (lambda d: stats.subsample(d, n_users=float("nan")), "n_users"),
    (lambda d: stats.subsample(d, n_items=2.5), "n_items"),
    (lambda d: stats.long_tail_share([1, 2], head=1.5), "head"),
    (lambda d: UniformSampler(d).negatives(np.array([0]), n=10**12), "n"),
    (lambda d: UniformSampler(d).negatives(np.arange(6), n=2**27), "n"),
    (lambda d: UniformSampler(d).negatives(np.array([0]), n=1.5), "n"),
    (lambda d: UniformSampler(d).negatives(np.array([0.7])), "users"),
    (lambda d: UniformSampler(d, seed="x"), "seed"),
    (lambda d: next(UniformSampler(d).batches(10.5)), "batch_size"),
    (lambda d: sample_items(4, sp.csr_matrix((6, 3)), np.array([0]), 1, 0), "exclude_csr"),
    (lambda d: sample_items(4, d.csr, np.array([0]), 10**9, 0), "n"),
    (lambda d: synthetic_interactions(10**12, 10**12, 0), "n_users"),
    (lambda d: synthetic_interactions(10, 10, 5.5), "n_interactions"),
    (lambda d: synthetic_interactions(30, 30, 10, popularity_exponent=float("nan")),
     "popularity_exponent"),
    (lambda d: synthetic_interactions(30, 30, 10, activity_sigma=1e6), "activity_sigma"),
    (lambda d: synthetic_interactions(30, 30, 10, seed=-5), "seed"),
    (lambda d: DataSpec(test_ratio=1.5), "test_ratio"),
    (lambda d: DataSpec(min_user_count=-1), "min_user_count"),
    (lambda d: DataSpec(seed=1.5), "seed"),
]


@pytest.mark.parametrize("call, name", ARGUMENTS, ids=[a[1] for a in ARGUMENTS])
def test_hostile_arguments_name_the_argument(call, name):
    start = time.perf_counter()
    with pytest.raises(ParamError) as err:
        call(_data())
    assert err.value.name == name, str(err.value)
    assert time.perf_counter() - start < 5  # refused up front, no allocation first


def test_sampler_lookups_are_bounds_checked():
    """The compiled lookup reads memory unchecked; out-of-range ids must be refused first."""
    sampler = UniformSampler(_data())
    with pytest.raises(DataError, match=r"0\.\.3.*\(items\)"):
        sampler.is_positive(np.array([0]), np.array([10**9]))
    with pytest.raises(DataError, match="users"):
        sampler.is_positive(np.array([-1]), np.array([0]))
