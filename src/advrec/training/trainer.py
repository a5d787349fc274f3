"""The generic `Trainer`: epochs, optimiser steps, validation with early stopping, callbacks,
checkpoint/resume and a progress bar, over any module with ``loss(batch, perturbation=None)``."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from advrec._lazy import lazy
from advrec.errors import CheckpointError, ConfigError, TrainingError
from advrec.outputs import atomic_write
from advrec.training.optim import check_optimizer, make_optimizer
from advrec.training.progress import epoch_progress
from advrec.validation import plain

torch = lazy("torch")

Batch = tuple["torch.Tensor", ...]


class TrainableModule(Protocol):
    """What the Trainer drives: a ``torch.nn.Module`` with a summed batch loss.

    Optional: ``after_step()``, called once after every optimiser update (e.g. Mult-VAE's KL
    annealing counts updates), however many backward passes the update took.
    """

    def parameters(self) -> Iterable[torch.nn.Parameter]: ...
    def state_dict(self) -> dict[str, torch.Tensor]: ...
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> Any: ...
    def loss(
        self, batch: Batch, perturbation: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor: ...


class BatchSampler(Protocol):
    """Where the Trainer draws an epoch's batches (e.g. `advrec.data.sampling.UniformSampler`)."""

    def batches(self, batch_size: int) -> Iterable[tuple[np.ndarray, ...]]: ...


class Regularizer(Protocol):
    """An extra loss term from the batch and its clean loss (e.g. APR's adversarial term)."""

    def __call__(
        self, module: TrainableModule, batch: Batch, clean_loss: torch.Tensor
    ) -> torch.Tensor: ...


