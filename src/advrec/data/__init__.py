"""Data: the `Interactions` type, readers/writers, data set registry, filters, splits, samplers."""

from advrec.data.datasets import describe, list_datasets, load, load_split
from advrec.data.interactions import Interactions
from advrec.data.prepare import DataSpec, prepare
from advrec.data.splits import Split
from advrec.data.stats import characteristics, impact_regression, subsample

__all__ = ["DataSpec", "Interactions", "Split", "characteristics", "describe", "impact_regression",
           "list_datasets", "load", "load_split", "prepare", "subsample"]
