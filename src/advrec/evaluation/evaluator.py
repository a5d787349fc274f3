"""`Evaluator`: chunked, vectorised top-k evaluation of a recommender (full ranking or sampled).

The evaluator scores users in chunks (one ``score`` call per chunk), never loops over users or
items in Python, and keeps memory at ``chunk_size x n_items``. Conventions (ties, AUC, sampling)
are documented in ``docs/evaluation.md`` and in :mod:`advrec.evaluation.metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advrec._lazy import compile_once, lazy
from advrec.data.interactions import Interactions
from advrec.errors import ConfigError, DataError
from advrec.evaluation.metrics import ALL_METRICS, PAD, check_ks, rank_metrics
from advrec.evaluation.significance import compare_results
from advrec.validation import check_int
from advrec.vocabulary import PROTOCOLS

sp = lazy("scipy.sparse")
torch = lazy("torch")

Scorer = Callable[[torch.Tensor], torch.Tensor]
"""``users (LongTensor [B]) -> scores (Tensor [B, n_items])``: what the evaluator ranks."""


_NEG_BLOCK = 1024  # users per block when sampling negatives: fixed, so chunk_size cannot matter
_COUNT_EXACT = 2**24  # the compiled counter sums in float32: exact below this many items
_CHUNK_MIN = 256  # users per chunk at least, when chunk_size is left to the evaluator
_CHUNK_SCORES = 2**22  # ... and up to this many scores per chunk (16 MiB of float32)


def auto_chunk_size(n_items: int) -> int:
    """Users per chunk when ``chunk_size=None``: 256, or more on a small catalogue, up to
    2**22 scores (16 MiB of float32) a chunk; fewer, larger chunks spend less of a small
    evaluation on per-chunk work (ML-1M's 3,706 items: 1,131 users a chunk)."""
    return max(_CHUNK_MIN, _CHUNK_SCORES // max(n_items, 1))


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Metric means (``summary``) and per-user values (``per_user``, aligned with ``users``).

    ``protocol`` is ``"full"`` (rank against every non-training item) or ``"sampled"`` (rank
    against ``n_negatives`` sampled items; biased, never comparable with full ranking).
    """

    summary: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    protocol: str
    ks: tuple[int, ...]
    n_users: int
    n_items: int
    n_negatives: int | None = None

    @property
    def label(self) -> str:
        """Human-readable protocol name; the sampled one says it is not full ranking."""
        if self.protocol == "sampled":
            return (f"sampled ranking: test items vs {self.n_negatives} sampled negatives per "
                    f"user (NOT full ranking; biased, Krichene & Rendle KDD'20)")
        return "full ranking: test items vs every item not in the user's training set"

    def __getitem__(self, name: str) -> float:
        return self.summary[name]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in self.summary.items())
        return f"EvaluationResult({self.protocol}, {self.n_users} users: {shown})"

    def to_dict(self, per_user: bool = True) -> dict[str, Any]:
        """A JSON-serialisable dict; ``per_user=False`` leaves the per-user values out."""
        out: dict[str, Any] = {
            "protocol": self.protocol, "label": self.label, "n_negatives": self.n_negatives,
            "ks": list(self.ks), "n_users": self.n_users, "n_items": self.n_items,
            "summary": {k: float(v) for k, v in self.summary.items()},
        }
        if per_user:
            out["users"] = self.users.tolist()
            out["per_user"] = {k: v.tolist() for k, v in self.per_user.items()}
        return out

    def to_json(self, per_user: bool = True) -> str:
        return json.dumps(self.to_dict(per_user))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict` (per-user values come back empty if they were dropped)."""
        return cls(
            summary=dict(d["summary"]),
            per_user={k: np.asarray(v, dtype=np.float64) for k, v in d.get("per_user", {}).items()},
            users=np.asarray(d.get("users", []), dtype=np.int64),
            protocol=d["protocol"], ks=tuple(d["ks"]), n_users=d["n_users"],
            n_items=d["n_items"], n_negatives=d.get("n_negatives"),
        )

    def table(self, digits: int = 4) -> str:
        """A small Markdown table of the summary, titled with the protocol."""
        lines = [f"{self.label} ({self.n_users} users, {self.n_items} items)", "",
                 "| metric | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.{digits}f} |" for k, v in self.summary.items()]
        return "\n".join(lines)

    def compare(self, other: EvaluationResult, metric: str, test: str = "ttest") -> dict:
        """Paired test of ``metric`` between this result and ``other`` (:func:`compare_results`)."""
        return compare_results(self, other, metric, test)


# ----------------------------------------------------------------------------- index helpers
@dataclass(frozen=True)
class _Pairs:
    """The (row, col) entries of a CSR restricted to the evaluated users, on one device.

    ``rows`` index the evaluated-users array, ``pos`` is the entry's position inside its row.
    """

    indptr: np.ndarray
    counts: np.ndarray
    rows: torch.Tensor
    cols: torch.Tensor
    pos: torch.Tensor
    counts_t: torch.Tensor

    @classmethod
    def build(cls, m: sp.csr_matrix, device: torch.device) -> _Pairs:
        indptr = m.indptr.astype(np.int64)
        counts = np.diff(indptr)
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), counts)
        pos = np.arange(m.nnz, dtype=np.int64) - indptr[:-1][rows]
        t = lambda a: torch.as_tensor(a, dtype=torch.int64).to(device)  # noqa: E731
        return cls(indptr, counts, t(rows), t(m.indices), t(pos), t(counts))

    def chunk(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows (relative to ``start``), columns and in-row positions of the chunk's entries."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return self.rows[lo:hi] - start, self.cols[lo:hi], self.pos[lo:hi]


@dataclass(frozen=True)
class _Chunk:
    """What one chunk yields: positions and non-relevant counts per relevant item, coverage."""

    positions: torch.Tensor
    neg_counts: torch.Tensor
    n_negatives: torch.Tensor
    covered: torch.Tensor | None = None


_pools: dict[tuple[int, int], Any] = {}


def _pool(threads: int):
    """A thread pool of that size for this process (a forked child makes its own: the parent's
    threads do not exist there); the compiled counter runs GIL-free in it."""
    import os

    key = (os.getpid(), threads)
    if key not in _pools:
        from concurrent.futures import ThreadPoolExecutor

        _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="advrec-eval")
    return _pools[key]


