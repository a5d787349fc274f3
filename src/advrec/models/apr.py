"""APR / AMF (He, He, Du, Chua. *Adversarial Personalized Ranking for Recommendation.* SIGIR 2018):
BPR-MF trained with an adversarial regulariser on its embeddings."""

from __future__ import annotations

from collections.abc import Sequence

from advrec.errors import ConfigError
from advrec.models.bprmf import BPRMF
from advrec.training.adversarial import AdversarialRegularizer


class APR(BPRMF):
    """BPR-MF minimising L_BPR(Θ) + λ·L_BPR(Θ + Δ_adv), Δ_adv = ε·g/‖g‖ per embedding row.

    Δ_adv is rebuilt from each mini-batch's clean gradient and held constant (no gradient through
    it), so an APR epoch costs about one extra forward/backward per batch. ``adv_start_epoch``
    switches the term on after that many plain BPR epochs (the paper: 1000 BPR, then 1000 APR);
    ``fit(train, init_from=bpr_model)`` starts from a trained BPR-MF instead. With ``adv_reg = 0``
    it is exactly BPR-MF. Paper defaults: ε = 0.5, λ = 1, the rest as BPR-MF.
    """

    name = "apr"

    def __init__(self, n_factors: int = 64, epochs: int = 5, batch_size: int = 512,
                 optimizer: str = "adagrad", lr: float = 0.05, reg: float = 0.0,
                 init_std: float = 0.01, initial_accumulator: float = 0.1,
                 patience: int | None = None, validate_every: int = 1,
                 backend: str = "auto", device: str | None = None, seed: int = 0,
                 eps: float = 0.5, adv_reg: float = 1.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = ("user", "item"), adv_norm: str = "l2"):
        super().__init__(n_factors=n_factors, epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer, lr=lr, reg=reg, init_std=init_std,
                         initial_accumulator=initial_accumulator, patience=patience,
                         validate_every=validate_every, backend=backend, device=device,
                         seed=seed)
        self.eps = eps
        self.adv_reg = adv_reg
        self.adv_start_epoch = adv_start_epoch
        self.adv_blocks = adv_blocks
        self.adv_norm = adv_norm

    def _regularizer(self) -> AdversarialRegularizer | None:
        blocks = tuple(self.adv_blocks)
        unknown = set(blocks) - {"user", "item"}
        if unknown or not blocks:
            raise ConfigError(f"adv_blocks must be a non-empty subset of ('user', 'item'), "
                              f"got {list(self.adv_blocks)}")
        if self.adv_start_epoch < 0:
            raise ConfigError(f"adv_start_epoch must be >= 0, got {self.adv_start_epoch}")
        reg = AdversarialRegularizer(self.eps, self.adv_reg, blocks, self.adv_norm)
        return reg if reg.reg > 0 else None  # λ = 0: exactly BPR-MF

    def _regularizer_start(self) -> int:
        return int(self.adv_start_epoch)
