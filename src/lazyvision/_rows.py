"""Leaderboard rows: their keys and statuses, their order, the limits that exclude
them, and the tie and Pareto marks.

Rows are the flat dicts the runner writes; :mod:`lazyvision.leaderboard` describes
them and re-exports what callers use from here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

import numpy as np

from lazyvision.errors import DataError
from lazyvision.metrics import METRICS, higher_is_better, paired_bootstrap

# The name users see, and the tests capture, from before this module was split off.
logger = logging.getLogger("lazyvision.leaderboard")

# Rows from DataFrame.to_dict("records") are typed with Hashable keys.
RowT = TypeVar("RowT", bound=Mapping[Any, Any])

SPLIT_NAMES = ("val", "test")
#: The sort metric by default, and the quality judged when sorting by another key.
DEFAULT_SORT = "val_balanced_accuracy"
#: Summaries of a metric over repeated validation splits, as row-key suffixes.
REPEAT_SUFFIXES = ("_mean", "_std", "_min", "_max")
# Costs: a smaller value is better when sorting or drawing the Pareto front.
_LOWER_IS_BETTER_COLUMNS = frozenset(
    {
        "latency_ms",
        "extract_seconds",
        "head_fit_seconds",
        "num_params",
        "macs_per_image",
    }
)
#: The "speed_source" of a row whose speed an earlier run timed
#: (``features.EARLIER_RUN``), not "this run".
EARLIER_SPEED = "earlier run"
EXCLUDED = "excluded"
#: The status of a backbone that Ctrl-C stopped, or kept from starting.
INTERRUPTED = "interrupted"


def sort_rows(rows: Sequence[RowT], *, metric: str) -> list[RowT]:
    """Ok rows best first by ``metric``, then excluded rows, then failed rows.

    ``metric`` is a row key ("val_f1", "images_per_second") or a bare metric name,
    read as its val column. log_loss, ece and costs (seconds, parameters) sort
    ascending, everything else descending; equal values keep model-name order. Ok
    rows without the metric follow the ok rows that have it; rows excluded by a
    limit (see :func:`apply_limits`) are ordered the same way among themselves.

    Example:
        >>> rows = [{"model": "a", "status": "ok", "val_log_loss": 0.4},
        ...         {"model": "b", "status": "ok", "val_log_loss": 0.2}]
        >>> [row["model"] for row in sort_rows(rows, metric="log_loss")]
        ['b', 'a']
    """
    key = row_key(metric)
    sign = -1.0 if _higher_is_better(key) else 1.0

    def order(row: RowT) -> tuple[int, float, str]:
        name = str(row.get("model", ""))
        group = 0 if is_ok(row) else 2 if _is_excluded(row) else 4
        if group == 4:
            return (group, 0.0, name)
        value = to_number(row.get(key))
        return (group + 1, 0.0, name) if value is None else (group, sign * value, name)

    return sorted(rows, key=order)


def apply_limits(
    rows: Sequence[MutableMapping[str, Any]],
    *,
    max_latency_ms: float | None = None,
    max_params: float | None = None,
) -> None:
    """Set status "excluded", with the reason, on ok rows over a limit.

    Excluded rows keep their values but are never ranked, marked as tied or put
    on the Pareto front. A row whose latency or parameter count is unknown is
    kept, with a warning, since it cannot be shown to break the limit.

    Args:
        rows: Leaderboard rows, changed in place.
        max_latency_ms: Largest allowed ``latency_ms`` (per image), or None.
        max_params: Largest allowed ``num_params``, or None.

    Raises:
        DataError: A limit is negative or not a number.

    Example:
        >>> rows = [{"model": "big", "status": "ok", "latency_ms": 12.34},
        ...         {"model": "small", "status": "ok", "latency_ms": 4.0}]
        >>> apply_limits(rows, max_latency_ms=10)
        >>> [(row["status"], row.get("reason")) for row in rows]
        [('excluded', 'latency 12.34 ms > 10 ms limit'), ('ok', None)]
    """
    limits = [
        ("latency_ms", "max_latency_ms", max_latency_ms),
        ("num_params", "max_params", max_params),
    ]
    for _, argument, limit in limits:
        if limit is not None and not (to_number(limit) is not None and limit >= 0):
            raise DataError(
                f"{argument} must be a number of 0 or more, or None; got {limit!r}"
            )
    for row in rows:
        if not is_ok(row):
            continue
        reasons = []
        for key, _, limit in limits:
            if limit is None:
                continue
            value = to_number(row.get(key))
            if value is None:
                logger.warning(
                    "%s: %s unknown, so not checked against its limit",
                    row.get("model"),
                    key,
                )
            elif value > limit:
                reason = _limit_reason(key, value, float(limit))
                if key == "latency_ms" and row.get("speed_source") == EARLIER_SPEED:
                    reason += " (timed by an earlier run)"
                reasons.append(reason)
        if reasons:
            row["status"] = EXCLUDED
            row["reason"] = "; ".join(reasons)
            logger.info("%s excluded: %s", row.get("model"), row["reason"])


def _limit_reason(key: str, value: float, limit: float) -> str:
    if key == "latency_ms":
        return f"latency {value:.4g} ms > {limit:g} ms limit"
    shown, allowed = _short_count(value), _short_count(limit)
    if shown == allowed:  # too close to tell apart in three digits
        shown, allowed = f"{value:,.0f}", f"{limit:,.0f}"
    return f"{shown} parameters > {allowed} limit"


def _short_count(number: float) -> str:
    """11689512 -> "11.7M", 50000000 -> "50M": three significant digits at most."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= size:
            digits = f"{number / size:.3g}"
            # 999.95M rounds to "1e+03"; the plain count reads better.
            return f"{number:,.0f}" if "e" in digits else digits + suffix
    return f"{number:.0f}"