def _sort_rows(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Ascending sort of each row; on CPU through NumPy's SIMD sort (~20x faster than torch's)."""
    if x.device.type != "cpu":
        return torch.sort(x, dim=1).values
    if inplace:
        x.numpy().sort(axis=1)
        return x
    return torch.from_numpy(np.sort(x.numpy(), axis=1))


def _kth_largest(x: torch.Tensor, ks: tuple[int, ...]) -> list[torch.Tensor | None]:
    """Each row's k-th largest value for every k (None where k >= the row length); a partial
    partition on CPU (linear time), ``topk`` elsewhere."""
    n = x.shape[1]
    inside = [k for k in ks if k < n]
    if not inside:
        return [None] * len(ks)
    if x.device.type == "cpu":
        part = np.partition(x.numpy(), [n - k for k in sorted(inside, reverse=True)], axis=1)
        found = {k: torch.from_numpy(part[:, n - k].copy()) for k in inside}
    else:
        top = torch.topk(x, max(inside), dim=1).values
        found = {k: top[:, k - 1] for k in inside}
    return [found.get(k) for k in ks]


def _count_ge(scores: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """Per row, how many scores are ``>= thr[row]`` (NumPy on CPU: ~2x faster than torch)."""
    if scores.device.type == "cpu":
        ge = np.count_nonzero(scores.numpy() >= thr.numpy()[:, None], axis=1)
        return torch.from_numpy(ge.astype(np.int64))
    return (scores >= thr[:, None]).sum(1)


def _counts_from_sorted(
    cand_sorted: torch.Tensor, n_masked: torch.Tensor, rel: torch.Tensor, n_rel: torch.Tensor,
    includes_relevant: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-relevant candidates scoring ``>=`` each relevant item, and its position; ``[B, R]``.

    ``cand_sorted`` holds each row's candidate scores ascending, preceded by ``n_masked`` entries
    of ``-inf`` standing for non-candidates; it contains the relevant items' own scores when
    ``includes_relevant``. ``rel`` holds the relevant scores (the first ``n_rel`` slots of a row).
    Relevant items are placed in descending order of score, each after every non-relevant
    candidate scoring at least as high, so the r-th one's position is its count + r.
    """
    width = cand_sorted.shape[1]
    slot = torch.arange(rel.shape[1], device=rel.device)
    valid = slot[None, :] < n_rel[:, None]
    rel = torch.where(valid, rel, -torch.inf)
    rel_desc = torch.sort(rel, dim=1, descending=True).values.contiguous()
    below = torch.searchsorted(cand_sorted, rel_desc, side="left")
    counts = width - torch.maximum(below, n_masked[:, None])
    if includes_relevant:  # drop the relevant items scoring >= each one (itself included)
        rel_asc = torch.sort(torch.where(valid, rel, torch.inf), dim=1).values.contiguous()
        counts = counts - (n_rel[:, None] - torch.searchsorted(rel_asc, rel_desc, side="left"))
    counts = torch.where(valid, counts.to(torch.float64), PAD)
    return counts, counts + slot.to(torch.float64)


