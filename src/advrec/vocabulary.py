"""Every closed vocabulary of advrec in one place: the names of models, attacks, detectors,
formats, splits, metrics and options. The registries that implement them, the experiment-file
schema, the command line's choices and help texts all read these tuples, so a name is added or
renamed once (a test checks each registry against its tuple). Standard library only, so the
command line can use it without importing the heavy parts.
"""

from __future__ import annotations

from advrec.metric_names import ALL_METRICS, RANK_METRICS

MODELS = ("itempop", "bprmf", "apr", "userknn", "itemknn", "mf", "cfgan", "irgan", "lightgcn",
          "neumf", "gmf", "mlp", "multvae", "multdae", "cdae", "acae", "iautorec", "uautorec",
          "vbpr", "amr")
PERTURBATIONS = ("fgsm", "random", "pgd")  # attacks on a trained model's parameters
NORMS = ("l2", "linf")
TARGET_MODES = ("push", "nuke")  # targeted parameter attacks
SHILLING_ATTACKS = ("random", "average", "bandwagon", "reverse_bandwagon", "popular",
                    "love_hate", "segment", "perfect_knowledge")
# optimised, generated and black-box injection attacks (they take params)
POISONING_ATTACKS = ("pga", "sgld", "revadv", "influence", "dlattack", "aush", "legup",
                     "poisonrec")
PROFILE_FILE = "file"  # an injection entry that reads its fake profiles from a file
INJECTION_ATTACKS = (*SHILLING_ATTACKS, *POISONING_ATTACKS, PROFILE_FILE)
INTENTS = ("push", "nuke")  # what a shilling attack does to its targets
TARGET_STRATEGIES = ("random", "popular", "unpopular", "quantile")
CLASSIFIERS = ("svm", "knn", "forest")  # supervised fake-profile detectors
DETECTORS = (*CLASSIFIERS, "pca", "rule")
DEFENSES = (*DETECTORS, "perfect")  # "perfect" removes exactly the fake profiles (upper bound)
ROBUST_TRAINING = ("trim", "apt")  # defences that change how the victim is trained, not the data
CERTIFIED = ("pore",)  # defences that replace the victim by a certifiably robust ensemble
FORMATS = ("ml-100k", "ml-1m", "ratings-csv", "delimited", "lightgcn", "cfgan")
SPLITS = ("auto", "predefined", "leave-one-out", "holdout", "temporal")
VALIDATION_SPLITS = ("none", "leave-one-out", "holdout")
UNSEEN = ("error", "drop", "keep")
PROTOCOLS = ("full", "sampled")
SIGNIFICANCE_TESTS = ("ttest", "wilcoxon")
EXECUTORS = ("local", "ray")
OPTIMIZERS = ("adagrad", "adam", "sgd")
CONTENT_ATTACKS = ("taamr",)  # attacks on the items' images (content), not on parameters
IMAGE_ATTACK_METHODS = ("pgd", "fgsm")  # how TAaMR perturbs the pixels
IMAGE_DEFENSES = ("none", "jpeg", "bit_depth")  # input transformations of attacked images

__all__ = ["ALL_METRICS", "CERTIFIED", "CLASSIFIERS", "CONTENT_ATTACKS", "DEFENSES", "DETECTORS",
           "EXECUTORS", "FORMATS", "IMAGE_ATTACK_METHODS", "IMAGE_DEFENSES", "INJECTION_ATTACKS",
           "INTENTS", "MODELS", "NORMS", "OPTIMIZERS",
           "PERTURBATIONS", "POISONING_ATTACKS", "PROFILE_FILE", "PROTOCOLS",
           "RANK_METRICS", "ROBUST_TRAINING", "SHILLING_ATTACKS", "SIGNIFICANCE_TESTS", "SPLITS",
           "TARGET_MODES", "TARGET_STRATEGIES", "UNSEEN", "VALIDATION_SPLITS"]


def listing(names: tuple[str, ...]) -> str:
    """``a, b or c`` for help texts."""
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
