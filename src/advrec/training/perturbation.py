"""Perturbation primitives shared by parameter attacks and adversarial training (APR/AMR).

One implementation of each direction: the FGSM that attacks a trained model
(`advrec.attacks.perturbation`) and the Δ that APR builds inside every training step
(`advrec.training.adversarial`) both call :func:`fgsm_direction`.
"""

from __future__ import annotations

from advrec._lazy import lazy
from advrec.errors import ConfigError
from advrec.validation import check_float
from advrec.vocabulary import NORMS

torch = lazy("torch")
F = lazy("torch.nn.functional")


def check_eps(eps: float) -> float:
    """ε as a finite positive float (ε = inf is refused here, not found later as NaN scores)."""
    return check_float(eps, "eps", low=0, closed="neither")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    return norm


def fgsm_direction(grad: torch.Tensor, eps: float, norm: str = "l2",
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """The fast-gradient step of size ``eps`` along ``grad``.

    ``"l2"`` (APR form, He et al. SIGIR'18): Δ = ε·g/‖g‖ with the norm taken per row (per user /
    per item embedding); rows whose gradient is zero stay zero. ``"linf"`` (Goodfellow et al.,
    ICLR'15): Δ = ε·sign(g). A sparse ``grad`` (embedding rows) gives a full-size Δ that is zero
    off the touched rows; ``out``, when given, is that full-size zero tensor, reused (only the
    touched rows are written: the caller zeroes them again).
    """
    if grad.is_sparse:  # embedding gradients: normalise only the rows the batch touched
        grad = grad.coalesce()
        if out is None:
            out = torch.zeros(grad.shape, dtype=grad.dtype, device=grad.device)
        out[grad.indices()[0]] = fgsm_direction(grad.values(), eps, norm)
        return out
    if check_norm(norm) == "linf":
        return eps * torch.sign(grad)
    return eps * F.normalize(grad, p=2, dim=-1, eps=1e-30)


def random_direction(like: torch.Tensor, eps: float, norm: str = "l2",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random noise of the same size as an FGSM step: each row has L2 norm ε (or ±ε entries)."""
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype)
    return fgsm_direction(noise, eps, norm).to(like.device)


def project(delta: torch.Tensor, eps: float, norm: str = "l2") -> torch.Tensor:
    """Project onto the ε-ball of each row (L2) or the ε-box (L∞)."""
    if check_norm(norm) == "linf":
        return delta.clamp(-eps, eps)
    norms = delta.norm(dim=-1, keepdim=True)
    return delta * torch.clamp(eps / norms.clamp_min(1e-30), max=1.0)
