"""Readers and writers of interaction files; every reader returns an :class:`Interactions`.

Parsing is vectorised with pandas (C engine) and numpy. Bad input raises one :class:`DataError`
that names the file, the 1-based line number, the field and what was expected.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError

__all__ = [
    "read_delimited",
    "read_lightgcn",
    "read_movielens_100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_split",
    "read_user_item_rating",
    "write_delimited",
]

FIELDS = ("user", "item", "rating", "timestamp")
_ID_FIELDS = ("user", "item")
_UNIT_SEP = "\x1f"  # stands in for multi-character separators so the C engine can parse them
_C_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_UNSEEN = ("error", "drop", "keep")

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- small helpers
def _existing_file(path: PathLike) -> Path:
    """The path as a :class:`Path`, or a DataError if it is not an existing file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    return p


def _sep_name(sep: str) -> str:
    return {"\t": "TAB", " ": "SPACE", r"\s+": "whitespace", ",": "','"}.get(sep, repr(sep))


def _normalise_columns(columns: Sequence[str | None]) -> list[str]:
    """Column names for the parser: known fields kept, ``None``/``"-"`` become ignored columns."""
    names: list[str] = []
    for k, c in enumerate(columns):
        if c is None or c == "-":
            names.append(f"_ignored{k}")
        elif c in FIELDS:
            if c in names:
                raise ConfigError(f"column {c!r} appears twice in {tuple(columns)}")
            names.append(c)
        else:
            raise ConfigError(f"unknown column {c!r}; use one of {FIELDS}, None or '-'")
    if "user" not in names or "item" not in names:
        raise ConfigError(f"columns {tuple(columns)} must include 'user' and 'item'")
    return names


def _with_name(x: Interactions, name: str) -> Interactions:
    """The same records and id space under another name (no copy)."""
    return Interactions(x.users, x.items, x.user_ids, x.item_ids, x.ratings, x.timestamps, name)


# ----------------------------------------------------------------------------- table parsing
def _source(path: Path, sep: str) -> tuple[PathLike | io.BytesIO, str]:
    """What to hand to ``pd.read_csv`` and with which separator (multi-char seps are rewritten)."""
    if len(sep) == 1 or sep == r"\s+":
        return path, sep
    data = path.read_bytes()
    if _UNIT_SEP.encode() in data:
        raise DataError(f"{path}: contains the control byte 0x1f; cannot use separator {sep!r}")
    return io.BytesIO(data.replace(sep.encode(), _UNIT_SEP.encode())), _UNIT_SEP


