"""Metrics of a probe's predictions, with bootstrap intervals and paired comparisons.

Every function takes the true class indices ``y_true`` of shape (N,) and a matrix
``proba`` of shape (N, K) whose rows are probabilities over all K dataset classes,
so a class missing from a split still has its column. Every metric is computed
with numpy from per-image weights: a point estimate weights each image once, and
the bootstrap evaluates all resamples at once from their weights (how many times
each image was drawn), so 1000 resamples of 500 images take a fraction of a
second and both share one definition of each metric. The tests check the point
estimates against scikit-learn.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1])
    >>> proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    >>> compute_metrics(y, proba, positive=1)["balanced_accuracy"]
    1.0
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lazyvision.errors import DataError

logger = logging.getLogger(__name__)

METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "roc_auc",
    "log_loss",
    "pr_auc",
    "ece",
)
LOWER_IS_BETTER = frozenset({"log_loss", "ece"})

# Rows are probabilities that may have been stored as float32 or rounded in a CSV.
_ROW_SUM_TOLERANCE = 1e-3
# An interval is only reported when at most this share of resamples had to be
# dropped; otherwise it would describe the resamples that happened to work. A class
# of k images is missing from about exp(-k) of resamples, so in effect class-based
# intervals need three images of every class in the split.
MAX_DROPPED_FRACTION = 0.1
# Metrics whose definition depends on which classes a sample holds.
_CLASS_BASED = frozenset({"balanced_accuracy", "f1", "roc_auc", "pr_auc"})
# Resample weights are built in chunks of at most this many cells (32 MB of float64).
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class PairedComparison:
    """Model a minus model b on one metric, over the same bootstrap resamples.

    Attributes:
        metric: The metric compared.
        difference: Metric of a minus metric of b on all images; None if the metric
            is undefined on this split.
        low: Lower end of the percentile interval of the difference.
        high: Upper end of the interval.
        tied: True when the interval contains 0, None when it cannot be told.
        reason: Why ``tied`` is None.
    """

    metric: str
    difference: float | None
    low: float | None
    high: float | None
    tied: bool | None
    reason: str | None = None


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` wins; a split prefix ("val_") is allowed."""
    split, _, name = metric.partition("_")
    return (name if split in ("val", "test") else metric) not in LOWER_IS_BETTER


def predicts_single_class(proba: np.ndarray) -> bool:
    """Whether the most probable class is the same for every row of ``proba``.

    Example:
        >>> predicts_single_class(np.array([[0.8, 0.2], [0.6, 0.4]]))
        True
    """
    matrix = np.asarray(proba)
    if matrix.ndim != 2:
        raise DataError(f"proba must be 2-D (images, classes); got {matrix.shape!r}")
    return matrix.shape[0] > 0 and np.unique(matrix.argmax(axis=1)).size == 1


