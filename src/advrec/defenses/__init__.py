"""Defences: detectors of fake (shilling) profiles and the non-leaking detection study.

Features (:func:`profile_features`), supervised and unsupervised detectors, filtering of flagged
users and :func:`detection_study` (train on some attack types, test on held-out ones). See
``docs/detection.md``.
"""

from advrec.defenses.detectors import (
    CLASSIFIERS,
    DETECTORS,
    PCADetector,
    RuleDetector,
    SupervisedDetector,
    filter_profiles,
    make_detector,
    pca_distances,
    robust_z,
)
from advrec.defenses.evaluation import (
    DEFAULT_ATTACKS,
    DEFENSES,
    VICTIMS,
    defend,
    detection_metrics,
    detection_study,
    feature_histograms,
    make_victim,
)
from advrec.defenses.features import (
    FEATURES,
    GENERIC_FEATURES,
    MODEL_FEATURES,
    SIMILARITIES,
    ProfileFeatures,
    degsim,
    profile_features,
)

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_ATTACKS",
    "DEFENSES",
    "DETECTORS",
    "FEATURES",
    "GENERIC_FEATURES",
    "MODEL_FEATURES",
    "SIMILARITIES",
    "VICTIMS",
    "PCADetector",
    "ProfileFeatures",
    "RuleDetector",
    "SupervisedDetector",
    "defend",
    "degsim",
    "detection_metrics",
    "detection_study",
    "feature_histograms",
    "filter_profiles",
    "make_detector",
    "make_victim",
    "pca_distances",
    "profile_features",
    "robust_z",
]
