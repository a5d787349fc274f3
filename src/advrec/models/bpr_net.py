"""The BPR-MF network: user and item embedding tables and the BPR batch loss, in its own module
so that importing the model class (the registry, the CLI, experiment checks) does not import
PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BPRNet(nn.Module):
    """User and item embedding tables P, Q with ŷ_ui = p_u · q_i and the BPR batch loss.

    Its perturbable parameter blocks are ``"user"`` (P) and ``"item"`` (Q); scores and loss can be
    computed under a perturbation ``{block: Δ}`` (full-size tensors) without touching P and Q.
    """

    sparse_gradients = True
    block_names = ("user", "item")

    def __init__(self, n_users: int, n_items: int, dim: int, reg: float = 0.0):
        super().__init__()
        self.user = nn.Parameter(torch.empty(n_users, dim))
        self.item = nn.Parameter(torch.empty(n_items, dim))
        self.reg = reg

    def blocks(self) -> dict[str, torch.Tensor]:
        return {"user": self.user, "item": self.item}

    def _rows(self, block: str, idx: torch.Tensor, perturbation) -> torch.Tensor:
        table = self.user if block == "user" else self.item
        rows = F.embedding(idx, table, sparse=True)
        if perturbation and block in perturbation:
            rows = rows + perturbation[block][idx]
        return rows

    def loss(self, batch, perturbation: dict[str, torch.Tensor] | None = None,
             l2: bool = True) -> torch.Tensor:
        """Σ softplus(−(ŷ_ui − ŷ_uj)) over the batch + reg·Σ(‖p_u‖² + ‖q_i‖² + ‖q_j‖²).

        The L2 term is on the batch's clean rows (the APR code puts it on the whole tables; with the
        default reg = 0 the two agree).
        """
        users, pos, neg = batch[0], batch[1], batch[2]
        p = self._rows("user", users, perturbation)
        # one gather for positives and negatives: one sparse gradient on the item table (two
        # would be summed as sparse tensors at every step)
        qi, qj = self._rows("item", torch.cat([pos, neg]), perturbation).split(len(pos))
        loss = F.softplus(-(p * (qi - qj)).sum(-1)).sum()
        if l2 and self.reg > 0:
            clean = (
                F.embedding(users, self.user, sparse=True),
                F.embedding(pos, self.item, sparse=True),
                F.embedding(neg, self.item, sparse=True),
            )
            loss = loss + self.reg * sum((t * t).sum() for t in clean)
        return loss

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor,
                    perturbation: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """ŷ_ui for aligned (broadcastable) user and item index tensors, optionally perturbed."""
        return (self._rows("user", users, perturbation) *
                self._rows("item", items, perturbation)).sum(-1)

    def score(
        self, users: torch.Tensor, perturbation: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        p, q = self.user[users], self.item
        if perturbation:
            if "user" in perturbation:
                p = p + perturbation["user"][users]
            if "item" in perturbation:
                q = q + perturbation["item"]
        return p @ q.T
