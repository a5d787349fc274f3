"""advrec: adversarial learning for recommender systems (attacks, defences, robustness, GANs)."""

__version__ = "0.1.0"

from advrec.data import Interactions  # noqa: E402
from advrec.errors import AdvrecError, CheckpointError, ConfigError, DataError  # noqa: E402

__all__ = ["AdvrecError", "CheckpointError", "ConfigError", "DataError", "Interactions",
           "__version__"]
