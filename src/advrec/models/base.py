"""The `Recommender` base class: sklearn-style hyper-parameters, fit/score/recommend, save/load."""

from __future__ import annotations

import inspect
import json
import os
import platform
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from advrec.data.interactions import Interactions
from advrec.errors import CheckpointError, ConfigError, DataError, NotFittedError

MANIFEST = "manifest.json"
STATE = "state.safetensors"
FORMAT = "advrec-model"
FORMAT_VERSION = 1


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" → CUDA when present, else CPU; anything else as given (checked)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


def library_versions() -> dict[str, str]:
    """Versions recorded with every saved model and result."""
    from advrec import __version__

    return {
        "advrec": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class Recommender(ABC):
    """Base of every model: hyper-parameters in ``__init__``, learned state only after :meth:`fit`.

    Subclasses implement ``_fit(train, **kw)``, ``_score(users) -> Tensor`` and, to be saved,
    ``_state() -> dict[str, Tensor]`` / ``_load_state(state)``. Public methods check input
    and fitted-ness, then delegate (the RecPack ``fit``/``_fit`` pattern).
    """

    name: ClassVar[str] = ""

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (JSON-friendly values)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> Recommender:
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} has no parameter(s) {sorted(unknown)}; "
                f"known: {self._param_names()}"
            )
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fit
    def fit(self, train: Interactions, **kwargs) -> Recommender:
        """Learn from ``train`` (an :class:`Interactions`); returns ``self``."""
        if not isinstance(train, Interactions):
            raise DataError(f"fit expects an Interactions, got {type(train).__name__}")
        if len(train) == 0:
            raise DataError("cannot fit on an empty data set")
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.user_ids_ = train.user_ids
        self.item_ids_ = train.item_ids
        self.seen_ = train.binary_csr
        self._fit(train, **kwargs)
        self.fitted_ = True
        return self

    @abstractmethod
    def _fit(self, train: Interactions, **kwargs) -> None: ...

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train) first")

    # ------------------------------------------------------------------ score
    def _as_users(self, users) -> torch.Tensor:
        if users is None:
            users = torch.arange(self.n_users_)
        users = torch.as_tensor(np.asarray(users) if not torch.is_tensor(users) else users)
        users = users.reshape(-1).to(torch.long)
        if len(users) and (int(users.min()) < 0 or int(users.max()) >= self.n_users_):
            raise DataError(f"user ids must be internal ids in 0..{self.n_users_ - 1}")
        return users

    def score(self, users=None, **kwargs) -> torch.Tensor:
        """Scores of every item for each internal user id: a ``[len(users), n_items]`` tensor."""
        self._check_fitted()
        with torch.no_grad():
            return self._score(self._as_users(users), **kwargs)

    @abstractmethod
    def _score(self, users: torch.Tensor, **kwargs) -> torch.Tensor: ...

    def recommend(
        self, users=None, k: int = 10, exclude_seen: bool = True, raw_ids: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user (internal ids, or raw ids with ``raw_ids``) and their scores.

        ``exclude_seen`` removes the user's training items from the candidates.
        """
        self._check_fitted()
        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        u = self._as_users(users)
        scores = self.score(u).float()
        if exclude_seen:
            rows, cols = _csr_coords(self.seen_, u.cpu().numpy())
            scores[
                torch.as_tensor(rows, device=scores.device),
                torch.as_tensor(cols, device=scores.device),
            ] = -torch.inf
        top = torch.topk(scores, min(k, self.n_items_), dim=1)
        items = top.indices.cpu().numpy()
        if raw_ids:
            items = np.asarray(self.item_ids_)[items]
        return items, top.values.cpu().numpy()

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Restore learned tensors produced by :meth:`_state`."""

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write the fitted model to folder ``path`` (manifest JSON + safetensors), atomically."""
        self._check_fitted()
        path = Path(path)
        state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self._state().items()}
        state["seen.indptr"] = torch.from_numpy(self.seen_.indptr.astype(np.int64))
        state["seen.indices"] = torch.from_numpy(self.seen_.indices.astype(np.int64))
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "class": type(self).__name__,
            "params": self.get_params(),
            "seed": getattr(self, "seed", None),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "user_ids": _ids_to_json(self.user_ids_),
            "item_ids": _ids_to_json(self.item_ids_),
            "versions": library_versions(),
            "extra": extra or {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            save_file(state, str(tmp / STATE))
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default))
            if path.exists():
                _replace_dir(tmp, path)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device=None) -> Recommender:
        """Load a folder written by :meth:`save` (no pickles: JSON + safetensors only)."""
        from advrec.models import MODELS

        manifest = read_manifest(path)
        model_cls = MODELS.get(manifest["model"])
        if model_cls is None:
            raise CheckpointError(f"{path}: unknown model type {manifest['model']!r}")
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise CheckpointError(
                f"{path} holds a {manifest['model']!r} model, not a {cls.name!r} model"
            )
        params = dict(manifest["params"])
        if device is not None and "device" in params:
            params["device"] = device
        model = model_cls(**params)
        try:
            state = load_file(str(Path(path) / STATE))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise CheckpointError(f"{Path(path) / STATE}: unreadable model state ({exc})") from exc
        n_users, n_items = manifest["n_users"], manifest["n_items"]
        model.n_users_, model.n_items_ = n_users, n_items
        model.user_ids_ = np.asarray(manifest["user_ids"])
        model.item_ids_ = np.asarray(manifest["item_ids"])
        indptr, indices = state.pop("seen.indptr").numpy(), state.pop("seen.indices").numpy()
        model.seen_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr), shape=(n_users, n_items)
        )
        try:
            model._load_state({k[len("model.") :]: v for k, v in state.items()})
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: model state does not match {manifest['model']!r} ({exc})"
            ) from exc
        model.fitted_ = True
        return model


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and check a saved model's manifest (clear errors for a missing/foreign folder)."""
    mpath = Path(path) / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{path}: not a saved advrec model (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{mpath}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{mpath}: not an advrec model manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{mpath}: written by a newer advrec (format "
            f"{manifest['format_version']} > {FORMAT_VERSION})"
        )
    for key in ("model", "params", "n_users", "n_items", "user_ids", "item_ids"):
        if key not in manifest:
            raise CheckpointError(f"{mpath}: manifest lacks the field {key!r}")
    return manifest


def _csr_coords(csr: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row position, column) pairs of the non-zeros of the given rows, vectorised."""
    starts, ends = csr.indptr[rows], csr.indptr[rows + 1]
    lengths = ends - starts
    pos = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pos, csr.indices[np.repeat(starts, lengths) + offsets]


def _ids_to_json(ids: np.ndarray) -> list:
    return ids.tolist()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (torch.device, Path)):
        return str(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _replace_dir(new: Path, old: Path) -> None:
    """Swap folder ``new`` into place of ``old`` so a reader never sees a half-written model."""
    trash = old.with_name(f".{old.name}.old")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(old, trash)
    os.replace(new, old)
    shutil.rmtree(trash, ignore_errors=True)
