"""The NCF networks (He, Liao, Zhang, Nie, Hu, Chua. *Neural Collaborative Filtering.* WWW 2017):
GMF, MLP and their fusion NeuMF, in their own module so that importing the model classes does
not import PyTorch. Initialisation as the official Keras code: embeddings normal(0, 0.01), hidden
layers Glorot-uniform, the prediction layer LeCun-uniform, zero biases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("neumf", "gmf", "mlp")
PAIRS_PER_CHUNK = 1 << 18  # scoring: user × item pairs through the towers at a time


class NCFNet(nn.Module):
    """GMF (p_u ⊙ q_i), MLP (a ReLU tower over [p_u, q_i]) or both, fused by one linear
    prediction layer into a logit. Perturbable blocks: the embedding tables of the towers the
    mode has (``gmf_user``, ``gmf_item``, ``mlp_user``, ``mlp_item``)."""

    def __init__(self, n_users: int, n_items: int, mode: str, mf_dim: int,
                 layers: tuple[int, ...], reg: float = 0.0):
        super().__init__()
        self.mode, self.reg, self.n_items = mode, reg, n_items
        width = 0
        if mode in ("neumf", "gmf"):
            self.gmf_user = nn.Parameter(torch.empty(n_users, mf_dim))
            self.gmf_item = nn.Parameter(torch.empty(n_items, mf_dim))
            width += mf_dim
        if mode in ("neumf", "mlp"):
            half = layers[0] // 2
            self.mlp_user = nn.Parameter(torch.empty(n_users, half))
            self.mlp_item = nn.Parameter(torch.empty(n_items, half))
            self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in zip(
                (2 * half, *layers[1:-1]), layers[1:], strict=True))
            width += layers[-1] if len(layers) > 1 else 2 * half
        self.predict = nn.Linear(width, 1)

    def reset(self, gen: torch.Generator) -> NCFNet:
        """The official code's initialisation, seeded."""
        with torch.no_grad():
            for table in self.blocks().values():
                table.normal_(0.0, 0.01, generator=gen)
            for layer in getattr(self, "tower", ()):
                bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.zero_()
            bound = math.sqrt(3.0 / self.predict.in_features)
            self.predict.weight.uniform_(-bound, bound, generator=gen)
            self.predict.bias.zero_()
        return self

    def blocks(self) -> dict[str, torch.Tensor]:
        names = {"neumf": ("gmf_user", "gmf_item", "mlp_user", "mlp_item"),
                 "gmf": ("gmf_user", "gmf_item"), "mlp": ("mlp_user", "mlp_item")}[self.mode]
        return {n: getattr(self, n) for n in names}

    def _rows(self, name: str, idx: torch.Tensor, perturbation) -> torch.Tensor:
        rows = getattr(self, name)[idx]
        if perturbation and name in perturbation:
            rows = rows + perturbation[name][idx]
        return rows

    def logits(self, users: torch.Tensor, items: torch.Tensor,
               perturbation=None) -> torch.Tensor:
        """The logit of each (broadcast) user-item pair."""
        users, items = torch.broadcast_tensors(users, items)
        parts = []
        if self.mode in ("neumf", "gmf"):
            parts.append(self._rows("gmf_user", users, perturbation)
                         * self._rows("gmf_item", items, perturbation))
        if self.mode in ("neumf", "mlp"):
            h = torch.cat([self._rows("mlp_user", users, perturbation),
                           self._rows("mlp_item", items, perturbation)], -1)
            for layer in self.tower:
                h = F.relu(layer(h))
            parts.append(h)
        return self.predict(torch.cat(parts, -1)).squeeze(-1)

    def pair_scores(self, users, items, perturbation=None) -> torch.Tensor:
        """The logit of each pair (the attacks' and the models' common name)."""
        return self.logits(users, items, perturbation)

    def loss(self, batch, perturbation=None, l2: bool = True) -> torch.Tensor:
        """Σ binary cross-entropy of the batch's (user, item, label) instances (the code's log
        loss, summed) + reg · Σ‖embedding rows of the batch‖²."""
        users, items, labels = batch[0], batch[1], batch[2]
        loss = F.binary_cross_entropy_with_logits(self.logits(users, items, perturbation),
                                                  labels.float(), reduction="sum")
        if l2 and self.reg > 0:
            loss = loss + self.l2_penalty(batch)
        return loss

    def l2_penalty(self, batch) -> torch.Tensor:
        """The loss's L2 term alone: reg · Σ‖embedding rows of the batch‖²
        (``loss(batch) = loss(batch, l2=False) + l2_penalty(batch)``)."""
        users, items = batch[0], batch[1]
        rows = [t[users if n.endswith("user") else items] for n, t in self.blocks().items()]
        return self.reg * sum((r * r).sum() for r in rows)

    def score(self, users: torch.Tensor, perturbation=None) -> torch.Tensor:
        """Logits of every item for ``users``, in chunks of at most PAIRS_PER_CHUNK pairs (the
        towers' memory stays bounded whatever the number of users × items)."""
        n_items = self.n_items
        items = torch.arange(n_items, device=users.device)
        step = max(1, PAIRS_PER_CHUNK // max(n_items, 1))
        out = [self.logits(users[s:s + step, None], items[None, :], perturbation)
               for s in range(0, len(users), step)]
        return torch.cat(out) if out else torch.empty(0, n_items, device=users.device)
