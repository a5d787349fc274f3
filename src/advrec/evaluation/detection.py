"""Detection study without label leakage: train on some attacks, test on others.

A detector trained and tested on profiles of the same attack file has seen the test attack's
distribution (and often the very profiles): its scores say little about an unknown attack. The
protocol here (:func:`detection_study`) keeps everything the test measures out of training:

1. **Targets**: test profiles push ``n_targets`` items chosen with ``seed``; training profiles
   push a disjoint set of items.
2. **Attack types**: for each held-out (test) attack type, the detectors are trained on profiles
   of the *other* types only (``train_attacks`` minus the held-out type; leave-one-attack-type-out
   when ``train_attacks`` is None).
3. **Sizes and fillers**: training profiles use ``train_sizes`` × ``train_fillers`` (one poisoned
   copy of the training data per type × size × filler); the test uses ``size`` and ``filler``
   (by default none of the training values).
4. **Real users**: the real users are split at random (``real_split``) into a training half,
   the genuine examples of training, and a test half; detection metrics are computed on the test
   half plus the test fake profiles, so no scored genuine profile was a training example.

Features are computed on each poisoned data set as a whole (item means include its fake
profiles, as on a live platform). Detection metrics per held-out attack type and detector:
precision, recall and F1 at the detector's threshold, ROC-AUC and average precision (area under
the PR curve), and optionally the ROC and PR curves (scikit-learn). Recommendation quality: a
victim is fitted on the clean training data, the poisoned data (no defence), the poisoned data
without the flagged users (all users the detector flags, genuine ones included) and without
exactly the fake users (perfect removal); each is measured by the hit ratio@k of the targets over
the real users who had not rated them and by HR/nDCG@k on the test split (full ranking, clean
training items masked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from sklearn import metrics as skm

from advrec.attacks.shilling import generate, resolve_items, select_targets
from advrec.data.datasets import load_split
from advrec.data.interactions import Interactions
from advrec.defenses.detectors import (
    CLASSIFIERS,
    DEFENSES,
    DETECTORS,
    SupervisedDetector,
    filter_profiles,
    make_detector,
)
from advrec.defenses.features import ProfileFeatures, check_features, profile_features
from advrec.errors import ConfigError
from advrec.evaluation.evaluator import Evaluator
from advrec.evaluation.shilling import measure_targets

__all__ = ["DEFAULT_ATTACKS", "DEFENSES", "VICTIMS", "defend", "detection_metrics",
           "detection_study", "feature_histograms", "make_victim"]

DEFAULT_ATTACKS = ("random", "average", "bandwagon", "segment", "love_hate")
VICTIMS = ("mf", "userknn", "itemknn", "bprmf", "itempop")


# ----------------------------------------------------------------------------- pieces
def detection_metrics(labels: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                      curves: bool = False) -> dict:
    """Precision, recall, F1 of ``flags``; ROC-AUC and average precision of ``scores``."""
    y = np.asarray(labels, dtype=bool)
    out = {
        "precision": float(skm.precision_score(y, flags, zero_division=0)),
        "recall": float(skm.recall_score(y, flags, zero_division=0)),
        "f1": float(skm.f1_score(y, flags, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, scores)) if y.any() else float("nan"),
        "flagged": int(np.sum(flags)),
        "false_positives": int(np.sum(flags & ~y)),
    }
    if curves:
        p, r, t = skm.precision_recall_curve(y, scores)
        fpr, tpr, rt = skm.roc_curve(y, scores)
        out["pr_curve"] = {"precision": p.tolist(), "recall": r.tolist(), "thresholds": t.tolist()}
        out["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": rt.tolist()}
    return out


def make_victim(name: str, seed: int = 0, **params):
    """A fresh victim model by name: ``mf`` (ALS rating MF, 5 epochs by default), ``userknn``,
    ``itemknn`` (k=40), ``bprmf``, ``itempop``."""
    if name == "mf":
        from advrec.models.mf import MF

        return MF(**{"epochs": 5, "seed": seed, **params})
    if name in ("userknn", "itemknn"):
        from advrec.models.knn import ItemKNN, UserKNN

        cls = UserKNN if name == "userknn" else ItemKNN
        return cls(**{"k": 40, "seed": seed, **params})
    if name == "bprmf":
        from advrec.models.bprmf import BPRMF

        return BPRMF(**{"epochs": 20, "seed": seed, **params})
    if name == "itempop":
        from advrec.models.itempop import ItemPop

        return ItemPop(**params)
    raise ConfigError(f"unknown victim {name!r}; choose from {list(VICTIMS)}")


@dataclass
class _Poisoned:
    """One poisoned copy of the training data: data, fake-user mask, cached features."""

    data: Interactions
    fake: np.ndarray
    k_features: int
    names: tuple[str, ...] | None = None

    @cached_property
    def features(self) -> ProfileFeatures:
        return profile_features(self.data, k=self.k_features, features=self.names)

    def labels(self, real_mask: np.ndarray) -> np.ndarray:
        """1 for fakes, 0 for real users in ``real_mask``, -1 (left out) for other real users."""
        n_real = len(real_mask)
        return np.r_[np.where(real_mask, 0, -1), np.ones(self.data.n_users - n_real, np.int64)]


def _poison(train: Interactions, attack: str, targets, size: float, filler: float, seed: int,
            intent: str, k_features: int, names: tuple[str, ...] | None) -> _Poisoned:
    fake = generate(attack, train, targets, size=size, filler=filler, seed=seed, intent=intent)
    data = train.concat(fake)
    return _Poisoned(data, np.arange(data.n_users) >= train.n_users, k_features, names)


def _targets(train: Interactions, n: int, strategy: str, seed: int) -> tuple[list, list]:
    """(test targets, disjoint training targets) as raw item ids."""
    test = select_targets(train, n, strategy, seed=seed)
    return test.tolist(), _training_targets(train, n, strategy, test.tolist(), seed)


def _training_targets(train: Interactions, n: int, strategy: str, avoid: Sequence,
                      seed: int) -> list:
    """``n`` raw item ids for the detectors' training profiles, none of them in ``avoid``."""
    avoid = set(np.asarray(avoid).tolist())
    pool = select_targets(train, min(train.n_items, 2 * n + len(avoid)), strategy, seed=seed + 1)
    return [t for t in pool.tolist() if t not in avoid][:n]


