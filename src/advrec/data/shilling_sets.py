"""The official attack targets of the AUSH / Leg-UP shilling data sets, read from the staged files.

The data sets themselves (``filmtrust``, ``automotive``, ``appandroid``, ``groceryfood``,
``toolhome``, ``yelp-legup``) are registered in :mod:`advrec.data.datasets`; their ids are the
raw 0-based ids of the files, so the ids returned here are raw ids too (map them with
``train.item_index`` / ``train.user_index``). The target files are found where the data set's
own train/test files are (``ADVREC_DATA_DIR``, see :func:`advrec.data.datasets.data_dir`).

- :func:`official_targets`: the items the official scripts attack. FilmTrust: AUSH's README /
  ``example.sh`` list (5 random + 5 tail items); Leg-UP's ``run.sh`` uses its first five.
  Automotive: the AUSH code's default list, or Leg-UP's ``run.sh`` list (``paper="legup"``).
  The four Leg-UP sets have no targets fixed in code: their ``*_target_item`` candidate lists.
- :func:`candidate_targets`: every target the staged files provide for (40 FilmTrust, 15
  Automotive; the Leg-UP lists, 10-23 % of which do not occur in the train/test files).
- :func:`selected_items`: the "selected items" of each target (segment / bandwagon / AUSH):
  3 per target for FilmTrust, 1 for Automotive and the Leg-UP sets.
- :func:`target_users`: each target's target user group (AUSH sets only; none of them rated the
  target in train). Leg-UP evaluates on all users who have not rated the target.

Malformed files raise one :class:`DataError` naming the file, the 1-based line and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import advrec.data.datasets as datasets
from advrec.errors import DataError, ParamError
from advrec.validation import plain

__all__ = [
    "AUTOMOTIVE_AUSH_TARGETS",
    "AUTOMOTIVE_LEGUP_TARGETS",
    "FILMTRUST_AUSH_TARGETS",
    "FILMTRUST_LEGUP_TARGETS",
    "SHILLING_SETS",
    "candidate_targets",
    "official_targets",
    "selected_items",
    "target_users",
]

FILMTRUST_AUSH_TARGETS = (5, 395, 181, 565, 254, 601, 623, 619, 64, 558)
"""AUSH README / ``example.sh`` / ``main_eval_attack.py``: 5 random and 5 tail (cold) items."""
FILMTRUST_LEGUP_TARGETS = (5, 395, 181, 565, 254)
"""Leg-UP ``run.sh``: the five random items of AUSH's list."""
AUTOMOTIVE_AUSH_TARGETS = (88, 22, 122, 339, 1431, 1141, 1656, 477, 1089, 866)
"""The ``--target_ids`` default of AUSH's ``main_eval_attack.py`` / ``main_baseline_attack.py``."""
AUTOMOTIVE_LEGUP_TARGETS = (119, 422, 594, 884, 1593)
"""Leg-UP ``run.sh``."""

_MAX_DIGITS = 18  # every id of at most 18 digits fits int64


@dataclass(frozen=True)
class _Targets:
    """Where one data set's target files are and which target lists its papers attack."""

    prefix: str  # file prefix: <prefix>_selected_items, <prefix>_target_users / _target_item
    papers: Mapping[str, tuple[int, ...] | None]  # None: the *_target_item candidate list
    default: str
    has_target_users: bool


_SETS: dict[str, _Targets] = {
    "filmtrust": _Targets("filmTrust", {"aush": FILMTRUST_AUSH_TARGETS,
                                        "legup": FILMTRUST_LEGUP_TARGETS}, "aush", True),
    "automotive": _Targets("automotive", {"aush": AUTOMOTIVE_AUSH_TARGETS,
                                          "legup": AUTOMOTIVE_LEGUP_TARGETS}, "aush", True),
    "appandroid": _Targets("AppAndroid", {"legup": None}, "legup", False),
    "groceryfood": _Targets("GroceryFood", {"legup": None}, "legup", False),
    "toolhome": _Targets("ToolHome", {"legup": None}, "legup", False),
    "yelp-legup": _Targets("yelp", {"legup": None}, "legup", False),
}

SHILLING_SETS = tuple(_SETS)
"""The registered data sets that come with official shilling targets."""

Root = str | os.PathLike | None


# ----------------------------------------------------------------------------- public API
def official_targets(name: str, paper: str | None = None, *, root: Root = None) -> list[int]:
    """The raw item ids the official scripts attack on data set ``name``.

    ``paper`` is ``"aush"`` (the default for filmtrust / automotive) or ``"legup"`` (the only
    choice, and the default, for the four Leg-UP sets, whose lists are their ``*_target_item``
    files). A fixed list is checked against the staged ``*_selected_items`` file.
    """
    entry = _entry(name)
    if paper is None:
        paper = entry.default
    if paper not in entry.papers:
        raise ParamError("paper", f"expected one of {', '.join(map(repr, entry.papers))} for "
                                  f"{name!r}, got {plain(paper)}")
    fixed = entry.papers[paper]
    if fixed is None:
        return candidate_targets(name, root=root)
    path = _file(name, entry, "selected_items", root)
    known = _read_lists(path, "selected")
    missing = [t for t in fixed if t not in known]
    if missing:
        raise DataError(f"{path}: holds no line for the official {paper} target(s) "
                        f"{', '.join(map(str, missing))} of {name!r}; expected the "
                        f"XMUDM/ShillingAttack release of the file")
    return list(fixed)


