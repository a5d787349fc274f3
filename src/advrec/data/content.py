"""Item content features for content-aware recommenders (VBPR, AMR) and content attacks (TAaMR).

:class:`ItemFeatures` is one (n_items, d) float32 matrix over an Interactions' item id space
(row ``i`` = internal item ``i``), with:

- ``present``: which items have content. **An item without content (no poster, no tag) has an
  all-zero row and ``present`` False**: a zero row adds nothing to VBPR's visual score, so the
  item is scored by its collaborative factors alone, and callers can leave it out of attacks
  and statistics through ``present``.
- ``source`` (what the features are) and ``key`` (a hash of the inputs and the extractor,
  which names the cache file).
- optionally a *visual* category per item, ``categories`` (e.g. the CNN's top-1 ImageNet class,
  ``-1`` where there is no image) with ``category_names``, the class targeted by TAaMR; the
  matrix's ``columns`` names (tag features); and a *semantic* category, ``genres`` (bool
  multi-hot (n_items, g)) with ``genre_names`` (MovieLens genres).

Constructors: :meth:`ItemFeatures.from_file` (``.npy`` or ``.safetensors``) and
:meth:`ItemFeatures.from_tags` (a multi-hot matrix of tags: DBpedia categories, MovieLens
genres or user tags, read by :func:`read_dbpedia_categories`, :func:`read_movielens_genres`,
:func:`read_movielens_tags`, :func:`read_item_tags`). Image features come from
:func:`advrec.models.vision.image_features`.

Cache: :func:`save_cache` / :func:`load_cache` keep one safetensors file per ``key`` in a folder
advrec claims as its own (:mod:`advrec.outputs`, kind ``"features"``): a folder holding files
advrec did not write is refused, and a file advrec did not write is never replaced.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from advrec._lazy import lazy
from advrec.errors import DataError, OutputError, ParamError
from advrec.outputs import claim_dir
from advrec.validation import check_int, plain

st_numpy = lazy("safetensors.numpy")
safetensors = lazy("safetensors")

__all__ = ["CACHE_KIND", "ItemFeatures", "cache_path", "load_cache", "read_dbpedia_categories",
           "read_item_tags", "read_movielens_genres", "read_movielens_tags", "save_cache"]

CACHE_KIND = "features"
CACHE_IDENTITY = "item-features"  # one identity: every cache folder is reusable by every run
FORMAT = "advrec-item-features"
FORMAT_VERSION = "1"
_KEY = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")
_DBPEDIA_CATEGORY = "http://dbpedia.org/resource/Category:"


def _names(value, name: str, n: int | None = None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ParamError(name, "expected a sequence of names, got a single string")
    out = tuple(str(v) for v in value)
    if n is not None and len(out) != n:
        raise ParamError(name, f"expected {n} names, got {len(out)}")
    return out


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """Content features of every item of an id space; see the module docstring.

    ``matrix`` float32 (n_items, d); ``present`` bool (n_items,) (rows of absent items must be
    zero); ``categories`` int64 (n_items,) in ``-1..len(category_names)-1`` (-1: no category,
    and every absent item has -1); ``columns``: d names of the matrix's columns;
    ``genres`` bool (n_items, len(genre_names)).
    """

    matrix: np.ndarray
    present: np.ndarray
    source: str
    key: str
    categories: np.ndarray | None = None
    category_names: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    genres: np.ndarray | None = None
    genre_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix)
        if m.ndim != 2 or m.dtype.kind not in "fiub":
            raise ParamError("matrix", f"expected a 2-D float array (n_items, d), got "
                                       f"{m.dtype} of shape {m.shape}")
        m = np.ascontiguousarray(m, dtype=np.float32)
        if not np.isfinite(m).all():
            row = int(np.flatnonzero(~np.isfinite(m).all(axis=1))[0])
            raise DataError(f"{self.source}: features of item {row} are not finite (NaN or inf)")
        n = len(m)
        present = np.asarray(self.present)
        if present.shape != (n,) or present.dtype.kind not in "bui":
            raise ParamError("present", f"expected a bool mask of {n} items, got {present.dtype} "
                                        f"of shape {present.shape}")
        present = present.astype(bool)
        if m[~present].any():
            row = int(np.flatnonzero(~present & m.any(axis=1))[0])
            raise ParamError("matrix", f"item {row} is not present but its features are not "
                                       f"zero (items without content have a zero row)")
        for attr in ("source", "key"):
            if not isinstance(getattr(self, attr), str):
                raise ParamError(attr, f"expected a string, got {plain(getattr(self, attr))}")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "present", present)
        object.__setattr__(self, "columns", _names(self.columns, "columns", m.shape[1]))
        self._set_categories(n, present)
        self._set_genres(n)

    def _set_categories(self, n: int, present: np.ndarray) -> None:
        names = _names(self.category_names, "category_names")
        object.__setattr__(self, "category_names", names)
        if self.categories is None:
            return
        cat = np.asarray(self.categories)
        if cat.shape != (n,) or cat.dtype.kind not in "iu":
            raise ParamError("categories", f"expected {n} integer categories, got {cat.dtype} "
                                           f"of shape {cat.shape}")
        cat = cat.astype(np.int64)
        high = len(names) - 1 if names is not None else None
        if cat.size and (cat.min() < -1 or (high is not None and cat.max() > high)):
            raise ParamError("categories", f"expected categories in -1..{high}, got "
                                           f"{int(cat.min())}..{int(cat.max())}")
        if (cat[~present] != -1).any():
            raise ParamError("categories", "an item without content must have category -1")
        object.__setattr__(self, "categories", cat)

    def _set_genres(self, n: int) -> None:
        names = _names(self.genre_names, "genre_names")
        object.__setattr__(self, "genre_names", names)
        if self.genres is None:
            if names is not None:
                raise ParamError("genres", "genre_names given without genres")
            return
        g = np.asarray(self.genres)
        if g.ndim != 2 or len(g) != n or names is None or g.shape[1] != len(names):
            raise ParamError("genres", f"expected a bool multi-hot (n_items={n}, n_genres) with "
                                       f"one name per genre, got shape {g.shape}")
        object.__setattr__(self, "genres", g.astype(bool))

    # ------------------------------------------------------------------------- views
    @property
    def n_items(self) -> int:
        return self.matrix.shape[0]

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def items_of_category(self, category: int | str) -> np.ndarray:
        """Internal ids of the items whose category is ``category`` (an index or a name)."""
        cat = self._category_index(category)
        return np.flatnonzero(self.categories == cat)

    def category_counts(self, top: int | None = None) -> list[tuple[int, str, int]]:
        """``(category, name, number of items)`` by decreasing count (the ``top`` first)."""
        if self.categories is None:
            raise DataError(f"{self.source}: these features have no categories")
        ids, counts = np.unique(self.categories[self.categories >= 0], return_counts=True)
        order = np.lexsort((ids, -counts))
        if top is not None:
            order = order[:check_int(top, "top", low=0)]
        names = self.category_names
        return [(int(ids[k]), names[ids[k]] if names else str(ids[k]), int(counts[k]))
                for k in order]

    def _category_index(self, category) -> int:
        if self.categories is None:
            raise DataError(f"{self.source}: these features have no categories")
        if isinstance(category, str):
            names = self.category_names or ()
            if category not in names:
                raise ParamError("category", f"unknown category name {category!r}")
            return names.index(category)
        return check_int(category, "category", low=0)

    def with_genres(self, item_tags: Mapping, *, item_ids=None) -> ItemFeatures:
        """A copy carrying the semantic category: ``genres`` multi-hot from ``item_tags``
        (keys as in :meth:`from_tags`)."""
        tags = ItemFeatures.from_tags(item_tags, self.n_items, item_ids=item_ids)
        return replace(self, genres=tags.matrix > 0, genre_names=tags.columns)

    def __repr__(self) -> str:
        return (f"ItemFeatures({self.source}: {self.n_items} items x {self.dim}, "
                f"{int(self.present.sum())} present, key {self.key[:12]})")

    # ------------------------------------------------------------------------- constructors
    @classmethod
    def from_file(cls, path: str | os.PathLike, n_items: int, *,
                  source: str | None = None) -> ItemFeatures:
        """Features from a ``.npy`` array or a ``.safetensors`` file (tensor ``features``,
        optional bool/0-1 ``present``), of shape (n_items, d).

        Without a ``present`` mask an all-zero row counts as an item without content. Rows of
        items ``present`` marks absent are set to zero. ``key`` is the file's sha256. Errors
        name the file.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ParamError("path", f"expected a file path, got {plain(path)}")
        path = Path(path)
        n_items = check_int(n_items, "n_items", low=0)
        suffix = path.suffix.lower()
        if suffix not in (".npy", ".safetensors"):
            raise DataError(f"{path}: expected a .npy or .safetensors feature file")
        if not path.is_file():
            raise DataError(f"{path}: feature file not found")
        present = None
        try:
            if suffix == ".npy":
                matrix = np.load(path, allow_pickle=False)
            else:
                tensors = st_numpy.load_file(str(path))
                if "features" not in tensors:
                    raise DataError(f"{path}: no tensor named 'features' (found "
                                    f"{', '.join(sorted(tensors)) or 'none'})")
                matrix, present = tensors["features"], tensors.get("present")
        except DataError:
            raise
        except Exception as exc:  # numpy and safetensors raise several kinds on a bad file
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise DataError(f"{path}: cannot read the features ({reason})") from None
        if matrix.ndim != 2 or len(matrix) != n_items or matrix.dtype.kind not in "fiu":
            raise DataError(f"{path}: expected a numeric array of shape ({n_items}, d) (one row "
                            f"per item), got {matrix.dtype} of shape {matrix.shape}")
        matrix = np.array(matrix, dtype=np.float32)
        if not np.isfinite(matrix).all():
            row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
            raise DataError(f"{path}: row {row} holds NaN or inf")
        if present is None:
            present = matrix.any(axis=1)
        else:
            if present.shape != (n_items,) or present.dtype.kind not in "bui" or (
                    present.dtype.kind != "b" and not np.isin(present, (0, 1)).all()):
                raise DataError(f"{path}: 'present' must be {n_items} booleans (or 0/1), got "
                                f"{present.dtype} of shape {present.shape}")
            present = present.astype(bool)
            matrix[~present] = 0.0
        key = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(matrix, present, source or str(path), key)

    @classmethod
    def from_tags(cls, item_tags: Mapping, n_items: int | None = None, *, item_ids=None,
                  source: str = "tags") -> ItemFeatures:
        """A multi-hot matrix (float32 0/1) of the items' tags, one column per distinct tag
        (``columns``, sorted).

        ``item_tags`` maps an item to its tags (a list of strings). Keys are internal item ids
        in ``0..n_items-1``, or, with ``item_ids`` (the raw ids in internal order, e.g.
        ``Interactions.item_ids``; then ``n_items`` defaults to their number), raw ids (an
        integer key also matches the string id of its digits, and back): tags of raw ids
        outside ``item_ids`` are ignored, but a mapping none of whose keys is an item is a
        DataError. An item without tags has a zero row and ``present`` False.
        """
        if not isinstance(item_tags, Mapping):
            raise ParamError("item_tags", f"expected a mapping item -> list of tags, got "
                                          f"{type(item_tags).__name__}")
        index: dict | None = None
        if item_ids is not None:
            raw = np.asarray(getattr(item_ids, "item_ids", item_ids))
            if raw.ndim != 1:
                raise ParamError("item_ids", f"expected one raw id per item, got shape "
                                             f"{raw.shape}")
            index = {v: i for i, v in enumerate(raw.tolist())}
            if n_items is not None and n_items != len(raw):
                raise ParamError("n_items", f"is {plain(n_items)} but item_ids lists {len(raw)} "
                                            f"items")
            n_items = len(raw)
        if n_items is None:
            raise ParamError("n_items", "expected the number of items (or pass item_ids)")
        n_items = check_int(n_items, "n_items", low=0)
        rows: dict[int, list[str]] = {}
        matched = 0
        for key, tags in item_tags.items():
            if index is not None:
                i = _lookup(index, key.item() if isinstance(key, np.generic) else key)
                if i is None:
                    continue
                matched += 1
            else:
                i = check_int(key, "item_tags", low=0, high=n_items - 1)
            if isinstance(tags, str) or not isinstance(tags, Iterable):
                raise ParamError("item_tags", f"item {plain(key)}: expected a list of tags, got "
                                              f"{plain(tags)}")
            rows.setdefault(i, []).extend(str(t) for t in tags)
        if index is not None and item_tags and not matched:
            sample = ", ".join(plain(k) for k in list(item_tags)[:3])
            raise DataError(f"{source}: none of the {len(item_tags)} tagged items is an item of "
                            f"the data (tagged ids such as {sample}; item ids such as "
                            f"{', '.join(plain(v) for v in list(index)[:3])})")
        columns = sorted({t for tags in rows.values() for t in tags})
        col = {t: j for j, t in enumerate(columns)}
        matrix = np.zeros((n_items, len(columns)), dtype=np.float32)
        r = [i for i, tags in rows.items() for _ in tags]
        c = [col[t] for tags in rows.values() for t in tags]
        matrix[r, c] = 1.0
        h = hashlib.sha256(f"{FORMAT} tags {n_items}\n{source}\n".encode())
        for i in sorted(rows):
            h.update(f"{i}\t{'|'.join(sorted(set(rows[i])))}\n".encode())
        return cls(matrix, matrix.any(axis=1), source, h.hexdigest(), columns=tuple(columns))


