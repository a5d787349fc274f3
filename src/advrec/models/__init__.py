"""Recommenders: the `Recommender` base and the models, with a registry by name."""

from advrec.models.apr import APR
from advrec.models.base import Recommender, resolve_device
from advrec.models.bprmf import BPRMF
from advrec.models.gan.cfgan import CFGAN
from advrec.models.gan.irgan import IRGAN
from advrec.models.itempop import ItemPop
from advrec.models.knn import ItemKNN, UserKNN
from advrec.models.mf import MF

MODELS: dict[str, type[Recommender]] = {
    m.name: m for m in (ItemPop, BPRMF, APR, UserKNN, ItemKNN, MF, CFGAN, IRGAN)
}


def get_model(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (case-insensitive); a ParamError naming
    ``model`` for anything else."""
    from advrec.errors import ParamError
    from advrec.validation import plain

    cls = MODELS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise ParamError("model", f"unknown model {plain(name)}; expected one of "
                                  f"{', '.join(sorted(MODELS))}")
    return cls


def load_model(path, device=None) -> Recommender:
    """Load any saved model folder, whatever its type."""
    return Recommender.load(path, device=device)


__all__ = ["APR", "BPRMF", "CFGAN", "IRGAN", "MF", "MODELS", "ItemKNN", "ItemPop", "Recommender",
           "UserKNN", "get_model", "load_model", "resolve_device"]
