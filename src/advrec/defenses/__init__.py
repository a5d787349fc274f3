"""Defences: detectors of fake (shilling) profiles.

Features (:func:`profile_features`), supervised and unsupervised detectors and filtering of
flagged users. How well they detect, and what filtering buys, is measured by
`advrec.evaluation.detection` (``defend``) and the `advrec detect` preset. See
``docs/detection.md``.
"""

from advrec.defenses.detectors import (
    CLASSIFIERS,
    DEFENSES,
    DETECTORS,
    PCADetector,
    RuleDetector,
    SupervisedDetector,
    filter_profiles,
    make_detector,
    pca_distances,
    robust_z,
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
    "DEFENSES",
    "DETECTORS",
    "FEATURES",
    "GENERIC_FEATURES",
    "MODEL_FEATURES",
    "SIMILARITIES",
    "PCADetector",
    "ProfileFeatures",
    "RuleDetector",
    "SupervisedDetector",
    "degsim",
    "filter_profiles",
    "make_detector",
    "pca_distances",
    "profile_features",
    "robust_z",
]
