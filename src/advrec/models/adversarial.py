"""Adversarial training for any model with parameter blocks: APR's objective
L(Θ) + λ·L(Θ + Δ_adv), Δ_adv the FGSM perturbation of the batch's clean loss (He et al.,
SIGIR'18), carried to every model that declares perturbable blocks. APR (BPR-MF), LightGCN and
NeuMF take it from here: one implementation, the Trainer's
:class:`~advrec.training.adversarial.AdversarialRegularizer`."""

from __future__ import annotations

from typing import Any

from advrec.models.base import Names, Noted
from advrec.training.adversarial import AdversarialRegularizer
from advrec.training.perturbation import NORMS
from advrec.validation import Choice, Int, Real

ADVERSARIAL_PARAMS = ("eps", "adv_reg", "adv_start_epoch", "adv_blocks", "adv_norm")


def adversarial_constraints(blocks: tuple[str, ...], name: str) -> dict[str, Any]:
    """The constraints of the adversarial hyper-parameters of a model with ``blocks``."""
    return {
        "eps": Noted(Real(low=0, closed="neither"),
                     f"{name}'s eps must be positive: it is the perturbation size ε"),
        "adv_reg": Real(low=0),
        "adv_start_epoch": Int(low=0),
        "adv_blocks": Names(blocks),
        "adv_norm": Choice(NORMS),
    }


class AdversarialTraining:
    """Mixin of a model trained by the `Trainer` on a module with ``blocks()`` and
    ``loss(batch, perturbation=None, l2=True)``: its ``eps`` (ε), ``adv_reg`` (λ; 0 = the plain
    model exactly), ``adv_start_epoch`` (plain epochs first), ``adv_blocks`` and ``adv_norm``
    define the regulariser the Trainer adds to every step."""

    eps: float
    adv_reg: float
    adv_start_epoch: int
    adv_blocks: Any
    adv_norm: str

    def _regularizer(self) -> AdversarialRegularizer | None:
        blocks = tuple(self.adv_blocks)
        reg = AdversarialRegularizer(self.eps, self.adv_reg, blocks, self.adv_norm)
        return reg if reg.reg > 0 else None  # λ = 0: exactly the plain model

    def _regularizer_start(self) -> int:
        return int(self.adv_start_epoch)
