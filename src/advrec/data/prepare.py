"""From a data set name to a ready (train, test[, valid]) split: the recipe runs record."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import advrec.data.datasets as datasets
import advrec.data.filters as filters
import advrec.data.io as io
import advrec.data.splits as splits
from advrec.data.splits import Split
from advrec.errors import ConfigError, ParamError
from advrec.validation import check_choice, check_float, check_int, plain
from advrec.vocabulary import SPLITS, VALIDATION_SPLITS

VALIDATION = VALIDATION_SPLITS


@dataclass(frozen=True)
class DataSpec:
    """Everything that determines a split: data set, filters, split method, ratios and seed.

    ``split="auto"`` takes the data set's own split when it comes pre-split (e.g. movielens-500's
    leave-one-out, ml-1m-implicit's hold-out) and leave-one-out otherwise. ``valid`` carves a
    validation set out of the training part (for early stopping), never out of test.

    Your own data: ``path`` (a file) with its ``format`` (a name of ``advrec.data.io.FORMATS``,
    ``options`` for the reader, e.g. ``{"sep": ",", "header": true}`` for ``delimited``) instead
    of a registered data set; ``dataset`` is then only its label. With ``test_path`` the two
    files are a predefined train/test split (``unseen``: what to do with test ids that never
    occur in training: ``error``, ``drop`` or ``keep``).
    """

    dataset: str = "movielens-500"
    split: str = "auto"
    test_ratio: float = 0.2
    valid: str = "none"
    valid_ratio: float = 0.1
    binarize: float | None = None
    min_user_count: int = 0
    min_item_count: int = 0
    fold: str | None = None
    seed: int = 0
    path: str | None = None
    format: str | None = None
    test_path: str | None = None
    options: dict | None = None
    unseen: str = "error"

    def __post_init__(self) -> None:
        if self.path is None and (self.format, self.test_path, self.options) != (None,) * 3:
            raise ConfigError("format, test_path and options describe your own file: give path")
        if self.path is not None:
            from advrec.data.io import FORMATS

            if self.format not in FORMATS:
                raise ParamError("format", f"expected one of {', '.join(FORMATS)}, got "
                                           f"{plain(self.format)}")
            if self.fold is not None:
                raise ParamError("fold", "a file of your own has no folds (give test_path for "
                                         "a predefined split)")
            check_choice(self.unseen, "unseen", ("error", "drop", "keep"))
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ParamError("dataset", f"expected a data set name, got {plain(self.dataset)}")
        if self.split not in SPLITS:
            raise ConfigError(f"unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if self.valid not in VALIDATION:
            raise ConfigError(
                f"unknown validation split {self.valid!r}; expected one of {', '.join(VALIDATION)}"
            )
        for name in ("test_ratio", "valid_ratio"):
            check_float(getattr(self, name), name, low=0.0, high=1.0, closed="neither")
        check_float(self.binarize, "binarize", none_ok=True)
        for name in ("min_user_count", "min_item_count"):
            check_int(getattr(self, name), name, low=0)
        check_int(self.seed, "seed", low=0)
        if self.fold is not None and not isinstance(self.fold, str):
            raise ParamError("fold", f"expected a fold name or None, got {plain(self.fold)}")

    def to_dict(self) -> dict:
        return asdict(self)


def prepare(spec: DataSpec) -> Split:
    """Load, filter and split as ``spec`` says; every part shares one id space."""
    if spec.path is not None:
        presplit = spec.test_path is not None
    else:
        presplit = datasets.info(spec.dataset).presplit
    method = spec.split
    if method == "auto":
        method = "predefined" if presplit else "leave-one-out"
    if method == "predefined":
        if not presplit:
            raise ConfigError(
                f"data set {spec.dataset!r} has no predefined split; use "
                f"--split leave-one-out, holdout or temporal"
            )
        if spec.path is not None:
            reader = io.format_reader(spec.format, spec.options)
            train, test = io.read_split(spec.path, spec.test_path, reader=reader,
                                        unseen=spec.unseen)
        else:
            kwargs = {"fold": spec.fold} if spec.fold else {}
            train, test = datasets.load_split(spec.dataset, **kwargs)
        train, test = _filter_pair(train, test, spec)
    else:
        raw = (io.read_file(spec.path, spec.format, spec.options) if spec.path is not None
               else datasets.load(spec.dataset))
        data = _filter(raw, spec)
        if method == "leave-one-out":
            train, test = splits.leave_one_out(data, seed=spec.seed)
        elif method == "holdout":
            train, test = splits.random_holdout(data, test_ratio=spec.test_ratio, seed=spec.seed)
        else:
            train, test = splits.temporal_split(data, test_ratio=spec.test_ratio, drop_cold=True)
    valid = None
    if spec.valid != "none":
        method = "leave_one_out" if spec.valid == "leave-one-out" else "random"
        train, valid = splits.validation_split(
            train, method=method, ratio=spec.valid_ratio, seed=spec.seed
        )
    return Split(train, test, valid)


def _filter(data, spec: DataSpec):
    if spec.binarize is not None:
        data = filters.binarize(data, threshold=spec.binarize)
    if spec.min_user_count or spec.min_item_count:
        # a count of 0 means "no threshold", which k_core expresses as 1 (at least one record)
        data = filters.k_core(data, user_k=max(spec.min_user_count, 1),
                              item_k=max(spec.min_item_count, 1))
    return data


def _filter_pair(train, test, spec: DataSpec):
    if spec.binarize is not None:
        train = filters.binarize(train, threshold=spec.binarize)
        test = filters.binarize(test, threshold=spec.binarize)
    if spec.min_user_count or spec.min_item_count:
        raise ConfigError(
            "k-core filtering of a predefined split is not supported: it would "
            "change the published protocol"
        )
    return train, test
