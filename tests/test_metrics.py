from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    recall_score,
    roc_auc_score,
)

from lazyvision.errors import DataError
from lazyvision.metrics import (
    METRICS,
    PairedComparison,
    _check_inputs,
    _Evaluator,
    _resample_weights,
    _unavailable,
    bootstrap_intervals,
    compute_metrics,
    expected_calibration_error,
    higher_is_better,
    paired_bootstrap,
    predicts_single_class,
    unavailable_reasons,
)

CLASS_BASED = {"balanced_accuracy", "f1", "roc_auc", "pr_auc"}


def _one_hot_proba(
    predicted: list[int], num_classes: int, confidence: float = 0.8
) -> np.ndarray:
    """Rows putting ``confidence`` on the predicted class, the rest spread evenly."""
    rest = (1 - confidence) / (num_classes - 1)
    proba = np.full((len(predicted), num_classes), rest)
    proba[np.arange(len(predicted)), predicted] = confidence
    return proba


def _random_proba(
    rng: np.random.Generator, num_images: int, num_classes: int
) -> np.ndarray:
    return rng.dirichlet(np.ones(num_classes), size=num_images)


def _sklearn_metrics(
    y: np.ndarray, proba: np.ndarray, positive: int | None
) -> dict[str, float | None]:
    """The contract of ``compute_metrics``, written with scikit-learn's functions."""
    predicted = proba.argmax(axis=1)
    present = np.unique(y)
    undefined = _unavailable(y, predicted, proba.shape[1], positive)
    expected: dict[str, float | None] = dict.fromkeys(METRICS)
    expected["accuracy"] = accuracy_score(y, predicted)
    expected["balanced_accuracy"] = recall_score(
        y, predicted, labels=present, average="macro", zero_division=0
    )
    if "f1" not in undefined:
        labels = [positive] if positive is not None else np.union1d(present, predicted)
        expected["f1"] = f1_score(
            y, predicted, labels=labels, average="macro", zero_division=0
        )
    if "roc_auc" not in undefined:
        scored = [positive] if positive is not None else present
        expected["roc_auc"] = np.mean(
            [roc_auc_score(y == k, proba[:, k]) for k in scored]
        )
    expected["log_loss"] = log_loss(y, proba, labels=range(proba.shape[1]))
    if "pr_auc" not in undefined:
        expected["pr_auc"] = average_precision_score(y == positive, proba[:, positive])
    expected["ece"] = expected_calibration_error(y, proba)
    return {
        name: None if value is None else float(value)
        for name, value in expected.items()
    }


def _coarse_proba(
    rng: np.random.Generator, num_images: int, num_classes: int
) -> np.ndarray:
    """Rows of eighths: many tied scores and zeros, and sums of exactly 1.

    The sums matter: ``compute_metrics`` divides each row by its sum, which moves a
    score by a unit in the last place when the sum is off 1 by as much, and so
    splits ties the reference would keep.
    """
    counts = rng.multinomial(8, np.full(num_classes, 1 / num_classes), num_images)
    return counts / 8.0


def test_majority_head_on_imbalanced_binary_split() -> None:
    y = np.array([0] * 9 + [1])  # 9 "neg", 1 "pos"
    proba = _one_hot_proba([0] * 10, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compute_metrics(y, proba, positive=1)
        intervals = bootstrap_intervals(y, proba, positive=1, num_resamples=200)
        reasons = unavailable_reasons(y, proba, positive=1, classes=["neg", "pos"])

    assert metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)
    assert metrics["f1"] == 0.0
    assert metrics["roc_auc"] == pytest.approx(0.5)  # every score tied
    assert metrics["pr_auc"] == pytest.approx(0.1)  # one threshold, precision 1/10
    assert metrics["log_loss"] == pytest.approx(
        -(9 * math.log(0.8) + math.log(0.2)) / 10
    )
    assert metrics["ece"] == pytest.approx(0.1)  # one bin: accuracy 0.9, confidence 0.8
    assert predicts_single_class(proba)
    assert reasons == {}
    # One positive in ten: a third of resamples draw none, too many for an interval
    # of a class-based metric; accuracy does not depend on the classes drawn.
    assert intervals["roc_auc"] is None
    assert intervals["balanced_accuracy"] is None
    assert intervals["accuracy"] is not None


