"""IRGAN's matrix-factorisation scorer (generator and discriminator alike) and its compiled CPU
discriminator epoch, in their own module so that importing the model class imports neither
PyTorch nor numba."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from numba import njit
from torch import nn

from advrec.training.bpr_kernel import sigmoid, softplus


class MFScorer(nn.Module):
    """A biased matrix-factorisation scorer s(u, i) = p_u · q_i + b_i (either player of IRGAN)."""

    def __init__(self, n_users: int, n_items: int, dim: int):
        super().__init__()
        self.user = nn.Parameter(torch.zeros(n_users, dim))
        self.item = nn.Parameter(torch.zeros(n_items, dim))
        self.bias = nn.Parameter(torch.zeros(n_items))

    def reset_uniform(self, delta: float, gen: torch.Generator) -> MFScorer:
        """Embeddings ~ U(−delta, delta), zero biases (the official ``initdelta`` init)."""
        with torch.no_grad():
            for table in (self.user, self.item):
                table.copy_(torch.rand(table.shape, generator=gen) * (2 * delta) - delta)
            self.bias.zero_()
        return self

    def all_scores(self, users: torch.Tensor) -> torch.Tensor:
        """``[len(users), n_items]`` scores of every item."""
        return self.user[users] @ self.item.T + self.bias

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """s(u, i) for broadcastable user and item index tensors."""
        return (self.user[users] * self.item[items]).sum(-1) + self.bias[items]

    @torch.no_grad()
    def logistic_pair_step(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                           lr: float, reg: float) -> torch.Tensor:
        """One SGD step of the discriminator on the examples (u, pos, 1) and (u, neg, 0).

        Loss: Σ_b [−log σ(s_u,pos) − log(1 − σ(s_u,neg))] + reg·Σ over the 2·B examples of
        (‖p_u‖² + ‖q_i‖² + b_i²). The gradient is written out (the scorer is bilinear) and
        scattered with ``index_add_``, so repeated rows accumulate exactly as autograd would.
        Returns the loss (a 0-d tensor, no host sync).
        """
        p, qi, qj, bi, bj = self.user[users], self.item[pos], self.item[neg], self.bias[pos], \
            self.bias[neg]
        s_pos = (p * qi).sum(-1) + bi
        s_neg = (p * qj).sum(-1) + bj
        l2 = 2 * (p * p).sum() + (qi * qi).sum() + (qj * qj).sum() + (bi * bi).sum() \
            + (bj * bj).sum()
        loss = F.softplus(-s_pos).sum() + F.softplus(s_neg).sum() + reg * l2
        d_pos = (torch.sigmoid(s_pos) - 1)[:, None]
        d_neg = torch.sigmoid(s_neg)[:, None]
        self.user.index_add_(0, users, d_pos * qi + d_neg * qj + 4 * reg * p, alpha=-lr)
        self.item.index_add_(0, pos, d_pos * p + 2 * reg * qi, alpha=-lr)
        self.item.index_add_(0, neg, d_neg * p + 2 * reg * qj, alpha=-lr)
        self.bias.index_add_(0, pos, d_pos[:, 0] + 2 * reg * bi, alpha=-lr)
        self.bias.index_add_(0, neg, d_neg[:, 0] + 2 * reg * bj, alpha=-lr)
        return loss

    @torch.no_grad()
    def bpr_step(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                 lr: float, reg: float) -> float:
        """One SGD step on Σ_b [softplus(−(s_ui − s_uj)) + reg/2·(‖p_u‖² + ‖q_i‖² + ‖q_j‖² + b_i²
        + b_j²)] (the official DNS loss with TensorFlow's ``l2_loss``); returns the loss."""
        p, qi, qj = self.user[users], self.item[pos], self.item[neg]
        bi, bj = self.bias[pos], self.bias[neg]
        x = (p * (qi - qj)).sum(-1) + bi - bj
        l2 = sum((t * t).sum() for t in (p, qi, qj, bi, bj))
        loss = F.softplus(-x).sum() + 0.5 * reg * l2
        d = -torch.sigmoid(-x)[:, None]
        self.user.index_add_(0, users, d * (qi - qj) + reg * p, alpha=-lr)
        self.item.index_add_(0, pos, d * p + reg * qi, alpha=-lr)
        self.item.index_add_(0, neg, -d * p + reg * qj, alpha=-lr)
        self.bias.index_add_(0, pos, d[:, 0] + reg * bi, alpha=-lr)
        self.bias.index_add_(0, neg, -d[:, 0] + reg * bj, alpha=-lr)
        return float(loss)

@njit(cache=True, nogil=True, fastmath=True)
def d_epoch_kernel(P, Q, bias, users, pos, neg, batch_size, lr, reg, gu, gi, gj, gb):
    """The CPU twin of :meth:`MFScorer.logistic_pair_step` over a whole (ordered) pass: each
    batch's gradients are computed from the pre-batch parameters, then applied. Returns the loss."""
    n, d = len(users), P.shape[1]
    total = 0.0
    for start in range(0, n, batch_size):
        end = min(start + batch_size, n)
        for t in range(start, end):
            u, i, j, a = users[t], pos[t], neg[t], t - start
            s_pos, s_neg, l2 = bias[i], bias[j], bias[i] ** 2 + bias[j] ** 2
            for k in range(d):
                s_pos += P[u, k] * Q[i, k]
                s_neg += P[u, k] * Q[j, k]
                l2 += 2 * P[u, k] ** 2 + Q[i, k] ** 2 + Q[j, k] ** 2
            total += softplus(-s_pos) + softplus(s_neg) + reg * l2
            dp, dn = sigmoid(s_pos) - 1.0, sigmoid(s_neg)
            for k in range(d):
                gu[a, k] = dp * Q[i, k] + dn * Q[j, k] + 4 * reg * P[u, k]
                gi[a, k] = dp * P[u, k] + 2 * reg * Q[i, k]
                gj[a, k] = dn * P[u, k] + 2 * reg * Q[j, k]
            gb[a, 0] = dp + 2 * reg * bias[i]
            gb[a, 1] = dn + 2 * reg * bias[j]
        for t in range(start, end):
            u, i, j, a = users[t], pos[t], neg[t], t - start
            for k in range(d):
                P[u, k] -= lr * gu[a, k]
                Q[i, k] -= lr * gi[a, k]
                Q[j, k] -= lr * gj[a, k]
            bias[i] -= lr * gb[a, 0]
            bias[j] -= lr * gb[a, 1]
    return total
