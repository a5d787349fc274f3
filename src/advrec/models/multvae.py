"""Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman, Jebara. *Variational Autoencoders for
Collaborative Filtering.* WWW 2018), with APR's adversarial training on their item-side weight
blocks (``adv_reg`` > 0).

As the paper and the official code (dawenl/vae_cf, ``VAE_ML20M_WWW2018.ipynb``) define them: a
user's binary click vector x_u, L2-normalised, with dropout on the input (rate 0.5, the
notebook's ``keep_prob`` 0.5); the encoder [n_items → 600 → 200] with tanh, whose last layer
outputs 2 × 200 (mean and log-variance) for the VAE; the decoder [200 → 600 → n_items] with tanh
hidden layers and logits out; the multinomial log-likelihood Σ_i x_ui log softmax(logits)_i. The
VAE (Mult-VAE^PR) minimises −log-likelihood + β·KL(q(z|x_u) ‖ N(0, I)) with z = μ + ε·σ, β
annealed linearly from 0 by 1/``total_anneal_steps`` per optimiser update (200 000) up to
``anneal_cap`` (0.2), and no L2 (the notebook's ``lam=0.0``). The DAE is deterministic, has no
KL term, tanh on its bottleneck too (the notebook applies tanh after every layer but the last)
and L2 λ·Σ‖W‖² on the weight matrices (not the biases) with λ = 0.01 / 500 (the notebook's
``lam=0.01 / batch_size``). Weights Glorot-uniform, biases truncated N(0, 0.001²); Adam, lr
1e-3, batches of 500 users, each epoch a fresh permutation of the training users. At scoring:
no dropout, z = μ (no sampling), the scores are the logits of every item.

Where we differ from the code:

* The loss is summed over the batch's users (the Trainer's contract), i.e. the notebook's
  per-user mean ``neg_ll + β·KL + 2·reg_var`` times the batch size B; the L2 term is scaled by B
  accordingly, so the objective is the notebook's up to that factor (Adam is invariant to it
  but for its ε and the epoch's shorter last batch).
* ``epochs`` defaults to 20 (the paper: 200, keeping the epoch with the best validation
  nDCG@100; pass ``validate`` for that). β grows per *update*: with few updates per epoch it
  stays near 0 (ML-1M: 13 updates per epoch, β = 0.0013 after 20 epochs); lower
  ``total_anneal_steps`` to reach the cap sooner.
* The paper gives both models [I → 600 → 200 → 600 → I] and so do our defaults; the notebook
  trains its DAE as [I → 200 → I] (``hidden_dims=()`` here), which it found better on ML-20M.
* The paper evaluates by strong generalisation (held-out users folded in); a model here scores
  the users it was trained on from their training rows (the library's splits).
* Users without training interactions (x = 0) are left out of the training batches.
* The dropout mask and the reparameterisation noise come from a generator seeded per batch by
  the sampler's seeded ``rng`` (TF's global random stream in the code): a fit is reproducible
  from ``seed`` and a resumed fit equals an uninterrupted one.

The perturbable blocks are the first encoder weight ``"encoder"`` [n_items, d₁] and the last
decoder weight ``"decoder"`` [n_items, d_last] (stored item-major, i.e. the notebook's
``weights_p[-1]`` transposed, so a row is one item's vector, as an embedding's row). The KL
annealing counter (``anneal_step``) lives in the network, advances once per optimiser update
and is saved in the Trainer's checkpoints (and, for the VAE, with the model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import CheckpointError, ParamError
from advrec.models.adversarial import AdversarialTraining, adversarial_constraints
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    NetModel,
    Recommender,
    id_tensor,
    model_trainer,
    resolve_device,
)
from advrec.training.optim import OPTIMIZERS
from advrec.validation import Choice, Int, Real, check_int, plain

if TYPE_CHECKING:
    from advrec.models.multvae_net import MultVAENet
    from advrec.training.trainer import Callback

torch = lazy("torch")

BLOCKS = ("encoder", "decoder")  # MultVAENet.block_names (the contract test checks they agree)
_SEED_HIGH = 2 ** 63 - 1


@dataclass(frozen=True)
class LayerSizes:
    """A list of layer sizes, each an integer in 1..``max_width``, possibly empty (no hidden
    layer), as a tuple of ints."""

    max_width: int = 1 << 16

    def check(self, value: Any, name: str) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)):
            raise ParamError(name, f"expected a list of layer sizes (possibly empty), "
                                   f"got {plain(value)}")
        return tuple(check_int(v, name, low=1, high=self.max_width) for v in value)


class UserBatchSampler:
    """Batches of training users for the Trainer: every epoch a fresh permutation of ``users``
    drawn from its own ``rng`` (saved and restored by the Trainer's checkpoints), cut into
    batches; each batch is ``(users, seed)`` with a noise seed drawn from the same ``rng``."""

    def __init__(self, users: np.ndarray, seed: int = 0):
        self.users = np.asarray(users, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.rng.permutation(self.users)
        n_batches = -(-len(order) // batch_size)
        seeds = self.rng.integers(0, _SEED_HIGH, size=n_batches, dtype=np.int64)
        for b in range(n_batches):
            yield order[b * batch_size:(b + 1) * batch_size], seeds[b:b + 1]


def _common_constraints(name: str) -> dict[str, Any]:
    return {
        "hidden_dims": LayerSizes(),
        "latent_dim": Int(low=1),
        "dropout": Real(low=0, high=1, closed="left"),
        "reg": Real(low=0),
        "epochs": Int(low=0),
        "batch_size": Int(low=1),
        "optimizer": Choice(OPTIMIZERS),
        "lr": Real(low=0, closed="neither"),
        "patience": Int(low=1, none_ok=True),
        "validate_every": Int(low=1),
        "device": DEVICE,
        "seed": SEED,
        **adversarial_constraints(BLOCKS, name),
    }


class _MultAutoencoder(AdversarialTraining, NetModel, Recommender):
    """What Mult-VAE and Mult-DAE share: everything but ``variational`` and the KL schedule."""

    variational: ClassVar[bool] = True
    capabilities = Capabilities(
        parameter_blocks=BLOCKS,
        early_stopping=True,
        fit_options=("validate", "callbacks", "checkpoint_dir", "resume", "progress"),
    )

    hidden_dims: Sequence[int]
    latent_dim: int
    dropout: float
    reg: float
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    patience: int | None
    validate_every: int
    device: str | None
    seed: int

    def _use_checked_params(self) -> None:
        super()._use_checked_params()
        self.hidden_dims = LayerSizes().check(self.hidden_dims, "hidden_dims")  # list → tuple

    # ------------------------------------------------------------------ shapes
    def _dims(self, n_items: int) -> tuple[list[int], list[int]]:
        hidden = [int(d) for d in self.hidden_dims]
        k = int(self.latent_dim)
        return ([n_items, *hidden, k * (2 if self.variational else 1)],
                [k, *reversed(hidden), n_items])

    def _anneal(self) -> tuple[int, float]:
        return 0, 0.0

    # ------------------------------------------------------------------ fit
    def _new_net(self, seen) -> MultVAENet:
        from advrec.models.multvae_net import MultVAENet

        steps, cap = self._anneal()
        net = MultVAENet(seen.indptr, seen.indices, seen.shape[1], self.hidden_dims,
                         int(self.latent_dim), float(self.dropout), self.variational,
                         float(self.reg), steps, cap)
        net.initialize(torch.Generator().manual_seed(int(self.seed)))
        net.eval()
        return net.to(resolve_device(self.device))

    def _fit(self, train: Interactions,
             validate: Callable[[_MultAutoencoder], float] | None = None,
             callbacks: Sequence[Callback] = (), checkpoint_dir=None, resume: bool = False,
             progress: bool | None = None) -> None:
        """Train; ``validate(model) -> float`` (higher is better) is called every
        ``validate_every`` epochs and the best epoch's weights are kept (the notebook keeps the
        epoch of best validation nDCG@100); with ``patience`` it also stops early."""

        seen = train.binary_csr
        net = self._new_net(seen)
        self.net_ = net
        trainer = model_trainer(self, validate, callbacks, checkpoint_dir, resume, progress)
        self.fitted_ = True  # validation callables score the model during training
        users = np.flatnonzero(np.diff(seen.indptr) > 0)
        try:
            self.history_ = trainer.fit(net, UserBatchSampler(users, seed=int(self.seed)))
        finally:
            net.eval()
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    @property
    def anneal_step_(self) -> int:
        """Optimiser updates made so far (what β's schedule counts)."""
        self._check_fitted()
        return self.net_.anneal_step

    @property
    def beta_(self) -> float:
        """The KL weight β reached (0 for the DAE)."""
        self._check_fitted()
        return self.net_.beta()

    # ------------------------------------------------------------------ scores, loss
    def loss(self, batch, perturbation: dict[str, torch.Tensor] | None = None,
             l2: bool = True) -> torch.Tensor:
        """The summed training loss of a batch ``(users,)`` or ``(users, seed)``, optionally
        perturbed; a fitted model's network is in evaluation mode: no dropout, z = μ."""
        self._check_fitted()
        if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 2:
            raise ParamError("batch", f"expected (users,) or (users, seed), got {plain(batch)}")
        users = id_tensor(batch[0], "users", self.n_users_).reshape(-1).to(self._device())
        rest = ()
        if len(batch) == 2:
            rest = (id_tensor(batch[1], "seed", _SEED_HIGH).reshape(-1)[:1],)
        return self.net_.loss((users, *rest), self._check_perturbation(perturbation), l2=l2)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        state = {k: p.data for k, p in self.net_.named_parameters()}
        if self.variational:
            state["anneal_step"] = torch.tensor([float(self.net_.anneal_step)],
                                                dtype=torch.float64)
        return state

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        q, p = self._dims(self.n_items_)
        shapes: dict[str, tuple[int | None, ...]] = {
            "encoder": (q[0], q[1]), "encoder_bias": (q[1],)}
        for n, (a, b) in enumerate(pairwise(q[1:])):
            shapes[f"q_weights.{n}"] = (a, b)
            shapes[f"q_biases.{n}"] = (b,)
        for n, (a, b) in enumerate(pairwise(p[:-1])):
            shapes[f"p_weights.{n}"] = (a, b)
            shapes[f"p_biases.{n}"] = (b,)
        shapes["decoder"] = (p[-1], p[-2])
        shapes["decoder_bias"] = (p[-1],)
        if self.variational:
            shapes["anneal_step"] = (1,)
        return shapes

    def _state_tensor_count(self) -> int:
        # computed, so that a hostile hidden_dims is refused before a name list is built
        return 4 * len(self.hidden_dims) + 4 + int(self.variational)

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        net = self._new_net(self.seen_)  # the inputs come from the saved training pairs
        params = dict(net.named_parameters())
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(state[k])
        if self.variational:
            step = float(state["anneal_step"].reshape(-1)[0])
            if step < 0 or step != int(step):
                raise CheckpointError(f"tensor model.anneal_step: expected a non-negative "
                                      f"integer count of updates, got {plain(step)}")
            net.anneal_step = int(step)
        self.net_ = net


class MultVAE(_MultAutoencoder):
    """Mult-VAE^PR: the β-annealed variational autoencoder with multinomial likelihood.

    ``hidden_dims``: the encoder's hidden sizes (the decoder mirrors them; the paper: (600,)).
    ``latent_dim``: K (200). ``dropout``: the input dropout rate (0.5). ``total_anneal_steps``
    / ``anneal_cap``: β = min(cap, updates / total) (200 000, 0.2; total 0: β = cap
    throughout). ``reg``: L2 weight λ on the weight matrices (the notebook's ``lam``; 0 for the
    VAE). ``adv_reg`` > 0 adds APR's adversarial term on the blocks ``"encoder"`` and
    ``"decoder"`` (``eps``, ``adv_blocks``, ``adv_norm``, ``adv_start_epoch`` as in APR; a
    block's row has norm ≈ √(2d / (n_items + d)) at initialisation, d = 600: 0.53 on ML-1M, so
    size ``eps`` to the data); 0 is plain Mult-VAE exactly.
    """

    name = "multvae"
    variational = True
    _param_constraints: ClassVar[dict[str, Any]] = {
        **_common_constraints("Mult-VAE"),
        "total_anneal_steps": Int(low=0),
        "anneal_cap": Real(low=0),
    }

    def __init__(self, hidden_dims: Sequence[int] = (600,), latent_dim: int = 200,
                 dropout: float = 0.5, total_anneal_steps: int = 200_000,
                 anneal_cap: float = 0.2, reg: float = 0.0, epochs: int = 20,
                 batch_size: int = 500, optimizer: str = "adam", lr: float = 1e-3,
                 patience: int | None = None, validate_every: int = 1,
                 device: str | None = None, seed: int = 0, eps: float = 0.5,
                 adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = BLOCKS, adv_norm: str = "l2"):
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.total_anneal_steps = total_anneal_steps
        self.anneal_cap = anneal_cap
        self.reg = reg
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.patience = patience
        self.validate_every = validate_every
        self.device = device
        self.seed = seed
        self.eps = eps
        self.adv_reg = adv_reg
        self.adv_start_epoch = adv_start_epoch
        self.adv_blocks = adv_blocks
        self.adv_norm = adv_norm

    def _anneal(self) -> tuple[int, float]:
        return int(self.total_anneal_steps), float(self.anneal_cap)


class MultDAE(_MultAutoencoder):
    """Mult-DAE: the denoising autoencoder with multinomial likelihood (no KL, deterministic).

    Parameters as :class:`MultVAE` without the KL schedule; ``reg`` defaults to the notebook's
    λ = 0.01 / 500 (its ``lam=0.01 / batch_size``). ``hidden_dims=()`` gives the notebook's
    [I → 200 → I] DAE; the default (600,) the paper's [I → 600 → 200 → 600 → I].
    """

    name = "multdae"
    variational = False
    _param_constraints: ClassVar[dict[str, Any]] = _common_constraints("Mult-DAE")

    def __init__(self, hidden_dims: Sequence[int] = (600,), latent_dim: int = 200,
                 dropout: float = 0.5, reg: float = 0.01 / 500, epochs: int = 20,
                 batch_size: int = 500, optimizer: str = "adam", lr: float = 1e-3,
                 patience: int | None = None, validate_every: int = 1,
                 device: str | None = None, seed: int = 0, eps: float = 0.5,
                 adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = BLOCKS, adv_norm: str = "l2"):
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.reg = reg
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.patience = patience
        self.validate_every = validate_every
        self.device = device
        self.seed = seed
        self.eps = eps
        self.adv_reg = adv_reg
        self.adv_start_epoch = adv_start_epoch
        self.adv_blocks = adv_blocks
        self.adv_norm = adv_norm
