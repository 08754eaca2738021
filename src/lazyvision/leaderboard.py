"""The leaderboard: row order, limits, the tie and Pareto marks, the terminal table.

Rows are the flat dicts the runner writes (see ``leaderboard.csv``): a model name,
a status ("ok", "excluded", "failed", "timed out"), timings and "{split}_{metric}"
values with their "_low" / "_high" bootstrap bounds, and with repeated validation
splits their "_mean", "_std", "_min" and "_max". Missing values may be None or NaN.

Example:
    >>> rows = [
    ...     {"model": "resnet18", "status": "ok", "val_balanced_accuracy": 0.91,
    ...      "images_per_second": 850.0, "num_params": 11_200_000},
    ...     {"model": "pixels", "status": "ok", "val_balanced_accuracy": 0.62,
    ...      "images_per_second": 9100.0, "num_params": 0},
    ... ]
    >>> mark_pareto(rows, quality="val_balanced_accuracy")
    >>> [row["pareto"] for row in rows]
    [True, True]
    >>> print(format_leaderboard(rows, sort_metric="val_balanced_accuracy"))
    ... # doctest: +NORMALIZE_WHITESPACE
                     val          val  val
    #  model     bal.acc  95% CI   F1  AUC  img/s  params
    ---------------------------------------------------------
    1  resnet18    0.910       –    –    –    850   11.2M   *
    2  pixels      0.620       –    –    –   9100       0   *
    <BLANKLINE>
    * Pareto front: no other model is both better on val bal.acc and faster
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

import numpy as np

from lazyvision.errors import DataError
from lazyvision.metrics import METRICS, higher_is_better, paired_bootstrap

logger = logging.getLogger(__name__)

# Rows from DataFrame.to_dict("records") are typed with Hashable keys.
RowT = TypeVar("RowT", bound=Mapping[Any, Any])

SPLIT_NAMES = ("val", "test")
#: The sort metric by default, and the quality judged when sorting by another key.
DEFAULT_SORT = "val_balanced_accuracy"
# "rank", "model", "marks" and "<key>_interval" are drawn by the table itself; the
# sort metric is added after "model" when it is not listed.
KEY_COLUMNS = (
    "rank",
    "model",
    "val_balanced_accuracy",
    "val_f1",
    "val_roc_auc",
    "test_balanced_accuracy",
    "images_per_second",
    "num_params",
    "marks",
)
WIDE_COLUMNS = (
    "rank",
    "model",
    *(f"{split}_{metric}" for split in SPLIT_NAMES for metric in METRICS),
    "images_per_second",
    "latency_ms",
    "speed_source",
    "num_timed",
    "extract_seconds",
    "head_fit_seconds",
    "num_params",
    # Beside the figures they mark, where the key table has them.
    "marks",
    "macs_per_image",
    "embedding_size",
    "chosen_C",
    "num_train",
    "num_val",
    "num_test",
    "single_class",
    "input_size",
    "precision",
    "architecture",
    "weights_source",
    "preprocessing",
    "num_repeats",
    "status",
    "reason",
)
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
_METRIC_LABELS = {
    "accuracy": "acc",
    "balanced_accuracy": "bal.acc",
    "f1": "F1",
    "roc_auc": "AUC",
    "log_loss": "log-loss",
    "pr_auc": "PR-AUC",
    "ece": "ECE",
}
_LABELS = {
    "rank": ("", "#"),
    "model": ("", "model"),
    "marks": ("", ""),
    "images_per_second": ("", "img/s"),
    "latency_ms": ("latency", "ms"),
    "speed_source": ("speed", "timed by"),
    "num_timed": ("n", "timed"),
    "extract_seconds": ("extract", "s"),
    "head_fit_seconds": ("fit", "s"),
    "num_params": ("", "params"),
    "macs_per_image": ("", "MACs"),
    "embedding_size": ("", "dim"),
    "chosen_C": ("", "C"),
    "num_train": ("n", "train"),
    "num_val": ("n", "val"),
    "num_test": ("n", "test"),
    "single_class": ("single", "class"),
    "num_repeats": ("", "repeats"),
    "input_size": ("input", "size"),
    "weights_source": ("", "weights"),
}
_TEXT_COLUMNS = frozenset(
    {
        "model",
        "marks",
        "input_size",
        "precision",
        "speed_source",
        "architecture",
        "weights_source",
        "preprocessing",
        "status",
        "reason",
    }
)
_GAP = "  "
_MISSING = "–"
# The key columns a narrow terminal does without, in this order; model names are
# never shortened, as a cut name can read as another backbone's.
_LEFT_OUT_FIRST = (
    "test_balanced_accuracy",
    "val_roc_auc",
    "val_f1",
    "val_balanced_accuracy",
)
TIE_MARK = "="
UNKNOWN_TIE_MARK = "?"
PARETO_MARK = "*"
SINGLE_CLASS_MARK = "!"
#: Beside a speed an earlier run timed: the row's "speed_source" is this value
#: (``features.EARLIER_RUN``), not "this run".
EARLIER_SPEED_MARK = "†"
EARLIER_SPEED = "earlier run"
_SPEED_COLUMNS = ("images_per_second", "latency_ms")
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
    key = _row_key(metric)
    sign = -1.0 if _higher_is_better(key) else 1.0

    def order(row: RowT) -> tuple[int, float, str]:
        name = str(row.get("model", ""))
        group = 0 if _is_ok(row) else 2 if _is_excluded(row) else 4
        if group == 4:
            return (group, 0.0, name)
        value = _number(row.get(key))
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
        if limit is not None and not (_number(limit) is not None and limit >= 0):
            raise DataError(
                f"{argument} must be a number of 0 or more, or None; got {limit!r}"
            )
    for row in rows:
        if not _is_ok(row):
            continue
        reasons = []
        for key, _, limit in limits:
            if limit is None:
                continue
            value = _number(row.get(key))
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
    key = _row_key(metric)
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
        if _is_ok(row) and _number(row.get(key)) is not None
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
    axes = [_row_key(quality), speed]
    signs = [1.0 if _higher_is_better(axis) else -1.0 for axis in axes]
    points: list[tuple[MutableMapping[str, Any], tuple[float, float]]] = []
    for row in rows:
        row["pareto"] = False
        values = [_number(row.get(axis)) for axis in axes]
        if _is_ok(row) and values[0] is not None and values[1] is not None:
            points.append((row, (signs[0] * values[0], signs[1] * values[1])))

    for row, point in points:
        row["pareto"] = not any(_dominates(other, point) for _, other in points)


def format_leaderboard(
    rows: Sequence[Mapping[Any, Any]],
    *,
    sort_metric: str,
    wide: bool = False,
    width: int = 100,
) -> str:
    """The leaderboard as aligned plain text, with a legend for the marks.

    Rows are sorted with ``sort_rows``; the sort metric carries its 95% bootstrap
    interval and, when the validation split was redrawn, its mean ± std over the
    splits. By default the ``KEY_COLUMNS`` are drawn within ``width`` columns:
    model names are never shortened, so when the table is wider the metric
    columns other than the sort metric are left out, test bal.acc first, and the
    legend names them. Excluded and failed rows show their status and reason
    across the metric columns, below the ranked rows. ``wide`` draws
    ``WIDE_COLUMNS`` and any other row keys with no width limit, leaving out
    columns no row has a value for, and adds min..max over the splits.

    Args:
        rows: Leaderboard rows.
        sort_metric: Row key to sort by, e.g. "val_balanced_accuracy".
        wide: Draw every column.
        width: Terminal width the default table must fit.

    Example:
        >>> rows = [{"model": "resnet18", "status": "failed",
        ...          "reason": "out of memory"}]
        >>> print(format_leaderboard(rows, sort_metric="val_f1"))
        ... # doctest: +NORMALIZE_WHITESPACE
                         val  val          val
        #  model     bal.acc   F1  95% CI  AUC  img/s  params
        -----------------------------------------------------
           resnet18  failed: out of memory
    """
    sort_key = _row_key(sort_metric)
    ordered = sort_rows(rows, metric=sort_key)
    keys = _choose_keys(ordered, sort_key, wide)
    ranks = [index + 1 if _is_ok(row) else None for index, row in enumerate(ordered)]
    cells = [
        [_cell(key, row, rank) for key in keys]
        for row, rank in zip(ordered, ranks, strict=True)
    ]
    earlier = _mark_earlier_speeds(ordered, keys, cells, wide)
    labels = [_label(key) for key in keys]
    widths = [
        max(len(labels[i][0]), len(labels[i][1]), *(len(line[i]) for line in cells))
        for i in range(len(keys))
    ]
    left_out = [] if wide else _fit_width(keys, widths, width, sort_key)
    for key in left_out:
        index = keys.index(key)
        del keys[index], labels[index], widths[index]
        for line in cells:
            del line[index]

    def join(parts: Sequence[str]) -> str:
        aligned = [
            part.ljust(size) if key in _TEXT_COLUMNS else part.rjust(size)
            for key, part, size in zip(keys, parts, widths, strict=True)
        ]
        return _GAP.join(aligned).rstrip()

    lines = []
    if any(top for top, _ in labels):
        lines.append(join([top for top, _ in labels]))
    lines.append(join([bottom for _, bottom in labels]))
    lines.append("-" * (sum(widths) + len(_GAP) * (len(widths) - 1)))
    for row, line in zip(ordered, cells, strict=True):
        if wide or _is_ok(row):
            lines.append(join(line))
        else:
            lines.append(_failed_line(keys, widths, line, row, width))
    # Ties and the Pareto front are judged on a quality metric: the sort metric
    # when it is one, else the default (img/s, say, has no ties to resample).
    quality = sort_key if _split_metric(sort_key) else DEFAULT_SORT
    legend = _legend(ordered, quality, keys, width)
    if earlier:
        legend = [*(legend or [""]), _EARLIER_SPEED_NOTE]
    if left_out:
        names = ", ".join(_legend_label(key) for key in left_out)
        note = f"not shown, to fit {width} columns: {names}; --wide shows them"
        legend = [*(legend or [""]), note]
    lines.extend(legend)
    return "\n".join(lines)


_EARLIER_SPEED_NOTE = (
    f"{EARLIER_SPEED_MARK} timed by an earlier run with the same batch size, device, "
    "precision and threads"
)


def _mark_earlier_speeds(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    cells: list[list[str]],
    wide: bool,
) -> bool:
    """Puts :data:`EARLIER_SPEED_MARK` after the speeds an earlier run timed, and a
    space after the others so the digits stay aligned; says whether any was."""
    columns = [keys.index(key) for key in _SPEED_COLUMNS if key in keys]
    marked = [
        (wide or _is_ok(row)) and row.get("speed_source") == EARLIER_SPEED
        for row in rows
    ]
    if not columns or not any(marked):
        return False
    for mark, line in zip(marked, cells, strict=True):
        for column in columns:
            shown = mark and line[column] != _MISSING
            line[column] += EARLIER_SPEED_MARK if shown else " "
    return True


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a is at least as good as b on both axes and better on one (larger wins)."""
    return a[0] >= b[0] and a[1] >= b[1] and a != b


