"""Detectors of fake profiles: supervised (scikit-learn on profile features) and unsupervised.

Every detector scores the profiles of an :class:`~advrec.data.Interactions`:
``predict_proba(profiles)`` returns one suspicion score in [0, 1] per user of the id space
(``[n_users]``, aligned with internal user ids; users without ratings score 0) and
``predict(profiles)`` the boolean flags. Features such as RDMA depend on the item means of the
data passed in, so they are always computed on the profiles given to ``fit``/``predict_proba``
(the platform's data, fake profiles included), never on a separate clean copy.

- :class:`SupervisedDetector` — SVM, kNN or random forest on :func:`profile_features` (Burke,
  Mobasher, Williams & Bhaumik, KDD'06; Williams, Mobasher & Burke, UMUAI'07).
- :class:`PCADetector` — PCASelectUsers (Mehta & Nejdl, UMUAI'09): no labels.
- :class:`RuleDetector` — thresholds on robust z-scores of a few features (e.g. Chirita, Nejdl &
  Zamfir, WIDM'05: high DegSim; low Length Variance): no labels.

:func:`filter_profiles` removes the flagged users' interactions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.sparse.linalg import LinearOperator, svds
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from advrec._lazy import lazy
from advrec.data.interactions import Interactions
from advrec.defenses.features import ProfileFeatures, check_features, profile_features
from advrec.errors import ConfigError, DataError, NotFittedError
from advrec.vocabulary import CLASSIFIERS, DEFENSES, DETECTORS

sp = lazy("scipy.sparse")

__all__ = ["CLASSIFIERS", "DETECTORS", "PCADetector", "RuleDetector", "SupervisedDetector",
           "filter_profiles", "make_detector", "pca_distances", "robust_z", "DEFENSES"]


DEFAULT_RULES = (("rdma", "high"), ("length_var", "low"))
Profiles = Interactions | ProfileFeatures


# ----------------------------------------------------------------------------- helpers
def _check_threshold(threshold, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or \
            not low <= threshold <= high:
        raise ConfigError(f"threshold must be a number in [{low}, {high}], got {threshold!r}")
    return float(threshold)


def _check_labels(labels, n_users: int) -> np.ndarray:
    """Labels per internal user id: 1 fake, 0 genuine, -1 unlabelled (left out of training)."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n_users:
        raise ConfigError(f"labels must hold one value per user of the id space ({n_users}), "
                          f"got shape {y.shape}")
    y = y.astype(np.int64)
    if not np.isin(y, (-1, 0, 1)).all():
        raise ConfigError("labels must be 1 (fake), 0 (genuine) or -1 (unlabelled)")
    return y


