"""Recommenders: the `Recommender` base and the models, with a registry by name."""

from advrec.models.apr import APR
from advrec.models.base import Recommender, resolve_device
from advrec.models.bprmf import BPRMF
from advrec.models.itempop import ItemPop

MODELS: dict[str, type[Recommender]] = {m.name: m for m in (ItemPop, BPRMF, APR)}


def get_model(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (case-insensitive)."""
    from advrec.errors import ConfigError

    cls = MODELS.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(sorted(MODELS))}")
    return cls


def load_model(path, device=None) -> Recommender:
    """Load any saved model folder, whatever its type."""
    return Recommender.load(path, device=device)


__all__ = ["APR", "BPRMF", "MODELS", "ItemPop", "Recommender", "get_model", "load_model",
           "resolve_device"]
