"""The contract of optimised poisoning: fake profiles computed against a surrogate model.

An optimised attack is a :class:`~advrec.attacks.shilling.ShillingAttack` whose profiles come
from an optimisation instead of a recipe, so it returns the same thing (an
:class:`~advrec.data.Interactions` of new users only, ``data.concat(fake)`` injects them), is
measured the same way and runs in the same experiment cells. What it adds:

- ``surrogate``: the model the attacker optimises against (each attack lists the surrogates it
  can differentiate, :attr:`PoisoningAttack.surrogates`); the victim is chosen separately, so
  optimise-on-one, attack-another (transfer) is the default experiment.
- ``known_fraction``: the share of the real users' interactions the attacker observes (1 = the
  whole training data, grey box; less = a random sample of each user's interactions).
- :meth:`PoisoningAttack.knowledge`: the threat model, recorded with the results.
- ``filler=None``: each profile holds as many items as a real user's average profile (targets
  included), the usual equal-budget setting of the poisoning papers.

Subclasses implement :meth:`PoisoningAttack._optimise`, which returns a dense
``n_fake × n_items`` score matrix (``profile_scores``) or the profiles' own (profile, item,
rating) arrays; :func:`project_profiles` turns scores into discrete profiles of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.shilling import ShillingAttack, _Context
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError

torch = lazy("torch")

__all__ = ["PoisoningAttack", "dense_rows", "observed_data", "project_profiles",
           "torch_seed", "average_profile_length"]


def average_profile_length(data: Interactions) -> int:
    """A real user's average number of interactions (the equal-budget profile length of the
    optimised and generated attacks, targets included)."""
    counts = data.user_counts[data.active_users]
    return max(0, int(round(float(counts.mean()))))


@dataclass(frozen=True, kw_only=True)
class PoisoningAttack(ShillingAttack):
    """An injection attack whose profiles are optimised against a ``surrogate``.

    ``size``: fake users as a fraction of the real users (default 1 %, as the poisoning papers).
    ``filler``: items per profile besides the targets, a fraction of the catalogue or a count;
    None (default): a real user's average profile length less the targets. ``known_fraction``:
    the share of each real user's interactions the attacker observes, in (0, 1]. ``device``:
    where the optimisation runs (None: CUDA when available).
    """

    size: float = 0.01
    filler: float | int | None = None
    implicit: bool = True
    surrogate: str = ""
    known_fraction: float = 1.0
    device: str | None = None

    surrogates: ClassVar[tuple[str, ...]] = ()
    """The surrogates this attack can optimise against (the first is the default)."""
    explicit: ClassVar[bool] = False
    """Whether the attack writes ratings (explicit data) rather than interactions."""
    average_filler: ClassVar[bool] = True  # filler=None: a real user's average length

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.surrogate:
            object.__setattr__(self, "surrogate", self.surrogates[0])
        surrogate = str(self.surrogate).lower()
        if surrogate not in self.surrogates:
            raise ConfigError(f"the {self.name} attack cannot optimise against surrogate "
                              f"{self.surrogate!r}: it needs a model it can differentiate "
                              f"through; expected one of {', '.join(self.surrogates)}")
        object.__setattr__(self, "surrogate", surrogate)
        kf = self.known_fraction
        if isinstance(kf, bool) or not isinstance(kf, (int, float)) or not 0 < kf <= 1:
            raise ConfigError(f"known_fraction must lie in (0, 1] (the share of the real users' "
                              f"interactions the attacker observes), got {kf!r}")
        if self.intent != "push":
            raise ConfigError(f"the {self.name} attack pushes its targets; intent "
                              f"{self.intent!r} is not supported")

    # ------------------------------------------------------------------ public
    def knowledge(self) -> str:
        """The threat model in words (stored with the results)."""
        seen = ("the whole training data" if self.known_fraction == 1 else
                f"{self.known_fraction:.0%} of each real user's interactions")
        return f"grey box: surrogate {self.surrogate} trained on {seen}"

    def params(self) -> dict:
        return {**super().params(), "knowledge": self.knowledge()}

    def n_filler(self, data: Interactions) -> int:
        if self.filler is not None:
            return super().n_filler(data)
        return average_profile_length(data)

    def profile_length(self, data: Interactions, n_targets: int) -> int:
        """Items per fake profile, targets included: ``n_filler`` when ``filler`` is None (an
        average real profile), else ``n_filler + n_targets``."""
        n = self.n_filler(data)
        if self.filler is not None:
            n += n_targets
        if n > data.n_items:
            raise ConfigError(f"a profile of {n} items is longer than the catalogue of "
                              f"{data.n_items} items")
        return max(n, n_targets)

    # ------------------------------------------------------------------ hooks
    def _build(self, ctx: _Context) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        observed = observed_data(ctx.data, self.known_fraction, ctx.rng)
        out = self._optimise(ctx, observed)
        if isinstance(out, tuple):
            return out
        length = self.profile_length(ctx.data, len(ctx.targets))
        items = project_profiles(out, length, ctx.targets)
        users = np.repeat(np.arange(items.shape[0], dtype=np.int64), items.shape[1])
        ratings = None
        if not self.implicit:
            ratings = np.full(items.size, ctx.scale.high, np.float32)
        return users, items.ravel(), ratings

    def _optimise(self, ctx: _Context, observed: Interactions):
        """The optimisation: a float ``n_fake × n_items`` array of item scores (higher: more
        wanted in a profile), or the profiles' (profile, item, rating) arrays."""
        raise NotImplementedError

    def _check_data(self, data: Interactions) -> None:
        if not isinstance(data, Interactions):
            raise DataError(f"attacks need an Interactions, got {type(data).__name__}")
        if len(data) == 0:
            raise DataError("the data is empty: nothing to attack")
        rated = data.ratings is not None
        if self.explicit and not rated:
            raise DataError(f"the {self.name} attack writes ratings but the data has none "
                            f"(implicit data)")
        if not self.explicit and self.implicit and rated:
            raise DataError(f"the {self.name} attack builds implicit profiles but the data has "
                            f"ratings: pass implicit=False (every chosen item rated at the top "
                            f"of the scale) or binarise the data (data: binarize: 4)")
        if not self.explicit and not self.implicit and not rated:
            raise DataError(f"implicit=False rates the {self.name} profiles but the data has "
                            f"no ratings: pass implicit=True")