def test_hand_computed_multiclass() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = _one_hot_proba([0, 1, 1, 1, 2, 0], 3)
    metrics = compute_metrics(y, proba, positive=None)

    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    # Per-class F1 = 2tp / (2tp + fp + fn): 2/4, 4/5, 2/3.
    assert metrics["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics["pr_auc"] is None
    assert metrics["log_loss"] == pytest.approx(
        -(4 * math.log(0.8) + 2 * math.log(0.1)) / 6
    )


def test_multiclass_macro_uses_classes_in_split_or_predicted() -> None:
    # Class 3 is neither in y_true nor predicted; class 2 is predicted but absent.
    y = np.array([0, 0, 1, 1])
    proba = _one_hot_proba([0, 2, 1, 1], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compute_metrics(y, proba, positive=None)

    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    # F1 of classes 0, 1, 2: 2/3, 1, 0 (class 3 left out).
    assert metrics["f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert metrics["roc_auc"] == pytest.approx(
        np.mean([roc_auc_score(y == k, proba[:, k]) for k in (0, 1)])
    )
    assert metrics["log_loss"] == pytest.approx(log_loss(y, proba, labels=range(4)))


def test_multiclass_roc_auc_matches_sklearn_when_all_classes_present() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 80)
    proba = _random_proba(rng, 80, 4)
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert compute_metrics(y, proba, positive=None)["roc_auc"] == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    ("num_classes", "num_labels", "positive"),
    [
        (2, 2, 1),
        (2, 2, 0),
        (2, 1, 1),  # positive absent from y_true, predicted now and then
        (2, 1, 0),
        (10, 10, None),
        (4, 3, None),  # class 3 absent from y_true but predicted
        (3, 2, None),
    ],
)
@pytest.mark.parametrize("tied", [False, True], ids=["continuous", "tied"])
def test_metrics_match_sklearn(
    num_classes: int, num_labels: int, positive: int | None, tied: bool
) -> None:
    rng = np.random.default_rng([num_classes, num_labels, positive or 0, tied])
    predicts_absent_class = has_ties = False
    for _ in range(5):
        num_images = int(rng.integers(2, 130))
        y = rng.integers(0, num_labels, num_images)
        if tied:
            proba = _coarse_proba(rng, num_images, num_classes)
        else:
            proba = _random_proba(rng, num_images, num_classes)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            metrics = compute_metrics(y, proba, positive=positive)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = _sklearn_metrics(y, proba, positive)

        for name in METRICS:
            value, reference = metrics[name], expected[name]
            if reference is None:
                assert value is None, name
            else:
                assert value == pytest.approx(reference, rel=0, abs=1e-9), name
        predicted = proba.argmax(axis=1)
        predicts_absent_class |= np.setdiff1d(predicted, y).size > 0
        has_ties |= any(np.unique(column).size < num_images for column in proba.T)

    # The cases exercise what their parameters promise.
    assert predicts_absent_class or num_labels == num_classes
    assert has_ties or not tied


def test_importing_metrics_leaves_sklearn_unloaded() -> None:
    code = "import sys, lazyvision.metrics; print('sklearn' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_binary_roc_auc_counts_ties_as_half() -> None:
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.2, 0.5, 0.5, 0.9])
    proba = np.stack([1 - scores, scores], axis=1)
    # Positive 0.5 beats 0.2 and ties 0.5; positive 0.9 beats both: 3.5 of 4 pairs.
    assert compute_metrics(y, proba, positive=1)["roc_auc"] == pytest.approx(0.875)
    # Binary ROC-AUC is the same whichever class is called positive.
    assert compute_metrics(y, proba, positive=0)["roc_auc"] == pytest.approx(0.875)


def test_binary_f1_is_for_the_positive_class() -> None:
    y = np.array([0, 0, 0, 1, 1])
    proba = _one_hot_proba([0, 0, 1, 1, 0], 2)
    # Class 1: tp 1, fp 1, fn 1 -> 0.5. Class 0: tp 2, fp 1, fn 1 -> 4/6.
    assert compute_metrics(y, proba, positive=1)["f1"] == pytest.approx(0.5)
    assert compute_metrics(y, proba, positive=0)["f1"] == pytest.approx(4 / 6)


def test_one_class_split_leaves_rank_metrics_undefined() -> None:
    y = np.array([0, 0, 0])
    proba = _one_hot_proba([0, 0, 1], 2)
    metrics = compute_metrics(y, proba, positive=1)
    reasons = unavailable_reasons(y, proba, positive=1, classes=["neg", "pos"])

    assert metrics["roc_auc"] is None and metrics["pr_auc"] is None
    assert metrics["f1"] == 0.0  # positive predicted once, wrongly
    assert reasons == {
        "roc_auc": "only one class ('neg') in this split",
        "pr_auc": "only one class ('neg') in this split",
    }
    assert unavailable_reasons(y, proba, positive=1)["roc_auc"] == (
        "only one class (index 0) in this split"
    )


def test_f1_undefined_when_positive_neither_present_nor_predicted() -> None:
    y = np.array([0, 0])
    proba = _one_hot_proba([0, 0], 2)
    assert compute_metrics(y, proba, positive=1)["f1"] is None
    reasons = unavailable_reasons(y, proba, positive=1, classes=["cat", "dog"])
    assert (
        reasons["f1"] == "positive class 'dog' is neither in this split nor predicted"
    )


