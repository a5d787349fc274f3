"""Hostile input to the model API: every bad argument, hyper-parameter or edited checkpoint is a
library error (an AdvrecError subclass) that names what was wrong, and a refused load or save
changes nothing on disk."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from advrec.data import Interactions
from advrec.data.synthetic import synthetic_interactions
from advrec.errors import (
    AdvrecError,
    CheckpointError,
    ConfigError,
    DataError,
    OutputError,
    ParamError,
)
from advrec.models import (
    APR,
    BPRMF,
    CFGAN,
    IRGAN,
    MF,
    MODELS,
    ItemKNN,
    ItemPop,
    Recommender,
    UserKNN,
    get_model,
    load_model,
    resolve_device,
)
from advrec.models.base import read_manifest
from conftest import FAST_MODELS, model_fit_options, snapshot

INF, NAN = math.inf, math.nan

# small, fast settings per model (1–2 epochs, no validation split)
FAST = FAST_MODELS


def tiny() -> Interactions:
    return Interactions.from_raw(["a", "a", "b", "c", "c", "c"], [10, 20, 20, 10, 30, 40])


@pytest.fixture(scope="module")
def rated() -> Interactions:
    return synthetic_interactions(30, 20, 150, n_clusters=3, seed=0, with_ratings=True)


@pytest.fixture(scope="module")
def pop() -> ItemPop:
    return ItemPop().fit(tiny())


@pytest.fixture(scope="module")
def bpr() -> BPRMF:
    return BPRMF(**FAST["bprmf"]).fit(tiny(), progress=False)


@pytest.fixture(scope="module")
def fitted(rated) -> dict[str, Recommender]:
    return {name: MODELS[name](**FAST[name]).fit(rated, **model_fit_options(MODELS[name], rated))
            for name in MODELS}


def _names(error: ParamError, name: str, *words: str) -> None:
    msg = str(error)
    assert isinstance(error, AdvrecError)
    assert error.name == name and msg.startswith(f"{name}: "), msg
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


# ----------------------------------------------------------------------------- declared constraints
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_parameter_has_a_constraint_and_the_defaults_pass(name):
    cls = MODELS[name]
    assert set(cls._param_constraints) == set(cls._param_names())
    for rule in cls._param_constraints.values():
        assert callable(getattr(rule, "check", None))
    cls().validate_params()
    cls(**FAST[name]).validate_params()


BAD_PARAMS = [
    (BPRMF, "n_factors", 2.5, "expected an integer, got 2.5"),
    (BPRMF, "n_factors", 2.0, "expected an integer, got 2.0"),
    (BPRMF, "n_factors", True, "expected an integer, got True"),
    (BPRMF, "epochs", "5", "expected an integer, got '5'"),
    (BPRMF, "epochs", -5, "must be >= 0, got -5"),
    (BPRMF, "lr", INF, "must be a finite number, got inf"),
    (BPRMF, "lr", NAN, "must be a finite number, got nan"),
    (BPRMF, "lr", 0.0, "must be > 0"),
    (BPRMF, "reg", -0.1, "must be >= 0"),
    (BPRMF, "optimizer", "adamw", "adagrad, adam, sgd"),
    (BPRMF, "backend", "jax", "auto, torch, numba"),
    (BPRMF, "patience", 0, ">= 1"),
    (BPRMF, "device", "tpu9", "'tpu9'"),
    (BPRMF, "seed", -1, "[0, "),
    (BPRMF, "seed", None, "integer"),
    (APR, "eps", 0, "must be > 0"),
    (APR, "adv_reg", -1, ">= 0"),
    (APR, "adv_blocks", ("bias",), "'bias'"),
    (APR, "adv_blocks", "user", "list"),
    (APR, "adv_blocks", [], "non-empty"),
    (APR, "adv_norm", "l1", "l2, linf"),
    (UserKNN, "k", 0, ">= 1"),
    (ItemKNN, "similarity", "jaccard", "cosine"),
    (UserKNN, "shrinkage", -1.0, ">= 0"),
    (ItemKNN, "min_support", 1.0, "integer"),
    (MF, "solver", "adam", "als, sgd"),
    (MF, "reg", 0.0, "'als'"),
    (MF, "n_factors", -1, ">= 0"),
    (CFGAN, "zr_ratio", 1.5, "[0, 1]"),
    (CFGAN, "refit", 1, "true or false"),
    (CFGAN, "valid_metric", "precision", "precision@5"),
    (CFGAN, "valid_ratio", 1.0, "[0, 1)"),
    (IRGAN, "gumbel_hard", "no", "true or false"),
    (IRGAN, "threshold", NAN, "finite"),
    (IRGAN, "valid_metric", "precision@0", "precision@5"),
    (IRGAN, "temperature", 0.0, "> 0"),
    (IRGAN, "recommender", "both", "generator, discriminator"),
    (ItemPop, "seed", 1.5, "integer"),
]


@pytest.mark.parametrize(("cls", "name", "value", "expected"), BAD_PARAMS,
                         ids=[f"{c.name}-{n}-{v!r}" for c, n, v, _ in BAD_PARAMS])
def test_bad_hyper_parameter_is_named(cls, name, value, expected):
    model = cls(**{name: value})  # constructors only store
    with pytest.raises(ParamError) as info:
        model.validate_params()
    _names(info.value, name, expected)
    with pytest.raises(ParamError) as info:  # fit refuses it before looking at the data
        cls(**{name: value}).fit(tiny())
    _names(info.value, name)


def test_validate_params_has_no_side_effects_and_fit_canonicalises_choices(bpr):
    model = BPRMF(n_factors=np.int64(4), epochs=1, lr=1, backend="Torch", device="cpu")
    model.validate_params()
    assert model.backend == "Torch" and not model.is_fitted  # untouched, no data needed
    model.fit(tiny(), progress=False)
    assert model.backend == "torch" and model.backend_ == "torch"


def test_combinations_of_parameters():
    with pytest.raises(ParamError) as info:
        BPRMF(backend="numba", optimizer="adam").validate_params()
    _names(info.value, "backend", "adagrad or sgd")
    with pytest.raises(ParamError) as info:
        APR(backend="numba", adv_norm="linf").validate_params()
    _names(info.value, "adv_norm", "l2")
    MF(solver="sgd", reg=0.0).validate_params()  # the ridge is needed by ALS only


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["tpu9", "cuda:x", "auto:0", "CPU", "", "cuda:-1", 5, True])
def test_malformed_device_is_a_param_error(device):
    with pytest.raises(ParamError) as info:
        resolve_device(device)
    _names(info.value, "device")


def test_missing_gpus_say_how_many_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"'cuda:5'.* 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:5")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device(None) == resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


# ----------------------------------------------------------------------------- score / recommend
BAD_CALLS = [
    ("score-float", lambda m: m.score([0.7]), "users", "0.7"),
    ("score-range", lambda m: m.score([3]), "users", "0..2"),
    ("score-negative", lambda m: m.score([-1]), "users", "-1"),
    ("score-bool", lambda m: m.score([True]), "users", "bool"),
    ("score-nan", lambda m: m.score([NAN]), "users", "nan"),
    ("score-text", lambda m: m.score(["a"]), "users", "integer ids"),
    ("score-ragged", lambda m: m.score([[0, 1], [2]]), "users", "integer ids"),
    ("score-float-tensor", lambda m: m.score(torch.tensor([0.0])), "users", "float32"),
    ("score-tensor-range", lambda m: m.score(torch.tensor([5])), "users", "0..2"),
    ("k-float", lambda m: m.recommend(k=2.5), "k", "2.5"),
    ("k-zero", lambda m: m.recommend(k=0), "k", ">= 1"),
    ("k-bool", lambda m: m.recommend(k=True), "k", "True"),
    ("k-text", lambda m: m.recommend(k="10"), "k", "'10'"),
    ("exclude_seen", lambda m: m.recommend(exclude_seen="no"), "exclude_seen", "'no'"),
    ("raw_ids", lambda m: m.recommend(raw_ids=1), "raw_ids", "1"),
    ("recommend-users", lambda m: m.recommend([0.5]), "users", "0.5"),
]


@pytest.mark.parametrize(("call", "name", "expected"), [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_score_and_recommend_arguments(pop, call, name, expected):
    with pytest.raises(ParamError) as info:
        call(pop)
    _names(info.value, name, expected)


def test_out_of_range_ids_stay_data_errors_too(pop):
    with pytest.raises(DataError, match="0..2"):
        pop.score([3])


def test_tensor_and_array_users_still_work(pop, bpr):
    expected = pop.score([0, 2])
    assert torch.equal(pop.score(torch.tensor([0, 2])), expected)
    assert torch.equal(pop.score(np.array([0, 2], dtype=np.int32)), expected)
    assert torch.equal(pop.score(torch.tensor([[0], [2]], dtype=torch.int32)), expected)
    assert pop.score([]).shape == (0, 4)
    items, _ = bpr.recommend(torch.tensor([1]), k=np.int64(2))
    assert items.shape == (1, 2)


MODEL_CALLS = [
    ("score-kwarg", lambda b, p: b.score([0], foo=1), ParamError, "foo"),
    ("perturbation-shape", lambda b, p: b.score([0], perturbation={"user": torch.zeros(2, 2)}),
     ParamError, "perturbation"),
    ("perturbation-block", lambda b, p: b.score([0], perturbation={"bias": torch.zeros(3)}),
     ParamError, "perturbation"),
    ("perturbation-type", lambda b, p: b.score([0], perturbation=[1]), ParamError,
     "perturbation"),
    ("pair-float", lambda b, p: b.pair_scores([0], [0.5]), ParamError, "items"),
    ("pair-range", lambda b, p: b.pair_scores([9], [0]), ParamError, "users"),
    ("loss-batch", lambda b, p: b.loss("abc"), ParamError, "batch"),
    ("fit-kwarg", lambda b, p: BPRMF(epochs=1).fit(tiny(), bogus=1), ParamError, "bogus"),
    ("fit-progress", lambda b, p: BPRMF(epochs=1).fit(tiny(), progress="yes"), ParamError,
     "progress"),
    ("fit-validate", lambda b, p: BPRMF(epochs=1).fit(tiny(), validate=3), ParamError,
     "validate"),
    ("fit-callbacks", lambda b, p: BPRMF(epochs=1).fit(tiny(), callbacks=5), ParamError,
     "callbacks"),
    ("fit-validate-returns-text",
     lambda b, p: BPRMF(epochs=1).fit(tiny(), validate=lambda m: "good", progress=False),
     ParamError, "validate"),
    ("irgan-generator-loss-float",
     lambda b, p: IRGAN(**FAST["irgan"]).fit(tiny(), progress=False).generator_loss([0.5]),
     ParamError, "users"),
    ("bpr-init-from-text", lambda b, p: BPRMF(epochs=1).fit(tiny(), init_from="model"),
     ParamError, "init_from"),
    ("apr-init-from-pop", lambda b, p: APR(epochs=1).fit(tiny(), init_from=p), ParamError,
     "init_from"),
    ("apr-init-from-unfitted", lambda b, p: APR(epochs=1).fit(tiny(), init_from=BPRMF()),
     ParamError, "init_from"),
    ("irgan-init-from-pop",
     lambda b, p: IRGAN(**FAST["irgan"]).fit(tiny(), init_from=p, progress=False),
     ParamError, "init_from"),
    ("cfgan-valid", lambda b, p: CFGAN(**FAST["cfgan"]).fit(tiny(), valid=[1]), ParamError,
     "valid"),
    ("knn-predict-float", lambda b, p: UserKNN().fit(tiny()).predict([0.5], [0]), ParamError,
     "users"),
    ("knn-predict-length", lambda b, p: UserKNN().fit(tiny()).predict([0, 1], [0]), ParamError,
     "items"),
    ("fit-not-interactions", lambda b, p: ItemPop().fit([[0, 1]]), DataError, "Interactions"),
    ("set-params", lambda b, p: BPRMF().set_params(factors=3), ParamError, "factors"),
    ("get-model-int", lambda b, p: get_model(3), ParamError, "model"),
    ("get-model-none", lambda b, p: get_model(None), ParamError, "model"),
    ("load-path-int", lambda b, p: load_model(3), ParamError, "path"),
    ("save-path-int", lambda b, p: b.save(3), ParamError, "path"),
    ("save-extra-list", lambda b, p: b.save("unused-folder", extra=[1]), ParamError, "extra"),
    ("save-extra-object", lambda b, p: b.save("unused-folder", extra={"a": object()}),
     ParamError, "extra"),
    ("save-overwrite-text", lambda b, p: b.save("unused-folder", overwrite="yes"), ParamError,
     "overwrite"),
]


@pytest.mark.parametrize(("call", "error", "name"), [c[1:] for c in MODEL_CALLS],
                         ids=[c[0] for c in MODEL_CALLS])
def test_bad_model_api_arguments(tmp_path, monkeypatch, bpr, pop, call, error, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        call(bpr, pop)
    msg = str(info.value)
    assert isinstance(info.value, AdvrecError) and "\n" not in msg
    assert name in msg, msg
    if isinstance(info.value, ParamError):
        assert info.value.name == name
    assert not any(tmp_path.iterdir())  # nothing was written


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_declares_its_state_and_round_trips(tmp_path, fitted, name):
    model = fitted[name]
    state = model._state()
    shapes = model._state_shapes()
    assert set(state) == set(shapes)
    for key, t in state.items():
        assert len(t.shape) == len(shapes[key])
        assert all(e is None or s == e for s, e in zip(t.shape, shapes[key], strict=True))
    loaded = Recommender.load(model.save(tmp_path / name))
    assert type(loaded) is type(model)
    users = torch.arange(model.n_users_)
    assert torch.allclose(loaded.score(users).cpu(), model.score(users).cpu())


# ----------------------------------------------------------------------------- checkpoints
def _saved(tmp_path: Path, model: Recommender) -> Path:
    return model.save(tmp_path / "model")


def _edit_manifest(path: Path, change) -> None:
    mpath = path / "manifest.json"
    manifest = json.loads(mpath.read_text())
    out = change(manifest)
    if isinstance(out, bytes):
        mpath.write_bytes(out)
    else:
        mpath.write_text(out if isinstance(out, str) else json.dumps(manifest))


def _edit_state(path: Path, change) -> None:
    spath = path / "state.safetensors"
    state = load_file(str(spath))
    change(state)
    save_file(state, str(spath))


def _assert_refused(path: Path, file: str, *words: str, cls=Recommender) -> None:
    before = snapshot(path.parent)
    with pytest.raises(CheckpointError) as info:
        cls.load(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert file in msg, msg
    for w in words:
        assert w in msg, msg
    assert snapshot(path.parent) == before  # loading never changes anything on disk


def _set(key, value):
    def change(m):
        m[key] = value
    return change


def _param(key, value):
    def change(m):
        m["params"][key] = value
    return change


def _drop(key):
    def change(m):
        del m[key]
    return change


MANIFEST_EDITS = [
    ("not-json", lambda m: "{broken", "unreadable manifest"),
    ("deeply-nested", lambda m: "[" * 100_000 + "]" * 100_000, "unreadable manifest"),
    ("not-utf8", lambda m: b"\xff\xfe{", "unreadable manifest"),
    ("a-list", lambda m: "[1, 2]", "expected a JSON object"),
    ("format", _set("format", "other"), "format"),
    ("no-format", _drop("format"), "format"),
    ("no-format-version", _drop("format_version"), "format_version"),
    ("format-version-text", _set("format_version", "1"), "format_version"),
    ("format-version-newer", _set("format_version", 99), "newer"),
    ("no-params", _drop("params"), "'params'"),
    ("model-unknown", _set("model", "deepfm"), "model: unknown model type 'deepfm'"),
    ("model-int", _set("model", 3), "model:"),
    ("class-mismatch", _set("class", "APR"), "class:"),
    ("params-list", _set("params", [1]), "params:"),
    ("params-unknown", _param("n_factor", 4), "'n_factor'"),
    ("params-float-int", _param("n_factors", 2.5), "params.n_factors"),
    ("params-bool-int", _param("epochs", True), "params.epochs"),
    ("params-text-float", _param("lr", "fast"), "params.lr"),
    ("params-negative", _param("reg", -1.0), "params.reg"),
    ("params-choice", _param("optimizer", "rmsprop"), "params.optimizer"),
    ("params-device", _param("device", "tpu9"), "params.device"),
    ("n-users-zero", _set("n_users", 0), "n_users"),
    ("n-users-float", _set("n_users", 3.0), "n_users"),
    ("n-items-text", _set("n_items", "4"), "n_items"),
    ("user-ids-dict", _set("user_ids", {"a": 0}), "user_ids"),
    ("user-ids-length", _set("user_ids", ["a", "b"]), "user_ids"),
    ("user-ids-duplicate", _set("user_ids", ["a", "b", "a"]), "duplicate"),
    ("item-ids-float", _set("item_ids", [10, 20, 30, 40.5]), "item_ids"),
    ("item-ids-mixed", _set("item_ids", [10, 20, 30, "x"]), "item_ids"),
    ("item-ids-bool", _set("item_ids", [10, 20, 30, True]), "item_ids"),
    ("extra-list", _set("extra", []), "extra"),
]


@pytest.mark.parametrize(("change", "words"), [e[1:] for e in MANIFEST_EDITS],
                         ids=[e[0] for e in MANIFEST_EDITS])
def test_edited_manifest_is_refused(tmp_path, bpr, change, words):
    path = _saved(tmp_path, bpr)
    _edit_manifest(path, change)
    _assert_refused(path, "manifest.json", words)


def _mutate(key, fn):
    def change(state):
        state[key] = fn(state[key])
    return change


def _delete(key):
    def change(state):
        del state[key]
    return change


def _add(key, value):
    def change(state):
        state[key] = value
    return change


STATE_EDITS = [
    ("missing", _delete("model.item"), "missing tensor(s) model.item"),
    ("unexpected", _add("model.bias", torch.zeros(4)), "unexpected tensor(s) model.bias"),
    ("shape", _mutate("model.user", lambda t: torch.zeros(3, 5)), "model.user: expected shape"),
    ("rank", _mutate("model.item", lambda t: t.reshape(-1)), "model.item: expected shape"),
    ("int-dtype", _mutate("model.user", lambda t: t.to(torch.int64)), "model.user"),
    ("bool-dtype", _mutate("model.item", lambda t: t > 0), "model.item"),
    ("bfloat16", _mutate("model.item", lambda t: t.to(torch.bfloat16)), "model.item"),
    ("nan", _mutate("model.item", lambda t: t.index_fill(0, torch.tensor([1]), NAN)), "NaN"),
    ("inf", _mutate("model.user", lambda t: t.index_fill(0, torch.tensor([0]), INF)), "infinite"),
    ("indptr-length", _mutate("seen.indptr", lambda t: t[:-1]), "seen.indptr"),
    ("indptr-start", _mutate("seen.indptr", lambda t: t + 1), "seen.indptr"),
    ("indptr-decreasing", _mutate("seen.indptr", lambda t: torch.tensor([0, 3, 2, 6])),
     "seen.indptr"),
    ("indptr-end", _mutate("seen.indptr", lambda t: torch.tensor([0, 2, 3, 5])), "seen.indptr"),
    ("indptr-float", _mutate("seen.indptr", lambda t: t.double()), "seen.indptr"),
    ("indices-range", _mutate("seen.indices", lambda t: t + 7), "seen.indices"),
    ("indices-negative", _mutate("seen.indices", lambda t: -t - 1), "seen.indices"),
    ("indices-missing", _delete("seen.indices"), "seen.indices"),
]


@pytest.mark.parametrize(("change", "words"), [e[1:] for e in STATE_EDITS],
                         ids=[e[0] for e in STATE_EDITS])
def test_edited_state_is_refused(tmp_path, bpr, change, words):
    path = _saved(tmp_path, bpr)
    _edit_state(path, change)
    _assert_refused(path, "state.safetensors", words)


def test_unreadable_and_missing_state_file(tmp_path, bpr):
    path = _saved(tmp_path, bpr)
    (path / "state.safetensors").write_bytes(b"not a tensor file")
    _assert_refused(path, "state.safetensors", "unreadable")
    (path / "state.safetensors").unlink()
    _assert_refused(path, "state.safetensors", "missing")


def test_params_that_disagree_with_the_tensors(tmp_path, bpr):
    path = _saved(tmp_path, bpr)
    _edit_manifest(path, _param("n_factors", 8))
    _assert_refused(path, "state.safetensors", "expected shape", ", 8], got")


def test_csr_of_a_neighbourhood_model_is_checked(tmp_path, fitted):
    path = _saved(tmp_path, fitted["userknn"])
    _edit_state(path, _mutate("model.knn.data", lambda t: t[:-1]))
    _assert_refused(path, "state.safetensors", "model.knn.data")
    path = fitted["itemknn"].save(tmp_path / "other")
    _edit_state(path, _mutate("model.ratings.indices", lambda t: t + 100))
    _assert_refused(path, "state.safetensors", "model.ratings.indices")


def test_gan_networks_follow_their_params(tmp_path, fitted):
    path = _saved(tmp_path, fitted["cfgan"])
    _edit_manifest(path, _param("g_layers", 2))
    _assert_refused(path, "state.safetensors", "missing tensor(s) model.gen.layers.4")
    _edit_manifest(path, _param("g_layers", 10 ** 12))  # refused at once, not after a long build
    _assert_refused(path, "state.safetensors", "model tensors")
    _edit_manifest(path, _param("g_layers", 1))
    _edit_manifest(path, _param("d_hidden", 5))
    _assert_refused(path, "state.safetensors", "model.dis.layers.0")
    path = fitted["irgan"].save(tmp_path / "irgan")
    _edit_state(path, _delete("model.pre.bias"))
    _assert_refused(path, "state.safetensors", "model.pre.bias")


def test_load_into_the_wrong_class_and_bad_device(tmp_path, bpr, pop):
    path = _saved(tmp_path, pop)
    _assert_refused(path, "manifest.json", "'itempop'", cls=BPRMF)
    path = bpr.save(tmp_path / "bpr")
    before = snapshot(tmp_path)
    with pytest.raises(ParamError) as info:
        BPRMF.load(path, device="tpu9")
    _names(info.value, "device", "tpu9")
    assert snapshot(tmp_path) == before
    with pytest.raises(CheckpointError, match="a file, not a folder"):
        read_manifest(path / "manifest.json")
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_model(tmp_path / "missing")


# ----------------------------------------------------------------------------- saving
def test_save_refuses_a_folder_it_did_not_write(tmp_path, bpr):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="did not write"):
        bpr.save(folder)
    with pytest.raises(OutputError, match="did not write"):
        bpr.save(folder, overwrite=True)
    assert snapshot(tmp_path) == before


def test_save_refuses_an_existing_file(tmp_path, bpr):
    target = tmp_path / "model"
    target.write_text("precious")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="not a folder"):
        bpr.save(target, overwrite=True)
    assert snapshot(tmp_path) == before


def test_save_over_an_earlier_model_needs_overwrite_and_keeps_user_files(tmp_path, bpr, pop):
    path = pop.save(tmp_path / "model")
    (path / "README.txt").write_text("a user's file")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="overwrite"):
        bpr.save(path)
    assert snapshot(tmp_path) == before
    assert bpr.save(path, overwrite=True) == path
    assert (path / "README.txt").read_text() == "a user's file"
    assert isinstance(load_model(path), BPRMF)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left


def test_save_writes_the_manifest_last_with_the_umask(tmp_path, bpr):
    path = bpr.save(tmp_path / "model", extra={"note": [1, 2]})
    marker = json.loads((path / ".advrec-output.json").read_text())
    assert marker["kind"] == "model"
    assert marker["entries"] == ["state.safetensors", "manifest.json"]
    mask = os.umask(0)
    os.umask(mask)
    for name in ("state.safetensors", "manifest.json"):
        assert (path / name).stat().st_mode & 0o777 == 0o666 & ~mask
    assert read_manifest(path)["extra"] == {"note": [1, 2]}
    (path / "manifest.json").unlink()  # as if writing had stopped before the manifest
    _assert_refused(path, "manifest.json")


def test_save_refuses_params_changed_after_fit(tmp_path):
    model = BPRMF(**FAST["bprmf"]).fit(tiny(), progress=False).set_params(n_factors=8)
    with pytest.raises(ConfigError, match="model.user"):
        model.save(tmp_path / "model")
    model.set_params(n_factors=2.5)
    with pytest.raises(ParamError, match="n_factors"):
        model.save(tmp_path / "model")
    assert not any(tmp_path.iterdir())


def test_compatible_checkpoints_still_load(tmp_path, bpr):
    """A folder saved before output markers, without ``class``/``extra`` and with a parameter
    added since (its default applies), loads; save may replace it with overwrite."""
    path = _saved(tmp_path, bpr)
    (path / ".advrec-output.json").unlink()

    def legacy(manifest):
        del manifest["class"], manifest["extra"], manifest["params"]["validate_every"]

    _edit_manifest(path, legacy)
    loaded = load_model(path)
    assert torch.equal(loaded.score(), bpr.score())
    assert read_manifest(path)["model"] == "bprmf"
    bpr.save(path, overwrite=True)
    assert read_manifest(path)["extra"] == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_and_device_count(bpr):
    users = torch.tensor([0, 2], device="cuda")
    assert torch.equal(bpr.score(users).cpu(), bpr.score([0, 2]).cpu())
    with pytest.raises(ParamError, match="users"):
        bpr.score(torch.tensor([9], device="cuda"))
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=f"{n} CUDA device"):
        resolve_device(f"cuda:{n}")
