"""The VBPR network (He & McAuley, AAAI'16): latent and visual factors over fixed item content
features, in its own module so that importing the model class does not import PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VBPRNet(nn.Module):
    """ŷ_ui = β_i + γ_u·γ_i + θ_u·(E f_i) + β'·f_i with the BPR batch loss.

    Parameter blocks: ``"user"`` (γ_u), ``"item"`` (γ_i), ``"user_visual"`` (θ_u) and
    ``"item_content"`` (the feature matrix f, a fixed buffer: it is perturbed, never trained).
    Scores and loss accept a perturbation ``{block: Δ}`` of full-size tensors; the content rows of
    a batch are looked up sparsely, so the gradient w.r.t. a content Δ touches only those rows.
    """

    sparse_gradients = True
    block_names = ("user", "item", "user_visual", "item_content")

    def __init__(self, n_users: int, n_items: int, dim: int, visual_dim: int,
                 features: torch.Tensor, reg: float = 0.0, reg_visual: float = 0.0):
        super().__init__()
        n_features = features.shape[1]
        self.user = nn.Parameter(torch.empty(n_users, dim))
        self.item = nn.Parameter(torch.empty(n_items, dim))
        self.user_visual = nn.Parameter(torch.empty(n_users, visual_dim))
        self.item_bias = nn.Parameter(torch.zeros(n_items, 1))
        self.projection = nn.Parameter(torch.empty(n_features, visual_dim))  # E
        self.visual_bias = nn.Parameter(torch.zeros(n_features, 1))  # β'
        # a fresh, aligned copy: the same BLAS kernels (and bits) as before a save/load
        self.register_buffer("features", features.to(torch.float32)
                             .clone(memory_format=torch.contiguous_format))
        self.reg = reg
        self.reg_visual = reg_visual

    def blocks(self) -> dict[str, torch.Tensor]:
        return {"user": self.user, "item": self.item, "user_visual": self.user_visual,
                "item_content": self.features}

    def reset(self, std: float, generator: torch.Generator) -> VBPRNet:
        """Truncated-normal(0, std) factors and projection cut at 2 std; zero biases."""
        with torch.no_grad():
            for table in (self.user, self.item, self.user_visual, self.projection):
                nn.init.trunc_normal_(table, std=std, a=-2 * std, b=2 * std, generator=generator)
            self.item_bias.zero_()
            self.visual_bias.zero_()
        return self

    # ------------------------------------------------------------------ rows
    def _rows(self, block: str, idx: torch.Tensor, perturbation) -> torch.Tensor:
        table = self.blocks()[block]
        rows = F.embedding(idx, table, sparse=block != "item_content")
        if perturbation and block in perturbation:
            delta = perturbation[block]
            rows = rows + (F.embedding(idx, delta, sparse=True) if block == "item_content"
                           else delta[idx])
        return rows

    def _item_terms(self, items: torch.Tensor, perturbation) -> tuple[torch.Tensor, ...]:
        """γ_i, E f_i and β_i + β'·f_i of the given items."""
        f = self._rows("item_content", items, perturbation)
        bias = F.embedding(items, self.item_bias, sparse=True).squeeze(-1)
        return (self._rows("item", items, perturbation), f @ self.projection,
                bias + (f @ self.visual_bias).squeeze(-1))

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor,
                    perturbation: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """ŷ_ui for aligned (broadcastable) user and item index tensors, optionally perturbed."""
        gamma_i, visual_i, bias_i = self._item_terms(items, perturbation)
        gamma_u = self._rows("user", users, perturbation)
        theta_u = self._rows("user_visual", users, perturbation)
        return (gamma_u * gamma_i).sum(-1) + (theta_u * visual_i).sum(-1) + bias_i

    def loss(self, batch, perturbation: dict[str, torch.Tensor] | None = None,
             l2: bool = True) -> torch.Tensor:
        """Σ softplus(−(ŷ_ui − ŷ_uj)) + reg·(‖γ_u‖² + ‖θ_u‖² + ‖γ_i‖² + ‖γ_j‖² + β_i² + β_j²)
        over the batch's clean rows + reg_visual·(‖E‖² + ‖β'‖²).

        ŷ_ui − ŷ_uj is linear in the features, so the visual terms are computed once on
        f_i − f_j: one (batch × d) · (d × K'+1) product instead of two.
        """
        users, pos, neg = batch[0], batch[1], batch[2]
        gamma_u = self._rows("user", users, perturbation)
        theta_u = self._rows("user_visual", users, perturbation)
        gamma = self._rows("item", pos, perturbation) - self._rows("item", neg, perturbation)
        bias = (F.embedding(pos, self.item_bias, sparse=True)
                - F.embedding(neg, self.item_bias, sparse=True)).squeeze(-1)
        f = (self._rows("item_content", pos, perturbation)
             - self._rows("item_content", neg, perturbation))
        visual = f @ torch.cat([self.projection, self.visual_bias], 1)
        diff = ((gamma_u * gamma).sum(-1) + (theta_u * visual[:, :-1]).sum(-1)
                + visual[:, -1] + bias)
        loss = F.softplus(-diff).sum()
        if l2 and self.reg > 0:
            rows = (F.embedding(users, self.user, sparse=True),
                    F.embedding(users, self.user_visual, sparse=True),
                    F.embedding(pos, self.item, sparse=True),
                    F.embedding(neg, self.item, sparse=True),
                    F.embedding(pos, self.item_bias, sparse=True),
                    F.embedding(neg, self.item_bias, sparse=True))
            loss = loss + self.reg * sum((t * t).sum() for t in rows)
        if l2 and self.reg_visual > 0:
            loss = loss + self.reg_visual * ((self.projection ** 2).sum()
                                             + (self.visual_bias ** 2).sum())
        return loss

    def score(self, users: torch.Tensor, perturbation: dict[str, torch.Tensor] | None = None
              ) -> torch.Tensor:
        """Scores of every item for ``users``: one product per factor block."""
        p = perturbation or {}
        gamma_u, theta_u = self.user[users], self.user_visual[users]
        if "user" in p:
            gamma_u = gamma_u + p["user"][users]
        if "user_visual" in p:
            theta_u = theta_u + p["user_visual"][users]
        gamma_i = self.item + p["item"] if "item" in p else self.item
        f = self.features + p["item_content"] if "item_content" in p else self.features
        visual_i = f @ self.projection
        bias_i = self.item_bias.squeeze(-1) + (f @ self.visual_bias).squeeze(-1)
        return gamma_u @ gamma_i.T + theta_u @ visual_i.T + bias_i
