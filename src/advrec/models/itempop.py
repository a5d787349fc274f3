"""ItemPop: every user gets the items with the most training interactions (the baseline to beat)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.models.base import Capabilities, Recommender
from advrec.validation import Int

torch = lazy("torch")


class ItemPop(Recommender):
    """Scores item i by its number of training interactions, the same for every user."""

    name = "itempop"
    capabilities = Capabilities()  # no blocks, no early stopping, no warm start, no fit options
    _param_constraints: ClassVar[dict[str, Any]] = {
        "seed": Int(none_ok=True),  # unused: fitting is deterministic
    }

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _fit(self, train: Interactions) -> None:
        self.popularity_ = torch.from_numpy(train.item_counts.astype(np.float32))

    def _score(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity_.expand(len(users), -1).clone()

    def _state(self) -> dict[str, torch.Tensor]:
        return {"popularity": self.popularity_}

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {"popularity": (self.n_items_,)}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.popularity_ = state["popularity"].float()
