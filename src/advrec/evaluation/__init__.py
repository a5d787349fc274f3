"""Evaluation: rank metrics, the chunked `Evaluator` (full or sampled ranking), significance."""

from advrec.evaluation.detection import defend, detection_metrics, feature_histograms
from advrec.evaluation.evaluator import PROTOCOLS, EvaluationResult, Evaluator
from advrec.evaluation.metrics import (
    ALL_METRICS,
    PAD,
    RANK_METRICS,
    auc,
    average_precision,
    hit_ratio,
    mrr,
    ndcg,
    precision,
    rank_metrics,
    recall,
)
from advrec.evaluation.robustness import (
    AttackOutcome,
    attack_and_evaluate,
    epsilon_sweep,
    relative_change,
    target_hit_ratio,
)
from advrec.evaluation.selection import holdout_validation, metric_validator
from advrec.evaluation.shilling import (
    ShillingImpact,
    attack_impact,
    clean_baseline,
    measure_targets,
    target_ranks,
)
from advrec.evaluation.significance import compare_results, paired_test

__all__ = [
    "ALL_METRICS",
    "AttackOutcome",
    "ShillingImpact",
    "attack_impact",
    "clean_baseline",
    "measure_targets",
    "target_ranks",
    "attack_and_evaluate",
    "epsilon_sweep",
    "relative_change",
    "target_hit_ratio",
    "PAD",
    "PROTOCOLS",
    "RANK_METRICS",
    "EvaluationResult",
    "Evaluator",
    "auc",
    "average_precision",
    "compare_results",
    "defend",
    "detection_metrics",
    "feature_histograms",
    "holdout_validation",
    "metric_validator",
    "hit_ratio",
    "mrr",
    "ndcg",
    "paired_test",
    "precision",
    "rank_metrics",
    "recall",
]
