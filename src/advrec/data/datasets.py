"""Registry of named data sets: where they live on disk, how to read them, and how to download.

Local copies are looked up in :func:`data_dir` (``ADVREC_DATA_DIR`` or ``../shared/datasets``)
and in the download cache (:func:`default_cache_dir`). Downloads go through :func:`fetch`, which
checks the archive hash with pooch and unpacks zips itself, refusing members that would leave
the target folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pooch

from advrec.data import io
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError

__all__ = [
    "DatasetInfo",
    "DatasetSpec",
    "RemoteSource",
    "data_dir",
    "default_cache_dir",
    "describe",
    "fetch",
    "list_datasets",
    "load",
    "load_split",
    "register",
]

ENV_DATA_DIR = "ADVREC_DATA_DIR"
ENV_DOWNLOAD_URL = "ADVREC_DOWNLOAD_URL"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"

# GroupLens publishes an MD5 next to each zip (e.g. ml-100k.zip.md5) and no SHA-256, so the built-in
# archive checks are those MD5 sums. ml-latest-small has no stable published sum; its extracted
# ratings.csv is checked against the SHA-256 of the staged copy (CRLF, or the same bytes with LF).
ML_100K_ZIP_HASH = "md5:0e33842e24a9c977be4e0107933c0723"
ML_1M_ZIP_HASH = "md5:c4d9eecfca2ab87c1945afe126590906"
ML_LATEST_SMALL_RATINGS_SHA256 = (
    "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",  # CRLF line endings
    "80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8",  # LF line endings
)

GROUPLENS_NO_REDIST = ("GroupLens MovieLens terms: research use only, acknowledge GroupLens "
                       "(Harper & Konstan 2015), no redistribution without permission, "
                       "no commercial use")
GROUPLENS_REDIST = ("GroupLens MovieLens terms: research use only, acknowledge GroupLens "
                    "(Harper & Konstan 2015), redistribution only under the same terms, "
                    "no commercial use")


@dataclass(frozen=True)
class RemoteSource:
    """A downloadable zip: its URL, a pooch hash (``"md5:…"``/``"sha256:…"``) and member checks."""

    url: str
    known_hash: str | None = None
    member_sha256: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSpec:
    """How one named data set is stored (``folder``/``files``) and read (``reader``).

    ``all_file`` holds every interaction; ``splits`` maps a fold name to its (train, test) files;
    ``unseen`` is the default policy for test users/items absent from training (see read_split).
    """

    name: str
    description: str
    protocol: str
    licence: str
    folder: str
    files: tuple[str, ...]
    reader: Callable[..., Interactions]
    all_file: str | None = None
    splits: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    default_fold: str | None = None
    unseen: str = "error"
    remote: RemoteSource | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`list_datasets` reports about one registered data set."""

    name: str
    description: str
    local: bool
    downloadable: bool
    path: Path | None
    protocol: str
    presplit: bool
    folds: tuple[str, ...]
    licence: str


_ML100K_FOLDS = {f: (f"{f}.base", f"{f}.test") for f in ("u1", "u2", "u3", "u4", "u5", "ua", "ub")}

_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec, overwrite: bool = False) -> None:
    """Add a data set to the registry (``overwrite`` to replace one with the same name)."""
    if spec.name in _REGISTRY and not overwrite:
        raise ConfigError(f"data set {spec.name!r} is already registered (pass overwrite=True)")
    if spec.all_file is None and not spec.splits:
        raise ConfigError(f"data set {spec.name!r} needs all_file or splits")
    _REGISTRY[spec.name] = spec


