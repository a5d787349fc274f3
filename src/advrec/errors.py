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


class ParamError(ConfigError):
    """One argument or hyper-parameter has a value advrec does not accept.

    ``name`` is the argument's name and ``reason`` what was expected, so a caller can put the
    name in its own terms (a CLI option, an experiment file's key path).
    """

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class IdError(ParamError, DataError):
    """An id argument (``users``, ``items``) that is not an internal id of the fitted model: a
    :class:`ParamError` naming the argument, and a :class:`DataError` as it always was."""


class OutputError(AdvrecError, ValueError):
    """advrec refuses to write somewhere (a path it did not write, a folder it cannot create)."""


class TrainingError(AdvrecError, RuntimeError):
    """Training failed for a reason the user can fix (it diverged: the loss became NaN/inf)."""
