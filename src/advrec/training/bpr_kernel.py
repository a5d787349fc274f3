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
def softplus(x: float) -> float:
    if x > 0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(cache=True, nogil=True, fastmath=True)
def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True, nogil=True, fastmath=True)
def bpr_terms(x):
    """(softplus(-x), -sigmoid(-x)): the BPR loss of margin ``x`` and its derivative, from one
    exp(-|x|) (the hot loop's only transcendental besides log1p)."""
    e = math.exp(-abs(x))
    if x >= 0:
        return math.log1p(e), -e / (1 + e)
    return math.log1p(e) - x, -1 / (1 + e)


@njit(cache=True, nogil=True, fastmath=True)
def _slot(row, slots, rows, n):
    """The batch-local slot of ``row`` (assigned on first sight); returns (slot, new count)."""
    s = slots[row]
    if s < 0:
        s = n
        slots[row] = n
        rows[n] = row
        n += 1
    return s, n


@njit(cache=True, nogil=True, fastmath=True)
def _apply(param, grad, acc, count, rows, n_rows, lr, reg, opt, slots):
    """Optimiser step on the touched rows; resets the batch-local buffers."""
    d = param.shape[1]
    lr32 = np.float32(lr)
    # acc**-0.5 (vectorised reciprocal square root) instead of 1/(sqrt(acc) + 1e-10): equal to
    # float32 precision for acc > 1e-20, and a zero gradient on a zero accumulator still moves
    # nothing. The division form does not vectorise and costs as much as the whole gradient.
    floor = np.float32(1e-20)
    power = np.float32(-0.5)
    for a in range(n_rows):
        r = rows[a]
        c = np.float32(2.0 * reg * count[a])
        p = param[r]
        g = grad[a]
        if c != 0:
            for k in range(d):
                g[k] += c * p[k]
        if opt == ADAGRAD:
            s = acc[r]
            for k in range(d):
                gk = g[k]
                sk = s[k] + gk * gk
                s[k] = sk
                p[k] -= lr32 * gk * max(sk, floor) ** power
                g[k] = 0
        else:
            for k in range(d):
                p[k] -= lr32 * g[k]
                g[k] = 0
        count[a] = 0
        slots[r] = -1


@njit(cache=True, nogil=True, fastmath=True)
def perturbed_rows(table, grad, rows, n_rows, eps, out):
    """out[a] = table[rows[a]] + eps · grad[a] / ‖grad[a]‖: the batch's perturbed rows, built
    once per distinct row (a zero gradient or eps = 0 leaves the clean row)."""
    d = grad.shape[1]
    e = np.float32(eps)
    for a in range(n_rows):
        s = np.float32(0.0)
        for k in range(d):
            s += grad[a, k] * grad[a, k]
        scale = e / np.sqrt(s) if s > 0 else np.float32(0.0)
        r = rows[a]
        for k in range(d):
            out[a, k] = table[r, k] + grad[a, k] * scale


@njit(cache=True, nogil=True, fastmath=True)
def _adversarial_pass(P, Q, users, pos, neg, start, end, nu, ni, adv_eps, adv_reg, adv_user,
                      adv_item, work):
    """APR's term for one batch: λ·∇L_BPR(Θ + Δ) added to the batch gradient, Δ = FGSM of the
    batch's clean gradient (held constant). The perturbed rows live in batch-local slots, so the
    pass reads only cache-resident buffers and costs one margin and one scatter per triple."""
    g_p, g_q, tp, tq = work[0], work[1], work[2], work[3]
    rows_u, rows_i, trip, diff = work[8], work[9], work[10], work[11]
    d = P.shape[1]
    perturbed_rows(P, g_p, rows_u, nu, adv_eps if adv_user else 0.0, tp)
    perturbed_rows(Q, g_q, rows_i, ni, adv_eps if adv_item else 0.0, tq)
    lam = np.float32(adv_reg)
    for t in range(start, end):
        b = t - start
        su, si, sj = trip[b, 0], trip[b, 1], trip[b, 2]
        pu, qi, qj = tp[su], tq[si], tq[sj]
        x = np.float32(0.0)
        for k in range(d):
            dk = qi[k] - qj[k]
            diff[k] = dk
            x += pu[k] * dk
        g = lam * np.float32(bpr_terms(x)[1])
        # the clean pass's scatter, written out again: as a shared helper numba does not
        # vectorise it (measured 25-40 % slower epochs)
        gp, gi, gj = g_p[su], g_q[si], g_q[sj]
        for k in range(d):
            gp[k] += g * diff[k]
        for k in range(d):
            gi[k] += g * pu[k]
        for k in range(d):
            gj[k] -= g * pu[k]


