"""The networks of Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman, Jebara, WWW'18), in their own
module so that importing the model classes does not import PyTorch.

The layout follows the official notebook (dawenl/vae_cf, ``VAE_ML20M_WWW2018.ipynb``): the
inference (encoder) MLP ``q_dims = [n_items, *hidden_dims, latent_dim]`` whose last layer has
2 × ``latent_dim`` outputs (mean and log-variance) for the VAE, the generative (decoder) MLP
``p_dims = [latent_dim, *reversed(hidden_dims), n_items]``, tanh between layers, logits out.
A user's input is read from the training CSR (kept on the device as two index tensors) one
batch at a time, as the list of its non-zeros: no dense users × items matrix is ever built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def anneal_beta(step: int, total_anneal_steps: int, anneal_cap: float) -> float:
    """β after ``step`` optimiser updates, as the notebook's training loop computes it:
    ``min(anneal_cap, step / total_anneal_steps)``, or ``anneal_cap`` when
    ``total_anneal_steps`` is 0."""
    if total_anneal_steps > 0:
        return min(float(anneal_cap), float(step) / float(total_anneal_steps))
    return float(anneal_cap)


def _xavier_uniform(weight: torch.Tensor, fan_in: int, fan_out: int,
                    gen: torch.Generator) -> None:
    """Glorot uniform (TF's ``xavier_initializer``): U(±sqrt(6 / (fan_in + fan_out)))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    weight.uniform_(-limit, limit, generator=gen)


def _truncated_normal(bias: torch.Tensor, std: float, gen: torch.Generator) -> None:
    """TF's ``truncated_normal_initializer(stddev=std)``: N(0, std²) cut at ±2 std (by the
    inverse CDF of a uniform draw, so one draw per entry)."""
    cut = math.erf(2.0 / math.sqrt(2.0))  # u ∈ [Φ(−2), Φ(2)] mapped to 2u − 1 ∈ [−cut, cut]
    bias.uniform_(-cut, cut, generator=gen)
    bias.erfinv_().mul_(std * math.sqrt(2.0)).clamp_(-2.0 * std, 2.0 * std)


class MultVAENet(nn.Module):
    """Mult-VAE (``variational=True``) or Mult-DAE (``False``) over a fixed training CSR.

    Parameters (weights in the notebook's ``x @ W`` layout, except the two blocks, which are
    item-major so that a block's row is one item's vector): ``encoder`` [n_items, d₁] (the
    first encoder weight, ``x @ encoder``) with ``encoder_bias``; ``q_weights``/``q_biases`` the
    further encoder layers; ``p_weights``/``p_biases`` the decoder layers but the last;
    ``decoder`` [n_items, d_last] (the last decoder weight, ``h @ decoderᵀ``) with
    ``decoder_bias``. The perturbable blocks are ``"encoder"`` and ``"decoder"``.

    ``anneal_step`` counts optimiser updates: the Trainer calls :meth:`after_step` once after
    each (so β is the same for every loss evaluation of one step, however many backward passes
    the adversarial regulariser makes); it travels in ``state_dict()`` as the module's extra
    state, so the Trainer's checkpoints restore it.
    """

    block_names = ("encoder", "decoder")

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_items: int,
                 hidden_dims: Sequence[int] = (600,), latent_dim: int = 200,
                 dropout: float = 0.5, variational: bool = True, reg: float = 0.0,
                 total_anneal_steps: int = 200_000, anneal_cap: float = 0.2):
        super().__init__()
        self.n_items = int(n_items)
        self.latent_dim = int(latent_dim)
        self.dropout = float(dropout)
        self.variational = bool(variational)
        self.reg = float(reg)  # read by the adversarial regulariser (L2 on: recompute without)
        self.total_anneal_steps = int(total_anneal_steps)
        self.anneal_cap = float(anneal_cap)
        self.anneal_step = 0
        hidden = [int(d) for d in hidden_dims]
        q_dims = [self.n_items, *hidden, self.latent_dim * (2 if self.variational else 1)]
        p_dims = [self.latent_dim, *reversed(hidden), self.n_items]
        self.q_dims, self.p_dims = q_dims, p_dims
        self.encoder = nn.Parameter(torch.empty(q_dims[0], q_dims[1]))
        self.encoder_bias = nn.Parameter(torch.empty(q_dims[1]))
        self.q_weights = nn.ParameterList(
            [nn.Parameter(torch.empty(a, b)) for a, b in pairwise(q_dims[1:])])
        self.q_biases = nn.ParameterList([nn.Parameter(torch.empty(b)) for b in q_dims[2:]])
        self.p_weights = nn.ParameterList(
            [nn.Parameter(torch.empty(a, b)) for a, b in pairwise(p_dims[:-1])])
        self.p_biases = nn.ParameterList([nn.Parameter(torch.empty(b)) for b in p_dims[1:-1]])
        self.decoder = nn.Parameter(torch.empty(p_dims[-1], p_dims[-2]))
        self.decoder_bias = nn.Parameter(torch.empty(p_dims[-1]))
        self.register_buffer("indptr", torch.tensor(np.asarray(indptr), dtype=torch.int64),
                             persistent=False)
        self.register_buffer("indices", torch.tensor(np.asarray(indices), dtype=torch.int64),
                             persistent=False)

    # ------------------------------------------------------------------ set-up, state
    def initialize(self, gen: torch.Generator) -> None:
        """Weights Glorot-uniform, biases truncated N(0, 0.001²), as the notebook."""
        with torch.no_grad():
            for w, b, (d_in, d_out) in zip(self._weights(), self._biases(), self._layer_dims(),
                                           strict=True):
                _xavier_uniform(w, d_in, d_out, gen)
                _truncated_normal(b, 0.001, gen)

    def _weights(self) -> list[nn.Parameter]:
        return [self.encoder, *self.q_weights, *self.p_weights, self.decoder]

    def _biases(self) -> list[nn.Parameter]:
        return [self.encoder_bias, *self.q_biases, *self.p_biases, self.decoder_bias]

    def _layer_dims(self) -> list[tuple[int, int]]:
        q, p = self.q_dims, self.p_dims
        return [*pairwise(q), *pairwise(p)]

    def blocks(self) -> dict[str, torch.Tensor]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def after_step(self) -> None:
        """One optimiser update done (the Trainer's hook): advance β's schedule."""
        if self.training:
            self.anneal_step += 1

    def beta(self) -> float:
        """The KL weight of the current step (0 for the DAE, which has no KL term)."""
        if not self.variational:
            return 0.0
        return anneal_beta(self.anneal_step, self.total_anneal_steps, self.anneal_cap)

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor([self.anneal_step], dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.anneal_step = int(torch.as_tensor(state).reshape(-1)[0])

    # ------------------------------------------------------------------ forward pieces
    def _input(self, users: torch.Tensor, gen: torch.Generator | None, noisy: bool
               ) -> tuple[torch.Tensor, ...]:
        """The users' click vectors as (row, column, value, row offsets) of their non-zeros:
        L2-normalised, then (``noisy``) dropped out with rate ``dropout`` and rescaled by
        1/(1 − dropout), as the notebook's ``dropout(l2_normalize(x))`` (zeros stay zero)."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        offsets = torch.cumsum(lengths, 0) - lengths
        pos = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths,
                                      output_size=total)
        first = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
        cols = self.indices[first + torch.arange(total, device=users.device)]
        # binary rows: x / ‖x‖ = 1 / sqrt(n_u) (TF's l2_normalize: rsqrt(max(Σx², 1e-12)))
        values = torch.rsqrt(lengths.to(self.encoder.dtype).clamp_min(1e-12))[pos]
        if noisy and self.dropout > 0:
            keep = torch.rand(total, generator=gen, device=users.device,
                              dtype=values.dtype) >= self.dropout
            values = values * keep / (1.0 - self.dropout)
        return pos, cols, values, offsets

    def _encode(self, inputs: tuple[torch.Tensor, ...], perturbation) -> torch.Tensor:
        """The encoder's last pre-activation: [B, 2K] (mean | log-variance) for the VAE,
        [B, K] for the DAE. The first layer x @ encoder is a weighted sum of the rows of the
        user's items (``embedding_bag``), never a dense product."""
        _pos, cols, values, offsets = inputs
        encoder = self.encoder
        if perturbation and "encoder" in perturbation:
            encoder = encoder + perturbation["encoder"]
        h = F.embedding_bag(cols, encoder, offsets, mode="sum",
                            per_sample_weights=values) + self.encoder_bias
        for w, b in zip(self.q_weights, self.q_biases, strict=True):
            h = torch.tanh(h) @ w + b
        return h

    def _hidden(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's input to its last layer (tanh of every earlier layer)."""
        h = z
        for w, b in zip(self.p_weights, self.p_biases, strict=True):
            h = torch.tanh(h @ w + b)
        return h

    def _decoder(self, perturbation) -> torch.Tensor:
        if perturbation and "decoder" in perturbation:
            return self.decoder + perturbation["decoder"]
        return self.decoder

    def _latent(self, code: torch.Tensor) -> torch.Tensor:
        """The deterministic latent of a code: the mean for the VAE, tanh(code) for the DAE
        (whose notebook forward pass puts tanh after every layer but the output)."""
        return code[:, : self.latent_dim] if self.variational else torch.tanh(code)

    def last_hidden(self, users: torch.Tensor, perturbation=None) -> torch.Tensor:
        """The decoder's last hidden layer for ``users`` at evaluation: no dropout, z = μ."""
        code = self._encode(self._input(users, None, noisy=False), perturbation)
        return self._hidden(self._latent(code))

    # ------------------------------------------------------------------ scores
    def score(self, users: torch.Tensor, perturbation=None) -> torch.Tensor:
        """Logits of every item for ``users`` (evaluation: no dropout, the mean for the VAE)."""
        h = self.last_hidden(users, perturbation)
        return torch.addmm(self.decoder_bias, h, self._decoder(perturbation).T)

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor,
                    perturbation=None) -> torch.Tensor:
        """Logits of broadcastable (user, item) id tensors: each distinct user is encoded once;
        the pairs are then either dotted one by one or read from the small matrix of distinct
        users × distinct items, whichever takes less memory."""
        shape = torch.broadcast_shapes(users.shape, items.shape)
        uniq_u, inv_u = torch.unique(users, return_inverse=True)
        h = self.last_hidden(uniq_u, perturbation)
        decoder = self._decoder(perturbation)
        uniq_i, inv_i = torch.unique(items, return_inverse=True)
        if len(uniq_u) * len(uniq_i) <= math.prod(shape) * h.shape[1]:
            table = torch.addmm(self.decoder_bias[uniq_i], h, decoder[uniq_i].T)
            return table[inv_u.expand(shape), inv_i.expand(shape)]
        return (h[inv_u] * decoder[items]).sum(-1) + self.decoder_bias[items]

    # ------------------------------------------------------------------ loss
    def loss(self, batch, perturbation=None, l2: bool = True) -> torch.Tensor:
        """The batch's summed negative (β-)ELBO: Σ_u −Σ_i x_ui log softmax(f(z_u))_i
        + β·Σ_u KL(q(z|x_u) ‖ N(0, I)) (VAE only), + B·reg·Σ‖W‖² over every weight matrix
        (not the biases) when ``l2`` (B the batch's users; the notebook's per-user mean loss
        ``neg_ll + β·KL + 2·reg_var`` times B).

        ``batch``: (users,) or (users, seed); in training mode the dropout mask and the
        reparameterisation noise are drawn from a generator seeded with ``seed`` (so every
        evaluation of one batch's loss within a step, e.g. the adversarial regulariser's, sees
        the same noise); in evaluation mode there is no noise (no dropout, z = μ).
        """
        users = batch[0].reshape(-1)
        noisy = self.training
        gen = None
        if noisy and len(batch) > 1:
            gen = torch.Generator(device=users.device)
            gen.manual_seed(int(batch[1].reshape(-1)[0]))
        inputs = self._input(users, gen, noisy)
        code = self._encode(inputs, perturbation)
        kl = None
        if self.variational:
            mu, logvar = code[:, : self.latent_dim], code[:, self.latent_dim:]
            z = mu
            if noisy:
                eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
                z = mu + eps * torch.exp(0.5 * logvar)
            kl = 0.5 * (-logvar + torch.exp(logvar) + mu * mu - 1.0).sum()
        else:
            z = torch.tanh(code)
        h = self._hidden(z)
        logits = torch.addmm(self.decoder_bias, h, self._decoder(perturbation).T)
        log_probs = F.log_softmax(logits, dim=1)
        pos, cols = inputs[0], inputs[1]
        loss = -log_probs[pos, cols].sum()  # Σ_i x_ui log π_ui with binary x (the raw clicks)
        if kl is not None:
            loss = loss + self.beta() * kl
        if l2 and self.reg > 0:
            loss = loss + self.l2_penalty(batch)
        return loss

    def l2_penalty(self, batch) -> torch.Tensor:
        """B·reg·Σ‖W‖² over every weight matrix (B the batch's users): the L2 part of
        :meth:`loss`, apart so that an adversarial step can add it to its second backward."""
        n = batch[0].reshape(-1).shape[0]
        return n * self.reg * sum((w * w).sum() for w in self._weights())