def _register_builtins() -> None:
    register(DatasetSpec(
        name="movielens-500",
        description="500 users of the NCF MovieLens-1M leave-one-out split (HandsOn-RecSys2020)",
        protocol="predefined leave-one-out (latest rating per user); rank the held-out item "
                 "among all unrated items (HR/nDCG/AUC@K); 4 test items are unseen in training "
                 "and kept in the 3,172-item space",
        licence=GROUPLENS_NO_REDIST, folder="movielens-500",
        files=("trainingset.tsv", "testset.tsv"), reader=io.read_movielens_100k,
        splits={"default": ("trainingset.tsv", "testset.tsv")}, default_fold="default",
        unseen="keep",
    ))
    register(DatasetSpec(
        name="ml-100k",
        description="MovieLens 100K (GroupLens): 100,000 ratings 1-5 of 943 users on 1,682 movies",
        protocol="explicit ratings or top-N; predefined folds u1..u5 (80/20) and ua/ub "
                 "(10 test ratings per user); test-only items are kept",
        licence=GROUPLENS_NO_REDIST, folder="ml-100k", files=("u.data",),
        reader=io.read_movielens_100k, all_file="u.data", splits=_ML100K_FOLDS,
        default_fold="u1", unseen="keep",
        remote=RemoteSource(f"{GROUPLENS_URL}/ml-100k.zip", ML_100K_ZIP_HASH),
    ))
    register(DatasetSpec(
        name="ml-latest-small",
        description="MovieLens latest-small (GroupLens, 2018): 100,836 half-star ratings, "
                    "610 users, 9,724 movies",
        protocol="development set without a predefined split (use a splitter)",
        licence=GROUPLENS_REDIST, folder="ml-latest-small", files=("ratings.csv",),
        reader=io.read_movielens_csv, all_file="ratings.csv",
        remote=RemoteSource(f"{GROUPLENS_URL}/ml-latest-small.zip", None,
                            {"ratings.csv": ML_LATEST_SMALL_RATINGS_SHA256}),
    ))
    register(DatasetSpec(
        name="ml-1m",
        description="MovieLens 1M (GroupLens): 1,000,209 ratings 1-5 of 6,040 users "
                    "(download only)",
        protocol="no predefined split (use a splitter)",
        licence=GROUPLENS_NO_REDIST, folder="ml-1m", files=("ratings.dat",),
        reader=io.read_movielens_dat, all_file="ratings.dat",
        remote=RemoteSource(f"{GROUPLENS_URL}/ml-1m.zip", ML_1M_ZIP_HASH),
    ))
    register(DatasetSpec(
        name="ml-1m-implicit",
        description="All MovieLens-1M ratings as implicit interactions, LightGCN format (ReSN)",
        protocol="predefined per-user ~80/20 hold-out; full-ranking Recall/NDCG@K; 23 test "
                 "items are unseen in training and kept in the 3,706-item space",
        licence=GROUPLENS_NO_REDIST, folder="ml-1m-implicit", files=("train.txt", "test.txt"),
        reader=io.read_lightgcn, splits={"default": ("train.txt", "test.txt")},
        default_fold="default", unseen="keep",
    ))
    register(DatasetSpec(
        name="cfgan-ml100k",
        description="MovieLens-100K re-indexed and split 80/20 by the CFGAN authors",
        protocol="predefined 80/20 split; ratings as implicit positives; P/R/nDCG/MRR@{5,20} "
                 "over items not in the user's train set",
        licence=GROUPLENS_NO_REDIST, folder="cfgan-ml100k",
        files=("ML100K.train", "ML100K.test"), reader=io.read_user_item_rating,
        splits={"default": ("ML100K.train", "ML100K.test")}, default_fold="default",
    ))


_register_builtins()


# ----------------------------------------------------------------------------- locations
def data_dir() -> Path:
    """Where local data sets live: ``$ADVREC_DATA_DIR``, else ``../shared/datasets``, else cache.

    ``../shared/datasets`` is tried relative to the working directory, then to the repository.
    """
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    for candidate in (Path.cwd().parent / "shared" / "datasets",
                      repo.parent / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate
    return _home_cache()


def default_cache_dir() -> Path:
    """Where :func:`fetch` puts downloads: ``$ADVREC_DATA_DIR`` or ``~/.cache/advrec``."""
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env).expanduser() if env else _home_cache()


def _home_cache() -> Path:
    return Path.home() / ".cache" / "advrec"


def _spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise DataError(f"unknown data set {name!r}; known data sets: {known}") from None


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    if root is not None:
        return [Path(root)]
    out: list[Path] = []
    for d in (data_dir(), default_cache_dir()):
        if d not in out:
            out.append(d)
    return out


