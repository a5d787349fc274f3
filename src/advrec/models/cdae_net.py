"""The network of CDAE (Wu, DuBois, Zheng, Ester. *Collaborative Denoising Auto-Encoders for
Top-N Recommender Systems.* WSDM 2016), shared by ACAE, in its own module so that importing the
model classes does not import PyTorch.

One hidden layer of K sigmoid units with a user-specific input node: for user u with binary
preference vector y_u and its corrupted copy ỹ_u (each observed entry dropped with probability
q, the kept ones scaled by 1/(1 − q)),

    z_u = σ(Wᵀ ỹ_u + V_u + b),    ŷ_ui = σ(W'_iᵀ z_u + b'_i).

A user's input is read from the training CSR (kept on the device as two index tensors) one batch
at a time, as the list of its non-zeros; the first layer Wᵀ ỹ_u is a weighted sum of the rows of
the user's items (``embedding_bag``): no dense users × items matrix is ever built. The training
loss is computed on the observed entries and the sampled negatives only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOGITS_PER_CHUNK = 1 << 22  # scoring: at most this many user × item logits at a time


class CDAENet(nn.Module):
    """CDAE's parameters, all item-side matrices item-major (a row is one item's vector):

    ``user`` V [n_users, K] (the user nodes), ``encoder`` W [n_items, K] with ``encoder_bias``
    b [K], ``decoder`` W' [n_items, K] with ``decoder_bias`` b' [n_items]. The perturbable
    blocks are ``"user"``, ``"encoder"`` and ``"decoder"``.
    """

    block_names = ("user", "encoder", "decoder")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_users: int, n_items: int,
                 dim: int, corruption: float = 0.5, reg: float = 0.01):
        super().__init__()
        self.n_users, self.n_items, self.dim = int(n_users), int(n_items), int(dim)
        self.corruption = float(corruption)
        self.reg = float(reg)  # read by the adversarial regulariser (L2 on: recompute without)
        self.user = nn.Parameter(torch.empty(self.n_users, self.dim))
        self.encoder = nn.Parameter(torch.empty(self.n_items, self.dim))
        self.encoder_bias = nn.Parameter(torch.empty(self.dim))
        self.decoder = nn.Parameter(torch.empty(self.n_items, self.dim))
        self.decoder_bias = nn.Parameter(torch.empty(self.n_items))
        self.register_buffer("indptr", torch.as_tensor(np.asarray(indptr, np.int64)),
                             persistent=False)
        self.register_buffer("indices", torch.as_tensor(np.asarray(indices, np.int64)),
                             persistent=False)

    def initialize(self, gen: torch.Generator) -> CDAENet:
        """The authors' code (jasonyaw/CDAE): W, W' and V uniform in ±4·sqrt(6 / (I + K)) (Glorot's
        range for sigmoid units), zero biases; seeded."""
        bound = 4.0 * math.sqrt(6.0 / (self.n_items + self.dim))
        with torch.no_grad():
            for table in (self.encoder, self.decoder, self.user):
                table.uniform_(-bound, bound, generator=gen)
            self.encoder_bias.zero_()
            self.decoder_bias.zero_()
        return self

    def blocks(self) -> dict[str, torch.Tensor]:
        return {"user": self.user, "encoder": self.encoder, "decoder": self.decoder}

    def _table(self, name: str, perturbation) -> torch.Tensor:
        table = getattr(self, name)
        if perturbation and name in perturbation:
            table = table + perturbation[name]
        return table

    # ------------------------------------------------------------------ forward pieces
    def rows(self, users: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The users' observed items as (batch row, item, bag offsets): their CSR non-zeros."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        total = int(lengths.sum()) if len(users) else 0
        offsets = torch.cumsum(lengths, 0) - lengths
        pos = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths,
                                      output_size=total)
        first = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
        items = self.indices[first + torch.arange(total, device=users.device)]
        return pos, items, offsets

    def input_weights(self, n: int, gen: torch.Generator | None, noisy: bool,
                      device) -> torch.Tensor:
        """The values of ỹ_u on the user's observed entries: 1 clean; with ``noisy`` each one
        dropped with probability q and the kept ones scaled by 1/(1 − q) (unbiased: E[ỹ] = y)."""
        values = torch.ones(n, device=device, dtype=self.encoder.dtype)
        if noisy and self.corruption > 0:
            keep = torch.rand(n, generator=gen, device=device, dtype=values.dtype)
            values = (keep >= self.corruption).to(values.dtype) / (1.0 - self.corruption)
        return values

    def hidden(self, users: torch.Tensor, items: torch.Tensor, offsets: torch.Tensor,
               values: torch.Tensor, perturbation=None) -> torch.Tensor:
        """z_u = σ(Wᵀ ỹ_u + V_u + b) for the users' (corrupted) inputs."""
        encoded = F.embedding_bag(items, self._table("encoder", perturbation), offsets,
                                  mode="sum", per_sample_weights=values)
        user = self.user[users]
        if perturbation and "user" in perturbation:
            user = user + perturbation["user"][users]
        return torch.sigmoid(encoded + user + self.encoder_bias)

    def encode(self, users: torch.Tensor, perturbation=None) -> torch.Tensor:
        """The hidden layer at evaluation: the clean input y_u (no corruption, no scaling)."""
        _pos, items, offsets = self.rows(users)
        values = self.input_weights(len(items), None, False, users.device)
        return self.hidden(users, items, offsets, values, perturbation)

    # ------------------------------------------------------------------ scores
    def score(self, users: torch.Tensor, perturbation=None) -> torch.Tensor:
        """Logits W'ᵀ z_u + b' of every item for ``users`` (ŷ = σ of them, same ranking), in
        chunks of users of at most LOGITS_PER_CHUNK logits."""
        decoder = self._table("decoder", perturbation)
        step = max(1, LOGITS_PER_CHUNK // max(self.n_items, 1))
        out = [torch.addmm(self.decoder_bias, self.encode(users[s:s + step], perturbation),
                           decoder.T) for s in range(0, len(users), step)]
        return torch.cat(out) if out else torch.empty(0, self.n_items, device=users.device)

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor,
                    perturbation=None) -> torch.Tensor:
        """Logits of broadcastable (user, item) id tensors: each distinct user is encoded once;
        the pairs are then dotted one by one or read from the small table of distinct users ×
        distinct items, whichever takes less memory."""
        shape = torch.broadcast_shapes(users.shape, items.shape)
        uniq_u, inv_u = torch.unique(users, return_inverse=True)
        z = self.encode(uniq_u, perturbation)
        decoder = self._table("decoder", perturbation)
        uniq_i, inv_i = torch.unique(items, return_inverse=True)
        if len(uniq_u) * len(uniq_i) <= math.prod(shape) * z.shape[1]:
            table = torch.addmm(self.decoder_bias[uniq_i], z, decoder[uniq_i].T)
            return table[inv_u.expand(shape), inv_i.expand(shape)]
        items = items.expand(shape)
        return (z[inv_u.expand(shape)] * decoder[items]).sum(-1) + self.decoder_bias[items]

    # ------------------------------------------------------------------ loss
    def loss(self, batch, perturbation=None, l2: bool = True) -> torch.Tensor:
        """The batch's summed log loss on the observed entries (label 1) and the sampled
        negatives (label 0), plus, with ``l2``, reg/2 times the squared norm of what each user's
        step touches (as the authors' per-user SGD regularises): V_u, b, the W rows of the kept
        inputs and W'_i, b'_i of every output entry (observed or sampled)::

            Σ_u [ Σ_{i∈O_u} −log σ(x_ui) + Σ_{j∈S_u} −log(1 − σ(x_uj)) ]
              + reg/2 · Σ_u [ ‖V_u‖² + ‖b‖² + Σ_{j kept} ‖W_j‖² + Σ_{i∈O_u∪S_u} (‖W'_i‖² + b'_i²) ]

        ``batch``: (users,), (users, neg_counts, neg_items) or (users, neg_counts, neg_items,
        seed): the users, how many sampled negatives each has and those items (concatenated in
        the users' order). In training mode the corruption mask is drawn from a generator seeded
        with ``seed`` (so every evaluation of one batch's loss within a step, e.g. the adversarial
        regulariser's, sees the same ỹ_u); in evaluation mode the input is clean. The L2 term is
        on the clean parameters (never on a perturbation).
        """
        users, counts, negatives, (pos, items, offsets), values = self._inputs(batch)
        z = self.hidden(users, items, offsets, values, perturbation)
        decoder = self._table("decoder", perturbation)
        neg_rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts,
                                           output_size=len(negatives))
        x_pos = (z[pos] * decoder[items]).sum(-1) + self.decoder_bias[items]
        x_neg = (z[neg_rows] * decoder[negatives]).sum(-1) + self.decoder_bias[negatives]
        loss = F.softplus(-x_pos).sum() + F.softplus(x_neg).sum()
        if l2 and self.reg > 0:
            loss = loss + self._penalty(users, items, values, negatives)
        return loss

    def l2_penalty(self, batch) -> torch.Tensor:
        """The L2 part of :meth:`loss` (the same corruption mask from the batch's seed), apart so
        that an adversarial step can add it to its second backward."""
        users, _counts, negatives, (_pos, items, _offsets), values = self._inputs(batch)
        return self._penalty(users, items, values, negatives)

    def _inputs(self, batch):
        """A batch's users, negative counts and items, observed rows and input values ỹ."""
        users = batch[0].reshape(-1)
        device = users.device
        if len(batch) >= 3:
            counts, negatives = batch[1].reshape(-1), batch[2].reshape(-1)
        else:
            counts = torch.zeros(len(users), dtype=torch.long, device=device)
            negatives = torch.zeros(0, dtype=torch.long, device=device)
        gen = None
        noisy = self.training and self.corruption > 0
        if noisy and len(batch) >= 4:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(batch[3].reshape(-1)[0]))
        rows = self.rows(users)
        values = self.input_weights(len(rows[1]), gen, noisy, device)
        return users, counts, negatives, rows, values

    def _penalty(self, users, items, values, negatives) -> torch.Tensor:
        """reg/2 · (‖V_u‖² + ‖b‖² per user, ‖W_j‖² per kept input, ‖W'_i‖² + b'_i² per output)."""
        outputs = torch.cat([items, negatives])
        kept = items[values != 0]
        penalty = ((self.user[users] ** 2).sum() + len(users) * (self.encoder_bias ** 2).sum()
                   + (self.encoder[kept] ** 2).sum() + (self.decoder[outputs] ** 2).sum()
                   + (self.decoder_bias[outputs] ** 2).sum())
        return 0.5 * self.reg * penalty
