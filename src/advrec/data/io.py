"""Readers and writers of interaction files; every reader returns an :class:`Interactions`.

Parsing is vectorised with pandas (C engine) and numpy. Bad input raises one :class:`DataError`
that names the file, the 1-based line number, the field and what was expected; a bad argument
raises :class:`ParamError` naming it. What every reader refuses:

- a missing path, a folder, an empty file, a binary file (NUL bytes) or bytes that are not valid
  text in the file's encoding (the line is named);
- a line with too few or too many fields, an empty field;
- an integer id or timestamp outside the int64 range (it is never wrapped or rounded, so ids
  such as 2**63 and 2**64 + 1 can never collapse into one user), a timestamp that is negative or
  not an integer;
- a rating that is not a number, NaN, ±inf or beyond the float32 range ratings are stored in.

Work is linear in the file size: an enormous single line is parsed (and refused) like any other.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError, ParamError
from advrec.outputs import write_file
from advrec.validation import check_bool, check_float, check_int, plain
from advrec.vocabulary import UNSEEN

pd = lazy("pandas")

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
_C_EOF_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_UNSEEN = UNSEEN
_INT64_MAX = "9223372036854775807"
_INT64_MIN_ABS = "9223372036854775808"
_INT64_RANGE = "-9223372036854775808..9223372036854775807"
_FLOAT_EXACT = 2.0**53  # integral floats beyond this are not exact, so no id can be read from one
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SNIFF_BYTES = 1 << 16  # how much of a file is looked at for NUL bytes before parsing
_HEADER_LIMIT = 1 << 16  # longest header line read_movielens_csv accepts

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- small helpers
def _existing_file(path: PathLike) -> Path:
    """The path as a :class:`Path`, or a DataError if it is not an existing regular file."""
    if not isinstance(path, (str, os.PathLike)):
        raise ParamError("path", f"expected a file path, got {plain(path)}")
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a folder; expected an interaction file")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    return p


def _os_error(path: Path, exc: OSError) -> DataError:
    return DataError(f"{path}: cannot read the file ({exc.strerror or exc})")


def _sep_name(sep: str) -> str:
    return {"\t": "TAB", " ": "SPACE", r"\s+": "whitespace", ",": "','"}.get(sep, repr(sep))


def _check_sep(sep) -> str:
    if not isinstance(sep, str) or not sep:
        raise ParamError("sep", f"expected a non-empty string, got {plain(sep)}")
    if sep != r"\s+" and any(c in sep for c in "\r\n\"\0"):
        raise ParamError("sep", f"may not contain a line break, a quote or NUL, got {plain(sep)}")
    return sep


def _check_encoding(encoding) -> str:
    if not isinstance(encoding, str):
        raise ParamError("encoding", f"expected an encoding name, got {plain(encoding)}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ParamError("encoding", f"unknown text encoding {encoding!r}") from None
    return encoding


def _check_scale(scale) -> tuple[float, float] | None:
    if scale is None:
        return None
    try:
        lo, hi = scale
    except (TypeError, ValueError):
        raise ParamError("rating_scale", f"expected (low, high) or None, got {plain(scale)}"
                         ) from None
    lo = check_float(lo, "rating_scale")
    hi = check_float(hi, "rating_scale")
    if lo > hi:
        raise ParamError("rating_scale", f"low must not exceed high, got ({lo:g}, {hi:g})")
    return lo, hi


def _normalise_columns(columns: Sequence[str | None]) -> list[str]:
    """Column names for the parser: known fields kept, ``None``/``"-"`` become ignored columns."""
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise ParamError("columns", f"expected a sequence of field names, got {plain(columns)}")
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


def _line_of(data: bytes, pos: int) -> int:
    """1-based line of byte ``pos`` (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line)."""
    head = data[:pos]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _refuse_binary(path: Path, what: str) -> None:
    """A NUL byte near the start means a binary (or UTF-16) file, not lines of text."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        raise _os_error(path, exc) from None
    pos = head.find(b"\0")
    if pos >= 0:
        raise DataError(f"{path}: line {_line_of(head, pos)}: contains a NUL byte; this looks "
                        f"like a binary (or UTF-16) file, expected text lines of {what}")