class Callback:
    """Hooks called by the Trainer; ``on_epoch_end`` returning True stops training."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> bool | None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class EpochRunner(Protocol):
    """Runs one epoch of optimiser steps and returns the mean loss per training example."""

    def run_epoch(self, sampler: BatchSampler) -> float: ...
    def state_dict(self) -> dict[str, torch.Tensor]: ...
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


class TorchEpochRunner:
    """The PyTorch path: autograd on each mini-batch, then one optimiser step (CPU or CUDA)."""

    def __init__(self, module: TrainableModule, trainer: Trainer):
        self.module = module
        self.trainer = trainer
        self.device = next(iter(module.parameters())).device
        sparse = bool(getattr(module, "sparse_gradients", False))
        self.optimizer = make_optimizer(
            trainer.optimizer,
            module.parameters(),
            trainer.lr,
            sparse=sparse,
            initial_accumulator=trainer.initial_accumulator,
        )
        self.after_step = getattr(module, "after_step", None)

    def run_epoch(self, sampler: BatchSampler) -> float:
        total, count = 0.0, 0
        regularizer = self.trainer.active_regularizer
        for arrays in sampler.batches(self.trainer.batch_size):
            batch = tuple(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays)
            self.optimizer.zero_grad(set_to_none=True)
            if regularizer is not None and hasattr(regularizer, "backward"):
                # it builds the step's losses itself: one clean backward serves Δ and the step
                loss = regularizer.backward(self.module, batch)
            else:
                loss = self.module.loss(batch)
                objective = loss if regularizer is None else (
                    loss + regularizer(self.module, batch, loss))
                objective.backward()
            self.optimizer.step()
            if self.after_step is not None:
                self.after_step()
            total += float(loss.detach())
            count += len(arrays[0])
        return total / max(count, 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return _flatten_optimizer_state(self.optimizer)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _load_flat_optimizer_state(self.optimizer, state)


@dataclass
class Trainer:
    """Trains a module for ``epochs`` epochs of mini-batches drawn from a sampler.

    ``validate(module) -> float`` (higher is better) is called every ``validate_every`` epochs;
    with ``patience`` set, training stops after that many validations without an improvement
    larger than ``min_delta``, and the best weights are restored (``restore_best``). With
    ``checkpoint_dir`` the state (weights, optimiser, sampler RNG, history) is saved every
    ``checkpoint_every`` epochs and ``resume=True`` continues from it, giving the same result as an
    uninterrupted run.
    """

    epochs: int = 10
    batch_size: int = 512
    optimizer: str = "adagrad"
    lr: float = 0.05
    initial_accumulator: float = 0.1
    regularizer: Regularizer | None = None
    regularizer_start: int = 0
    validate: Callable[[Any], float] | None = None
    validate_every: int = 1
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    callbacks: Sequence[Callback] = ()
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int = 1
    resume: bool = False
    progress: bool | None = None
    description: str = "training"
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list, init=False)
    stop_training: bool = field(default=False, init=False)
    epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.optimizer = check_optimizer(self.optimizer)
        for name in ("epochs", "start_epoch"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "validate_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}")
        if self.patience is not None and self.validate is None:
            raise ConfigError("early stopping (patience) needs a validate callable")

    @property
    def active_regularizer(self) -> Regularizer | None:
        """The regulariser if it is switched on in the current epoch (``regularizer_start``)."""
        return self.regularizer if self.epoch >= self.regularizer_start else None

    # ------------------------------------------------------------------ main loop
    def fit(
        self, module: TrainableModule, sampler: BatchSampler, runner: EpochRunner | None = None
    ) -> list[dict[str, float]]:
        """Run the epochs; returns the history (one dict of logs per epoch)."""
        self.runner = runner if runner is not None else TorchEpochRunner(module, self)
        self.module = module
        self.history = []
        self.stop_training = False
        self.best_metric, self.best_epoch, self._best_state, self._bad = -math.inf, -1, None, 0
        epoch = self.start_epoch
        if self.resume and self.checkpoint_dir and self._checkpoint_paths()[1].is_file():
            epoch = self._load_checkpoint(module, sampler)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        with epoch_progress(self.progress, self.description, self.epochs, epoch) as bar:
            while epoch < self.epochs and not self.stop_training:
                self.epoch = epoch
                t0 = time.perf_counter()
                module.train(True) if hasattr(module, "train") else None
                loss = self.runner.run_epoch(sampler)
                logs: dict[str, float] = {
                    "epoch": epoch + 1,
                    "loss": loss,
                    "seconds": time.perf_counter() - t0,
                }
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"training diverged at epoch {epoch + 1} (loss {plain(loss)}); "
                        f"lower the learning rate"
                    )
                if self.validate is not None and (epoch + 1) % self.validate_every == 0:
                    self._validate(module, logs, epoch)
                self.history.append(logs)
                epoch += 1
                for cb in self.callbacks:
                    if cb.on_epoch_end(self, logs):
                        self.stop_training = True
                if self.checkpoint_dir and (
                    epoch % self.checkpoint_every == 0 or epoch == self.epochs or self.stop_training
                ):
                    self._save_checkpoint(module, sampler, epoch)
                bar(logs)
        if self.restore_best and self._best_state is not None:
            module.load_state_dict(self._best_state)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _validate(self, module: TrainableModule, logs: dict[str, float], epoch: int) -> None:
        module.train(False) if hasattr(module, "train") else None
        metric = float(self.validate(module))
        logs["validation"] = metric
        if metric > self.best_metric + self.min_delta:
            self.best_metric, self.best_epoch, self._bad = metric, epoch + 1, 0
            if self.restore_best:
                self._best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            self._bad += 1
            if self.patience is not None and self._bad >= self.patience:
                self.stop_training = True

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_paths(self) -> tuple[Path, Path]:
        root = Path(self.checkpoint_dir)
        return root / "trainer.pt", root / "trainer.json"

    def _save_checkpoint(self, module: TrainableModule, sampler: BatchSampler, epoch: int) -> None:
        tensors_path, meta_path = self._checkpoint_paths()
        tensors_path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"module.{k}": v.detach().cpu() for k, v in module.state_dict().items()}
        tensors.update(
            {f"runner.{k}": v.detach().cpu() for k, v in self.runner.state_dict().items()}
        )
        if self._best_state is not None:
            tensors.update({f"best.{k}": v.cpu() for k, v in self._best_state.items()})
        meta = {
            "epoch": epoch,
            "history": self.history,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad": self._bad,
            "stopped": self.stop_training,
            "sampler": _sampler_state(sampler),
        }
        atomic_write(tensors_path, lambda p: torch.save(tensors, p))
        atomic_write(meta_path, lambda p: p.write_text(json.dumps(meta)))

    def _load_checkpoint(self, module: TrainableModule, sampler: BatchSampler) -> int:
        tensors_path, meta_path = self._checkpoint_paths()
        try:
            meta = json.loads(meta_path.read_text())
            tensors = torch.load(tensors_path, weights_only=True, map_location="cpu")
        except Exception as exc:
            raise CheckpointError(f"{self.checkpoint_dir}: unreadable checkpoint ({exc})") from exc

        def part(prefix):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        try:
            module.load_state_dict(part("module."))
            self.runner.load_state_dict(part("runner."))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"{self.checkpoint_dir}: checkpoint does not match this model ({exc})"
            ) from exc
        best = part("best.")
        self._best_state = best or None
        self.history = meta["history"]
        self.best_metric, self.best_epoch, self._bad = (
            meta["best_metric"],
            meta["best_epoch"],
            meta["bad"],
        )
        self.stop_training = meta.get("stopped", False)
        _set_sampler_state(sampler, meta["sampler"])
        return int(meta["epoch"])


# ---------------------------------------------------------------------- helpers
def _sampler_state(sampler) -> Any:
    rng = getattr(sampler, "rng", None)
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else None


def _set_sampler_state(sampler, state) -> None:
    rng = getattr(sampler, "rng", None)
    if state is not None and isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state


def _flatten_optimizer_state(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for k, v in opt.state.get(p, {}).items():
                out[f"{gi}.{pi}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def _load_flat_optimizer_state(opt: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    for key, value in flat.items():
        gi, pi, name = key.split(".", 2)
        p = opt.param_groups[int(gi)]["params"][int(pi)]
        opt.state[p][name] = value.to(p.device) if value.dim() else value

