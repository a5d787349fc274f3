"""VBPR (He & McAuley, *VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback*,
AAAI 2016) and AMR (Tang, Du, He, Yuan, Tian, Chua, *Adversarial Training Towards Robust
Multimedia Recommender System*, TKDE 2019).

VBPR scores ŷ_ui = β_i + γ_u·γ_i + θ_u·(E f_i) + β'·f_i with f_i a pretrained CNN's feature
vector of item i (fixed), trained with the BPR loss. AMR is VBPR trained with
L(Θ) + λ·L(Θ, f + Δ_adv), Δ_adv = ε·g_i/‖g_i‖ per item from the batch's clean gradient w.r.t. the
features: the Trainer's adversarial regulariser applied to the ``item_content`` block, the same
FGSM that :func:`advrec.attacks.perturbation.fgsm` uses to attack a trained VBPR's features.

Features are scaled by their largest absolute value (``feature_scale="max"``, as the AMR code
does), so ε is relative to that scale. Items without content carry a zero feature row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import UniformSampler
from advrec.errors import ParamError
from advrec.models.adversarial import AdversarialTraining, adversarial_constraints
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    Recommender,
    TripleNetModel,
    check_warm_start_shape,
    model_trainer,
    resolve_device,
)
from advrec.validation import Choice, Int, Real, plain

if TYPE_CHECKING:
    from advrec.models.vbpr_net import VBPRNet
    from advrec.training.trainer import Callback

torch = lazy("torch")

BLOCKS = ("user", "item", "user_visual", "item_content")
FEATURE_SCALES = ("max", "none")
FIT_OPTIONS = ("item_features", "validate", "callbacks", "checkpoint_dir", "resume", "progress",
               "init_from")


def feature_matrix(value: Any, n_items: int) -> np.ndarray:
    """The (n_items, d) float32 matrix of an ``ItemFeatures`` or an array; a ParamError naming
    ``item_features`` when its shape or values do not fit the data."""
    from advrec.data.content import ItemFeatures

    matrix = value.matrix if isinstance(value, ItemFeatures) else value
    if torch.is_tensor(matrix):
        matrix = matrix.detach().cpu().numpy()
    try:
        matrix = np.asarray(matrix, dtype=np.float32)
    except (TypeError, ValueError):
        raise ParamError("item_features", f"expected an ItemFeatures or an (n_items, d) float "
                                          f"array, got {plain(value)}") from None
    if matrix.ndim != 2 or matrix.shape[0] != n_items or matrix.shape[1] < 1:
        raise ParamError("item_features", f"expected {n_items} rows (one per item of the "
                                          f"training data) and at least one column, got shape "
                                          f"{list(matrix.shape)}")
    if not np.isfinite(matrix).all():
        raise ParamError("item_features", "holds NaN or infinite values")
    return matrix


class VBPR(AdversarialTraining, TripleNetModel, Recommender):
    """Visual BPR: latent factors plus a visual user factor scoring the item's projected CNN
    features, and a visual bias; ``fit(train, item_features=...)`` takes the content.

    Defaults as BPR-MF (64 latent factors, Adagrad lr 0.05, batch 512, no L2), with 64 visual
    factors; ``adv_reg`` > 0 adds AMR's adversarial term (see :class:`AMR`).
    """

    name = "vbpr"
    capabilities = Capabilities(parameter_blocks=BLOCKS, early_stopping=True,
                                warm_start=("vbpr", "amr"), content_features=True,
                                fit_options=FIT_OPTIONS)
    _param_constraints: ClassVar[dict[str, Any]] = {
        "n_factors": Int(low=1),
        "n_visual_factors": Int(low=1),
        "epochs": Int(low=0),
        "batch_size": Int(low=1),
        "optimizer": Choice(("adagrad", "sgd")),
        "lr": Real(low=0, closed="neither"),
        "reg": Real(low=0),
        "reg_visual": Real(low=0),
        "init_std": Real(low=0, closed="neither"),
        "feature_scale": Choice(FEATURE_SCALES),
        "patience": Int(low=1, none_ok=True),
        "validate_every": Int(low=1),
        "device": DEVICE,
        "seed": SEED,
        **adversarial_constraints(BLOCKS, "VBPR"),
    }

    def __init__(self, n_factors: int = 64, n_visual_factors: int = 64, epochs: int = 20,
                 batch_size: int = 512, optimizer: str = "adagrad", lr: float = 0.05,
                 reg: float = 0.0, reg_visual: float = 0.0, init_std: float = 0.01,
                 feature_scale: str = "max", patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0,
                 eps: float = 0.1, adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = ("item_content",), adv_norm: str = "l2"):
        self.n_factors = n_factors
        self.n_visual_factors = n_visual_factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.reg = reg
        self.reg_visual = reg_visual
        self.init_std = init_std
        self.feature_scale = feature_scale
        self.patience = patience
        self.validate_every = validate_every
        self.device = device
        self.seed = seed
        self.eps = eps
        self.adv_reg = adv_reg
        self.adv_start_epoch = adv_start_epoch
        self.adv_blocks = adv_blocks
        self.adv_norm = adv_norm

    # ------------------------------------------------------------------ fit
    def _net(self, features: torch.Tensor) -> VBPRNet:
        from advrec.models.vbpr_net import VBPRNet

        return VBPRNet(self.n_users_, self.n_items_, int(self.n_factors),
                       int(self.n_visual_factors), features, float(self.reg),
                       float(self.reg_visual))

    def _scaled(self, matrix: np.ndarray) -> torch.Tensor:
        scale = float(np.abs(matrix).max()) if self.feature_scale == "max" else 1.0
        self.feature_scale_ = scale if scale > 0 else 1.0
        return torch.from_numpy(matrix / self.feature_scale_)

    def _fit(self, train: Interactions, item_features: Any = None,
             validate: Callable[[Any], float] | None = None, callbacks: Sequence[Callback] = (),
             checkpoint_dir=None, resume: bool = False, progress: bool | None = None,
             init_from: VBPR | None = None) -> None:
        """Train on BPR triples; ``item_features``: the (n_items, d) content of the training
        data's items (an ``ItemFeatures`` or an array); ``init_from`` starts from a fitted
        VBPR/AMR (its features too, unless new ones are given)."""
        if item_features is None and init_from is None:
            raise ParamError("item_features", f"{type(self).__name__} needs the items' content "
                                              f"features: fit(train, item_features=...)")
        if init_from is not None:
            check_warm_start_shape(init_from, train)
        if item_features is not None:
            features = self._scaled(feature_matrix(item_features, train.n_items))
        else:
            self.feature_scale_ = init_from.feature_scale_
            features = init_from.net_.features.detach().cpu()
        net = self._net(features)
        net.reset(float(self.init_std), torch.Generator().manual_seed(int(self.seed)))
        if init_from is not None:
            theirs = init_from.net_.state_dict()
            if theirs["projection"].shape != net.projection.shape or \
                    theirs["user"].shape != net.user.shape:
                raise ParamError("init_from", "expected a VBPR/AMR with the same factor sizes "
                                              "and feature width")
            theirs["features"] = features
            net.load_state_dict({k: v.detach().cpu() for k, v in theirs.items()})
        self.net_ = net.to(resolve_device(self.device))
        trainer = model_trainer(self, validate, callbacks, checkpoint_dir, resume, progress)
        self.fitted_ = True  # validation callables score the model during training
        self.history_ = trainer.fit(self.net_, UniformSampler(train, seed=self.seed))
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        state = {k: v.detach() for k, v in self.net_.state_dict().items()}
        state["feature_scale"] = torch.tensor([self.feature_scale_], dtype=torch.float32)
        return state

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        f, v = int(self.n_factors), int(self.n_visual_factors)
        n_u, n_i = self.n_users_, self.n_items_
        return {"user": (n_u, f), "item": (n_i, f), "user_visual": (n_u, v),
                "item_bias": (n_i, 1), "projection": (None, v), "visual_bias": (None, 1),
                "features": (n_i, None), "feature_scale": (1,)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        from advrec.models.vbpr_net import VBPRNet

        n_features = state["features"].shape[1]
        if state["projection"].shape[0] != n_features or \
                state["visual_bias"].shape[0] != n_features:
            raise ValueError(f"projection/visual_bias rows differ from the {n_features} "
                             f"feature columns")
        net = VBPRNet(self.n_users_, self.n_items_, int(self.n_factors),
                      int(self.n_visual_factors), state["features"], float(self.reg),
                      float(self.reg_visual))
        net.load_state_dict({k: v for k, v in state.items() if k != "feature_scale"})
        self.feature_scale_ = float(state["feature_scale"][0])
        self.net_ = net.to(resolve_device(self.device))


class AMR(VBPR):
    """VBPR trained against FGSM on the item features (Tang et al., TKDE'19): ε = 0.1 of the
    feature scale per item (L2), λ = 1, as the official code's run script. With
    ``adv_reg = 0`` it is VBPR exactly; ``fit(train, init_from=vbpr)`` starts from a trained
    VBPR as the code does (the default trains from scratch with the term on from epoch
    ``adv_start_epoch``)."""

    name = "amr"
    _param_constraints: ClassVar[dict[str, Any]] = {
        **VBPR._param_constraints,
        **adversarial_constraints(BLOCKS, "AMR"),
    }

    def __init__(self, n_factors: int = 64, n_visual_factors: int = 64, epochs: int = 20,
                 batch_size: int = 512, optimizer: str = "adagrad", lr: float = 0.05,
                 reg: float = 0.0, reg_visual: float = 0.0, init_std: float = 0.01,
                 feature_scale: str = "max", patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0,
                 eps: float = 0.1, adv_reg: float = 1.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = ("item_content",), adv_norm: str = "l2"):
        super().__init__(n_factors=n_factors, n_visual_factors=n_visual_factors, epochs=epochs,
                         batch_size=batch_size, optimizer=optimizer, lr=lr, reg=reg,
                         reg_visual=reg_visual, init_std=init_std, feature_scale=feature_scale,
                         patience=patience, validate_every=validate_every, device=device,
                         seed=seed, eps=eps, adv_reg=adv_reg, adv_start_epoch=adv_start_epoch,
                         adv_blocks=adv_blocks, adv_norm=adv_norm)
