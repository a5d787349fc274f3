"""Attacks: adversarial perturbations of model parameters (and, later, shilling and poisoning)."""

from advrec.attacks.perturbation import (
    METHODS,
    AttackObjective,
    fgsm,
    perturb,
    perturbed_scorer,
    pgd,
    random_perturbation,
)

__all__ = ["METHODS", "AttackObjective", "fgsm", "perturb", "perturbed_scorer", "pgd",
           "random_perturbation"]