# ----------------------------------------------------------------------------- evaluator
class Evaluator:
    """Rank every test user's items with a model or scorer and compute top-k metrics.

    Users evaluated are those with at least one test item. ``protocol="full"`` ranks each test
    item against all items not in the user's training set; ``"sampled"`` against ``n_negatives``
    items drawn uniformly (seeded, without replacement, once per evaluator so every model sees
    the same ones) among the items the user has in neither train nor test. Ties count against
    the test item. ``coverage`` adds catalogue coverage@k (full protocol only). ``device=None``
    computes wherever the scores come out; otherwise scores are moved to ``device`` and the
    users passed to the scorer live there. ``chunk_size`` users are scored per call (``None``:
    :func:`auto_chunk_size`); results do not depend on it.
    """

    def __init__(
        self,
        train: Interactions,
        test: Interactions,
        ks: int | Sequence[int] = (10, 100),
        metrics: Sequence[str] = ("hr", "ndcg", "auc", "precision", "recall", "mrr", "map"),
        protocol: str = "full",
        n_negatives: int = 99,
        chunk_size: int | None = None,
        seed: int = 0,
        coverage: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        self.ks = check_ks(ks)
        self.metrics = _check_metrics(metrics)
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {protocol!r}; choose from {list(PROTOCOLS)}")
        chunk_size = check_int(chunk_size, "chunk_size", low=1, none_ok=True)
        if protocol == "sampled" and (not isinstance(n_negatives, int) or n_negatives < 1):
            raise ConfigError(f"n_negatives must be a positive integer, got {n_negatives!r}")
        _check_split(train, test)
        self.protocol = protocol
        self.n_negatives = n_negatives if protocol == "sampled" else None
        self.chunk_size = auto_chunk_size(train.n_items) if chunk_size is None else chunk_size
        self.seed = seed
        self.coverage = coverage and protocol == "full"
        self.device = None if device is None else torch.device(device)
        self.n_items = train.n_items
        n_test = np.diff(test.binary_csr.indptr)
        self.users = np.flatnonzero(n_test)
        # Chunks take users by decreasing test count, so a chunk's padded [B, R] matrix of
        # relevant items stays dense; results are put back in ascending user order.
        self._order = np.argsort(-n_test[self.users], kind="stable")
        self._run_users = self.users[self._order]
        self._train = train.binary_csr[self._run_users]
        self._test = test.binary_csr[self._run_users]
        self._pairs: dict[torch.device, tuple[_Pairs, _Pairs]] = {}
        self._csr = tuple((m.indptr.astype(np.int64), m.indices.astype(np.int64))
                          for m in (self._train, self._test))
        self._negatives = self._sample_negatives() if protocol == "sampled" else None

    # ------------------------------------------------------------------ public
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def negatives(self) -> np.ndarray | None:
        """Sampled negatives ``[n_users, n_negatives]`` (internal item ids, -1 = none left)."""
        return None if self._negatives is None else self._restore(self._negatives.numpy())

    def __repr__(self) -> str:
        return (f"Evaluator({self.protocol}, {self.n_users} users, {self.n_items} items, "
                f"ks={self.ks}, chunk_size={self.chunk_size})")

    def evaluate(self, model_or_scorer) -> EvaluationResult:
        """Score, rank and measure every evaluated user (protocol: see the class docstring)."""
        scorer = _as_scorer(model_or_scorer)
        parts: dict[str, list[torch.Tensor]] = {}
        seen: torch.Tensor | None = None
        for start, stop in self._chunks():
            scores = self._score(scorer, start, stop)
            out = self._rank_chunk(scores, start, stop)
            values = rank_metrics(out.positions, self.ks, self.metrics, out.neg_counts,
                                  out.n_negatives, presorted=True)
            for name, v in values.items():
                parts.setdefault(name, []).append(v)
            if out.covered is not None:
                seen = out.covered if seen is None else seen | out.covered
        per_user = {k: self._restore(torch.cat(v).cpu().numpy()) for k, v in parts.items()}
        summary = {k: float(v.mean()) for k, v in per_user.items()}
        if seen is not None:
            for k, row in zip(self.ks, seen.sum(1).cpu().tolist(), strict=True):
                summary[f"coverage@{k}"] = row / self.n_items
        return EvaluationResult(summary, per_user, self.users.copy(), self.protocol, self.ks,
                                self.n_users, self.n_items, self.n_negatives)

    def top_k(self, model_or_scorer, k: int) -> np.ndarray:
        """Each evaluated user's top-k internal item ids among non-training items (-1 pads)."""
        k = check_ks(k)[0]
        scorer = _as_scorer(model_or_scorer)
        lists = []
        for start, stop in self._chunks():
            scores = self._score(scorer, start, stop)
            lists.append(self._topk(scores, start, stop, k).cpu())
        return self._restore(torch.cat(lists).numpy())

    # ------------------------------------------------------------------ chunk work
    def _restore(self, values: np.ndarray) -> np.ndarray:
        """Rows computed in processing order, put back in the order of ``self.users``."""
        out = np.empty_like(values)
        out[self._order] = values
        return out

    def _chunks(self):
        for start in range(0, self.n_users, self.chunk_size):
            yield start, min(start + self.chunk_size, self.n_users)

    def _index(self, device: torch.device) -> tuple[_Pairs, _Pairs]:
        """Train and test entries of the evaluated users as tensors on ``device`` (cached)."""
        if device not in self._pairs:
            self._pairs[device] = (_Pairs.build(self._train, device),
                                   _Pairs.build(self._test, device))
        return self._pairs[device]

    def _score(self, scorer: Scorer, start: int, stop: int) -> torch.Tensor:
        """One scorer call for the chunk's users, checked for shape and moved to ``device``."""
        users = torch.as_tensor(self._run_users[start:stop], dtype=torch.int64)
        if self.device is not None:
            users = users.to(self.device)
        with torch.no_grad():
            scores = torch.as_tensor(scorer(users)).detach()
        if scores.shape != (stop - start, self.n_items):
            raise DataError(f"scorer returned shape {tuple(scores.shape)} for {stop - start} "
                            f"users; expected ({stop - start}, {self.n_items})")
        if not scores.is_floating_point():  # integer scores (counts) stay exact in float64
            scores = scores.to(torch.float64)
        elif scores.dtype not in (torch.float32, torch.float64):
            scores = scores.to(torch.float32)
        if self.device is not None:
            scores = scores.to(self.device)
        return scores.contiguous()

    def _topk(self, scores: torch.Tensor, start: int, stop: int, k: int) -> torch.Tensor:
        """Top-k item ids of the chunk with training items excluded (-1 where only -inf is left)."""
        train, _ = self._index(scores.device)
        masked = scores.clone()
        masked[train.chunk(start, stop)[:2]] = -torch.inf
        values, ids = torch.topk(masked, min(k, self.n_items), dim=1)
        return torch.where(values == -torch.inf, -1, ids)

    def _rank_chunk(self, scores: torch.Tensor, start: int, stop: int) -> _Chunk:
        """Positions of the chunk's test items, non-relevant counts, and coverage marks."""
        train, test = self._index(scores.device)
        t_rows, t_cols, t_pos = test.chunk(start, stop)
        n_rel = test.counts_t[start:stop]
        width = int(test.counts[start:stop].max())
        rel = scores.new_full((stop - start, width), -torch.inf)
        rel[t_rows, t_pos] = scores[t_rows, t_cols]
        if self.protocol == "sampled":
            return self._rank_sampled(scores, start, stop, rel, n_rel)
        if torch.isnan(scores.amax()):  # amax propagates NaN: one cheap reduction
            raise DataError("scorer returned NaN scores")
        rows, cols, _ = train.chunk(start, stop)
        n_train = train.counts_t[start:stop]
        n_neg = self.n_items - n_train - n_rel
        if scores.device.type == "cpu" and self.n_items < _COUNT_EXACT:
            counts, positions = self._count_candidates(scores, rel, n_rel, start, stop)
            return _Chunk(positions, counts, n_neg, self._coverage_marks(scores, rows, cols))
        if width == 1:  # leave-one-out: one comparison pass, no sort
            train_ge = (scores[rows, cols] >= rel[rows, 0]).to(torch.int64)
            counts = _count_ge(scores, rel[:, 0]).to(scores.device).index_add_(
                0, rows, train_ge, alpha=-1) - 1
            counts = counts.to(torch.float64)[:, None]
            return _Chunk(counts, counts, n_neg, self._coverage_marks(scores, rows, cols))
        masked = scores.clone()
        masked[rows, cols] = -torch.inf
        cand_sorted = _sort_rows(masked, inplace=not self.coverage)
        counts, positions = _counts_from_sorted(cand_sorted, n_train, rel, n_rel, True)
        covered = None
        if self.coverage:
            n = self.n_items
            kth = [cand_sorted[:, n - k] if k < n else None for k in self.ks]
            covered = self._covered(masked, kth)
        return _Chunk(positions, counts, n_neg, covered)

    def _count_candidates(self, scores: torch.Tensor, rel: torch.Tensor, n_rel: torch.Tensor,
                          start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-relevant candidates scoring ``>=`` each test item and its position (CPU): one
        compiled comparison pass per test item, training and test items subtracted, no sort and
        no copy of the scores (:mod:`advrec.evaluation.ranking_kernels`). Without AUC a count
        stops at the largest cut-off (a position beyond it is only known to be beyond it)."""
        from advrec.evaluation.ranking_kernels import candidates_at_least, warm_up

        compile_once("the full-ranking counter", [candidates_at_least], warm_up)
        rel_desc = torch.sort(rel, dim=1, descending=True).values  # -inf pads go last
        out = np.zeros(rel_desc.shape, np.int64)
        tr, te = self._csr
        s_np, r_np, n_np = scores.numpy(), rel_desc.numpy(), n_rel.numpy()
        # without AUC only positions below the largest cut-off matter: counts may saturate there
        cap = 0 if "auc" in self.metrics else max(self.ks)

        def rows(lo: int, hi: int) -> None:  # the kernel releases the GIL: threads share a chunk
            candidates_at_least(s_np[lo:hi], r_np[lo:hi], n_np[lo:hi], tr[0], tr[1], te[0], te[1],
                                start + lo, cap, out[lo:hi])

        threads = max(1, min(torch.get_num_threads(), len(out) // 16))
        if threads == 1:
            rows(0, len(out))
        else:
            work = np.cumsum(n_np + 1)  # a row costs about one pass per test item
            cuts = np.searchsorted(work, np.linspace(0, work[-1], threads + 1)[1:-1])
            cuts = np.concatenate([[0], cuts, [len(out)]])
            list(_pool(threads).map(rows, cuts[:-1], cuts[1:]))
        counts = torch.from_numpy(out).to(torch.float64)
        slot = torch.arange(rel.shape[1])
        valid = slot[None, :] < n_rel[:, None]
        counts = torch.where(valid, counts, PAD)
        return counts, counts + slot.to(torch.float64)

    def _coverage_marks(self, scores: torch.Tensor, rows, cols) -> torch.Tensor | None:
        """Coverage marks of the chunk (None without coverage): training items masked on a copy,
        each user's k-th best candidate by a partial partition."""
        if not self.coverage:
            return None
        masked = scores.clone()
        masked[rows, cols] = -torch.inf
        return self._covered(masked, _kth_largest(masked, self.ks))

    def _covered(self, masked: torch.Tensor, kth: list[torch.Tensor | None]) -> torch.Tensor:
        """``[len(ks), n_items]``: items scoring at least some user's k-th best candidate score.

        ``masked`` has training items at -inf; ``kth[j]`` is each user's ks[j]-th best score (None
        when k covers the catalogue). An item is covered at k when ``s_ui - kth_u >= 0`` for some
        user, i.e. it is in u's top-k (ties at the k-th score included).
        """
        floor = torch.finfo(masked.dtype).min
        out = []
        for t in kth:
            if t is None:  # every candidate is in the top-k
                out.append((masked > -torch.inf).any(0))
            else:
                out.append((masked >= t.clamp(min=floor)[:, None]).any(0))
        return torch.stack(out)

    def _rank_sampled(self, scores, start, stop, rel, n_rel) -> _Chunk:
        """Rank the test items against the user's sampled negatives only."""
        neg = self._negatives[start:stop].to(scores.device)
        ok = neg >= 0
        neg_scores = torch.where(ok, scores.gather(1, neg.clamp(min=0)), -torch.inf)
        if torch.isnan(neg_scores).any() or torch.isnan(rel).any():
            raise DataError("scorer returned NaN scores")
        n_masked = (~ok).sum(1)
        counts, positions = _counts_from_sorted(torch.sort(neg_scores, dim=1).values, n_masked,
                                                rel, n_rel, False)
        return _Chunk(positions, counts, ok.sum(1))

    def _sample_negatives(self) -> torch.Tensor:
        """``[n_users, n_negatives]`` items drawn without replacement from each user's non-train,
        non-test items (random keys + smallest-k, in fixed blocks of users); -1 when too few."""
        gen = torch.Generator().manual_seed(int(self.seed))
        width = min(self.n_negatives, self.n_items)
        out = torch.full((self.n_users, self.n_negatives), -1, dtype=torch.int64)
        train, test = self._index(torch.device("cpu"))
        for start in range(0, self.n_users, _NEG_BLOCK):
            stop = min(start + _NEG_BLOCK, self.n_users)
            keys = torch.rand((stop - start, self.n_items), generator=gen)
            for pairs in (train, test):
                keys[pairs.chunk(start, stop)[:2]] = 2.0
            values, ids = torch.topk(keys, width, dim=1, largest=False)
            out[start:stop, :width] = torch.where(values > 1.0, -1, ids)
        return out


# ----------------------------------------------------------------------------- checks
def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {unknown}; choose from {list(ALL_METRICS)}")
    return tuple(dict.fromkeys(names))


def _check_split(train: Interactions, test: Interactions) -> None:
    """Test must share train's id space, be non-empty and share no (user, item) pair with it."""
    if not train.same_space(test):
        raise DataError(f"test ({test.n_users} users, {test.n_items} items) is not in train's id "
                        f"space ({train.n_users} users, {train.n_items} items): split both from "
                        f"one Interactions or build them with the same user_ids/item_ids")
    if len(test) == 0:
        raise DataError("the test set has no interactions: nothing to evaluate")
    overlap = train.binary_csr.multiply(test.binary_csr).tocoo()
    if overlap.nnz:
        user = np.asarray(train.user_ids[overlap.row[0]]).item()
        item = np.asarray(train.item_ids[overlap.col[0]]).item()
        raise DataError(f"{overlap.nnz} (user, item) pair(s) are in both train and test (leakage), "
                        f"e.g. user {user!r}, item {item!r}")


def _as_scorer(model_or_scorer) -> Scorer:
    """A model's ``score`` method, or the callable itself."""
    score = getattr(model_or_scorer, "score", None)
    if callable(score):
        return score
    if callable(model_or_scorer):
        return model_or_scorer
    raise ConfigError(f"expected a model with score(users) or a callable users -> scores, got "
                      f"{type(model_or_scorer).__name__}")