def _full(scores: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    """Scores of the rows ``users`` spread over the whole id space (0 elsewhere)."""
    out = np.zeros(n_users)
    out[users] = scores
    return out


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class LogCompress(BaseEstimator, TransformerMixin):
    """sign(x) · log1p(|x| / s_j), s_j the median |x_j| on the training rows (1 if 0).

    Profile features are heavy-tailed (WDMA, Length Variance span orders of magnitude); the
    compression keeps their order and lets a scaler and an RBF kernel see the bulk.
    """

    def fit(self, x, y=None):
        s = np.median(np.abs(np.asarray(x, dtype=np.float64)), axis=0)
        self.scale_ = np.where(s > 0, s, 1.0)
        return self

    def transform(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.sign(x) * np.log1p(np.abs(x) / self.scale_)


def _classifier(name: str, seed: int):
    if name == "svm":
        svc = SVC(C=1.0, kernel="rbf", gamma="scale", class_weight="balanced")
        return CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=9)
    if name == "forest":
        return RandomForestClassifier(n_estimators=200, min_samples_leaf=2,
                                      class_weight="balanced_subsample", random_state=seed,
                                      n_jobs=1)
    raise ConfigError(f"unknown classifier {name!r}; choose from {list(CLASSIFIERS)}")


# ----------------------------------------------------------------------------- base
class _Detector:
    """Shared ``predict``/``flagged``: flags are ``predict_proba >= threshold``."""

    threshold: float

    def predict_proba(self, profiles: Profiles) -> np.ndarray:
        raise NotImplementedError

    def predict(self, profiles: Profiles) -> np.ndarray:
        """Boolean flag per user of the id space (True: judged fake)."""
        return self.predict_proba(profiles) >= self.threshold

    def flagged(self, profiles: Profiles) -> np.ndarray:
        """Internal ids of the flagged users."""
        return np.flatnonzero(self.predict(profiles))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({args})"


# ----------------------------------------------------------------------------- supervised
class SupervisedDetector(_Detector):
    """A scikit-learn classifier on profile features: log-compression, standard scaling, model.

    ``classifier``: ``"svm"`` (RBF SVC, C=1, balanced class weights; probabilities by Platt
    scaling on 5-fold cross-validated decision values, ``CalibratedClassifierCV``),
    ``"knn"`` (9 neighbours, uniform vote) or ``"forest"`` (200 trees, balanced). ``threshold``:
    probability of *fake* at or above which a profile is flagged. ``k_features``: DegSim's k.
    ``features``: names from :data:`~advrec.defenses.features.FEATURES` (default all).
    """

    def __init__(self, classifier: str = "svm", threshold: float = 0.5, k_features: int = 10,
                 seed: int = 0, features: Sequence[str] | None = None,
                 similarity: str = "pearson") -> None:
        if classifier not in CLASSIFIERS:
            raise ConfigError(f"unknown classifier {classifier!r}; choose from "
                              f"{list(CLASSIFIERS)}")
        self.classifier = classifier
        self.threshold = _check_threshold(threshold)
        self.k_features = k_features
        self.seed = seed
        self.features = check_features(features)
        self.similarity = similarity

    def features_of(self, profiles: Profiles) -> ProfileFeatures:
        """The detector's features of ``profiles`` (computed on them; passed through if given)."""
        if isinstance(profiles, ProfileFeatures):
            if tuple(profiles.names) != self.features:
                raise ConfigError(f"feature columns {list(profiles.names)} differ from the "
                                  f"detector's {list(self.features)}")
            return profiles
        if not isinstance(profiles, Interactions):
            raise DataError(f"expected an Interactions (or ProfileFeatures), got "
                            f"{type(profiles).__name__}")
        return profile_features(profiles, k=self.k_features, features=self.features,
                                similarity=self.similarity)

    def fit(self, profiles: Profiles | Sequence[Profiles], labels) -> SupervisedDetector:
        """Learn from one or several data sets; ``labels`` per user of each one's id space
        (1 fake, 0 genuine, -1 left out). Returns ``self``."""
        many = isinstance(profiles, (list, tuple))
        parts, ys = _as_list(profiles), (list(labels) if many else [labels])
        if len(parts) != len(ys):
            raise ConfigError(f"{len(parts)} data sets but {len(ys)} label arrays")
        xs, targets = [], []
        for p, lab in zip(parts, ys, strict=True):
            f = self.features_of(p)
            y = _check_labels(lab, f.n_users)[f.users]
            keep = y >= 0
            xs.append(f.values[keep])
            targets.append(y[keep])
        x, y = np.concatenate(xs), np.concatenate(targets)
        if len(np.unique(y)) < 2:
            raise ConfigError("training needs both fake (1) and genuine (0) profiles")
        self.pipeline_ = Pipeline([("log", LogCompress()), ("scale", StandardScaler()),
                                   ("model", _classifier(self.classifier, self.seed))])
        self.pipeline_.fit(x, y)
        return self

    def predict_proba(self, profiles: Profiles) -> np.ndarray:
        """Probability of being fake per user of the id space (0 for users without ratings)."""
        if not hasattr(self, "pipeline_"):
            raise NotFittedError("SupervisedDetector is not fitted: call fit(profiles, labels)")
        f = self.features_of(profiles)
        return _full(self.pipeline_.predict_proba(f.values)[:, 1], f.users, f.n_users)


# ----------------------------------------------------------------------------- PCA
def _zscore_operator(x: sp.csr_matrix) -> LinearOperator:
    """Z = (X − μ 1ᵀ) / σ as an operator: each row of X (unrated = 0) z-scored over all items."""
    n_items = x.shape[1]
    mu = np.asarray(x.sum(axis=1)).ravel() / n_items
    var = np.asarray(x.multiply(x).sum(axis=1)).ravel() / n_items - mu ** 2
    sd = np.sqrt(np.clip(var, 0.0, None))
    inv = np.divide(1.0, sd, out=np.zeros_like(sd), where=sd > 0)
    a = mu * inv
    xs = sp.diags(inv) @ x
    xt = xs.T.tocsr()

    def matmat(v):
        v = np.asarray(v, dtype=np.float64).reshape(n_items, -1)
        return xs @ v - np.outer(a, v.sum(axis=0))

    def rmatmat(w):
        w = np.asarray(w, dtype=np.float64).reshape(x.shape[0], -1)
        return xt @ w - np.outer(np.ones(n_items), a @ w)

    return LinearOperator(x.shape, matvec=matmat, rmatvec=rmatmat, matmat=matmat,
                          rmatmat=rmatmat, dtype=np.float64)


def pca_distances(data: Interactions, n_components: int = 3, seed: int = 0) -> np.ndarray:
    """PCASelectUsers' score per user with ratings (``data.active_users`` order): the sum of
    squared loadings on the top ``n_components`` principal components of the user-z-scored
    user × item matrix (Mehta & Nejdl, UMUAI'09). Small = suspicious."""
    if data.ratings is None or len(data) == 0:
        raise DataError("PCA detection needs rated profiles: the data has no ratings")
    x = sp.csr_matrix(data.csr[data.active_users], dtype=np.float64)
    op = _zscore_operator(x)
    if min(x.shape) <= n_components + 1:
        dense = op.matmat(np.eye(x.shape[1]))
        u = np.linalg.svd(dense, full_matrices=False)[0][:, :n_components]
    else:
        v0 = np.random.default_rng(seed).standard_normal(min(x.shape))
        u = svds(op, k=n_components, v0=v0, solver="arpack")[0]
    return (u ** 2).sum(axis=1)


class PCADetector(_Detector):
    """PCASelectUsers (Mehta & Nejdl, *Unsupervised strategies for shilling detection and robust
    collaborative filtering*, UMUAI 19, 2009), no labels needed.

    Procedure: (1) the users × items rating matrix, unrated entries 0, each user's row z-scored
    over all items; (2) users are the variables: the principal components are the top
    eigenvectors of the user covariance Z Zᵀ, i.e. the top left singular vectors of Z (truncated
    SVD, ARPACK, seeded start vector); (3) a user's distance = Σ_{j ≤ n_components} U_uj², its
    squared loadings on the first components (3 in the paper); (4) fake profiles, which
    correlate with nobody, have the smallest distances.

    ``n_suspects`` (int, or float in (0, 1): a fraction of the users with ratings) flags that
    many smallest distances, as in the paper, where the attack size is assumed known. Otherwise
    a user is flagged when its distance is below ``threshold`` × the median distance (default
    0.1: on clean ml-100k u1.base about 1 % of users fall below it, while random, average and
    love/hate profiles at 2–10 % attack size lie mostly below 0.05). ``predict_proba`` reports
    threshold / (threshold + distance / median), which is 0.5 exactly at the threshold.
    """

    def __init__(self, n_suspects: int | float | None = None, threshold: float = 0.1,
                 n_components: int = 3, seed: int = 0) -> None:
        if n_suspects is not None and (isinstance(n_suspects, bool) or not n_suspects > 0):
            raise ConfigError(f"n_suspects must be a positive count or fraction, got "
                              f"{n_suspects!r}")
        if isinstance(n_components, bool) or int(n_components) != n_components or \
                n_components < 1:
            raise ConfigError(f"n_components must be a positive integer, got {n_components!r}")
        self.n_suspects = n_suspects
        self.threshold = _check_threshold(threshold, 0.0, np.inf)
        self.n_components = int(n_components)
        self.seed = seed

    def fit(self, profiles: Interactions, labels=None) -> PCADetector:
        """Nothing to learn (unsupervised); returns ``self``."""
        return self

    def distances(self, profiles: Interactions) -> np.ndarray:
        """Distance / median distance per user of the id space (NaN for users without ratings)."""
        d = pca_distances(profiles, self.n_components, self.seed)
        med = float(np.median(d))
        out = np.full(profiles.n_users, np.nan)
        out[profiles.active_users] = d / med if med > 0 else d
        return out

    def predict_proba(self, profiles: Interactions) -> np.ndarray:
        ratio = self.distances(profiles)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = self.threshold / (self.threshold + ratio)
        return np.nan_to_num(p, nan=0.0)

    def predict(self, profiles: Interactions) -> np.ndarray:
        if self.n_suspects is None:
            return self.predict_proba(profiles) >= 0.5
        ratio = self.distances(profiles)
        active = np.flatnonzero(~np.isnan(ratio))
        n = self.n_suspects
        count = int(round(n * len(active))) if isinstance(n, float) and n < 1 else int(n)
        chosen = active[np.argsort(ratio[active], kind="stable")[:count]]
        out = np.zeros(profiles.n_users, dtype=bool)
        out[chosen] = True
        return out


# ----------------------------------------------------------------------------- rules
def robust_z(values: np.ndarray) -> np.ndarray:
    """(x − median) / (1.4826 · MAD) of log(x) for non-negative features (x floored at half the
    smallest positive value), of x otherwise; a zero MAD counts as 1."""
    v = np.asarray(values, dtype=np.float64)
    if (v >= 0).all():
        pos = v[v > 0]
        v = np.log(np.maximum(v, pos.min() / 2 if len(pos) else 1e-12))
    med = np.median(v)
    mad = 1.4826 * np.median(np.abs(v - med))
    return (v - med) / (mad if mad > 0 else 1.0)


class RuleDetector(_Detector):
    """Flags profiles that are outliers on every rule: ``rules`` maps a feature to ``"high"`` or
    ``"low"``; a profile's score is min over rules of ±robust_z(feature) (robust z over all
    profiles of the data, log scale for non-negative features) and it is flagged when the score
    is at least ``threshold`` (default 2: a profile 2 robust standard deviations out on every
    rule). ``predict_proba`` = logistic(score − threshold), 0.5 exactly at the threshold.

    Default rules: RDMA high and Length Variance low (fake profiles deviate from item means and
    have the average length when the filler size matches the mean profile length). Chirita et
    al.'s similarity rule is ``{"degsim": "high", "length_var": "low"}``; on ml-100k it catches
    segment and love/hate profiles but not random or average ones, whose DegSim is *low*
    (docs/detection.md has the numbers). No labels are needed.
    """

    def __init__(self, rules: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                 threshold: float = 2.0, k_features: int = 10,
                 similarity: str = "pearson") -> None:
        pairs = tuple(dict(DEFAULT_RULES if rules is None else rules).items())
        if not pairs:
            raise ConfigError("rules must name at least one feature")
        bad = [d for _, d in pairs if d not in ("high", "low")]
        if bad:
            raise ConfigError(f"rule directions must be 'high' or 'low', got {bad}")
        check_features([f for f, _ in pairs])
        self.rules = pairs
        self.threshold = _check_threshold(threshold, -np.inf, np.inf)
        self.k_features = k_features
        self.similarity = similarity

    def fit(self, profiles: Interactions, labels=None) -> RuleDetector:
        """Nothing to learn (unsupervised); returns ``self``."""
        return self

    def scores(self, profiles: Interactions) -> np.ndarray:
        """min over rules of the signed robust z per user of the id space (-inf: no ratings)."""
        names = [f for f, _ in self.rules]
        f = profile_features(profiles, k=self.k_features, features=names,
                             similarity=self.similarity)
        z = [robust_z(f.column(n)) * (1 if d == "high" else -1) for n, d in self.rules]
        out = np.full(f.n_users, -np.inf)
        out[f.users] = np.min(z, axis=0)
        return out

    def predict_proba(self, profiles: Interactions) -> np.ndarray:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-(self.scores(profiles) - self.threshold)))

    def predict(self, profiles: Interactions) -> np.ndarray:
        return self.scores(profiles) >= self.threshold


