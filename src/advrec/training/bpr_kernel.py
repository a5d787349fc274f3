"""Compiled (Numba) BPR-MF epoch for the CPU: the same batch loss, gradient and optimiser step as
the PyTorch path, without autograd overhead (the peers' per-sample loops run at this speed).

Each mini-batch accumulates the gradient of the summed BPR loss (+ L2 on the batch's rows) into
per-row buffers, then applies Adagrad (TensorFlow/PyTorch semantics) or SGD to the touched rows
only, which equals a dense step since untouched rows have zero gradient. With ``adv_reg > 0`` it
adds APR's term λ·L_BPR(Θ + Δ), Δ = ε·g/‖g‖ per row from the batch's clean BPR gradient, held
constant (He et al., SIGIR'18).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

ADAGRAD, SGD = 0, 1


@njit(cache=True, nogil=True, fastmath=True)
def _softplus(x: float) -> float:
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(cache=True, nogil=True, fastmath=True)
def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True, nogil=True, fastmath=True)
def l2_direction_rows(grad, rows, n_rows, eps, out):
    """out[r] = eps · grad[r] / ‖grad[r]‖ for the listed rows (zero rows stay zero)."""
    d = grad.shape[1]
    for a in range(n_rows):
        r = rows[a]
        s = 0.0
        for k in range(d):
            s += grad[r, k] * grad[r, k]
        scale = eps / math.sqrt(s) if s > 0.0 else 0.0
        for k in range(d):
            out[r, k] = grad[r, k] * scale


@njit(cache=True, nogil=True, fastmath=True)
def _mark(row, mark, rows, n):
    if not mark[row]:
        mark[row] = True
        rows[n] = row
        return n + 1
    return n


@njit(cache=True, nogil=True, fastmath=True)
def _apply(param, grad, acc, count, rows, n_rows, lr, reg, opt, mark):
    d = param.shape[1]
    lr32 = np.float32(lr)
    tiny = np.float32(1e-10)
    for a in range(n_rows):
        r = rows[a]
        c = np.float32(2.0 * reg * count[r])
        p = param[r]
        g = grad[r]
        if c != 0:
            for k in range(d):
                g[k] += c * p[k]
        if opt == ADAGRAD:
            s = acc[r]
            for k in range(d):
                gk = g[k]
                sk = s[k] + gk * gk
                s[k] = sk
                p[k] -= lr32 * gk / (np.sqrt(sk) + tiny)
                g[k] = 0
        else:
            for k in range(d):
                p[k] -= lr32 * g[k]
                g[k] = 0
        count[r] = 0
        mark[r] = False


@njit(cache=True, nogil=True, fastmath=True)
def bpr_epoch(
    P, Q, users, pos, neg, batch_size, lr, reg, opt, acc_p, acc_q, adv_eps, adv_reg,
    adv_user, adv_item, work
):
    """One epoch over the given triples in order; returns the summed clean loss (BPR + L2)."""
    g_p, g_q, dp, dq, cnt_u, cnt_i, mark_u, mark_i, rows_u, rows_i = work
    n, d = len(users), P.shape[1]
    total = 0.0
    for start in range(0, n, batch_size):
        end = min(start + batch_size, n)
        nu = 0
        ni = 0
        for t in range(start, end):
            u, i, j = users[t], pos[t], neg[t]
            nu = _mark(u, mark_u, rows_u, nu)
            ni = _mark(i, mark_i, rows_i, ni)
            ni = _mark(j, mark_i, rows_i, ni)
            cnt_u[u] += 1
            cnt_i[i] += 1
            cnt_i[j] += 1
            x = 0.0
            sq = 0.0
            for k in range(d):
                x += P[u, k] * (Q[i, k] - Q[j, k])
                sq += P[u, k] * P[u, k] + Q[i, k] * Q[i, k] + Q[j, k] * Q[j, k]
            total += _softplus(-x) + reg * sq
            g = -_sigmoid(-x)
            for k in range(d):
                pu = P[u, k]
                g_p[u, k] += g * (Q[i, k] - Q[j, k])
                g_q[i, k] += g * pu
                g_q[j, k] -= g * pu
        if adv_reg > 0.0:
            # FGSM direction from the clean BPR gradient of this batch (Δ is a constant).
            l2_direction_rows(g_p, rows_u, nu, adv_eps if adv_user else 0.0, dp)
            l2_direction_rows(g_q, rows_i, ni, adv_eps if adv_item else 0.0, dq)
            for t in range(start, end):
                u, i, j = users[t], pos[t], neg[t]
                x = 0.0
                for k in range(d):
                    x += (P[u, k] + dp[u, k]) * ((Q[i, k] + dq[i, k]) - (Q[j, k] + dq[j, k]))
                g = -adv_reg * _sigmoid(-x)
                for k in range(d):
                    pu = P[u, k] + dp[u, k]
                    g_p[u, k] += g * ((Q[i, k] + dq[i, k]) - (Q[j, k] + dq[j, k]))
                    g_q[i, k] += g * pu
                    g_q[j, k] -= g * pu
        _apply(P, g_p, acc_p, cnt_u, rows_u, nu, lr, reg, opt, mark_u)
        _apply(Q, g_q, acc_q, cnt_i, rows_i, ni, lr, reg, opt, mark_i)
    return total


def make_workspace(n_users: int, n_items: int, dim: int, batch_size: int, adversarial: bool):
    """Scratch buffers reused by every epoch (gradients, perturbations, touched-row lists)."""
    f32 = np.float32
    adv_shape_u = (n_users, dim) if adversarial else (1, dim)
    adv_shape_i = (n_items, dim) if adversarial else (1, dim)
    return (
        np.zeros((n_users, dim), f32),
        np.zeros((n_items, dim), f32),
        np.zeros(adv_shape_u, f32),
        np.zeros(adv_shape_i, f32),
        np.zeros(n_users, np.int64),
        np.zeros(n_items, np.int64),
        np.zeros(n_users, np.bool_),
        np.zeros(n_items, np.bool_),
        np.zeros(min(n_users, batch_size), np.int64),
        np.zeros(min(n_items, 2 * batch_size), np.int64),
    )
