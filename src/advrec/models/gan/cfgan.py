"""CFGAN (Chae, Kang, Kim, Lee. *CFGAN: A Generic Collaborative Filtering Framework based on
Generative Adversarial Networks.* CIKM 2018): a vector-wise conditional GAN.

The generator G maps a purchase vector c (the condition: a user's training row, or an item's
training column in item mode) to a real-valued vector of the same length; the discriminator D
tells real vectors from generated ones, given the condition. Following the authors' TensorFlow
code (Bigdasgit/CFGAN, ``models.py`` / ``trainer.py``), which differs from the paper's figure in
places; every difference is listed here:

* G takes the condition only (no noise z); its hidden layers use sigmoid and its output layer is
  **linear** (``g_output="linear"``; ``"sigmoid"`` is the paper's wording, available as an option).
* D sees ``[condition ‖ vector]`` through sigmoid hidden layers and a single logit.
* Fake vector fed to D: ``G(c) ⊙ (c + m_PM)`` where ``m_PM`` is the partial-masking sample, so
  every item outside the user's purchases and PM sample is zero, as in a real vector.
* Losses (means over the mini-batch, non-saturating generator loss):
  ``L_D = −log D(c, c) − log(1 − D(c, fake)) + reg_D·L2(D)`` and
  ``L_G = −log D(c, fake) + α·Σ_{j ∈ ZR} G(c)_j² + reg_G·L2(G)``, with TensorFlow's
  ``l2_loss`` (half the sum of squares) over all weights and biases. The L2 terms are applied as
  Adam's ``weight_decay`` (the identical gradient, cheaper), so logged losses exclude them.
* Negative samples: for every row, ``floor(ratio · #unobserved)`` unobserved entries drawn without
  replacement for ZR and, independently, for PM, **once per epoch** (shared by that epoch's D and
  G passes), as the official loop does; drawn for all rows at once (no Python loop).
* One epoch here = one iteration of the official outer loop: ``d_steps`` full passes of D over all
  rows (batch ``d_batch_size``), then ``g_steps`` full passes of G (batch ``g_batch_size``). The
  official ``epochs`` counts G passes, so its ML-100K setting of 750–1000 is 188–250 epochs here.
* Glorot-uniform weights, biases uniform in ±0.01, Adam (TensorFlow defaults) for both players.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.splits import complement, validation_split
from advrec.errors import DataError, ParamError, TrainingError
from advrec.metric_names import RANK_METRICS
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    MetricAtK,
    Recommender,
    resolve_device,
    validation_value,
)
from advrec.validation import Bool, Choice, Int, Real

if TYPE_CHECKING:
    from advrec.models.gan.cfgan_net import CFGANNet

torch = lazy("torch")
F = lazy("torch.nn.functional")
nn = lazy("torch.nn")

SCHEMES = ("ZR", "PM", "ZP")
MODES = ("user", "item")
ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUTS = ("linear", "sigmoid")
VALID_METRIC = MetricAtK(RANK_METRICS, ignore_case=True)

Validate = Callable[["CFGAN"], float]


# ----------------------------------------------------------------------------- epoch selection
class SelectionWarning(UserWarning):
    """The epoch a model chose on validation is no better there than popularity (ItemPop)."""


def validation_baseline(validate: Callable[[Any], float]) -> float | None:
    """Popularity's value on the split ``validate`` measures, when the callable carries it (its
    ``popularity`` attribute: :func:`advrec.evaluation.metric_validator` sets it); else None."""
    value = getattr(validate, "popularity", None)
    return None if value is None else validation_value(value)


def beats_baseline(value: float, baseline: float) -> bool:
    """``value > baseline`` beyond rounding (two means over the same users that agree to 1e-9
    are a tie: no better)."""
    return bool(value > baseline and not math.isclose(value, baseline, rel_tol=1e-9,
                                                      abs_tol=1e-12))


class EpochSelector:
    """The best epoch on validation, with the guard every model that selects its epoch shares
    (CFGAN, IRGAN).

    * Epochs before ``min_epoch`` are never selected (the minimum is capped at ``last``, the
      final epoch, so a short run still returns its last one).
    * :meth:`finish`, after training, compares the chosen epoch's value with popularity's on
      the same split (:func:`validation_baseline`, computed once); when the chosen epoch is no
      better, it warns (:class:`SelectionWarning`, one line: the model, the epoch, both values,
      what to do) and says so in the record it returns (the model keeps it as ``selection_``;
      :meth:`mark` copies it into the chosen epoch's ``history_`` row, which experiment results
      store).
    """

    def __init__(self, model: str, validate: Callable[[Any], float], min_epoch: int, last: int):
        self.model = model
        self.validate = validate
        self.min_epoch = min(int(min_epoch), int(last))
        self.epoch: int | None = None
        self.value = -math.inf

    def offer(self, epoch: int, value: float) -> bool:
        """Whether ``epoch`` (validated at ``value``) is the best so far: keep its weights."""
        if epoch < self.min_epoch:
            return False
        if self.epoch is not None and not value > self.value:
            return False
        self.epoch, self.value = int(epoch), float(value)
        return True

    def finish(self) -> dict[str, Any]:
        """The selection record ``{"epoch", "value", "metric", "popularity", "min_select_epoch",
        "beats_popularity", "warning"}``; warns when the epoch does not beat popularity
        (``popularity`` and ``beats_popularity`` are None when ``validate`` carries no baseline).
        """
        popularity = validation_baseline(self.validate)
        metric = str(getattr(self.validate, "metric", "validation"))
        beats = None if popularity is None else beats_baseline(self.value, popularity)
        message = None
        if beats is False:
            message = (f"{self.model}: the epoch chosen on validation, epoch {self.epoch} "
                       f"({metric} {self.value:.4f}), is no better than popularity (ItemPop "
                       f"{popularity:.4f}) on the same split; train more epochs, try another "
                       f"seed or a larger hold-out (valid_ratio)")
            warnings.warn(message, SelectionWarning, stacklevel=4)  # the caller of fit
        return {"epoch": self.epoch, "value": self.value, "metric": metric,
                "popularity": popularity, "min_select_epoch": self.min_epoch,
                "beats_popularity": beats, "warning": message}

    @staticmethod
    def mark(row: dict[str, Any], record: dict[str, Any]) -> None:
        """Flag ``row`` (a ``history_`` entry) as the selected epoch, with popularity's value
        and the warning, if any."""
        row["selected"] = True
        if record["popularity"] is not None:
            row["popularity"] = record["popularity"]
        if record["warning"] is not None:
            row["selection_warning"] = record["warning"]


# ----------------------------------------------------------------------------- networks
# ----------------------------------------------------------------------------- sampling and losses
def sample_unobserved(observed: torch.Tensor, ratio: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Per row, ``floor(ratio · #unobserved)`` unobserved entries, drawn without replacement.

    ``observed`` is a ``[R, C]`` 0/1 (or bool) tensor; returns a bool mask of the same shape that
    never includes an observed entry. Vectorised: uniform keys (observed ones set above 1), each
    row's k-th smallest key from one row sort, then ``keys <= threshold`` (exact up to float ties).
    """
    seen = observed.bool()
    n_take = ((~seen).sum(1).to(torch.float64) * ratio).floor().long()
    if ratio <= 0 or int(n_take.max()) == 0:
        return torch.zeros_like(seen)
    keys = torch.rand(seen.shape, generator=generator, device=seen.device)
    keys.masked_fill_(seen, 2.0)
    kth = _sorted_rows(keys).gather(1, (n_take - 1).clamp(min=0)[:, None])
    return (keys <= kth) & (n_take > 0)[:, None]


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending (NumPy's SIMD sort on CPU, several times faster than torch's)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def fake_vectors(net: CFGANNet, cond: torch.Tensor, pm_mask: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(G(c), G(c) ⊙ (c + m_PM))``: the raw output and the masked fake that D judges."""
    out = net.generate(cond)
    return out, out * (cond + pm_mask.to(cond.dtype))


def discriminator_loss(net: CFGANNet, cond: torch.Tensor, pm_mask: torch.Tensor,
                       reg: float = 0.0) -> torch.Tensor:
    """``−log D(c, c) − log(1 − D(c, fake)) + reg·L2(D)`` (batch means); G is held fixed."""
    with torch.no_grad():
        _, fake = fake_vectors(net, cond, pm_mask)
    real_logit = net.discriminate(cond, cond)
    fake_logit = net.discriminate(cond, fake)
    loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
    return loss + reg * net.dis.l2() if reg > 0 else loss


def generator_loss(net: CFGANNet, cond: torch.Tensor, pm_mask: torch.Tensor,
                   zr_mask: torch.Tensor, alpha: float = 0.0, reg: float = 0.0) -> torch.Tensor:
    """``−log D(c, fake) + α·mean_u Σ_{ZR} G(c)² + reg·L2(G)``; D's gradient reaches G."""
    out, fake = fake_vectors(net, cond, pm_mask)
    logit = net.discriminate(cond, fake)
    loss = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
    if alpha > 0:
        loss = loss + alpha * (out.square() * zr_mask.to(out.dtype)).sum(1).mean()
    return loss + reg * net.gen.l2() if reg > 0 else loss


def _adam(module: nn.Module, lr: float, reg: float) -> torch.optim.Optimizer:
    """Adam (TensorFlow's defaults) whose L2 term ``reg·½Σθ²`` enters as ``weight_decay=reg``:
    the same gradient as adding it to the loss, as the official code does. Fused where possible."""
    params = list(module.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, eps=1e-8, weight_decay=reg, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=1e-8, weight_decay=reg)


def _set_trainable(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


# ----------------------------------------------------------------------------- the model
class CFGAN(Recommender):
    """CFGAN with the ZR / PM / ZP negative-sampling schemes; scores are ``G(c_u)``.

    Defaults are the official ML-100K setting (item-based, ZP with 70 % / 70 %, α = 0.03, G 400×1,
    D 125×1, Adam 1e-4, batches 32 / 64, 4 G passes and 2 D passes per epoch, reg_G 1e-3) except
    ``epochs``.

    Epoch selection: ``fit(train, validate=f)`` calls ``f(model) -> float`` (higher is better)
    after every epoch and keeps the best epoch's weights; the model does not measure itself (the
    caller builds ``f``, e.g. with :mod:`advrec.evaluation.selection`). ``valid_ratio`` > 0 (with
    ``valid_metric``) declares the hold-out to select on: :meth:`holdout_split` carves that share
    of each user's training items, and ``fit(train, validate=f, valid=held)`` learns from the rest
    while it picks the epoch; ``refit=True`` then retrains on all of ``train`` for that many epochs
    instead. Scoring always conditions on the full training vectors.
    ``fit(train, **advrec.evaluation.holdout_validation(model, train))`` does all of it.
    ``valid_ratio=0``: no selection without ``validate``, the last epoch is kept.

    Selection guard (:class:`EpochSelector`, shared with IRGAN): epochs before
    ``min_select_epoch`` are never chosen (None, the default: a tenth of ``epochs``, at least 1;
    capped at ``epochs``), and when the chosen epoch's value is no better than popularity's on
    the same split (the ``popularity`` that :func:`advrec.evaluation.metric_validator`'s
    callables carry) fit warns (:class:`SelectionWarning`); ``selection_`` records the chosen
    epoch, its value and popularity's, and the chosen ``history_`` row is flagged
    (``selected``, ``popularity``, ``selection_warning``).
    """

    name = "cfgan"
    # validation picks the best epoch (no patience: not early stopping); no warm start
    capabilities = Capabilities(fit_options=("validate", "valid", "progress"))
    _param_constraints: ClassVar[dict[str, Any]] = {
        "epochs": Int(low=0),
        "mode": Choice(MODES),
        "scheme": Choice(SCHEMES),
        "zr_ratio": Real(low=0, high=1),
        "pm_ratio": Real(low=0, high=1),
        "alpha": Real(low=0),
        "g_hidden": Int(low=1),
        "g_layers": Int(low=1),
        "d_hidden": Int(low=1),
        "d_layers": Int(low=1),
        "activation": Choice(ACTIVATIONS),
        "g_output": Choice(OUTPUTS),
        "g_lr": Real(low=0, closed="neither"),
        "d_lr": Real(low=0, closed="neither"),
        "g_batch_size": Int(low=1),
        "d_batch_size": Int(low=1),
        "g_steps": Int(low=1),
        "d_steps": Int(low=1),
        "g_reg": Real(low=0),
        "d_reg": Real(low=0),
        "valid_ratio": Real(low=0, high=1, closed="left"),
        "valid_metric": VALID_METRIC,
        "refit": Bool(),
        "min_select_epoch": Int(low=0, none_ok=True),
        "device": DEVICE,
        "seed": SEED,
    }

    def __init__(
        self,
        epochs: int = 200,
        mode: str = "item",
        scheme: str = "ZP",
        zr_ratio: float = 0.7,
        pm_ratio: float = 0.7,
        alpha: float = 0.03,
        g_hidden: int = 400,
        g_layers: int = 1,
        d_hidden: int = 125,
        d_layers: int = 1,
        activation: str = "sigmoid",
        g_output: str = "linear",
        g_lr: float = 1e-4,
        d_lr: float = 1e-4,
        g_batch_size: int = 32,
        d_batch_size: int = 64,
        g_steps: int = 4,
        d_steps: int = 2,
        g_reg: float = 1e-3,
        d_reg: float = 0.0,
        valid_ratio: float = 0.1,
        valid_metric: str = "precision@5",
        refit: bool = False,
        min_select_epoch: int | None = None,
        device: str | None = None,
        seed: int = 0,
    ):
        self.epochs = epochs
        self.mode = mode
        self.scheme = scheme
        self.zr_ratio = zr_ratio
        self.pm_ratio = pm_ratio
        self.alpha = alpha
        self.g_hidden = g_hidden
        self.g_layers = g_layers
        self.d_hidden = d_hidden
        self.d_layers = d_layers
        self.activation = activation
        self.g_output = g_output
        self.g_lr = g_lr
        self.d_lr = d_lr
        self.g_batch_size = g_batch_size
        self.d_batch_size = d_batch_size
        self.g_steps = g_steps
        self.d_steps = d_steps
        self.g_reg = g_reg
        self.d_reg = d_reg
        self.valid_ratio = valid_ratio
        self.valid_metric = valid_metric
        self.refit = refit
        self.min_select_epoch = min_select_epoch
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_data(train: Interactions) -> None:
        empty = np.flatnonzero(train.user_counts == 0)
        if len(empty):
            raise DataError(f"CFGAN needs every user to have training items; {len(empty)} user(s) "
                            f"have none (e.g. internal id {int(empty[0])}): filter them out first")

    # ------------------------------------------------------------------ data helpers
    def _rows(self, data: Interactions) -> torch.Tensor:
        """The 0/1 vectors G works on: user rows (mode "user") or item columns (mode "item")."""
        dense = torch.from_numpy(data.binary_csr.toarray().astype(np.float32))
        dense = dense.clamp_(max=1.0)
        return (dense.T.contiguous() if self.mode == "item" else dense).to(self._device())

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def _new_net(self, n_dims: int) -> CFGANNet:
        from advrec.models.gan.cfgan_net import CFGANNet, init_mlp

        net = CFGANNet(n_dims, int(self.g_hidden), int(self.g_layers), int(self.d_hidden),
                       int(self.d_layers), self.activation, self.g_output)
        gen = torch.Generator().manual_seed(int(self.seed))
        init_mlp(net.gen, gen)
        init_mlp(net.dis, gen)
        return net.to(self._device())

    def _use(self, net: CFGANNet, cond: torch.Tensor) -> None:
        """Score with ``net`` conditioned on ``cond`` from now on (drops the score cache)."""
        self.net_, self.cond_, self._cache = net, cond, None

    # ------------------------------------------------------------------ validation
    def holdout_split(self, train: Interactions) -> tuple[Interactions, Interactions] | None:
        """``(rest, held)``: the validation hold-out ``valid_ratio`` asks for (a random share of
        each user's items of ``train``, seeded by ``seed``) and what the model learns from while
        it picks the epoch; None when ``valid_ratio`` or ``epochs`` is 0. Pass ``held`` as
        ``fit(train, validate=f, valid=held)`` with ``f`` measuring on ``held`` with ``rest``'s
        items masked (:func:`advrec.evaluation.holdout_validation` builds both)."""
        params = self._checked_params(self.get_params())
        if not isinstance(train, Interactions):
            raise ParamError("train", f"expected an Interactions, got {type(train).__name__}")
        if params["valid_ratio"] == 0 or params["epochs"] == 0:
            return None
        _, held = validation_split(train, "random", params["valid_ratio"], params["seed"])
        return complement(train, held, ("train", "valid")), held

    def _learning_part(self, train: Interactions, validate: Validate | None,
                       valid: Interactions | None) -> Interactions:
        """What the model learns from while it picks the epoch: ``train`` without ``valid``."""
        if valid is not None:
            if validate is None:
                raise ParamError("valid", "is the held-out part of train that validate measures "
                                          "on: pass validate too (advrec.evaluation."
                                          "holdout_validation(model, train) builds both)")
            return complement(train, valid, ("train", "valid"))
        if validate is None and self.valid_ratio > 0 and self.epochs > 0:
            raise ParamError("validate", f"needed: valid_ratio={self.valid_ratio} selects the "
                                         f"epoch on a hold-out, measured by a caller's "
                                         f"validate(model) -> float; pass fit(train, "
                                         f"**holdout_validation(model, train)) (advrec."
                                         f"evaluation), or set valid_ratio=0 to keep the last "
                                         f"epoch")
        return train

    # ------------------------------------------------------------------ fit
    def _fit(self, train: Interactions, validate: Validate | None = None,
             valid: Interactions | None = None, progress: bool | None = None) -> None:
        """Train; with ``validate`` the epoch with the best ``validate(model)`` is kept, learned
        from ``train`` without ``valid`` (the hold-out ``validate`` measures on), if given."""
        self._check_data(train)
        fit_part = self._learning_part(train, validate, valid)
        self.fitted_ = True  # validation scores the model while it trains
        net = self._new_net(fit_part.n_items if self.mode == "user" else fit_part.n_users)
        self._use(net, self._rows(fit_part))
        selector = (None if validate is None else
                    EpochSelector(self.name, validate, self._min_select_epoch(), int(self.epochs)))
        self.history_ = self._train(net, self.cond_, int(self.epochs), selector, progress)
        self.best_epoch_ = self._select(selector)
        self.selection_ = None
        if self.best_epoch_ is not None:
            self.selection_ = selector.finish()
            selector.mark(self.history_[self.best_epoch_ - 1], self.selection_)
        if validate is not None and self.refit and fit_part is not train and self.best_epoch_:
            self.selection_history_ = self.history_
            net = self._new_net(net.gen.layers[0].in_features)
            self.history_ = self._train(net, self._rows(train), self.best_epoch_, None, progress)
            selector.mark(self.history_[-1], self.selection_)
        self._use(net, self._rows(train))

    def _min_select_epoch(self) -> int:
        """``min_select_epoch``, or a tenth of ``epochs`` (at least 1) when it is None."""
        if self.min_select_epoch is None:
            return max(1, int(self.epochs) // 10)
        return int(self.min_select_epoch)

    def _select(self, selector: EpochSelector | None) -> int | None:
        """Restore the best validated weights; returns that epoch (None without validation)."""
        if selector is None or selector.epoch is None:
            return None
        self.net_.load_state_dict(self._best_state)
        del self._best_state
        return selector.epoch

    def _train(self, net: CFGANNet, rows: torch.Tensor, epochs: int,
               selector: EpochSelector | None, progress: bool | None) -> list[dict[str, float]]:
        """Run ``epochs`` official outer iterations; one log dict per epoch (with ``selector``:
        validated, the best eligible epoch's weights kept)."""
        from advrec.training.progress import epoch_progress

        g_opt = _adam(net.gen, float(self.g_lr), float(self.g_reg))
        d_opt = _adam(net.dis, float(self.d_lr), float(self.d_reg))
        rng = torch.Generator(device=rows.device).manual_seed(int(self.seed))
        history: list[dict[str, float]] = []
        with epoch_progress(progress, self.name, epochs, 0) as bar:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                logs = self._epoch(net, rows, g_opt, d_opt, rng)
                logs = {"epoch": epoch + 1, **logs, "seconds": time.perf_counter() - t0}
                if selector is not None:
                    self._cache = None
                    logs["validation"] = validation_value(selector.validate(self))
                    if selector.offer(epoch + 1, logs["validation"]):
                        self._best_state = copy.deepcopy(net.state_dict())
                history.append(logs)
                bar(logs)
        self._cache = None
        return history

    def _epoch(self, net: CFGANNet, rows: torch.Tensor, g_opt: torch.optim.Optimizer,
               d_opt: torch.optim.Optimizer, rng: torch.Generator) -> dict[str, float]:
        """Sample ZR/PM, then ``d_steps`` passes of D and ``g_steps`` passes of G; returns the
        mean mini-batch losses of each player over its passes."""
        zr, pm = self._negatives(rows, rng)
        d_loss = sum(self._pass(rows, int(self.d_batch_size), rng, d_opt, lambda b: (
            discriminator_loss(net, rows[b], pm[b]))) for _ in range(int(self.d_steps)))
        _set_trainable(net.dis, False)
        try:
            g_loss = sum(self._pass(rows, int(self.g_batch_size), rng, g_opt, lambda b: (
                generator_loss(net, rows[b], pm[b], zr[b], self._alpha())))
                for _ in range(int(self.g_steps)))
        finally:
            _set_trainable(net.dis, True)
        d_loss, g_loss = d_loss / int(self.d_steps), g_loss / int(self.g_steps)
        if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
            raise TrainingError(f"CFGAN diverged (G loss {g_loss}, D loss {d_loss}); "
                                     "lower the learning rates")
        return {"loss": g_loss, "g_loss": g_loss, "d_loss": d_loss}

    def _alpha(self) -> float:
        return float(self.alpha) if self.scheme in ("ZR", "ZP") else 0.0

    def _negatives(self, rows: torch.Tensor, rng: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """This epoch's ZR and PM masks (empty for a scheme that does not use them)."""
        zr_ratio = float(self.zr_ratio) if self.scheme in ("ZR", "ZP") else 0.0
        pm_ratio = float(self.pm_ratio) if self.scheme in ("PM", "ZP") else 0.0
        return sample_unobserved(rows, zr_ratio, rng), sample_unobserved(rows, pm_ratio, rng)

    @staticmethod
    def _pass(rows: torch.Tensor, batch_size: int, rng: torch.Generator,
              opt: torch.optim.Optimizer, loss_of: Callable[[torch.Tensor], torch.Tensor]
              ) -> float:
        """One shuffled pass over all rows; returns the mean mini-batch loss."""
        perm = torch.randperm(rows.shape[0], generator=rng, device=rows.device)
        total = torch.zeros((), device=rows.device)
        batches = perm.split(batch_size)
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            loss = loss_of(batch)
            loss.backward()
            opt.step()
            total += loss.detach()
        return float(total) / max(len(batches), 1)

    # ------------------------------------------------------------------ scoring
    def _all_scores(self) -> torch.Tensor:
        """G's output for every condition row, as a users × items matrix (cached)."""
        if self._cache is None:
            with torch.no_grad():
                out = self.net_.generate(self.cond_)
            self._cache = out.T.contiguous() if self.mode == "item" else out
        return self._cache

    def _score(self, users: torch.Tensor) -> torch.Tensor:
        users = users.to(self.cond_.device)
        if self.mode == "item":
            return self._all_scores()[users]
        return self.net_.generate(self.cond_[users])

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return dict(self.net_.state_dict())

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The generator's and discriminator's layers: ``gen.layers.{0,2,..}`` and
        ``dis.layers.{0,2,..}`` (weights [out, in] and biases [out]; activations in between)."""
        n_dims = self.n_items_ if self.mode == "user" else self.n_users_
        shapes: dict[str, tuple[int | None, ...]] = {}
        for part, n_in, hidden, layers, n_out in (
                ("gen", n_dims, int(self.g_hidden), int(self.g_layers), n_dims),
                ("dis", 2 * n_dims, int(self.d_hidden), int(self.d_layers), 1)):
            sizes = [n_in] + [hidden] * layers + [n_out]
            for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                shapes[f"{part}.layers.{2 * j}.weight"] = (b, a)
                shapes[f"{part}.layers.{2 * j}.bias"] = (b,)
        return shapes

    def _state_tensor_count(self) -> int:
        return 2 * (int(self.g_layers) + 1) + 2 * (int(self.d_layers) + 1)

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        from advrec.models.gan.cfgan_net import CFGANNet

        n_dims = self.n_items_ if self.mode == "user" else self.n_users_
        net = CFGANNet(n_dims, int(self.g_hidden), int(self.g_layers), int(self.d_hidden),
                       int(self.d_layers), self.activation, self.g_output)
        net.load_state_dict(state)
        dense = torch.from_numpy(self.seen_.toarray().astype(np.float32)).clamp_(max=1.0)
        cond = dense.T.contiguous() if self.mode == "item" else dense
        self._use(net.to(self._device()), cond.to(self._device()))
