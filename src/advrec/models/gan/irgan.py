"""IRGAN for item recommendation (Wang et al., *IRGAN: A Minimax Game for Unifying Generative and
Discriminative Information Retrieval Models*, SIGIR 2017).

Generator p_θ(i|u) = softmax_i(g_θ(u,i)/τ), g = p_u·q_i + b_i; discriminator D(i|u) = σ(f_φ(u,i)),
f = p'_u·q'_i + b'_i. Each outer epoch runs ``d_epochs`` discriminator passes (real positives vs
items sampled from the generator, logistic loss) and ``g_epochs`` generator passes (REINFORCE with
importance sampling, or a Gumbel-softmax relaxation). Defaults follow the official code
(geek-ai/irgan, ``item_recommendation/cf_gan.py``); the divergences are listed on :class:`IRGAN`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import UniformSampler
from advrec.data.splits import complement, validation_split
from advrec.errors import ConfigError, DataError, ParamError
from advrec.metric_names import RANK_METRICS
from advrec.models.base import (
    DEVICE,
    Capabilities,
    MetricAtK,
    Recommender,
    _csr_coords,
    id_array,
    resolve_device,
    validation_value,
)
from advrec.models.gan.cfgan import EpochSelector
from advrec.training.progress import epoch_progress
from advrec.validation import Bool, Choice, Int, Real

if TYPE_CHECKING:
    from advrec.models.gan.irgan_net import MFScorer

sp = lazy("scipy.sparse")
torch = lazy("torch")
F = lazy("torch.nn.functional")
nn = lazy("torch.nn")

GENERATOR_UPDATES = ("reinforce", "gumbel")
RECOMMENDERS = ("generator", "discriminator")
PRETRAIN = ("dns", "none")
BACKENDS = ("auto", "torch", "numba")
VALID_METHODS = ("random", "leave_one_out")
_SAMPLE_CHUNK = 128  # users per chunk when sampling the discriminator's negatives
VALID_METRIC = MetricAtK(RANK_METRICS)
POSITIVE = Real(low=0, closed="neither")


# ----------------------------------------------------------------------------- the two players


# ----------------------------------------------------------------------------- compiled D pass


# ----------------------------------------------------------------------------- estimators
def proposal(prob: torch.Tensor, pos_mask: torch.Tensor, sample_lambda: float) -> torch.Tensor:
    """The official importance-sampling proposal P_n = (1 − λ)·p_θ + λ·uniform(user's positives).

    ``prob`` and ``pos_mask`` are ``[users, n_items]``; a row with no positive keeps p_θ.
    """
    counts = pos_mask.sum(1, keepdim=True)
    uniform = torch.where(counts > 0, pos_mask / counts.clamp(min=1), prob)
    return (1.0 - sample_lambda) * prob + sample_lambda * uniform


def official_reward(d_logits: torch.Tensor) -> torch.Tensor:
    """The official code's reward 2·(σ(f) − 0.5) (the paper writes log(1 + exp(f)))."""
    return 2.0 * (torch.sigmoid(d_logits) - 0.5)


def reinforce_loss(log_prob: torch.Tensor, samples: torch.Tensor, rewards: torch.Tensor,
                   weights: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Σ_u mean_s −log p_θ(s|u)·w(s)·r(s), the REINFORCE surrogate with importance weights.

    ``log_prob`` ``[users, n_items]`` carries the generator's graph; ``samples``, ``rewards``,
    ``weights`` (p_θ/P_n) and the ``valid`` mask are ``[users, slots]`` constants. Its gradient is
    an unbiased estimate of −∇_θ Σ_u E_{i∼p_θ(·|u)}[r(i)] when the samples are drawn from P_n.
    """
    picked = log_prob.gather(1, samples)
    valid = valid.to(log_prob.dtype)
    per_user = -(picked * (rewards * weights).detach() * valid).sum(1)
    return (per_user / valid.sum(1).clamp(min=1)).sum()


def gumbel_softmax_sample(log_prob: torch.Tensor, tau: float, gen: torch.Generator | None = None,
                          hard: bool = False) -> torch.Tensor:
    """v = softmax((log p + g)/τ) with g = −log(−log U) ~ Gumbel(0, 1), U ~ U(0, 1) from ``gen``.

    Differentiable in ``log_prob``; ``hard`` returns the straight-through one-hot (forward: the
    argmax one-hot, backward: the gradient of the soft sample).
    """
    if not tau > 0:
        raise ConfigError(f"the Gumbel-softmax temperature must be > 0, got {tau!r}")
    uniform = torch.rand(log_prob.shape, generator=gen, device=log_prob.device,
                         dtype=log_prob.dtype)
    noise = uniform.clamp_(min=torch.finfo(log_prob.dtype).tiny).log_().neg_().log_().neg_()
    soft = torch.softmax((log_prob + noise) / tau, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return one_hot - soft.detach() + soft


def gumbel_generator_loss(v: torch.Tensor, d_logits: torch.Tensor, rows: torch.Tensor,
                          n_users: int) -> torch.Tensor:
    """Σ_u mean_s −log σ(Σ_i v_si f(u_s, i)): the discriminator scores each relaxed sample.

    ``v`` ``[slots, n_items]`` (from :func:`gumbel_softmax_sample`), ``d_logits`` ``[users,
    n_items]`` the discriminator's f, ``rows[s]`` the user row of slot s. The gradient reaches the
    generator through ``v``; f needs no gradient (f is linear in the item, so scoring the relaxed
    item embedding Σ_i v_i q'_i with its bias gives the same value).
    """
    relaxed = (v * d_logits[rows]).sum(-1)
    per_slot = F.softplus(-relaxed)
    totals = per_slot.new_zeros(n_users).index_add(0, rows, per_slot)
    counts = torch.bincount(rows, minlength=n_users).clamp(min=1).to(per_slot.dtype)
    return (totals / counts).sum()


# ----------------------------------------------------------------------------- data helpers
@dataclass
class _Positives:
    """Per-user training positives as CSR arrays (numpy) and the users that have any."""

    csr: sp.csr_matrix
    counts: np.ndarray
    users: np.ndarray

    @classmethod
    def build(cls, data: Interactions) -> _Positives:
        csr = data.binary_csr
        counts = np.diff(csr.indptr).astype(np.int64)
        return cls(csr, counts, np.flatnonzero(counts > 0))

    def mask(self, users: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
        """Dense ``[len(users), n_items]`` 0/1 float mask of the users' positives."""
        rows, cols = _csr_coords(self.csr, users)
        out = torch.zeros(len(users), n_items, device=device)
        out[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = 1.0
        return out

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(user, item) arrays of every positive, grouped by user."""
        coo = self.csr.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)


def _sample_rows(probs: torch.Tensor, counts: torch.Tensor, gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``counts[r]`` draws with replacement from each row's distribution: ``[rows, max]`` items and
    the validity mask (slot j of row r is used when j < counts[r])."""
    width = max(int(counts.max()), 1)
    items = torch.multinomial(probs, width, replacement=True, generator=gen)
    valid = torch.arange(width, device=probs.device)[None, :] < counts[:, None]
    return items, valid


# ----------------------------------------------------------------------------- the model
class IRGAN(Recommender):
    """IRGAN (item recommendation): a generator and a discriminator MF played against each other.

    Per outer epoch (``epochs``, official 15): ``d_epochs`` (100) discriminator passes over the
    training positives, each positive paired with an item drawn from softmax(g/``temperature``)
    (τ = 0.2, resampled every ``d_resample_every`` = 5 passes), logistic loss, batches of
    ``d_batch_size`` = 16 pairs, SGD ``d_lr`` = 0.001, ``d_reg`` = 0.1; then ``g_epochs`` (50)
    generator passes over the users with positives: ⌈``samples_per_positive``·|pos_u|⌉ (2·|pos_u|)
    items drawn from P_n = (1 − λ)·p_θ + λ·uniform(pos_u) (λ = ``sample_lambda`` = 0.2), reward
    2·(σ(f) − 0.5)·p_θ/P_n, loss mean_s −log p_θ(s)·reward, SGD ``g_lr`` = 0.001, ``g_reg`` = 0.
    ``generator_update="gumbel"`` replaces REINFORCE by a Gumbel-softmax relaxation through which
    the discriminator's gradient reaches θ (``gumbel_temperature``, ``gumbel_hard``).

    Pre-training (``pretrain="dns"``, official): the generator starts from an MF with item bias
    trained by BPR with dynamic negative sampling (the best of ``dns_k`` = 5 uniform non-positive
    candidates under the epoch-start model), SGD lr 0.05, reg 0.1, emb 5, the epoch with the best
    validation metric of ``pretrain_epochs`` (200); ``dns_k=1`` is plain BPR.
    ``fit(train, init_from=model)`` starts from a fitted BPR-MF (its P, Q; zero bias) or another
    IRGAN's pre-trained MF instead. The discriminator starts from U(±0.05) (official) unless
    ``pretrain_discriminator``.

    Epoch selection: ``fit(train, validate=f)`` calls ``f(model) -> float`` (higher is better)
    after every DNS pre-training epoch (the model then scores with the MF being pre-trained) and
    after every outer epoch (scores of the ``recommender``), and keeps the best; the model does
    not measure itself (the caller builds ``f``, e.g. with :mod:`advrec.evaluation.selection`).
    ``valid_ratio`` (``valid_method``, ``valid_metric``: precision@5) declares the hold-out to
    select on: :meth:`holdout_split` carves that share of each user's positives, and
    ``fit(train, validate=f, valid=held)`` learns from the rest (epoch 0 is the pre-trained
    start). ``fit(train, **advrec.evaluation.holdout_validation(model, train))`` does all of it;
    ``valid_ratio=0`` without ``validate``: no selection, the last epoch is kept.
    ``history_`` lists per epoch the mean G loss, D loss, mean reward and the validation metric.
    Selection guard (CFGAN's :class:`~advrec.models.gan.cfgan.EpochSelector`): outer epochs
    before ``min_select_epoch`` (default 0: the pre-trained start is a candidate; capped at
    ``epochs``) are never chosen, and when the chosen epoch is no better than popularity on the
    same split (``validate.popularity``, which :func:`advrec.evaluation.metric_validator` sets)
    fit warns (``SelectionWarning``); ``selection_`` records the chosen epoch, its value and
    popularity's, and the chosen ``history_`` row is flagged (``selected``, ``popularity``,
    ``selection_warning``).

    Divergences from the official code, all documented here:

    * the official code applies τ = 0.2 only when sampling the discriminator's negatives; the
      REINFORCE step uses softmax(g) (τ = 1). Both are kept: ``temperature`` (0.2) for the D
      samples, ``policy_temperature`` (1.0) for p_θ in the G step (set both to 0.2 for the paper's
      single-τ formulation);
    * the generator step is batched over ``g_batch_users`` users (official: one SGD step per user);
      the per-user losses are summed, so each user's update is the official one and the shared
      item parameters receive the sum of the batch's updates;
    * the discriminator's L2 term is per example, d_reg·(‖p_u‖² + ‖q_i‖² + b_i²): exactly the
      official ``0.1/BATCH_SIZE · l2_loss`` broadcast over the 2·16 examples of a batch, but
      independent of ``d_batch_size``;
    * D pairs and DNS triples are shuffled every pass (official: in user order); the generator's
      and the D-sampling batches group users of similar positive counts (so the per-row sample
      widths match), in random order;
    * DNS pre-training runs SGD on mini-batches of ``pretrain_batch_size`` = 256 triples with the
      summed loss (official: one triple per step; 30 epochs at batch 1 take ~4 min on our CPU and
      reach a lower validation score than 200 epochs at batch 256, ~20 s);
    * the epoch is selected on a validation split of the training data (official: on test P@5,
      after every generator pass);
    * ``threshold`` (optional) keeps ratings ≥ threshold as positives; users without any positive
      are skipped (as the official code, which only iterates users with positives).
    """

    name = "irgan"
    _scored_net: MFScorer | None = None  # what score() uses while validate measures training
    # warm start: a BPR-MF's P, Q or another IRGAN's pre-trained MF; validation picks the best
    # epoch (no patience: not early stopping)
    capabilities = Capabilities(warm_start=("bprmf", "apr", "irgan"),
                                fit_options=("validate", "valid", "init_from", "progress"))
    _param_constraints: ClassVar[dict[str, Any]] = {
        "emb_dim": Int(low=1),
        "epochs": Int(low=0),
        "d_epochs": Int(low=0),
        "g_epochs": Int(low=0),
        "d_resample_every": Int(low=1),
        "d_batch_size": Int(low=1),
        "g_batch_users": Int(low=1),
        "samples_per_positive": POSITIVE,
        "temperature": POSITIVE,
        "policy_temperature": POSITIVE,
        "sample_lambda": Real(low=0, high=1),
        "d_lr": POSITIVE,
        "g_lr": POSITIVE,
        "d_reg": Real(low=0),
        "g_reg": Real(low=0),
        "init_delta": POSITIVE,
        "generator_update": Choice(GENERATOR_UPDATES),
        "gumbel_temperature": POSITIVE,
        "gumbel_hard": Bool(),
        "recommender": Choice(RECOMMENDERS),
        "pretrain": Choice(PRETRAIN),
        "pretrain_epochs": Int(low=0),
        "pretrain_lr": POSITIVE,
        "pretrain_reg": Real(low=0),
        "pretrain_batch_size": Int(low=1),
        "dns_k": Int(low=1),
        "pretrain_discriminator": Bool(),
        "backend": Choice(BACKENDS),
        "threshold": Real(none_ok=True),
        "valid_ratio": Real(low=0, high=1, closed="left"),
        "valid_method": Choice(VALID_METHODS),
        "valid_metric": VALID_METRIC,
        "min_select_epoch": Int(low=0),
        "device": DEVICE,
        # the discriminator's generator is seeded with seed·1000 + 2 (a torch seed is < 2**64)
        "seed": Int(low=0, high=(2 ** 64 - 1 - 2) // 1000),
    }

    def __init__(
        self,
        emb_dim: int = 5,
        epochs: int = 15,
        d_epochs: int = 100,
        g_epochs: int = 50,
        d_resample_every: int = 5,
        d_batch_size: int = 16,
        g_batch_users: int = 64,
        samples_per_positive: float = 2.0,
        temperature: float = 0.2,
        policy_temperature: float = 1.0,
        sample_lambda: float = 0.2,
        d_lr: float = 0.001,
        g_lr: float = 0.001,
        d_reg: float = 0.1,
        g_reg: float = 0.0,
        init_delta: float = 0.05,
        generator_update: str = "reinforce",
        gumbel_temperature: float = 0.5,
        gumbel_hard: bool = False,
        recommender: str = "generator",
        pretrain: str = "dns",
        pretrain_epochs: int = 200,
        pretrain_lr: float = 0.05,
        pretrain_reg: float = 0.1,
        pretrain_batch_size: int = 256,
        dns_k: int = 5,
        pretrain_discriminator: bool = False,
        backend: str = "auto",
        threshold: float | None = None,
        valid_ratio: float = 0.1,
        valid_method: str = "random",
        valid_metric: str = "precision@5",
        min_select_epoch: int = 0,
        device: str | None = None,
        seed: int = 0,
    ):
        self.emb_dim = emb_dim
        self.epochs = epochs
        self.d_epochs = d_epochs
        self.g_epochs = g_epochs
        self.d_resample_every = d_resample_every
        self.d_batch_size = d_batch_size
        self.g_batch_users = g_batch_users
        self.samples_per_positive = samples_per_positive
        self.temperature = temperature
        self.policy_temperature = policy_temperature
        self.sample_lambda = sample_lambda
        self.d_lr = d_lr
        self.g_lr = g_lr
        self.d_reg = d_reg
        self.g_reg = g_reg
        self.init_delta = init_delta
        self.generator_update = generator_update
        self.gumbel_temperature = gumbel_temperature
        self.gumbel_hard = gumbel_hard
        self.recommender = recommender
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_reg = pretrain_reg
        self.pretrain_batch_size = pretrain_batch_size
        self.dns_k = dns_k
        self.pretrain_discriminator = pretrain_discriminator
        self.backend = backend
        self.threshold = threshold
        self.valid_ratio = valid_ratio
        self.valid_method = valid_method
        self.valid_metric = valid_metric
        self.min_select_epoch = min_select_epoch
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ checks
    @classmethod
    def _check_param_combinations(cls, values: dict[str, Any]) -> None:
        device = values["device"]
        if (values["backend"] == "numba" and device is not None and str(device) != "auto"
                and str(device).split(":")[0] != "cpu"):
            raise ParamError("backend", f"'numba' needs device 'cpu', got {str(device)!r}; "
                                        f"use backend 'torch'")

    def _resolved_backend(self) -> str:
        """"numba" (compiled discriminator pass) on CPU under "auto", else "torch"."""
        cpu = self.device_.type == "cpu"
        if self.backend == "numba" and not cpu:
            raise ConfigError("backend 'numba' needs device 'cpu'")
        if self.backend == "auto":
            return "numba" if cpu else "torch"
        return self.backend

    def _positives(self, train: Interactions) -> Interactions:
        """The training positives: ratings ≥ ``threshold`` when set, else every interaction."""
        if self.threshold is None or train.ratings is None:
            data = train
        else:
            data = train.subset(train.ratings >= np.float32(self.threshold))
        if len(data) == 0:
            raise DataError(f"no user has a positive interaction (threshold={self.threshold!r}); "
                            "IRGAN needs positives to train the discriminator on")
        return data

    # ------------------------------------------------------------------ fit
    def _fit(self, train: Interactions, validate: Callable[[IRGAN], float] | None = None,
             valid: Interactions | None = None, init_from: Recommender | None = None,
             progress: bool | None = None) -> None:
        """Pre-train, then play the minimax game; with ``validate`` the best epoch (by
        ``validate(model)``) is kept, learned from ``train`` without ``valid`` (the hold-out
        ``validate`` measures on), if given.

        ``init_from``: a fitted BPR-MF (P, Q copied into the generator, zero bias) or IRGAN (its
        pre-trained MF) instead of pre-training here.
        """
        self.device_ = resolve_device(self.device)
        self.backend_ = self._resolved_backend()
        self._gen = torch.Generator(device=self.device_).manual_seed(int(self.seed))
        fit_data = self._positives(train)
        if valid is not None:
            if validate is None:
                raise ParamError("valid", "is the held-out part of train that validate measures "
                                          "on: pass validate too (advrec.evaluation."
                                          "holdout_validation(model, train) builds both)")
            fit_data = self._positives(complement(train, valid, ("train", "valid")))
        elif validate is None and self.valid_ratio > 0:
            raise ParamError("validate", f"needed: valid_ratio={self.valid_ratio} selects the "
                                         f"epoch on a hold-out, measured by a caller's "
                                         f"validate(model) -> float; pass fit(train, "
                                         f"**holdout_validation(model, train)) (advrec."
                                         f"evaluation), or set valid_ratio=0 to keep the last "
                                         f"epoch")
        self.positives_ = _Positives.build(fit_data)
        self._validate = (None if validate is None
                          else lambda net: self._measure(validate, net))
        start = time.perf_counter()
        self.pretrained_ = self._initial_state(fit_data, init_from, progress)
        self.pretrain_time_ = time.perf_counter() - start
        self.generator_ = self._scorer(self.pretrained_)
        self.discriminator_ = self._initial_discriminator()
        self.fitted_ = True  # validate scores the model while it trains
        selector = (None if validate is None else
                    EpochSelector(self.name, validate, int(self.min_select_epoch),
                                  int(self.epochs)))
        self._play(selector, progress)
        self.selection_ = None if selector is None else selector.finish()
        if selector is not None:
            selector.mark(self.history_[self.best_epoch_], self.selection_)

    def holdout_split(self, train: Interactions) -> tuple[Interactions, Interactions] | None:
        """``(rest, held)``: the validation hold-out ``valid_ratio`` asks for (that share of each
        user's positives, by ``valid_method``, seeded by ``seed``) and the positives the model
        learns from while it picks the epoch; None when ``valid_ratio`` is 0. Pass ``held`` as
        ``fit(train, validate=f, valid=held)`` with ``f`` measuring on ``held`` with ``rest``'s
        items masked (:func:`advrec.evaluation.holdout_validation` builds both)."""
        params = self._checked_params(self.get_params())
        if not isinstance(train, Interactions):
            raise ParamError("train", f"expected an Interactions, got {type(train).__name__}")
        if params["valid_ratio"] == 0:
            return None
        positives = self._positives(train)
        _, held = validation_split(positives, method=params["valid_method"],
                                   ratio=float(params["valid_ratio"]), seed=int(params["seed"]))
        if len(held) == 0:
            raise DataError("the validation split is empty (too few positives per user); "
                            "set valid_ratio=0 or pass another validate")
        return complement(positives, held, ("train", "valid")), held

    def _measure(self, validate: Callable[[IRGAN], float], net: MFScorer) -> float:
        """``validate(self)`` while the model scores with ``net`` (the MF being pre-trained, the
        generator or the discriminator)."""
        self._scored_net = net
        try:
            return validation_value(validate(self))
        finally:
            self._scored_net = None

    def _scorer(self, state: dict[str, torch.Tensor]) -> MFScorer:
        from advrec.models.gan.irgan_net import MFScorer

        net = MFScorer(self.n_users_, self.n_items_, int(self.emb_dim))
        net.load_state_dict({k: v.detach().clone().cpu() for k, v in state.items()})
        return net.to(self.device_)

    def _random_scorer(self, offset: int) -> MFScorer:
        """A U(±init_delta) scorer; ``offset`` keeps the generator's and discriminator's apart."""
        from advrec.models.gan.irgan_net import MFScorer

        cpu = torch.Generator().manual_seed(int(self.seed) * 1000 + offset)
        net = MFScorer(self.n_users_, self.n_items_, int(self.emb_dim))
        return net.reset_uniform(float(self.init_delta), cpu).to(self.device_)

    def _initial_discriminator(self) -> MFScorer:
        if self.pretrain_discriminator:
            return self._scorer(self.pretrained_)
        return self._random_scorer(2)

    # ------------------------------------------------------------------ pre-training
    def _initial_state(self, data: Interactions, init_from: Recommender | None,
                       progress: bool | None) -> dict[str, torch.Tensor]:
        if init_from is not None:
            return self._state_from(init_from)
        if self.pretrain == "none" or int(self.pretrain_epochs) == 0:
            return {k: v.detach() for k, v in self._random_scorer(1).state_dict().items()}
        return self._pretrain_dns(data, progress)

    def _state_from(self, model: Recommender) -> dict[str, torch.Tensor]:
        """The generator's start from a fitted BPR-MF (zero bias) or IRGAN (its pre-trained MF)."""
        if not getattr(model, "is_fitted", False):
            raise ConfigError("init_from must be a fitted model")
        if (model.n_users_, model.n_items_) != (self.n_users_, self.n_items_):
            raise ConfigError(f"init_from was fitted on {model.n_users_} × {model.n_items_}, the "
                              f"data has {self.n_users_} × {self.n_items_}")
        if isinstance(model, IRGAN):
            state = dict(model.pretrained_)
        elif {"user", "item"} <= set(model.capabilities.parameter_blocks):
            blocks = model.parameter_blocks()
            state = {"user": blocks["user"], "item": blocks["item"],
                     "bias": torch.zeros(self.n_items_)}
        else:
            raise ConfigError(f"cannot start IRGAN from a {type(model).__name__}")
        if state["user"].shape[1] != int(self.emb_dim):
            raise ConfigError(f"init_from has {state['user'].shape[1]} factors, emb_dim is "
                              f"{self.emb_dim}")
        return {k: v.detach().float().cpu().clone() for k, v in state.items()}

    def _pretrain_dns(self, data: Interactions, progress: bool | None
                      ) -> dict[str, torch.Tensor]:
        """BPR with dynamic negative sampling (the official ``cf_dns.py``), best epoch on valid."""
        net = self._random_scorer(1)
        sampler = UniformSampler(data, seed=int(self.seed))
        best, best_value = copy.deepcopy(net.state_dict()), -math.inf
        self.pretrain_history_ = []
        self.fitted_ = True  # validate scores the model (with this net) while it pre-trains
        with epoch_progress(progress, "irgan: DNS pre-training", int(self.pretrain_epochs),
                            0) as bar:
            for epoch in range(1, int(self.pretrain_epochs) + 1):
                loss = self._dns_epoch(net, sampler)
                value = self._validate(net) if self._validate is not None else -loss
                self.pretrain_history_.append({"epoch": epoch, "loss": loss, "valid": value})
                if value > best_value:
                    best, best_value = copy.deepcopy(net.state_dict()), value
                bar({"loss": loss, "validation": value})
        return {k: v.detach().cpu() for k, v in best.items()}

    def _dns_epoch(self, net: MFScorer, sampler: UniformSampler) -> float:
        """One DNS epoch: negatives picked with the epoch-start scores, then SGD mini-batches."""
        users, pos, _ = sampler.triples()
        cands = sampler.negatives(users, n=int(self.dns_k))
        dev = self.device_
        u, p, c = (torch.as_tensor(a, device=dev) for a in (users, pos, cands))
        with torch.no_grad():
            pick = net.pair_scores(u[:, None], c).argmax(1)
        neg = c.gather(1, pick[:, None])[:, 0]
        total, bs = 0.0, int(self.pretrain_batch_size)
        for start in range(0, len(u), bs):
            sl = slice(start, start + bs)
            total += net.bpr_step(u[sl], p[sl], neg[sl], float(self.pretrain_lr),
                                  float(self.pretrain_reg))
        return total / max(len(u), 1)

    # ------------------------------------------------------------------ the game
    def _play(self, selector: EpochSelector | None, progress: bool | None) -> None:
        """Outer epochs of d-steps then g-steps, keeping the best eligible epoch on validation
        (``selector``; without it, the last epoch). Epoch 0, the start, is a candidate too."""
        record = self._record(0, math.nan, math.nan, math.nan, 0.0)
        best = self._keep(selector, 0, record, None)
        with epoch_progress(progress, "irgan", int(self.epochs), 0) as bar:
            for epoch in range(1, int(self.epochs) + 1):
                start = time.perf_counter()
                d_loss = self._d_phase()
                g_loss, reward = self._g_phase()
                record = self._record(epoch, g_loss, d_loss, reward, time.perf_counter() - start)
                best = self._keep(selector, epoch, record, best)
                bar({"loss": g_loss, "validation": record["valid"]})
        self._restore(best)

    def _keep(self, selector: EpochSelector | None, epoch: int, record: dict,
              best: dict[str, dict[str, torch.Tensor]] | None
              ) -> dict[str, dict[str, torch.Tensor]] | None:
        """The players to restore at the end: this epoch's when ``selector`` takes it (without
        a selector: always, so the last epoch is kept), else ``best``."""
        if selector is None or selector.offer(epoch, record["valid"]):
            self.best_epoch_ = epoch
            return self._snapshot()
        return best

    def _record(self, epoch: int, g_loss: float, d_loss: float, reward: float,
                seconds: float) -> dict:
        if epoch == 0:
            self.history_ = []
        net = self.generator_ if self.recommender == "generator" else self.discriminator_
        value = self._validate(net) if self._validate is not None else math.nan
        row = {"epoch": epoch, "g_loss": g_loss, "d_loss": d_loss, "reward": reward,
               "valid": value, "seconds": seconds}
        self.history_.append(row)
        return row

    def _snapshot(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"g": copy.deepcopy(self.generator_.state_dict()),
                "d": copy.deepcopy(self.discriminator_.state_dict())}

    def _restore(self, snap: dict[str, dict[str, torch.Tensor]]) -> None:
        self.generator_.load_state_dict(snap["g"])
        self.discriminator_.load_state_dict(snap["d"])

    # ------------------------------------------------------------------ discriminator
    def _d_phase(self) -> float:
        """``d_epochs`` passes; generator negatives redrawn every ``d_resample_every`` passes."""
        total, n = 0.0, 0
        for d_epoch in range(int(self.d_epochs)):
            if d_epoch % int(self.d_resample_every) == 0:
                users, pos, neg = self._d_pairs()
            total += self._d_epoch(users, pos, neg)
            n += 2 * len(users)
        return total / max(n, 1)

    def _d_pairs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every positive (u, i) with one item drawn from softmax(g(u, ·)/τ) for the same user."""
        users, items = self.positives_.pairs()
        dev = self.device_
        negs = torch.empty(len(users), dtype=torch.long, device=dev)
        counts = torch.as_tensor(self.positives_.counts, device=dev)
        offsets = torch.as_tensor(np.cumsum(self.positives_.counts) - self.positives_.counts,
                                  device=dev)
        for chunk in self._user_batches(_SAMPLE_CHUNK):
            chunk = torch.as_tensor(chunk, device=dev)
            with torch.no_grad():
                probs = torch.softmax(self.generator_.all_scores(chunk) / self.temperature, 1)
            drawn, valid = _sample_rows(probs, counts[chunk], self._gen)
            slots = offsets[chunk][:, None] + torch.arange(drawn.shape[1], device=dev)
            negs[slots[valid]] = drawn[valid]  # the CSR pairs are grouped by user
        return torch.as_tensor(users, device=dev), torch.as_tensor(items, device=dev), negs

    def _user_batches(self, size: int) -> list[np.ndarray]:
        """The users with positives in batches of ``size`` of similar positive counts (so the
        per-row sample widths match), in random order; seeded by the model's generator."""
        active = self.positives_.users
        perm = torch.randperm(len(active), generator=self._gen, device=self.device_).cpu().numpy()
        shuffled = active[perm]
        by_count = shuffled[np.argsort(self.positives_.counts[shuffled], kind="stable")]
        batches = [by_count[i:i + size] for i in range(0, len(by_count), size)]
        order = torch.randperm(len(batches), generator=self._gen, device=self.device_).cpu()
        return [batches[i] for i in order.tolist()]

    def _d_epoch(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> float:
        """One shuffled pass of logistic SGD over the (u, pos, 1) and (u, neg, 0) examples."""
        from advrec.models.gan.irgan_net import d_epoch_kernel as _d_epoch_kernel

        order = torch.randperm(len(users), generator=self._gen, device=self.device_)
        users, pos, neg = users[order], pos[order], neg[order]
        bs, lr, reg = int(self.d_batch_size), float(self.d_lr), float(self.d_reg)
        net = self.discriminator_
        if self.backend_ == "numba":
            d = int(self.emb_dim)
            work = (np.empty((bs, d)), np.empty((bs, d)), np.empty((bs, d)), np.empty((bs, 2)))
            tables = (t.detach().numpy() for t in (net.user, net.item, net.bias))
            return float(_d_epoch_kernel(*tables, users.numpy(), pos.numpy(), neg.numpy(),
                                         bs, lr, reg, *work))
        total = torch.zeros((), device=self.device_)
        for u, i, j in zip(users.split(bs), pos.split(bs), neg.split(bs), strict=True):
            total += net.logistic_pair_step(u, i, j, lr, reg)
        return float(total)

    # ------------------------------------------------------------------ generator
    def _g_phase(self) -> tuple[float, float]:
        """``g_epochs`` passes over the users with positives; mean loss and reward per user."""
        total_loss, total_reward, n = 0.0, 0.0, 0
        for _ in range(int(self.g_epochs)):
            for users in self._user_batches(int(self.g_batch_users)):
                loss, reward = self.generator_loss(users)
                self._sgd(self.generator_, loss, float(self.g_lr))
                total_loss, total_reward = total_loss + float(loss.detach()), total_reward + reward
                n += len(users)
        return total_loss / max(n, 1), total_reward / max(n, 1)

    @staticmethod
    def _sgd(net: nn.Module, loss: torch.Tensor, lr: float) -> None:
        """Plain SGD step θ ← θ − lr·∇loss (what TensorFlow's GradientDescentOptimizer does)."""
        params = [p for p in net.parameters()]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                if g is not None:
                    p.add_(g, alpha=-lr)

    def generator_loss(self, users: np.ndarray) -> tuple[torch.Tensor, float]:
        """The generator's loss on a batch of users (with autograd graph) and their summed mean
        reward 2·(σ(f) − 0.5) of the generated items; REINFORCE or Gumbel per the parameters."""
        self._check_fitted()
        users = id_array(users, "users", self.n_users_).reshape(-1)
        u = torch.as_tensor(users, device=self.device_)
        log_prob = torch.log_softmax(self.generator_.all_scores(u) / self.policy_temperature, 1)
        counts = np.ceil(float(self.samples_per_positive) * self.positives_.counts[users])
        counts = torch.as_tensor(counts.astype(np.int64), device=self.device_)
        if self.generator_update == "gumbel":
            loss, reward = self._gumbel_loss(u, log_prob, counts)
        else:
            loss, reward = self._reinforce_loss(u, users, log_prob, counts)
        return loss + self._g_l2(u), reward

    def _reinforce_loss(self, u: torch.Tensor, users: np.ndarray, log_prob: torch.Tensor,
                        counts: torch.Tensor) -> tuple[torch.Tensor, float]:
        with torch.no_grad():
            prob = log_prob.exp()
            pn = proposal(prob, self.positives_.mask(users, self.n_items_, self.device_),
                          float(self.sample_lambda))
            samples, valid = _sample_rows(pn, counts, self._gen)
            reward = official_reward(self.discriminator_.pair_scores(u[:, None], samples))
            weights = prob.gather(1, samples) / pn.gather(1, samples)
        loss = reinforce_loss(log_prob, samples, reward, weights, valid)
        mean_reward = ((reward * valid).sum(1) / valid.sum(1)).sum()
        return loss, float(mean_reward)

    def _gumbel_loss(self, u: torch.Tensor, log_prob: torch.Tensor, counts: torch.Tensor
                     ) -> tuple[torch.Tensor, float]:
        rows = torch.repeat_interleave(torch.arange(len(u), device=self.device_), counts)
        v = gumbel_softmax_sample(log_prob[rows], float(self.gumbel_temperature), self._gen,
                                  bool(self.gumbel_hard))
        with torch.no_grad():
            d_logits = self.discriminator_.all_scores(u)
        loss = gumbel_generator_loss(v, d_logits, rows, len(u))
        with torch.no_grad():
            reward = official_reward((v.detach() * d_logits[rows]).sum(-1))
            per_user = torch.zeros(len(u), device=self.device_).index_add(0, rows, reward)
        return loss, float((per_user / counts).sum())

    def _g_l2(self, u: torch.Tensor) -> torch.Tensor | float:
        """g_reg·l2_loss of the batch's user rows and the whole item table (official: g_reg = 0)."""
        if float(self.g_reg) == 0:
            return 0.0
        g = self.generator_
        return 0.5 * float(self.g_reg) * ((g.user[u] ** 2).sum() + (g.item ** 2).sum()
                                          + (g.bias ** 2).sum())

    # ------------------------------------------------------------------ scoring
    def _net(self) -> MFScorer:
        return self.generator_ if self.recommender == "generator" else self.discriminator_

    def _score(self, users: torch.Tensor) -> torch.Tensor:
        net = self._net() if self._scored_net is None else self._scored_net
        return net.all_scores(users.to(net.user.device))

    def score_pretrained(self, users=None) -> torch.Tensor:
        """Scores of the pre-trained MF the generator started from (for before/after tables)."""
        self._check_fitted()
        net = self._scorer(self.pretrained_)
        with torch.no_grad():
            return net.all_scores(self._as_users(users).to(self.device_))

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        state = {f"g.{k}": v for k, v in self.generator_.state_dict().items()}
        state.update({f"d.{k}": v for k, v in self.discriminator_.state_dict().items()})
        state.update({f"pre.{k}": v for k, v in self.pretrained_.items()})
        return state

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        d = int(self.emb_dim)
        mf = {"user": (self.n_users_, d), "item": (self.n_items_, d), "bias": (self.n_items_,)}
        return {f"{part}.{k}": shape for part in ("g", "d", "pre") for k, shape in mf.items()}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.device_ = resolve_device(self.device)
        parts = {p: {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(p + ".")}
                 for p in ("g", "d", "pre")}
        if parts["g"]["user"].shape[1] != int(self.emb_dim):
            raise ValueError(f"embedding size {parts['g']['user'].shape[1]} != emb_dim "
                             f"{self.emb_dim}")
        self.pretrained_ = {k: v.float() for k, v in parts["pre"].items()}
        self.generator_ = self._scorer(parts["g"])
        self.discriminator_ = self._scorer(parts["d"])