def test_pr_auc_reason_for_multiclass() -> None:
    y = np.array([0, 1, 2])
    reasons = unavailable_reasons(y, _one_hot_proba([0, 1, 2], 3), positive=None)
    assert reasons == {"pr_auc": "defined for two classes only; there are 3"}


def test_reasons_name_exactly_the_undefined_metrics() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        num_classes = int(rng.integers(2, 5))
        y = rng.integers(
            0, int(rng.integers(1, num_classes + 1)), int(rng.integers(1, 8))
        )
        proba = _random_proba(rng, y.size, num_classes)
        positive = 1 if num_classes == 2 else None
        metrics = compute_metrics(y, proba, positive=positive)
        undefined = {name for name, value in metrics.items() if value is None}
        assert set(unavailable_reasons(y, proba, positive=positive)) == undefined


def test_expected_calibration_error_by_hand() -> None:
    y = np.array([0, 0, 0, 0])
    proba = np.array([[0.95, 0.05], [0.05, 0.95], [0.55, 0.45], [0.58, 0.42]])
    # Bin (14/15, 1]: correct 1 of 2, confidence 1.9 -> |1 - 1.9| = 0.9.
    # Bin (8/15, 9/15]: correct 2 of 2, confidence 1.13 -> 0.87.
    assert expected_calibration_error(y, proba) == pytest.approx((0.9 + 0.87) / 4)
    assert expected_calibration_error(y, proba, num_bins=1) == pytest.approx(0.03 / 4)
    with pytest.raises(DataError, match="num_bins must be a positive integer; got 0"):
        expected_calibration_error(y, proba, num_bins=0)


def test_predicts_single_class() -> None:
    assert predicts_single_class(_one_hot_proba([2, 2, 2], 3))
    assert not predicts_single_class(_one_hot_proba([2, 1, 2], 3))
    with pytest.raises(DataError, match=r"proba must be 2-D .* got \(3,\)"):
        predicts_single_class(np.ones(3))


def test_resampled_metrics_equal_metrics_of_the_drawn_images() -> None:
    rng = np.random.default_rng(11)
    num_compared = 0
    for trial in range(10):
        num_classes = int(rng.choice([2, 3, 4]))
        num_images = int(rng.integers(6, 30))
        y = rng.integers(0, num_classes, num_images)
        logits = rng.normal(size=(num_images, num_classes))
        if trial % 2:
            logits = np.round(logits)  # tied scores
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        positive = int(rng.integers(0, 2)) if num_classes == 2 else None

        labels, matrix, positive = _check_inputs(y, proba, positive=positive)
        predicted = matrix.argmax(axis=1)
        names = [
            name
            for name in METRICS
            if name not in _unavailable(labels, predicted, num_classes, positive)
        ]
        weights = next(_resample_weights(num_images, 6, trial))
        resampled = _Evaluator(labels, matrix, positive).evaluate(weights, names)
        for row, counts in enumerate(weights.astype(int)):
            drawn = np.repeat(np.arange(num_images), counts)
            expected = compute_metrics(y[drawn], proba[drawn], positive=positive)
            complete = np.array_equal(np.unique(y[drawn]), np.unique(y))
            for name in names:
                value = resampled[name][row]
                if expected[name] is None or (name in CLASS_BASED and not complete):
                    assert math.isnan(value), (name, value)
                else:
                    assert value == pytest.approx(expected[name], abs=1e-12)
                    num_compared += 1
    assert num_compared > 200


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    proba = np.clip(np.eye(2)[y] * 0.5 + rng.uniform(0, 0.5, (300, 2)), 0, 1)
    proba /= proba.sum(axis=1, keepdims=True)
    first = bootstrap_intervals(y, proba, positive=1)
    assert bootstrap_intervals(y, proba, positive=1) == first
    assert bootstrap_intervals(y, proba, positive=1, seed=1) != first

    point = compute_metrics(y, proba, positive=1)
    narrow = bootstrap_intervals(y, proba, positive=1, level=0.5)
    assert first["ece"] is None and narrow["ece"] is None
    for name in set(METRICS) - {"ece"}:
        wide, inner, value = first[name], narrow[name], point[name]
        assert wide is not None and inner is not None and value is not None
        assert wide[0] <= value <= wide[1]
        assert wide[0] <= inner[0] <= inner[1] <= wide[1]


def test_paired_bootstrap_identical_predictions_are_tied() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    proba = _random_proba(rng, 200, 3)
    comparison = paired_bootstrap(y, proba, proba.copy())
    assert comparison == PairedComparison("balanced_accuracy", 0.0, 0.0, 0.0, True)