def _decode_error(path: Path, encoding: str, what: str) -> DataError:
    """Find the first line that is not valid ``encoding`` text (read line by line in binary)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line_no = 0
    try:
        with open(path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):  # noqa: B007
                try:
                    decoder.decode(raw)
                except UnicodeDecodeError as exc:
                    return DataError(f"{path}: line {line_no}: byte {exc.start + 1} of the line "
                                     f"is not valid {encoding} text ({exc.reason}); expected "
                                     f"text lines of {what}")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return DataError(f"{path}: line {line_no}: the file ends inside a {encoding} character "
                         f"({exc.reason})")
    except OSError as exc:
        return _os_error(path, exc)
    return DataError(f"{path}: not valid {encoding} text; expected text lines of {what}")


# ----------------------------------------------------------------------------- table parsing
def _source(path: Path, sep: str) -> tuple[PathLike | io.BytesIO, str]:
    """What to hand to ``pd.read_csv`` and with which separator (multi-char seps are rewritten)."""
    if len(sep) == 1 or sep == r"\s+":
        return path, sep
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _os_error(path, exc) from None
    if _UNIT_SEP.encode() in data:
        raise DataError(f"{path}: contains the control byte 0x1f; cannot use separator {sep!r}")
    return io.BytesIO(data.replace(sep.encode(), _UNIT_SEP.encode())), _UNIT_SEP


def _parse(path: Path, names: list[str], sep: str, header: bool, skip_rows: int,
           dtype: dict[str, type] | None, encoding: str) -> pd.DataFrame:
    """One ``pd.read_csv`` of the table; parser failures become DataErrors naming the line."""
    what = ", ".join(names)
    src, c_sep = _source(path, sep)
    first_line = skip_rows + int(header) + 1
    # Quotes only mean something in comma-separated files; elsewhere a stray '"' is just a
    # character of a (then invalid) field, never the start of a field spanning many lines.
    quoting = csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE
    # pandas needs time quadratic in the field count when the first data line is too long,
    # so that line is counted here first (linear) and refused without pandas.
    found = _count_fields(path, first_line, sep, encoding)
    if found > len(names):
        raise DataError(f"{path}: line {first_line}: expected {len(names)} fields separated by "
                        f"{_sep_name(sep)}, found {found}")
    try:
        with warnings.catch_warnings():
            # pandas only *warns* when the first data line has too many fields
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                src, sep=c_sep, header=None, names=names, index_col=False,
                skiprows=skip_rows + header, skip_blank_lines=False, keep_default_na=False,
                na_values=[""], dtype=dtype, engine="c", encoding=encoding, quoting=quoting,
            )
    except pd.errors.ParserWarning:
        found = _count_fields(path, first_line, sep, encoding)
        raise DataError(f"{path}: line {first_line}: expected {len(names)} fields separated by "
                        f"{_sep_name(sep)}, found {found}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty; expected lines of {what}") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, len(names), sep) from None
    except UnicodeDecodeError:
        raise _decode_error(path, encoding, what) from None
    except OSError as exc:
        raise _os_error(path, exc) from None


def _read_frame(path: Path, names: list[str], sep: str, header: bool, skip_rows: int,
                dtype: dict[str, type] | None, encoding: str,
                int_fields: Sequence[str] = ()) -> tuple[pd.DataFrame, int]:
    """Parse the table: the frame (blank lines dropped, index kept) and the line of row 0.

    ``int_fields`` are parsed again as text when pandas could not read them as exact int64
    (an id beyond the int64 range, a decimal point, a word), so they are checked digit by digit.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _os_error(path, exc) from None
    if size == 0:
        raise DataError(f"{path}: file is empty; expected lines of {', '.join(names)}")
    if not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):  # NUL is text there
        _refuse_binary(path, ", ".join(names))
    df = _parse(path, names, sep, header, skip_rows, dtype, encoding)
    inexact = [f for f in int_fields if f in df and not _exact_column(df[f])]
    if inexact:
        df = _parse(path, names, sep, header, skip_rows, {**(dtype or {}),
                                                           **dict.fromkeys(inexact, str)},
                    encoding)
    first_line = skip_rows + int(header) + 1
    blank = df.isna().all(axis=1).to_numpy()
    if blank.any():
        df = df[~blank]
    if df.empty:
        raise DataError(f"{path}: no interactions (the file has no data lines)")
    if sep == ",":
        _refuse_multiline(df, path, first_line)
    return df, first_line


