"""Hand-crafted shilling attacks: fake user profiles that push or nuke target items.

A fake profile is selected items I_S + filler items I_F + the target items I_T (Mobasher, Burke,
Bhaumik & Williams, *Toward trustworthy recommender systems*, ACM TOIT 7(4), 2007). Every attack
returns the fake profiles as an :class:`~advrec.data.Interactions` of **new users only** (raw ids
``"fake-0"``, ``"fake-1"``, … that never collide with the data's user ids) in the victim's item id
space, so that poisoning is ``data.concat(fake)`` and the real users keep their internal ids.

Usage::

    attack = make_attack("average", size=0.05, filler=0.03)        # or AverageAttack(...)
    fake = attack.generate(train, targets=[50, 181], seed=0)       # raw item ids
    poisoned = train.concat(fake)
    # one call: generate("average", train, [50, 181], size=0.05, filler=0.03, seed=0)

Explicit attacks rate items (on the data's scale: r_min/r_max and the rating step read from the
data); their ``implicit=True`` variants choose the same items and carry no ratings. Generation is
vectorised: every profile's arrays are built at once with NumPy (filler sampling works on chunks of
profiles to bound memory, never one user or item at a time).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import smallest_keys
from advrec.errors import ConfigError, DataError
from advrec.vocabulary import INTENTS, TARGET_STRATEGIES

pd = lazy("pandas")

__all__ = [
    "ATTACKS",
    "INTENTS",
    "SIZE_WARNING",
    "STRATEGIES",
    "AverageAttack",
    "BandwagonAttack",
    "LoveHateAttack",
    "PerfectKnowledgeAttack",
    "PopularAttack",
    "RandomAttack",
    "RatingScale",
    "ReverseBandwagonAttack",
    "SegmentAttack",
    "ShillingAttack",
    "fake_user_ids",
    "generate",
    "make_attack",
    "resolve_items",
    "select_targets",
]


SIZE_WARNING = 0.3
"""Attack sizes above this fraction of real users trigger a warning (1–15 % is the usual range)."""
FAKE_PREFIX = "fake"
_CHUNK_CELLS = 1 << 22  # random keys per filler-sampling chunk (32 MiB of float64)


# ----------------------------------------------------------------------------- scale and items
@dataclass(frozen=True)
class RatingScale:
    """The data's rating scale: lowest and highest rating and the step between ratings."""

    low: float
    high: float
    step: float

    @classmethod
    def of(cls, data: Interactions) -> RatingScale:
        """Read from the ratings; step: the greatest common divisor of the distinct ratings'
        offsets from the lowest (to 1e-6; 1 when all ratings are equal)."""
        if data.ratings is None or len(data) == 0:
            raise DataError(f"{_label(data)} has no ratings: no rating scale")
        values = np.unique(data.ratings.astype(np.float64))
        offsets = np.round((values - values[0]) * 1e6).astype(np.int64)
        step = float(np.gcd.reduce(offsets)) / 1e6 if len(values) > 1 else 1.0
        return cls(float(values[0]), float(values[-1]), step)

    def snap(self, ratings: np.ndarray) -> np.ndarray:
        """Round (halves up) to the scale's step and clip to [low, high] (float32)."""
        steps = np.floor((np.asarray(ratings, np.float64) - self.low) / self.step + 0.5)
        r = self.low + steps * self.step
        return np.clip(r, self.low, self.high).astype(np.float32)


def _label(data: Interactions) -> str:
    return f"data set {data.name!r}" if data.name else "the data"


def resolve_items(data: Interactions, raw, what: str = "target") -> np.ndarray:
    """Distinct internal ids of raw item ids; a :class:`DataError` names any unknown one."""
    raw = np.atleast_1d(np.asarray(raw))
    if raw.ndim != 1 or len(raw) == 0:
        raise ConfigError(f"{what} items must be a non-empty list of raw item ids")
    raw = _like_ids(raw, data.item_ids)
    pos = data._item_index.get_indexer(raw)
    if (pos < 0).any():
        bad = raw[pos < 0]
        shown = ", ".join(map(repr, bad[:10].tolist())) + (" …" if len(bad) > 10 else "")
        raise DataError(f"unknown {what} item id(s) {shown}: not in the catalogue of "
                        f"{_label(data)} ({data.n_items} items)")
    return np.unique(pos.astype(np.int64))