def test_paired_bootstrap_perfect_model_beats_coin_flip() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    perfect = _one_hot_proba(y.tolist(), 2, confidence=0.9)
    coin = _random_proba(rng, 500, 2)
    for metric in ("balanced_accuracy", "roc_auc", "f1", "log_loss"):
        comparison = paired_bootstrap(y, perfect, coin, metric=metric, positive=1)
        low, difference, high = comparison.low, comparison.difference, comparison.high
        assert low is not None and difference is not None and high is not None
        assert comparison.tied is False
        if higher_is_better(metric):
            assert 0 < low <= difference <= high
        else:
            assert low <= difference <= high < 0

    forward = paired_bootstrap(y, perfect, coin, positive=1)
    reverse = paired_bootstrap(y, coin, perfect, positive=1)
    assert forward.difference is not None and reverse.difference is not None
    assert forward.low is not None and forward.high is not None
    assert reverse.difference == pytest.approx(-forward.difference)
    assert (reverse.low, reverse.high) == pytest.approx((-forward.high, -forward.low))


def test_paired_bootstrap_of_an_undefined_metric_cannot_tell() -> None:
    y = np.array([0, 0, 0, 0])
    proba = _one_hot_proba([0, 0, 1, 0], 2)
    comparison = paired_bootstrap(y, proba, proba, metric="roc_auc", positive=1)
    assert comparison.tied is None and comparison.difference is None
    assert comparison.reason == "only one class (index 0) in this split"


def test_higher_is_better() -> None:
    assert higher_is_better("val_balanced_accuracy") and higher_is_better("roc_auc")
    assert not higher_is_better("test_log_loss") and not higher_is_better("ece")


@pytest.mark.parametrize(
    ("y", "proba", "positive", "message"),
    [
        (np.array([0.0, 1.0]), np.eye(2), 1, "y_true must be a 1-D array of integer"),
        (np.array([0, 1]), np.eye(3), None, r"proba must have shape \(N, K\)"),
        (np.array([0, 1]), np.ones((2, 1)), None, r"K >= 2 classes; got \(2, 1\)"),
        (np.array([0, 5]), np.eye(2), 1, "class index 5; indices must be in 0..1"),
        (np.array([0, 1]), np.array([[0.5, 0.6], [0, 1]]), 1, r"row 0 is \[0.5, 0.6\]"),
        (np.array([0, 1]), np.array([[1.5, -0.5], [0, 1]]), 1, "non-negative"),
        (
            np.array([0, 1]),
            np.eye(2),
            2,
            "positive must be 0 or 1 for two classes; got 2",
        ),
        (np.array([0, 1]), np.eye(3)[:2], 1, "positive is for two classes only; got 1"),
        (np.array([], dtype=int), np.zeros((0, 2)), 1, "y_true is empty"),
    ],
)
def test_bad_inputs_are_named(
    y: np.ndarray, proba: np.ndarray, positive: int | None, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        compute_metrics(y, proba, positive=positive)


def test_bad_options_are_named() -> None:
    y, proba = np.array([0, 1]), np.eye(2)
    with pytest.raises(DataError, match="classes has 3 names but proba has 2 columns"):
        unavailable_reasons(y, proba, positive=1, classes=["a", "b", "c"])
    with pytest.raises(DataError, match="num_resamples must be at least 1; got 0"):
        bootstrap_intervals(y, proba, positive=1, num_resamples=0)
    with pytest.raises(DataError, match="level must be between 0 and 1"):
        bootstrap_intervals(y, proba, positive=1, level=95)
    with pytest.raises(DataError, match="metric 'val_f1' is not one of accuracy"):
        paired_bootstrap(y, proba, proba, metric="val_f1")
    with pytest.raises(DataError, match=r"same shape; got \(2, 2\) and \(2, 3\)"):
        paired_bootstrap(y, proba, np.eye(3)[:2])


def test_float32_rows_rounded_off_one_are_accepted_quietly() -> None:
    proba = np.array([[0.7001, 0.3], [0.2, 0.8]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = compute_metrics(np.array([0, 1]), proba, positive=1)
    assert metrics["accuracy"] == 1.0


@pytest.mark.parametrize("seed", [1, 9])
def test_no_interval_leaves_out_its_own_estimate(seed: int) -> None:
    # Calibrated predictions of 10 classes on 120 images: the case where the
    # resampled ECE lay wholly above the estimate.
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(120, 10)) * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(10, p=row) for row in proba])
    point = compute_metrics(y, proba, positive=None)
    intervals = bootstrap_intervals(y, proba, positive=None)
    for name, interval in intervals.items():
        value = point[name]
        assert interval is None or value is None or interval[0] <= value <= interval[1]
    assert intervals["accuracy"] is not None
