"""Training: the generic `Trainer`, optimisers, and the compiled BPR epoch."""

from advrec.training.optim import OPTIMIZERS, make_optimizer
from advrec.training.trainer import Callback, TorchEpochRunner, Trainer

__all__ = ["OPTIMIZERS", "Callback", "TorchEpochRunner", "Trainer", "make_optimizer"]