# ----------------------------------------------------------------------------- factory, filter



def make_detector(name: str, seed: int = 0, **params) -> _Detector:
    """A detector by name: ``svm``/``knn``/``forest`` (supervised), ``pca`` or ``rule``."""
    if name in CLASSIFIERS:
        return SupervisedDetector(classifier=name, seed=seed, **params)
    if name == "pca":
        return PCADetector(seed=seed, **params)
    if name == "rule":
        return RuleDetector(**params)
    raise ConfigError(f"unknown detector {name!r}; choose from {list(DETECTORS)}")


def filter_profiles(data: Interactions, flagged_users, drop_from: int | None = None
                    ) -> Interactions:
    """``data`` without the interactions of ``flagged_users`` (internal ids, or a boolean mask
    over the id space); the id space is unchanged, so models and test sets still line up.

    ``drop_from``: flagged users with internal id ≥ ``drop_from`` (injected profiles appended
    after the real users) also leave the id space; every id below it stays. Removing exactly the
    fake profiles then gives back the clean data, and a model trained on it the clean model.
    """
    flagged = np.asarray(flagged_users)
    if flagged.dtype == bool:
        if flagged.shape != (data.n_users,):
            raise DataError(f"a boolean mask of flagged users needs {data.n_users} entries, "
                            f"got shape {flagged.shape}")
        mask = flagged
    else:
        ids = flagged.astype(np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= data.n_users):
            raise DataError(f"flagged users must be internal ids in 0..{data.n_users - 1}")
        mask = np.zeros(data.n_users, dtype=bool)
        mask[ids] = True
    kept = data.subset(~mask[data.users])
    if drop_from is None:
        return kept
    if not 0 <= drop_from <= data.n_users:
        raise DataError(f"drop_from must lie in 0..{data.n_users}, got {drop_from}")
    stays = ~mask
    stays[:drop_from] = True
    if stays.all():
        return kept
    new_id = np.cumsum(stays) - 1  # the kept users' ids, in order
    return Interactions(new_id[kept.users], kept.items, data.user_ids[stays], data.item_ids,
                        kept.ratings, kept.timestamps, kept.name)