def _exact_column(col: pd.Series) -> bool:
    """Whether pandas kept the column's values exactly: int64 numbers, or the text itself."""
    if col.dtype == np.int64:
        return True
    if pd.api.types.is_string_dtype(col.dtype):
        return pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty")
    return False


def _refuse_multiline(df: pd.DataFrame, path: Path, first_line: int) -> None:
    """A quoted CSV field holding a line break would shift every later line number."""
    for name in df.columns:
        col = df[name]
        if not pd.api.types.is_string_dtype(col.dtype):
            continue
        broken = col.astype(str).str.contains(r"[\r\n]", regex=True).to_numpy(dtype=bool)
        if broken.any():
            row = int(np.argmax(broken))
            raise DataError(f"{path}: line {first_line + int(df.index[row])}: field '{name}' "
                            f"holds a quoted line break; expected one record per line")


def _count_fields(path: Path, line_no: int, sep: str, encoding: str) -> int:
    """Number of fields on one (1-based) line of the file (0 past the end); linear in its size.

    Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``, as for pandas; a comma-separated
    line is split with the csv module, so quoted commas do not count.
    """
    try:
        with open(path, encoding=encoding, errors="replace", newline=None) as f:
            line = next(itertools.islice(f, line_no - 1, None), "").rstrip("\r\n")
    except OSError as exc:
        raise _os_error(path, exc) from None
    if sep == r"\s+":
        return len(line.split())
    if sep == ",":
        try:
            return len(next(csv.reader([line]), []))
        except csv.Error:  # a NUL byte or a field beyond the csv module's size limit
            pass
    return len(line.split(sep))


def _parser_error(path: Path, exc: Exception, n_fields: int, sep: str) -> DataError:
    text = " ".join(str(exc).split())
    m = _C_FIELDS.search(text)
    if m:
        return DataError(f"{path}: line {m.group(2)}: expected {m.group(1)} fields separated by "
                         f"{_sep_name(sep)}, found {m.group(3)}")
    m = _C_EOF_QUOTE.search(text)
    if m:
        return DataError(f"{path}: line {int(m.group(1)) + 1}: a quote '\"' opens a field that "
                         f"is never closed; expected {n_fields} fields separated by "
                         f"{_sep_name(sep)}")
    text = text.removeprefix("Error tokenizing data. ").removeprefix("C error: ")
    return DataError(f"{path}: cannot parse as {n_fields} fields separated by "
                     f"{_sep_name(sep)} ({text})")


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
    return DataError(f"{path}: line {line}: field '{field}' is {plain(col.iloc[row])}; "
                     f"expected {expected}")


def _numbers(col: pd.Series, path: Path, first_line: int, field: str) -> np.ndarray:
    """The column as finite float64 numbers within the float32 range ratings are stored in;
    the first other value is reported with its line."""
    if pd.api.types.is_bool_dtype(col.dtype):
        values = np.full(len(col), np.nan)
    elif pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise _first_bad(path, first_line, col, bad, field, "a finite number")
    huge = np.abs(values) > _FLOAT32_MAX
    if huge.any():
        raise _first_bad(path, first_line, col, huge, field,
                         f"a number of magnitude at most {_FLOAT32_MAX:.4g} (float32)")
    return values