def _lookup(index: dict, key) -> int | None:
    """``index[key]``, trying the string form of an integer key and the integer form of a
    string of digits too (a tags file read as text against integer ids, and back)."""
    i = index.get(key)
    if i is None and isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        i = index.get(str(key))
    elif i is None and isinstance(key, str) and key.strip().lstrip("-").isdigit():
        i = index.get(int(key))
    return i


# ----------------------------------------------------------------------------- readers
def read_item_tags(path: str | os.PathLike) -> dict[int | str, list[str]]:
    """``{raw item id: [tag, ...]}`` from a TAB-separated file of ``item<TAB>tag|tag|…`` lines
    (UTF-8; blank lines and lines starting with ``#`` are skipped; an item may appear on several
    lines; ``item`` alone means no tags). Ids are ints when every id is an integer, else
    strings. Tags are stripped; empty ones dropped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the tags file "
                        f"({getattr(exc, 'strerror', None) or exc})") from None
    out: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item, _, tags = line.partition("\t")
        item = item.strip()
        if not item or "\t" in tags:
            raise DataError(f"{path}: line {lineno}: expected item<TAB>tag|tag|..., got "
                            f"{plain(line)}")
        out.setdefault(item, []).extend(t.strip() for t in tags.split("|") if t.strip())
    if all(k.lstrip("-").isdigit() for k in out):
        return {int(k): v for k, v in out.items()}
    return dict(out)


def read_movielens_genres(path: str | os.PathLike) -> dict[int, list[str]]:
    """``{movie id: [genre, ...]}`` from a MovieLens ``movies.dat`` (``MovieID::Title::Genres``,
    Latin-1; ML-1M) or ``movies.csv`` (``movieId,title,genres``, UTF-8; ml-latest-small).
    ``(no genres listed)`` gives an empty list."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    out: dict[int, list[str]] = {}
    if path.suffix.lower() == ".csv":
        try:
            rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from None
        if not rows or [c.strip() for c in rows[0][:1]] != ["movieId"] or "genres" not in rows[0]:
            raise DataError(f"{path}: line 1: expected the header movieId,title,genres")
        g = rows[0].index("genres")
        records = [(lineno, r[0], r[g] if len(r) > g else None)
                   for lineno, r in enumerate(rows[1:], start=2) if r]
    else:
        lines = raw.decode("latin-1").splitlines()
        records = []
        for lineno, line in enumerate(lines, start=1):
            if line.strip():
                parts = line.split("::")
                records.append((lineno, parts[0], parts[2] if len(parts) == 3 else None))
    for lineno, movie, genres in records:
        if genres is None or not movie.strip().isdigit():
            raise DataError(f"{path}: line {lineno}: expected a movie id, a title and genres")
        out[int(movie)] = [] if genres == "(no genres listed)" else [
            x for x in genres.split("|") if x]
    return out