def mark_ties(
    rows: Sequence[MutableMapping[str, Any]],
    *,
    metric: str,
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]],
    positive: int | None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> None:
    """Set ``row["tied_with_best"]``: statistically indistinguishable from the best.

    The best row is the first of ``sort_rows`` that has predictions. Every other
    ok row with predictions is compared with it by ``paired_bootstrap`` on the
    same images; the row is tied when the interval of the difference contains 0,
    and always when its probabilities equal the best row's. The best row itself
    gets False (it is the reference, shown at rank 1), as do failed rows and rows
    without predictions. A row whose comparison cannot be told (the metric is
    undefined on too many resamples, as when val has a class with one or two
    images) gets None: unknown, not "worse".

    Args:
        rows: Leaderboard rows, changed in place.
        metric: Row key of the compared metric, e.g. "val_balanced_accuracy".
        predictions: Per model name, (class indices, probabilities) on that split.
        positive: Positive class index for two classes, else None.
        num_resamples: Bootstrap resamples per comparison.
        seed: Seed of the resamples, the same for every comparison.

    Example:
        >>> y = np.array([0, 1] * 20)
        >>> proba = np.eye(2)[y] * 0.8 + 0.1
        >>> rows = [{"model": m, "status": "ok", "val_balanced_accuracy": 1.0}
        ...         for m in ("a", "b")]
        >>> mark_ties(rows, metric="val_balanced_accuracy",
        ...           predictions={"a": (y, proba), "b": (y, proba)}, positive=1)
        >>> [row["tied_with_best"] for row in rows]
        [False, True]
    """
    key = row_key(metric)
    name = key.partition("_")[2]
    if name not in METRICS:
        raise DataError(
            f"metric {metric!r} is not a split metric; use e.g. "
            f"'val_balanced_accuracy' (metrics: {', '.join(METRICS)})"
        )
    for row in rows:
        row["tied_with_best"] = False
    compared = [
        row
        for row in sort_rows(rows, metric=key)
        if is_ok(row) and to_number(row.get(key)) is not None
    ]
    missing = [
        str(row.get("model")) for row in compared if row["model"] not in predictions
    ]
    if missing:
        logger.warning("no predictions for %s; not marked as ties", ", ".join(missing))
    compared = [row for row in compared if row["model"] in predictions]
    if not compared:
        return

    best = compared[0]
    y_best, proba_best = predictions[best["model"]]
    for row in compared[1:]:
        y, proba = predictions[row["model"]]
        if not np.array_equal(y, y_best):
            raise DataError(
                f"predictions for {row['model']!r} are on other images than for "
                f"{best['model']!r}; ties need the same images in the same order"
            )
        if np.array_equal(proba, proba_best):
            row["tied_with_best"] = True  # every resample would differ by 0
            continue
        comparison = paired_bootstrap(
            y_best,
            proba_best,
            proba,
            metric=name,
            positive=positive,
            num_resamples=num_resamples,
            seed=seed,
        )
        row["tied_with_best"] = comparison.tied
        if comparison.tied is None:
            logger.info(
                "%s: cannot tell whether tied with %s: %s",
                row["model"],
                best["model"],
                comparison.reason,
            )


