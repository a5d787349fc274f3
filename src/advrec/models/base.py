"""The `Recommender` base class: sklearn-style hyper-parameters, fit/score/recommend, save/load.

Hyper-parameters are declared with constraints (``_param_constraints``, objects with a
``check(value, name)`` method from :mod:`advrec.validation` or the few helpers here) and checked
by :meth:`Recommender.validate_params` at the start of ``fit``, before ``save`` and when a saved
model is loaded; constructors only store them (the scikit-learn convention). A saved model is
checked against a schema when loaded, before any tensor is used (:func:`read_manifest`,
:meth:`Recommender.load`).
"""

from __future__ import annotations

import inspect
import json
import os
import platform
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from advrec._lazy import lazy
from advrec._version import __version__
from advrec.data.interactions import Interactions
from advrec.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    IdError,
    NotFittedError,
    ParamError,
    TrainingError,
)
from advrec.metric_names import parse_metric
from advrec.outputs import claim_dir
from advrec.validation import Device, Int, check_bool, check_index_array, check_int, plain

sp = lazy("scipy.sparse")
torch = lazy("torch")

MANIFEST = "manifest.json"
STATE = "state.safetensors"
FORMAT = "advrec-model"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 30  # a larger manifest.json is refused unread (ids of ~50M users fit)
MAX_LISTED_TENSORS = 100_000  # more expected tensors than this are counted, not listed

DEVICE = Device()
SEED = Int(low=0, high=2 ** 63 - 1)  # numpy and torch generators take any non-negative int64

#: The models by registered name, which :meth:`Recommender.load` and :func:`read_manifest` look
#: up. Filled by :mod:`advrec.models.registry` (which imports every model; the package face
#: ``advrec.models`` imports it, so it is filled before anything here can run); a model module
#: never imports the registry, so this module imports none of them.
MODELS: dict[str, type[Recommender]] = {}

_FLOAT_DTYPES = {"F32": "float32", "F64": "float64"}
_INT_DTYPES = {"I32": "int32", "I64": "int64"}


# ---------------------------------------------------------------------------- constraints
@dataclass(frozen=True)
class Names:
    """A non-empty list or tuple of names, each one of ``choices`` (e.g. APR's ``adv_blocks``)."""

    choices: tuple[str, ...]

    def check(self, value: Any, name: str) -> tuple[str, ...]:
        allowed = ", ".join(repr(c) for c in self.choices)
        if not isinstance(value, (list, tuple)) or not value:
            raise ParamError(name, f"expected a non-empty list of names among {allowed}, "
                                   f"got {plain(value)}")
        for v in value:
            if not isinstance(v, str) or v not in self.choices:
                raise ParamError(name, f"expected names among {allowed}, got {plain(v)}")
        return tuple(value)


@dataclass(frozen=True)
class Layers:
    """A non-empty list or tuple of layer widths, each an integer ≥ 1 (``even_first``: the first
    one even, as the NCF MLP splits it between the user and the item embedding)."""

    even_first: bool = False
    max_width: int = 1 << 16

    def check(self, value: Any, name: str) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise ParamError(name, f"expected a non-empty list of layer widths, got "
                                   f"{plain(value)}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= self.max_width:
                raise ParamError(name, f"expected widths between 1 and {self.max_width}, "
                                       f"got {plain(v)}")
        if self.even_first and value[0] % 2:
            raise ParamError(name, f"the first width is split between the user and the item "
                                   f"embedding: it must be even, got {value[0]}")
        return tuple(value)


@dataclass(frozen=True)
class MetricAtK:
    """A ranking metric at a cut-off, written like ``"precision@5"``."""

    metrics: tuple[str, ...]
    ignore_case: bool = False

    def parse(self, value: Any, name: str) -> tuple[str, int]:
        if not self.ignore_case and isinstance(value, str) and value != value.lower():
            raise ParamError(name, f"expected a lower-case metric such as 'precision@5', "
                                   f"got {plain(value)}")
        try:
            metric, k = parse_metric(value, default_k=None, allowed=self.metrics, argument=name)
        except ParamError:
            raise ParamError(name, f"expected a metric at a positive cut-off such as "
                                   f"'precision@5' (metrics: {', '.join(self.metrics)}), "
                                   f"got {plain(value)}") from None
        return metric, int(k)

    def check(self, value: Any, name: str) -> Any:
        self.parse(value, name)
        return value


@dataclass(frozen=True)
class Noted:
    """Another constraint whose refusals carry a note (the reason the bound exists)."""

    rule: Any
    note: str

    def check(self, value: Any, name: str) -> Any:
        try:
            return self.rule.check(value, name)
        except ParamError as exc:
            raise ParamError(name, f"{exc.reason} ({self.note})") from None


# ---------------------------------------------------------------------------- devices
def check_device(device: object) -> None:
    """What :func:`resolve_device` checks, without importing torch unless the device needs it
    (``cuda``, ``mps``): the form, then whether this machine has it."""
    if device is None or device == "auto":
        return
    if isinstance(device, str):
        DEVICE.check(device, "device")
        if device.split(":")[0] not in ("cuda", "mps"):
            return
    resolve_device(device)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" → CUDA when present, else CPU; anything else as given, checked.

    A malformed name ("tpu9", "cuda:x") is a :class:`ParamError` naming ``device``; a device
    this machine lacks (no CUDA, ``cuda:5`` with two GPUs, no MPS) a :class:`ConfigError`.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ParamError("device", f"expected auto, cpu, cuda, cuda:N or mps, got {plain(device)}")
    DEVICE.check(str(device), "device")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ParamError("device", f"not a device torch knows, got {plain(str(device))}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} requested but CUDA is not available")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {str(device)!r} requested but this machine has {count} "
                              f"CUDA device(s) (cuda:0 to cuda:{count - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(device)!r} requested but MPS is not available")
    return dev


