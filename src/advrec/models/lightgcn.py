"""LightGCN (He, Deng, Wang, Li, Zhang, Wang. *LightGCN: Simplifying and Powering Graph
Convolution Network for Recommendation.* SIGIR 2020), with APR's adversarial training on its ego
embeddings (``adv_reg`` > 0).

As the paper and the official PyTorch code (gusye1234/LightGCN-PyTorch) define it: no feature
transformation and no non-linearity; the ego embeddings E⁰ are propagated K times over the
symmetrically normalised user-item graph Â = D^-1/2 A D^-1/2, the final embedding is the mean of
layers 0..K, ŷ_ui = e_u · e_i; BPR loss with L2 (weight ``reg``) on the batch's ego embeddings;
Adam, lr 0.001, batch 2048, 64 factors, 3 layers, reg 1e-4, normal(0, 0.1) initialisation. Where
we differ from the code: an epoch visits every training pair once with one uniformly sampled
negative (the code draws |R| users uniformly, each with one of its positives), and the code's
optional edge dropout (off by default there) is not implemented. Propagation is sparse (never a
dense users × items matrix); the final embeddings are cached for scoring until the weights change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError
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
from advrec.training.optim import OPTIMIZERS
from advrec.validation import Choice, Int, Real

if TYPE_CHECKING:
    from advrec.models.lightgcn_net import LightGCNNet
    from advrec.training.trainer import Callback

torch = lazy("torch")

BLOCKS = ("user", "item")  # LightGCNNet.block_names (the contract test checks they agree)


class LightGCN(AdversarialTraining, TripleNetModel, Recommender):
    """LightGCN: layer-mean propagation of ego embeddings over the normalised user-item graph.

    ``n_layers``: K (the paper: 3). ``reg``: L2 weight on the batch's ego embeddings (the code's
    ``decay``). ``adv_reg`` > 0 adds APR's adversarial term on the ego embeddings (``eps``,
    ``adv_blocks``, ``adv_norm``, ``adv_start_epoch`` as in APR); 0 is plain LightGCN exactly.
    """

    name = "lightgcn"
    capabilities = Capabilities(
        parameter_blocks=BLOCKS,
        early_stopping=True,
        warm_start=("lightgcn",),
        fit_options=("validate", "callbacks", "checkpoint_dir", "resume", "progress",
                     "init_from"),
    )
    _param_constraints: ClassVar[dict[str, Any]] = {
        "n_factors": Int(low=1),
        "n_layers": Int(low=0),
        "epochs": Int(low=0),
        "batch_size": Int(low=1),
        "optimizer": Choice(OPTIMIZERS),
        "lr": Real(low=0, closed="neither"),
        "reg": Real(low=0),
        "init_std": Real(low=0, closed="neither"),
        "patience": Int(low=1, none_ok=True),
        "validate_every": Int(low=1),
        "device": DEVICE,
        "seed": SEED,
        **adversarial_constraints(BLOCKS, "LightGCN"),
    }

    def __init__(self, n_factors: int = 64, n_layers: int = 3, epochs: int = 20,
                 batch_size: int = 2048, optimizer: str = "adam", lr: float = 0.001,
                 reg: float = 1e-4, init_std: float = 0.1, patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0,
                 eps: float = 0.5, adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = BLOCKS, adv_norm: str = "l2"):
        self.n_factors = n_factors
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.reg = reg
        self.init_std = init_std
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
    def _new_net(self, seen) -> LightGCNNet:
        from advrec.models.lightgcn_net import LightGCNNet, normalized_adjacency

        n_users, n_items = seen.shape
        net = LightGCNNet(n_users, n_items, int(self.n_factors), int(self.n_layers),
                          float(self.reg), normalized_adjacency(seen))
        gen = torch.Generator().manual_seed(int(self.seed))
        with torch.no_grad():
            for table in (net.user, net.item):
                table.normal_(0.0, float(self.init_std), generator=gen)
        return net.to(resolve_device(self.device))

    def _fit(self, train: Interactions, validate: Callable[[LightGCN], float] | None = None,
             callbacks: Sequence[Callback] = (), checkpoint_dir=None, resume: bool = False,
             progress: bool | None = None, init_from: LightGCN | None = None) -> None:
        """Train; ``validate(model) -> float`` drives early stopping (with ``patience``);
        ``init_from`` starts from another fitted LightGCN's ego embeddings (e.g. the adversarial
        twin after plain training, as APR after BPR-MF)."""
        from advrec.data.sampling import UniformSampler

        net = self._new_net(train.binary_csr)
        if init_from is not None:
            check_warm_start_shape(init_from, train)
            if init_from.net_.user.shape[1] != int(self.n_factors):
                raise ConfigError(f"init_from has {init_from.net_.user.shape[1]} factors, "
                                  f"this model {self.n_factors}")
            with torch.no_grad():
                net.user.copy_(init_from.net_.user)
                net.item.copy_(init_from.net_.item)
        self.net_ = net
        trainer = model_trainer(self, validate, callbacks, checkpoint_dir, resume, progress)
        self.fitted_ = True  # validation callables score the model during training
        self.history_ = trainer.fit(net, UniformSampler(train, seed=self.seed))
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return {"user": self.net_.user.data, "item": self.net_.item.data}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        f = int(self.n_factors)
        return {"user": (self.n_users_, f), "item": (self.n_items_, f)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        net = self._new_net(self.seen_)  # the graph comes from the saved training pairs
        with torch.no_grad():
            net.user.copy_(state["user"])
            net.item.copy_(state["item"])
        self.net_ = net
