"""BPR-MF (Rendle et al., UAI'09): matrix factorisation trained with the pairwise BPR loss.

Defaults follow the APR code and the RecSys 2020 hands-on: 64 factors, truncated-normal init
(std 0.01), Adagrad lr 0.05 (accumulator starting at 0.1 as in TensorFlow), batch 512, no L2,
one uniformly sampled negative per positive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from advrec._lazy import compile_once, lazy
from advrec.data.interactions import Interactions
from advrec.data.sampling import UniformSampler
from advrec.errors import ConfigError, ParamError
from advrec.models.base import (
    DEVICE,
    SEED,
    Capabilities,
    Recommender,
    TripleNetModel,
    check_warm_start_shape,
    resolve_device,
    validation_value,
)
from advrec.training.adversarial import AdversarialRegularizer
from advrec.training.optim import OPTIMIZERS
from advrec.training.trainer import Callback, Trainer
from advrec.validation import Choice, Int, Real, plain

if TYPE_CHECKING:
    from advrec.models.bpr_net import BPRNet

torch = lazy("torch")
F = lazy("torch.nn.functional")
nn = lazy("torch.nn")

BACKENDS = ("auto", "torch", "numba")


class NumbaBPRRunner:
    """The compiled CPU epoch (see `advrec.training.bpr_kernel`), with APR's term built in when the
    trainer's adversarial regulariser is switched on for the epoch.

    With ``threads > 1`` the epoch's triples are cut into that many contiguous parts, each run by
    the (GIL-free) kernel in its own thread on the shared tables, lock-free (Hogwild, Niu et al.
    NeurIPS'11, as implicit's and cornac's multi-threaded BPR): the threads' row updates may
    interleave, so the result is not bit-reproducible; one thread (the default) is.
    """

    def __init__(self, net: BPRNet, trainer: Trainer, threads: int = 1):
        from advrec.training import bpr_kernel

        compile_once("the BPR-MF CPU epoch", [bpr_kernel.bpr_epoch], bpr_kernel.warm_up)
        self.kernel = bpr_kernel
        self.net, self.trainer = net, trainer
        n_users, dim = net.user.shape
        n_items = net.item.shape[0]
        adagrad = trainer.optimizer == "adagrad"
        self.opt = bpr_kernel.ADAGRAD if adagrad else bpr_kernel.SGD
        init = trainer.initial_accumulator
        self.acc_p = torch.full((n_users, dim), init) if adagrad else torch.zeros(1, 1)
        self.acc_q = torch.full((n_items, dim), init) if adagrad else torch.zeros(1, 1)
        self.threads = max(1, int(threads))
        self.works = [bpr_kernel.make_workspace(n_users, n_items, dim, trainer.batch_size,
                                                adversarial=trainer.regularizer is not None)
                      for _ in range(self.threads)]

    def run_epoch(self, sampler: UniformSampler) -> float:
        users, pos, neg = sampler.triples()
        adv = self.trainer.active_regularizer
        eps, reg = (adv.eps, adv.reg) if adv is not None else (0.0, 0.0)
        blocks = adv.blocks if adv is not None else ()
        P, Q = self.net.user.data.numpy(), self.net.item.data.numpy()

        def part(index: int, lo: int, hi: int) -> float:
            return self.kernel.bpr_epoch(
                P, Q, users[lo:hi], pos[lo:hi], neg[lo:hi], self.trainer.batch_size,
                self.trainer.lr, self.net.reg, self.opt, self.acc_p.numpy(), self.acc_q.numpy(),
                eps, reg, "user" in blocks, "item" in blocks, self.works[index])

        bounds = np.linspace(0, len(users), self.threads + 1).astype(np.int64)
        with torch.no_grad():
            if self.threads == 1:
                total = part(0, 0, len(users))
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(self.threads) as pool:
                    total = sum(pool.map(part, range(self.threads), bounds[:-1], bounds[1:]))
        return total / max(len(users), 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"acc_p": self.acc_p, "acc_q": self.acc_q}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.acc_p.copy_(state["acc_p"])
        self.acc_q.copy_(state["acc_q"])


class TorchBPRRunner:
    """The PyTorch epoch of BPR-MF and APR (any device): the same maths as the compiled epoch in
    vectorised tensor ops, with the gradient in closed form on the batch's distinct rows (one
    gather, one ``index_add`` per table) and Adagrad/SGD stepping those rows only. No autograd,
    no sparse tensors and no full-size Δ: APR's Δ is :func:`fgsm_direction` of each distinct
    row's clean gradient, as the regulariser builds it.
    """

    def __init__(self, net: BPRNet, trainer: Trainer):
        self.net, self.trainer = net, trainer
        self.adagrad = trainer.optimizer == "adagrad"
        init = trainer.initial_accumulator
        full = (lambda t: torch.full_like(t, init)) if self.adagrad else (
            lambda t: t.new_zeros(1, 1))
        self.acc_p, self.acc_q = full(net.user.data), full(net.item.data)

    def run_epoch(self, sampler: UniformSampler) -> float:
        device = self.net.user.device
        total = torch.zeros((), dtype=torch.float64, device=device)
        adv = self.trainer.active_regularizer
        # the epoch's triples go to the device in one copy each, sliced per batch there
        users, pos, neg = (torch.from_numpy(np.ascontiguousarray(a)).to(device)
                           for a in sampler.triples())
        size = self.trainer.batch_size
        with torch.no_grad():
            for start in range(0, len(users), size):
                stop = start + size
                total += self._step(users[start:stop], pos[start:stop], neg[start:stop], adv)
        return float(total) / max(len(users), 1)  # summed on the device: one sync per epoch

    def _step(self, users, pos, neg, adv) -> torch.Tensor:
        from advrec.training.perturbation import fgsm_direction

        P, Q, reg = self.net.user.data, self.net.item.data, float(self.net.reg)
        n = len(users)
        rows_u, inv_u = _distinct(users, len(P))
        rows_i, inv_i = _distinct(torch.cat([pos, neg]), len(Q))
        p_rows, q_rows = F.embedding(rows_u, P), F.embedding(rows_i, Q)  # row gathers
        loss, g_p, g_q = _bpr_rows_gradient(p_rows, q_rows, inv_u, inv_i, n, 1.0, True)
        if adv is not None:
            blocks = adv.blocks
            p_adv = (p_rows + fgsm_direction(g_p, adv.eps, adv.norm) if "user" in blocks
                     else p_rows)
            q_adv = (q_rows + fgsm_direction(g_q, adv.eps, adv.norm) if "item" in blocks
                     else q_rows)
            _, a_p, a_q = _bpr_rows_gradient(p_adv, q_adv, inv_u, inv_i, n, adv.reg, False)
            g_p += a_p
            g_q += a_q
        if reg > 0:
            cnt_u = torch.bincount(inv_u, minlength=len(rows_u)).to(P.dtype)[:, None]
            cnt_i = torch.bincount(inv_i, minlength=len(rows_i)).to(Q.dtype)[:, None]
            loss = loss + reg * ((cnt_u * p_rows.square()).sum() + (cnt_i * q_rows.square()).sum())
            g_p += 2 * reg * cnt_u * p_rows
            g_q += 2 * reg * cnt_i * q_rows
        self._apply(P, self.acc_p, rows_u, p_rows, g_p)
        self._apply(Q, self.acc_q, rows_i, q_rows, g_q)
        return loss

    def _apply(self, table, acc, rows, values, grad) -> None:
        """Adagrad (PyTorch/TensorFlow step) or SGD on the touched rows."""
        lr = self.trainer.lr
        if self.adagrad:
            a = F.embedding(rows, acc).addcmul_(grad, grad)
            acc.index_copy_(0, rows, a)
            table.index_copy_(0, rows, values.addcdiv_(grad, a.sqrt_().add_(1e-10), value=-lr))
        else:
            table.index_copy_(0, rows, values.add_(grad, alpha=-lr))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"acc_p": self.acc_p, "acc_q": self.acc_q}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.acc_p.copy_(state["acc_p"])
        self.acc_q.copy_(state["acc_q"])


def _bpr_rows_gradient(p_rows, q_rows, inv_u, inv_i, n, scale, with_loss):
    """(Σ softplus(−x), ∂/∂p_rows, ∂/∂q_rows) of ``scale`` · the batch's BPR loss, x = p_u·(q_i −
    q_j), with the triples' rows given as indices into the distinct rows."""
    p = F.embedding(inv_u, p_rows)  # F.embedding: torch's fastest row gather on CPU
    d = F.embedding(inv_i[:n], q_rows).sub_(F.embedding(inv_i[n:], q_rows))
    x = torch.bmm(p[:, None, :], d[:, :, None]).view(-1)  # row-wise dots, no [n, d] product
    loss = F.softplus(-x).sum() if with_loss else None
    g = (-scale * torch.sigmoid(-x))[:, None]
    g_p = torch.zeros_like(p_rows).index_add_(0, inv_u, d.mul_(g))
    gp = p.mul_(g)
    g_q = torch.zeros_like(q_rows).index_add_(0, inv_i[:n], gp).index_add_(0, inv_i[n:], gp,
                                                                         alpha=-1)
    return loss, g_p, g_q


