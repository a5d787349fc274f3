"""The exceptions advrec raises for bad input: each names what was wrong and what was expected."""

from __future__ import annotations


class AdvrecError(Exception):
    """Base class of every error advrec raises on purpose; the CLI prints it without a traceback."""


class DataError(AdvrecError, ValueError):
    """A data file or data set is malformed, missing or inconsistent (names file/line/field)."""


class ConfigError(AdvrecError, ValueError):
    """A hyper-parameter, option or name is not one advrec accepts."""


class CheckpointError(AdvrecError, ValueError):
    """A saved model folder is missing, unreadable, or belongs to another model type."""


class NotFittedError(AdvrecError, RuntimeError):
    """A model was asked to score or recommend before ``fit``."""