def expected_calibration_error(
    y_true: np.ndarray, proba: np.ndarray, *, num_bins: int = 15
) -> float:
    """Top-label expected calibration error over equal-width confidence bins.

    The confidence of an image is its largest probability; bin b holds the
    confidences in (b / num_bins, (b + 1) / num_bins]. The error is the
    image-weighted mean of |accuracy - mean confidence| over the bins.

    Example:
        >>> expected_calibration_error(np.array([0, 1]), np.array([[1.0, 0], [1, 0]]))
        0.5
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise DataError(f"num_bins must be a positive integer; got {num_bins!r}")
    y, matrix, _ = _check_inputs(y_true, proba, positive=None)
    gaps = _calibration_gaps(y, matrix, num_bins)
    return float(np.abs(gaps.sum(axis=0)).sum() / y.size)


def compute_metrics(
    y_true: np.ndarray, proba: np.ndarray, *, positive: int | None
) -> dict[str, float | None]:
    """Every metric in ``METRICS`` on one split; None where it is undefined.

    Args:
        y_true: Class indices, shape (N,).
        proba: Probabilities over all K dataset classes, shape (N, K).
        positive: Index of the positive class when K is 2 (None means 1); must
            be None when K is larger.

    Returns:
        accuracy, balanced_accuracy (mean recall over the classes in ``y_true``),
        f1 (binary: of ``positive``; otherwise macro over the classes in
        ``y_true`` or predicted), roc_auc (binary: of ``positive``; otherwise
        macro one-vs-rest over the classes in ``y_true``), log_loss, pr_auc
        (average precision, binary only) and ece. ``unavailable_reasons`` says
        why a value is None.

    Example:
        >>> y = np.array([0, 0, 0, 1])
        >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
        >>> compute_metrics(y, proba, positive=1)["f1"]
        0.0
    """
    y, matrix, positive = _check_inputs(y_true, proba, positive=positive)
    reasons = _unavailable(y, matrix.argmax(axis=1), matrix.shape[1], positive)
    names = [name for name in METRICS if name not in reasons]

    # A resample that draws every image once, so the estimate and its interval
    # share one definition; scikit-learn's per-call input checks made this about
    # 60 times slower on 120 images of 10 classes.
    evaluator = _Evaluator(y, matrix, positive)
    values = evaluator.evaluate(np.ones((1, y.size)), names)
    results: dict[str, float | None] = dict.fromkeys(METRICS)
    for name in names:
        results[name] = float(values[name][0])
    return results


def unavailable_reasons(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    positive: int | None,
    classes: Sequence[str] | None = None,
) -> dict[str, str]:
    """Why each metric that ``compute_metrics`` leaves as None is undefined.

    Args:
        y_true: Class indices, shape (N,).
        proba: Probabilities over all K dataset classes, shape (N, K).
        positive: As for ``compute_metrics``.
        classes: The K class names, for the wording; indices are used without.

    Example:
        >>> proba = np.array([[0.9, 0.1], [0.8, 0.2]])
        >>> unavailable_reasons(np.array([0, 0]), proba, positive=1,
        ...                     classes=["neg", "pos"])["roc_auc"]
        "only one class ('neg') in this split"
    """
    y, matrix, positive = _check_inputs(y_true, proba, positive=positive)
    if classes is not None and len(classes) != matrix.shape[1]:
        raise DataError(
            f"classes has {len(classes)} names but proba has {matrix.shape[1]} "
            f"columns; give one name per column: {list(classes)!r}"
        )
    predicted = matrix.argmax(axis=1)
    return _unavailable(y, predicted, matrix.shape[1], positive, classes=classes)


def bootstrap_intervals(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    positive: int | None,
    num_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap intervals of every metric in ``METRICS`` but ece.

    ECE gets none: resampling adds miscalibration of its own, so on a few
    hundred images nearly all resampled values lie above the estimate, which
    then falls at or below the interval's lower end (and a bias-corrected
    interval lies wholly below it).

    Images are resampled with replacement. A resample that lacks a class of the
    split is dropped for the class-based metrics (balanced_accuracy, f1, roc_auc,
    pr_auc), as is one where a metric is undefined. The interval is None when
    more than ``MAX_DROPPED_FRACTION`` of the resamples were dropped or the
    metric is undefined on all images. The same seed and N give the same
    resamples, so reruns agree.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 200)
        >>> proba = np.eye(2)[y] * 0.6 + 0.2
        >>> bootstrap_intervals(y, proba, positive=1)["accuracy"]
        (1.0, 1.0)
    """
    y, matrix, positive = _check_inputs(y_true, proba, positive=positive)
    _check_bootstrap_options(num_resamples, level)
    reasons = _unavailable(y, matrix.argmax(axis=1), matrix.shape[1], positive, None)
    names = [name for name in METRICS if name not in reasons and name != "ece"]

    evaluator = _Evaluator(y, matrix, positive)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for weights in _resample_weights(y.size, num_resamples, seed):
        for name, values in evaluator.evaluate(weights, names).items():
            chunks[name].append(values)

    intervals: dict[str, tuple[float, float] | None] = dict.fromkeys(METRICS)
    for name in names:
        intervals[name] = _percentile_interval(
            np.concatenate(chunks[name]), num_resamples, level, name
        )
    return intervals