def mark_pareto(
    rows: Sequence[MutableMapping[str, Any]],
    *,
    quality: str,
    speed: str = "images_per_second",
) -> None:
    """Set ``row["pareto"]``: no other ok row is at least as good on both and better.

    Directions follow the columns (log_loss and latency lower is better). Rows
    that failed or lack either value are not on the front; rows equal on both
    values are both on it.

    Example:
        >>> rows = [{"model": "a", "status": "ok", "val_f1": 0.9,
        ...          "images_per_second": 10.0},
        ...         {"model": "b", "status": "ok", "val_f1": 0.8,
        ...          "images_per_second": 5.0}]
        >>> mark_pareto(rows, quality="val_f1")
        >>> [row["pareto"] for row in rows]
        [True, False]
    """
    axes = [row_key(quality), speed]
    signs = [1.0 if _higher_is_better(axis) else -1.0 for axis in axes]
    points: list[tuple[MutableMapping[str, Any], tuple[float, float]]] = []
    for row in rows:
        row["pareto"] = False
        values = [to_number(row.get(axis)) for axis in axes]
        if is_ok(row) and values[0] is not None and values[1] is not None:
            points.append((row, (signs[0] * values[0], signs[1] * values[1])))

    for row, point in points:
        row["pareto"] = not any(_dominates(other, point) for _, other in points)


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a is at least as good as b on both axes and better on one (larger wins)."""
    return a[0] >= b[0] and a[1] >= b[1] and a != b


def row_key(metric: str) -> str:
    return f"val_{metric}" if metric in METRICS else metric


def _higher_is_better(key: str) -> bool:
    return key not in _LOWER_IS_BETTER_COLUMNS and higher_is_better(key)


def is_ok(row: Mapping[str, Any]) -> bool:
    return row.get("status", "ok") == "ok"


def _is_excluded(row: Mapping[str, Any]) -> bool:
    return row.get("status") == EXCLUDED


def is_true(value: Any) -> bool:
    """True for a true boolean only; a NaN from a CSV is not a mark."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def is_tie_unknown(row: Mapping[str, Any]) -> bool:
    """Marked, but the comparison with the best could not be told (None or NaN)."""
    return "tied_with_best" in row and is_missing(row["tied_with_best"])


def is_missing(value: Any) -> bool:
    return value is None or (
        isinstance(value, (float, np.floating)) and math.isnan(value)
    )


def to_number(value: Any) -> float | None:
    """A finite float, or None for None, NaN, text and booleans."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_split_metric(key: str) -> tuple[str, str] | None:
    split, _, metric = key.partition("_")
    return (split, metric) if split in SPLIT_NAMES and metric in METRICS else None
