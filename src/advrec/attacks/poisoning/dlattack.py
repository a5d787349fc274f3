"""DL-attack (Huang, Mu, Gong, Li, Liu, Xu. *Data Poisoning Attacks to Deep Learning Based
Recommender Systems.* NDSS 2021): fake users built in rounds against a NeuMF "poison model".

Each round adds ``fake_per_round`` new fake users that hold only the targets and trains a fresh
NeuMF surrogate on the attacker's data, the fake users already built and the new ones. The
surrogate's predictions for a new fake user stand for its rating vector y_v, which is optimised
through the network: ``attack_epochs`` times, (i) for every real user u without a target t,
l_ut = max(log ŷ_u[K] − log ŷ_ut, −κ) (ŷ_u[K]: the K-th best of u's unrated items, log of the
sigmoid outputs) weighted by α·η, stepped on mini-batches of users, (ii) α·Σ_i ŷ_vi² (the paper's
‖y_v‖² keeping the profile sparse), (iii) one epoch of ordinary training; the epoch (or the
plain fit) with the best target HR@K on the surrogate is kept. The fillers are then the items of
largest ŷ_vi · p_i, with the paper's selection probabilities p: 1 at first, p_i ← δ·p_i each time
item i is chosen, back to 1 when every candidate has been chosen once, so later fake users turn
to other items; the targets are always in the profile.

Defaults are the official code's README command for MovieLens-100K (``main.py``): NeuMF with 8
factors, layers [64, 32, 16, 8], Adam lr 0.001, batch 256, 4 negatives, 20 epochs; 5 attack
epochs (``--rounds``), κ = 1, α = 0.01, η = 100 (``--reg_u``), top-K 10, δ = 0.9 (``--prob``),
one fake user per round (``--s 1``). Where we differ: the code takes one Adam step per real user
(a loop over users) where we step on mini-batches of ``attack_batch_size`` users (16; the summed
loss, vectorised), with a fresh Adam after the fit (the code goes on with the fit's); the code
has one target, we sum the loss over every (user, unobserved target) pair; the code keeps the
surrogate epoch of best test HR during the plain fit (it reads the test split), we keep the
last; the new fake users draw negatives like every user (the code gives them the target only)
and negatives are drawn afresh every epoch (advrec's NeuMF); with ``fake_per_round`` > 1 the
users of one round share the selection probabilities of the round (the code updates them user by
user); fillers are drawn from the items with an interaction (the code: the whole catalogue); the
profile length is the family's budget (``filler=None``: a real user's average; the official
``--n 30`` is ``filler=30``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.attacks.poisoning.base import PoisoningAttack, torch_seed
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError
from advrec.training.progress import Progress
from advrec.validation import check_float, check_int, plain

if TYPE_CHECKING:
    from advrec.attacks.shilling import _Context
    from advrec.models.neumf_net import NCFNet

torch = lazy("torch")
F = lazy("torch.nn.functional")

__all__ = ["DLAttack"]

PAIRS_PER_CHUNK = 1 << 20  # user × item (× target) cells scored at once when measuring HR


@dataclass(frozen=True, kw_only=True)
class DLAttack(PoisoningAttack):
    """DL-attack: fake users optimised round by round through a NeuMF poison model.

    ``fake_per_round``: new fake users per round (a fresh surrogate each round). ``epochs``,
    ``mf_dim``, ``layers``, ``lr``, ``batch_size``, ``n_negatives``: the surrogate NeuMF and its
    training. ``attack_epochs``: attack-loss epochs per round. ``top_k``: the K of the loss and of
    the HR that picks the best epoch. ``kappa``: the margin κ. ``alpha``, ``eta``: weights of the
    sparsity term (α) and of the target loss (α·η). ``decay``: δ, the selection-probability
    attenuation (1 switches it off). ``attack_batch_size``: real users per attack step (each
    step scores that many users × every item through the network, with gradients).
    ``progress``: a progress display over the rounds (None: on a terminal only).
    """

    fake_per_round: int = 1
    epochs: int = 20
    attack_epochs: int = 5
    mf_dim: int = 8
    layers: tuple[int, ...] = (64, 32, 16, 8)
    lr: float = 1e-3
    batch_size: int = 256
    n_negatives: int = 4
    top_k: int = 10
    kappa: float = 1.0
    alpha: float = 1e-2
    eta: float = 100.0
    decay: float = 0.9
    attack_batch_size: int = 16
    progress: bool | None = False

    name: ClassVar[str] = "dlattack"
    reference: ClassVar[str] = ("Huang, Mu, Gong, Li, Liu, Xu. Data Poisoning Attacks to Deep "
                                "Learning Based Recommender Systems. NDSS 2021")
    surrogates: ClassVar[tuple[str, ...]] = ("neumf",)
    explicit: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        ints = {"fake_per_round": 1, "epochs": 1, "attack_epochs": 0, "mf_dim": 1,
                "batch_size": 1, "top_k": 1, "attack_batch_size": 1}
        for key, low in ints.items():
            object.__setattr__(self, key, check_int(getattr(self, key), key, low=low))
        object.__setattr__(self, "n_negatives",
                           check_int(self.n_negatives, "n_negatives", low=0, high=1000))
        object.__setattr__(self, "layers", _check_layers(self.layers))
        object.__setattr__(self, "lr", check_float(self.lr, "lr", low=0, closed="neither"))
        for key in ("kappa", "alpha", "eta"):
            object.__setattr__(self, key, check_float(getattr(self, key), key, low=0))
        object.__setattr__(self, "decay", check_float(self.decay, "decay", low=0, high=1,
                                                      closed="right"))
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ConfigError(f"progress must be true, false or None, got {plain(self.progress)}")

    # ------------------------------------------------------------------ the attack
    def _optimise(self, ctx: _Context, observed: Interactions):
        """The rounds: fit a surrogate, optimise the new fake users' vectors, pick their items."""
        length = self.profile_length(ctx.data, len(ctx.targets))
        targets = np.asarray(ctx.targets, np.int64)
        n_other = length - len(targets)
        pool = np.setdiff1d(np.flatnonzero(observed.item_counts), targets)
        if n_other > len(pool):
            raise ConfigError(f"filler size {n_other} exceeds the {len(pool)} items the attacker "
                              f"can use as fillers (items with an interaction, targets excluded)")
        real = _Real(observed, targets, self.top_k)
        prob = np.ones(observed.n_items, np.float64)
        chosen: list[np.ndarray] = []  # one n_round × n_other block of filler ids per round
        sizes = _round_sizes(ctx.n_fake, self.fake_per_round)
        with Progress(f"{self.name} rounds", len(sizes), enabled=self.progress,
                      unit="rounds") as bar:
            for k in sizes:
                built = np.concatenate(chosen) if chosen else np.empty((0, n_other), np.int64)
                net, fakes = self._round(ctx, observed, targets, built, k, real)
                fill = _select(net, fakes, pool, prob, n_other)
                prob *= self.decay ** np.bincount(fill.ravel(), minlength=len(prob))
                if (prob[pool] < 1).all():
                    prob[:] = 1.0
                chosen.append(fill)
                bar.advance()
        fill = np.concatenate(chosen)
        items = np.sort(np.concatenate(
            [fill, np.broadcast_to(targets, (len(fill), len(targets)))], axis=1), axis=1)
        users = np.repeat(np.arange(len(items), dtype=np.int64), items.shape[1])
        ratings = None if self.implicit else np.full(items.size, ctx.scale.high, np.float32)
        return users, items.ravel(), ratings

    def _round(self, ctx: _Context, observed: Interactions, targets: np.ndarray,
               built: np.ndarray, k: int, real: _Real) -> tuple[NCFNet, torch.Tensor]:
        """One round: the surrogate fitted with ``k`` new target-only fake users, then the attack
        epochs; the best state (target HR@K on the surrogate) and the new users' internal ids."""
        from advrec.data.sampling import PointwiseSampler
        from advrec.models.neumf import NeuMF

        data = _with_fakes(observed, built, targets, k)
        model = NeuMF(mf_dim=self.mf_dim, layers=self.layers, epochs=self.epochs,
                      batch_size=self.batch_size, n_negatives=self.n_negatives, lr=self.lr,
                      device=self.device, seed=torch_seed(ctx.rng))
        model.fit(data, progress=self.progress if self.progress else False)
        net = model.net_
        dev = next(net.parameters()).device
        fakes = torch.arange(data.n_users - k, data.n_users, device=dev)
        if not self.attack_epochs or not len(real.users):
            return net, fakes
        sampler = PointwiseSampler(data, self.n_negatives, seed=torch_seed(ctx.rng))
        optimiser = torch.optim.Adam(net.parameters(), lr=self.lr)
        others = torch.from_numpy(np.setdiff1d(np.arange(data.n_items), targets)).to(dev)
        best_hr, best = real.hit_ratio(net), _snapshot(net)
        for _ in range(self.attack_epochs):
            self._attack_steps(net, optimiser, real, ctx.rng)
            optimiser.zero_grad()
            spars = torch.sigmoid(net.logits(fakes[:, None], others[None, :])).square().sum()
            (self.alpha * spars).backward()
            optimiser.step()
            _train_epoch(net, optimiser, sampler, self.batch_size)
            hr = real.hit_ratio(net)
            if hr > best_hr:
                best_hr, best = hr, _snapshot(net)
        net.load_state_dict(best)
        return net, fakes

    def _attack_steps(self, net: NCFNet, optimiser, real: _Real,
                      rng: np.random.Generator) -> None:
        """One pass of α·η·Σ max(log ŷ_u[K] − log ŷ_ut, −κ) over the real users, in shuffled
        mini-batches (a step only where some pair is above the margin, as the code)."""
        order = rng.permutation(len(real.users))
        weight = self.alpha * self.eta
        for start in range(0, len(order), self.attack_batch_size):
            rows = order[start:start + self.attack_batch_size]
            z, seen, eligible = real.logits(net, rows)
            kth = z.masked_fill(seen, -torch.inf).topk(real.k, dim=1).values[:, -1]
            gap = F.logsigmoid(kth)[:, None] - F.logsigmoid(z[:, real.t])
            active = eligible & (gap > -self.kappa)
            if not bool(active.any()):
                continue
            optimiser.zero_grad()
            (weight * gap[active].sum()).backward()
            optimiser.step()


