"""Recommenders: the `Recommender` base and the models, with a registry by name."""

from advrec.models.apr import APR
from advrec.models.base import Recommender, resolve_device
from advrec.models.bprmf import BPRMF
from advrec.models.gan.cfgan import CFGAN
from advrec.models.gan.irgan import IRGAN
from advrec.models.itempop import ItemPop
from advrec.models.knn import ItemKNN, UserKNN
from advrec.models.mf import MF
from advrec.models.registry import MODELS, get_model, load_model

__all__ = ["APR", "BPRMF", "CFGAN", "IRGAN", "MF", "MODELS", "ItemKNN", "ItemPop", "Recommender",
           "UserKNN", "get_model", "load_model", "resolve_device"]
