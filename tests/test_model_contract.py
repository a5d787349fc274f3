"""The model contract, checked for every registered model (in the spirit of scikit-learn's
``check_estimator``): fit/score/recommend, parameters, persistence, seeding, argument errors, and
that each model's declared capabilities (``cls.capabilities``) are truthful.

Every entry of ``advrec.models.MODELS`` is covered automatically; a newly registered model needs
fast settings in ``FAST`` (and, if fitting ignores the seed, its name in ``DETERMINISTIC``).
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from advrec.data import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import AdvrecError, ConfigError, IdError, OutputError, ParamError
from advrec.models import BPRMF, MF, MODELS, ItemPop, Recommender, load_model
from advrec.models.base import (
    CAPABILITIES,
    FIT_OPTIONS,
    Capabilities,
    capability_problems,
    check_request,
)
from conftest import FAST_MODELS, model_fit_options

# Small, fast settings per registered model (1–2 epochs, no internal validation split). Block
# sizes agree (4) so warm starts between the embedding models line up.
FAST = FAST_MODELS
# models whose fit ignores the seed (the same scores for every seed)
DETERMINISTIC = {"itempop", "userknn", "itemknn"}
# the number of rows of each known parameter block, from the fitted model
BLOCK_ROWS = {"user": lambda m: m.n_users_, "item": lambda m: m.n_items_,
              "item_content": lambda m: m.n_items_, "user_visual": lambda m: m.n_users_,
              "encoder": lambda m: m.n_items_, "decoder": lambda m: m.n_items_,
              **{f"{t}_{s}": (lambda m: m.n_users_) if s == "user" else (lambda m: m.n_items_)
                 for t in ("gmf", "mlp") for s in ("user", "item")}}

NAMES = sorted(MODELS)


def fast(name: str) -> dict:
    if name not in FAST:
        pytest.fail(f"model {name!r} is registered but has no fast settings: add an entry for it "
                    f"to FAST in tests/test_model_contract.py (epochs 1–2, tiny sizes)")
    return dict(FAST[name])


def quiet(cls: type[Recommender], data: Interactions) -> dict:
    return model_fit_options(cls, data)


def make(name: str, data: Interactions, **changes) -> Recommender:
    cls = MODELS[name]
    model = cls(**{**fast(name), **changes})
    out = model.fit(data, **quiet(cls, data))
    assert out is model, f"{name}: fit must return self"
    return model


def all_scores(model: Recommender, **kw) -> torch.Tensor:
    return model.score(torch.arange(model.n_users_), **kw).cpu()


@pytest.fixture(scope="module")
def data() -> Interactions:
    return synthetic_interactions(40, 30, 300, n_clusters=3, seed=0, with_ratings=True)


@pytest.fixture(scope="module")
def fitted(data):
    cache: dict[str, Recommender] = {}

    def get(name: str) -> Recommender:
        if name not in cache:
            cache[name] = make(name, data)
        return cache[name]

    return get


def _names_arg(exc: BaseException, name: str) -> None:
    msg = str(exc)
    assert isinstance(exc, AdvrecError), repr(exc)
    assert isinstance(exc, ParamError) and exc.name == name, msg
    assert name in msg and "\n" not in msg, msg


# ----------------------------------------------------------------------------- the declaration
@pytest.mark.parametrize("name", NAMES)
def test_fast_settings_exist(name):
    fast(name)


@pytest.mark.parametrize("name", NAMES)
def test_declaration_matches_the_code(name):
    cls = MODELS[name]
    caps = cls.capabilities
    assert isinstance(caps, Capabilities)
    fit_params = inspect.signature(cls._fit).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in fit_params.values()), \
        f"{name}._fit must name its options, not swallow **kwargs"
    named = {p for p in fit_params if p not in ("self", "train")}
    assert named == set(caps.fit_options), \
        f"{name}: _fit takes {sorted(named)}, capabilities.fit_options say {caps.fit_options}"
    score_params = inspect.signature(cls._score).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in score_params.values())
    assert ("perturbation" in score_params) == bool(caps.parameter_blocks)
    assert hasattr(cls, "parameter_blocks") == bool(caps.parameter_blocks)
    assert hasattr(cls, "predict") == caps.rating_prediction
    if caps.early_stopping:
        assert {"patience", "validate_every"} <= set(cls._param_names())
        assert "validate" in caps.fit_options
    assert set(caps.warm_start) <= set(MODELS)
    assert ("init_from" in caps.fit_options) == bool(caps.warm_start)
    assert caps.content_features == ("item_features" in caps.fit_options), \
        f"{name}: content features and the fit option item_features go together"
    for capability in CAPABILITIES:
        assert cls.supports(capability) == bool(getattr(caps, capability))


# ------------------------------------------------------------------------- fit, score, recommend
@pytest.mark.parametrize("name", NAMES)
def test_fit_score_recommend(name, data, fitted):
    model = fitted(name)
    assert model.is_fitted
    users = [0, 3, 7, 7]
    scores = model.score(users)
    assert tuple(scores.shape) == (len(users), data.n_items)
    assert scores.is_floating_point() and bool(torch.isfinite(scores).all())
    assert tuple(model.score().shape) == (data.n_users, data.n_items)
    k = 3
    counts = data.user_counts
    users = np.flatnonzero(data.n_items - counts >= k)[:10]
    items, item_scores = model.recommend(users, k=k)
    assert items.shape == (len(users), k) and item_scores.shape == (len(users), k)
    assert np.isfinite(item_scores).all()
    seen = data.binary_csr
    for row, u in zip(items, users, strict=True):
        assert len(set(row.tolist())) == k
        assert not set(row.tolist()) & set(seen[u].indices.tolist()), f"{name}: seen item"


@pytest.mark.parametrize("name", NAMES)
def test_get_params_round_trip_through_the_constructor(name, fitted):
    cls = MODELS[name]
    for model in (cls(), fitted(name)):
        params = model.get_params()
        assert cls(**params).get_params() == params
        assert set(params) == set(cls._param_names())


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path, fitted):
    model = fitted(name)
    path = model.save(tmp_path / name)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    assert torch.equal(all_scores(loaded), all_scores(model))
    with pytest.raises(OutputError):
        model.save(path)
    model.save(path, overwrite=True)
    assert torch.equal(all_scores(load_model(path)), all_scores(model))


@pytest.mark.parametrize("name", NAMES)
def test_seed(name, data, fitted):
    model = fitted(name)
    again = make(name, data)
    assert torch.equal(all_scores(again), all_scores(model)), f"{name}: same seed, other scores"
    other = make(name, data, seed=1)
    if name in DETERMINISTIC:
        assert torch.equal(all_scores(other), all_scores(model))
    else:
        assert not torch.equal(all_scores(other), all_scores(model)), \
            f"{name}: another seed gave the same scores (list it in DETERMINISTIC if fitting " \
            f"ignores the seed)"


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments_are_named(name, data, fitted):
    cls, model = MODELS[name], fitted(name)
    with pytest.raises(ParamError) as info:
        cls(**fast(name)).fit(data, bogus_option=1)
    _names_arg(info.value, "bogus_option")
    for option in FIT_OPTIONS:  # every option the model does not declare is refused
        if option not in cls.capabilities.fit_options:
            with pytest.raises(ParamError) as info:
                cls(**fast(name)).fit(data, **{option: None})
            _names_arg(info.value, option)
    with pytest.raises(IdError) as info:
        model.score([0.5])
    _names_arg(info.value, "users")
    with pytest.raises(ParamError) as info:
        model.score([0], bogus=1)
    _names_arg(info.value, "bogus")
    for k in (0, -1, 2.5):
        with pytest.raises(ParamError) as info:
            model.recommend([0], k=k)
        _names_arg(info.value, "k")


# ----------------------------------------------------------------------------- capabilities
@pytest.mark.parametrize("name", NAMES)
def test_parameter_blocks_are_truthful(name, fitted):
    cls, model = MODELS[name], fitted(name)
    declared = cls.capabilities.parameter_blocks
    if not declared:
        with pytest.raises(ParamError) as info:
            model.score([0], perturbation={})
        _names_arg(info.value, "perturbation")
        with pytest.raises(ConfigError, match=f"'{name}'.*parameter_blocks"):
            check_request(cls, parameter_blocks=True)
        return
    check_request(cls, parameter_blocks=declared)
    blocks = model.parameter_blocks()
    assert tuple(blocks) == declared
    before = {b: t.detach().clone() for b, t in blocks.items()}
    clean = all_scores(model)
    gen = torch.Generator().manual_seed(0)
    for b, t in blocks.items():
        assert b in BLOCK_ROWS, f"add the row count of block {b!r} to BLOCK_ROWS"
        assert t.dim() == 2 and t.is_floating_point()
        assert t.shape[0] == BLOCK_ROWS[b](model)
        zero = all_scores(model, perturbation={b: torch.zeros_like(t)})
        assert torch.equal(zero, clean)
        delta = torch.randn(t.shape, generator=gen).to(t.device, t.dtype)
        moved = all_scores(model, perturbation={b: delta})
        assert moved.shape == clean.shape and bool(torch.isfinite(moved).all())
        assert not torch.allclose(moved, clean)
    for b, t in model.parameter_blocks().items():  # scoring under Δ changed nothing
        assert torch.equal(t.detach(), before[b])
    with pytest.raises(ConfigError, match="no parameter block"):
        check_request(cls, parameter_blocks=["no-such-block"])


@pytest.mark.parametrize("name", NAMES)
def test_early_stopping_is_truthful(name, data):
    cls = MODELS[name]
    calls: list[int] = []

    def validate(model):
        calls.append(1)
        return 1.0 / len(calls)  # always worse: patience 1 stops after the second validation

    if cls.capabilities.early_stopping:
        check_request(cls, early_stopping=True)
        model = cls(**{**fast(name), "epochs": 4, "patience": 1, "validate_every": 1})
        model.fit(data, validate=validate, **quiet(cls, data))
        assert len(calls) == 2 and len(model.history_) == 2
        assert [h["validation"] for h in model.history_] == [1.0, 0.5]
        assert model.best_epoch_ == 1
        return
    with pytest.raises(ConfigError, match=f"'{name}'.*early_stopping"):
        check_request(cls, early_stopping=True)
    if "validate" in cls.capabilities.fit_options:  # validation picks an epoch, no patience
        assert "patience" not in cls._param_names()
        cls(**fast(name)).fit(data, validate=validate, **quiet(cls, data))
        assert calls, f"{name}: fit took validate= but never called it"
    else:
        with pytest.raises(ParamError) as info:
            cls(**fast(name)).fit(data, validate=validate)
        _names_arg(info.value, "validate")
        assert not calls


@pytest.mark.parametrize("name", NAMES)
def test_warm_start_is_truthful(name, data, fitted):
    cls = MODELS[name]
    sources = cls.capabilities.warm_start
    outsider = next(n for n in NAMES if n not in sources)
    with pytest.raises(ParamError) as info:
        cls(**fast(name)).fit(data, init_from=fitted(outsider), **quiet(cls, data))
    _names_arg(info.value, "init_from")
    if not sources:
        with pytest.raises(ConfigError, match=f"'{name}'.*warm_start"):
            check_request(cls, warm_start=True)
        return
    with pytest.raises(ConfigError, match=f"'{name}'.*{outsider!r}.*warm_start"):
        check_request(cls, warm_start=outsider)
    with pytest.raises(ParamError) as info:  # an unfitted source
        cls(**fast(name)).fit(data, init_from=MODELS[sources[0]](), **quiet(cls, data))
    _names_arg(info.value, "init_from")
    for source in sources:
        check_request(cls, warm_start=source)
        check_request(cls, warm_start=fitted(source))
        model = cls(**fast(name))
        assert model.fit(data, init_from=fitted(source), **quiet(cls, data)) is model
        assert bool(torch.isfinite(all_scores(model)).all())


@pytest.mark.parametrize("name", NAMES)
def test_rating_prediction_is_truthful(name, data, fitted):
    cls, model = MODELS[name], fitted(name)
    if not cls.capabilities.rating_prediction:
        assert not hasattr(model, "predict")
        with pytest.raises(ConfigError, match=f"'{name}'.*rating_prediction"):
            check_request(cls, rating_prediction=True)
        return
    check_request(cls, rating_prediction=True)
    users, items = data.users[:50], data.items[:50]
    pred = np.asarray(model.predict(users, items))
    assert pred.shape == (50,) and np.isfinite(pred).all()
    assert pred.min() >= data.ratings.min() and pred.max() <= data.ratings.max()
    with pytest.raises(IdError) as info:
        model.predict([0.5], [0])
    _names_arg(info.value, "users")


# ----------------------------------------------------------------------------- the helpers
def test_check_request_names_the_model_and_every_missing_capability():
    with pytest.raises(ConfigError) as info:
        check_request(MF, early_stopping=True, warm_start=True, parameter_blocks=("user",),
                      fit_options=["progress", "validate"])
    msg = str(info.value)
    assert "\n" not in msg
    for words in ("'mf' has no validation-based early stopping", "capability early_stopping",
                  "'mf' cannot start from another model", "capability warm_start",
                  "'mf' has no perturbable parameter blocks", "capability parameter_blocks",
                  "'mf' takes no fit option(s) 'validate'", "capability fit_options"):
        assert words in msg, msg
    assert "'progress'" not in msg.split("fit option(s)")[1].split("(")[0]
    problems = capability_problems(MF, early_stopping=True, rating_prediction=True)
    assert list(problems) == ["early_stopping"]
    # nothing asked, nothing refused; an instance works as well as the class
    check_request(BPRMF(), parameter_blocks="both", early_stopping=True, warm_start="apr",
                  fit_options={"progress": False, "init_from": None}, rating_prediction=None,
                  content_features=False)
    with pytest.raises(ConfigError, match="'bprmf' cannot start from a 'mf' model"):
        BPRMF.check_request(warm_start=MF)
    with pytest.raises(ConfigError, match="'itempop' has no perturbable parameter blocks.*bprmf"):
        ItemPop.check_request(parameter_blocks=True)
    with pytest.raises(ConfigError, match="'bprmf' does not use content features"):
        check_request(BPRMF, content_features=True)


def test_unknown_capabilities_and_requests_are_param_errors():
    with pytest.raises(ParamError) as info:
        check_request(BPRMF, early_stop=True)
    _names_arg(info.value, "early_stop")
    with pytest.raises(ParamError) as info:
        BPRMF.supports("early_stop")
    _names_arg(info.value, "capability")
    for model in (BPRMF, ItemPop):  # the request is checked whatever the model declares
        with pytest.raises(ParamError) as info:
            check_request(model, parameter_blocks=3)
        _names_arg(info.value, "parameter_blocks")
    with pytest.raises(ParamError) as info:
        check_request(ItemPop, fit_options=True)
    _names_arg(info.value, "fit_options")
    check_request(ItemPop, fit_options={}, parameter_blocks=(), warm_start=None)  # nothing asked
    with pytest.raises(ParamError) as info:
        check_request(BPRMF, warm_start=3)
    _names_arg(info.value, "warm_start")
    with pytest.raises(ParamError) as info:
        check_request("bprmf", early_stopping=True)
    _names_arg(info.value, "model")
    assert BPRMF.supports("parameter_blocks") and not ItemPop.supports("warm_start")


@pytest.mark.parametrize("bad", [
    dict(parameter_blocks=["user"]),  # a list, not a tuple
    dict(early_stopping=1),
    dict(fit_options=("progress", "progress")),
    dict(fit_options=("verbose",)),
    dict(early_stopping=True),  # without the fit option validate
    dict(warm_start=("bprmf",)),  # without the fit option init_from
    dict(fit_options=("init_from",)),  # init_from without a source
])
def test_inconsistent_declarations_are_refused(bad):
    with pytest.raises((TypeError, ValueError)):
        Capabilities(**bad)


def test_capabilities_are_frozen_and_default_to_nothing():
    caps = Recommender.capabilities
    assert caps == Capabilities()
    assert not any(dataclasses.astuple(caps))
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.early_stopping = True  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(caps)] == list(CAPABILITIES)


CONTENT = [n for n in NAMES if MODELS[n].capabilities.content_features]


@pytest.mark.parametrize("name", CONTENT)
def test_content_features_are_truthful(name, data, fitted):
    """A content-aware model refuses to fit without its features or with ones of the wrong
    shape (ParamError naming item_features), and its scores depend on the features."""
    from conftest import content_for

    cls = MODELS[name]
    with pytest.raises(ParamError) as err:
        cls(**fast(name)).fit(data, progress=False)
    _names_arg(err.value, "item_features")
    with pytest.raises(ParamError) as err:
        cls(**fast(name)).fit(data, item_features=content_for(data.n_items + 1), progress=False)
    _names_arg(err.value, "item_features")
    with pytest.raises(ParamError) as err:
        bad = content_for(data.n_items)
        bad[0, 0] = float("nan")
        cls(**fast(name)).fit(data, item_features=bad, progress=False)
    _names_arg(err.value, "item_features")
    model = fitted(name)
    blocks = model.parameter_blocks()
    assert "item_content" in blocks and blocks["item_content"].shape[0] == data.n_items
    shifted = {"item_content": torch.ones_like(blocks["item_content"])}
    assert not torch.allclose(all_scores(model), all_scores(model, perturbation=shifted))
