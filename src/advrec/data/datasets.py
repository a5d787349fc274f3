"""Registry of named data sets: where they live on disk, how to read them, and how to download.

Local copies are looked up in :func:`data_dir` (``ADVREC_DATA_DIR`` or ``../shared/datasets``)
and in the download cache (:func:`default_cache_dir`). Downloads go through :func:`fetch`, which
streams the archive over HTTP(S) with a size cap, checks its hash, unpacks the zip itself
(refusing members that would leave the target folder, zip bombs and archives over the size
limit), checks the members' hashes and installs them into a folder advrec marks as its own
(:mod:`advrec.outputs`, kind ``"dataset"``), never into a folder it did not write.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import stat
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import advrec.data.io as io
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError, OutputError, ParamError
from advrec.outputs import OutputDir, check_dir, read_marker, remove_output
from advrec.validation import check_bool, check_float, check_int, plain

__all__ = [
    "DEFAULT_MAX_RATIO",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "DatasetInfo",
    "DatasetSpec",
    "ImageLayout",
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


_MIB = 1 << 20
DEFAULT_MAX_UNPACKED_BYTES = 512 * _MIB
"""Default cap on what one archive may unpack to (and, plus 1 MiB, on the archive's own size):
room for MovieLens 10M (~0.3 GB unpacked) while a small zip bomb cannot fill a disk."""
DEFAULT_MAX_RATIO = 200.0
"""Default cap on the compression ratio (unpacked / packed size) of each member and of the whole
archive. Text such as ratings files deflates 3-10:1; a zip bomb reaches ~1000:1. Below 1 MiB
unpacked the ratio is not checked (a tiny file may compress well without harm)."""
MAX_MEMBERS = 10_000
"""Most entries an archive may hold (MovieLens zips hold fewer than 30)."""
_RATIO_FLOOR = _MIB
_TIMEOUT_S = 30.0
_CHUNK = _MIB
_HASH_SIZES = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_JUNK = ("__MACOSX",)


def _parse_hash(value, name: str) -> tuple[str, str]:
    """``"alg:hex"`` (or bare hex = sha256) as ``(alg, hex)``."""
    if not isinstance(value, str):
        raise ParamError(name, f"expected a hash such as 'sha256:<64 hex digits>', got "
                               f"{plain(value)}")
    alg, sep, digest = value.strip().partition(":")
    if not sep:
        alg, digest = "sha256", alg
    alg, digest = alg.lower(), digest.lower()
    size = _HASH_SIZES.get(alg)
    if size is None or len(digest) != size or any(c not in "0123456789abcdef" for c in digest):
        algs = ", ".join(_HASH_SIZES)
        raise ParamError(name, f"expected 'sha256:<64 hex digits>' or 'md5:<32 hex digits>' "
                               f"(algorithms: {algs}; bare hex is sha256), got {plain(value)}")
    return alg, digest


@dataclass(frozen=True)
class RemoteSource:
    """A downloadable zip: its URL, a hash and the checks applied when it is fetched.

    ``known_hash`` is the archive's hash (``"md5:…"``, ``"sha256:…"`` or bare sha256 hex);
    ``member_sha256`` maps a file (relative to the data root inside the zip) to its allowed
    sha256 values. ``max_unpacked_bytes`` caps the total bytes the archive may unpack to
    (checked on the declared sizes *and* on the bytes actually written) and, plus 1 MiB, the
    download itself; ``max_ratio`` caps each member's compression ratio.
    """

    url: str
    known_hash: str | None = None
    member_sha256: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise ParamError("url", f"expected a URL, got {plain(self.url)}")
        if self.known_hash is not None:
            _parse_hash(self.known_hash, "known_hash")
        members: dict[str, tuple[str, ...]] = {}
        for rel, allowed in dict(self.member_sha256).items():
            allowed = (allowed,) if isinstance(allowed, str) else tuple(allowed)
            members[str(rel)] = tuple(_parse_hash(h, f"member_sha256[{rel!r}]")[1]
                                      for h in allowed)
        object.__setattr__(self, "member_sha256", members)
        check_int(self.max_unpacked_bytes, "max_unpacked_bytes", low=1)
        check_float(self.max_ratio, "max_ratio", low=1.0)

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ImageLayout:
    """Where a data set's item images lie, for :func:`advrec.data.images.dataset_images`.

    ``pattern``: each item's image file, relative to the data set's folder, with ``{id}`` the
    item's raw id plus ``id_offset`` (ml-1m-posters: ``MovieImages/{id}.jpg``, offset 1, since
    ml-1m-implicit's raw item id is MovieID − 1). ``manifest``: a TAB-separated file (header with
    ``path`` and ``sha256`` columns, paths relative to the folder) every image is checked
    against. ``genres``: a MovieLens ``movies.dat``/``movies.csv`` file giving each item's genres,
    keyed by the same id as the images (raw id plus ``id_offset``).
    """

    pattern: str
    id_offset: int = 0
    manifest: str | None = None
    genres: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """How one named data set is stored (``folder``/``files``) and read (``reader``).

    ``all_file`` holds every interaction; ``splits`` maps a fold name to its (train, test) files;
    ``unseen`` is the default policy for test users/items absent from training (see read_split);
    ``drop_train_pairs_from_test``: test rows whose (user, item) pair is also in the training file
    are left out of the split (the evaluator refuses such leakage; ``load`` keeps every row).
    ``interactions_of``: the name of another registered data set whose interactions (and
    predefined split) this one uses: its own folder holds item content only (``images``), and
    ``load``/``load_split`` read the other one's files (both folders must be present).
    ``images``: where the items' images are (:class:`ImageLayout`), or None.
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
    drop_train_pairs_from_test: bool = False
    interactions_of: str | None = None
    images: ImageLayout | None = None


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