def _read_frame(path: Path, names: list[str], sep: str, header: bool, skip_rows: int,
                dtype: dict[str, type] | None, encoding: str) -> tuple[pd.DataFrame, int]:
    """Parse the table: the frame (blank lines dropped, index kept) and the line of row 0."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; expected lines of {', '.join(names)}")
    src, c_sep = _source(path, sep)
    first_line = skip_rows + int(header) + 1
    try:
        with warnings.catch_warnings():
            # pandas only *warns* when the first data line has too many fields
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                src, sep=c_sep, header=None, names=names, index_col=False,
                skiprows=skip_rows + header, skip_blank_lines=False, keep_default_na=False,
                na_values=[""], dtype=dtype, engine="c", encoding=encoding,
            )
    except pd.errors.ParserWarning:
        found = _count_fields(path, first_line, sep, encoding)
        raise DataError(f"{path}: line {first_line}: expected {len(names)} fields separated by "
                        f"{_sep_name(sep)}, found {found}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty; expected lines of {', '.join(names)}") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, len(names), sep) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid {encoding} text ({exc.reason} at byte "
                        f"{exc.start})") from None
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        df = df[~blank]
    if df.empty:
        raise DataError(f"{path}: no interactions (the file has no data lines)")
    return df, first_line


def _count_fields(path: Path, line_no: int, sep: str, encoding: str) -> int:
    """Number of fields on one (1-based) line of the file."""
    with open(path, encoding=encoding, errors="replace") as f:
        line = next(itertools.islice(f, line_no - 1, None), "").rstrip("\r\n")
    return len(line.split()) if sep == r"\s+" else len(line.split(sep))


def _parser_error(path: Path, exc: Exception, n_fields: int, sep: str) -> DataError:
    m = _C_FIELDS.search(str(exc))
    if m:
        return DataError(f"{path}: line {m.group(2)}: expected {m.group(1)} fields separated by "
                         f"{_sep_name(sep)}, found {m.group(3)}")
    return DataError(f"{path}: cannot parse as {n_fields} fields separated by "
                     f"{_sep_name(sep)}: {exc}")


def _check_present(df: pd.DataFrame, path: Path, first_line: int, n_fields: int,
                   sep: str) -> None:
    """Every used field must be present: an empty/missing value is a short or damaged line."""
    for name in df.columns:
        if name.startswith("_ignored"):
            continue
        missing = df[name].isna().to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            line = first_line + int(df.index[row])
            raise DataError(f"{path}: line {line}: field '{name}' is missing or empty; expected "
                            f"{n_fields} fields separated by {_sep_name(sep)}")


def _first_bad(path: Path, first_line: int, col: pd.Series, bad: np.ndarray, field: str,
               expected: str) -> DataError:
    row = int(np.argmax(bad))
    line = first_line + int(col.index[row])
    return DataError(f"{path}: line {line}: field '{field}' is {col.iloc[row]!r}; "
                     f"expected {expected}")


def _numbers(col: pd.Series, path: Path, first_line: int, field: str) -> np.ndarray:
    """The column as finite float64 numbers; the first non-number is reported with its line."""
    if pd.api.types.is_bool_dtype(col.dtype):
        values = np.full(len(col), np.nan)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise _first_bad(path, first_line, col, bad, field, "a finite number")
    return values


def _ids(col: pd.Series, path: Path, first_line: int, field: str, id_type: str) -> np.ndarray:
    """Raw ids: int64 when ``id_type`` is "int" (or "auto" and all are integers), else strings."""
    if id_type == "str":
        return col.astype(str).to_numpy(dtype=str)
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.to_numpy(dtype=np.int64)
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (np.mod(values, 1.0) != 0)
    if not bad.any():
        return values.astype(np.int64)
    if id_type == "int":
        raise _first_bad(path, first_line, col, bad, field, "an integer id")
    return col.astype(str).to_numpy(dtype=str)


def _check_scale(ratings: np.ndarray, scale: tuple[float, float] | None, rows: pd.Index,
                 path: Path, first_line: int) -> None:
    if scale is None:
        return
    lo, hi = scale
    bad = (ratings < lo) | (ratings > hi)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{path}: line {first_line + int(rows[row])}: field 'rating' is "
                        f"{ratings[row]:g}, outside the declared rating_scale [{lo:g}, {hi:g}]")


# ----------------------------------------------------------------------------- generic reader
def read_delimited(
    path: PathLike,
    columns: Sequence[str | None] = FIELDS,
    sep: str = "\t",
    header: bool = False,
    rating_scale: tuple[float, float] | None = None,
    skip_rows: int = 0,
    *,
    id_type: str = "auto",
    encoding: str = "utf-8",
    name: str | None = None,
) -> Interactions:
    """Read a delimited interaction file described by ``columns`` (None/"-" = ignored column).

    ``sep`` may be one character, ``r"\\s+"`` (runs of whitespace) or a multi-character string
    such as ``"::"``. Ids are integers when every id is one (``id_type="auto"``), else strings;
    ``id_type="int"``/``"str"`` forces either. Ratings and timestamps must be numeric.
    """
    if id_type not in ("auto", "int", "str"):
        raise ConfigError(f"id_type must be 'auto', 'int' or 'str', got {id_type!r}")
    p = _existing_file(path)
    names = _normalise_columns(columns)
    dtype = {f: str for f in _ID_FIELDS} if id_type == "str" else None
    df, first = _read_frame(p, names, sep, header, skip_rows, dtype, encoding)
    _check_present(df, p, first, len(names), sep)
    users = _ids(df["user"], p, first, "user", id_type)
    items = _ids(df["item"], p, first, "item", id_type)
    ratings = _numbers(df["rating"], p, first, "rating") if "rating" in df else None
    if ratings is not None:
        _check_scale(ratings, rating_scale, df.index, p, first)
    stamps = None
    if "timestamp" in df:
        col = df["timestamp"]
        stamps = (col.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(col.dtype)
                  else _numbers(col, p, first, "timestamp").astype(np.int64))
    label = p.name if name is None else name
    return Interactions.from_raw(users, items, ratings, stamps, name=label)


# ----------------------------------------------------------------------------- MovieLens & co
def read_movielens_100k(path: PathLike, rating_scale: tuple[float, float] | None = (1, 5)
                        ) -> Interactions:
    """ML-100K ``u.data`` / ``u*.base`` / ``u*.test``: TAB-separated user item rating timestamp."""
    return read_delimited(path, FIELDS, sep="\t", rating_scale=rating_scale, id_type="int")


def read_movielens_dat(path: PathLike, rating_scale: tuple[float, float] | None = (0.5, 5)
                       ) -> Interactions:
    """ML-1M/10M ``ratings.dat``: ``user::item::rating::timestamp`` (ML-10M has half stars)."""
    return read_delimited(path, FIELDS, sep="::", rating_scale=rating_scale, id_type="int",
                          encoding="latin-1")


def read_movielens_csv(path: PathLike, rating_scale: tuple[float, float] | None = (0.5, 5)
                       ) -> Interactions:
    """MovieLens ``ratings.csv`` with header userId,movieId,rating,timestamp (CRLF tolerated)."""
    p = _existing_file(path)
    _check_header(p, ("userId", "movieId", "rating", "timestamp"))
    return read_delimited(p, FIELDS, sep=",", header=True, rating_scale=rating_scale,
                          id_type="int")


def _check_header(path: Path, expected: tuple[str, ...]) -> None:
    """The first line must be the expected CSV header (case-insensitive)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline().strip().lstrip("\ufeff")
    if not first:
        raise DataError(f"{path}: file is empty; expected the header {','.join(expected)}")
    found = [h.strip().strip('"').lower() for h in first.split(",")]
    if found != [h.lower() for h in expected]:
        raise DataError(f"{path}: line 1: header is {first!r}; expected {','.join(expected)}")


