"""The registry of models by name: every model class, :func:`get_model` and :func:`load_model`.

It fills :data:`advrec.models.base.MODELS` (the table :meth:`Recommender.load` reads) with every
model class, so it imports all the model modules; none of them imports it (they import
:mod:`advrec.models.base`), so there is no cycle. The package face ``advrec.models`` imports it.
"""

from __future__ import annotations

from advrec.errors import ParamError
from advrec.models.apr import APR
from advrec.models.autorec import IAutoRec, UAutoRec
from advrec.models.base import MODELS, Recommender
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
from advrec.models.vbpr import AMR, VBPR
from advrec.validation import plain

MODELS.update({m.name: m for m in (ItemPop, BPRMF, APR, UserKNN, ItemKNN, MF, CFGAN, IRGAN,
                                          LightGCN, NeuMF, GMF, MLP, MultVAE, MultDAE, CDAE, ACAE,
                                          IAutoRec, UAutoRec, VBPR, AMR)})


def get_model(name: str) -> type[Recommender]:
    """The model class registered under ``name`` (case-insensitive); a ParamError naming
    ``model`` for anything else."""
    cls = MODELS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise ParamError("model", f"unknown model {plain(name)}; expected one of "
                                  f"{', '.join(sorted(MODELS))}")
    return cls


def load_model(path, device=None) -> Recommender:
    """Load any saved model folder, whatever its type."""
    return Recommender.load(path, device=device)


__all__ = ["MODELS", "get_model", "load_model"]
