"""Attacks: adversarial perturbations of model parameters and hand-crafted shilling profiles."""

from advrec.attacks.perturbation import (
    METHODS,
    AttackObjective,
    fgsm,
    perturb,
    perturbed_scorer,
    pgd,
    random_perturbation,
)
from advrec.attacks.shilling import ATTACKS as SHILLING_ATTACKS
from advrec.attacks.shilling import ShillingAttack, generate, make_attack, select_targets

__all__ = ["METHODS", "SHILLING_ATTACKS", "AttackObjective", "ShillingAttack", "fgsm",
           "generate", "make_attack", "perturb", "perturbed_scorer", "pgd",
           "random_perturbation", "select_targets"]
