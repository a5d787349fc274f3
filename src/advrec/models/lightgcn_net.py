"""LightGCN's network (He et al., SIGIR'20): ego embeddings, the normalised user-item graph and
layer-mean propagation, in its own module so that importing the model class does not import
PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn


def normalized_adjacency(csr: sp.csr_matrix) -> torch.Tensor:
    """Â = D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [Rᵀ, 0]] as a sparse CSR tensor
    over n_users + n_items nodes (isolated nodes keep zero rows); never a dense matrix."""
    n_users, n_items = csr.shape
    coo = csr.tocoo()
    rows = np.concatenate([coo.row, coo.col + n_users])
    cols = np.concatenate([coo.col + n_users, coo.row])
    degree = np.bincount(rows, minlength=n_users + n_items).astype(np.float64)
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    values = inv_sqrt[rows] * inv_sqrt[cols]
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    graph = torch.sparse_coo_tensor(index, torch.from_numpy(values.astype(np.float32)),
                                    (n_users + n_items,) * 2, check_invariants=False)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR @ dense is stable
        warnings.simplefilter("ignore", UserWarning)
        return graph.coalesce().to_sparse_csr()


class _Propagate(torch.autograd.Function):
    """Â X for a symmetric sparse Â: the backward pass is Â G again (no transpose is built)."""

    @staticmethod
    def forward(ctx, graph: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        return graph @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.graph @ grad


class LightGCNNet(nn.Module):
    """Ego embeddings E⁰ (the perturbable blocks ``"user"`` and ``"item"``), propagated K times
    over Â; the final embedding is the mean of layers 0..K (α_k = 1/(K+1), as in the paper)."""

    block_names = ("user", "item")

    def __init__(self, n_users: int, n_items: int, dim: int, n_layers: int, reg: float,
                 graph: torch.Tensor):
        super().__init__()
        self.n_users, self.n_layers, self.reg = n_users, n_layers, reg
        self.user = nn.Parameter(torch.empty(n_users, dim))
        self.item = nn.Parameter(torch.empty(n_items, dim))
        self.register_buffer("graph", graph, persistent=False)
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def blocks(self) -> dict[str, torch.Tensor]:
        return {"user": self.user, "item": self.item}

    def _ego(self, perturbation) -> tuple[torch.Tensor, torch.Tensor]:
        user, item = self.user, self.item
        if perturbation:
            user = user + perturbation["user"] if "user" in perturbation else user
            item = item + perturbation["item"] if "item" in perturbation else item
        return user, item

    def propagate(self, perturbation=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item embeddings (K products of the sparse Â with an N × d matrix)."""
        if not perturbation and not torch.is_grad_enabled():  # scoring: cached per weights
            key = (self.user._version, self.item._version, self.user.data_ptr(),
                   self.item.data_ptr(), self.user.device)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1], self._cache[2]
        user, item = self._ego(perturbation)
        layer = torch.cat([user, item])
        total = layer
        for _ in range(self.n_layers):
            layer = _Propagate.apply(self.graph, layer)
            total = total + layer
        final = total / (self.n_layers + 1)
        users, items = final[: self.n_users], final[self.n_users:]
        if not perturbation and not torch.is_grad_enabled():
            self._cache = (key, users, items)
        return users, items

    def loss(self, batch, perturbation=None, l2: bool = True) -> torch.Tensor:
        """Σ softplus(−(ŷ_ui − ŷ_uj)) + reg/2 · Σ(‖e⁰_u‖² + ‖e⁰_i‖² + ‖e⁰_j‖²) over the batch: the
        official code's mean loss times the batch size (same minimiser; L2 on the clean ego
        embeddings of the batch)."""
        users, pos, neg = batch[0], batch[1], batch[2]
        u_all, i_all = self.propagate(perturbation)
        u, i, j = u_all[users], i_all[pos], i_all[neg]
        loss = F.softplus(-((u * i).sum(-1) - (u * j).sum(-1))).sum()
        if l2 and self.reg > 0:
            loss = loss + self.l2_penalty(batch)
        return loss

    def l2_penalty(self, batch) -> torch.Tensor:
        """The loss's L2 term alone: reg/2 · Σ(‖e⁰_u‖² + ‖e⁰_i‖² + ‖e⁰_j‖²) over the batch
        (``loss(batch) = loss(batch, l2=False) + l2_penalty(batch)``)."""
        users, pos, neg = batch[0], batch[1], batch[2]
        ego = (self.user[users], self.item[pos], self.item[neg])
        return 0.5 * self.reg * sum((t * t).sum() for t in ego)

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor,
                    perturbation=None) -> torch.Tensor:
        u_all, i_all = self.propagate(perturbation)
        return (u_all[users] * i_all[items]).sum(-1)

    def score(self, users: torch.Tensor, perturbation=None) -> torch.Tensor:
        u_all, i_all = self.propagate(perturbation)
        return u_all[users] @ i_all.T
