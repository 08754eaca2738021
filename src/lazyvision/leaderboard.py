"""The leaderboard: row order, limits, the tie and Pareto marks, the terminal table.

Rows are the flat dicts the runner writes (see ``leaderboard.csv``): a model name,
a status ("ok", "excluded", "failed", "timed out"), timings and "{split}_{metric}"
values with their "_low" / "_high" bootstrap bounds, and with repeated validation
splits their "_mean", "_std", "_min" and "_max". Missing values may be None or NaN.

The code lives in three private modules, re-exported here: the rows, their order,
limits and marks in ``_rows``; the table's columns, labels and cell text in
``_columns``; the terminal table and its legend in ``_table``.

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

from lazyvision._columns import (
    EARLIER_SPEED_MARK,
    KEY_COLUMNS,
    PARETO_MARK,
    SINGLE_CLASS_MARK,
    TIE_MARK,
    UNKNOWN_TIE_MARK,
    WIDE_COLUMNS,
    shorten_middle,
    shorten_name,
)
from lazyvision._rows import (
    DEFAULT_SORT,
    EARLIER_SPEED,
    EXCLUDED,
    INTERRUPTED,
    REPEAT_SUFFIXES,
    SPLIT_NAMES,
    RowT,
    apply_limits,
    mark_pareto,
    mark_ties,
    sort_rows,
)
from lazyvision._table import format_leaderboard

__all__ = [
    "DEFAULT_SORT",
    "EARLIER_SPEED",
    "EARLIER_SPEED_MARK",
    "EXCLUDED",
    "INTERRUPTED",
    "KEY_COLUMNS",
    "PARETO_MARK",
    "REPEAT_SUFFIXES",
    "SINGLE_CLASS_MARK",
    "SPLIT_NAMES",
    "TIE_MARK",
    "UNKNOWN_TIE_MARK",
    "WIDE_COLUMNS",
    "RowT",
    "apply_limits",
    "format_leaderboard",
    "mark_pareto",
    "mark_ties",
    "shorten_name",
    "sort_rows",
]

# The name the name-shortening helper had here, which tests import.
_shorten_middle = shorten_middle