def _like_ids(raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Ids given as text (a command line) converted to the catalogue's integer ids when possible."""
    if ids.dtype.kind in "iu" and raw.dtype.kind in "UO":
        try:
            return raw.astype(np.int64)
        except (TypeError, ValueError):
            return raw
    return raw


def fake_user_ids(data: Interactions, n: int, prefix: str = FAKE_PREFIX) -> np.ndarray:
    """``n`` new raw user ids ``"<prefix>-<j>"`` (object array), numbered after existing ones."""
    existing = pd.Series(data.user_ids.astype(str))
    numbers = existing.str.extract(rf"^{prefix}-(\d+)$", expand=False).dropna()
    start = int(numbers.astype(np.int64).max()) + 1 if len(numbers) else 0
    ids = np.char.add(f"{prefix}-", np.arange(start, start + n).astype(str))
    return ids.astype(object)


# ----------------------------------------------------------------------------- context
class _Context:
    """What one generation needs: the data, its statistics (cached), targets, size, the RNG."""

    def __init__(self, data: Interactions, targets: np.ndarray, n_fake: int,
                 rng: np.random.Generator):
        self.data, self.targets, self.n_fake, self.rng = data, targets, n_fake, rng

    @cached_property
    def counts(self) -> np.ndarray:
        return self.data.item_counts

    @cached_property
    def rated(self) -> np.ndarray:
        """Items with at least one interaction (the catalogue an attacker can observe)."""
        return np.flatnonzero(self.counts)

    @cached_property
    def scale(self) -> RatingScale:
        return RatingScale.of(self.data)

    @cached_property
    def item_mean(self) -> np.ndarray:
        s = np.bincount(self.data.items, self.data.ratings, minlength=self.data.n_items)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, s / self.counts, np.nan)

    @cached_property
    def item_std(self) -> np.ndarray:
        """Population standard deviation of each item's ratings (0 for a single rating)."""
        r = self.data.ratings.astype(np.float64)
        s2 = np.bincount(self.data.items, r * r, minlength=self.data.n_items)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(self.counts > 0, s2 / self.counts, np.nan) - self.item_mean ** 2
        return np.sqrt(np.clip(var, 0.0, None))

    @cached_property
    def global_mean(self) -> float:
        return float(self.data.ratings.astype(np.float64).mean())

    @cached_property
    def global_std(self) -> float:
        return float(self.data.ratings.astype(np.float64).std())

    def by_popularity(self, exclude: np.ndarray) -> np.ndarray:
        """Rated items, most popular first (ties: lower id first), without ``exclude``."""
        order = self.rated[np.argsort(-self.counts[self.rated], kind="stable")]
        return order[~np.isin(order, exclude)]


