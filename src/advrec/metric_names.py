"""Metric names and the one parser of names such as ``ndcg@100``. Any layer may use this module
(models name their validation metric with it; evaluation computes the metrics it names)."""

from __future__ import annotations

from collections.abc import Sequence

from advrec.errors import ConfigError, ParamError

RANK_METRICS = ("hr", "ndcg", "precision", "recall", "mrr", "map")
"""Names of the metrics computed at a cut-off k (result keys ``"<name>@<k>"``)."""

ALL_METRICS = (*RANK_METRICS, "auc")
"""Every metric name the evaluator understands."""

DESCRIPTIONS = {
    "hr": "Hit ratio@k: share of users with at least one test item in their top k.",
    "ndcg": "Normalised discounted cumulative gain@k of the test items in the top k.",
    "precision": "Precision@k: share of the top k that are test items.",
    "recall": "Recall@k: share of a user's test items that are in the top k.",
    "mrr": "Mean reciprocal rank of the first test item in the top k.",
    "map": "Mean average precision@k (precision at each hit, averaged).",
    "auc": "Area under the ROC curve: a test item ranked above an unseen item, per user.",
}
"""One line per metric (``advrec list metrics``); a test checks it names every metric."""


def parse_metric(name: object, *, default_k: int | None = 10,
                 allowed: Sequence[str] = ALL_METRICS,
                 argument: str | None = None) -> tuple[str, int | None]:
    """``"ndcg@100"`` → ``("ndcg", 100)``; ``"auc"`` → ``("auc", None)``. A rank metric without a
    cut-off takes ``default_k`` (``None``: the cut-off is required). Case is ignored.

    Anything else raises ConfigError naming the text, or ParamError naming ``argument``.
    """
    text = name.strip().lower() if isinstance(name, str) else ""
    metric, sep, k = text.partition("@")
    problem = None
    if metric not in allowed:
        problem = (f"expected one of {', '.join(allowed)}"
                   + (", with a cut-off such as ndcg@100" if set(allowed) - {"auc"} else ""))
    elif metric == "auc":
        if sep:
            problem = "auc takes no cut-off"
    elif not sep and default_k is None:
        problem = f"give a cut-off, e.g. {metric}@10"
    elif sep and not (k.isascii() and k.isdigit() and int(k) >= 1):
        problem = "the cut-off after '@' must be a positive integer"
    if problem is not None:
        if argument is not None:
            raise ParamError(argument, f"{problem}; got {name!r}")
        raise ConfigError(f"metric {name!r}: {problem}")
    if metric == "auc":
        return metric, None
    return metric, int(k) if sep else default_k


def metric_key(name: str, k: int | None) -> str:
    """The result key of a metric: ``"ndcg@100"``, or ``"auc"``."""
    return name if k is None else f"{name}@{k}"