# ----------------------------------------------------------------------------- helpers
def observed_data(data: Interactions, fraction: float, rng: np.random.Generator
                  ) -> Interactions:
    """What the attacker sees: every interaction (``fraction`` 1), else a random ``fraction``
    of them, in the same id space."""
    if fraction >= 1:
        return data
    keep = rng.random(len(data)) < fraction
    return data.subset(keep, name=data.name)


def dense_rows(data: Interactions, device=None, dtype=None):
    """The users × items 0/1 matrix of ``data`` as a dense tensor (the surrogates of the
    poisoning papers train on it; one row per user, so memory is users × items)."""
    m = data.binary_csr.tocoo()
    out = torch.zeros(data.shape, dtype=dtype or torch.float32, device=device)
    out[torch.from_numpy(m.row.astype(np.int64)), torch.from_numpy(m.col.astype(np.int64))] = 1.0
    return out


def project_profiles(scores, length: int, targets: np.ndarray) -> np.ndarray:
    """Discrete profiles from item scores: each row's targets plus its ``length - len(targets)``
    best-scored other items (``n_fake × length`` internal item ids, ascending per row)."""
    s = torch.as_tensor(np.asarray(scores) if not torch.is_tensor(scores) else scores)
    s = s.detach().to("cpu", torch.float64).clone()
    if s.ndim != 2:
        raise ValueError(f"profile scores must be a matrix, got shape {tuple(s.shape)}")
    t = torch.as_tensor(np.asarray(targets, np.int64))
    n_other = length - len(t)
    s[:, t] = -torch.inf
    chosen = torch.topk(s, n_other, dim=1).indices if n_other > 0 else \
        torch.empty(s.shape[0], 0, dtype=torch.long)
    items = torch.cat([chosen, t.expand(s.shape[0], -1)], dim=1)
    return np.sort(items.numpy(), axis=1)


def torch_seed(rng: np.random.Generator) -> int:
    """A torch seed drawn from the attack's generator (so one seed fixes every random draw)."""
    return int(rng.integers(0, 2**31 - 1))
