"""Shared fixtures: the real data sets live in ADVREC_DATA_DIR (default ../shared/datasets)."""

from __future__ import annotations

import http.server
import os
import threading
from functools import partial
from pathlib import Path

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

# Property tests draw the same examples on every run (a fresh CI clone has no example database),
# so a red run is reproducible; HYPOTHESIS_PROFILE=explore draws new ones to hunt for bugs.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ADVREC_DATA_DIR", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data sets not found in {DATA_DIR} (set ADVREC_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(autouse=True, scope="session")
def _compiled_kernels():
    """Compile the numba kernels before the first test, so that the one-time compile notice
    (advrec._lazy.compile_once) never lands in a test's captured stderr."""
    from advrec._lazy import compile_once
    from advrec.data import sampling_kernels
    from advrec.evaluation import ranking_kernels
    from advrec.training import bpr_kernel

    compile_once("the BPR-MF CPU epoch", [bpr_kernel.bpr_epoch], bpr_kernel.warm_up)
    compile_once("the negative sampler", [sampling_kernels.bitmap_member], sampling_kernels.warm_up)
    compile_once("the full-ranking counter", [ranking_kernels.candidates_at_least],
                 ranking_kernels.warm_up)


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory):
    """advrec's record of the files it wrote (for --overwrite) lives in a temporary folder."""
    os.environ["ADVREC_STATE_DIR"] = str(tmp_path_factory.mktemp("advrec-state"))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (``None`` for folders): compare before/after to
    show that a refused command changed nothing on disk."""
    root = Path(root)
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = None if p.is_dir() else p.read_bytes()
    return out


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without log lines, recording the paths asked for."""

    requests_seen: list[str] = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        type(self).requests_seen.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 (free port) serving ``tmp_path/srv``; yields (dir, base URL).
    Proxies and ADVREC_DOWNLOAD_URL are cleared, so only this local server is ever contacted."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("ADVREC_DOWNLOAD_URL", raising=False)
    root = tmp_path / "srv"
    root.mkdir()
    QuietHandler.requests_seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# Fast settings of every registered model (epochs 1–2, tiny sizes), for the tests that run every
# model: the contract (test_model_contract) and hostile input (test_hostile_models).
FAST_MODELS: dict[str, dict] = {
    "itempop": {},
    "bprmf": dict(n_factors=4, epochs=2, device="cpu"),
    "apr": dict(n_factors=4, epochs=2, device="cpu"),
    "userknn": dict(k=5),
    "itemknn": dict(k=5, neighbourhood="global"),
    "mf": dict(n_factors=3, epochs=2, device="cpu"),
    "cfgan": dict(epochs=1, g_hidden=8, d_hidden=4, valid_ratio=0.0, device="cpu"),
    "irgan": dict(emb_dim=4, epochs=1, d_epochs=1, g_epochs=1, pretrain_epochs=1,
                  valid_ratio=0.0, device="cpu"),
    "lightgcn": dict(n_factors=4, n_layers=2, epochs=2, batch_size=64, device="cpu"),
    "cdae": dict(n_factors=4, epochs=2, batch_size=16, device="cpu"),
    "acae": dict(n_factors=4, epochs=2, batch_size=16, adv_start_epoch=1, device="cpu"),
    "multvae": dict(hidden_dims=(8,), latent_dim=4, epochs=2, batch_size=16, device="cpu"),
    "multdae": dict(hidden_dims=(8,), latent_dim=4, epochs=2, batch_size=16, device="cpu"),
    "neumf": dict(mf_dim=3, layers=(8, 4), epochs=2, batch_size=64, device="cpu"),
    "gmf": dict(mf_dim=3, epochs=2, batch_size=64, device="cpu"),
    "mlp": dict(layers=(8, 4), epochs=2, batch_size=64, device="cpu"),
    "iautorec": dict(n_hidden=4, epochs=2, batch_size=16, device="cpu"),
    "uautorec": dict(n_hidden=4, epochs=2, batch_size=16, device="cpu"),
    "vbpr": dict(n_factors=3, n_visual_factors=2, epochs=2, batch_size=64, device="cpu"),
    "amr": dict(n_factors=3, n_visual_factors=2, epochs=2, batch_size=64, device="cpu"),
}


def content_for(n_items: int, n_features: int = 5, seed: int = 0):
    """Seeded item content features (n_items, n_features) for the models that need them."""
    import numpy as np

    return np.random.default_rng(seed).random((n_items, n_features), dtype=np.float32)


def model_fit_options(cls, data) -> dict:
    """The keyword options every test fit of ``cls`` on ``data`` passes: no progress bar, and
    the items' content for content-aware models."""
    opts = {"progress": False} if "progress" in cls.capabilities.fit_options else {}
    if cls.capabilities.content_features:
        opts["item_features"] = content_for(data.n_items)
    return opts
