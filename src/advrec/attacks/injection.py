"""Every injection attack by name: the hand-crafted shilling recipes, the optimised poisoning
attacks (:mod:`advrec.attacks.poisoning`) and fake profiles read from a file.

All of them return fake users as an :class:`~advrec.data.Interactions` of new users in the
victim's item space, so an experiment injects, retrains and measures them alike::

    attack = make_injection("revadv", size=0.01, surrogate="wmf")
    fake = attack.generate(train, targets=[50], seed=0)
    save_profiles(fake, "fake.tsv")                      # TAB-separated, a header row
    again = make_injection("file", path="fake.tsv").generate(train, [50])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.shilling import ATTACKS as HAND_CRAFTED
from advrec.attacks.shilling import ShillingAttack, _profiles, resolve_items
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError
from advrec.vocabulary import POISONING_ATTACKS, PROFILE_FILE

pd = lazy("pandas")

__all__ = ["ProfileFile", "attack_class", "injection_attacks", "is_poisoning", "make_injection",
           "read_profiles", "save_profiles"]


def _poisoning() -> dict[str, type[ShillingAttack]]:
    """The optimised and generated attacks (imported on first use: they pull in torch and the
    surrogates' code)."""
    from advrec.attacks.poisoning.aush import AUSHAttack
    from advrec.attacks.poisoning.dlattack import DLAttack
    from advrec.attacks.poisoning.influence import InfluenceAttack
    from advrec.attacks.poisoning.legup import LegUPAttack
    from advrec.attacks.poisoning.pga import PGAAttack, SGLDAttack
    from advrec.attacks.poisoning.poisonrec import PoisonRecAttack
    from advrec.attacks.poisoning.revadv import RevAdvAttack

    found = {c.name: c for c in (PGAAttack, SGLDAttack, RevAdvAttack, InfluenceAttack, DLAttack,
                                 AUSHAttack, LegUPAttack, PoisonRecAttack)}
    assert tuple(found) == POISONING_ATTACKS, "vocabulary.POISONING_ATTACKS is out of date"
    return found


def injection_attacks() -> dict[str, type[ShillingAttack]]:
    """Every injection attack class by registry name (hand-crafted, optimised, ``file``)."""
    return {**HAND_CRAFTED, **_poisoning(), PROFILE_FILE: ProfileFile}


def attack_class(name: str) -> type[ShillingAttack]:
    """The class of the injection attack ``name`` (``-`` and ``_`` alike); the optimised
    attacks' modules are imported only when one of them is asked for."""
    key = str(name).lower().replace("-", "_")
    if key in HAND_CRAFTED:
        return HAND_CRAFTED[key]
    if key == PROFILE_FILE:
        return ProfileFile
    if key in POISONING_ATTACKS:
        return _poisoning()[key]
    raise ConfigError(f"unknown injection attack {name!r}; expected one of "
                      f"{', '.join([*HAND_CRAFTED, *POISONING_ATTACKS, PROFILE_FILE])}")


def is_poisoning(name: str) -> bool:
    """Whether ``name`` is an optimised (poisoning) attack."""
    return str(name).lower() in POISONING_ATTACKS


def make_injection(name: str, **params) -> ShillingAttack:
    """The injection attack registered as ``name`` (``-`` and ``_`` alike) with ``params``;
    a ConfigError names an unknown attack or parameter."""
    cls = attack_class(name)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"the {cls.name} attack has no parameter(s) {unknown}; known: "
                          f"{', '.join(known)}")
    return cls(**params)


# ----------------------------------------------------------------------------- files
PROFILE_COLUMNS = ("user", "item", "rating", "timestamp")


