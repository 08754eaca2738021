"""The leaderboard as terminal text: the table fitted to a width, the rows that did
not rank, and the legend under it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from lazyvision._columns import (
    EARLIER_SPEED_MARK,
    MISSING,
    PARETO_MARK,
    SINGLE_CLASS_MARK,
    TEXT_COLUMNS,
    TIE_MARK,
    UNKNOWN_TIE_MARK,
    cell_text,
    choose_keys,
    column_label,
    legend_label,
)
from lazyvision._rows import (
    DEFAULT_SORT,
    EARLIER_SPEED,
    is_missing,
    is_ok,
    is_tie_unknown,
    is_true,
    parse_split_metric,
    row_key,
    sort_rows,
    to_number,
)

_GAP = "  "
# The key columns a narrow terminal does without, in this order; model names are
# never shortened, as a cut name can read as another backbone's.
_LEFT_OUT_FIRST = (
    "test_balanced_accuracy",
    "val_roc_auc",
    "val_f1",
    "val_balanced_accuracy",
)
_SPEED_COLUMNS = ("images_per_second", "latency_ms")


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
    sort_key = row_key(sort_metric)
    ordered = sort_rows(rows, metric=sort_key)
    keys = choose_keys(ordered, sort_key, wide)
    ranks = [index + 1 if is_ok(row) else None for index, row in enumerate(ordered)]
    cells = [
        [cell_text(key, row, rank) for key in keys]
        for row, rank in zip(ordered, ranks, strict=True)
    ]
    earlier = _mark_earlier_speeds(ordered, keys, cells, wide)
    labels = [column_label(key) for key in keys]
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
            part.ljust(size) if key in TEXT_COLUMNS else part.rjust(size)
            for key, part, size in zip(keys, parts, widths, strict=True)
        ]
        return _GAP.join(aligned).rstrip()

    lines = []
    if any(top for top, _ in labels):
        lines.append(join([top for top, _ in labels]))
    lines.append(join([bottom for _, bottom in labels]))
    lines.append("-" * (sum(widths) + len(_GAP) * (len(widths) - 1)))
    for row, line in zip(ordered, cells, strict=True):
        if wide or is_ok(row):
            lines.append(join(line))
        else:
            lines.append(_failed_line(keys, widths, line, row, width))
    # Ties and the Pareto front are judged on a quality metric: the sort metric
    # when it is one, else the default (img/s, say, has no ties to resample).
    quality = sort_key if parse_split_metric(sort_key) else DEFAULT_SORT
    legend = _legend(ordered, quality, keys, width)
    if earlier:
        legend = [*(legend or [""]), _EARLIER_SPEED_NOTE]
    if left_out:
        names = ", ".join(legend_label(key) for key in left_out)
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
        (wide or is_ok(row)) and row.get("speed_source") == EARLIER_SPEED
        for row in rows
    ]
    if not columns or not any(marked):
        return False
    for mark, line in zip(marked, cells, strict=True):
        for column in columns:
            shown = mark and line[column] != MISSING
            line[column] += EARLIER_SPEED_MARK if shown else " "
    return True


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
    reason = cell_text("reason", row, None)
    text = status if reason == MISSING else f"{status}: {reason}"
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
    label = legend_label(sort_key)
    legend = [""]
    # Only the marks the table shows are explained.
    if any(is_true(row.get("tied_with_best")) for row in rows):
        legend.append(
            f"{TIE_MARK} tied with the best on {label} (paired bootstrap, 95%)"
        )
    if any(is_ok(row) and is_tie_unknown(row) for row in rows[1:]):
        legend.append(
            f"{UNKNOWN_TIE_MARK} cannot tell whether tied with the best: too few val "
            "images per class to resample"
        )
    if any(is_true(row.get("pareto")) for row in rows):
        legend.append(
            f"{PARETO_MARK} Pareto front: no other model is both better on {label} "
            "and faster"
        )
    if any(is_true(row.get("single_class")) for row in rows):
        legend.append(
            f"{SINGLE_CLASS_MARK} predicts the same class for every val image: "
            "the head learned nothing"
        )
    summaries = [key for key in keys if key.endswith("_spread")]
    if summaries:
        repeats = max(
            (to_number(row.get("num_repeats")) or 0 for row in rows), default=0
        )
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
        if is_ok(row)
        and not is_missing(row.get("precision"))
        and to_number(row.get("images_per_second")) is not None
    }
    if not precisions:
        return None
    speed = "img/s: images embedded per second after the first batch"
    counts = Counter(precisions.values())
    # On a tie, the networks' precision: raw pixels are the exception to name.
    networks = Counter(
        str(row["precision"])
        for row in rows
        if row.get("model") in precisions and (to_number(row.get("num_params")) or 0)
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
