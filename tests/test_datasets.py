"""Data set registry, location rules and downloads (against a local HTTP server, never the net)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advrec.data import datasets
from advrec.data.datasets import (
    DatasetSpec,
    RemoteSource,
    data_dir,
    default_cache_dir,
    describe,
    fetch,
    list_datasets,
    load,
    load_split,
    register,
)
from advrec.data.io import read_movielens_100k
from advrec.errors import ConfigError, DataError
from advrec.outputs import MARKER
from conftest import QuietHandler

LOCAL = ["cfgan-ml100k", "ml-100k", "ml-1m-implicit", "ml-latest-small", "movielens-500"]
TINY_U_DATA = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n"


@pytest.fixture
def shared(data_dir, monkeypatch):
    """Point ADVREC_DATA_DIR at the real data sets."""
    monkeypatch.setenv("ADVREC_DATA_DIR", str(data_dir))
    return data_dir


# ----------------------------------------------------------------------------- locations
def test_data_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVREC_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert default_cache_dir() == tmp_path


def test_data_dir_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVREC_DATA_DIR", raising=False)
    (tmp_path / "shared" / "datasets").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert data_dir() == tmp_path / "shared" / "datasets"


def test_data_dir_falls_back_to_repo_then_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("ADVREC_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    repo_shared = Path(datasets.__file__).resolve().parents[4] / "shared" / "datasets"
    expected = repo_shared if repo_shared.is_dir() else tmp_path / "home" / ".cache" / "advrec"
    assert data_dir() == expected
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "advrec"


# ----------------------------------------------------------------------------- registry
def test_list_datasets(shared):
    infos = {i.name: i for i in list_datasets()}
    assert set(LOCAL) | {"ml-1m"} <= set(infos)
    for name in LOCAL:
        assert infos[name].local and infos[name].path == shared / name
    assert infos["ml-100k"].downloadable and infos["ml-1m"].downloadable
    assert not infos["movielens-500"].downloadable
    assert infos["ml-100k"].folds == ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
    assert infos["movielens-500"].presplit and not infos["ml-latest-small"].presplit
    assert "GroupLens" in infos["ml-100k"].licence


@pytest.mark.parametrize("name, shape, n", [
    ("movielens-500", (500, 3172), 73_871),
    ("ml-100k", (943, 1682), 100_000),
    ("ml-latest-small", (610, 9724), 100_836),
    ("ml-1m-implicit", (6040, 3706), 1_000_209),
    ("cfgan-ml100k", (943, 1653), 99_963),
])
def test_load(shared, name, shape, n):
    x = load(name)
    assert x.shape == shape and len(x) == n and x.name == name


@pytest.mark.parametrize("name, sizes, shape", [
    ("movielens-500", (73_371, 500), (500, 3172)),
    ("ml-1m-implicit", (800_167, 200_042), (6040, 3706)),
    ("cfgan-ml100k", (80_000, 19_963), (943, 1653)),
    ("ml-100k", (80_000, 20_000), (943, 1682)),
])
def test_load_split(shared, name, sizes, shape):
    train, test = load_split(name)
    assert (len(train), len(test)) == sizes
    assert train.shape == shape and train.same_space(test)


@pytest.mark.parametrize("fold, sizes", [("u3", (80_000, 20_000)), ("ub", (90_570, 9_430))])
def test_ml100k_folds(shared, fold, sizes):
    train, test = load_split("ml-100k", fold=fold)
    assert (len(train), len(test)) == sizes
    assert train.name == f"ml-100k/{fold}/train"
    assert np.all(test.user_counts[test.active_users] > 0)


def test_unseen_override(shared):
    with pytest.raises(DataError, match=r"testset\.tsv: 4 test interaction"):
        load_split("movielens-500", unseen="error")
    _, test = load_split("movielens-500", unseen="drop")
    assert len(test) == 496


def test_bad_fold(shared):
    with pytest.raises(ConfigError, match="u1, u2"):
        load_split("ml-100k", fold="u9")


def test_no_predefined_split(shared):
    with pytest.raises(DataError, match="no predefined train/test split.*splitter"):
        load_split("ml-latest-small")


def test_unknown_name_lists_known():
    with pytest.raises(DataError, match="unknown data set 'ml-2k'.*ml-100k.*movielens-500"):
        load("ml-2k")
    with pytest.raises(DataError, match="known data sets"):
        describe("nope")


def test_missing_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVREC_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        load("movielens-500")
    msg = str(err.value)
    assert str(tmp_path / "movielens-500") in msg and "ADVREC_DATA_DIR" in msg
    with pytest.raises(DataError, match=r"fetch\('ml-1m'\)"):
        load("ml-1m")


def test_describe(shared):
    d = describe("movielens-500")
    assert (d["users"], d["items"], d["interactions"]) == (500, 3172, 73_871)
    assert (d["train_interactions"], d["test_interactions"]) == (73_371, 500)
    assert d["density"] == pytest.approx(73_871 / (500 * 3172))
    assert d["has_ratings"] and d["has_timestamps"] and d["presplit"]
    c = describe("ml-1m-implicit")
    assert not c["has_ratings"] and c["interactions"] == 1_000_209
    s = describe("ml-latest-small")
    assert (s["rating_min"], s["rating_max"]) == (0.5, 5.0) and not s["presplit"]


def test_register_rejects_duplicates():
    spec = DatasetSpec(name="ml-100k", description="", protocol="", licence="", folder="x",
                       files=("u.data",), reader=read_movielens_100k, all_file="u.data")
    with pytest.raises(ConfigError, match="already registered"):
        register(spec)


# ----------------------------------------------------------------------------- download
def _zip(path: Path, members: dict[str, str | bytes]) -> str:
    """Write a zip with the given members; returns its sha256."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path):
    c = tmp_path / "cache"
    c.mkdir()
    return c