def candidate_targets(name: str, *, root: Root = None) -> list[int]:
    """Every target item the staged files provide for (raw ids, in file order)."""
    entry = _entry(name)
    if entry.has_target_users:
        return list(_read_lists(_file(name, entry, "selected_items", root), "selected"))
    return _read_column(_file(name, entry, "target_item", root))


def selected_items(name: str, *, root: Root = None) -> dict[int, list[int]]:
    """``{target: [selected item, …]}`` (raw ids) from ``<prefix>_selected_items``."""
    entry = _entry(name)
    return _read_lists(_file(name, entry, "selected_items", root), "selected")


def target_users(name: str, *, root: Root = None) -> dict[int, list[int]]:
    """``{target: [target user, …]}`` (raw ids) from ``<prefix>_target_users`` (AUSH sets)."""
    entry = _entry(name)
    if not entry.has_target_users:
        raise DataError(f"data set {name!r} has no target-user file (Leg-UP measures each target "
                        f"on all users who have not rated it); target users exist for "
                        f"{', '.join(n for n, e in _SETS.items() if e.has_target_users)}")
    return _read_lists(_file(name, entry, "target_users", root), "users")


# ----------------------------------------------------------------------------- files
def _entry(name: str) -> _Targets:
    if not isinstance(name, str):
        raise ParamError("name", f"expected a data set name, got {plain(name)}")
    try:
        return _SETS[name]
    except KeyError:
        raise DataError(f"data set {name!r} has no official shilling targets; data sets with "
                        f"them: {', '.join(_SETS)}") from None


def _file(name: str, entry: _Targets, kind: str, root: Root) -> Path:
    """``<folder>/<prefix>_<kind>`` in the folder that holds the data set's own files."""
    folder = datasets._locate(datasets._spec(name), root)
    path = folder / f"{entry.prefix}_{kind}"
    if not path.is_file():
        raise DataError(f"{path}: file not found; it belongs next to the train/test files of "
                        f"{name!r} (see {folder / 'SOURCE.md'})")
    return path


def _lines(path: Path, what: str) -> list[tuple[int, str]]:
    """The file's non-blank lines as ``(1-based line number, text)``; refuses binary or
    non-UTF-8 content and a file without data lines."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    nul = data.find(b"\0")
    if nul >= 0:
        line_no = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{path}: line {line_no}: contains a NUL byte; expected text lines of "
                        f"{what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}: line {line_no}: not valid utf-8 text ({exc.reason}); expected "
                        f"text lines of {what}") from None
    out = [(k, line.rstrip("\r").strip(" ")) for k, line in enumerate(text.split("\n"), start=1)
           if line.strip()]
    if not out:
        raise DataError(f"{path}: file is empty; expected lines of {what}")
    return out


def _id(token: str, path: Path, line_no: int, field_name: str) -> int:
    token = token.strip()
    if not (token.isascii() and token.isdigit() and len(token) <= _MAX_DIGITS):
        raise DataError(f"{path}: line {line_no}: field '{field_name}' is {plain(token)}; "
                        f"expected a non-negative integer id")
    return int(token)


def _read_lists(path: Path, field_name: str) -> dict[int, list[int]]:
    """``target<TAB>id,id,…`` lines as ``{target: [id, …]}`` (each target once)."""
    what = f"'target<TAB>{field_name},{field_name},…'"
    out: dict[int, list[int]] = {}
    first: dict[int, int] = {}
    for line_no, line in _lines(path, what):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}: line {line_no}: expected 2 fields separated by TAB, found "
                            f"{len(fields)} (lines of {what})")
        target = _id(fields[0], path, line_no, "target")
        if target in first:
            raise DataError(f"{path}: line {line_no}: target {target} appears again (first on "
                            f"line {first[target]}); expected each target once")
        if not fields[1].strip():
            raise DataError(f"{path}: line {line_no}: field '{field_name}' is empty; expected "
                            f"comma-separated integer ids")
        out[target] = [_id(tok, path, line_no, field_name) for tok in fields[1].split(",")]
        first[target] = line_no
    return out


def _read_column(path: Path) -> list[int]:
    """One item id per line (a ``*_target_item`` file), each id once."""
    out: list[int] = []
    first: dict[int, int] = {}
    for line_no, line in _lines(path, "one target item id"):
        item = _id(line, path, line_no, "item")
        if item in first:
            raise DataError(f"{path}: line {line_no}: item {item} appears again (first on line "
                            f"{first[item]}); expected each target once")
        first[item] = line_no
        out.append(item)
    return out