# ----------------------------------------------------------------------------- helpers
class _Real:
    """The real users the attack aims at (an unobserved target): their seen items, HR@K."""

    def __init__(self, observed: Interactions, targets: np.ndarray, top_k: int) -> None:
        self.csr = observed.binary_csr
        seen_t = self.csr[:, targets].toarray() > 0
        active = observed.user_counts > 0
        self.users = np.flatnonzero(active & ~seen_t.all(axis=1))
        self.targets = targets
        self.t = torch.from_numpy(targets)
        self.n_items = observed.n_items
        self.k = min(int(top_k), self.n_items)

    def logits(self, net: NCFNet, rows: np.ndarray):
        """Logits of every item for the users at ``rows``, their seen mask and target pairs."""
        dev = next(net.parameters()).device
        users = torch.from_numpy(self.users[rows]).to(dev)
        items = torch.arange(self.n_items, device=dev)
        z = net.logits(users[:, None], items[None, :])
        seen = torch.from_numpy(self.csr[self.users[rows]].toarray() > 0).to(dev)
        return z, seen, ~seen[:, self.t.to(dev)]

    def hit_ratio(self, net: NCFNet) -> float:
        """Share of (user, unobserved target) pairs with the target in the user's top-K among
        unrated items (ties against the target), on the surrogate."""
        step = max(1, PAIRS_PER_CHUNK // (self.n_items * len(self.targets)))
        hits = pairs = 0
        with torch.no_grad():
            for start in range(0, len(self.users), step):
                rows = np.arange(start, min(start + step, len(self.users)))
                z, seen, eligible = self.logits(net, rows)
                z = z.masked_fill(seen, -torch.inf)
                zt = z[:, self.t.to(z.device)]
                better = (z[:, None, :] >= zt[:, :, None]).sum(-1) - 1
                hits += int(((better < self.k) & eligible).sum())
                pairs += int(eligible.sum())
        return hits / max(pairs, 1)


def _round_sizes(n_fake: int, per_round: int) -> list[int]:
    """How many fake users each round builds (the last one may build fewer)."""
    full, rest = divmod(n_fake, per_round)
    return [per_round] * full + ([rest] if rest else [])


def _with_fakes(observed: Interactions, built: np.ndarray, targets: np.ndarray,
                k: int) -> Interactions:
    """The surrogate's data: the observed interactions, the fake users built so far (fillers +
    targets) and ``k`` new users holding only the targets (ids after the real users)."""
    n_real, n_built = observed.n_users, len(built)
    profiles = np.concatenate([built, np.broadcast_to(targets, (n_built, len(targets)))], 1)
    users = np.concatenate([
        observed.users,
        n_real + np.repeat(np.arange(n_built, dtype=np.int64), profiles.shape[1]),
        n_real + n_built + np.repeat(np.arange(k, dtype=np.int64), len(targets))])
    items = np.concatenate([observed.items, profiles.ravel(), np.tile(targets, k)])
    return Interactions(users, items, np.arange(n_real + n_built + k, dtype=np.int64),
                        observed.item_ids, name=observed.name)


def _train_epoch(net: NCFNet, optimiser, sampler, batch_size: int) -> None:
    """One epoch of NeuMF's point-wise log loss with the attack's optimiser."""
    dev = next(net.parameters()).device
    for users, items, labels in sampler.batches(batch_size):
        batch = (torch.from_numpy(users).to(dev), torch.from_numpy(items).to(dev),
                 torch.from_numpy(labels).to(dev))
        optimiser.zero_grad()
        net.loss(batch).backward()
        optimiser.step()


def _snapshot(net: NCFNet) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _select(net: NCFNet, fakes, pool: np.ndarray, prob: np.ndarray, n_other: int) -> np.ndarray:
    """Each new fake user's ``n_other`` fillers: the pool items of largest ŷ_vi · p_i."""
    if n_other == 0:
        return np.empty((len(fakes), 0), np.int64)
    dev = fakes.device
    cand = torch.from_numpy(pool).to(dev)
    with torch.no_grad():
        y = torch.sigmoid(net.logits(fakes[:, None], cand[None, :])).double()
        y = y * torch.from_numpy(prob[pool]).to(dev)
        top = torch.topk(y, n_other, dim=1).indices.cpu().numpy()
    return pool[top]


def _check_layers(layers) -> tuple[int, ...]:
    """The MLP tower: positive integers, the first even (split between user and item)."""
    try:
        out = tuple(layers)
    except TypeError:
        raise ConfigError(f"layers must be a list of positive integers, got {plain(layers)}"
                          ) from None
    if not out or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                      for v in out):
        raise ConfigError(f"layers must be a non-empty list of positive integers, got "
                          f"{plain(layers)}")
    if out[0] % 2:
        raise ConfigError(f"layers[0] must be even (half user, half item embedding), got "
                          f"{out[0]}")
    return tuple(int(v) for v in out)