def _int64_overflow(text: pd.Series) -> np.ndarray:
    """For integer literals (``[+-]?[0-9]+``): which lie outside the int64 range."""
    negative = text.str.startswith("-").to_numpy(dtype=bool)
    digits = text.str.lstrip("+-").str.lstrip("0")
    n = digits.str.len().to_numpy(dtype=np.int64)
    d = digits.to_numpy(dtype=str)
    limit = np.where(negative, _INT64_MIN_ABS, _INT64_MAX)
    return (n > 19) | ((n == 19) & (d > limit))


def _int_text(col: pd.Series, path: Path, first_line: int, field: str, expected: str,
              strict: bool, span: str = _INT64_RANGE) -> np.ndarray | None:
    """Integers from text, exactly: decimal literals within int64 (and integral decimals such as
    ``5.0`` up to 2**53, where floats are exact). ``strict``: the first other value is a
    DataError; else None means "not all integers" (an out-of-range literal is still an error)."""
    text = col.astype(str).str.strip()
    literal = text.str.fullmatch(r"[+-]?[0-9]+").to_numpy(dtype=bool)
    integral = np.zeros(len(text), dtype=bool)
    if not literal.all():
        floats = pd.to_numeric(text[~literal], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            integral[~literal] = (np.isfinite(floats) & (np.mod(floats, 1.0) == 0)
                                  & (np.abs(floats) <= _FLOAT_EXACT))
    other = ~literal & ~integral
    if other.any() and not strict:
        return None
    over = np.zeros(len(text), dtype=bool)
    if literal.any():
        over[literal] = _int64_overflow(text[literal])
    if over.any() and (not other.any() or np.argmax(over) < np.argmax(other)):
        hint = "" if strict else " (pass id_type='str' to keep such ids as text)"
        raise _first_bad(path, first_line, col, over, field,
                         f"{expected} within the int64 range {span}{hint}")
    if other.any():
        raise _first_bad(path, first_line, col, other, field, expected)
    values = np.empty(len(text), dtype=np.int64)
    if literal.any():
        values[literal] = np.array(text[literal].tolist(), dtype="S").astype(np.int64)
    if integral.any():
        values[integral] = pd.to_numeric(text[integral]).to_numpy(dtype=np.float64)
    return values


def _ids(col: pd.Series, path: Path, first_line: int, field: str, id_type: str) -> np.ndarray:
    """Raw ids: int64 when ``id_type`` is "int" (or "auto" and all are integers), else strings."""
    if id_type == "str":
        return col.astype(str).to_numpy(dtype=str)
    if col.dtype == np.int64:
        return col.to_numpy(dtype=np.int64)
    values = _int_text(col, path, first_line, field, "an integer id", strict=id_type == "int")
    if values is None:
        return col.astype(str).to_numpy(dtype=str)
    return values


def _timestamps(col: pd.Series, path: Path, first_line: int) -> np.ndarray:
    """Timestamps: non-negative int64 integers (Unix seconds or finer), exactly."""
    expected = "a non-negative integer timestamp"
    if col.dtype == np.int64:
        values = col.to_numpy(dtype=np.int64)
    else:
        values = _int_text(col, path, first_line, "timestamp", expected, strict=True,
                           span=f"0..{_INT64_MAX}")
    negative = values < 0
    if negative.any():
        raise _first_bad(path, first_line, col, negative, "timestamp", expected)
    return values


def _check_rating_scale(ratings: np.ndarray, scale: tuple[float, float] | None, rows: pd.Index,
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
    such as ``"::"``; quotes are honoured only when ``sep`` is ``","``. Ids are integers when
    every id is one (``id_type="auto"``), else strings; ``id_type="int"``/``"str"`` forces
    either. Integer ids and timestamps must lie in the int64 range (never wrapped); timestamps
    must be non-negative integers; ratings finite numbers.
    """
    if id_type not in ("auto", "int", "str"):
        raise ConfigError(f"id_type must be 'auto', 'int' or 'str', got {id_type!r}")
    sep = _check_sep(sep)
    header = check_bool(header, "header")
    skip_rows = check_int(skip_rows, "skip_rows", low=0)
    scale = _check_scale(rating_scale)
    encoding = _check_encoding(encoding)
    p = _existing_file(path)
    names = _normalise_columns(columns)
    dtype = {f: str for f in _ID_FIELDS} if id_type == "str" else None
    int_fields = (() if id_type == "str" else _ID_FIELDS) + ("timestamp",)
    df, first = _read_frame(p, names, sep, header, skip_rows, dtype, encoding, int_fields)
    _check_present(df, p, first, len(names), sep)
    users = _ids(df["user"], p, first, "user", id_type)
    items = _ids(df["item"], p, first, "item", id_type)
    ratings = _numbers(df["rating"], p, first, "rating") if "rating" in df else None
    if ratings is not None:
        _check_rating_scale(ratings, scale, df.index, p, first)
    stamps = _timestamps(df["timestamp"], p, first) if "timestamp" in df else None
    label = p.name if name is None else str(name)
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
    _refuse_binary(p, "userId,movieId,rating,timestamp")
    _check_header(p, ("userId", "movieId", "rating", "timestamp"))
    return read_delimited(p, FIELDS, sep=",", header=True, rating_scale=rating_scale,
                          id_type="int")


def _check_header(path: Path, expected: tuple[str, ...]) -> None:
    """The first line must be the expected CSV header (case-insensitive; a BOM is ignored)."""
    try:
        with open(path, "rb") as f:
            raw = f.readline(_HEADER_LIMIT + 1)
    except OSError as exc:
        raise _os_error(path, exc) from None
    if len(raw) > _HEADER_LIMIT:
        raise DataError(f"{path}: line 1 is longer than {_HEADER_LIMIT} bytes; expected the "
                        f"header {','.join(expected)}")
    if b"\0" in raw:
        raise DataError(f"{path}: line 1: contains a NUL byte; this looks like a binary (or "
                        f"UTF-16) file, expected the header {','.join(expected)}")
    try:
        first = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line 1: byte {exc.start + 1} is not valid utf-8 text "
                        f"({exc.reason}); expected the header {','.join(expected)}") from None
    if not first:
        raise DataError(f"{path}: file is empty; expected the header {','.join(expected)}")
    found = [h.strip().strip('"').lower() for h in first.split(",")]
    if found != [h.lower() for h in expected]:
        raise DataError(f"{path}: line 1: header is {plain(first)}; expected "
                        f"{','.join(expected)}")


def read_user_item_rating(path: PathLike, rating_scale: tuple[float, float] | None = None
                          ) -> Interactions:
    """Whitespace-separated ``user item rating`` without header (CFGAN files; CRLF tolerated)."""
    return read_delimited(path, ("user", "item", "rating"), sep=r"\s+",
                          rating_scale=rating_scale, id_type="int")


def read_lightgcn(path: PathLike) -> Interactions:
    """LightGCN-style ``user item item …`` lines (integer ids; a lone user gives no interaction).

    Ids are non-negative decimal integers within the int64 range. Users on lone-user lines are
    kept in the user catalogue. The whole file is tokenised at once and the user of every item
    token is found with numpy, without a Python loop per line.
    """
    p = _existing_file(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise _os_error(p, exc) from None
    data = data.removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        raise DataError(f"{p}: file is empty; expected lines of 'user item item …'")
    nul = data.find(b"\0")
    if nul >= 0:
        raise DataError(f"{p}: line {_line_of(data, nul)}: contains a NUL byte; "
                        f"this looks like a binary (or UTF-16) file, expected text lines of "
                        f"'user item item …'")
    # CRLF and a lone CR end a line as LF does. A NUL token marks each line end; numpy's bytes
    # dtype stores it as b"", which no real token can be (split() drops empty strings and NUL
    # bytes were refused above).
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
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
    """Tokens as int64, each checked to be ASCII digits within the int64 range (no sign, no
    ``_``, never wrapped); the first other token is reported with its line and field."""
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.int64)
    digits = np.char.isdigit(tokens)  # bytes: ASCII digits only
    n = np.char.str_len(tokens)
    over = digits & ((n > 19) | ((n == 19) & (tokens > _INT64_MAX.encode())))
    bad = ~digits | over
    if bad.any():
        row = int(np.argmax(bad))
        field = "user" if is_user[row] else "item"
        text = plain(tokens[row].decode(errors="replace"))
        expected = ("a non-negative integer id within the int64 range "
                    f"0..{_INT64_MAX}" if over[row] else "a non-negative integer id")
        raise DataError(f"{path}: line {lines[row]}: field '{field}' is {text}; "
                        f"expected {expected}")
    return tokens.astype(np.int64)


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


# ----------------------------------------------------------------------------- formats
FORMATS: dict[str, tuple[Callable[..., Interactions], str]] = {
    "ml-100k": (read_movielens_100k, "TAB-separated user item rating timestamp (ML-100K u.data)"),
    "ml-1m": (read_movielens_dat, "user::item::rating::timestamp (ML-1M/10M ratings.dat)"),
    "ratings-csv": (read_movielens_csv, "CSV with the header userId,movieId,rating,timestamp"),
    "delimited": (read_delimited, "any delimited file: options sep, columns, header, skip_rows"),
    "lightgcn": (read_lightgcn, "LightGCN lines: user item item ..."),
    "cfgan": (read_user_item_rating, "whitespace-separated user item rating (CFGAN)"),
}
"""The file formats advrec reads, by name: (reader, one-line description)."""

FORMAT_OPTIONS = {"delimited": ("sep", "columns", "header", "skip_rows", "rating_scale",
                                "id_type", "encoding"),
                  "ml-100k": ("rating_scale",), "ml-1m": ("rating_scale",),
                  "ratings-csv": ("rating_scale",), "cfgan": ("rating_scale",), "lightgcn": ()}


def format_reader(fmt: str, options: dict | None = None) -> Callable[[PathLike], Interactions]:
    """The reader of format ``fmt`` with ``options`` bound (ConfigError naming an unknown format
    or an option the format does not take)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(FORMAT_OPTIONS[fmt]))
    if unknown:
        allowed = ", ".join(FORMAT_OPTIONS[fmt]) or "none"
        raise ConfigError(f"format {fmt!r} takes no option(s) {unknown}; its options: {allowed}")
    if "rating_scale" in options and options["rating_scale"] is not None:
        options["rating_scale"] = tuple(options["rating_scale"])
    reader = FORMATS[fmt][0]
    return lambda path: reader(path, **options)


def read_file(path: PathLike, fmt: str, options: dict | None = None) -> Interactions:
    """Read an interaction file of a named format (see :data:`FORMATS`)."""
    return format_reader(fmt, options)(path)


# ----------------------------------------------------------------------------- writer
def write_delimited(interactions: Interactions, path: PathLike, sep: str = "\t",
                    header: bool = True, overwrite: bool = False) -> Path:
    """Write raw ids (and rating/timestamp when present) atomically: temp file, then rename.

    Readable back with ``read_delimited(path, columns, sep=sep, header=header)`` where
    ``columns`` is the written header (user, item[, rating][, timestamp]). An existing file is
    replaced only with ``overwrite`` and only if advrec wrote it (see :mod:`advrec.outputs`).
    """
    frame = interactions.to_frame(raw_ids=True)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, sep=sep, header=header, index=False, lineterminator="\n")

    return write_file(path, write, overwrite)
