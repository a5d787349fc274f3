"""Experiments: the tutorial's hands-on pipeline (and, later, experiment files and reports)."""

from advrec.experiments.handson import HandsOnConfig, HandsOnResult, run_handson

__all__ = ["HandsOnConfig", "HandsOnResult", "run_handson"]