def paired_bootstrap(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    *,
    metric: str = "balanced_accuracy",
    positive: int | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedComparison:
    """Compare two models on the same images with the same bootstrap resamples.

    The difference is metric(a) - metric(b), so for log_loss and ece a negative
    difference favours a. The two are tied when the percentile interval of the
    difference contains 0 (an interval of exactly [0, 0] included).

    Example:
        >>> y = np.array([0, 1] * 50)
        >>> proba = np.eye(2)[y] * 0.8 + 0.1
        >>> paired_bootstrap(y, proba, proba, positive=1).tied
        True
    """
    if metric not in METRICS:
        raise DataError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    if np.shape(proba_a) != np.shape(proba_b):
        raise DataError(
            f"proba_a and proba_b must have the same shape; got "
            f"{np.shape(proba_a)!r} and {np.shape(proba_b)!r}"
        )
    y, matrix_a, positive = _check_inputs(y_true, proba_a, positive=positive)
    _, matrix_b, _ = _check_inputs(y_true, proba_b, positive=positive)
    _check_bootstrap_options(num_resamples, level)

    value_a = compute_metrics(y, matrix_a, positive=positive)[metric]
    value_b = compute_metrics(y, matrix_b, positive=positive)[metric]
    if value_a is None or value_b is None:
        reasons = {
            **_unavailable(y, matrix_b.argmax(axis=1), matrix_b.shape[1], positive),
            **_unavailable(y, matrix_a.argmax(axis=1), matrix_a.shape[1], positive),
        }
        return PairedComparison(metric, None, None, None, None, reasons.get(metric))

    evaluator_a = _Evaluator(y, matrix_a, positive)
    evaluator_b = _Evaluator(y, matrix_b, positive)
    differences = []
    for weights in _resample_weights(y.size, num_resamples, seed):
        values_a = evaluator_a.evaluate(weights, [metric])[metric]
        differences.append(values_a - evaluator_b.evaluate(weights, [metric])[metric])
    interval = _percentile_interval(
        np.concatenate(differences), num_resamples, level, metric
    )
    if interval is None:
        return PairedComparison(
            metric,
            value_a - value_b,
            None,
            None,
            None,
            f"{metric} undefined on over {MAX_DROPPED_FRACTION:.0%} of resamples "
            "(a class has too few images)",
        )
    low, high = interval
    return PairedComparison(metric, value_a - value_b, low, high, low <= 0.0 <= high)


def _check_inputs(
    y_true: np.ndarray, proba: np.ndarray, *, positive: int | None
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Validate; return int64 labels, row-normalised float64 proba, the positive."""
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"y_true must be a 1-D array of integer class indices; got shape "
            f"{y.shape!r} of dtype {y.dtype}"
        )
    matrix = np.asarray(proba, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != y.size or matrix.shape[1] < 2:
        raise DataError(
            f"proba must have shape (N, K) with N = len(y_true) = {y.size} and "
            f"K >= 2 classes; got {matrix.shape!r}"
        )
    if y.size == 0:
        raise DataError("y_true is empty; metrics need at least one image")
    num_classes = matrix.shape[1]
    if y.min() < 0 or y.max() >= num_classes:
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise DataError(
            f"y_true holds class index {int(bad)!r}; indices must be in "
            f"0..{num_classes - 1} for {num_classes} proba columns"
        )

    sums = matrix.sum(axis=1)
    bad_rows = ~np.isfinite(sums) | (np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
    bad_rows |= (matrix < 0).any(axis=1)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise DataError(
            f"proba row {row} is {matrix[row].tolist()!r}; each row must be "
            f"non-negative probabilities summing to 1"
        )

    if num_classes == 2:
        positive = 1 if positive is None else positive
        if isinstance(positive, bool) or positive not in (0, 1):
            raise DataError(
                f"positive must be 0 or 1 for two classes; got {positive!r}"
            )
    elif positive is not None:
        raise DataError(
            f"positive is for two classes only; got {positive!r} with "
            f"{num_classes} classes (pass None)"
        )
    return y.astype(np.int64), matrix / sums[:, None], positive


def _check_bootstrap_options(num_resamples: int, level: float) -> None:
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, int):
        raise DataError(f"num_resamples must be an integer; got {num_resamples!r}")
    if num_resamples < 1:
        raise DataError(f"num_resamples must be at least 1; got {num_resamples!r}")
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}")


def _class_name(index: int, classes: Sequence[str] | None) -> str:
    return repr(classes[index]) if classes is not None else f"index {index}"


def _unavailable(
    y: np.ndarray,
    predicted: np.ndarray,
    num_classes: int,
    positive: int | None,
    classes: Sequence[str] | None = None,
) -> dict[str, str]:
    """The single definition of when a metric is None, shared by every function."""
    reasons: dict[str, str] = {}
    present = np.unique(y)
    if present.size < 2:
        one_class = f"only one class ({_class_name(int(present[0]), classes)}) in "
        reasons["roc_auc"] = one_class + "this split"
        reasons["pr_auc"] = one_class + "this split"
    if positive is None:
        reasons["pr_auc"] = f"defined for two classes only; there are {num_classes}"
    elif positive not in present and positive not in predicted:
        reasons["f1"] = (
            f"positive class {_class_name(positive, classes)} is neither in this "
            "split nor predicted"
        )
    return reasons


def _calibration_gaps(y: np.ndarray, proba: np.ndarray, num_bins: int) -> np.ndarray:
    """Per image, (correct - confidence) in the column of its confidence bin."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    gaps = np.zeros((y.size, num_bins))
    gaps[np.arange(y.size), bins] = correct - confidence
    return gaps


def _resample_weights(
    num_images: int, num_resamples: int, seed: int
) -> Iterator[np.ndarray]:
    """Chunks of (resamples, images) draw counts; the same for the same arguments."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // num_images)
    for start in range(0, num_resamples, chunk):
        size = min(chunk, num_resamples - start)
        drawn = rng.integers(0, num_images, size=(size, num_images))
        flat = (np.arange(size)[:, None] * num_images + drawn).ravel()
        counts = np.bincount(flat, minlength=size * num_images)
        yield counts.reshape(size, num_images).astype(np.float64)


def _percentile_interval(
    values: np.ndarray, num_resamples: int, level: float, name: str
) -> tuple[float, float] | None:
    defined = values[np.isfinite(values)]
    if defined.size == 0 or defined.size < (1 - MAX_DROPPED_FRACTION) * num_resamples:
        logger.debug(
            "%s: %d of %d resamples undefined; no interval",
            name,
            num_resamples - defined.size,
            num_resamples,
        )
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return float(low), float(high)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _mean_defined(values: np.ndarray) -> np.ndarray:
    """Row means over the finite entries; NaN for a row with none."""
    defined = np.isfinite(values)
    return _divide(np.where(defined, values, 0.0).sum(axis=1), defined.sum(axis=1))


class _Evaluator:
    """The metrics of one prediction set under many resample weightings at once.

    A weighting is a row of draw counts per image; each metric is written in terms
    of weighted sums (per-class counts, per-image losses, tie groups of scores for
    the rank-based AUC), so a (resamples, images) matrix gives every resample's
    value through a few matrix products and cumulative sums.
    """

    def __init__(self, y: np.ndarray, proba: np.ndarray, positive: int | None):
        self.num_images = y.size
        self.positive = positive
        predicted = proba.argmax(axis=1)
        correct = predicted == y
        present = np.unique(y)
        # Only classes in y_true or predicted can have non-zero counts.
        self.classes = np.union1d(present, predicted)
        self.present = np.isin(self.classes, present)
        self.true_onehot = (y[:, None] == self.classes).astype(np.float64)
        self.pred_onehot = (predicted[:, None] == self.classes).astype(np.float64)
        self.hit_onehot = self.true_onehot * correct[:, None]
        self.correct = correct.astype(np.float64)

        true_probability = proba[np.arange(y.size), y]
        eps = np.finfo(np.float64).eps
        self.losses = -np.log(np.clip(true_probability, eps, 1 - eps))
        self.gaps = _calibration_gaps(y, proba, 15)

        scored = [positive] if positive is not None else present.tolist()
        self.rankings = [_rank(proba[:, k], y == k) for k in scored]

    def evaluate(
        self, weights: np.ndarray, names: Iterable[str]
    ) -> dict[str, np.ndarray]:
        # A class-averaged metric over a resample that lacks a class of the split
        # averages over other classes, which is another metric: drop it.
        complete = (weights @ self.true_onehot[:, self.present] > 0).all(axis=1)
        values = {}
        for name in names:
            values[name] = getattr(self, f"_{name}")(weights)
            if name in _CLASS_BASED:
                values[name][~complete] = np.nan
        return values

    def _accuracy(self, weights: np.ndarray) -> np.ndarray:
        return np.asarray(weights @ self.correct / self.num_images)

    def _balanced_accuracy(self, weights: np.ndarray) -> np.ndarray:
        recall = _divide(weights @ self.hit_onehot, weights @ self.true_onehot)
        return _mean_defined(recall)

    def _f1(self, weights: np.ndarray) -> np.ndarray:
        hits = weights @ self.hit_onehot
        totals = weights @ self.true_onehot + weights @ self.pred_onehot
        per_class = _divide(2 * hits, totals)
        if self.positive is None:
            return _mean_defined(per_class)
        column = np.flatnonzero(self.classes == self.positive)
        return per_class[:, column[0]] if column.size else np.full(len(weights), np.nan)

    def _roc_auc(self, weights: np.ndarray) -> np.ndarray:
        per_class = []
        for ranking in self.rankings:
            ordered = weights[:, ranking.order]
            negatives_below = _cumulative(ordered * (1.0 - ranking.is_positive))
            drawn = ordered[:, ranking.positions]
            # A negative tied with a positive counts half a win.
            wins = drawn * (
                negatives_below[:, ranking.first] + negatives_below[:, ranking.last + 1]
            )
            pairs = drawn.sum(axis=1) * negatives_below[:, -1]
            per_class.append(_divide(0.5 * wins.sum(axis=1), pairs))
        return _mean_defined(np.stack(per_class, axis=1))

    def _pr_auc(self, weights: np.ndarray) -> np.ndarray:
        ranking = self.rankings[0]
        ordered = weights[:, ranking.order]
        all_below = _cumulative(ordered)
        positives_below = _cumulative(ordered * ranking.is_positive)
        # Each drawn positive scores the precision at the threshold of its score.
        true_positives = positives_below[:, -1:] - positives_below[:, ranking.first]
        selected = all_below[:, -1:] - all_below[:, ranking.first]
        precision = np.nan_to_num(_divide(true_positives, selected))
        drawn = ordered[:, ranking.positions]
        average = _divide((drawn * precision).sum(axis=1), positives_below[:, -1])
        has_negatives = all_below[:, -1] > positives_below[:, -1]
        return np.where(has_negatives, average, np.nan)

    def _log_loss(self, weights: np.ndarray) -> np.ndarray:
        return np.asarray(weights @ self.losses / self.num_images)

    def _ece(self, weights: np.ndarray) -> np.ndarray:
        return np.abs(weights @ self.gaps).sum(axis=1) / self.num_images


class _Ranking(NamedTuple):
    """One column of scores sorted ascending, with its positives' tie groups."""

    order: np.ndarray  # image indices by ascending score
    is_positive: np.ndarray  # 1.0 / 0.0 in that order
    positions: np.ndarray  # sorted positions of the positives
    first: np.ndarray  # per positive, first sorted position with its score
    last: np.ndarray  # per positive, last sorted position with its score


def _rank(scores: np.ndarray, is_positive: np.ndarray) -> _Ranking:
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    new_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], ordered.size] - 1
    positions = np.flatnonzero(is_positive[order])
    return _Ranking(
        order=order,
        is_positive=is_positive[order].astype(np.float64),
        positions=positions,
        first=starts[group[positions]],
        last=ends[group[positions]],
    )


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Running sums along each row with a leading 0: column j sums columns < j."""
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out