def read_user_item_rating(path: PathLike, rating_scale: tuple[float, float] | None = None
                          ) -> Interactions:
    """Whitespace-separated ``user item rating`` without header (CFGAN files; CRLF tolerated)."""
    return read_delimited(path, ("user", "item", "rating"), sep=r"\s+",
                          rating_scale=rating_scale, id_type="int")


def read_lightgcn(path: PathLike) -> Interactions:
    """LightGCN-style ``user item item …`` lines (integer ids; a lone user gives no interaction).

    Users on lone-user lines are kept in the user catalogue. The whole file is tokenised at once
    and the user of every item token is found with numpy, without a Python loop per line.
    """
    p = _existing_file(path)
    data = p.read_bytes()
    if not data.strip():
        raise DataError(f"{p}: file is empty; expected lines of 'user item item …'")
    if b"\0" in data:
        raise DataError(f"{p}: contains NUL bytes; expected text lines of 'user item item …'")
    # A NUL token marks each line end; numpy's bytes dtype stores it as b"", which no real
    # token can be (split() drops empty strings and NUL bytes were refused above).
    tokens = np.array(data.replace(b"\n", b" \0 ").split())
    newline = np.char.str_len(tokens) == 0
    lines = (np.cumsum(newline) - newline + 1)[~newline]
    tokens = tokens[~newline]
    is_user = np.ones(len(tokens), dtype=bool)
    is_user[1:] = lines[1:] != lines[:-1]
    values = _lightgcn_ints(tokens, lines, is_user, p)
    owner = values[is_user][np.cumsum(is_user) - 1]
    users, items = owner[~is_user], values[~is_user]
    if len(items) == 0:
        raise DataError(f"{p}: no interactions (every line holds only a user id)")
    user_ids = np.unique(values[is_user])
    return Interactions.from_raw(users, items, user_ids=user_ids, name=p.name)