def _sample_rows(rng: np.random.Generator, pool: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """``n_rows`` independent samples of ``k`` distinct items of ``pool`` (vectorised by chunks)."""
    out = np.empty((n_rows, k), np.int64)
    if k == 0 or n_rows == 0:
        return out
    step = max(1, _CHUNK_CELLS // len(pool))
    for lo in range(0, n_rows, step):
        hi = min(lo + step, n_rows)
        keys = rng.random((hi - lo, len(pool)))  # float64: no tie at the k-th key in practice
        out[lo:hi] = pool[smallest_keys(keys, k)]
    return out



# ----------------------------------------------------------------------------- base class
@dataclass(frozen=True, kw_only=True)
class ShillingAttack:
    """A profile-injection attack; subclasses choose selected/filler items and their ratings.

    ``size``: fake users as a fraction of the data's real (active) users, in (0, 1] (a warning
    above :data:`SIZE_WARNING`); ``round(size · n_users)`` profiles, at least one.
    ``filler``: filler items per profile, a fraction of the catalogue (float in [0, 1]) or a count
    (int); fillers are drawn from the items with at least one interaction, never targets or
    selected items. ``intent``: ``"push"`` (target at r_max) or ``"nuke"`` (target at r_min);
    ``None`` takes the attack's default. ``implicit``: the same item choices without ratings (an
    implicit nuke profile leaves the target out and only dilutes it).
    """

    size: float = 0.05
    filler: float | int = 0.03
    intent: str | None = None
    implicit: bool = False

    name: ClassVar[str] = ""
    default_intent: ClassVar[str] = "push"
    reference: ClassVar[str] = ""
    average_filler: ClassVar[bool] = False
    """Whether ``filler=None`` is accepted: the attack's own default (a real user's average
    profile length, for the optimised and generated attacks)."""

    def __post_init__(self) -> None:
        _check_size(self.size)
        if not (self.filler is None and self.average_filler):
            _check_filler(self.filler)
        intent = self.default_intent if self.intent is None else str(self.intent).lower()
        if intent not in INTENTS:
            raise ConfigError(f"unknown intent {self.intent!r}; expected one of {INTENTS}")
        object.__setattr__(self, "intent", intent)

    # ------------------------------------------------------------------ public
    @property
    def push(self) -> bool:
        return self.intent == "push"

    @property
    def label(self) -> str:
        """``name`` plus ``-implicit`` for the implicit variant."""
        return f"{self.name}-implicit" if self.implicit else self.name

    def params(self) -> dict:
        """The attack's parameters as a flat JSON-friendly dict (with its name)."""
        out = {"attack": self.name}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def n_fake(self, data: Interactions) -> int:
        """How many fake profiles this attack injects into ``data``."""
        return max(1, int(round(self.size * len(data.active_users))))

    def n_filler(self, data: Interactions) -> int:
        """Filler items per profile for ``data`` (checked against the catalogue)."""
        return _filler_count(self.filler, data)

    def generate(self, data: Interactions, targets, seed: int | None = 0) -> Interactions:
        """Fake profiles against ``targets`` (raw item ids): new users in ``data``'s item space."""
        self._check_data(data)
        t = resolve_items(data, targets, "target")
        ctx = _Context(data, t, self.n_fake(data), np.random.default_rng(seed))
        users, items, ratings = self._build(ctx)
        return _profiles(data, ctx.n_fake, users, items, ratings, self.label)

    # ------------------------------------------------------------------ hooks
    def _build(self, ctx: _Context) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Flat (profile, item, rating) arrays: selected + filler + target columns."""
        n = ctx.n_fake
        sel = self._selected(ctx)
        n_filler = self.n_filler(ctx.data)
        fill = self._filler_items(ctx, n_filler, np.concatenate([ctx.targets, sel]))
        blocks = [np.broadcast_to(sel, (n, len(sel))), fill]
        if self.push or not self.implicit:
            blocks.append(np.broadcast_to(ctx.targets, (n, len(ctx.targets))))
        items = np.concatenate(blocks, axis=1)
        users = np.repeat(np.arange(n, dtype=np.int64), items.shape[1])
        if self.implicit:
            return users, items.ravel(), None
        target_r = ctx.scale.high if self.push else ctx.scale.low
        ratings = np.concatenate([
            np.broadcast_to(self._selected_ratings(ctx, sel), (n, len(sel))),
            self._filler_ratings(ctx, fill),
            np.full((n, len(ctx.targets)), target_r, np.float32),
        ], axis=1)
        return users, items.ravel(), ctx.scale.snap(ratings).ravel()

    def _selected(self, ctx: _Context) -> np.ndarray:
        return np.empty(0, np.int64)

    def _selected_ratings(self, ctx: _Context, sel: np.ndarray) -> np.ndarray:
        return np.full(len(sel), ctx.scale.high, np.float32)

    def _filler_items(self, ctx: _Context, k: int, exclude: np.ndarray) -> np.ndarray:
        """``k`` random fillers per profile among rated items outside ``exclude``."""
        pool = np.setdiff1d(ctx.rated, exclude)
        _check_pool(k, len(pool), ctx.data, len(exclude))
        return _sample_rows(ctx.rng, pool, ctx.n_fake, k)

    def _filler_ratings(self, ctx: _Context, items: np.ndarray) -> np.ndarray:
        """Random-attack fillers: N(global mean, global std) (snapped to the scale later)."""
        return ctx.rng.normal(ctx.global_mean, ctx.global_std, items.shape)

    def _check_data(self, data: Interactions) -> None:
        if not isinstance(data, Interactions):
            raise DataError(f"attacks need an Interactions, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError(f"{_label(data)} is empty: nothing to attack")
        if not self.implicit and data.ratings is None:
            raise DataError(f"the explicit {self.name} attack rates items but {_label(data)} has "
                            f"no ratings (implicit data): pass implicit=True")
        if self.implicit and data.ratings is not None:
            raise DataError(f"the implicit {self.name} attack carries no ratings but "
                            f"{_label(data)} has ratings: use the explicit variant "
                            f"(implicit=False) or drop them with data.with_ratings(None)")


def _check_size(size) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, float, np.number)):
        raise ConfigError(f"attack size must be a fraction of the real users, got {size!r}")
    if not size > 0:
        raise ConfigError(f"attack size must be > 0 (a fraction of the real users), got {size}")
    if size > 1:
        raise ConfigError(f"attack size must be at most 1 (a fraction of the real users, e.g. "
                          f"0.05 for 5 %), got {size}")
    if size > SIZE_WARNING:
        warnings.warn(f"attack size {size} injects more than {SIZE_WARNING:.0%} fake users; "
                      f"the literature uses 1–15 %", UserWarning, stacklevel=4)


def _check_filler(filler) -> None:
    if isinstance(filler, bool) or not isinstance(filler, (int, float, np.number)):
        raise ConfigError(f"filler size must be a fraction of the items (float) or a count "
                          f"(int), got {filler!r}")
    if filler < 0:
        raise ConfigError(f"filler size must be >= 0, got {filler}")
    if isinstance(filler, (float, np.floating)) and filler > 1:
        raise ConfigError(f"a fractional filler size must lie in [0, 1], got {filler}; pass an "
                          f"int for a number of items")


def _filler_count(filler, data: Interactions) -> int:
    if isinstance(filler, (float, np.floating)):
        n = int(round(float(filler) * data.n_items))
    else:
        n = int(filler)
    if n > data.n_items:
        raise ConfigError(f"filler size {filler} ({n} items) is larger than the catalogue of "
                          f"{_label(data)} ({data.n_items} items)")
    return n


def _check_pool(k: int, available: int, data: Interactions, excluded: int) -> None:
    if k > available:
        raise ConfigError(f"filler size {k} exceeds the {available} items available as fillers "
                          f"in {_label(data)} ({data.n_items} items, minus {excluded} target/"
                          f"selected items and items nobody interacted with)")


def _profiles(data: Interactions, n_fake: int, users: np.ndarray, items: np.ndarray,
              ratings: np.ndarray | None, name: str) -> Interactions:
    timestamps = None
    if data.timestamps is not None:
        timestamps = np.full(len(users), int(data.timestamps.max()) + 1, np.int64)
    return Interactions(users, items, fake_user_ids(data, n_fake), data.item_ids,
                        ratings, timestamps, f"{name}-attack")


# ----------------------------------------------------------------------------- attacks
@dataclass(frozen=True, kw_only=True)
class RandomAttack(ShillingAttack):
    """Random attack: fillers ~ N(global mean, global std); target r_max (push) / r_min (nuke)."""

    name: ClassVar[str] = "random"
    reference: ClassVar[str] = "Lam & Riedl, WWW 2004; Mobasher et al., TOIT 2007"


@dataclass(frozen=True, kw_only=True)
class AverageAttack(ShillingAttack):
    """Average attack: filler i ~ N(mean_i, std_i), the item's own mean and standard deviation."""

    name: ClassVar[str] = "average"
    reference: ClassVar[str] = "Lam & Riedl, WWW 2004; Mobasher et al., TOIT 2007"

    def _filler_ratings(self, ctx: _Context, items: np.ndarray) -> np.ndarray:
        return ctx.rng.normal(ctx.item_mean[items], ctx.item_std[items])


@dataclass(frozen=True, kw_only=True)
class _SelectedAttack(ShillingAttack):
    """An attack with selected items: given as raw ids (``selected``) or ``n_selected`` chosen."""

    selected: tuple | None = None
    n_selected: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.selected is not None:
            object.__setattr__(self, "selected", tuple(np.atleast_1d(self.selected).tolist()))
        if isinstance(self.n_selected, bool) or int(self.n_selected) != self.n_selected or \
                self.n_selected < 0:
            raise ConfigError(f"n_selected must be a non-negative integer, got {self.n_selected}")

    def _selected(self, ctx: _Context) -> np.ndarray:
        if self.selected is not None:
            sel = resolve_items(ctx.data, self.selected, "selected")
            clash = np.intersect1d(sel, ctx.targets)
            if len(clash):
                raise ConfigError(f"selected items {ctx.data.item_ids[clash].tolist()} are also "
                                  f"targets")
            return sel
        sel = self._choose(ctx)
        if len(sel) < self.n_selected:
            raise ConfigError(f"{_label(ctx.data)} has only {len(sel)} candidate selected items "
                              f"for the {self.name} attack, {self.n_selected} requested")
        return np.sort(sel)

    def _choose(self, ctx: _Context) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class BandwagonAttack(_SelectedAttack):
    """Bandwagon: the ``n_selected`` most popular items at r_max + random-attack fillers."""

    name: ClassVar[str] = "bandwagon"
    reference: ClassVar[str] = "Burke et al., 2005; Mobasher et al., TOIT 2007"

    def _choose(self, ctx: _Context) -> np.ndarray:
        return ctx.by_popularity(ctx.targets)[: self.n_selected]


@dataclass(frozen=True, kw_only=True)
class ReverseBandwagonAttack(_SelectedAttack):
    """Reverse bandwagon (nuke): widely disliked items at r_min + random fillers, target r_min.

    Selected: the lowest-mean items among those with at least ``min_count`` ratings (implicit
    data: the least popular rated items).
    """

    min_count: int = 20
    name: ClassVar[str] = "reverse_bandwagon"
    default_intent: ClassVar[str] = "nuke"
    reference: ClassVar[str] = "Mobasher et al., TOIT 2007"

    def _choose(self, ctx: _Context) -> np.ndarray:
        cand = ctx.rated[~np.isin(ctx.rated, ctx.targets)]
        if ctx.data.ratings is None:
            return cand[np.argsort(ctx.counts[cand], kind="stable")][: self.n_selected]
        cand = cand[ctx.counts[cand] >= self.min_count]
        return cand[np.argsort(ctx.item_mean[cand], kind="stable")][: self.n_selected]

    def _selected_ratings(self, ctx: _Context, sel: np.ndarray) -> np.ndarray:
        return np.full(len(sel), ctx.scale.low, np.float32)


@dataclass(frozen=True, kw_only=True)
class PopularAttack(ShillingAttack):
    """Popular attack: the filler = the most popular items, rated by their mean.

    Push: r_min + step where the item mean is at least the global mean, else r_min; target r_max.
    Nuke (mirror): r_max where the mean is at least the global mean, else r_max − step; target
    r_min. The profile correlates positively with real users while the target sits as far as
    possible from the profile's own mean. The filler size is the number of popular items taken.
    """

    name: ClassVar[str] = "popular"
    reference: ClassVar[str] = ("O'Mahony, Hurley & Silvestre, AAAI 2005 workshop; Lam & Riedl, "
                                "WWW 2004")

    def _filler_items(self, ctx: _Context, k: int, exclude: np.ndarray) -> np.ndarray:
        pool = ctx.by_popularity(exclude)
        _check_pool(k, len(pool), ctx.data, len(exclude))
        return np.broadcast_to(pool[:k], (ctx.n_fake, k))

    def _filler_ratings(self, ctx: _Context, items: np.ndarray) -> np.ndarray:
        above = ctx.item_mean[items] >= ctx.global_mean
        s = ctx.scale
        if self.push:
            return np.where(above, s.low + s.step, s.low)
        return np.where(above, s.high, s.high - s.step)


@dataclass(frozen=True, kw_only=True)
class LoveHateAttack(ShillingAttack):
    """Love/hate: nuke (default) rates the fillers r_max and the target r_min; push the reverse."""

    name: ClassVar[str] = "love_hate"
    default_intent: ClassVar[str] = "nuke"
    reference: ClassVar[str] = "Mobasher et al., TOIT 2007"

    def _filler_ratings(self, ctx: _Context, items: np.ndarray) -> np.ndarray:
        return np.full(items.shape, ctx.scale.low if self.push else ctx.scale.high, np.float32)


@dataclass(frozen=True, kw_only=True)
class SegmentAttack(_SelectedAttack):
    """Segment attack: the target's segment at r_max, fillers at r_min, target r_max.

    The segment is ``selected`` (raw item ids, e.g. one genre's movies), or else the
    ``n_selected`` items most often co-interacted with the targets (co-occurrence counts).
    """

    n_selected: int = 5
    name: ClassVar[str] = "segment"
    reference: ClassVar[str] = "Mobasher, Burke, Bhaumik & Williams, ICDM 2005; TOIT 2007"

    def _choose(self, ctx: _Context) -> np.ndarray:
        x = ctx.data.binary_csr
        holders = np.asarray(x[:, ctx.targets].sum(axis=1)).ravel()  # targets each user has
        co = np.asarray(x.T @ holders).ravel()
        co[ctx.targets] = -1
        co[ctx.counts == 0] = -1
        order = np.argsort(-co, kind="stable")
        return order[co[order] > 0][: self.n_selected]

    def _filler_ratings(self, ctx: _Context, items: np.ndarray) -> np.ndarray:
        return np.full(items.shape, ctx.scale.low, np.float32)


@dataclass(frozen=True, kw_only=True)
class PerfectKnowledgeAttack(ShillingAttack):
    """Perfect knowledge: the attacker knows the full rating data.

    ``mode="copy"`` (default): each fake profile copies a randomly drawn real user's whole
    profile (items and ratings; drawn without replacement while there are enough users), with the
    target set to r_max (push) / r_min (nuke); ``filler`` is not used. ``mode="mean"``: random
    fillers rated exactly their item's true mean (rounded to the scale), no sampling noise.
    """

    mode: str = "copy"
    name: ClassVar[str] = "perfect_knowledge"
    reference: ClassVar[str] = "Burke et al., 2005; Mobasher et al., TOIT 2007"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("copy", "mean"):
            raise ConfigError(f"unknown perfect-knowledge mode {self.mode!r}; expected 'copy' "
                              f"or 'mean'")

    def _filler_ratings(self, ctx: _Context, items: np.ndarray) -> np.ndarray:
        return ctx.item_mean[items]

    def _build(self, ctx: _Context) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self.mode == "mean":
            return super()._build(ctx)
        x = ctx.data.csr
        active = ctx.data.active_users
        src = ctx.rng.choice(active, ctx.n_fake, replace=ctx.n_fake > len(active))
        rows = x[src]
        users = np.repeat(np.arange(ctx.n_fake, dtype=np.int64), np.diff(rows.indptr))
        keep = ~np.isin(rows.indices, ctx.targets)
        users, items, data = users[keep], rows.indices[keep].astype(np.int64), rows.data[keep]
        if self.push or not self.implicit:
            n_t = len(ctx.targets)
            users = np.concatenate([users, np.repeat(np.arange(ctx.n_fake), n_t)])
            items = np.concatenate([items, np.tile(ctx.targets, ctx.n_fake)])
            target_r = ctx.scale.high if self.push else ctx.scale.low
            data = np.concatenate([data, np.full(ctx.n_fake * n_t, target_r, np.float32)])
        return users, items, None if self.implicit else ctx.scale.snap(data)


# ----------------------------------------------------------------------------- registry
ATTACKS: dict[str, type[ShillingAttack]] = {
    cls.name: cls for cls in (RandomAttack, AverageAttack, BandwagonAttack,
                              ReverseBandwagonAttack, PopularAttack, LoveHateAttack,
                              SegmentAttack, PerfectKnowledgeAttack)
}


def _attack_class(name: str) -> type[ShillingAttack]:
    key = str(name).lower().replace("-", "_").replace("/", "_")
    cls = ATTACKS.get(key)
    if cls is None:
        raise ConfigError(f"unknown shilling attack {name!r}; expected one of "
                          f"{', '.join(ATTACKS)}")
    return cls


def make_attack(name: str, **params) -> ShillingAttack:
    """The attack registered as ``name`` (``-`` and ``_`` alike) with its parameters."""
    cls = _attack_class(name)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"the {cls.name} attack has no parameter(s) {unknown}; known: {known}")
    return cls(**params)


def generate(attack: str | ShillingAttack, data: Interactions, targets, size: float | None = None,
             filler: float | int | None = None, seed: int | None = 0, **params) -> Interactions:
    """Fake profiles of ``attack`` (a name or an attack) against ``targets`` (raw item ids).

    ``size``/``filler`` and other ``params`` override the attack's; None keeps them.
    """
    over = {k: v for k, v in dict(size=size, filler=filler, **params).items() if v is not None}
    if isinstance(attack, ShillingAttack):
        unknown = sorted(set(over) - {f.name for f in fields(attack)})
        if unknown:
            raise ConfigError(f"the {attack.name} attack has no parameter(s) {unknown}")
        attack = replace(attack, **over) if over else attack
    else:
        attack = make_attack(attack, **over)
    return attack.generate(data, targets, seed=seed)


# ----------------------------------------------------------------------------- targets
STRATEGIES = TARGET_STRATEGIES


def select_targets(data: Interactions, n: int = 1, strategy: str = "random",
                   quantile: tuple[float, float] = (0.4, 0.6), seed: int | None = 0
                   ) -> np.ndarray:
    """``n`` target items (raw ids) among the items with at least one interaction.

    ``random``: uniformly; ``popular``: the n most interacted-with; ``unpopular``: the n least
    (ties broken at random); ``quantile``: uniformly among items whose popularity rank (0 = least,
    1 = most popular) lies in ``quantile`` (default the middle 40–60 %).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ConfigError(f"the number of targets must be a positive integer, got {n!r}")
    n = int(n)
    rng = np.random.default_rng(seed)
    counts = data.item_counts
    rated = np.flatnonzero(counts)
    # popularity order, ties broken at random: a random permutation, then a stable sort
    perm = rng.permutation(rated)
    by_pop = perm[np.argsort(counts[perm], kind="stable")]  # least popular first
    if strategy == "random":
        pool = rated
    elif strategy == "popular":
        pool = by_pop[::-1][:n]
    elif strategy == "unpopular":
        pool = by_pop[:n]
    elif strategy == "quantile":
        lo, hi = _check_quantile(quantile)
        rank = np.arange(len(by_pop)) / max(len(by_pop) - 1, 1)
        pool = by_pop[(rank >= lo) & (rank <= hi)]
    else:
        raise ConfigError(f"unknown target strategy {strategy!r}; expected one of {STRATEGIES}")
    if len(pool) < n:
        raise ConfigError(f"{strategy!r} target selection has {len(pool)} candidate items in "
                          f"{_label(data)}, {n} requested")
    chosen = pool if strategy in ("popular", "unpopular") else rng.choice(pool, n, replace=False)
    return data.item_ids[np.sort(chosen)]


def _check_quantile(quantile) -> tuple[float, float]:
    try:
        lo, hi = (float(q) for q in quantile)
    except (TypeError, ValueError):
        raise ConfigError(f"quantile must be a pair (low, high), got {quantile!r}") from None
    if not 0 <= lo <= hi <= 1:
        raise ConfigError(f"quantile must satisfy 0 <= low <= high <= 1, got {quantile!r}")
    return lo, hi