_SHILLING_ORIGIN = "files from XMUDM/ShillingAttack @ c7311c5 (GPL-3.0)"
_LEGUP_PROTOCOL = ("predefined per-user 90/10 split (Leg-UP, TNNLS 2022); attack with 50 fake "
                   "users, 36 fillers; prediction shift and HR@K of each target on the users who "
                   "have not rated it; candidate targets: "
                   "advrec.data.shilling_sets.official_targets({name!r}); {fresh} test items "
                   "are not in train and are kept; item ids are sparse raw ids (max {max_id:,})"
                   "{note}")
# Leg-UP's four extra sets: name -> (file prefix, description, licence, test items not in train,
# largest raw item id, protocol note), as legup-shilling/SOURCE.md records them.
_LEGUP_SETS = {
    "appandroid": ("AppAndroid", "Amazon Apps for Android split by the Leg-UP authors: 163,593 "
                   "ratings 1-5 of 5,880 users on 12,300 apps", "Amazon review data (McAuley et "
                   "al.): research use", 244, 13_208, ""),
    "groceryfood": ("GroceryFood", "Amazon Grocery & Gourmet Food split by the Leg-UP authors: "
                    "55,702 ratings 1-5 of 1,777 users on 7,790 items", "Amazon review data "
                    "(McAuley et al.): research use", 224, 8_712, ""),
    "toolhome": ("ToolHome", "Amazon Tools & Home Improvement split by the Leg-UP authors: "
                 "23,527 ratings 1-5 of 891 users on 7,916 items", "Amazon review data "
                 "(McAuley et al.): research use", 332, 10_215, ""),
    "yelp-legup": ("yelp", "Yelp reviews split by the Leg-UP authors (not Yelp2018): 119,237 "
                   "ratings 1-5 of 2,762 users on 10,477 businesses", "Yelp dataset terms: "
                   "non-commercial academic use, keep the files inside the project", 206, 11_536,
                   "; the pair (user 49, item 7615) is in train and in test (5 in both): kept in "
                   "train, left out of the split's test"),
}