def test_fetch_with_hash_then_load(server, cache, monkeypatch):
    root, base = server
    digest = _zip(root / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA, "ml-100k/README": "hi"})
    folder = fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip",
                   known_hash=f"sha256:{digest}")
    assert folder == cache / "ml-100k"
    # advrec's ownership marker (advrec.outputs) sits beside the data set's files
    assert sorted(p.name for p in folder.iterdir() if p.name != MARKER) == ["README", "u.data"]
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]  # no zip or temp folder left
    x = load("ml-100k", root=cache)
    assert len(x) == 3 and x.shape == (2, 2)
    monkeypatch.setenv("ADVREC_DATA_DIR", str(cache))
    assert len(load("ml-100k")) == 3
    # already there: no second request unless forced
    n = len(QuietHandler.requests_seen)
    assert fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip") == folder
    assert len(QuietHandler.requests_seen) == n
    digest = _zip(root / "ml-100k.zip", {"u.data": TINY_U_DATA + "3\t30\t1\t881250952\n"})
    fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", known_hash=digest, force=True)
    assert len(load("ml-100k", root=cache)) == 4  # a zip without a top folder works too
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]


def test_fetch_wrong_hash_leaves_nothing(server, cache):
    root, base = server
    _zip(root / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA})
    with pytest.raises(DataError, match="failed its checksum"):
        fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", known_hash="0" * 64)
    assert list(cache.iterdir()) == []


def test_builtin_hash_applies_to_mirrors(server, cache, monkeypatch):
    """ADVREC_DOWNLOAD_URL swaps the host, but the GroupLens checksum still guards the bytes."""
    root, base = server
    _zip(root / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA})
    monkeypatch.setenv("ADVREC_DOWNLOAD_URL", base)
    with pytest.raises(DataError, match="md5:0e33842e24a9c977be4e0107933c0723"):
        fetch("ml-100k", cache_dir=cache)
    assert list(cache.iterdir()) == []
    assert QuietHandler.requests_seen == ["/ml-100k.zip"]


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/advrec-evil.txt", "ml-100k/../../evil.txt",
                                  "C:/evil.txt"])
def test_zip_slip_refused(server, cache, evil):
    root, base = server
    digest = _zip(root / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA, evil: "pwned"})
    with pytest.raises(DataError, match="outside the target folder"):
        fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", known_hash=digest)
    assert list(cache.iterdir()) == []
    assert not (cache.parent / "evil.txt").exists()


def test_zip_symlink_member_refused(server, cache):
    root, base = server
    path = root / "ml-100k.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", TINY_U_DATA)
        link = zipfile.ZipInfo("ml-100k/link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="'ml-100k/link'"):
        fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", known_hash=digest)
    assert list(cache.iterdir()) == []


def test_archive_without_expected_file(server, cache):
    root, base = server
    digest = _zip(root / "ml-100k.zip", {"ml-100k/README": "no data"})
    with pytest.raises(DataError, match="lacks u.data"):
        fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", known_hash=digest)
    assert list(cache.iterdir()) == []


def test_not_a_zip(server, cache):
    root, base = server
    (root / "ml-100k.zip").write_text("<html>not found</html>")
    digest = hashlib.sha256((root / "ml-100k.zip").read_bytes()).hexdigest()
    with pytest.raises(DataError, match="not a valid zip"):
        fetch("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", known_hash=digest)
    assert list(cache.iterdir()) == []


def test_http_error(server, cache):
    _, base = server
    with pytest.raises(DataError, match="could not download"):
        fetch("ml-100k", cache_dir=cache, url=f"{base}/missing.zip", known_hash="0" * 64)
    assert list(cache.iterdir()) == []


def test_member_checksum_for_latest_small(server, cache, data_dir):
    root, base = server
    _zip(root / "ml-latest-small.zip",
         {"ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\r\n1,1,4.0,9\r\n"})
    with pytest.raises(DataError, match="ratings.csv has sha256"):
        fetch("ml-latest-small", cache_dir=cache, url=f"{base}/ml-latest-small.zip")
    assert list(cache.iterdir()) == []
    real = (data_dir / "ml-latest-small" / "ratings.csv").read_bytes()
    _zip(root / "ml-latest-small.zip", {"ml-latest-small/ratings.csv": real.replace(b"\r", b"")})
    folder = fetch("ml-latest-small", cache_dir=cache, url=f"{base}/ml-latest-small.zip")
    assert len(load("ml-latest-small", root=cache)) == 100_836
    assert folder == cache / "ml-latest-small"


def test_fetch_local_only_data_set(cache):
    with pytest.raises(DataError, match="not downloadable"):
        fetch("movielens-500", cache_dir=cache)


def test_user_source_without_hash_warns(server, cache):
    root, base = server
    _zip(root / "mine.zip", {"mine/u.data": TINY_U_DATA})
    spec = DatasetSpec(name="test-mine", description="mine", protocol="none", licence="mine",
                       folder="mine", files=("u.data",), reader=read_movielens_100k,
                       all_file="u.data", remote=RemoteSource(f"{base}/mine.zip"))
    register(spec, overwrite=True)
    try:
        with pytest.warns(UserWarning, match="without a checksum"):
            fetch("test-mine", cache_dir=cache)
        assert len(load("test-mine", root=cache)) == 3
    finally:
        datasets._REGISTRY.pop("test-mine", None)
