"""Recommenders: the `Recommender` base and the models, with a registry by name."""

from advrec.models.apr import APR
from advrec.models.autorec import IAutoRec, UAutoRec
from advrec.models.base import (
    CAPABILITIES,
    Capabilities,
    Recommender,
    capability_problems,
    check_request,
    resolve_device,
)
from advrec.models.bprmf import BPRMF
from advrec.models.cdae import ACAE, CDAE
from advrec.models.gan.cfgan import CFGAN
from advrec.models.gan.irgan import IRGAN
from advrec.models.itempop import ItemPop
from advrec.models.knn import ItemKNN, UserKNN
from advrec.models.lightgcn import LightGCN
from advrec.models.mf import MF
from advrec.models.multvae import MultDAE, MultVAE
from advrec.models.neumf import GMF, MLP, NeuMF
from advrec.models.registry import MODELS, get_model, load_model
from advrec.models.vbpr import AMR, VBPR

__all__ = ["ACAE", "APR", "BPRMF", "CAPABILITIES", "CDAE", "CFGAN", "GMF", "IRGAN", "MF", "MLP",
           "MODELS", "Capabilities", "IAutoRec", "ItemKNN", "ItemPop", "LightGCN", "MultDAE",
           "MultVAE", "NeuMF", "Recommender", "UAutoRec", "UserKNN", "VBPR", "AMR",
           "capability_problems", "check_request", "get_model", "load_model", "resolve_device"]