def _read_shilling(path) -> Interactions:
    """AUSH / Leg-UP ``*_train.dat`` / ``*_test.dat``: TAB-separated ``user item rating``,
    ratings written as floats 1.0-5.0, 0-based integer ids kept as the raw ids."""
    return io.read_delimited(path, ("user", "item", "rating"), sep="\t", rating_scale=(1, 5),
                             id_type="int")


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec, overwrite: bool = False) -> None:
    """Add a data set to the registry (``overwrite`` to replace one with the same name)."""
    if spec.name in _REGISTRY and not overwrite:
        raise ConfigError(f"data set {spec.name!r} is already registered (pass overwrite=True)")
    if spec.interactions_of is not None:
        other = _REGISTRY.get(spec.interactions_of)
        if other is None or other.interactions_of is not None or other.name == spec.name:
            raise ConfigError(f"data set {spec.name!r}: interactions_of must name a registered "
                              f"data set with files of its own, got {spec.interactions_of!r}")
    elif spec.all_file is None and not spec.splits:
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
        name="yelp2018-lightgcn",
        description="Yelp2018, implicit, the NGCF/LightGCN standard split (31,668 users, "
                    "38,048 items, 10-core)",
        protocol="predefined split (NGCF, LightGCN); full-ranking Recall/NDCG@20",
        licence="Yelp Open Dataset terms of use: academic research only, no redistribution",
        folder="yelp2018-lightgcn", files=("train.txt", "test.txt"),
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
    register(DatasetSpec(
        name="filmtrust",
        description="FilmTrust split by the AUSH authors: 28,797 ratings 1-5 of 780 users on "
                    "721 movies (shilling-attack benchmark)",
        protocol="predefined per-user ~90/10 hold-out (AUSH, CIKM 2020; Leg-UP); attack with 50 "
                 "fake users, 36 fillers; prediction shift and HR@K of each official target "
                 "(advrec.data.shilling_sets.official_targets('filmtrust')) on its target users "
                 "and on all users who have not rated it; the pair (user 154, item 89) is in "
                 "train (2) and in test (5): kept in train, left out of the split's test",
        licence=f"FilmTrust (Guo, Zhang & Yorke-Smith, IJCAI 2013): research data; "
                f"{_SHILLING_ORIGIN}; cite Lin et al., CIKM 2020",
        folder="aush-shilling", files=("filmTrust_train.dat", "filmTrust_test.dat"),
        reader=_read_shilling, splits={"default": ("filmTrust_train.dat", "filmTrust_test.dat")},
        default_fold="default", unseen="keep", drop_train_pairs_from_test=True,
    ))
    register(DatasetSpec(
        name="automotive",
        description="Amazon Automotive (5-core) split by the AUSH authors: 20,473 ratings 1-5 "
                    "of 2,928 users on 1,835 items (shilling-attack benchmark)",
        protocol="predefined per-user ~90/10 hold-out (AUSH, CIKM 2020; Leg-UP); attack with 50 "
                 "fake users, 4 fillers (AUSH); prediction shift and HR@K of each official "
                 "target (advrec.data.shilling_sets.official_targets('automotive'), AUSH's by "
                 "default, paper='legup' for Leg-UP's) on its target users and on all users "
                 "who have not rated it",
        licence=f"Amazon review data (McAuley et al.): research use; {_SHILLING_ORIGIN}; cite "
                f"Lin et al., CIKM 2020",
        folder="aush-shilling", files=("automotive_train.dat", "automotive_test.dat"),
        reader=_read_shilling,
        splits={"default": ("automotive_train.dat", "automotive_test.dat")},
        default_fold="default", unseen="keep", drop_train_pairs_from_test=True,
    ))
    for name, (prefix, description, terms, fresh, max_id, note) in _LEGUP_SETS.items():
        train, test = f"{prefix}_train.dat", f"{prefix}_test.dat"
        register(DatasetSpec(
            name=name, description=description,
            protocol=_LEGUP_PROTOCOL.format(name=name, fresh=fresh, max_id=max_id, note=note),
            licence=f"{terms}; {_SHILLING_ORIGIN}; cite Lin et al., TNNLS 2022",
            folder="legup-shilling", files=(train, test), reader=_read_shilling,
            splits={"default": (train, test)}, default_fold="default", unseen="keep",
            drop_train_pairs_from_test=True,
        ))
    register(DatasetSpec(
        name="ml-1m-posters",
        description="MovieLens-1M posters (3,872 JPEGs, liangfgithub.github.io) with the "
                    "ml-1m-implicit interactions and split: item content for VBPR/AMR/TAaMR",
        protocol="ml-1m-implicit's predefined ~80/20 hold-out; each item's poster is "
                 "MovieImages/{raw id + 1}.jpg (raw id = MovieID - 1); 3,699 of the 3,706 items "
                 "have one (MovieIDs 1107, 1142, 1421, 1423, 2258, 3027, 3935 do not); "
                 "features: advrec.models.vision.poster_features()",
        licence="posters: copyrighted studio artwork hosted as course material, no licence: "
                "research and testing inside the project only, do not redistribute; movies.dat: "
                + GROUPLENS_NO_REDIST,
        folder="ml-1m-posters", files=("MANIFEST.tsv", "movies.dat"),
        reader=io.read_lightgcn, interactions_of="ml-1m-implicit",
        images=ImageLayout("MovieImages/{id}.jpg", id_offset=1, manifest="MANIFEST.tsv",
                           genres="movies.dat"),
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
    """Where :func:`fetch` puts downloads: ``$ADVREC_DATA_DIR`` when it may be written, else
    ``~/.cache/advrec``. A read-only data folder (one whose permissions grant no write, such as
    a shared data set mount) is never written, whoever runs advrec (root included)."""
    env = os.environ.get(ENV_DATA_DIR)
    if env and _may_write(Path(env).expanduser()):
        return Path(env).expanduser()
    return _home_cache()


def _may_write(folder: Path) -> bool:
    """Whether advrec may write into ``folder``: its permission bits grant a write and this
    process may write there (root passes ``os.access`` on any folder, hence the bits); a folder
    still to be made counts as its nearest existing parent."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK)


def _home_cache() -> Path:
    return Path.home() / ".cache" / "advrec"


def _spec(name: str) -> DatasetSpec:
    if not isinstance(name, str):
        raise ParamError("name", f"expected a data set name, got {plain(name)}")
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise DataError(f"unknown data set {name!r}; known data sets: {known}") from None


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise ParamError("root", f"expected a folder path, got {plain(root)}")
        return [Path(root)]
    out: list[Path] = []
    for d in (data_dir(), default_cache_dir(), _home_cache()):
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
    source = _source(spec)
    folder = _find(spec)
    local = folder is not None and (source is spec or _find(source) is not None)
    return DatasetInfo(
        name=spec.name, description=spec.description, local=local,
        downloadable=spec.remote is not None, path=folder, protocol=spec.protocol,
        presplit=bool(source.splits), folds=tuple(source.splits), licence=spec.licence,
    )


def load(name: str, *, root: str | os.PathLike | None = None,
         unseen: str | None = None) -> Interactions:
    """All interactions of a data set (train ∪ test, in one id space, for pre-split ones)."""
    spec = _spec(name)
    source, folder = _interactions_folder(spec, root)
    if source.all_file is not None:
        return _renamed(source.reader(folder / source.all_file), name)
    train, test = _read_fold(source, folder, source.default_fold, unseen)
    return _renamed(train.concat(test), name)


def load_split(name: str, *, fold: str | None = None, unseen: str | None = None,
               root: str | os.PathLike | None = None) -> tuple[Interactions, Interactions]:
    """The predefined (train, test) split of a data set, sharing one id space.

    ``fold`` picks one of several predefined splits (ml-100k: u1..u5, ua, ub; default u1);
    ``unseen`` overrides the data set's policy for test ids absent from training.
    """
    spec = _spec(name)
    if not _source(spec).splits:
        raise DataError(f"data set {name!r} has no predefined train/test split; load it with "
                        f"load({name!r}) and split it with a splitter from advrec.data.splits "
                        f"(e.g. random_holdout, leave_one_out, temporal_split)")
    source, folder = _interactions_folder(spec, root)
    return _read_fold(source, folder, fold, unseen, label=spec.name)


def describe(name: str, *, root: str | os.PathLike | None = None) -> dict:
    """Statistics of a data set: users, items, interactions, density, ratings/timestamps."""
    spec = _spec(name)
    source = _source(spec)
    stats: dict = {"name": name, "presplit": bool(source.splits), "protocol": spec.protocol}
    if source.all_file is None:
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


def _source(spec: DatasetSpec) -> DatasetSpec:
    """The spec whose files hold ``spec``'s interactions (itself, or ``interactions_of``)."""
    return spec if spec.interactions_of is None else _spec(spec.interactions_of)


def _interactions_folder(spec: DatasetSpec,
                         root: str | os.PathLike | None) -> tuple[DatasetSpec, Path]:
    """The spec holding ``spec``'s interaction files and the folder they are in; a data set
    that borrows another's interactions needs its own folder too (DataError naming it)."""
    source = _source(spec)
    if source is not spec:
        _locate(spec, root)
    return source, _locate(source, root)


def _read_fold(spec: DatasetSpec, folder: Path, fold: str | None,
               unseen: str | None, label: str | None = None) -> tuple[Interactions, Interactions]:
    """The (train, test) of ``fold`` from ``spec``'s files, named after ``label`` (default: the
    spec's name; a data set reading another's interactions passes its own)."""
    label = spec.name if label is None else label
    fold = spec.default_fold if fold is None else fold
    if fold not in spec.splits:
        raise ConfigError(f"data set {label!r} has no fold {fold!r}; "
                          f"folds: {', '.join(spec.splits)}")
    train_file, test_file = spec.splits[fold]
    train, test = io.read_split(folder / train_file, folder / test_file, reader=spec.reader,
                                unseen=spec.unseen if unseen is None else unseen)
    if spec.drop_train_pairs_from_test:
        import numpy as np

        in_train = np.isin(test.users.astype(np.int64) * test.n_items + test.items,
                           train.users.astype(np.int64) * train.n_items + train.items)
        test = test.subset(~in_train)
    suffix = "" if fold == "default" else f"/{fold}"
    return (_renamed(train, f"{label}{suffix}/train"),
            _renamed(test, f"{label}{suffix}/test"))


def _renamed(x: Interactions, name: str) -> Interactions:
    return Interactions(x.users, x.items, x.user_ids, x.item_ids, x.ratings, x.timestamps, name)


# ----------------------------------------------------------------------------- download
def fetch(name: str, cache_dir: str | os.PathLike | None = None, url: str | None = None,
          known_hash: str | None = None, force: bool = False) -> Path:
    """Download and unpack a data set's zip into ``cache_dir/<folder>``; returns that folder.

    ``url`` (or ``$ADVREC_DOWNLOAD_URL`` as base URL) overrides where the zip comes from (HTTP or
    HTTPS only). An existing copy with all the data set's files is reused unless ``force``.

    What is checked, so that every file fetch installs has a known hash:

    - The archive's hash: ``known_hash`` if given, else the data set's built-in one (which also
      guards mirrors named by ``url``/``$ADVREC_DOWNLOAD_URL``). A verified archive hash covers
      every member of the archive: all of them are installed.
    - Without an archive hash, only the members with a built-in sha256 (``member_sha256``) are
      unpacked and installed, each checked against it; the rest of the archive is left out.
    - A user's ``known_hash`` replaces the built-in checks (archive hash and member hashes): the
      user vouches for that exact archive, and its hash covers all of its members.
    - A source with no hash at all (a user-registered :class:`RemoteSource` without one) is the
      one exception: fetch warns that nothing can be checked, then installs what it unpacked.

    Limits: the download may not exceed ``max_unpacked_bytes`` + 1 MiB; the archive may hold at
    most :data:`MAX_MEMBERS` entries, each with a compression ratio up to ``max_ratio``, and
    unpack to at most ``max_unpacked_bytes`` in all, and to at most ``max_ratio`` times its own
    size (beyond 1 MiB): checked on the declared sizes before anything is written, and again on
    the bytes actually written, since headers can lie.

    The target folder is claimed with :mod:`advrec.outputs` (kind ``"dataset"``): a non-empty
    folder advrec did not write is refused, naming it; an earlier advrec download of this data
    set is replaced when files are missing or with ``force`` (another data set's with ``force``
    only), and then only the files advrec wrote there are removed: files the user added stay
    (one with the name of an archive member is refused, not replaced).

    Everything is downloaded, checked and unpacked in a temporary folder first, so nothing is
    left behind when a step fails. Failures are one-line :class:`DataError` (download, archive)
    or :class:`OutputError` (target folder) messages naming the URL or path.
    """
    spec = _spec(name)
    force = check_bool(force, "force")
    if url is not None and not isinstance(url, str):
        raise ParamError("url", f"expected a URL, got {plain(url)}")
    if known_hash is not None:
        _parse_hash(known_hash, "known_hash")
    if spec.remote is None and url is None:
        raise DataError(f"data set {name!r} is not downloadable; put its files in "
                        f"{data_dir() / spec.folder} or set {ENV_DATA_DIR}")
    remote = spec.remote or RemoteSource(url or "")
    base = _cache_base(cache_dir)
    target = base / spec.folder
    if not force and all((target / f).is_file() for f in spec.files):
        return target
    source = _source_url(remote, url)
    archive_hash = remote.known_hash if known_hash is None else known_hash
    checks = dict(remote.member_sha256) if known_hash is None else {}
    everything = archive_hash is not None or not checks
    if not everything:
        unchecked = [f for f in spec.files if f not in checks]
        if unchecked:
            raise DataError(f"{source}: no known sha256 for {', '.join(unchecked)} and no "
                            f"archive hash; pass known_hash to vouch for the archive")
    if archive_hash is None and not checks:
        warnings.warn(f"downloading {source} without a checksum", stacklevel=2)
    _check_target(target, spec, force)  # before any download
    try:
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{spec.folder}-fetch-", dir=base))
    except OSError as exc:
        raise OutputError(f"{base}: cannot write the download here "
                          f"({exc.strerror or exc})") from None
    try:
        archive = work / "download.zip"
        offline = (f"; without a network, download that file elsewhere and unzip it so that "
                   f"{target / spec.files[0]} exists (or set {ENV_DATA_DIR} to a folder holding "
                   f"{spec.folder}/), or set {ENV_DOWNLOAD_URL} to the base URL of a mirror")
        _download(source, archive_hash, archive, remote.max_unpacked_bytes + _MIB, offline)
        root = _unpack(archive, work / "unpacked", source, remote, checks, everything)
        _check_contents(root, spec, source)
        _install(root, target, spec, force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _cache_base(cache_dir) -> Path:
    if cache_dir is None:
        return default_cache_dir()
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise ParamError("cache_dir", f"expected a folder path, got {plain(cache_dir)}")
    return Path(cache_dir)


def _source_url(remote: RemoteSource, url: str | None) -> str:
    if url:
        source = url
    elif os.environ.get(ENV_DOWNLOAD_URL):
        source = f"{os.environ[ENV_DOWNLOAD_URL].rstrip('/')}/{remote.filename}"
    else:
        source = remote.url
    if not source.lower().startswith(("http://", "https://")):
        raise ParamError("url", f"expected an http:// or https:// URL, got {plain(source)}")
    return source


# ----------------------------------------------------------------------------- HTTP
def _net_reason(exc: BaseException) -> str:
    """A short, single-line reason for a network failure (no library advice, no repr chains)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _net_reason(reason)
        return " ".join(str(reason).split()) or "unknown error"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {_TIMEOUT_S:g} s (timed out)"
    if isinstance(exc, http.client.HTTPException):
        return f"the connection broke ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return " ".join(str(exc).split()) or type(exc).__name__


def _download(url: str, known_hash: str | None, dest: Path, limit: int,
              offline: str = "") -> None:
    """Stream ``url`` into ``dest`` (at most ``limit`` bytes), then check ``known_hash``;
    ``offline`` is added to the message when the network cannot be reached."""
    alg, expected = _parse_hash(known_hash, "known_hash") if known_hash else ("sha256", None)
    digest = hashlib.new(alg)
    request = urllib.request.Request(url, headers={"User-Agent": "advrec"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response, \
                open(dest, "wb") as out:
            declared = response.headers.get("Content-Length", "")
            if declared.strip().isdigit() and int(declared) > limit:
                raise DataError(f"could not download {url}: it is {int(declared)} bytes, more "
                                f"than the limit of {limit} (max_unpacked_bytes + 1 MiB); "
                                f"nothing was kept")
            size = 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise DataError(f"could not download {url}: it exceeds the limit of "
                                    f"{limit} bytes (max_unpacked_bytes + 1 MiB); nothing was "
                                    f"kept")
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise OutputError(f"{dest.parent}: cannot write the download of {url} "
                                      f"({exc.strerror or exc})") from None
    except (DataError, OutputError):
        raise
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {url}: HTTP {exc.code} "
                        f"{' '.join(str(exc.reason).split())}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(f"could not download {url}: {_net_reason(exc)}{offline}") from None
    if expected is not None and digest.hexdigest() != expected:
        raise DataError(f"download of {url} failed its checksum: expected {alg}:{expected}, "
                        f"got {alg}:{digest.hexdigest()}; nothing was kept")


# ----------------------------------------------------------------------------- unzip
def _member_path(info: zipfile.ZipInfo, url: str) -> PurePosixPath:
    """The member's path inside the archive; refuses absolute paths, drive letters, ``..``
    parts and symbolic links (nothing may land outside the target folder)."""
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    bad = (pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":")
           or stat.S_ISLNK(info.external_attr >> 16) or "\0" in name)
    if bad:
        raise DataError(f"{url}: member {name!r} would be extracted outside the target "
                        f"folder; refusing the archive")
    return pure


def _layout(infos: list[zipfile.ZipInfo], url: str) -> list[tuple[zipfile.ZipInfo, str]]:
    """The archive's files with their paths below the data root (a single top folder, if
    every file sits in the same one, is the root); macOS resource forks are skipped."""
    files = []
    for info in infos:
        pure = _member_path(info, url)
        if info.is_dir() or not pure.parts or pure.parts[0] in _JUNK:
            continue
        files.append((info, pure.parts))
    tops = {parts[0] for _, parts in files}
    strip = int(len(tops) == 1 and all(len(parts) > 1 for _, parts in files))
    out, seen = [], set()
    for info, parts in files:
        rel = "/".join(parts[strip:])
        if rel.lower() in seen:
            raise DataError(f"{url}: member {info.filename!r} appears twice in the archive; "
                            f"refusing the archive")
        seen.add(rel.lower())
        out.append((info, rel))
    return out


def _unpack(archive: Path, dest: Path, url: str, remote: RemoteSource,
            checks: Mapping[str, tuple[str, ...]], everything: bool) -> Path:
    """Extract the zip into ``dest`` (which becomes the data root) under the size limits.

    ``everything``: extract every file (the archive hash covers them); otherwise only those
    in ``checks``. Every member in ``checks`` must match one of its sha256 values.
    """
    by_ratio = max(_RATIO_FLOOR, int(remote.max_ratio * archive.stat().st_size))
    if remote.max_unpacked_bytes <= by_ratio:
        limit = (remote.max_unpacked_bytes, "max_unpacked_bytes")
    else:
        limit = (by_ratio, f"{remote.max_ratio:g} times the archive's size, max_ratio")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DataError(f"{url}: the archive holds {len(infos)} entries, more than the "
                                f"limit of {MAX_MEMBERS}; refusing the archive")
            members = [(info, rel) for info, rel in _layout(infos, url)
                       if everything or rel in checks]
            _check_sizes(members, remote, limit, url)
            dest.mkdir(parents=True)
            written = 0
            for info, rel in members:
                written = _extract(zf, info, rel, dest, url, limit, written, checks.get(rel))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{url}: not a valid zip archive ({' '.join(str(exc).split())})"
                        ) from None
    return dest


def _check_sizes(members: list[tuple[zipfile.ZipInfo, str]], remote: RemoteSource,
                 limit: tuple[int, str], url: str) -> None:
    """Refuse before writing anything: a declared total over the limit, or a member whose
    declared compression ratio is that of a zip bomb."""
    for info, _ in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > remote.max_ratio:
            raise DataError(f"{url}: member {info.filename!r} unpacks {ratio:.0f} times larger "
                            f"than it is packed, more than the limit of {remote.max_ratio:g} "
                            f"(max_ratio): a zip bomb? refusing the archive")
    total = sum(info.file_size for info, _ in members)
    if total > limit[0]:
        raise DataError(f"{url}: the archive declares {total} bytes unpacked, more than the "
                        f"limit of {limit[0]} ({limit[1]}); refusing the archive")


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, dest: Path, url: str,
             limit: tuple[int, str], written: int, allowed: tuple[str, ...] | None) -> int:
    """Copy one member to ``dest/rel`` counting the bytes actually written (headers can lie)
    and hashing them; returns the running total of bytes written for the archive."""
    out = dest / rel
    digest = hashlib.sha256()
    size = 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(out, "xb") as dst:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                written += len(chunk)
                if size > info.file_size:
                    raise DataError(f"{url}: member {info.filename!r} unpacks to more than the "
                                    f"{info.file_size} bytes its header declares; refusing the "
                                    f"archive")
                if written > limit[0]:
                    raise DataError(f"{url}: the archive unpacks to more than {limit[0]} bytes "
                                    f"({limit[1]}); refusing the archive")
                digest.update(chunk)
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
            ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{url}: member {info.filename!r} cannot be unpacked "
                        f"({' '.join(str(exc).split()) or type(exc).__name__}); refusing the "
                        f"archive") from None
    except OSError as exc:
        raise OutputError(f"{out}: cannot unpack member {info.filename!r} of {url} "
                          f"({exc.strerror or exc})") from None
    if allowed is not None and digest.hexdigest() not in allowed:
        raise DataError(f"{url}: {rel} has sha256 {digest.hexdigest()}, expected one of "
                        f"{', '.join(allowed)}; pass known_hash to accept another archive")
    return written


def _check_contents(root: Path, spec: DatasetSpec, source: str) -> None:
    missing = [f for f in spec.files if not (root / f).is_file()]
    if missing:
        raise DataError(f"{source}: the archive lacks {', '.join(missing)} "
                        f"(expected {', '.join(spec.files)} for {spec.name!r})")


# ----------------------------------------------------------------------------- install
def _mark_tree(folder: Path) -> None:
    """Give a staged sub-folder (and its sub-folders) advrec's marker listing what it holds,
    so a later ``force`` removes exactly those files."""
    children = sorted(folder.iterdir())
    for child in children:
        if child.is_dir() and not child.is_symlink():
            _mark_tree(child)
    OutputDir(folder, "dataset", None).record(*(c.name for c in children))


def _check_target(target: Path, spec: DatasetSpec, force: bool) -> dict | None:
    """:func:`advrec.outputs.check_dir` for kind "dataset" (its marker, or None), with the
    Python API's word for replacing another data set's download: ``force``."""
    marker = read_marker(target) if target.is_dir() and not target.is_symlink() else None
    if (marker is not None and marker["kind"] == "dataset" and not force
            and marker.get("identity") != spec.name):
        raise OutputError(f"{target} already holds a downloaded data set "
                          f"({marker.get('identity')!r}), not {spec.name!r}; pass force=True to "
                          f"replace it (only the files advrec wrote there are removed)")
    return check_dir(target, "dataset", identity=spec.name, overwrite=force)


def _install(root: Path, target: Path, spec: DatasetSpec, force: bool) -> None:
    """Move the checked files into ``target``, a folder advrec may write (see :func:`fetch`)."""
    marker = _check_target(target, spec, force)
    staged = sorted(root.iterdir())
    ours = set(marker["entries"]) if marker else set()
    for entry in staged:
        there = target / entry.name
        if entry.name not in ours and os.path.lexists(there):
            raise OutputError(f"{there} exists and advrec did not write it; refusing to replace "
                              f"it: move it away or fetch into another cache_dir")
    try:
        if marker is not None:
            remove_output(target)  # only what advrec wrote; the user's own files stay
        target.mkdir(parents=True, exist_ok=True)
        out = OutputDir(target, "dataset", spec.name)
        out.record()  # the marker first: whatever lands below is then known to be advrec's
        for entry in staged:
            if entry.is_dir():
                _mark_tree(entry)
            out.record(entry.name)
            os.replace(entry, target / entry.name)
    except OSError as exc:
        raise OutputError(f"{target}: cannot install the download ({exc.strerror or exc})"
                          ) from None
