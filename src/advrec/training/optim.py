"""Optimiser construction shared by the PyTorch and the compiled training paths."""

from __future__ import annotations

from collections.abc import Iterable

from advrec._lazy import lazy
from advrec.errors import ConfigError
from advrec.vocabulary import OPTIMIZERS

torch = lazy("torch")


def check_optimizer(name: str) -> str:
    name = str(name).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return name


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    sparse: bool = False,
    initial_accumulator: float = 0.1,
) -> torch.optim.Optimizer:
    """A torch optimiser by name. ``sparse``: the parameters get sparse gradients (embeddings).

    Adagrad starts its accumulator at ``initial_accumulator`` (0.1, as TensorFlow's Adagrad that
    the APR code and the tutorial use). Adam on sparse gradients is ``SparseAdam`` (lazy Adam).
    """
    name = check_optimizer(name)
    if lr <= 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    params = list(params)
    if name == "adagrad":
        return torch.optim.Adagrad(
            params, lr=lr, initial_accumulator_value=initial_accumulator, eps=1e-10
        )
    if name == "adam":
        return torch.optim.SparseAdam(params, lr=lr) if sparse else torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)
