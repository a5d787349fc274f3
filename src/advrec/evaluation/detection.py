"""Detecting injected profiles without label leakage: train on some attacks, test on others.

A detector trained and tested on profiles of the same attack file has seen the test attack's
distribution (and often the very profiles): its scores say little about an unknown attack. The
protocol of :func:`defend` keeps everything the test measures out of training:

1. **Targets**: the tested profiles push their own targets; training profiles push a disjoint
   set of as many items.
2. **Attack types**: supervised detectors are trained on profiles of the ``train_attacks`` other
   than the held-out (tested) type, never on the held-out type.
3. **Sizes and fillers**: training profiles use ``train_sizes`` × ``train_fillers`` (one poisoned
   copy of the training data per type × size × filler, seeded ``seed + 1000 + i`` with ``i`` the
   combination's place among all of ``train_attacks``, so a type's training profiles are the
   same whichever type is held out).
4. **Real users**: the real users are split at random (``real_split``) into a training half,
   the genuine examples of training, and a test half; detection metrics are computed on the test
   half plus the fake profiles, so no scored genuine profile was a training example.

Features are computed on each poisoned data set as a whole (item means include its fake
profiles, as on a live platform). Detection metrics: precision, recall and F1 at the detector's
threshold, ROC-AUC and average precision (area under the PR curve), and optionally the ROC and
PR curves (scikit-learn). The study over held-out types × detectors, with what removing the
flagged users does to a victim, is an experiment (``advrec detect``,
``advrec.experiments.detection``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from sklearn import metrics as skm

from advrec.attacks.injection import make_injection
from advrec.attacks.shilling import select_targets
from advrec.data.interactions import Interactions
from advrec.defenses.detectors import (
    CLASSIFIERS,
    DEFENSES,
    SupervisedDetector,
    make_detector,
)
from advrec.defenses.features import ProfileFeatures, check_features, profile_features
from advrec.errors import ConfigError

__all__ = ["DEFAULT_ATTACKS", "DEFENSES", "defend", "detection_metrics", "feature_histograms"]

DEFAULT_ATTACKS = ("random", "average", "bandwagon", "segment", "love_hate")


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
    made = make_injection(attack, size=size, filler=filler, intent=intent)
    fake = made.generate(train, targets, seed=seed)  # hand-crafted or generated (aush, …)
    data = train.concat(fake)
    return _Poisoned(data, np.arange(data.n_users) >= train.n_users, k_features, names)


def _training_targets(train: Interactions, n: int, strategy: str, avoid: Sequence,
                      seed: int) -> list:
    """``n`` raw item ids for the detectors' training profiles, none of them in ``avoid``."""
    avoid = set(np.asarray(avoid).tolist())
    pool = select_targets(train, min(train.n_items, 2 * n + len(avoid)), strategy, seed=seed + 1)
    return [t for t in pool.tolist() if t not in avoid][:n]


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
    cache: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """One detector against ``poisoned`` (``train`` with fake profiles appended after its users):
    (boolean flags over ``poisoned``'s users, detection metrics).

    Supervised detectors learn from profiles of ``train_attacks`` (default:
    :data:`DEFAULT_ATTACKS`) other than ``held_out`` (the attack that made ``poisoned``),
    injected at ``train_sizes`` × ``train_fillers`` against items disjoint from ``targets`` (raw
    ids), with a random ``real_split`` share of the real users as genuine examples; metrics are
    computed on the other real users and the fakes (protocol: module docstring). ``perfect``
    flags exactly the fakes (the upper bound of any detector). ``histograms`` adds the real/fake
    distribution of every profile feature (:func:`feature_histograms`). ``cache``: a dict kept
    by the caller across calls on the same ``train``, so each training copy and its features are
    built once (they do not depend on the held-out type or the detector).
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
            pool = tuple(dict.fromkeys(train_attacks or DEFAULT_ATTACKS))
            if not [a for a in pool if a != held_out]:
                raise ConfigError(f"no training attack type is left when {held_out!r} is held "
                                  f"out; give train_attacks other types")
            avoid = np.atleast_1d(np.asarray(targets))
            t_targets = _training_targets(train, len(avoid), target_strategy, avoid, seed)
            combos = [(a, s, f) for a in pool for s in train_sizes for f in train_fillers]
            cache = {} if cache is None else cache
            for i, (a, s, f) in enumerate(combos):
                if a == held_out:
                    continue
                key = (a, s, f, seed + 1000 + i, tuple(t_targets), intent, k_features, names)
                if key not in cache:
                    cache[key] = _poison(train, a, t_targets, s, f, seed + 1000 + i, intent,
                                         k_features, names)
                sets.append(cache[key])
        scores, flags = _detect(detector, sets, tested, real_train, k_features, names, seed)
    out = {"detector": detector, "n_fake": int(fake.sum()), "removed": int(np.sum(flags)),
           **detection_metrics(fake[ev], scores[ev], flags[ev], curves)}
    if histograms and poisoned.ratings is not None:  # the features are built from ratings
        out["features"] = feature_histograms(tested.features, fake)
    return np.asarray(flags, dtype=bool), out
