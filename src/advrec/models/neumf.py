"""Neural Collaborative Filtering (He, Liao, Zhang, Nie, Hu, Chua. WWW 2017): GMF, MLP and their
fusion NeuMF, point-wise log loss with sampled negatives, optional pre-training of NeuMF from GMF
and MLP; with APR's adversarial training on the embedding tables (``adv_reg`` > 0).

As the official Keras code (hexiangnan/neural_collaborative_filtering) defines them: 8 predictive
factors, MLP layers [64, 32, 16, 8] (the first split between the user and the item embedding),
4 negatives per positive drawn afresh every epoch, Adam lr 0.001, batch 256, no regularisation.
NeuMF with pre-training loads GMF's and MLP's weights and fuses their prediction layers as
[α·h_GMF, (1−α)·h_MLP] (α = 0.5, bias α·b_GMF + (1−α)·b_MLP). The paper fine-tunes with SGD,
the code's README with Adam; ``optimizer`` chooses (default: the code's Adam).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.models.adversarial import AdversarialTraining, adversarial_constraints
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    Layers,
    NetModel,
    Recommender,
    check_warm_start_shape,
    model_trainer,
    resolve_device,
)
from advrec.training.optim import OPTIMIZERS
from advrec.validation import Choice, Int, Real

if TYPE_CHECKING:
    from advrec.models.neumf_net import NCFNet
    from advrec.training.trainer import Callback

torch = lazy("torch")

GMF_BLOCKS = ("gmf_user", "gmf_item")
MLP_BLOCKS = ("mlp_user", "mlp_item")
FIT_OPTIONS = ("validate", "callbacks", "checkpoint_dir", "resume", "progress", "init_from")
COMMON: dict[str, Any] = {
    "epochs": Int(low=0),
    "batch_size": Int(low=1),
    "n_negatives": Int(low=0, high=1000),
    "optimizer": Choice(OPTIMIZERS),
    "lr": Real(low=0, closed="neither"),
    "reg": Real(low=0),
    "patience": Int(low=1, none_ok=True),
    "validate_every": Int(low=1),
    "device": DEVICE,
    "seed": SEED,
}


class _NCF(AdversarialTraining, NetModel, Recommender):
    """What GMF, MLP and NeuMF share: the network, point-wise training, scores, persistence."""

    _mode: ClassVar[str] = "neumf"
    mf_dim: int = 8
    layers: Sequence[int] = (64, 32, 16, 8)

    def _net(self, n_users: int, n_items: int) -> NCFNet:
        from advrec.models.neumf_net import NCFNet

        net = NCFNet(n_users, n_items, self._mode, int(self.mf_dim), tuple(self.layers),
                     float(self.reg))
        return net.reset(torch.Generator().manual_seed(int(self.seed)))

    def _fit(self, train: Interactions, validate: Callable[[Any], float] | None = None,
             callbacks: Sequence[Callback] = (), checkpoint_dir=None, resume: bool = False,
             progress: bool | None = None, init_from: _NCF | None = None) -> None:
        """Train on point-wise instances; ``validate(model) -> float`` drives early stopping
        (with ``patience``); ``init_from`` starts from another fitted model of this kind."""
        net = self._net(train.n_users, train.n_items)
        if init_from is not None:
            check_warm_start_shape(init_from, train)
            net.load_state_dict(init_from.net_.state_dict())
        else:
            self._pretrain(net, train, progress)
        self.net_ = net.to(resolve_device(self.device))
        self._train(train, validate, callbacks, checkpoint_dir, resume, progress)

    def _pretrain(self, net: NCFNet, train: Interactions, progress: bool | None) -> None:
        """NeuMF only: nothing here."""

    def _train(self, train, validate, callbacks, checkpoint_dir, resume, progress) -> None:
        from advrec.data.sampling import PointwiseSampler

        trainer = model_trainer(self, validate, callbacks, checkpoint_dir, resume, progress)
        self.fitted_ = True  # validation callables score the model during training
        sampler = PointwiseSampler(train, int(self.n_negatives), seed=self.seed)
        self.history_ = trainer.fit(self.net_, sampler)
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    # ------------------------------------------------------------------ scores, loss
    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.net_.state_dict().items()}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {k: tuple(v.shape) for k, v in
                self._net(self.n_users_, self.n_items_).state_dict().items()}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        net = self._net(self.n_users_, self.n_items_)
        net.load_state_dict(state)
        self.net_ = net.to(resolve_device(self.device))


class GMF(_NCF):
    """Generalised matrix factorisation: ŷ_ui = σ(hᵀ(p_u ⊙ q_i)), trained point-wise."""

    name = "gmf"
    _mode = "gmf"
    capabilities = Capabilities(parameter_blocks=GMF_BLOCKS, early_stopping=True,
                                warm_start=("gmf",), fit_options=FIT_OPTIONS)
    _param_constraints: ClassVar[dict[str, Any]] = {
        "mf_dim": Int(low=1), **COMMON, **adversarial_constraints(GMF_BLOCKS, "GMF")}

    def __init__(self, mf_dim: int = 8, epochs: int = 20, batch_size: int = 256,
                 n_negatives: int = 4, optimizer: str = "adam", lr: float = 0.001,
                 reg: float = 0.0, patience: int | None = None, validate_every: int = 1,
                 device: str | None = None, seed: int = 0, eps: float = 0.5,
                 adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = GMF_BLOCKS, adv_norm: str = "l2"):
        self.mf_dim = mf_dim
        _common(self, locals())


class MLP(_NCF):
    """Multi-layer perceptron over the concatenated user and item embeddings (ReLU tower)."""

    name = "mlp"
    _mode = "mlp"
    capabilities = Capabilities(parameter_blocks=MLP_BLOCKS, early_stopping=True,
                                warm_start=("mlp",), fit_options=FIT_OPTIONS)
    _param_constraints: ClassVar[dict[str, Any]] = {
        "layers": Layers(even_first=True), **COMMON,
        **adversarial_constraints(MLP_BLOCKS, "MLP")}

    def __init__(self, layers: Sequence[int] = (64, 32, 16, 8), epochs: int = 20,
                 batch_size: int = 256, n_negatives: int = 4, optimizer: str = "adam",
                 lr: float = 0.001, reg: float = 0.0, patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0,
                 eps: float = 0.5, adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = MLP_BLOCKS, adv_norm: str = "l2"):
        self.layers = layers
        _common(self, locals())


class NeuMF(_NCF):
    """GMF and MLP fused by one prediction layer; ``pretrain_epochs`` > 0 first trains GMF and MLP
    (the same settings, that many epochs each) and starts from their weights (α = ``alpha``)."""

    name = "neumf"
    _mode = "neumf"
    capabilities = Capabilities(parameter_blocks=GMF_BLOCKS + MLP_BLOCKS, early_stopping=True,
                                warm_start=("neumf",), fit_options=FIT_OPTIONS)
    _param_constraints: ClassVar[dict[str, Any]] = {
        "mf_dim": Int(low=1), "layers": Layers(even_first=True),
        "pretrain_epochs": Int(low=0), "alpha": Real(low=0, high=1), **COMMON,
        **adversarial_constraints(GMF_BLOCKS + MLP_BLOCKS, "NeuMF")}

    def __init__(self, mf_dim: int = 8, layers: Sequence[int] = (64, 32, 16, 8),
                 epochs: int = 20, batch_size: int = 256, n_negatives: int = 4,
                 optimizer: str = "adam", lr: float = 0.001, reg: float = 0.0,
                 pretrain_epochs: int = 0, alpha: float = 0.5, patience: int | None = None,
                 validate_every: int = 1, device: str | None = None, seed: int = 0,
                 eps: float = 0.5, adv_reg: float = 0.0, adv_start_epoch: int = 0,
                 adv_blocks: Sequence[str] = GMF_BLOCKS + MLP_BLOCKS, adv_norm: str = "l2"):
        self.mf_dim = mf_dim
        self.layers = layers
        self.pretrain_epochs = pretrain_epochs
        self.alpha = alpha
        _common(self, locals())

    def _pretrain(self, net: NCFNet, train: Interactions, progress: bool | None) -> None:
        """GMF and MLP trained ``pretrain_epochs`` each (Adam, as the code), then copied in; the
        prediction layer is [α·h_GMF, (1−α)·h_MLP] with bias α·b_GMF + (1−α)·b_MLP."""
        if not int(self.pretrain_epochs):
            return
        shared = dict(epochs=int(self.pretrain_epochs), batch_size=self.batch_size,
                      n_negatives=self.n_negatives, optimizer="adam", lr=self.lr, reg=self.reg,
                      device=self.device, seed=self.seed)
        gmf = GMF(mf_dim=self.mf_dim, **shared).fit(train, progress=progress).net_
        mlp = MLP(layers=self.layers, **shared).fit(train, progress=progress).net_
        a = float(self.alpha)
        with torch.no_grad():
            net.gmf_user.copy_(gmf.gmf_user)
            net.gmf_item.copy_(gmf.gmf_item)
            net.mlp_user.copy_(mlp.mlp_user)
            net.mlp_item.copy_(mlp.mlp_item)
            for mine, theirs in zip(net.tower, mlp.tower, strict=True):
                mine.load_state_dict(theirs.state_dict())
            net.predict.weight.copy_(torch.cat([a * gmf.predict.weight,
                                                (1 - a) * mlp.predict.weight], 1))
            net.predict.bias.copy_(a * gmf.predict.bias + (1 - a) * mlp.predict.bias)


def _common(model: _NCF, values: dict[str, Any]) -> None:
    """Set the hyper-parameters GMF, MLP and NeuMF share (their ``__init__`` locals)."""
    for name in ("epochs", "batch_size", "n_negatives", "optimizer", "lr", "reg", "patience",
                 "validate_every", "device", "seed", "eps", "adv_reg", "adv_start_epoch",
                 "adv_blocks", "adv_norm"):
        setattr(model, name, values[name])
