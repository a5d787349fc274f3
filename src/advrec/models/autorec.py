"""AutoRec (Sedhain, Menon, Sanner, Xie. *AutoRec: Autoencoders Meet Collaborative Filtering.*
WWW 2015), item-based (I-AutoRec) and user-based (U-AutoRec): the rating-prediction victims of
AUSH (Lin et al., AAAI 2020).

I-AutoRec reconstructs each item's vector of ratings by all users r^(i) ∈ R^m, U-AutoRec each
user's vector of ratings of all items (unobserved ratings are 0 in the input):

    h = g(V r + μ),    r̂ = f(W h + b),    g = sigmoid, f = identity (the paper's choice),

with V [k × d], W [d × k], d the length of a vector (users for I-AutoRec, items for U-AutoRec)
and k = ``n_hidden`` hidden units. The objective is the paper's: the squared error on the
*observed* entries only plus (λ/2)(‖W‖²_F + ‖V‖²_F) (``reg`` = λ; the biases are not
regularised)::

    Σ_vectors Σ_{observed j} (r_j − r̂_j)² + λ/2 · (‖W‖²_F + ‖V‖²_F).

A mini-batch of B of the N vectors with ratings carries its squared error and the share B/N of
the L2 term, so the batch losses of an epoch sum to the objective above (whatever the batch
size). The rating of user u for item i is read from the reconstruction: r̂_ui = W_u·h_i + b_u
(I-AutoRec, h_i the code of item i) or W_i·h_u + b_i (U-AutoRec). Users or items without
training ratings get the training mean (the paper's convention of a default rating for unseen
test users and items, here the global mean); ``predict`` clips to the training rating range.

Defaults and where they come from:

* ``n_hidden`` 500: the paper (k = 500) and the AUSH code (XMUDM/ShillingAttack,
  ``AUSH/model/autorec.py``, ``hidden_neuron=500``).
* Adam, ``lr`` 1e-3, ``batch_size`` 500 item vectors (I-AutoRec) / 200 user vectors
  (U-AutoRec), weights and biases initialised N(0, 0.01²), no dropout: the AUSH code. The paper
  trains with resilient propagation (Rprop) or L-BFGS on the full batch; we do not.
* ``epochs`` 200 (ours; the AUSH code runs up to 500 epochs, stopping when the loss changes by
  less than e⁻⁵, which in practice does not happen before 500).
* ``reg`` λ = 100 (ours, from the paper's grid {0.001, 0.01, 0.1, 1, 100, 1000}): on ml-100k u1
  (test RMSE after 200 epochs) λ = 1 and 10 overfit (0.934, 0.927; best 0.906 / 0.904 near
  epoch 100–125, then rising), λ = 1000 underfits (0.964), λ = 100 gives 0.900 (best 0.899 at
  epoch 150; docs/models.md). The AUSH code adds 0.1·(‖W‖² + ‖V‖²) to *every* mini-batch's
  loss (``reg_rate=0.1``; its U-AutoRec adds the norms with weight 1, ``self.reg_rate +
  Loss_norm``), an effective λ that grows with the number of batches per epoch: 2·0.1·3 = 0.6
  for I-AutoRec on ml-100k (1 682 items in 3 batches). We count the L2 term once per epoch, as
  the paper's objective. For a chosen epoch pass ``validate`` (e.g. minus a validation RMSE)
  and ``patience``.

The training matrix is kept on the device as a CSR (index and value tensors); a batch's vectors
are expanded to a dense B × d block for the forward pass. Scoring works in user chunks of at most
``ENTRIES_PER_CHUNK`` scores, one decoder product per chunk (for I-AutoRec the item codes are
computed first, in item chunks): no users × items matrix is built beyond the requested rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import DataError, ParamError
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    Recommender,
    id_tensor,
    model_trainer,
    resolve_device,
)
from advrec.models.knn import check_pairs
from advrec.models.multvae import UserBatchSampler
from advrec.training.optim import OPTIMIZERS
from advrec.validation import Choice, Int, Real, plain

if TYPE_CHECKING:
    from advrec.training.trainer import Callback

sp = lazy("scipy.sparse")
torch = lazy("torch")

ENTRIES_PER_CHUNK = 1 << 22  # dense inputs, outputs and codes: at most this many floats at once


class AutoRecNet:
    """AutoRec's parameters and forward pass over the training matrix ``M`` (the vectors to
    reconstruct as rows: items × users for I-AutoRec, users × items for U-AutoRec).

    The parameters (a ``torch.nn.ParameterDict``): ``encoder`` Vᵀ [d, k], ``encoder_bias`` μ [k],
    ``decoder`` W [d, k], ``decoder_bias`` b [d], d = M's columns. It offers what the Trainer
    drives (``parameters``, ``state_dict``, ``load_state_dict``, ``train``, ``loss``); a plain
    class holding a ParameterDict, so that importing this module does not import PyTorch.
    """

    def __init__(self, matrix: sp.csr_matrix, n_hidden: int, reg: float, n_train_rows: int):
        self.n_rows, self.n_cols = (int(s) for s in matrix.shape)
        self.n_hidden, self.reg = int(n_hidden), float(reg)
        self.n_train_rows = max(int(n_train_rows), 1)  # vectors with ratings: the L2 share
        k, d = self.n_hidden, self.n_cols
        self.params = torch.nn.ParameterDict({
            "encoder": torch.nn.Parameter(torch.empty(d, k)),
            "encoder_bias": torch.nn.Parameter(torch.empty(k)),
            "decoder": torch.nn.Parameter(torch.empty(d, k)),
            "decoder_bias": torch.nn.Parameter(torch.empty(d))})
        self.indptr = torch.tensor(np.asarray(matrix.indptr, np.int64))  # copies, not views
        self.indices = torch.tensor(np.asarray(matrix.indices, np.int64))
        self.values = torch.tensor(np.asarray(matrix.data, np.float32))
        self.training = False

    # ------------------------------------------------------------------ what the Trainer drives
    def initialize(self, gen: torch.Generator, std: float) -> AutoRecNet:
        """Every parameter N(0, std²) (the AUSH code: ``tf.random_normal(stddev=0.01)``), seeded."""
        with torch.no_grad():
            for p in self.params.values():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
        return self

    def to(self, device) -> AutoRecNet:
        self.params = self.params.to(device)
        self.indptr, self.indices, self.values = (
            t.to(device) for t in (self.indptr, self.indices, self.values))
        return self

    @property
    def device(self) -> torch.device:
        return self.params["encoder"].device

    def parameters(self):
        return self.params.parameters()

    def named_parameters(self):
        return self.params.named_parameters()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.params.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> Any:
        return self.params.load_state_dict(state)

    def train(self, mode: bool = True) -> AutoRecNet:
        self.training = bool(mode)  # no dropout, no noise: the mode changes nothing else
        return self

    @property
    def encoder(self) -> torch.nn.Parameter:
        return self.params["encoder"]

    @property
    def encoder_bias(self) -> torch.nn.Parameter:
        return self.params["encoder_bias"]

    @property
    def decoder(self) -> torch.nn.Parameter:
        return self.params["decoder"]

    @property
    def decoder_bias(self) -> torch.nn.Parameter:
        return self.params["decoder_bias"]

    # ------------------------------------------------------------------ forward pieces
    def entries(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows' observed entries as (position in ``rows``, column, rating): their CSR
        non-zeros."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        total = int(lengths.sum()) if len(rows) else 0
        offsets = torch.cumsum(lengths, 0) - lengths
        pos = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths,
                                      output_size=total)
        first = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
        at = first + torch.arange(total, device=rows.device)
        return pos, self.indices[at], self.values[at]

    def dense(self, rows: torch.Tensor) -> torch.Tensor:
        """The rows of M as a dense [len(rows), d] block, 0 where unobserved."""
        pos, cols, vals = self.entries(rows)
        x = torch.zeros(len(rows), self.n_cols, device=rows.device, dtype=self.encoder.dtype)
        x[pos, cols] = vals.to(x.dtype)
        return x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """h = g(V r + μ), one code per row of ``x`` (dense input vectors)."""
        return torch.sigmoid(torch.addmm(self.encoder_bias, x, self.encoder))

    def codes(self, rows: torch.Tensor) -> torch.Tensor:
        """The codes of the rows of M, computed in chunks of at most ENTRIES_PER_CHUNK inputs."""
        step = max(1, ENTRIES_PER_CHUNK // max(self.n_cols, 1))
        out = [self.encode(self.dense(rows[s:s + step])) for s in range(0, len(rows), step)]
        return (torch.cat(out) if out
                else torch.empty(0, self.n_hidden, device=self.device))

    def reconstruct(self, rows: torch.Tensor) -> torch.Tensor:
        """r̂ = W h + b of the rows of M: [len(rows), d] (one chunk; the caller sizes it)."""
        return torch.addmm(self.decoder_bias, self.encode(self.dense(rows)), self.decoder.T)

    def pair_ratings(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """r̂ at aligned (row of M, column) pairs: each distinct row encoded once, the pairs
        then dotted with their decoder rows, in chunks."""
        uniq, inv = torch.unique(rows, return_inverse=True)
        h = self.codes(uniq)
        step = max(1, ENTRIES_PER_CHUNK // max(self.n_hidden, 1))
        out = [(h[inv[s:s + step]] * self.decoder[cols[s:s + step]]).sum(-1)
               + self.decoder_bias[cols[s:s + step]] for s in range(0, len(rows), step)]
        return torch.cat(out) if out else torch.empty(0, device=self.device)

    # ------------------------------------------------------------------ loss
    def loss(self, batch, perturbation=None, l2: bool = True) -> torch.Tensor:
        """Σ over the batch's rows of the squared error on their observed entries only, plus,
        with ``l2``, the batch's share B/N of λ/2·(‖W‖²_F + ‖V‖²_F) (B rows of the N with
        ratings). ``batch``: (rows,) or (rows, seed) (the seed is unused: no noise).
        ``perturbation`` must be None (AutoRec has no perturbable blocks)."""
        if perturbation:
            raise ParamError("perturbation", "AutoRec has no perturbable parameter blocks")
        rows = batch[0].reshape(-1)
        pos, cols, vals = self.entries(rows)
        out = self.reconstruct(rows)
        err = out[pos, cols] - vals.to(out.dtype)
        loss = (err * err).sum()
        if l2 and self.reg > 0:
            norms = (self.encoder ** 2).sum() + (self.decoder ** 2).sum()
            loss = loss + 0.5 * self.reg * (len(rows) / self.n_train_rows) * norms
        return loss


def _constraints() -> dict[str, Any]:
    return {
        "n_hidden": Int(low=1, high=1 << 16),
        "reg": Real(low=0),
        "epochs": Int(low=0),
        "batch_size": Int(low=1),
        "optimizer": Choice(OPTIMIZERS),
        "lr": Real(low=0, closed="neither"),
        "init_std": Real(low=0),
        "patience": Int(low=1, none_ok=True),
        "validate_every": Int(low=1),
        "device": DEVICE,
        "seed": SEED,
    }


class _AutoRec(Recommender):
    """What I-AutoRec and U-AutoRec share: everything but which side is reconstructed."""

    item_based: ClassVar[bool] = True
    capabilities = Capabilities(
        rating_prediction=True,
        early_stopping=True,
        fit_options=("validate", "callbacks", "checkpoint_dir", "resume", "progress"),
    )
    _param_constraints: ClassVar[dict[str, Any]] = _constraints()

    n_hidden: int
    reg: float
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    init_std: float
    patience: int | None
    validate_every: int
    device: str | None
    seed: int

    def _set(self, n_hidden, reg, epochs, batch_size, optimizer, lr, init_std, patience,
             validate_every, device, seed) -> None:
        self.n_hidden = n_hidden
        self.reg = reg
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.init_std = init_std
        self.patience = patience
        self.validate_every = validate_every
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def _regularizer(self) -> None:
        return None  # model_trainer's hook: the L2 term is in the loss

    def _regularizer_start(self) -> int:
        return 0

    def _matrix(self, ratings: sp.csr_matrix) -> sp.csr_matrix:
        """The vectors to reconstruct as rows: items × users (I-AutoRec) or users × items."""
        return ratings.T.tocsr() if self.item_based else ratings

    def _new_net(self, ratings: sp.csr_matrix) -> AutoRecNet:
        m = self._matrix(ratings)
        m.sort_indices()
        n_train = int((np.diff(m.indptr) > 0).sum())
        net = AutoRecNet(m, int(self.n_hidden), float(self.reg), n_train)
        net.initialize(torch.Generator().manual_seed(int(self.seed)), float(self.init_std))
        return net.to(resolve_device(self.device))

    def _set_statistics(self, ratings: sp.csr_matrix) -> None:
        """The training mean and range and which users/items have ratings (the others get the
        mean)."""
        self.global_mean_ = float(ratings.data.mean())
        self.rating_range_ = (float(ratings.data.min()), float(ratings.data.max()))
        self._set_unseen()

    def _set_unseen(self) -> None:
        dev = resolve_device(self.device)
        self.user_unseen_ = torch.as_tensor(np.diff(self.seen_.indptr) == 0, device=dev)
        self.item_unseen_ = torch.as_tensor(
            np.bincount(self.seen_.indices, minlength=self.n_items_) == 0, device=dev)

    def _fit(self, train: Interactions, validate: Callable[[_AutoRec], float] | None = None,
             callbacks: Sequence[Callback] = (), checkpoint_dir=None, resume: bool = False,
             progress: bool | None = None) -> None:
        """Train with the Trainer; ``validate(model) -> float`` (higher is better, e.g. minus
        the validation RMSE) is called every ``validate_every`` epochs, the best epoch's weights
        are kept, and with ``patience`` training stops early."""
        if not train.has_ratings:
            raise DataError(
                f"{type(self).__name__} predicts ratings, but {train.name or 'the data'} has "
                f"none (implicit feedback); use a ranking model such as BPRMF or CDAE, or load "
                f"explicit ratings")
        ratings = sp.csr_matrix(train.csr, dtype=np.float32)
        self.ratings_ = ratings.data.copy()  # aligned with seen_ (the same CSR structure)
        self._set_statistics(ratings)
        net = self._new_net(ratings)
        self.net_ = net
        trainer = model_trainer(self, validate, callbacks, checkpoint_dir, resume, progress)
        self.fitted_ = True  # validation callables score the model during training
        unseen = self.item_unseen_ if self.item_based else self.user_unseen_
        rows = np.flatnonzero(~unseen.cpu().numpy())  # the vectors with ratings
        try:
            self.history_ = trainer.fit(net, UserBatchSampler(rows, seed=int(self.seed)))
        finally:
            net.train(False)
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    # ------------------------------------------------------------------ predict / score
    def predict(self, users, items) -> np.ndarray:
        """Predicted ratings of aligned (user, item) internal-id pairs, clipped to the training
        rating range; the training mean where the user or the item has no training rating."""
        self._check_fitted()
        u, i = check_pairs(self, users, items)
        dev = self.net_.device
        ut, it = torch.tensor(u, device=dev), torch.tensor(i, device=dev)
        with torch.no_grad():
            pred = (self.net_.pair_ratings(it, ut) if self.item_based
                    else self.net_.pair_ratings(ut, it))
            pred = torch.where(self.user_unseen_[ut] | self.item_unseen_[it],
                               torch.full_like(pred, self.global_mean_), pred)
        return np.clip(pred.double().cpu().numpy(), *self.rating_range_)

    def _score(self, users: torch.Tensor) -> torch.Tensor:
        """Unclipped predicted ratings of every item for ``users``, in user chunks of at most
        ENTRIES_PER_CHUNK scores, one decoder product per chunk (I-AutoRec: W[users] Hᵀ + b with
        H the item codes, computed once per call; U-AutoRec: the users' reconstructions)."""
        net = self.net_
        users = users.to(net.device)
        step = max(1, ENTRIES_PER_CHUNK // max(self.n_items_, 1))
        if self.item_based:
            codes = net.codes(torch.arange(self.n_items_, device=net.device))
            parts = [torch.addmm(net.decoder_bias[u, None], net.decoder[u], codes.T)
                     for u in (users[s:s + step] for s in range(0, len(users), step))]
        else:
            parts = [net.reconstruct(users[s:s + step]) for s in range(0, len(users), step)]
        out = (torch.cat(parts) if parts
               else torch.empty(0, self.n_items_, device=net.device))
        unseen = self.user_unseen_[users][:, None] | self.item_unseen_[None, :]
        return out.masked_fill_(unseen, self.global_mean_)

    def loss(self, batch, l2: bool = True) -> torch.Tensor:
        """The summed training loss of a batch ``(rows,)`` of vector ids (internal item ids for
        I-AutoRec, user ids for U-AutoRec): squared error on their observed entries plus, with
        ``l2``, their share of the L2 term (see :class:`AutoRecNet`)."""
        self._check_fitted()
        if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 2:
            raise ParamError("batch", f"expected (rows,) or (rows, seed), got {plain(batch)}")
        n, what = (self.n_items_, "items") if self.item_based else (self.n_users_, "users")
        rows = id_tensor(batch[0], what, n).reshape(-1).to(self.net_.device)
        return self.net_.loss((rows,), l2=l2)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        state = {k: p.data for k, p in self.net_.named_parameters()}
        # the training ratings, in the order of the saved training pairs (seen_'s CSR)
        state["ratings"] = torch.from_numpy(np.asarray(self.ratings_, np.float32))
        state["stats"] = torch.tensor([self.global_mean_, *self.rating_range_],
                                      dtype=torch.float64)
        return state

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        k = int(self.n_hidden)
        d = self.n_users_ if self.item_based else self.n_items_
        return {"encoder": (d, k), "encoder_bias": (k,), "decoder": (d, k),
                "decoder_bias": (d,), "ratings": (None,), "stats": (3,)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        values = state["ratings"].numpy().astype(np.float32)
        seen = self.seen_
        if len(values) != seen.nnz:
            raise ValueError(f"{len(values)} ratings for {seen.nnz} training pairs")
        ratings = sp.csr_matrix((values, seen.indices, seen.indptr), shape=seen.shape)
        self.ratings_ = values
        net = self._new_net(ratings)
        with torch.no_grad():
            for k, p in net.named_parameters():
                p.copy_(state[k])
        self.net_ = net
        mean, lo, hi = state["stats"].tolist()
        self.global_mean_, self.rating_range_ = mean, (lo, hi)
        self._set_unseen()


class IAutoRec(_AutoRec):
    """I-AutoRec (Sedhain et al., WWW 2015): an autoencoder reconstructing each item's ratings
    by all users, h = σ(V r_i + μ), r̂_i = W h + b, squared error on observed ratings + λ/2 L2.

    ``n_hidden``: k (500). ``reg``: λ (100). Adam, ``lr`` 1e-3, ``batch_size`` 500 items,
    ``init_std`` 0.01 as the AUSH code; ``epochs`` 200 (ours). See the module docstring.
    """

    name = "iautorec"
    item_based = True

    def __init__(self, n_hidden: int = 500, reg: float = 100.0, epochs: int = 200,
                 batch_size: int = 500, optimizer: str = "adam", lr: float = 1e-3,
                 init_std: float = 0.01, patience: int | None = None, validate_every: int = 1,
                 device: str | None = None, seed: int = 0):
        self._set(n_hidden, reg, epochs, batch_size, optimizer, lr, init_std, patience,
                  validate_every, device, seed)


class UAutoRec(_AutoRec):
    """U-AutoRec (Sedhain et al., WWW 2015): an autoencoder reconstructing each user's ratings
    of all items, h = σ(V r_u + μ), r̂_u = W h + b, squared error on observed ratings + λ/2 L2.

    ``n_hidden``: k (500). ``reg``: λ (100). Adam, ``lr`` 1e-3, ``batch_size`` 200 users,
    ``init_std`` 0.01 as the AUSH code; ``epochs`` 200 (ours). See the module docstring.
    """

    name = "uautorec"
    item_based = False

    def __init__(self, n_hidden: int = 500, reg: float = 100.0, epochs: int = 200,
                 batch_size: int = 200, optimizer: str = "adam", lr: float = 1e-3,
                 init_std: float = 0.01, patience: int | None = None, validate_every: int = 1,
                 device: str | None = None, seed: int = 0):
        self._set(n_hidden, reg, epochs, batch_size, optimizer, lr, init_std, patience,
                  validate_every, device, seed)