def library_versions() -> dict[str, str]:
    """Versions recorded with every saved model and result."""
    return {
        "advrec": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------- argument helpers
def as_path(path: Any, name: str = "path") -> Path:
    """``path`` (a ``str`` or path-like) as a :class:`Path`; refuses other types and ``""``."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise ParamError(name, f"expected a folder name, got {plain(path)}")
    if str(path) == "":
        raise ParamError(name, "expected a folder name, got ''")
    return Path(path)


class NetModel:
    """What a model whose network ``net_`` has ``blocks()``, ``pair_scores(users, items, Δ)`` and
    ``score(users, Δ)`` exposes: checked ids and perturbations, delegated to the network."""

    net_: Any

    def _check_perturbation(self, perturbation) -> dict[str, torch.Tensor] | None:
        return check_perturbation(perturbation, self.net_.blocks())

    def _device(self) -> torch.device:
        return next(iter(self.net_.blocks().values())).device

    def pair_scores(self, users, items, perturbation: dict[str, torch.Tensor] | None = None
                    ) -> torch.Tensor:
        """The score (a logit for the point-wise models) of each aligned (broadcastable) user
        and item id pair (internal ids), optionally under a perturbation of the blocks."""
        self._check_fitted()
        u, i = pair_ids(users, items, self.n_users_, self.n_items_, self._device())
        return self.net_.pair_scores(u, i, self._check_perturbation(perturbation))

    def _score(self, users: torch.Tensor, perturbation: dict[str, torch.Tensor] | None = None
               ) -> torch.Tensor:
        return self.net_.score(users.to(self._device()), self._check_perturbation(perturbation))

    def parameter_blocks(self) -> dict[str, torch.Tensor]:
        """The perturbable tensors by name (the network's tables, not copies)."""
        self._check_fitted()
        return self.net_.blocks()


class TripleNetModel(NetModel):
    """A :class:`NetModel` trained on (user, positive, negative) triples (BPR-MF, LightGCN)."""

    def loss(self, batch, perturbation: dict[str, torch.Tensor] | None = None,
             l2: bool = True) -> torch.Tensor:
        """The summed BPR loss of a batch of (users, positives, negatives) tensors, optionally
        under a perturbation of the parameter blocks."""
        self._check_fitted()
        ids = triple_ids(batch, self.n_users_, self.n_items_, self._device())
        return self.net_.loss(ids, self._check_perturbation(perturbation), l2=l2)


def check_warm_start_shape(init_from: Any, train: Interactions) -> None:
    """A warm start needs the source model's id space: a ConfigError naming both shapes."""
    if (init_from.n_users_, init_from.n_items_) != (train.n_users, train.n_items):
        raise ConfigError(f"init_from model was trained on {init_from.n_users_} users × "
                          f"{init_from.n_items_} items, the data has {train.n_users} × "
                          f"{train.n_items}")


def model_trainer(model: Any, validate: Callable[[Any], float] | None, callbacks: Any,
                  checkpoint_dir: Any, resume: bool, progress: bool | None) -> Any:
    """The `Trainer` of a model trained by it, from the model's own hyper-parameters
    (``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``patience``, ``validate_every``) and
    its regulariser (``_regularizer()``: APR's term, or None); ``validate(model)`` (higher is
    better) drives early stopping."""
    from advrec.training.trainer import Trainer

    return Trainer(
        epochs=int(model.epochs), batch_size=int(model.batch_size), optimizer=model.optimizer,
        lr=float(model.lr), regularizer=model._regularizer(),
        regularizer_start=model._regularizer_start(),
        validate=None if validate is None else (lambda _n: validation_value(validate(model))),
        validate_every=int(model.validate_every), patience=model.patience,
        callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume,
        progress=progress, description=model.name)


def check_perturbation(perturbation: Any, blocks: Mapping[str, torch.Tensor]
                       ) -> dict[str, torch.Tensor] | None:
    """``perturbation``: None or a dict {block: float tensor shaped like that block, on its
    device}; a ParamError naming ``perturbation`` otherwise."""
    if perturbation is None:
        return None
    if not isinstance(perturbation, Mapping):
        raise ParamError("perturbation", f"expected a dict of block name → tensor, got "
                                         f"{plain(perturbation)}")
    for block, delta in perturbation.items():
        if block not in blocks:
            raise ParamError("perturbation", f"unknown block {plain(block)}; the model has "
                                             f"{', '.join(blocks)}")
        table = blocks[block]
        if (not torch.is_tensor(delta) or not delta.is_floating_point()
                or delta.shape != table.shape):
            got = (f"{delta.dtype} tensor of shape {list(delta.shape)}"
                   if torch.is_tensor(delta) else plain(delta))
            raise ParamError("perturbation", f"block {block!r}: expected a float tensor of "
                                             f"shape {list(table.shape)}, got {got}")
        if delta.device != table.device:
            raise ParamError("perturbation", f"block {block!r}: on {delta.device}, the "
                                             f"model is on {table.device}")
    return dict(perturbation)


def pair_ids(users: Any, items: Any, n_users: int, n_items: int, device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned (broadcastable) user and item id tensors on ``device``, checked."""
    u = id_tensor(users, "users", n_users).to(device)
    i = id_tensor(items, "items", n_items).to(device)
    try:
        torch.broadcast_shapes(u.shape, i.shape)
    except RuntimeError:
        raise ParamError("items", f"shape {list(i.shape)} does not broadcast with users' "
                                  f"{list(u.shape)}") from None
    return u, i


def triple_ids(batch: Any, n_users: int, n_items: int, device) -> tuple[torch.Tensor, ...]:
    """A (users, positives, negatives) batch as checked 1-d id tensors of equal length."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 3:
        raise ParamError("batch", f"expected (users, positives, negatives), got {plain(batch)}")
    ids = [id_tensor(t, name, n).reshape(-1).to(device) for t, name, n in zip(
        batch[:3], ("users", "positives", "negatives"), (n_users, n_items, n_items),
        strict=True)]
    if len({len(t) for t in ids}) != 1:
        raise ParamError("batch", f"users, positives and negatives must have equal length, "
                                  f"got {', '.join(str(len(t)) for t in ids)}")
    return tuple(ids)


def id_tensor(values: Any, name: str, n: int) -> torch.Tensor:
    """``values`` as a long tensor of internal ids in ``0..n-1``, shape kept (a tensor stays on
    its device); floats (0.7 is not truncated), bools, text and out-of-range ids are refused
    with an :class:`IdError` naming ``name``."""
    if torch.is_tensor(values):
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise IdError(name, f"expected integer ids, got values of type {values.dtype}")
        ids = values.to(torch.long)
        if ids.numel():
            bad = (ids < 0) | (ids >= n)
            if bool(bad.any()):
                raise IdError(name, f"ids must be internal ids in 0..{n - 1}, "
                                    f"got {int(ids[bad][0])}")
        return ids
    arr = id_array(values, name, n)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def id_array(values: Any, name: str, n: int) -> np.ndarray:
    """:func:`id_tensor` as an int64 NumPy array (a tensor is checked, then copied to the CPU)."""
    if torch.is_tensor(values):
        return id_tensor(values, name, n).cpu().numpy()
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged nested lists and the like
        raise IdError(name, f"expected integer ids, got {plain(values)}") from None
    try:
        flat = check_index_array(arr, name, n)
    except ParamError as exc:
        raise IdError(exc.name, exc.reason) from None
    return flat.reshape(arr.shape)


def check_fitted_model(model: Any, name: str, kinds: tuple[type, ...], what: str) -> Any:
    """``model`` if it is a fitted instance of one of ``kinds`` (``what`` describes them)."""
    if not isinstance(model, kinds) or not getattr(model, "is_fitted", False):
        got = (f"{type(model).__name__} ({model.name!r})" if isinstance(model, Recommender)
               else plain(model))
        unfitted = " (not fitted)" if isinstance(model, kinds) else ""
        raise ParamError(name, f"expected a fitted {what}, got {got}{unfitted}")
    return model


def validation_value(value: Any) -> float:
    """What a caller's ``validate(model)`` returned, as a float (a ParamError naming
    ``validate`` when it is not a number: text, a bool, None, a list)."""
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        try:
            return float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise ParamError("validate", f"must return a number (higher is better), got {plain(value)}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------- capabilities
def _is_folder_name(v: Any) -> bool:
    return isinstance(v, (str, os.PathLike)) and str(v) != ""


#: Every keyword option a model's ``fit`` may declare, with the check of its value and what a
#: valid value is (``init_from`` is checked against the model's ``warm_start`` sources).
FIT_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "progress": (lambda v: v is None or isinstance(v, bool), "true, false or None"),
    "validate": (lambda v: v is None or callable(v), "a function model -> float or None"),
    "valid": (lambda v: v is None or isinstance(v, Interactions), "an Interactions or None"),
    "init_from": (lambda v: True, "a fitted model"),
    "callbacks": (lambda v: isinstance(v, (list, tuple)), "a list of callbacks"),
    "checkpoint_dir": (lambda v: v is None or _is_folder_name(v), "a folder name or None"),
    "resume": (lambda v: isinstance(v, bool), "true or false"),
    "item_features": (lambda v: v is not None,
                      "an ItemFeatures or an (n_items, d) float array"),
}

#: The capabilities a model can be asked for (:func:`check_request`, :meth:`Recommender.supports`).
CAPABILITIES = ("parameter_blocks", "early_stopping", "warm_start", "rating_prediction",
                "content_features", "fit_options")

_WHAT = {  # what a model lacking the capability cannot do, and what the ones having it do
    "parameter_blocks": ("has no perturbable parameter blocks", "models with them"),
    "early_stopping": ("has no validation-based early stopping", "models with it"),
    "warm_start": ("cannot start from another model", "models with a warm start"),
    "rating_prediction": ("does not predict ratings", "models that do"),
    "content_features": ("does not use content features", "models that do"),
}


@dataclass(frozen=True)
class Capabilities:
    """What a model supports, declared on its class (``Recommender.capabilities``), in the manner
    of scikit-learn's estimator tags; callers check a request against it (:func:`check_request`)
    before anything runs, never by probing the object.

    ``parameter_blocks``: names of the perturbable tensors ``parameter_blocks()`` returns and
    ``score(perturbation={name: Δ})`` accepts (empty: none). ``early_stopping``: ``fit`` takes
    ``validate`` and the model has ``patience`` / ``validate_every``. ``warm_start``: registered
    model names ``fit(init_from=...)`` accepts (empty: no warm start). ``rating_prediction``:
    the model has ``predict(users, items)``. ``content_features``: it uses an item × feature
    matrix. ``fit_options``: the keyword options its ``fit`` takes (names from
    :data:`FIT_OPTIONS`); any other keyword is refused with a :class:`ParamError` naming it.
    """

    parameter_blocks: tuple[str, ...] = ()
    early_stopping: bool = False
    warm_start: tuple[str, ...] = ()
    rating_prediction: bool = False
    content_features: bool = False
    fit_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # a wrong declaration is a programming error, refused when the model class is defined
        for field in ("parameter_blocks", "warm_start", "fit_options"):
            names = getattr(self, field)
            if (not isinstance(names, tuple) or not all(isinstance(n, str) and n for n in names)
                    or len(set(names)) != len(names)):
                raise TypeError(f"Capabilities.{field}: expected a tuple of distinct names, "
                                f"got {names!r}")
        for field in ("early_stopping", "rating_prediction", "content_features"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"Capabilities.{field}: expected a bool, "
                                f"got {getattr(self, field)!r}")
        unknown = [o for o in self.fit_options if o not in FIT_OPTIONS]
        if unknown:
            raise ValueError(f"Capabilities.fit_options: unknown option(s) {unknown}; known: "
                             f"{', '.join(FIT_OPTIONS)}")
        if self.early_stopping and "validate" not in self.fit_options:
            raise ValueError("Capabilities: early_stopping needs the fit option 'validate'")
        if bool(self.warm_start) != ("init_from" in self.fit_options):
            raise ValueError("Capabilities: warm_start sources and the fit option 'init_from' "
                             "go together")


def _model_class(model: Any) -> type[Recommender]:
    cls = model if isinstance(model, type) else type(model)
    if not issubclass(cls, Recommender):
        raise ParamError("model", f"expected a model class or instance, got {plain(model)}")
    return cls


def _label(cls: type[Recommender]) -> str:
    return cls.name or cls.__name__


def _names_list(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(names) or "none"


def _others(capability: str) -> str:
    """``; models with it: a, b`` (the registered models declaring ``capability``)."""
    having = sorted(n for n, c in MODELS.items() if getattr(c.capabilities, capability))
    return f"; {_WHAT[capability][1]}: {_names_list(having)}"


def _requested_names(value: Any, capability: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Mapping):  # e.g. the fit keyword arguments themselves
        value = list(value)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ParamError(capability, f"expected true, a name or a list of names, got {plain(value)}")


def _source_name(value: Any) -> str:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, Recommender) or (isinstance(value, type)
                                          and issubclass(value, Recommender)):
        return _label(_model_class(value))
    raise ParamError("warm_start", f"expected true or a model name, got {plain(value)}")


def capability_problems(model: Any, **requested: Any) -> dict[str, str]:
    """What ``model`` (a model class or instance) lacks of ``requested``, by capability: a
    one-line reason per unmet capability (empty when everything is supported).

    Requests, by keyword (a false value or None asks for nothing):
    ``parameter_blocks=True`` (any), a block name or a list of names (``"both"``/``"all"``:
    every block); ``early_stopping=True``; ``warm_start=True`` (any source) or the source model
    (a registered name, class or instance); ``rating_prediction=True``;
    ``content_features=True``; ``fit_options=`` a name, a list of names or the fit keyword dict
    itself. An unknown keyword is a :class:`ParamError` naming it.
    """
    cls = _model_class(model)
    caps, label = cls.capabilities, _label(cls)
    problems: dict[str, str] = {}
    for capability, value in requested.items():
        if capability not in CAPABILITIES:
            raise ParamError(capability, f"not a capability; expected one of "
                                         f"{', '.join(CAPABILITIES)}")
        if value is None or value is False or (
                isinstance(value, (str, tuple, list, set, frozenset, Mapping)) and not value):
            continue  # nothing asked
        declared = getattr(caps, capability)
        # the request's names (checked first, whatever the model declares)
        names: tuple[str, ...] = ()
        source: str | None = None
        if capability == "fit_options" or (capability == "parameter_blocks"
                                           and value is not True):
            names = _requested_names(value, capability)
        elif capability == "warm_start" and value is not True:
            source = _source_name(value)
        if capability == "fit_options":
            missing = [o for o in names if o not in declared]
            if missing:
                problems[capability] = (
                    f"model {label!r} takes no fit option(s) {', '.join(map(repr, missing))} "
                    f"(capability fit_options: {_names_list(declared)})")
        elif not declared:
            problems[capability] = (f"model {label!r} {_WHAT[capability][0]} "
                                    f"(capability {capability}){_others(capability)}")
        elif capability == "parameter_blocks":
            missing = [b for b in names if b not in declared and b not in ("both", "all")]
            if missing:
                problems[capability] = (
                    f"model {label!r} has no parameter block(s) {', '.join(map(repr, missing))} "
                    f"(capability parameter_blocks: {_names_list(declared)})")
        elif capability == "warm_start" and source is not None and source not in declared:
            problems[capability] = (f"model {label!r} cannot start from a {source!r} model "
                                    f"(capability warm_start: {_names_list(declared)})")
    return problems


def check_request(model: Any, **requested: Any) -> None:
    """Refuse, before anything runs, a request ``model`` (a model class or instance) does not
    declare: one :class:`ConfigError` naming the model and every unmet capability (see
    :func:`capability_problems` for the keywords), e.g. ``check_request(MF,
    early_stopping=True)`` → "model 'mf' has no validation-based early stopping (capability
    early_stopping); models with it: apr, bprmf"."""
    problems = capability_problems(model, **requested)
    if problems:
        raise ConfigError("; ".join(problems.values()))


# ---------------------------------------------------------------------------- the base class
class Recommender(ABC):
    """Base of every model: hyper-parameters in ``__init__``, learned state only after :meth:`fit`.

    Subclasses declare ``_param_constraints`` (one constraint per ``__init__`` parameter) and
    ``capabilities`` (what they support, :class:`Capabilities`; the default: nothing), and
    implement ``_fit(train, <the declared fit options>)``, ``_score(users) -> Tensor`` (with a
    ``perturbation`` keyword when parameter blocks are declared) and, to be saved,
    ``_state() -> dict[str, Tensor]`` / ``_load_state(state)`` with ``_state_shapes()`` (the
    tensors ``_state`` stores and their shapes). Public methods check input and fitted-ness, then
    delegate (the RecPack ``fit``/``_fit`` pattern).
    """

    name: ClassVar[str] = ""
    _param_constraints: ClassVar[dict[str, Any]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()

    # ------------------------------------------------------------------ capabilities
    @classmethod
    def supports(cls, capability: str) -> bool:
        """Whether the model declares ``capability`` (one of :data:`CAPABILITIES`; for a list
        such as ``parameter_blocks``: whether it is non-empty); a ParamError naming
        ``capability`` for any other name."""
        if not isinstance(capability, str) or capability not in CAPABILITIES:
            raise ParamError("capability", f"expected one of {', '.join(CAPABILITIES)}, "
                                           f"got {plain(capability)}")
        return bool(getattr(cls.capabilities, capability))

    @classmethod
    def check_request(cls, **requested: Any) -> None:
        """:func:`check_request` for this model: a ConfigError naming the model and each
        requested capability it does not declare."""
        check_request(cls, **requested)

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @classmethod
    def _param_defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values()
                if p.name in cls._param_names() and p.default is not p.empty}

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (JSON-friendly values)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> Recommender:
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ParamError(", ".join(unknown), f"not a parameter of {type(self).__name__}; "
                                                 f"known: {', '.join(self._param_names())}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    @classmethod
    def _checked_params(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value (from ``values``, else its default) checked against its
        constraint; returns the checked values (choices in their canonical spelling)."""
        defaults = cls._param_defaults()
        out: dict[str, Any] = {}
        for name in cls._param_names():
            value = values[name] if name in values else defaults.get(name)
            rule = cls._param_constraints.get(name)
            out[name] = value if rule is None else rule.check(value, name)
        cls._check_param_combinations(out)
        return out

    @classmethod
    def _check_param_combinations(cls, values: dict[str, Any]) -> None:  # noqa: B027
        """Rules that tie parameters together (each already valid on its own); ParamError."""
        return None

    def validate_params(self) -> None:
        """Check every hyper-parameter against the model's declared constraints.

        Raises :class:`~advrec.errors.ParamError` naming the first parameter that is wrong and
        what was expected (``n_factors: expected an integer, got 2.5``). Cheap and free of side
        effects: it touches no data and no device, so a configuration can be checked before a
        run (``cls(**params).validate_params()``).
        """
        self._checked_params(self.get_params())

    def _use_checked_params(self) -> None:
        """validate_params, then adopt the canonical spelling of choices ("Torch" → "torch")."""
        for name, value in self._checked_params(self.get_params()).items():
            if isinstance(value, str) and value != getattr(self, name):
                setattr(self, name, value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fit
    def fit(self, train: Interactions, **options) -> Recommender:
        """Learn from ``train`` (an :class:`Interactions`); returns ``self``.

        ``options``: the keyword options the model declares (``capabilities.fit_options``);
        any other is a :class:`ParamError` naming it, before anything is learned.
        """
        self._use_checked_params()
        if not isinstance(train, Interactions):
            raise DataError(f"fit expects an Interactions, got {type(train).__name__}")
        if len(train) == 0:
            raise DataError("cannot fit on an empty data set")
        self._check_fit_options(options)
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.user_ids_ = train.user_ids
        self.item_ids_ = train.item_ids
        self.seen_ = train.binary_csr
        self._fit(train, **options)
        self.fitted_ = True
        return self

    def _check_fit_options(self, options: dict[str, Any]) -> None:
        """Keywords of ``fit`` the model does not declare, values of the wrong type and an
        ``init_from`` that is not a fitted model of a declared source: ParamError by name."""
        declared = self.capabilities.fit_options
        for key in options:
            if key not in declared:
                raise ParamError(key, f"not a fit option of {type(self).__name__}; expected "
                                      f"{'one of ' + ', '.join(declared) if declared else 'none'}"
                                      f" (capability fit_options)")
        for key, value in options.items():
            ok, expected = FIT_OPTIONS[key]
            if not ok(value):
                raise ParamError(key, f"expected {expected}, got {plain(value)}")
        if options.get("init_from") is not None:
            self._check_warm_start(options["init_from"])

    def _check_warm_start(self, source: Any) -> None:
        """``source`` is a fitted model whose registered name ``capabilities.warm_start`` lists."""
        sources = self.capabilities.warm_start
        what = " or ".join(sources) + " model"
        check_fitted_model(source, "init_from", (Recommender,), what)
        if source.name not in sources:
            raise ParamError("init_from", f"expected a fitted {what}, got "
                                          f"{type(source).__name__} ({source.name!r}); "
                                          f"capability warm_start: {', '.join(sources)}")

    @abstractmethod
    def _fit(self, train: Interactions) -> None:
        """Learn; a model's override takes exactly its declared ``fit_options`` as keywords."""

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(train) first")

    # ------------------------------------------------------------------ score
    def _as_users(self, users) -> torch.Tensor:
        if users is None:
            return torch.arange(self.n_users_)
        return id_tensor(users, "users", self.n_users_).reshape(-1)

    def score(self, users=None, **options) -> torch.Tensor:
        """Scores of every item for each internal user id: a ``[len(users), n_items]`` tensor.

        ``users``: internal ids (a list, an integer array or a long tensor on any device);
        ``None`` scores every user. ``perturbation={block: Δ}`` scores under a perturbation of
        the parameter blocks, for models that declare some (``capabilities.parameter_blocks``);
        any other keyword is a ParamError naming it.
        """
        self._check_fitted()
        self._check_score_options(options)
        with torch.no_grad():
            return self._score(self._as_users(users), **options)

    def _check_score_options(self, options: dict[str, Any]) -> None:
        blocks = self.capabilities.parameter_blocks
        for key in options:
            if key == "perturbation" and not blocks:
                raise ParamError(key, f"{type(self).__name__} has no perturbable parameter "
                                      f"blocks (capability parameter_blocks: none)")
            if key != "perturbation":
                raise ParamError(key, f"not an argument of {type(self).__name__}.score; "
                                      f"expected {'perturbation' if blocks else 'users only'}")

    @abstractmethod
    def _score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of ``users`` (a long tensor); with parameter blocks also ``perturbation``."""

    def recommend(
        self, users=None, k: int = 10, exclude_seen: bool = True, raw_ids: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user (internal ids, or raw ids with ``raw_ids``) and their scores.

        ``exclude_seen`` removes the user's training items from the candidates.
        """
        self._check_fitted()
        k = check_int(k, "k", low=1)
        exclude_seen = check_bool(exclude_seen, "exclude_seen")
        raw_ids = check_bool(raw_ids, "raw_ids")
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

    def _state_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The tensors :meth:`_state` stores, by name, with their shapes as functions of the
        parameters and ``n_users_``/``n_items_`` (``None``: any length, e.g. a CSR's entries).

        Tensors named ``*.indptr``/``*.indices`` hold integers, every other one finite floats.
        """
        return {}

    def _state_csr(self) -> dict[str, tuple[int, int]]:
        """Prefixes of the CSR matrices in :meth:`_state` (``p.indptr``, ``p.indices``,
        ``p.data``) and the shape of each, so load checks their structure."""
        return {}

    def _state_tensor_count(self) -> int:
        """How many tensors :meth:`_state` stores (override where that number is computed from
        a parameter, so a hostile one is refused before a huge name list is built)."""
        return len(self._state_shapes())

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Restore learned tensors produced by :meth:`_state`."""

    def save(self, path: str | os.PathLike, extra: dict | None = None,
             overwrite: bool = False) -> Path:
        """Write the fitted model to folder ``path``: ``state.safetensors``, then
        ``manifest.json`` (last, so a half-written folder is never loadable).

        The folder is claimed through :func:`advrec.outputs.claim_dir`: a new or empty folder,
        or (with ``overwrite``) one holding an earlier saved model, of which only the files
        advrec wrote are replaced. An existing file, a non-empty folder advrec did not write, or
        an earlier model without ``overwrite`` are refused with an :class:`OutputError` before
        anything is written. ``extra``: a JSON-friendly dict stored in the manifest.
        """
        self._check_fitted()
        path = as_path(path)
        overwrite = check_bool(overwrite, "overwrite")
        if extra is not None and not isinstance(extra, dict):
            raise ParamError("extra", f"expected a dict or None, got {plain(extra)}")
        self.validate_params()
        state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self._state().items()}
        self._check_own_state(state)
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
        try:
            text = json.dumps(manifest, indent=1, default=_json_default)
        except (TypeError, ValueError) as exc:  # something in extra that JSON cannot hold
            raise ParamError("extra", f"must be JSON-serialisable ({_one_line(exc)})") from None
        out = claim_dir(path, "model", overwrite=overwrite)
        from safetensors.torch import save_file

        out.write(STATE, lambda tmp: save_file(state, str(tmp)))
        out.write_text(MANIFEST, text)
        return path

    def _check_own_state(self, state: dict[str, torch.Tensor]) -> None:
        """Refuse to save what load would refuse: parameters changed after fit (set_params),
        non-finite tensors (a diverged fit), ids that are neither integers nor strings."""
        for key, ids in (("user_ids", self.user_ids_), ("item_ids", self.item_ids_)):
            _check_id_list(_ids_to_json(np.asarray(ids)), len(ids), key, key, lambda field, why: (
                DataError(f"cannot save {type(self).__name__}: {field}: {why}")))
        expected = {f"model.{k}": v for k, v in self._state_shapes().items()}
        if set(expected) != set(state):
            raise ConfigError(f"cannot save {type(self).__name__}: its tensors "
                              f"{sorted(state)} do not match its parameters "
                              f"(expected {sorted(expected)}); refit after set_params")
        for key, shape in expected.items():
            if not _shape_ok(tuple(state[key].shape), shape):
                raise ConfigError(f"cannot save {type(self).__name__}: tensor {key} has shape "
                                  f"{_shape_text(state[key].shape)}, its parameters give "
                                  f"{_shape_text(shape)}; refit after set_params")
            t = state[key]
            if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
                raise TrainingError(f"cannot save {type(self).__name__}: tensor {key} holds NaN "
                                    f"or infinite values (training diverged); refit, e.g. with "
                                    f"a lower learning rate")

    @classmethod
    def load(cls, path: str | os.PathLike, device=None) -> Recommender:
        """Load a folder written by :meth:`save` (no pickles: JSON + safetensors only).

        The manifest and the state file are checked against the model's schema before any
        tensor is used (:class:`CheckpointError` naming the file and the field or tensor);
        nothing on disk is changed. ``device`` overrides the saved device.
        """
        path = as_path(path)
        if device is not None:
            DEVICE.check(device, "device")
        manifest = read_manifest(path)
        mpath = path / MANIFEST
        model_cls = MODELS[manifest["model"]]
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise CheckpointError(f"{mpath}: model: holds a {manifest['model']!r} model, not a "
                                  f"{cls.name or cls.__name__!r} model")
        params = model_cls._checked_params(manifest["params"])
        if device is not None and "device" in params:
            params["device"] = device
        model = model_cls(**params)
        if "device" in params:
            resolve_device(params["device"])  # a device this machine lacks: ConfigError here
        n_users, n_items = manifest["n_users"], manifest["n_items"]
        model.n_users_, model.n_items_ = n_users, n_items
        model.user_ids_ = np.asarray(manifest["user_ids"])
        model.item_ids_ = np.asarray(manifest["item_ids"])
        state = _read_state(path / STATE, model)
        indptr, indices = state.pop("seen.indptr").numpy(), state.pop("seen.indices").numpy()
        model.seen_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices.astype(np.int64),
             indptr.astype(np.int64)), shape=(n_users, n_items)
        )
        try:
            model._load_state({k[len("model."):]: v for k, v in state.items()})
        except CheckpointError:
            raise
        except (KeyError, RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise CheckpointError(
                f"{path / STATE}: model state does not match {manifest['model']!r} "
                f"({_one_line(exc)})"
            ) from None
        model.fitted_ = True
        return model


# ---------------------------------------------------------------------------- checkpoint schema
def read_manifest(path: str | os.PathLike) -> dict:
    """Read a saved model's ``manifest.json`` and check it against the schema.

    Checked: a JSON object with ``format``/``format_version``; ``model`` a registered name and
    ``class`` (if present) its class; ``params`` a dict of that model's parameters (unknown
    names refused; missing ones take their defaults) whose values pass its constraints;
    ``n_users``/``n_items`` positive integers; ``user_ids``/``item_ids`` lists of that length of
    integers or strings without duplicates; ``extra`` a dict. Any failure is a one-line
    :class:`CheckpointError` naming the file and the field.
    """
    path = as_path(path)
    mpath = path / MANIFEST
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path}: not a saved advrec model (a file, not a folder)")
    if not mpath.is_file():
        raise CheckpointError(f"{path}: not a saved advrec model (no {MANIFEST})")
    try:
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{mpath}: unreadable manifest ({size} bytes; a model's "
                                  f"manifest is at most {MAX_MANIFEST_BYTES})")
        manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    except CheckpointError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{mpath}: unreadable manifest ({_one_line(exc)})") from None

    def bad(field: str, reason: str) -> CheckpointError:
        return CheckpointError(f"{mpath}: {field}: {reason}")

    if not isinstance(manifest, dict):
        raise bad("manifest", f"expected a JSON object, got {type(manifest).__name__}")
    if "format" not in manifest:
        raise CheckpointError(f"{mpath}: not an advrec model manifest (no field 'format')")
    if manifest["format"] != FORMAT:
        raise CheckpointError(f"{mpath}: not an advrec model manifest (format: expected "
                              f"{FORMAT!r}, got {plain(manifest['format'])})")
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1:
        raise bad("format_version", f"expected a positive integer, got {plain(version)}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{mpath}: written by a newer advrec (format_version "
                              f"{version} > {FORMAT_VERSION})")
    for key in ("model", "params", "n_users", "n_items", "user_ids", "item_ids"):
        if key not in manifest:
            raise CheckpointError(f"{mpath}: manifest lacks the field {key!r}")
    name = manifest["model"]
    if not isinstance(name, str) or name not in MODELS:
        raise bad("model", f"unknown model type {plain(name)}; expected one of "
                           f"{', '.join(sorted(MODELS))}")
    model_cls = MODELS[name]
    if "class" in manifest and manifest["class"] != model_cls.__name__:
        raise bad("class", f"expected {model_cls.__name__!r} (model {name!r}), "
                           f"got {plain(manifest['class'])}")
    params = manifest["params"]
    if not isinstance(params, dict):
        raise bad("params", f"expected a JSON object, got {type(params).__name__}")
    unknown = sorted(set(params) - set(model_cls._param_names()))
    if unknown:
        raise bad("params", f"unknown parameter(s) {', '.join(map(repr, unknown))} for model "
                            f"{name!r}; expected some of {', '.join(model_cls._param_names())}")
    try:
        model_cls._checked_params(params)
    except ParamError as exc:
        raise bad(f"params.{exc.name}", exc.reason) from None
    for key in ("n_users", "n_items"):
        if not _is_int(manifest[key]) or manifest[key] < 1:
            raise bad(key, f"expected a positive integer, got {plain(manifest[key])}")
    for key, n_key in (("user_ids", "n_users"), ("item_ids", "n_items")):
        _check_id_list(manifest[key], manifest[n_key], key, n_key, bad)
    if "extra" in manifest and not isinstance(manifest["extra"], dict):
        raise bad("extra", f"expected a JSON object, got {type(manifest['extra']).__name__}")
    return manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_id_list(ids: Any, n: int, key: str, n_key: str,
                   bad: Callable[[str, str], CheckpointError]) -> None:
    if not isinstance(ids, list):
        raise bad(key, f"expected a list of {n_key} = {n} ids, got {type(ids).__name__}")
    if len(ids) != n:
        raise bad(key, f"expected {n_key} = {n} ids, got {len(ids)}")
    if not all(isinstance(i, str) for i in ids):
        for i in ids:
            if not _is_int(i):
                raise bad(key, f"expected integer or string ids (not a mix), got {plain(i)}")
            if not -(2 ** 63) <= i < 2 ** 63:
                raise bad(key, f"ids must fit a 64-bit integer, got {plain(i)}")
    if len(set(ids)) != len(ids):
        seen: set = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise bad(key, f"duplicate id {plain(dup)}; expected distinct ids")


def _shape_ok(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=True))


def _shape_text(shape) -> str:
    return "[" + ", ".join("any" if d is None else str(d) for d in shape) + "]"


def _is_index_tensor(name: str) -> bool:
    return name.endswith((".indptr", ".indices"))


def _read_state(spath: Path, model: Recommender) -> dict[str, torch.Tensor]:
    """The tensors of ``state.safetensors``, checked against ``model``'s declared state before
    use: names, shapes, dtypes (from the header, nothing loaded yet), then finite values and
    the structure of every CSR (``seen`` and the model's own)."""
    n_users, n_items = model.n_users_, model.n_items_

    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"{spath}: {reason}")

    if not spath.is_file():
        raise bad("missing; expected the model's tensors beside its manifest")
    from safetensors import safe_open

    csr = {"seen": (n_users, n_items),
           **{f"model.{p}": shape for p, shape in model._state_csr().items()}}
    try:
        with safe_open(str(spath), framework="pt") as f:
            names = list(f.keys())
            count = model._state_tensor_count()
            n_model = sum(1 for k in names if k.startswith("model."))
            if count > MAX_LISTED_TENSORS and count != n_model:
                raise bad(f"holds {n_model} model tensors, the manifest's params give {count}")
            expected = {f"model.{k}": v for k, v in model._state_shapes().items()}
            expected["seen.indptr"] = (n_users + 1,)
            expected["seen.indices"] = (None,)
            missing = sorted(set(expected) - set(names))
            if missing:
                raise bad(f"missing tensor(s) {', '.join(missing[:10])}"
                          f"{' …' if len(missing) > 10 else ''}; the manifest's "
                          f"{model.name!r} model stores {len(expected)} tensors")
            unexpected = sorted(set(names) - set(expected))
            if unexpected:
                raise bad(f"unexpected tensor(s) {', '.join(unexpected[:10])}"
                          f"{' …' if len(unexpected) > 10 else ''}; not part of a "
                          f"{model.name!r} model")
            for key in names:
                part = f.get_slice(key)
                shape, dtype = tuple(part.get_shape()), part.get_dtype()
                if not _shape_ok(shape, expected[key]):
                    raise bad(f"tensor {key}: expected shape {_shape_text(expected[key])}, "
                              f"got {_shape_text(shape)}")
                kinds = _INT_DTYPES if _is_index_tensor(key) else _FLOAT_DTYPES
                if dtype not in kinds:
                    what = "integer" if kinds is _INT_DTYPES else "floating-point"
                    raise bad(f"tensor {key}: expected {what} values "
                              f"({'/'.join(kinds.values())}), got dtype {dtype}")
            tensors = {key: f.get_tensor(key) for key in names}
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise bad(f"unreadable model state ({_one_line(exc)})") from None
    for key, t in tensors.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise bad(f"tensor {key}: holds NaN or infinite values; expected finite numbers")
    for prefix, shape in csr.items():
        _check_csr(tensors, prefix, shape, bad)
    return tensors


def _check_csr(tensors: dict[str, torch.Tensor], prefix: str, shape: tuple[int, int],
               bad: Callable[[str], CheckpointError]) -> None:
    """``prefix.indptr``: rows + 1 nondecreasing offsets from 0 to len(indices); indices in
    0..cols-1; ``prefix.data`` (if stored) as long as the indices."""
    indptr = tensors[f"{prefix}.indptr"].to(torch.int64)
    indices = tensors[f"{prefix}.indices"]
    rows, cols = shape
    if len(indptr) != rows + 1:
        raise bad(f"tensor {prefix}.indptr: expected {rows + 1} entries, got {len(indptr)}")
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(indices) or bool(
            (indptr[1:] < indptr[:-1]).any()):
        raise bad(f"tensor {prefix}.indptr: expected nondecreasing offsets from 0 to "
                  f"len({prefix}.indices) = {len(indices)}")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= cols):
        raise bad(f"tensor {prefix}.indices: expected column ids in 0..{cols - 1}")
    data = tensors.get(f"{prefix}.data")
    if data is not None and len(data) != len(indices):
        raise bad(f"tensor {prefix}.data: expected {len(indices)} entries (one per index), "
                  f"got {len(data)}")


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


__all__ = ["CAPABILITIES", "DEVICE", "FIT_OPTIONS", "SEED", "Capabilities", "IdError",
           "MetricAtK", "Names", "Noted", "Recommender", "as_path", "capability_problems",
           "check_fitted_model", "check_request", "id_array", "id_tensor", "read_manifest",
           "resolve_device", "validation_value"]
