"""Data: the `Interactions` type, readers/writers, data set registry, filters, splits, samplers."""

from advrec.data.datasets import describe, list_datasets, load, load_split
from advrec.data.interactions import Interactions
from advrec.data.prepare import DataSpec, prepare
from advrec.data.splits import Split

__all__ = ["DataSpec", "Interactions", "Split", "describe", "list_datasets", "load", "load_split",
           "prepare"]