def save_profiles(fake: Interactions, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write fake profiles with their raw ids, TAB-separated with a header row (user, item
    [, rating][, timestamp]: ML-100K's u.data layout plus the header), atomically; an existing
    file is replaced only with ``overwrite`` and only if advrec wrote it."""
    from advrec.data.io import write_delimited

    return write_delimited(fake, path, sep="\t", header=True, overwrite=overwrite)


def read_profiles(path: str | os.PathLike, fmt: str = "tsv", options: dict | None = None
                  ) -> Interactions:
    """Read fake profiles: ``tsv`` is what :func:`save_profiles` writes (its header names the
    columns); any other name is a format of :data:`advrec.data.io.FORMATS`."""
    from advrec.data.io import read_delimited, read_file

    if fmt != "tsv":
        return read_file(path, fmt, options)
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as f:
            first = f.readline().rstrip("\r\n")
    except OSError as exc:
        raise DataError(f"{p}: cannot read fake profiles ({exc.strerror or exc})") from None
    columns = first.split("\t")
    if columns[:2] != ["user", "item"] or not set(columns) <= set(PROFILE_COLUMNS):
        raise DataError(f"{p}, line 1: expected a header 'user<TAB>item[<TAB>rating]"
                        f"[<TAB>timestamp]' (as `advrec shill --save` writes), got {first!r}")
    return read_delimited(p, columns, sep="\t", header=True, name=p.name)


@dataclass(frozen=True, kw_only=True)
class ProfileFile(ShillingAttack):
    """Fake profiles read from a file (another tool's, or an earlier run's ``--save``): each
    user of the file becomes a new fake user of the data; items must be in its catalogue.

    ``path``: the file; ``format``: ``tsv`` (what advrec writes) or a format of
    :data:`advrec.data.io.FORMATS`. ``size`` and ``filler`` do not apply (the file decides).
    """

    path: str = ""
    format: str = "tsv"

    name: ClassVar[str] = PROFILE_FILE
    reference: ClassVar[str] = "fake profiles from a file"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not str(self.path):
            raise ConfigError("the file attack needs path: the file of fake profiles")
        object.__setattr__(self, "path", str(self.path))

    def _read(self) -> Interactions:
        return read_profiles(self.path, self.format)

    def n_fake(self, data: Interactions) -> int:
        return len(self._read().active_users)

    def generate(self, data: Interactions, targets, seed: int | None = 0) -> Interactions:
        self._check_data_present(data)
        resolve_items(data, targets, "target")  # the targets must exist, as for every attack
        raw = self._read()
        if len(raw) == 0:
            raise DataError(f"{self.path}: no fake profiles in the file")
        pos = data._item_index.get_indexer(_like(raw.item_ids, data.item_ids))
        if (pos < 0).any():
            bad = raw.item_ids[pos < 0][:5].tolist()
            raise DataError(f"{self.path}: item id(s) {bad} are not in the catalogue of the "
                            f"data ({data.n_items} items)")
        ratings = raw.ratings
        if data.ratings is not None and ratings is None:
            raise DataError(f"{self.path}: the profiles carry no ratings but the data has "
                            f"ratings: add a rating column")
        ratings = None if data.ratings is None else ratings.astype(data.ratings.dtype)
        # users numbered in the file's order, so a saved attack reads back exactly as it was
        users = pd.factorize(raw.users)[0].astype(np.int64)
        n = int(users.max()) + 1
        items = pos[raw.items].astype(np.int64)
        return _profiles(data, n, users, items, ratings, f"file:{Path(self.path).name}")

    def _check_data_present(self, data: Interactions) -> None:
        if not isinstance(data, Interactions) or len(data) == 0:
            raise DataError("the data is empty: nothing to attack")


def _like(raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The file's item ids in the catalogue's id type (ints read from text, or text)."""
    if ids.dtype.kind in "iu" and raw.dtype.kind not in "iu":
        try:
            return raw.astype(np.int64)
        except (TypeError, ValueError):
            return raw
    if ids.dtype.kind not in "iu" and raw.dtype.kind in "iu":
        return raw.astype(str).astype(object)
    return raw
