"""APR / AMF (He, He, Du, Chua. *Adversarial Personalized Ranking for Recommendation.* SIGIR 2018):
BPR-MF trained with an adversarial regulariser on its embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from advrec.errors import ParamError
from advrec.models.adversarial import AdversarialTraining, adversarial_constraints
from advrec.models.bprmf import BPRMF
from advrec.validation import plain


class APR(AdversarialTraining, BPRMF):
    """BPR-MF minimising L_BPR(Θ) + λ·L_BPR(Θ + Δ_adv), Δ_adv = ε·g/‖g‖ per embedding row.

    Δ_adv is rebuilt from each mini-batch's clean gradient and held constant (no gradient through
    it), so an APR epoch costs about one extra forward/backward per batch. ``adv_start_epoch``
    switches the term on after that many plain BPR epochs (the paper: 1000 BPR, then 1000 APR);
    ``fit(train, init_from=bpr_model)`` starts from a trained BPR-MF instead. With ``adv_reg = 0``
    it is exactly BPR-MF. Paper defaults: ε = 0.5, λ = 1, the rest as BPR-MF.
    """

    name = "apr"
    _param_constraints: ClassVar[dict[str, Any]] = {
        **BPRMF._param_constraints,
        **adversarial_constraints(("user", "item"), "APR"),
    }

    def __init__(self, n_factors: int = 64, epochs: int = 5, batch_size: int = 512,
                 optimizer: str = "adagrad", lr: float = 0.05, reg: float = 0.0,
                 init_std: float = 0.01, initial_accumulator: float = 0.1,
                 patience: int | None = None, validate_every: int = 1,
                 backend: str = "auto", threads: int = 1, device: str | None = None,
                 seed: int = 0,
                 eps: float = 0.5, adv_reg: float = 1.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = ("user", "item"), adv_norm: str = "l2"):
        super().__init__(n_factors=n_factors, epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer, lr=lr, reg=reg, init_std=init_std,
                         initial_accumulator=initial_accumulator, patience=patience,
                         validate_every=validate_every, backend=backend, threads=threads,
                         device=device,
                         seed=seed)
        self.eps = eps
        self.adv_reg = adv_reg
        self.adv_start_epoch = adv_start_epoch
        self.adv_blocks = adv_blocks
        self.adv_norm = adv_norm

    @classmethod
    def _check_param_combinations(cls, values: dict[str, Any]) -> None:
        super()._check_param_combinations(values)
        if values["backend"] == "numba" and values["adv_norm"] != "l2" and values["adv_reg"] > 0:
            raise ParamError("adv_norm", f"the compiled epoch (backend 'numba') supports the l2 "
                                         f"(APR) perturbation only, got {plain(values['adv_norm'])}"
                                         f"; use backend 'torch' for linf")