@njit(cache=True, nogil=True, fastmath=True)
def bpr_epoch(
    P, Q, users, pos, neg, batch_size, lr, reg, opt, acc_p, acc_q, adv_eps, adv_reg,
    adv_user, adv_item, work
):
    """One epoch over the given triples in order; returns the summed clean loss (BPR + L2).

    Gradients accumulate in batch-local slots (one per distinct user / item of the batch), so
    the buffers stay small and cache-resident whatever the size of the tables.
    """
    g_p, g_q, _, _, cnt_u, cnt_i, slot_u, slot_i, rows_u, rows_i, trip, diff = work
    n, d = len(users), P.shape[1]
    total = 0.0
    for start in range(0, n, batch_size):
        end = min(start + batch_size, n)
        nu = 0
        ni = 0
        for t in range(start, end):
            u, i, j = users[t], pos[t], neg[t]
            su, nu = _slot(u, slot_u, rows_u, nu)
            si, ni = _slot(i, slot_i, rows_i, ni)
            sj, ni = _slot(j, slot_i, rows_i, ni)
            b = t - start
            trip[b, 0] = su
            trip[b, 1] = si
            trip[b, 2] = sj
            cnt_u[su] += 1
            cnt_i[si] += 1
            cnt_i[sj] += 1
            pu, qi, qj = P[u], Q[i], Q[j]
            x = np.float32(0.0)  # float32 like the tables (and PyTorch): twice the SIMD width
            for k in range(d):
                dk = qi[k] - qj[k]
                diff[k] = dk
                x += pu[k] * dk
            if reg > 0.0:
                sq = np.float32(0.0)
                for k in range(d):
                    sq += pu[k] * pu[k] + qi[k] * qi[k] + qj[k] * qj[k]
                total += reg * sq
            loss, dx = bpr_terms(x)
            total += loss
            g = np.float32(dx)
            # one store stream per loop (the scratch row breaks the possible aliasing between
            # the tables and the gradient buffers that keeps a fused loop scalar)
            gp, gi, gj = g_p[su], g_q[si], g_q[sj]
            for k in range(d):
                gp[k] += g * diff[k]
            for k in range(d):
                gi[k] += g * pu[k]
            for k in range(d):
                gj[k] -= g * pu[k]
        if adv_reg > 0.0:
            _adversarial_pass(P, Q, users, pos, neg, start, end, nu, ni, adv_eps, adv_reg,
                              adv_user, adv_item, work)
        _apply(P, g_p, acc_p, cnt_u, rows_u, nu, lr, reg, opt, slot_u)
        _apply(Q, g_q, acc_q, cnt_i, rows_i, ni, lr, reg, opt, slot_i)
    return total


def make_workspace(n_users: int, n_items: int, dim: int, batch_size: int, adversarial: bool):
    """Scratch buffers reused by every epoch: batch-local gradients and perturbed rows, slot maps
    (table row → batch slot, -1 when absent), touched-row lists, each triple's slots and one
    row of scratch."""
    f32 = np.float32
    bu, bi = min(n_users, batch_size), min(n_items, 2 * batch_size)
    return (
        np.zeros((bu, dim), f32),
        np.zeros((bi, dim), f32),
        np.zeros((bu if adversarial else 1, dim), f32),
        np.zeros((bi if adversarial else 1, dim), f32),
        np.zeros(bu, np.int64),
        np.zeros(bi, np.int64),
        np.full(n_users, -1, np.int64),
        np.full(n_items, -1, np.int64),
        np.zeros(bu, np.int64),
        np.zeros(bi, np.int64),
        np.zeros((batch_size, 3), np.int64),
        np.zeros(dim, f32),
    )


def warm_up() -> None:
    """Compile (or load from the cache) :func:`bpr_epoch` with the argument types of a real fit,
    on a tiny problem."""
    f32 = np.float32
    P, Q = np.zeros((2, 2), f32), np.zeros((3, 2), f32)
    idx = np.zeros(1, np.int64)
    work = make_workspace(2, 3, 2, 1, adversarial=True)
    bpr_epoch(P, Q, idx, idx, idx + 1, 1, 0.05, 0.0, ADAGRAD, np.ones_like(P), np.ones_like(Q),
              0.5, 1.0, True, True, work)
