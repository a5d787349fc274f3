"""Data: the `Interactions` type, readers/writers, data set registry, filters, splits, samplers."""

from advrec.data.interactions import Interactions

__all__ = ["Interactions"]
