"""The columns of the leaderboard table: which are drawn, their labels, the text of
each cell, and model names shortened for narrow places.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lazyvision._rows import (
    REPEAT_SUFFIXES,
    SPLIT_NAMES,
    is_missing,
    is_tie_unknown,
    is_true,
    parse_split_metric,
    to_number,
)
from lazyvision.metrics import METRICS

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
TEXT_COLUMNS = frozenset(
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
MISSING = "–"
TIE_MARK = "="
UNKNOWN_TIE_MARK = "?"
PARETO_MARK = "*"
SINGLE_CLASS_MARK = "!"
#: Beside a speed an earlier run timed (see ``EARLIER_SPEED``).
EARLIER_SPEED_MARK = "†"


def _has_value(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    if key == "marks":
        return any(
            not is_missing(row.get(mark))
            for row in rows
            for mark in ("tied_with_best", "pareto")
        ) or any(is_true(row.get("single_class")) for row in rows)
    if key.endswith("_interval"):
        base = key.removesuffix("_interval")
        return any(to_number(row.get(f"{base}_low")) is not None for row in rows)
    if key.endswith(("_spread", "_range")):
        base = key.rsplit("_", 1)[0]
        return any(to_number(row.get(f"{base}_mean")) is not None for row in rows)
    return any(not is_missing(row.get(key)) for row in rows)


def choose_keys(
    rows: Sequence[Mapping[str, Any]], sort_key: str, wide: bool
) -> list[str]:
    keys = list(WIDE_COLUMNS if wide else KEY_COLUMNS)
    if wide:
        keys.extend(_extra_keys(rows))
    if sort_key not in keys:
        keys.insert(keys.index("model") + 1, sort_key)
    chosen = []
    for key in keys:
        if parse_split_metric(key) is not None and (wide or key == sort_key):
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
                summary and parse_split_metric(key.rsplit("_", 1)[0])
            ):
                extra[key] = None
    return list(extra)


def column_label(key: str) -> tuple[str, str]:
    if key.endswith("_interval"):
        return ("", "95% CI")
    if key.endswith("_spread"):
        return ("splits", "mean±std")
    if key.endswith("_range"):
        return ("splits", "min..max")
    split_metric = parse_split_metric(key)
    if split_metric is not None:
        return (split_metric[0], _METRIC_LABELS[split_metric[1]])
    return _LABELS.get(key, ("", key))


def legend_label(key: str) -> str:
    return " ".join(part for part in column_label(key) if part)


def cell_text(key: str, row: Mapping[str, Any], rank: int | None) -> str:
    if key == "rank":
        return "" if rank is None else str(rank)
    if key == "marks":
        tie = TIE_MARK if is_true(row.get("tied_with_best")) else " "
        if rank != 1 and is_tie_unknown(row):  # the best is the reference
            tie = UNKNOWN_TIE_MARK
        pareto = PARETO_MARK if is_true(row.get("pareto")) else " "
        single = SINGLE_CLASS_MARK if is_true(row.get("single_class")) else ""
        return (tie + pareto + single).rstrip()
    if key.endswith("_interval"):
        base = key.removesuffix("_interval")
        low, high = (
            to_number(row.get(f"{base}_low")),
            to_number(row.get(f"{base}_high")),
        )
        return MISSING if low is None or high is None else f"[{low:.3f},{high:.3f}]"
    if key.endswith(("_spread", "_range")):
        return _summary_cell(key, row)
    value = row.get(key)
    if key in TEXT_COLUMNS or isinstance(value, str):
        return MISSING if is_missing(value) else re.sub(r"\s+", " ", str(value)).strip()
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    number = to_number(value)
    if number is None:
        return MISSING
    if parse_split_metric(key) is not None:
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
    first, second = (to_number(row.get(f"{base}_{suffix}")) for suffix in suffixes)
    if first is None:
        return MISSING
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
        return shorten_middle(base, size - len(suffix) - 1) + at + suffix
    return shorten_middle(name, size)


def shorten_middle(text: str, size: int) -> str:
    """Keep the start and the distinguishing end, joined by an ellipsis."""
    if len(text) <= size:
        return text
    head = (size - 1) // 2
    return text[:head] + "…" + text[len(text) - (size - 1 - head) :]
