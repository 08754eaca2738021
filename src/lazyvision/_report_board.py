"""The report's leaderboard: ranked rows, their marks, and every metric.

Each value stands over its 95% interval in small type, so the table fits a laptop
screen; excluded backbones follow the ranked ones, greyed, with their reason, and
failed ones close the table with theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lazyvision._html import (
    MISSING,
    esc,
    fmt,
    fmt_count,
    fmt_speed,
    html_table,
    is_true,
    metric_name,
    name_cell,
    stacked_interval,
    stacked_spread,
    to_number,
)
from lazyvision._run_folder import RunFolder
from lazyvision.leaderboard import EARLIER_SPEED, EARLIER_SPEED_MARK, EXCLUDED
from lazyvision.metrics import METRICS

#: Val metrics of the table besides the sort metric; every metric is in the details.
BOARD_METRICS = ("f1", "roc_auc", "log_loss", "ece")


def leaderboard_section(run: RunFolder) -> str:
    """The ranked table, its legend, and every metric with its interval."""
    metric = run.metric
    name = esc(metric_name(metric))
    repeats = run.num_repeats
    has_test = any(to_number(row.get(f"test_{metric}")) is not None for row in run.rows)
    spread = repeats > 1 and any(
        to_number(row.get(f"val_{metric}_mean")) is not None for row in run.rows
    )
    # Accuracy and PR AUC are left to the full table below, so the table fits a
    # laptop screen; a metric no backbone has gets no column.
    others = [
        m
        for m in BOARD_METRICS
        if m != metric
        and any(to_number(row.get(f"val_{m}")) is not None for row in run.rows)
    ]
    head = [
        "#",
        "model",
        "marks",
        f"val {name}",
        *([f"val {name} over {repeats} splits"] if spread else []),
        *([f"test {name}"] if has_test else []),
        "images/s",
        "latency ms",
        "params",
        *[f"val {esc(metric_name(m))}" for m in others],
    ]
    body = []
    rank = 0
    for row in run.rows:
        status = row.get("status")
        if status not in ("ok", EXCLUDED):
            reason = f"{esc(status or 'failed')}: {esc(row.get('reason'))}"
            body.append(
                f'<tr class="failed"><td>{MISSING}</td>{name_cell(row.get("model"))}'
                f'<td class="reason" colspan="{len(head) - 2}"><div>{reason}</div>'
                "</td></tr>"
            )
            continue
        cells = [
            stacked_interval(row, f"val_{metric}"),
            *([stacked_spread(row, f"val_{metric}")] if spread else []),
            *([stacked_interval(row, f"test_{metric}")] if has_test else []),
            *(_speed(row, key) for key in ("images_per_second", "latency_ms")),
            fmt_count(row.get("num_params")),
            *[fmt(row.get(f"val_{m}")) for m in others],
        ]
        numbers = "".join(f'<td class="num">{c}</td>' for c in cells)
        if status == EXCLUDED:
            marks = (
                '<span class="badge excluded">excluded</span>'
                f'<div class="why">{esc(row.get("reason"))}</div>'
            )
            body.append(
                f'<tr class="excluded"><td>{MISSING}</td>{name_cell(row.get("model"))}'
                f'<td class="marks">{marks}</td>{numbers}</tr>'
            )
            continue
        rank += 1
        body.append(
            f"<tr><td>{rank}</td>{name_cell(row.get('model'))}"
            f'<td class="marks">{_marks(row, rank)}</td>{numbers}</tr>'
        )
    return (
        html_table(head, body, css="board")
        + _board_legend(run, spread=spread)
        + _full_metrics(run)
    )


def _board_legend(run: RunFolder, *, spread: bool) -> str:
    parts = [
        "Under each value, its 95% bootstrap interval over the images of the split.",
        '<span class="badge tied">tied</span> the paired bootstrap interval of the '
        "difference to the best includes zero: the data cannot tell them apart.",
    ]
    if any(_tie_unknown(row) for row in run.ok_rows[1:]):
        parts.append(
            '<span class="badge unknown">tie?</span> too few val images per class to '
            "resample, so whether it is tied with the best cannot be told."
        )
    parts.append(
        '<span class="badge pareto">Pareto</span> no other backbone is both faster '
        "and better."
    )
    if any(is_true(row.get("single_class")) for row in run.rows):
        parts.append(
            '<span class="badge warn">one class</span> the head predicts the same '
            "class for every val image."
        )
    if spread:
        seed = to_number(run.settings.get("seed"))
        seeds = (
            ""
            if seed is None
            else f" (seeds {seed:.0f}–{seed + run.num_repeats - 1:.0f})"
        )
        parts.append(
            f"Over {run.num_repeats} splits: mean ± std of the val metric over "
            f"{run.num_repeats} stratified draws of val from train{seeds}, each "
            "with the probe refitted; below it, the lowest and highest."
        )
    if any(_timed_earlier(row) for row in run.rows):
        parts.append(
            f"{EARLIER_SPEED_MARK} images/s and latency timed by an earlier run with "
            "the same batch size, device, precision and threads: this run computed "
            "too few images to time them itself."
        )
    if any(row.get("status") == EXCLUDED for row in run.rows):
        parts.append(
            '<span class="badge excluded">excluded</span> over a latency or size '
            "limit of the run: scored, but not ranked or marked."
        )
    return f'<p class="note">{" ".join(parts)}</p>'


def _timed_earlier(row: Mapping[str, Any]) -> bool:
    """The row's speed came from an earlier run, as the terminal table marks it."""
    return row.get("speed_source") == EARLIER_SPEED and (
        to_number(row.get("images_per_second")) is not None
    )