def _check_study(attacks, train_attacks, detectors, real_split) -> None:
    if not attacks:
        raise ConfigError("attacks must name at least one held-out attack type")
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise ConfigError(f"unknown detector(s) {unknown}; choose from {list(DETECTORS)}")
    if not 0 < real_split < 1:
        raise ConfigError(f"real_split must lie in (0, 1), got {real_split}")
    pool = tuple(train_attacks) if train_attacks is not None else tuple(attacks)
    for held in attacks:
        if not [a for a in pool if a != held]:
            raise ConfigError(f"no training attack type is left when {held!r} is held out")


# ----------------------------------------------------------------------------- recommendation
class _Quality:
    """Fits the victim on a data variant and measures target HR@k and test HR/nDCG@k."""

    def __init__(self, train: Interactions, test: Interactions, targets, victim: str,
                 victim_params: dict, k: int, seed: int) -> None:
        self.train, self.k, self.seed = train, k, seed
        self.victim, self.params = victim, victim_params
        self.t = resolve_items(train, targets, "target")
        self.evaluator = Evaluator(train, test, ks=(k,), metrics=("hr", "ndcg"), coverage=False)

    def __call__(self, data: Interactions) -> dict[str, float]:
        model = make_victim(self.victim, self.seed, **self.params).fit(data)
        summary = self.evaluator.evaluate(model).summary
        k = self.k
        return {f"target_hr@{k}": measure_targets(model, self.train, self.t).hit_ratio(k),
                f"hr@{k}": summary[f"hr@{k}"], f"ndcg@{k}": summary[f"ndcg@{k}"]}


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{name}_{prefix}": v for name, v in values.items()}


