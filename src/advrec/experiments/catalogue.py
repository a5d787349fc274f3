"""What exists, read from the registries: every model, attack, defence, metric and data set
with its parameters, their defaults and a one-line description (``advrec list``). Nothing here
is written by hand twice: names come from the registries, descriptions from docstrings."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advrec.errors import ParamError
from advrec.validation import plain
from advrec.vocabulary import CERTIFIED, CONTENT_ATTACKS, ROBUST_TRAINING

KINDS = ("models", "attacks", "defenses", "metrics", "datasets")
SKIPPED = ("self", "seed", "device")  # parameters every entry takes: not listed per entry


@dataclass(frozen=True)
class Entry:
    """One thing that exists: its name, kind, one-line description and parameters."""

    name: str
    kind: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)  # name -> default
    notes: tuple[str, ...] = ()  # e.g. a model's capabilities, a data set's folds
    required: tuple[str, ...] = ()  # parameters without a default

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "params": {k: _jsonable(v) for k, v in self.params.items()},
                "required": list(self.required), "notes": list(self.notes)}


def entries(kind: str) -> list[Entry]:
    """Every entry of ``kind`` (one of :data:`KINDS`), in registry order."""
    if kind not in BUILDERS:
        raise ParamError("kind", f"expected one of {', '.join(KINDS)}; got {plain(kind)}")
    return BUILDERS[kind]()


def first_line(obj: Any) -> str:
    """The first paragraph of a docstring on one line, RST markup dropped (empty without one)."""
    doc = (inspect.getdoc(obj) or "").strip()
    para = " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())
    return para.replace("``", "").replace(":func:", "").replace(":class:", "")


def _signature_params(func: Callable, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in SKIPPED + skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = None if p.default is p.empty else p.default
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)


# ----------------------------------------------------------------------------- builders
def _models() -> list[Entry]:
    from advrec.models import MODELS

    out = []
    for name, cls in MODELS.items():
        caps = cls.capabilities
        notes = []
        if caps.parameter_blocks:
            notes.append(f"parameter attacks on: {', '.join(caps.parameter_blocks)}")
        if caps.early_stopping:
            notes.append("early stopping")
        if caps.warm_start:
            notes.append(f"warm start from: {', '.join(caps.warm_start)}")
        if caps.rating_prediction:
            notes.append("predicts ratings")
        if caps.content_features:
            notes.append("uses item content features (data.content)")
        out.append(Entry(name, "model", first_line(cls),
                         {k: v for k, v in cls._param_defaults().items() if k not in SKIPPED},
                         tuple(notes)))
    return out


def _attacks() -> list[Entry]:
    from advrec.attacks.injection import injection_attacks, is_poisoning
    from advrec.attacks.perturbation import fgsm, pgd, random_perturbation
    from advrec.vocabulary import PROFILE_FILE

    functions = {"fgsm": fgsm, "random": random_perturbation, "pgd": pgd}
    out = [Entry(name, "parameter attack", first_line(func),
                 {"eps": None, **_signature_params(func, ("model", "train", "eps"))},
                 ("perturbs a trained model's parameter blocks",), ("eps",))
           for name, func in functions.items()]
    for name, cls in injection_attacks().items():
        params = {f.name: (None if f.default is dataclasses.MISSING else f.default)
                  for f in dataclasses.fields(cls) if f.init}
        if params.get("intent") is None and "intent" in params:
            params["intent"] = cls.default_intent
        if is_poisoning(name):
            kind = "poisoning attack"
            how = getattr(cls, "access", None) or (
                f"optimised against a surrogate: {', '.join(cls.surrogates)}"
                if cls.surrogates else "generated (no surrogate): learnt from real profiles")
            notes = (how, cls.reference)
        elif name == PROFILE_FILE:
            kind, notes = "profile file", ("injects the fake profiles of a file",)
        else:
            kind = "shilling attack"
            notes = ("injects fake profiles into the training data",)
        out.append(Entry(name, kind, first_line(cls), params, notes))
    from advrec.attacks.content import taamr

    for name in CONTENT_ATTACKS:
        out.append(Entry(name, "content attack", first_line(taamr),
                         _signature_params(taamr, ("encoder", "images", "target_class", "items",
                                                   "source_class", "progress")),
                         ("Di Noia, Malitesta & Merra, DSN-W 2020; perturbs item images, "
                          "experiment files: content_attacks",)))
    return out


def _defenses() -> list[Entry]:
    from advrec.defenses.detectors import (
        CLASSIFIERS,
        DEFENSES,
        PCADetector,
        RuleDetector,
        SupervisedDetector,
    )

    out = []
    for name in DEFENSES:
        if name in CLASSIFIERS:
            params = _signature_params(SupervisedDetector.__init__, ("classifier",))
            out.append(Entry(name, "supervised detector", f"{name}: " + first_line(
                SupervisedDetector), params, ("trained leave-one-attack-type-out",)))
        elif name in ("pca", "rule"):
            cls = PCADetector if name == "pca" else RuleDetector
            out.append(Entry(name, "unsupervised detector", first_line(cls),
                             _signature_params(cls.__init__)))
        else:
            out.append(Entry(name, "oracle", "Removes exactly the fake profiles: the upper "
                                             "bound of any detector."))
    from advrec.defenses.apt import apt_fit
    from advrec.defenses.trim import trimmed_fit

    robust = {"trim": (trimmed_fit, "Jagielski et al., S&P 2018 (TRIM), over users; uses the "
                                    "victim's own fit and loss"),
              "apt": (apt_fit, "Wu et al., SIGIR 2021 (APT); ERM users chosen by their "
                               "influence on the risk of a rating MF; experiment files: params "
                               "(these)")}
    for name in ROBUST_TRAINING:
        func, note = robust[name]
        out.append(Entry(name, "robust training", first_line(func),
                         _signature_params(func, ("fit", "data", "seed", "surrogate")), (note,)))
    from advrec.defenses.images import jpeg_compress, reduce_bit_depth

    for name, func in (("jpeg", jpeg_compress), ("bit_depth", reduce_bit_depth)):
        out.append(Entry(name, "image transformation", first_line(func),
                         _signature_params(func, ("images",)),
                         ("Anelli et al., SIGIR 2021 (input defences of visual recommenders); "
                          "experiment files: content_attacks.transform",)))
    from advrec.defenses.pore import PORE

    for name in CERTIFIED:
        out.append(Entry(name, "certified ensemble", first_line(PORE),
                         {**_signature_params(PORE.__init__, ("seed",)), "max_fake": 50},
                         ("Jia et al., USENIX Security 2023; replaces the victim by the "
                          "ensemble of its base recommender (SAR by default); experiment "
                          "files: params (these) and max_fake",)))
    return out


def _metrics() -> list[Entry]:
    from advrec.metric_names import ALL_METRICS, DESCRIPTIONS, RANK_METRICS

    return [Entry(name, "metric", DESCRIPTIONS[name], {"k": 10} if name in RANK_METRICS else {},
                  (f"written {name}@k, e.g. {name}@100; {name} alone is {name}@10",)
                  if name in RANK_METRICS else ())
            for name in ALL_METRICS]


def _datasets() -> list[Entry]:
    from advrec.data.datasets import list_datasets

    out = []
    for info in list_datasets():
        notes = [f"protocol: {info.protocol}"]
        if info.folds:
            notes.append(f"folds: {', '.join(info.folds)}")
        notes.append(f"here: {info.path}" if info.path is not None else
                     "download: advrec fetch " + info.name if info.downloadable
                     else "not on this machine")
        out.append(Entry(info.name, "data set", info.description, {}, tuple(notes)))
    return out


BUILDERS: dict[str, Callable[[], list[Entry]]] = {
    "models": _models, "attacks": _attacks, "defenses": _defenses, "metrics": _metrics,
    "datasets": _datasets}