def _find(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path | None:
    """The first folder holding all of ``spec.files``, or None."""
    for base in _candidates(root):
        folder = base / spec.folder
        if all((folder / f).is_file() for f in spec.files):
            return folder
    return None


def _locate(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path:
    folder = _find(spec, root)
    if folder is not None:
        return folder
    looked = " and ".join(str(b / spec.folder) for b in _candidates(root))
    hint = (f", or download it with advrec.data.datasets.fetch({spec.name!r})"
            if spec.remote is not None else "")
    raise DataError(
        f"data set {spec.name!r} not found: looked for {', '.join(spec.files)} in {looked}; "
        f"set {ENV_DATA_DIR} to the folder that contains {spec.folder}/{hint}"
    )


# ----------------------------------------------------------------------------- public API
def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, with whether it is on disk and where it resolves."""
    return [info(name) for name in sorted(_REGISTRY)]


def info(name: str) -> DatasetInfo:
    """What the registry knows of one data set and where it resolves (DataError if unknown)."""
    spec = _spec(name)
    folder = _find(spec)
    return DatasetInfo(
        name=spec.name, description=spec.description, local=folder is not None,
        downloadable=spec.remote is not None, path=folder, protocol=spec.protocol,
        presplit=bool(spec.splits), folds=tuple(spec.splits), licence=spec.licence,
    )


def load(name: str, *, root: str | os.PathLike | None = None,
         unseen: str | None = None) -> Interactions:
    """All interactions of a data set (train ∪ test, in one id space, for pre-split ones)."""
    spec = _spec(name)
    folder = _locate(spec, root)
    if spec.all_file is not None:
        return _renamed(spec.reader(folder / spec.all_file), name)
    train, test = _read_fold(spec, folder, spec.default_fold, unseen)
    return _renamed(train.concat(test), name)


def load_split(name: str, *, fold: str | None = None, unseen: str | None = None,
               root: str | os.PathLike | None = None) -> tuple[Interactions, Interactions]:
    """The predefined (train, test) split of a data set, sharing one id space.

    ``fold`` picks one of several predefined splits (ml-100k: u1..u5, ua, ub; default u1);
    ``unseen`` overrides the data set's policy for test ids absent from training.
    """
    spec = _spec(name)
    if not spec.splits:
        raise DataError(f"data set {name!r} has no predefined train/test split; load it with "
                        f"load({name!r}) and split it with a splitter from advrec.data.splits "
                        f"(e.g. random_holdout, leave_one_out, temporal_split)")
    folder = _locate(spec, root)
    return _read_fold(spec, folder, fold, unseen)


def describe(name: str, *, root: str | os.PathLike | None = None) -> dict:
    """Statistics of a data set: users, items, interactions, density, ratings/timestamps."""
    spec = _spec(name)
    stats: dict = {"name": name, "presplit": bool(spec.splits), "protocol": spec.protocol}
    if spec.all_file is None:
        train, test = load_split(name, root=root)
        x = _renamed(train.concat(test), name)
        stats.update(train_interactions=len(train), test_interactions=len(test))
    else:
        x = load(name, root=root)
    n_pairs = x.n_users * x.n_items
    stats.update(
        users=x.n_users, items=x.n_items, interactions=len(x),
        density=len(x) / n_pairs if n_pairs else 0.0,
        has_ratings=x.has_ratings, has_timestamps=x.has_timestamps,
    )
    if x.has_ratings:
        stats.update(rating_min=float(x.ratings.min()), rating_max=float(x.ratings.max()))
    return stats


def _read_fold(spec: DatasetSpec, folder: Path, fold: str | None,
               unseen: str | None) -> tuple[Interactions, Interactions]:
    fold = spec.default_fold if fold is None else fold
    if fold not in spec.splits:
        raise ConfigError(f"data set {spec.name!r} has no fold {fold!r}; "
                          f"folds: {', '.join(spec.splits)}")
    train_file, test_file = spec.splits[fold]
    train, test = io.read_split(folder / train_file, folder / test_file, reader=spec.reader,
                                unseen=spec.unseen if unseen is None else unseen)
    suffix = "" if fold == "default" else f"/{fold}"
    return (_renamed(train, f"{spec.name}{suffix}/train"),
            _renamed(test, f"{spec.name}{suffix}/test"))


def _renamed(x: Interactions, name: str) -> Interactions:
    return Interactions(x.users, x.items, x.user_ids, x.item_ids, x.ratings, x.timestamps, name)


# ----------------------------------------------------------------------------- download
def fetch(name: str, cache_dir: str | os.PathLike | None = None, url: str | None = None,
          known_hash: str | None = None, force: bool = False) -> Path:
    """Download and unpack a data set's zip into ``cache_dir/<folder>``; returns that folder.

    ``url`` (or ``$ADVREC_DOWNLOAD_URL`` as base URL) overrides where the zip comes from; the
    built-in hash still applies unless ``known_hash`` is given (then member checks are skipped).
    An existing copy is reused unless ``force``. Nothing is left behind when a step fails.
    """
    spec = _spec(name)
    if spec.remote is None and url is None:
        raise DataError(f"data set {name!r} is not downloadable; put its files in "
                        f"{data_dir() / spec.folder} or set {ENV_DATA_DIR}")
    remote = spec.remote or RemoteSource(url or "")
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = base / spec.folder
    if not force and all((target / f).is_file() for f in spec.files):
        return target
    source = _source_url(remote, url)
    checks = dict(remote.member_sha256) if known_hash is None else {}
    hash_ = remote.known_hash if known_hash is None else known_hash
    if hash_ is None and not checks:
        warnings.warn(f"downloading {source} without a checksum", stacklevel=2)
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.folder}-fetch-", dir=base))
    try:
        archive = _download(source, hash_, remote.filename or f"{spec.folder}.zip", work)
        root = _unpack(archive, work / "unpacked")
        _check_contents(root, spec, checks, source)
        _install(root, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _source_url(remote: RemoteSource, url: str | None) -> str:
    if url:
        return url
    base = os.environ.get(ENV_DOWNLOAD_URL)
    if base:
        return f"{base.rstrip('/')}/{remote.filename}"
    return remote.url


def _download(url: str, known_hash: str | None, filename: str, work: Path) -> Path:
    """Fetch ``url`` into ``work`` with pooch (hash-checked, written atomically)."""
    import requests  # pooch's own HTTP dependency

    try:
        return Path(pooch.retrieve(url, known_hash=known_hash, fname=filename, path=work,
                                   progressbar=False))
    except ValueError as exc:
        raise DataError(f"download of {url} failed its checksum ({known_hash}); nothing was "
                        f"kept: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise DataError(f"could not download {url}: {exc}") from None


def _unpack(archive: Path, dest: Path) -> Path:
    """Extract a zip after checking every member stays inside ``dest``; returns the data root."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info, dest, archive)
            dest.mkdir(parents=True)
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive.name}: not a valid zip archive ({exc})") from None
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def _check_member(info: zipfile.ZipInfo, dest: Path, archive: Path) -> None:
    """Refuse absolute paths, drive letters, ``..`` parts and symbolic links."""
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    bad = (pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":")
           or stat.S_ISLNK(info.external_attr >> 16))
    if not bad:
        inside = (dest / pure).resolve()
        bad = not inside.is_relative_to(dest.resolve())
    if bad:
        raise DataError(f"{archive.name}: member {name!r} would be extracted outside the target "
                        f"folder; refusing the archive")


def _check_contents(root: Path, spec: DatasetSpec, checks: Mapping[str, tuple[str, ...]],
                    source: str) -> None:
    missing = [f for f in spec.files if not (root / f).is_file()]
    if missing:
        raise DataError(f"{source}: the archive lacks {', '.join(missing)} "
                        f"(expected {', '.join(spec.files)} for {spec.name!r})")
    for rel, allowed in checks.items():
        digest = _sha256(root / rel)
        if digest not in allowed:
            raise DataError(f"{source}: {rel} has sha256 {digest}, expected one of "
                            f"{', '.join(allowed)}; pass known_hash to accept another archive")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _install(root: Path, target: Path) -> None:
    """Move the unpacked folder into place by rename (an old copy is swapped out, then removed)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    os.rename(root, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