def _distinct(index: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the distinct values of ``index`` ascending, each entry's position among them) by a
    count over ``size`` slots: linear time, no sort (``torch.unique`` sorts)."""
    rows = torch.bincount(index, minlength=size).nonzero().view(-1)
    slot = torch.empty(size, dtype=torch.int64, device=index.device)
    slot[rows] = torch.arange(len(rows), device=index.device)
    return rows, slot[index]


class BPRMF(TripleNetModel, Recommender):
    """Matrix factorisation with the BPR pairwise loss, trained by the generic `Trainer`.

    ``backend``: "numba" runs a compiled epoch on the CPU (Adagrad/SGD), "torch" uses autograd
    with sparse gradients (any device, any optimiser), "auto" picks numba on CPU when it applies.
    ``patience`` enables early stopping on the ``validate`` callable given to :meth:`fit`.
    ``threads``: threads of the compiled epoch (Hogwild above 1: faster, not bit-reproducible).
    """

    name = "bprmf"
    capabilities = Capabilities(
        parameter_blocks=("user", "item"),  # BPRNet.block_names (a test checks they agree)
        early_stopping=True,
        warm_start=("bprmf", "apr"),
        fit_options=("validate", "callbacks", "checkpoint_dir", "resume", "progress",
                     "init_from"),
    )
    _param_constraints: ClassVar[dict[str, Any]] = {
        "n_factors": Int(low=1),
        "epochs": Int(low=0),
        "batch_size": Int(low=1),
        "optimizer": Choice(OPTIMIZERS),
        "lr": Real(low=0, closed="neither"),
        "reg": Real(low=0),
        "init_std": Real(low=0, closed="neither"),
        "initial_accumulator": Real(low=0),
        "patience": Int(low=1, none_ok=True),
        "validate_every": Int(low=1),
        "backend": Choice(BACKENDS),
        "threads": Int(low=1, high=1024),
        "device": DEVICE,
        "seed": SEED,
    }

    def __init__(
        self,
        n_factors: int = 64,
        epochs: int = 5,
        batch_size: int = 512,
        optimizer: str = "adagrad",
        lr: float = 0.05,
        reg: float = 0.0,
        init_std: float = 0.01,
        initial_accumulator: float = 0.1,
        patience: int | None = None,
        validate_every: int = 1,
        backend: str = "auto",
        threads: int = 1,
        device: str | None = None,
        seed: int = 0,
    ):
        self.n_factors = n_factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.reg = reg
        self.init_std = init_std
        self.initial_accumulator = initial_accumulator
        self.patience = patience
        self.validate_every = validate_every
        self.backend = backend
        self.threads = threads
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ checks
    @classmethod
    def _check_param_combinations(cls, values: dict[str, Any]) -> None:
        if values["backend"] != "numba":
            return
        if values["optimizer"] not in ("adagrad", "sgd"):
            raise ParamError("backend", f"'numba' needs optimizer adagrad or sgd, got "
                                        f"{plain(values['optimizer'])}; use backend 'torch'")
        device = values["device"]
        if device is not None and str(device) != "auto" and str(device).split(":")[0] != "cpu":
            raise ParamError("backend", f"'numba' needs device 'cpu', got {plain(str(device))}; "
                                        f"use backend 'torch'")

    def resolved_backend(self, adversarial: bool = False) -> str:
        """Which training path ``fit`` takes on this model's device."""
        dev = resolve_device(self.device)
        compiled_ok = dev.type == "cpu" and self.optimizer in ("adagrad", "sgd")
        if self.backend == "numba" and not compiled_ok:
            raise ConfigError("backend 'numba' needs device 'cpu' and optimizer adagrad or sgd")
        if self.backend == "auto":
            return "numba" if compiled_ok else "torch"
        return self.backend

    # ------------------------------------------------------------------ fit
    def init_net(self, n_users: int, n_items: int) -> BPRNet:
        """A fresh network with truncated-normal(0, init_std) weights cut at 2 std, seeded."""
        from advrec.models.bpr_net import BPRNet

        gen = torch.Generator().manual_seed(int(self.seed))
        net = BPRNet(n_users, n_items, int(self.n_factors), float(self.reg))
        with torch.no_grad():
            for table in (net.user, net.item):
                nn.init.trunc_normal_(
                    table,
                    std=self.init_std,
                    a=-2 * self.init_std,
                    b=2 * self.init_std,
                    generator=gen,
                )
        return net

    def _fit(
        self,
        train: Interactions,
        validate: Callable[[BPRMF], float] | None = None,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir=None,
        resume: bool = False,
        progress: bool | None = None,
        init_from: BPRMF | None = None,
    ) -> None:
        """Train; ``validate(model) -> float`` drives early stopping (with ``patience``).

        ``init_from`` starts from another fitted BPR-MF's embeddings (e.g. APR after BPR; the
        optimiser state starts fresh, as in the APR code).
        """
        regularizer = self._regularizer()
        backend = self.resolved_backend()
        if regularizer is not None and backend == "numba" and regularizer.norm != "l2":
            if self.backend == "numba":
                raise ConfigError("the compiled epoch supports the l2 (APR) perturbation only; "
                                  "use backend 'torch' for linf")
            backend = "torch"
        net = self.init_net(train.n_users, train.n_items)
        if init_from is not None:
            check_warm_start_shape(init_from, train)
            if init_from.net_.user.shape[1] != int(self.n_factors):
                raise ConfigError(f"init_from has {init_from.net_.user.shape[1]} factors, "
                                  f"this model {self.n_factors}")
            net.load_state_dict({k: v.detach().cpu() for k, v in
                                 init_from.net_.state_dict().items()})
        self.net_ = net.to(resolve_device(self.device))
        self.backend_ = backend
        sampler = UniformSampler(train, seed=self.seed)
        module_validate = (None if validate is None
                           else (lambda _net: validation_value(validate(self))))
        trainer = Trainer(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            optimizer=self.optimizer,
            lr=float(self.lr),
            initial_accumulator=float(self.initial_accumulator),
            regularizer=regularizer,
            regularizer_start=self._regularizer_start(),
            validate=module_validate,
            validate_every=int(self.validate_every),
            patience=self.patience,
            callbacks=callbacks,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
            description=self.name,
        )
        if backend == "numba":
            runner = NumbaBPRRunner(self.net_, trainer, int(self.threads))
        elif self.optimizer in ("adagrad", "sgd"):
            runner = TorchBPRRunner(self.net_, trainer)
        else:  # Adam: autograd with sparse gradients and torch's SparseAdam
            runner = None
        self.fitted_ = True  # validation callables score the model during training
        self.history_ = trainer.fit(self.net_, sampler, runner)
        self.best_epoch_ = trainer.best_epoch if validate is not None else None

    def _regularizer(self) -> AdversarialRegularizer | None:
        """The adversarial term added to every step (none for plain BPR-MF)."""
        return None

    def _regularizer_start(self) -> int:
        return 0

    def _state(self) -> dict[str, torch.Tensor]:
        return {"user": self.net_.user.data, "item": self.net_.item.data}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        f = int(self.n_factors)
        return {"user": (self.n_users_, f), "item": (self.n_items_, f)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        from advrec.models.bpr_net import BPRNet

        user, item = state["user"], state["item"]
        if user.shape[1] != int(self.n_factors):
            raise ValueError(f"embedding size {user.shape[1]} != n_factors {self.n_factors}")
        net = BPRNet(user.shape[0], item.shape[0], user.shape[1], float(self.reg))
        net.load_state_dict({"user": user, "item": item})
        self.net_ = net.to(resolve_device(self.device))