def read_movielens_tags(path: str | os.PathLike) -> dict[int, list[str]]:
    """``{movie id: [tag, ...]}`` from a MovieLens ``tags.csv`` (``userId,movieId,tag,
    timestamp``): each movie's distinct tags, stripped and lower-cased, in first-use order."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
                        ) from None
    if not rows or "movieId" not in rows[0] or "tag" not in rows[0]:
        raise DataError(f"{path}: line 1: expected a header with movieId and tag")
    im, it = rows[0].index("movieId"), rows[0].index("tag")
    out: dict[int, dict[str, None]] = {}
    for lineno, r in enumerate(rows[1:], start=2):
        if not r:
            continue
        if len(r) <= max(im, it) or not r[im].strip().isdigit():
            raise DataError(f"{path}: line {lineno}: expected {len(rows[0])} fields with an "
                            f"integer movieId")
        tag = " ".join(r[it].split()).lower()
        if tag:
            out.setdefault(int(r[im]), {})[tag] = None
    return {m: list(tags) for m, tags in out.items()}


def read_dbpedia_categories(folder: str | os.PathLike) -> dict[int, list[str]]:
    """``{item id: [DBpedia category, ...]}`` from elliot's ``cat_dbpedia_movielens_1m``
    (``features.tsv``: ``id<TAB><predicate><object IRI>``, ``map.tsv``: ``item<TAB>feature…``),
    categories named without the ``http://dbpedia.org/resource/Category:`` prefix.

    The item ids are **elliot's**, not ML-1M MovieIDs (see ml-1m-dbpedia/SOURCE.md: they look
    like a dense re-index in MovieID order with unmapped movies dropped, unverified): map them
    to your id space before :meth:`ItemFeatures.from_tags`.
    """
    folder = Path(folder)
    names: dict[int, str] = {}
    for lineno, line in _tsv_lines(folder / "features.tsv"):
        fid, _, iri = line.partition("\t")
        obj = iri.rsplit("><", 1)[-1].strip("<>")
        if not fid.isdigit() or not obj:
            raise DataError(f"{folder / 'features.tsv'}: line {lineno}: expected "
                            f"id<TAB><predicate><object>")
        names[int(fid)] = obj[len(_DBPEDIA_CATEGORY):] if obj.startswith(_DBPEDIA_CATEGORY) \
            else obj
    out: dict[int, list[str]] = {}
    for lineno, line in _tsv_lines(folder / "map.tsv"):
        cols = line.split("\t")
        if not all(c.isdigit() for c in cols) or len(cols) < 2:
            raise DataError(f"{folder / 'map.tsv'}: line {lineno}: expected item<TAB>feature ids")
        unknown = [c for c in cols[1:] if int(c) not in names]
        if unknown:
            raise DataError(f"{folder / 'map.tsv'}: line {lineno}: feature {unknown[0]} is not "
                            f"in features.tsv")
        out[int(cols[0])] = [names[int(c)] for c in cols[1:]]
    return out


def _tsv_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
                        ) from None
    return [(k, line) for k, line in enumerate(text.splitlines(), start=1) if line.strip()]


# ----------------------------------------------------------------------------- cache
def _check_key(key) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ParamError("key", f"expected a cache key of letters, digits, '.', '_' or '-' "
                                f"(a hash), got {plain(key)}")
    return key


def cache_path(folder: str | os.PathLike, key: str) -> Path:
    """The file that holds the features of ``key`` in cache folder ``folder``."""
    if not isinstance(folder, (str, os.PathLike)):
        raise ParamError("folder", f"expected a folder path, got {plain(folder)}")
    return Path(folder) / f"item-features-{_check_key(key)}.safetensors"


def save_cache(folder: str | os.PathLike, features: ItemFeatures) -> Path:
    """Write ``features`` into cache folder ``folder`` (created if need be) as
    ``item-features-<key>.safetensors``, atomically; returns the file.

    The folder is claimed with :mod:`advrec.outputs` (kind ``"features"``): a non-empty folder
    advrec did not write is refused (OutputError naming it), and so is a file of that name that
    advrec did not write; advrec's own earlier file for the key is replaced.
    """
    if not isinstance(features, ItemFeatures):
        raise ParamError("features", f"expected an ItemFeatures, got {type(features).__name__}")
    path = cache_path(folder, features.key)
    out = claim_dir(path.parent, CACHE_KIND, identity=CACHE_IDENTITY)
    if os.path.lexists(path) and path.name not in out.entries():
        raise OutputError(f"{path} exists and advrec did not write it; refusing to replace it")
    tensors = {"features": features.matrix, "present": features.present}
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "source": features.source,
            "key": features.key}
    if features.categories is not None:
        tensors["categories"] = features.categories
    if features.genres is not None:
        tensors["genres"] = features.genres
    for name in ("category_names", "columns", "genre_names"):
        if getattr(features, name) is not None:
            meta[name] = json.dumps(list(getattr(features, name)))
    return out.write(path.name, lambda tmp: st_numpy.save_file(
        {k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=meta))


def load_cache(folder: str | os.PathLike, key: str) -> ItemFeatures | None:
    """The features cached under ``key`` in ``folder``, or None when there are none. A cache
    file that cannot be read, or that holds another key, is a DataError naming it."""
    path = cache_path(folder, key)
    if not path.is_file():
        return None
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        if meta.get("format") != FORMAT or meta.get("key") != key:
            raise DataError(f"{path}: not advrec's cached features for key {key} (format "
                            f"{meta.get('format')!r}, key {meta.get('key')!r}); delete it")
        opt = {name: tuple(json.loads(meta[name]))
               for name in ("category_names", "columns", "genre_names") if name in meta}
        return ItemFeatures(tensors["features"], tensors["present"], meta.get("source", ""),
                            key, categories=tensors.get("categories"),
                            genres=tensors.get("genres"), **opt)
    except DataError:
        raise
    except Exception as exc:  # a damaged file: safetensors, json and shape errors
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: damaged feature cache ({reason}); delete it") from None
