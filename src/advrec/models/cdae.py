"""CDAE (Wu, DuBois, Zheng, Ester. *Collaborative Denoising Auto-Encoders for Top-N Recommender
Systems.* WSDM 2016) and its adversarial training ACAE (Yuan, Yao, Benatallah. *Adversarial
Collaborative Auto-encoder for Top-N Recommendation.* arXiv 1808.05361, IJCNN 2019).

CDAE, as the paper and the authors' code (jasonyaw/CDAE, ``cdae.hpp``) define it: one hidden
layer of K = ``n_factors`` sigmoid units (50 in the experiments) fed by the user's binary
preference vector y_u corrupted by dropout (each observed entry dropped with probability
q = ``corruption``, the kept ones scaled by 1/(1 − q)) and by a user-specific node V_u:
z_u = σ(Wᵀỹ_u + V_u + b), ŷ_u = σ(W'ᵀz_u + b'), with separate encoder and decoder weights (the
paper's W and W'; the code's ``asymmetric`` option). The loss is the log loss (the code's
``CE``: sigmoid output, cross-entropy) reconstructing the clean y_u on the observed entries and
on negatives sampled among the user's unobserved items, ``n_negatives`` per observed entry (the
paper's negative sampling; the code's ``num_neg`` 5, drawn afresh each epoch, with
replacement), plus L2 λ/2·‖θ‖² (``reg``, the code's λ = 0.01) on what each user's step touches
(V_u, b, the W rows of its kept inputs, W' rows and b' entries of its output entries), as the
code's per-user SGD applies it. Initialisation as the code: W, W', V uniform in
±4·sqrt(6/(I + K)), zero biases. At scoring: the clean input (no corruption, no scaling); the
scores are the logits W'ᵀz_u + b' (σ is monotone: the same ranking as ŷ).

Where we differ from the code: mini-batches of ``batch_size`` users summed (the code: one user
per step); torch's Adagrad (lr 0.1 as the code, accumulator from 0.1, ε 1e-10; the code adds
β = 1 to the root of an accumulator starting at 1e-4); users without training items are left
out of the batches (their loss is zero); the square loss (the paper's other choice) and the
code's tied weights W' = W (its default ``asymmetric`` false) are not implemented.

ACAE (the arXiv paper's Section 3): adversarial noise on the encoder and decoder weights W and W'
(the positions the paper finds most harmful, its Section 3.1) — the perturbable blocks
``"encoder"`` and ``"decoder"`` — each from its own FGSM step n_b = ε·Γ_b/‖Γ_b‖ on the batch's
clean loss (one norm over the whole weight matrix, ‖n_b‖ ≤ ε as the paper's constraint; the
library's shared :func:`~advrec.training.perturbation.fgsm_direction`), and one adversarial
regulariser per noise source: L(Θ) + Σ_b λ_b·L(Θ, n_b) (``adv_reg`` = λ, ``adv_reg_decoder`` a
separate λ for the decoder's source). The paper's two phases, pre-train then adversarial
training: ``adv_start_epoch`` plain epochs first, or ``fit(train, init_from=cdae)`` to start
from a trained CDAE (the paper re-trains with Adagrad; pass ``optimizer`` as wished). ACAE's
base is the paper's CAE, CDAE without input corruption (``corruption`` 0 by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, ParamError
from advrec.models.adversarial import AdversarialTraining, adversarial_constraints
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    NetModel,
    Recommender,
    check_warm_start_shape,
    id_tensor,
    model_trainer,
    resolve_device,
)
from advrec.training.adversarial import AdversarialRegularizer
from advrec.training.optim import OPTIMIZERS
from advrec.training.perturbation import fgsm_direction
from advrec.validation import Choice, Int, Real, plain

if TYPE_CHECKING:
    from advrec.models.cdae_net import CDAENet
    from advrec.training.trainer import Callback

torch = lazy("torch")

BLOCKS = ("user", "encoder", "decoder")  # CDAENet.block_names (the contract test checks them)
WEIGHT_BLOCKS = ("encoder", "decoder")  # ACAE's noise sources: the weight matrices W and W'
SCOPES = ("matrix", "row")
_SEED_HIGH = 2 ** 63 - 1
_COUNT_HIGH = 2 ** 62


class CDAESampler:
    """Batches of training users for the Trainer: every epoch a fresh permutation of the users
    with training items, cut into batches of ``batch_size`` users; each batch is ``(users,
    neg_counts, neg_items, seed)``: ``n_negatives`` × |O_u| unobserved items per user, drawn
    uniformly with replacement (none for a user who has every item), concatenated in the users'
    order, and a seed for the batch's corruption mask. Everything comes from one seeded ``rng``
    (saved and restored by the Trainer's checkpoints)."""

    def __init__(self, train: Interactions, n_negatives: int = 5, seed: int = 0):
        from advrec.data.sampling import UniformSampler

        self.uniform = UniformSampler(train, seed)
        self.n_negatives = int(n_negatives)
        self.lengths = np.diff(train.binary_csr.indptr).astype(np.int64)
        self.users = np.flatnonzero(self.lengths > 0)
        self.full = self.lengths >= train.n_items

    @property
    def rng(self) -> np.random.Generator:
        return self.uniform.rng

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        order = self.rng.permutation(self.users)
        n_batches = -(-len(order) // batch_size)
        seeds = self.rng.integers(0, _SEED_HIGH, size=n_batches, dtype=np.int64)
        for b in range(n_batches):
            users = order[b * batch_size:(b + 1) * batch_size]
            counts = np.where(self.full[users], 0, self.lengths[users] * self.n_negatives)
            flat = np.repeat(users, counts)
            negatives = (self.uniform.negatives(flat) if len(flat)
                         else np.zeros(0, dtype=np.int64))
            yield users, counts.astype(np.int64), negatives.astype(np.int64), seeds[b:b + 1]


class PerSourceAdversarialRegularizer(AdversarialRegularizer):
    """ACAE's adversarial term Σ_b λ_b·L(Θ, n_b): one regulariser per noise source b, each loss
    evaluated with that source alone perturbed (the paper's "multiple adversarial regularizers"),
    every n_b the FGSM step of the batch's clean loss, held constant.

    ``scope`` "matrix": ‖n_b‖ = ε over the whole block (the paper's n = ε·Γ/‖Γ‖ on a weight
    matrix); "row": ε per row, as APR and the library's parameter attacks (the base class).
    ``weights``: λ_b per block (sources with λ_b = 0 are left out).
    """

    def __init__(self, eps: float, weights: dict[str, float], norm: str = "l2",
                 scope: str = "matrix"):
        weights = {b: float(w) for b, w in weights.items() if w > 0}
        super().__init__(eps, max(weights.values(), default=0.0), tuple(weights), norm)
        if scope not in SCOPES:
            raise ConfigError(f"unknown perturbation scope {scope!r}; expected one of "
                              f"{', '.join(SCOPES)}")
        self.weights, self.scope = weights, scope

    def direction(self, grad: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """n_b of one source: ε·Γ/‖Γ‖ over the whole matrix ("matrix" scope, l2), else the base
        class's per-row FGSM."""
        if self.scope == "row" or self.norm != "l2":
            return super().direction(grad, out)
        if grad.is_sparse:
            grad = grad.to_dense()
        return fgsm_direction(grad.reshape(1, -1), self.eps, "l2").reshape(grad.shape)

    def adversarial_loss(self, module, batch, delta: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ_b λ_b·L(Θ, n_b): each source's loss with that source alone perturbed."""
        return sum(self.weights[b] * module.loss(batch, perturbation={b: delta[b]}, l2=False)
                   for b in self.blocks)


def _constraints() -> dict[str, Any]:
    return {
        "n_factors": Int(low=1),
        "corruption": Real(low=0, high=1, closed="left"),
        "n_negatives": Int(low=0, high=1000),
        "reg": Real(low=0),
        "epochs": Int(low=0),
        "batch_size": Int(low=1),
        "optimizer": Choice(OPTIMIZERS),
        "lr": Real(low=0, closed="neither"),
        "patience": Int(low=1, none_ok=True),
        "validate_every": Int(low=1),
        "device": DEVICE,
        "seed": SEED,
    }


class CDAE(NetModel, Recommender):
    """Collaborative denoising auto-encoder: z_u = σ(Wᵀỹ_u + V_u + b), ŷ_u = σ(W'ᵀz_u + b').

    ``n_factors``: K (the paper: 50). ``corruption``: the dropout probability q of the input
    (the code's default 0.5). ``n_negatives``: sampled unobserved items per observed one (5).
    ``reg``: λ of the L2 term (0.01). Adagrad lr 0.1 as the code; ``batch_size`` users per step
    (32) and ``epochs`` (20) are ours (movielens-500 plateaus after about 10 epochs).
    """

    name = "cdae"
    capabilities = Capabilities(
        parameter_blocks=BLOCKS,
        early_stopping=True,
        warm_start=("cdae", "acae"),
        fit_options=("validate", "callbacks", "checkpoint_dir", "resume", "progress",
                     "init_from"),
    )
    _param_constraints: ClassVar[dict[str, Any]] = _constraints()

    def __init__(self, n_factors: int = 50, corruption: float = 0.5, n_negatives: int = 5,
                 reg: float = 0.01, epochs: int = 20, batch_size: int = 32,
                 optimizer: str = "adagrad", lr: float = 0.1, patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0):
        self.n_factors = n_factors
        self.corruption = corruption
        self.n_negatives = n_negatives
        self.reg = reg
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.patience = patience
        self.validate_every = validate_every
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def _new_net(self, seen) -> CDAENet:
        from advrec.models.cdae_net import CDAENet

        n_users, n_items = seen.shape
        net = CDAENet(seen.indptr, seen.indices, n_users, n_items, int(self.n_factors),
                      float(self.corruption), float(self.reg))
        net.initialize(torch.Generator().manual_seed(int(self.seed)))
        net.eval()
        return net.to(resolve_device(self.device))

    def _regularizer(self) -> AdversarialRegularizer | None:
        return None  # plain CDAE; ACAE adds its adversarial regularisers

    def _regularizer_start(self) -> int:
        return 0

    def _fit(self, train: Interactions, validate: Callable[[CDAE], float] | None = None,
             callbacks: Sequence[Callback] = (), checkpoint_dir=None, resume: bool = False,
             progress: bool | None = None, init_from: CDAE | None = None) -> None:
        """Train; ``validate(model) -> float`` drives early stopping (with ``patience``);
        ``init_from`` starts from another fitted CDAE's or ACAE's weights (e.g. ACAE after a
        pre-trained CDAE, the paper's two phases)."""

        net = self._new_net(train.binary_csr)
        if init_from is not None:
            check_warm_start_shape(init_from, train)
            if init_from.net_.dim != int(self.n_factors):
                raise ConfigError(f"init_from has {init_from.net_.dim} factors, this model "
                                  f"{self.n_factors}")
            with torch.no_grad():
                for name, param in net.named_parameters():
                    param.copy_(getattr(init_from.net_, name))
        self.net_ = net
        trainer = model_trainer(self, validate, callbacks, checkpoint_dir, resume, progress)
        self.fitted_ = True  # validation callables score the model during training
        sampler = CDAESampler(train, int(self.n_negatives), seed=int(self.seed))
        try:
            self.history_ = trainer.fit(net, sampler)
        finally:
            net.eval()
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    # ------------------------------------------------------------------ scores, loss
    def loss(self, batch, perturbation: dict[str, torch.Tensor] | None = None,
             l2: bool = True) -> torch.Tensor:
        """The summed training loss of a batch ``(users,)``, ``(users, neg_counts, neg_items)``
        or ``(users, neg_counts, neg_items, seed)`` (see :class:`CDAESampler`), optionally
        perturbed; a fitted model's network is in evaluation mode: no corruption."""
        self._check_fitted()
        if not isinstance(batch, (tuple, list)) or len(batch) not in (1, 3, 4):
            raise ParamError("batch", f"expected (users,), (users, neg_counts, neg_items) or "
                                      f"(users, neg_counts, neg_items, seed), got {plain(batch)}")
        dev = self._device()
        users = id_tensor(batch[0], "users", self.n_users_).reshape(-1).to(dev)
        parts = [users]
        if len(batch) >= 3:
            counts = id_tensor(batch[1], "neg_counts", _COUNT_HIGH).reshape(-1).to(dev)
            negatives = id_tensor(batch[2], "neg_items", self.n_items_).reshape(-1).to(dev)
            if len(counts) != len(users) or int(counts.sum()) != len(negatives):
                raise ParamError("batch", f"expected one negative count per user and as many "
                                          f"negatives as they sum to, got {len(counts)} counts "
                                          f"for {len(users)} users summing to "
                                          f"{int(counts.sum())}, {len(negatives)} negatives")
            parts += [counts, negatives]
        if len(batch) == 4:
            parts.append(id_tensor(batch[3], "seed", _SEED_HIGH).reshape(-1)[:1])
        return self.net_.loss(tuple(parts), self._check_perturbation(perturbation), l2=l2)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return {k: p.data for k, p in self.net_.named_parameters()}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        k = int(self.n_factors)
        return {"user": (self.n_users_, k), "encoder": (self.n_items_, k), "encoder_bias": (k,),
                "decoder": (self.n_items_, k), "decoder_bias": (self.n_items_,)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        net = self._new_net(self.seen_)  # the inputs come from the saved training pairs
        with torch.no_grad():
            for k, p in net.named_parameters():
                p.copy_(state[k])
        self.net_ = net


class ACAE(AdversarialTraining, CDAE):
    """Adversarial collaborative auto-encoder: CDAE (the paper's CAE: ``corruption`` 0) trained
    on L(Θ) + λ·L(Θ, n_W) + λ₂·L(Θ, n_W'), each n the FGSM noise of the batch's clean loss on
    one weight matrix, ‖n‖ = ε over the matrix (``adv_scope`` "matrix"; "row": ε per row as APR).

    ``eps``: ε. ``adv_reg``: λ, the weight of every source's term (0 with ``adv_reg_decoder``
    None or 0: CDAE exactly). ``adv_reg_decoder``: a separate λ for the decoder's source (None:
    ``adv_reg``). ``adv_blocks``: the sources (default the paper's W and W'; ``"user"`` may be
    added). ``adv_start_epoch``: plain (pre-training) epochs before the adversarial ones
    (default 20 of 40: CDAE's default training, then as many adversarial epochs); or
    ``fit(train, init_from=cdae)``. ``adv_norm``: "l2" (the paper) or "linf" (FGSM's sign).
    ε = 1 and λ = 1 are our defaults, not read from the paper; under the matrix-wide bound ε is
    small beside ‖W‖ (about 70–110 on movielens-500 after 20 epochs).
    """

    name = "acae"
    _param_constraints: ClassVar[dict[str, Any]] = {
        **_constraints(),
        **adversarial_constraints(BLOCKS, "ACAE"),
        "adv_reg_decoder": Real(low=0, none_ok=True),
        "adv_scope": Choice(SCOPES),
    }

    def __init__(self, n_factors: int = 50, corruption: float = 0.0, n_negatives: int = 5,
                 reg: float = 0.01, epochs: int = 40, batch_size: int = 32,
                 optimizer: str = "adagrad", lr: float = 0.1, patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0,
                 eps: float = 1.0, adv_reg: float = 1.0, adv_reg_decoder: float | None = None,
                 adv_start_epoch: int = 20, adv_blocks: Sequence[str] = WEIGHT_BLOCKS,
                 adv_norm: str = "l2", adv_scope: str = "matrix"):
        super().__init__(n_factors=n_factors, corruption=corruption, n_negatives=n_negatives,
                         reg=reg, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                         lr=lr, patience=patience, validate_every=validate_every,
                         device=device, seed=seed)
        self.eps = eps
        self.adv_reg = adv_reg
        self.adv_reg_decoder = adv_reg_decoder
        self.adv_start_epoch = adv_start_epoch
        self.adv_blocks = adv_blocks
        self.adv_norm = adv_norm
        self.adv_scope = adv_scope

    def _use_checked_params(self) -> None:
        super()._use_checked_params()
        self.adv_blocks = tuple(self.adv_blocks)  # list → tuple, as the manifest gives it back

    def adversarial_weights(self) -> dict[str, float]:
        """λ_b of every noise source b in ``adv_blocks``."""
        out = {}
        for b in tuple(self.adv_blocks):
            own = self.adv_reg_decoder if b == "decoder" else None
            out[b] = float(self.adv_reg if own is None else own)
        return out

    def _regularizer(self) -> PerSourceAdversarialRegularizer | None:
        weights = self.adversarial_weights()
        if not any(w > 0 for w in weights.values()):
            return None  # every λ = 0: exactly CDAE
        return PerSourceAdversarialRegularizer(float(self.eps), weights, self.adv_norm,
                                               self.adv_scope)