def _row_key(metric: str) -> str:
    return f"val_{metric}" if metric in METRICS else metric


def _higher_is_better(key: str) -> bool:
    return key not in _LOWER_IS_BETTER_COLUMNS and higher_is_better(key)


def _is_ok(row: Mapping[str, Any]) -> bool:
    return row.get("status", "ok") == "ok"


def _is_excluded(row: Mapping[str, Any]) -> bool:
    return row.get("status") == EXCLUDED


def _flag(value: Any) -> bool:
    """True for a true boolean only; a NaN from a CSV is not a mark."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _tie_unknown(row: Mapping[str, Any]) -> bool:
    """Marked, but the comparison with the best could not be told (None or NaN)."""
    return "tied_with_best" in row and _is_missing(row["tied_with_best"])


def _is_missing(value: Any) -> bool:
    return value is None or (
        isinstance(value, (float, np.floating)) and math.isnan(value)
    )


def _number(value: Any) -> float | None:
    """A finite float, or None for None, NaN, text and booleans."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _split_metric(key: str) -> tuple[str, str] | None:
    split, _, metric = key.partition("_")
    return (split, metric) if split in SPLIT_NAMES and metric in METRICS else None


def _has_value(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    if key == "marks":
        return any(
            not _is_missing(row.get(mark))
            for row in rows
            for mark in ("tied_with_best", "pareto")
        ) or any(_flag(row.get("single_class")) for row in rows)
    if key.endswith("_interval"):
        base = key.removesuffix("_interval")
        return any(_number(row.get(f"{base}_low")) is not None for row in rows)
    if key.endswith(("_spread", "_range")):
        base = key.rsplit("_", 1)[0]
        return any(_number(row.get(f"{base}_mean")) is not None for row in rows)
    return any(not _is_missing(row.get(key)) for row in rows)


def _choose_keys(
    rows: Sequence[Mapping[str, Any]], sort_key: str, wide: bool
) -> list[str]:
    keys = list(WIDE_COLUMNS if wide else KEY_COLUMNS)
    if wide:
        keys.extend(_extra_keys(rows))
    if sort_key not in keys:
        keys.insert(keys.index("model") + 1, sort_key)
    chosen = []
    for key in keys:
        if _split_metric(key) is not None and (wide or key == sort_key):
            candidates = [key, f"{key}_interval", f"{key}_spread"]
            candidates += [f"{key}_range"] if wide else []
        else:
            candidates = [key]
        for candidate in candidates:
            required = candidate in ("rank", "model", sort_key, f"{sort_key}_interval")
            optional = (
                wide
                or candidate.startswith("test_")
                or candidate.endswith(("_spread", "_range"))
                or candidate == "marks"
            )
            if required or not optional or _has_value(rows, candidate):
                chosen.append(candidate)
    return chosen


def _extra_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Row keys no column names, such as "val_unavailable", in first-seen order."""
    drawn = {*WIDE_COLUMNS, "tied_with_best", "pareto"}
    extra: dict[str, None] = {}
    for row in rows:
        for key in row:
            summary = key.endswith(("_low", "_high", *REPEAT_SUFFIXES))
            if key not in drawn and not (
                summary and _split_metric(key.rsplit("_", 1)[0])
            ):
                extra[key] = None
    return list(extra)


def _label(key: str) -> tuple[str, str]:
    if key.endswith("_interval"):
        return ("", "95% CI")
    if key.endswith("_spread"):
        return ("splits", "mean±std")
    if key.endswith("_range"):
        return ("splits", "min..max")
    split_metric = _split_metric(key)
    if split_metric is not None:
        return (split_metric[0], _METRIC_LABELS[split_metric[1]])
    return _LABELS.get(key, ("", key))


def _legend_label(key: str) -> str:
    return " ".join(part for part in _label(key) if part)


def _cell(key: str, row: Mapping[str, Any], rank: int | None) -> str:
    if key == "rank":
        return "" if rank is None else str(rank)
    if key == "marks":
        tie = TIE_MARK if _flag(row.get("tied_with_best")) else " "
        if rank != 1 and _tie_unknown(row):  # the best is the reference
            tie = UNKNOWN_TIE_MARK
        pareto = PARETO_MARK if _flag(row.get("pareto")) else " "
        single = SINGLE_CLASS_MARK if _flag(row.get("single_class")) else ""
        return (tie + pareto + single).rstrip()
    if key.endswith("_interval"):
        base = key.removesuffix("_interval")
        low, high = _number(row.get(f"{base}_low")), _number(row.get(f"{base}_high"))
        return _MISSING if low is None or high is None else f"[{low:.3f},{high:.3f}]"
    if key.endswith(("_spread", "_range")):
        return _summary_cell(key, row)
    value = row.get(key)
    if key in _TEXT_COLUMNS or isinstance(value, str):
        return (
            _MISSING if _is_missing(value) else re.sub(r"\s+", " ", str(value)).strip()
        )
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    number = _number(value)
    if number is None:
        return _MISSING
    if _split_metric(key) is not None:
        return f"{number:.3f}"
    if key in ("num_params", "macs_per_image"):
        return _si(number, billions="B" if key == "num_params" else "G")
    if key == "chosen_C":
        return f"{number:.3g}"
    if number.is_integer() and key.startswith(("num_", "embedding")):
        return str(int(number))
    return _rate(number)


def _summary_cell(key: str, row: Mapping[str, Any]) -> str:
    """ "mean±std" or "min..max" of a metric over the repeated validation splits."""
    base, kind = key.rsplit("_", 1)
    suffixes = ("mean", "std") if kind == "spread" else ("min", "max")
    first, second = (_number(row.get(f"{base}_{suffix}")) for suffix in suffixes)
    if first is None:
        return _MISSING
    if second is None:
        return f"{first:.3f}"
    return (
        f"{first:.3f}±{second:.3f}"
        if kind == "spread"
        else f"{first:.3f}..{second:.3f}"
    )


def _si(number: float, *, billions: str) -> str:
    """5300000 -> "5.3M"; ``billions`` is "B" for parameters, "G" for MACs."""
    for size, suffix in ((1e12, "T"), (1e9, billions), (1e6, "M"), (1e3, "K")):
        if abs(number) >= size:
            scaled = number / size
            return f"{scaled:.0f}{suffix}" if scaled >= 100 else f"{scaled:.1f}{suffix}"
    return f"{number:.0f}"


def _rate(number: float) -> str:
    if abs(number) >= 100:
        return f"{number:.0f}"
    return f"{number:.1f}" if abs(number) >= 10 else f"{number:.2f}"


def shorten_name(name: str, size: int) -> str:
    """``name`` in at most ``size`` characters, cut in the middle.

    The start and the distinguishing end are kept, and an "@random" suffix (any
    "@" suffix up to half the size) stays whole, so a control never reads as its
    pretrained twin.

    Example:
        >>> shorten_name("tf_efficientnet_lite0@random", 20)
        'tf_eff…_lite0@random'
    """
    if len(name) <= size:
        return name
    base, at, suffix = name.rpartition("@")
    if at and base and len(suffix) + 1 <= size // 2:
        return _shorten_middle(base, size - len(suffix) - 1) + at + suffix
    return _shorten_middle(name, size)


def _shorten_middle(text: str, size: int) -> str:
    """Keep the start and the distinguishing end, joined by an ellipsis."""
    if len(text) <= size:
        return text
    head = (size - 1) // 2
    return text[:head] + "…" + text[len(text) - (size - 1 - head) :]


def _fit_width(
    keys: Sequence[str], widths: Sequence[int], width: int, sort_key: str
) -> list[str]:
    """The metric columns to leave out so the table fits ``width``, if it can."""
    total = sum(widths) + len(_GAP) * (len(keys) - 1)
    left_out = []
    for key in _LEFT_OUT_FIRST:
        if total <= width:
            break
        if key in keys and key != sort_key:
            left_out.append(key)
            total -= widths[keys.index(key)] + len(_GAP)
    return left_out


def _failed_line(
    keys: list[str],
    widths: list[int],
    line: list[str],
    row: Mapping[str, Any],
    width: int,
) -> str:
    """Rank and model, then "status: reason" across the remaining columns, or
    up to ``width`` where the table is narrower."""
    first = keys.index("model") + 1
    span = sum(widths[first:]) + len(_GAP) * (len(keys) - first - 1)
    span = max(span, width - sum(widths[:first]) - len(_GAP) * first)
    status = str(row.get("status", "failed"))
    reason = _cell("reason", row, None)
    text = status if reason == _MISSING else f"{status}: {reason}"
    if len(text) > span:
        text = text[: span - 1] + "…"
    start = _GAP.join(
        part.rjust(size) if key == "rank" else part.ljust(size)
        for key, part, size in zip(keys[:first], line, widths, strict=False)
    )
    return f"{start}{_GAP}{text}".rstrip()


def _legend(
    rows: Sequence[Mapping[str, Any]], sort_key: str, keys: list[str], width: int
) -> list[str]:
    shown = "images_per_second" in keys and "precision" not in keys
    speed = _speed_note(rows, width) if shown else None
    if (
        "marks" not in keys
        and not any(k.endswith("_spread") for k in keys)
        and speed is None
    ):
        return []
    label = _legend_label(sort_key)
    legend = [""]
    # Only the marks the table shows are explained.
    if any(_flag(row.get("tied_with_best")) for row in rows):
        legend.append(
            f"{TIE_MARK} tied with the best on {label} (paired bootstrap, 95%)"
        )
    if any(_is_ok(row) and _tie_unknown(row) for row in rows[1:]):
        legend.append(
            f"{UNKNOWN_TIE_MARK} cannot tell whether tied with the best: too few val "
            "images per class to resample"
        )
    if any(_flag(row.get("pareto")) for row in rows):
        legend.append(
            f"{PARETO_MARK} Pareto front: no other model is both better on {label} "
            "and faster"
        )
    if any(_flag(row.get("single_class")) for row in rows):
        legend.append(
            f"{SINGLE_CLASS_MARK} predicts the same class for every val image: "
            "the head learned nothing"
        )
    summaries = [key for key in keys if key.endswith("_spread")]
    if summaries:
        repeats = max((_number(row.get("num_repeats")) or 0 for row in rows), default=0)
        over = f"{repeats:.0f} redrawn" if repeats else "the redrawn"
        what = label if len(summaries) == 1 else "each val metric"
        legend.append(f"mean±std: {what} over {over} validation splits")
    if speed is not None:
        legend.append(speed)
    return legend


def _speed_note(rows: Sequence[Mapping[str, Any]], width: int) -> str | None:
    """The precision of every img/s shown: the most common one, and the rows in
    another by name while they fit ``width``. ``auto`` picks one per machine,
    bfloat16 runs some CPUs twice as fast as float32, and raw pixels are float32
    whatever the networks ran in."""
    precisions = {
        str(row.get("model")): str(row["precision"])
        for row in rows
        if _is_ok(row)
        and not _is_missing(row.get("precision"))
        and _number(row.get("images_per_second")) is not None
    }
    if not precisions:
        return None
    speed = "img/s: images embedded per second after the first batch"
    counts = Counter(precisions.values())
    # On a tie, the networks' precision: raw pixels are the exception to name.
    networks = Counter(
        str(row["precision"])
        for row in rows
        if row.get("model") in precisions and (_number(row.get("num_params")) or 0)
    )
    usual = max(counts, key=lambda p: (counts[p], networks[p]))
    others = []
    for precision in counts:
        if precision != usual:
            models = [m for m, p in precisions.items() if p == precision]
            others.append(f"{', '.join(models)} in {precision}")
    note = f"{speed}, in {usual}" + (f" ({'; '.join(others)})" if others else "")
    return (
        note if len(note) <= width else f"{speed}, each in its own precision (--wide)"
    )