def _lightgcn_ints(tokens: np.ndarray, lines: np.ndarray, is_user: np.ndarray,
                   path: Path) -> np.ndarray:
    """Tokens as int64; the first non-integer is reported with its line and field."""
    try:
        return tokens.astype(np.int64)
    except ValueError:
        pass
    bad = ~np.char.isdigit(tokens)
    row = int(np.argmax(bad))
    field = "user" if is_user[row] else "item"
    raise DataError(f"{path}: line {lines[row]}: field '{field}' is "
                    f"{tokens[row].decode(errors='replace')!r}; expected a non-negative integer id")


# ----------------------------------------------------------------------------- pre-split data
def read_split(
    train_path: PathLike,
    test_path: PathLike,
    reader: Callable[..., Interactions] = read_movielens_100k,
    unseen: str = "error",
    **reader_kwargs,
) -> tuple[Interactions, Interactions]:
    """Read a predefined train/test split into ONE id space built over both files.

    ``unseen`` says what to do with test rows whose user or item never occurs in training:
    ``"error"`` (DataError), ``"drop"`` those rows, or ``"keep"`` them (their ids join the space).
    """
    if unseen not in _UNSEEN:
        raise ConfigError(f"unseen must be one of {_UNSEEN}, got {unseen!r}")
    train = reader(train_path, **reader_kwargs)
    test = reader(test_path, **reader_kwargs)
    t_users, t_items = test.user_ids[test.users], test.item_ids[test.items]
    seen_users = train.user_ids[np.unique(train.users)]
    seen_items = train.item_ids[np.unique(train.items)]
    fresh = ~_isin(t_users, seen_users) | ~_isin(t_items, seen_items)
    if fresh.any() and unseen == "error":
        raise _unseen_error(Path(test_path), t_users[fresh], t_items[fresh])
    if unseen == "keep":
        user_space, item_space = test.user_ids, test.item_ids
    else:
        keep = ~fresh
        test = test.subset(keep)
        user_space, item_space = t_users[keep], t_items[keep]
    user_ids = _union(train.user_ids, user_space)
    item_ids = _union(train.item_ids, item_space)
    return _respace(train, user_ids, item_ids), _respace(test, user_ids, item_ids)


def _isin(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    if values.dtype.kind != pool.dtype.kind:
        values, pool = values.astype(str), pool.astype(str)
    return np.isin(values, pool)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted union of two id arrays (as strings when one side is numeric and the other not)."""
    if a.dtype.kind != b.dtype.kind:
        a, b = a.astype(str), b.astype(str)
    return np.union1d(a, b)


def _respace(x: Interactions, user_ids: np.ndarray, item_ids: np.ndarray) -> Interactions:
    """``x`` re-expressed over the given id maps."""
    users, items = x.user_ids[x.users], x.item_ids[x.items]
    if users.dtype.kind != user_ids.dtype.kind:
        users = users.astype(str)
    if items.dtype.kind != item_ids.dtype.kind:
        items = items.astype(str)
    return Interactions.from_raw(users, items, x.ratings, x.timestamps, user_ids=user_ids,
                                 item_ids=item_ids, name=x.name)


def _unseen_error(test_path: Path, users: np.ndarray, items: np.ndarray) -> DataError:
    shown = ", ".join(f"(user {u}, item {i})" for u, i in zip(users[:5], items[:5], strict=True))
    more = " …" if len(users) > 5 else ""
    return DataError(
        f"{test_path}: {len(users)} test interaction(s) have a user or item that never occurs in "
        f"the training file, e.g. {shown}{more}; pass unseen='drop' to discard them or "
        f"unseen='keep' to keep them in the id space"
    )


# ----------------------------------------------------------------------------- writer
def write_delimited(interactions: Interactions, path: PathLike, sep: str = "\t",
                    header: bool = True) -> Path:
    """Write raw ids (and rating/timestamp when present) atomically: temp file, then rename.

    Readable back with ``read_delimited(path, columns, sep=sep, header=header)`` where
    ``columns`` is the written header (user, item[, rating][, timestamp]).
    """
    target = Path(path)
    frame = interactions.to_frame(raw_ids=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, sep=sep, header=header, index=False, lineterminator="\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