# ----------------------------------------------------------------------------- the study
def detection_study(
    dataset: str | tuple[Interactions, Interactions] = "ml-100k",
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    size: float = 0.05,
    filler: float = 0.05,
    *,
    train_attacks: Sequence[str] | None = None,
    train_sizes: Sequence[float] = (0.03, 0.1),
    train_fillers: Sequence[float] = (0.03, 0.1),
    detectors: Sequence[str] = ("svm", "knn", "forest", "pca", "rule"),
    n_targets: int = 3,
    target_strategy: str = "quantile",
    intent: str = "push",
    real_split: float = 0.5,
    k_features: int = 10,
    features: Sequence[str] | None = None,
    victim: str | None = "mf",
    victim_params: dict | None = None,
    k: int = 10,
    fold: str | None = None,
    curves: bool = False,
    seed: int = 0,
) -> list[dict]:
    """Detection and recommendation quality per held-out attack type × detector (one row each).

    ``dataset``: a registered name with a predefined split (``fold`` picks it) or a
    ``(train, test)`` pair. ``attacks``: the held-out test attack types, each injected at
    ``size``/``filler``; detectors are trained on ``train_attacks`` (default: the other types of
    ``attacks``) at ``train_sizes`` × ``train_fillers``, never on the held-out type. ``detectors``:
    ``svm``/``knn``/``forest`` (supervised, default thresholds) and ``pca``/``rule``
    (unsupervised). ``features``/``k_features``: the supervised detectors' feature columns
    (default all) and DegSim's k. ``victim=None`` skips the recommendation comparison.
    ``curves`` adds ``pr_curve``/``roc_curve`` lists to each row. Protocol: module docstring.
    """
    attacks, detectors = tuple(attacks), tuple(detectors)
    _check_study(attacks, train_attacks, detectors, real_split)
    names = check_features(features)
    train, test = dataset if isinstance(dataset, tuple) else load_split(dataset, fold=fold)
    rng = np.random.default_rng(seed)
    real_train = rng.random(train.n_users) < real_split
    test_t, train_t = _targets(train, n_targets, target_strategy, seed)
    pool = tuple(train_attacks) if train_attacks is not None else attacks
    combos = [(a, s, f) for a in dict.fromkeys(pool) for s in train_sizes for f in train_fillers]
    training = {(a, s, f): _poison(train, a, train_t, s, f, seed + 1000 + i, intent, k_features,
                                   names) for i, (a, s, f) in enumerate(combos)}
    quality = None if victim is None else _Quality(
        train, test, test_t, victim, victim_params or {}, k, seed)
    clean = {} if quality is None else _prefixed(quality(train), "clean")
    rows = []
    for j, held in enumerate(attacks):
        sets = [p for (a, _, _), p in training.items() if a != held]
        tested = _poison(train, held, test_t, size, filler, seed + 100 + j, intent, k_features,
                         names)
        base = {"dataset": dataset if isinstance(dataset, str) else train.name,
                "held_out": held, "train_attacks": "+".join(dict.fromkeys(
                    a for a, _, _ in combos if a != held)),
                "size": size, "filler": filler, "n_fake": int(tested.fake.sum()),
                "n_targets": n_targets, "seed": seed}
        def remove(flags, data=tested.data):  # removed fakes leave the id space
            return filter_profiles(data, flags, drop_from=train.n_users)

        shared = {} if quality is None else {
            **clean, **_prefixed(quality(tested.data), "attacked"),
            **_prefixed(quality(remove(tested.fake)), "perfect")}
        for name in detectors:
            scores, flags = _detect(name, sets, tested, real_train, k_features, names, seed)
            ev = np.r_[~real_train, np.ones(tested.data.n_users - train.n_users, bool)]
            row = {**base, "detector": name, "victim": victim,
                   **detection_metrics(tested.fake[ev], scores[ev], flags[ev], curves)}
            if quality is not None:
                row.update(shared)
                row.update(_prefixed(quality(remove(flags)), "filtered"))
            rows.append(row)
    return rows


