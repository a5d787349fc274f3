"""advrec: adversarial learning for recommender systems (attacks, defences, robustness, GANs).

The data type is loaded on first use, so ``advrec --help`` and the light modules (errors,
validators, vocabulary) start without numpy, pandas or torch.
"""

from advrec._version import __version__
from advrec.errors import AdvrecError, CheckpointError, ConfigError, DataError

__all__ = ["AdvrecError", "CheckpointError", "ConfigError", "DataError", "Interactions",
           "__version__"]


def __getattr__(name: str):
    if name == "Interactions":
        from advrec.data.interactions import Interactions

        return Interactions
    raise AttributeError(f"module 'advrec' has no attribute {name!r}")