def _speed(row: Mapping[str, Any], key: str) -> str:
    shown = fmt_speed(row.get(key))
    if _timed_earlier(row) and to_number(row.get(key)) is not None:
        return (
            f'{shown}<span title="timed by an earlier run">{EARLIER_SPEED_MARK}</span>'
        )
    return shown


def _tie_unknown(row: Mapping[str, Any]) -> bool:
    """Compared with the best, but the comparison could not be told (null)."""
    return "tied_with_best" in row and row["tied_with_best"] is None


def _marks(row: Mapping[str, Any], rank: int) -> str:
    marks = []
    if rank == 1:
        marks.append('<span class="badge best">best</span>')
    elif is_true(row.get("tied_with_best")):
        marks.append('<span class="badge tied">tied</span>')
    elif _tie_unknown(row):
        marks.append('<span class="badge unknown">tie?</span>')
    if is_true(row.get("pareto")):
        marks.append('<span class="badge pareto">Pareto</span>')
    if is_true(row.get("single_class")):
        marks.append('<span class="badge warn">one class</span>')
    return "".join(marks)


def _full_metrics(run: RunFolder) -> str:
    metrics = [
        m
        for m in METRICS
        if any(
            to_number(row.get(f"{split}_{m}")) is not None
            for row in run.ok_rows
            for split in ("val", "test")
        )
    ]
    body = []
    for row in run.ok_rows:
        for split in ("val", "test"):
            if to_number(row.get(f"{split}_accuracy")) is None:
                continue
            cells = "".join(
                f'<td class="num">{stacked_interval(row, f"{split}_{m}")}</td>'
                for m in metrics
            )
            body.append(
                f"<tr>{name_cell(row.get('model'))}<td>{split}</td>{cells}</tr>"
            )
        if to_number(row.get("val_accuracy_mean")) is not None:
            cells = "".join(
                f'<td class="num">{stacked_spread(row, f"val_{m}")}</td>'
                for m in metrics
            )
            splits = f"val, {run.num_repeats} splits"
            body.append(
                f"<tr>{name_cell(row.get('model'))}<td>{splits}</td>{cells}</tr>"
            )
    if not body:
        return ""
    head = ["model", "split", *[esc(metric_name(m)) for m in metrics]]
    return (
        "<details><summary>All metrics with 95% intervals</summary>"
        + html_table(head, body, css="board")
        + "</details>"
    )