def _detect(name: str, sets: list[_Poisoned], tested: _Poisoned, real_train: np.ndarray,
            k_features: int, names: tuple[str, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and flags of one detector on the test data (supervised ones trained on ``sets``)."""
    if name in CLASSIFIERS:
        det = SupervisedDetector(name, k_features=k_features, seed=seed, features=names)
        det.fit([p.features for p in sets], [p.labels(real_train) for p in sets])
        scores = det.predict_proba(tested.features)
        return scores, scores >= det.threshold
    det = make_detector(name, seed=seed) if name == "pca" else make_detector(
        name, k_features=k_features)
    return det.predict_proba(tested.data), det.predict(tested.data)


# ----------------------------------------------------------------------------- one defence
def feature_histograms(features: ProfileFeatures, fake: np.ndarray, bins: int = 30) -> dict:
    """Per feature: shared bin edges and the density histograms of real and fake profiles."""
    fake = np.asarray(fake, dtype=bool)
    out = {}
    for name in features.names:
        values = features.column(name)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        edges = np.histogram_bin_edges(values[finite], bins=bins)
        hist = {}
        for part, mask in (("real", ~fake & finite), ("fake", fake & finite)):
            counts = np.histogram(values[mask], bins=edges)[0]
            hist[part] = (counts / max(counts.sum(), 1)).tolist()
        out[name] = {"edges": edges.tolist(), **hist}
    return out


def defend(
    train: Interactions,
    poisoned: Interactions,
    detector: str,
    held_out: str,
    targets,
    *,
    train_attacks: Sequence[str] | None = None,
    train_sizes: Sequence[float] = (0.03, 0.1),
    train_fillers: Sequence[float] = (0.03, 0.1),
    intent: str = "push",
    target_strategy: str = "quantile",
    real_split: float = 0.5,
    k_features: int = 10,
    features: Sequence[str] | None = None,
    curves: bool = False,
    histograms: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """One detector against ``poisoned`` (``train`` with fake profiles appended after its users):
    (boolean flags over ``poisoned``'s users, detection metrics).

    The protocol of :func:`detection_study`: supervised detectors learn from profiles of
    ``train_attacks`` (default: :data:`DEFAULT_ATTACKS`) other than ``held_out`` (the attack that
    made ``poisoned``), injected at ``train_sizes`` × ``train_fillers`` against items disjoint
    from ``targets`` (raw ids), with a random ``real_split`` share of the real users as genuine
    examples; metrics are computed on the other real users and the fakes. ``perfect`` flags
    exactly the fakes (the upper bound of any detector). ``histograms`` adds the real/fake
    distribution of every profile feature (:func:`feature_histograms`).
    """
    if detector not in DEFENSES:
        raise ConfigError(f"unknown detector {detector!r}; choose from {list(DEFENSES)}")
    names = check_features(features)
    fake = np.arange(poisoned.n_users) >= train.n_users
    tested = _Poisoned(poisoned, fake, k_features, names)
    rng = np.random.default_rng(seed)
    real_train = rng.random(train.n_users) < real_split
    ev = np.r_[~real_train, np.ones(int(fake.sum()), bool)]
    if detector == "perfect":
        scores, flags = fake.astype(np.float64), fake.copy()
    else:
        sets: list[_Poisoned] = []
        if detector in CLASSIFIERS:
            pool = [a for a in dict.fromkeys(train_attacks or DEFAULT_ATTACKS) if a != held_out]
            if not pool:
                raise ConfigError(f"no training attack type is left when {held_out!r} is held "
                                  f"out; give train_attacks other types")
            avoid = np.atleast_1d(np.asarray(targets))
            t_targets = _training_targets(train, len(avoid), target_strategy, avoid, seed)
            combos = [(a, s, f) for a in pool for s in train_sizes for f in train_fillers]
            sets = [_poison(train, a, t_targets, s, f, seed + 1000 + i, intent, k_features, names)
                    for i, (a, s, f) in enumerate(combos)]
        scores, flags = _detect(detector, sets, tested, real_train, k_features, names, seed)
    out = {"detector": detector, "n_fake": int(fake.sum()), "removed": int(np.sum(flags)),
           **detection_metrics(fake[ev], scores[ev], flags[ev], curves)}
    if histograms and poisoned.ratings is not None:  # the features are built from ratings
        out["features"] = feature_histograms(tested.features, fake)
    return np.asarray(flags, dtype=bool), out
