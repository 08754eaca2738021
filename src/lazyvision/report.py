"""The self-contained HTML report of a run folder.

The report is a single HTML file that opens offline: the plots are inline SVG drawn
here, thumbnails are base64 data URIs, and it holds no JavaScript, so a label such
as ``<script>`` can only ever show as text.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from lazyvision import __version__
from lazyvision.errors import DataError
from lazyvision.metrics import LOWER_IS_BETTER, METRICS, higher_is_better

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 96
NUM_TOP_MODELS = 3
NUM_MISTAKES = 12
# Beyond this many classes a full matrix stops being readable on a laptop screen;
# the report lists the most frequent confusions instead.
MAX_MATRIX_CLASSES = 30
MAX_LIST_ITEMS = 50
NUM_CONFUSIONS = 15
# Okabe-Ito colours: distinguishable for readers with colour-vision deficiency.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")
MISSING = "—"
DEFAULT_SORT = "val_balanced_accuracy"


@dataclass(frozen=True)
class _Predictions:
    split: np.ndarray
    filepath: tuple[str, ...]
    label: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray  # (N, K) in the run's class order; NaN where a column is absent

    def select(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


@dataclass(frozen=True)
class _Run:
    folder: Path
    info: Mapping[str, Any]
    dataset: Mapping[str, Any] | None
    rows: tuple[Mapping[str, Any], ...]
    model_dirs: Mapping[str, Path]
    classes: tuple[str, ...]
    positive: str | None
    sort_key: str  # what the leaderboard is sorted by: "val_f1", "images_per_second"
    split: str  # the split of the quality metric the scatter plots
    metric: str  # the quality metric, without its split: "f1"

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    @property
    def ok_rows(self) -> list[Mapping[str, Any]]:
        return [row for row in self.rows if row.get("status") == "ok"]


def write_report(run_dir: Path, *, output: Path | None = None) -> Path:
    """Write the HTML report of a finished (or partly finished) run.

    Args:
        run_dir: The run folder written by the runner (run.json, leaderboard.json,
            models/*/row.json and predictions.csv, dataset.json).
        output: Where to write the HTML; default ``run_dir / "report.html"``.

    Returns:
        The path of the written file.

    Raises:
        DataError: The folder is not a run folder (no run.json, or no rows at all).

    Example:
        >>> from pathlib import Path
        >>> from lazyvision.report import write_report
        >>> write_report(Path("runs/pets"))  # doctest: +SKIP
        PosixPath('runs/pets/report.html')
    """
    run_dir = Path(run_dir)
    run = _load_run(run_dir)
    output = run_dir / "report.html" if output is None else Path(output)
    output.write_text(_render(run), encoding="utf-8")
    logger.info("wrote report %s", output)
    return output


# Reading the run folder ------------------------------------------------------------


def _load_run(run_dir: Path) -> _Run:
    if not run_dir.is_dir():
        raise DataError(f"run folder {str(run_dir)!r} does not exist or is no folder")
    info = _read_json(run_dir / "run.json", required=True)
    if not isinstance(info, dict):
        raise DataError(f"{run_dir / 'run.json'}: expected a JSON object, got {info!r}")
    dataset = _read_json(run_dir / "dataset.json", required=False)

    model_dirs: dict[str, Path] = {}
    model_rows: list[Mapping[str, Any]] = []
    # A failed backbone leaves failed.json instead of row.json, and no predictions.
    for folder in sorted(run_dir.glob("models/*/")):
        for name in ("row.json", "failed.json"):
            row = _read_json(folder / name, required=False)
            if isinstance(row, dict):
                model_dirs[str(row.get("model") or folder.name)] = folder
                model_rows.append(row)
                break

    board = _read_json(run_dir / "leaderboard.json", required=False)
    rows: list[Mapping[str, Any]] = []
    if isinstance(board, list):
        rows = [row for row in board if isinstance(row, dict)]
    if not rows:
        rows = model_rows
    if not rows:
        raise DataError(
            f"run folder {str(run_dir)!r} has no rows: leaderboard.json is missing or "
            "empty and there is no models/*/row.json; run `lazyvision rank` first"
        )

    classes = tuple(str(name) for name in info.get("classes") or ())
    positive = info.get("positive_label")
    if len(classes) == 2 and positive not in classes:
        positive = classes[1]
    sort_key = str(info.get("sort_metric") or DEFAULT_SORT)
    if sort_key in METRICS:
        sort_key = f"val_{sort_key}"
    split, _, metric = sort_key.partition("_")
    if split not in ("val", "test") or metric not in METRICS:
        # Sorted by speed or size: the runner judges quality by its default.
        split, _, metric = DEFAULT_SORT.partition("_")
    if rows is model_rows:
        rows = _sorted_rows(rows, f"{split}_{metric}")
    return _Run(
        folder=run_dir,
        info=info,
        dataset=dataset if isinstance(dataset, dict) else None,
        rows=tuple(rows),
        model_dirs=model_dirs,
        classes=classes,
        positive=None if positive is None else str(positive),
        sort_key=sort_key,
        split=split,
        metric=metric,
    )


def _read_json(path: Path, *, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise DataError(f"{path} not found; is {str(path.parent)!r} a run folder?")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        if required:
            raise DataError(f"{path} is not valid JSON: {err}") from err
        logger.warning("%s is not valid JSON (%s); left out of the report", path, err)
        return None


def _sorted_rows(rows: list[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    sign = 1.0 if key.partition("_")[2] in LOWER_IS_BETTER else -1.0

    def order(row: Mapping[str, Any]) -> tuple[int, float]:
        value = _number(row.get(key))
        if row.get("status") != "ok" or value is None:
            return (1, 0.0)
        return (0, sign * value)

    return sorted(rows, key=order)


def _load_predictions(run: _Run, model: str) -> _Predictions | None:
    folder = run.model_dirs.get(model)
    path = None if folder is None else folder / "predictions.csv"
    if path is None or not path.is_file():
        return None
    try:
        columns = list(pd.read_csv(path, nrows=0).columns)
        # Labels stay text exactly as written: "NA", "None" and "007" are labels.
        text = {c: str for c in columns if not c.startswith("p:")}
        table = pd.read_csv(path, dtype=text, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as err:
        logger.warning("%s cannot be read (%s); left out of the report", path, err)
        return None
    missing = {"split", "label", "predicted"}.difference(columns)
    if missing:
        logger.warning("%s lacks columns %s; left out of the report", path, missing)
        return None

    classes = run.classes or tuple(c[2:] for c in columns if c.startswith("p:"))
    proba = np.full((len(table), len(classes)), np.nan)
    for j, name in enumerate(classes):
        if f"p:{name}" in table:
            proba[:, j] = pd.to_numeric(table[f"p:{name}"], errors="coerce")
    filepath = (
        table["filepath"] if "filepath" in table else pd.Series([""] * len(table))
    )
    return _Predictions(
        split=table["split"].to_numpy(dtype=object),
        filepath=tuple(filepath),
        label=table["label"].to_numpy(dtype=object),
        predicted=table["predicted"].to_numpy(dtype=object),
        proba=proba,
    )


# Formatting ------------------------------------------------------------------------


def _e(value: object) -> str:
    return MISSING if value is None else html.escape(str(value), quote=True)


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flag(value: object) -> bool:
    return value is True or str(value).strip().lower() in {"true", "1", "yes"}


def _fmt(value: object, digits: int = 3) -> str:
    number = _number(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def _fmt_interval(row: Mapping[str, Any], key: str) -> str:
    value, low, high = (_number(row.get(k)) for k in (key, f"{key}_low", f"{key}_high"))
    if value is None:
        return MISSING
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _fmt_speed(value: object) -> str:
    number = _number(value)
    if number is None:
        return MISSING
    if number >= 100:
        return f"{number:,.0f}"
    return f"{number:.1f}" if number >= 10 else f"{number:.2g}"


def _fmt_count(value: object) -> str:
    number = _number(value)
    if number is None:
        return MISSING
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:.1f}{suffix}"
    return f"{number:.0f}"


def _metric_name(metric: str) -> str:
    names = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "ece": "ECE", "f1": "F1"}
    return names.get(metric, metric.replace("_", " "))


def _shorten(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Page ------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
color:#1d2330;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 10px;
border-bottom:2px solid #dde2ea;padding-bottom:4px}h3{font-size:16px;margin:18px 0 8px}
nav{margin:10px 0 0;font-size:14px}nav a{margin-right:14px;color:#0b5cad}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:12px 0}
.meta .meta{margin:0}.meta dt{color:#5b6475}.meta dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto;width:fit-content;max-width:100%;background:#fff;
border:1px solid #dde2ea;border-radius:6px;margin:8px 0}
table{border-collapse:collapse;font-size:13.5px}
th,td{padding:5px 9px;border-bottom:1px solid #eceff4;text-align:left;
vertical-align:top}
th{background:#f0f3f7;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.reason{color:#8a1c1c;min-width:280px;overflow-wrap:anywhere}
td.name{font-weight:600}
td.name div{min-width:12em;max-width:24em;overflow-wrap:anywhere}
td.reason div{max-width:56em}
tr.failed td{background:#fdf3f3}
.badge{display:inline-block;padding:0 6px;margin:1px 2px;border-radius:9px;
font-size:12px;white-space:nowrap;border:1px solid}
.best{color:#0b5cad;border-color:#0b5cad}.tied{color:#2b7a3d;border-color:#2b7a3d}
.pareto{color:#7a4b00;border-color:#c48a1a}.warn{color:#a11;border-color:#a11}
.note{color:#5b6475;font-size:13.5px}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:10px}
figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;display:block}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.legend{list-style:none;padding:0;margin:6px 0 0;font-size:13px}
.legend li{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;
margin-right:5px;vertical-align:-1px}
.pair{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}
.pair>*{min-width:0;max-width:100%}
table.confusion td{text-align:center;min-width:38px}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:8px;
font-size:12.5px;overflow-wrap:anywhere}
.card img,.card .nothumb{width:96px;height:96px;object-fit:contain;display:block;
image-rendering:pixelated;background:#eef1f5;margin-bottom:6px}
.card .nothumb{display:flex;align-items:center;justify-content:center;
color:#8a1c1c;font-size:11px;text-align:center}
code{font-size:12.5px;background:#eef1f5;padding:0 3px;border-radius:3px}
footer{margin-top:40px;color:#5b6475;font-size:12.5px}
"""


def _render(run: _Run) -> str:
    top = _top_predictions(run)
    sections = [
        ("leaderboard", "Leaderboard", _leaderboard_section(run)),
        ("speed", "Accuracy against speed", _scatter_section(run)),
        ("curves", "ROC and precision–recall", _curves_section(run, top)),
        ("classes", "Per-class results", _classes_section(run, top)),
        ("mistakes", "Most confident mistakes", _mistakes_section(run, top)),
        ("dataset", "Dataset", _dataset_section(run)),
        ("protocol", "Protocol", _protocol_section(run)),
        ("environment", "Environment", _environment_section(run)),
    ]
    present = [(anchor, title, body) for anchor, title, body in sections if body]
    title = f"lazyvision report: {run.info.get('source') or run.folder.name}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
            _header(run, [(anchor, title) for anchor, title, _ in present]),
            *[
                f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'
                for anchor, title, body in present
            ],
            f"<footer>Written by lazyvision {_e(__version__)} on "
            f"{datetime.now().strftime('%Y-%m-%d %H:%M')}. "
            "This file is self-contained and needs no network.</footer>",
            "</main></body></html>",
        ]
    )


def _top_predictions(run: _Run) -> list[tuple[str, _Predictions]]:
    """The best ok backbones that have predictions, in leaderboard order."""
    top = []
    for row in run.ok_rows:
        predictions = _load_predictions(run, str(row.get("model")))
        if predictions is not None:
            top.append((str(row.get("model")), predictions))
        if len(top) == NUM_TOP_MODELS:
            break
    return top


def _header(run: _Run, sections: Sequence[tuple[str, str]]) -> str:
    info = run.info
    classes = [_e(c) for c in run.classes[:MAX_LIST_ITEMS]]
    if len(run.classes) > MAX_LIST_ITEMS:
        classes.append(f"… and {len(run.classes) - MAX_LIST_ITEMS} more")
    class_text = f"{len(run.classes)}: " + ", ".join(classes) if classes else MISSING
    if run.positive is not None:
        class_text += f" (positive class: {_e(run.positive)})"
    date = _e(info.get("started") or info.get("finished"))
    duration = _duration(info.get("started"), info.get("finished"))
    if duration:
        date += f" (took {duration})"
    items = [
        ("Source", _e(info.get("source"))),
        ("Layout", _e(info.get("layout"))),
        ("Classes", class_text),
        ("Date", date),
        ("Sorted by", _e(_sort_text(run.sort_key))),
        ("Backbones", f"{len(run.ok_rows)} ok of {len(run.rows)}"),
    ]
    links = [f'<a href="#{anchor}">{_e(title)}</a>' for anchor, title in sections]
    return (
        "<header><h1>lazyvision report</h1>"
        + _definition_list(items)
        + f"<nav>{''.join(links)}</nav></header>"
    )


def _sort_text(sort_key: str) -> str:
    split, _, metric = sort_key.partition("_")
    if split in ("val", "test") and metric in METRICS:
        words = f"{split} {_metric_name(metric)}"
    else:
        words = sort_key.replace("_", " ")
    lower = sort_key in ("latency_ms", "num_params") or not higher_is_better(sort_key)
    return f"{words} ({'lower' if lower else 'higher'} is better)"


def _duration(started: object, finished: object) -> str | None:
    try:
        seconds = (
            datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))
        ).total_seconds()
    except (TypeError, ValueError):
        return None
    if seconds < 0:
        return None
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _definition_list(items: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="meta">{body}</dl>'


def _table(head: Sequence[str], body: Iterable[str], *, css: str = "") -> str:
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" if head else ""
    klass = f' class="{css}"' if css else ""
    rows = "".join(body)
    return f'<div class="scroll"><table{klass}>{header}{rows}</table></div>'


# Leaderboard -----------------------------------------------------------------------


def _leaderboard_section(run: _Run) -> str:
    metric = run.metric
    head = [
        "#",
        "model",
        "marks",
        f"val {_e(_metric_name(metric))} [95% CI]",
        f"test {_e(_metric_name(metric))} [95% CI]",
        "images/s",
        "latency ms",
        "params",
        *[f"val {_metric_name(m)}" for m in METRICS if m != metric],
    ]
    body = []
    rank = 0
    for row in run.rows:
        name = _name_cell(row.get("model"))
        if row.get("status") != "ok":
            reason = f"{_e(row.get('status') or 'failed')}: {_e(row.get('reason'))}"
            span = len(head) - 2
            body.append(
                f'<tr class="failed"><td>{MISSING}</td>{name}'
                f'<td class="reason" colspan="{span}"><div>{reason}</div></td></tr>'
            )
            continue
        rank += 1
        cells = [
            _fmt_interval(row, f"val_{metric}"),
            _fmt_interval(row, f"test_{metric}"),
            _fmt_speed(row.get("images_per_second")),
            _fmt_speed(row.get("latency_ms")),
            _fmt_count(row.get("num_params")),
            *[_fmt(row.get(f"val_{m}")) for m in METRICS if m != metric],
        ]
        numbers = "".join(f'<td class="num">{c}</td>' for c in cells)
        body.append(
            f"<tr><td>{rank}</td>{name}<td>{_marks(row, rank)}</td>{numbers}</tr>"
        )
    legend = (
        '<p class="note"><span class="badge tied">tied</span> the paired bootstrap '
        "interval of the difference to the best includes zero, so the data cannot "
        'tell them apart. <span class="badge pareto">Pareto</span> no other backbone '
        'is both faster and better. <span class="badge warn">one class</span> the '
        "head predicts a single class for every image. Intervals are 95% bootstrap "
        "intervals.</p>"
    )
    return _table(head, body) + legend + _full_metrics(run)


def _name_cell(name: object) -> str:
    return f'<td class="name"><div>{_e(name)}</div></td>'


def _marks(row: Mapping[str, Any], rank: int) -> str:
    marks = []
    if rank == 1:
        marks.append('<span class="badge best">best</span>')
    elif _flag(row.get("tied_with_best")):
        marks.append('<span class="badge tied">tied</span>')
    if _flag(row.get("pareto")):
        marks.append('<span class="badge pareto">Pareto</span>')
    if _flag(row.get("single_class")):
        marks.append('<span class="badge warn">one class</span>')
    return "".join(marks)


def _full_metrics(run: _Run) -> str:
    body = []
    for row in run.ok_rows:
        for split in ("val", "test"):
            if _number(row.get(f"{split}_accuracy")) is None:
                continue
            cells = "".join(
                f'<td class="num">{_fmt_interval(row, f"{split}_{m}")}</td>'
                for m in METRICS
            )
            body.append(
                f"<tr>{_name_cell(row.get('model'))}<td>{split}</td>{cells}</tr>"
            )
    if not body:
        return ""
    head = ["model", "split", *[_e(_metric_name(m)) for m in METRICS]]
    return (
        "<details><summary>All metrics with 95% intervals</summary>"
        + _table(head, body)
        + "</details>"
    )


# SVG plots -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axes:
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    log_x: bool = False
    # Top, right, bottom, left, in viewBox units: room for ticks and axis labels.
    margin: tuple[float, float, float, float] = (16, 24, 52, 64)

    def x(self, value: float) -> float:
        low, high = self.x_range
        if self.log_x:
            value, low, high = math.log10(value), math.log10(low), math.log10(high)
        left, right = self.margin[3], self.width - self.margin[1]
        return left + (value - low) / (high - low) * (right - left)

    def y(self, value: float) -> float:
        low, high = self.y_range
        top, bottom = self.margin[0], self.height - self.margin[2]
        return bottom - (value - low) / (high - low) * (bottom - top)


def _svg_frame(
    axes: _Axes,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    x_label: str,
    y_label: str,
    title: str,
    element_id: str,
) -> list[str]:
    top, right, bottom, left = axes.margin
    inner_bottom = axes.height - bottom
    parts = [
        f'<svg id="{element_id}" viewBox="0 0 {axes.width:.0f} {axes.height:.0f}" '
        f'role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>',
        f'<rect x="{left}" y="{top}" width="{axes.width - left - right}" '
        f'height="{inner_bottom - top}" fill="#fff" stroke="#c9d0db"/>',
    ]
    for tick in x_ticks:
        x = axes.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{inner_bottom}" '
            f'stroke="#eceff4"/><text x="{x:.1f}" y="{inner_bottom + 16}" '
            f'font-size="11" text-anchor="middle" fill="#5b6475">{_tick(tick)}</text>'
        )
    for tick in y_ticks:
        y = axes.y(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{axes.width - right}" y2="{y:.1f}" '
            f'stroke="#eceff4"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6475">{_tick(tick)}</text>'
        )
    middle_x = (left + axes.width - right) / 2
    middle_y = (top + inner_bottom) / 2
    parts.append(
        f'<text x="{middle_x:.1f}" y="{axes.height - 12}" font-size="12.5" '
        f'text-anchor="middle">{_e(x_label)}</text>'
        f'<text x="14" y="{middle_y:.1f}" font-size="12.5" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle_y:.1f})">{_e(y_label)}</text>'
    )
    return parts


def _tick(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multipliers = (1, 2, 5) if last - first <= 3 else (1,)
    candidates = (m * 10.0**p for p in range(first, last + 1) for m in multipliers)
    return [tick for tick in candidates if low <= tick <= high]


def _scatter_section(run: _Run) -> str:
    key = f"{run.split}_{run.metric}"
    points = []
    left_out = []
    for row in run.ok_rows:
        speed, value = _number(row.get("images_per_second")), _number(row.get(key))
        if speed is None or speed <= 0 or value is None:
            left_out.append(_e(row.get("model")))
            continue
        low, high = _number(row.get(f"{key}_low")), _number(row.get(f"{key}_high"))
        points.append(
            (
                str(row.get("model")),
                speed,
                value,
                value if low is None else low,
                value if high is None else high,
                _flag(row.get("pareto")),
            )
        )
    if not points:
        return ""
    if not any(point[5] for point in points):
        points = _with_pareto(points, lower_is_better=run.lower_is_better)

    # A factor of 1.6 either side guarantees a 1-2-5 tick inside the x range.
    speeds = [p[1] for p in points]
    x_range = (min(speeds) / 1.6, max(speeds) * 1.6)
    y_low, y_high = min(p[3] for p in points), max(p[4] for p in points)
    pad = (y_high - y_low) * 0.08 or 0.05
    low, high = y_low - pad, y_high + pad
    if run.metric != "log_loss" and y_low >= 0.0 and y_high <= 1.0:
        low, high = max(low, 0.0), min(high, 1.0)  # no room above a perfect score
    y_ticks = _nice_ticks(low, high)
    axes = _Axes(960, 420, x_range, (y_ticks[0], y_ticks[-1]), log_x=True)
    metric = _metric_name(run.metric)
    parts = _svg_frame(
        axes,
        _log_ticks(*x_range),
        y_ticks,
        "images per second (log scale)",
        f"{run.split} {metric}",
        f"{run.split} {metric} against speed",
        "scatter",
    )

    front = sorted((p for p in points if p[5]), key=lambda p: p[1])
    if front:
        path = f"M{axes.x(front[0][1]):.1f},{axes.y(front[0][2]):.1f}"
        for before, after in itertools.pairwise(front):
            path += f" L{axes.x(before[1]):.1f},{axes.y(after[2]):.1f}"
            path += f" L{axes.x(after[1]):.1f},{axes.y(after[2]):.1f}"
        parts.append(
            f'<path d="{path}" fill="none" stroke="#c48a1a" stroke-width="2" '
            'stroke-dasharray="6 4"/>'
        )
    placed: list[tuple[float, float, float]] = []
    for name, speed, value, low, high, pareto in points:
        x, y = axes.x(speed), axes.y(value)
        fill = "#c48a1a" if pareto else "#fff"
        parts.append(
            f'<line x1="{x:.1f}" y1="{axes.y(low):.1f}" x2="{x:.1f}" '
            f'y2="{axes.y(high):.1f}" stroke="#8a94a6" stroke-width="1.2"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{fill}" stroke="#1d2330" '
            f'stroke-width="1.3"><title>{_e(name)}: {metric} {value:.3f} '
            f"[{low:.3f}, {high:.3f}], {_fmt_speed(speed)} images/s</title></circle>"
        )
        parts.append(_point_label(axes, placed, name, x, y))
    parts.append("</svg>")
    note = ""
    if left_out:
        names = ", ".join(left_out)
        note = f'<p class="note">Not plotted (no speed or metric): {names}.</p>'
    return (
        "<figure>"
        + "".join(parts)
        + '<ul class="legend"><li><span class="swatch" style="background:#c48a1a">'
        "</span>Pareto front (dashed step line)</li><li>"
        '<span class="swatch" style="border:1.3px solid #1d2330"></span>other '
        "backbones</li><li>vertical bars: 95% interval</li></ul></figure>" + note
    )


def _with_pareto(
    points: list[tuple[str, float, float, float, float, bool]], *, lower_is_better: bool
) -> list[tuple[str, float, float, float, float, bool]]:
    """Marks the front when the rows carry no pareto flag (an older run folder)."""
    sign = -1.0 if lower_is_better else 1.0
    marked = []
    for point in points:
        dominated = any(
            other[1] >= point[1]
            and sign * other[2] >= sign * point[2]
            and (other[1], other[2]) != (point[1], point[2])
            for other in points
        )
        marked.append((*point[:5], not dominated))
    return marked


def _point_label(
    axes: _Axes, placed: list[tuple[float, float, float]], name: str, x: float, y: float
) -> str:
    """A label beside its point, nudged down past labels already placed."""
    text = _shorten(name)
    width = 6.4 * len(text)
    on_left = x + 9 + width > axes.width - axes.margin[1]
    start = x - 9 - width if on_left else x + 9
    label_y = y + 4
    for _ in range(8):
        clash = any(
            abs(label_y - other_y) < 13
            and start < other_end
            and other_start < start + width
            for other_start, other_end, other_y in placed
        )
        if not clash:
            break
        label_y += 13
    placed.append((start, start + width, label_y))
    anchor = "end" if on_left else "start"
    label_x = x - 9 if on_left else x + 9
    return (
        f'<text x="{label_x:.1f}" y="{label_y:.1f}" font-size="11.5" '
        f'text-anchor="{anchor}" fill="#1d2330">{_e(text)}'
        f"<title>{_e(name)}</title></text>"
    )


def _curves_section(run: _Run, top: Sequence[tuple[str, _Predictions]]) -> str:
    if len(run.classes) != 2 or run.positive is None:
        return ""
    positive = run.classes.index(run.positive)
    roc_lines, pr_lines, legend = [], [], []
    prevalence = None
    skipped = []
    for index, (model, predictions) in enumerate(top):
        rows = predictions.select("val")
        truth = predictions.label[rows] == run.positive
        score = predictions.proba[rows, positive]
        if truth.all() or not truth.any() or np.isnan(score).any():
            skipped.append(_e(model))
            continue
        color = PALETTE[index % len(PALETTE)]
        false_positive, true_positive, _ = roc_curve(truth, score)
        roc_lines.append((false_positive, true_positive, color))
        recall, precision = _precision_steps(truth, score)
        pr_lines.append((recall, precision, color))
        prevalence = float(truth.mean())
        legend.append(
            f'<li><span class="swatch" style="background:{color}"></span>{_e(model)} '
            f"(ROC AUC {roc_auc_score(truth, score):.3f}, "
            f"AP {average_precision_score(truth, score):.3f})</li>"
        )
    if not roc_lines or prevalence is None:
        if not top:
            return ""
        return (
            '<p class="note">Not drawn: val holds a single class or lacks '
            "probabilities.</p>"
        )

    roc = _curve_svg(
        roc_lines, "false positive rate", "true positive rate", "ROC curve", "roc"
    )
    pr = _curve_svg(
        pr_lines,
        "recall",
        "precision",
        "precision–recall curve",
        "pr",
        steps=True,
        baseline=prevalence,
    )
    note = ""
    if skipped:
        names = ", ".join(skipped)
        note = f'<p class="note">Left out (single class on val): {names}.</p>'
    return (
        '<p class="note">'
        f"Top {len(roc_lines)} backbones on val; positive class "
        f"{_e(run.positive)}.</p>"
        f'<div class="plots"><figure>{roc}</figure><figure>{pr}</figure></div>'
        f'<ul class="legend">{"".join(legend)}</ul>{note}'
    )


def _precision_steps(
    truth: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Recall (falling) and the precision where each recall level is first reached.

    Drawn as steps, these corners enclose exactly the average precision; the other
    points of the curve only add spikes at a constant recall.
    """
    precision, recall, _ = precision_recall_curve(truth, score)
    order = np.argsort(recall, kind="stable")
    levels, starts = np.unique(recall[order], return_index=True)
    best = np.maximum.reduceat(precision[order], starts)
    return levels[::-1], best[::-1]


def _curve_svg(
    lines: Sequence[tuple[np.ndarray, np.ndarray, str]],
    x_label: str,
    y_label: str,
    title: str,
    element_id: str,
    *,
    steps: bool = False,
    baseline: float | None = None,
) -> str:
    axes = _Axes(420, 400, (0.0, 1.0), (0.0, 1.02), margin=(12, 16, 50, 56))
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    parts = _svg_frame(axes, ticks, ticks, x_label, y_label, title, element_id)
    if baseline is None:
        reference = f"M{axes.x(0):.1f},{axes.y(0):.1f} L{axes.x(1):.1f},{axes.y(1):.1f}"
    else:
        y = axes.y(baseline)
        reference = f"M{axes.x(0):.1f},{y:.1f} L{axes.x(1):.1f},{y:.1f}"
    parts.append(
        f'<path d="{reference}" stroke="#8a94a6" stroke-dasharray="4 4" fill="none"/>'
    )
    for xs, ys, color in lines:
        # Thousands of thresholds add bytes but nothing visible at this size.
        keep = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), 1500)).astype(int))
        xs, ys = xs[keep], ys[keep]
        coords = []
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            if steps and i:
                coords.append(f"{axes.x(float(x)):.1f},{axes.y(float(ys[i - 1])):.1f}")
            coords.append(f"{axes.x(float(x)):.1f},{axes.y(float(y)):.1f}")
        parts.append(
            f'<polyline points="{" ".join(coords)}" fill="none" stroke="{color}" '
            'stroke-width="2" stroke-linejoin="round"/>'
        )
    parts.append("</svg>")
    return f"<figcaption>{_e(title)}</figcaption>" + "".join(parts)


# Per-class results -----------------------------------------------------------------


def _classes_section(run: _Run, top: Sequence[tuple[str, _Predictions]]) -> str:
    blocks = []
    for index, (model, predictions) in enumerate(top):
        for split in ("val", "test"):
            rows = predictions.select(split)
            if rows.size == 0:
                continue
            labels = _labels(run, predictions.label[rows], predictions.predicted[rows])
            truth = [str(v) for v in predictions.label[rows]]
            guess = [str(v) for v in predictions.predicted[rows]]
            matrix = confusion_matrix(truth, guess, labels=labels)
            opened = " open" if index == 0 else ""
            blocks.append(
                f"<details{opened}><summary>{_e(model)}, {split} "
                f'({rows.size} images)</summary><div class="pair">'
                + _confusion_html(matrix, labels)
                + _per_class_html(truth, guess, labels)
                + "</div></details>"
            )
    if not blocks:
        return ""
    return (
        '<p class="note">Rows are the true class, columns the predicted class; a '
        "cell's shade is its share of the row (blue: right, orange: wrong).</p>"
        + "".join(blocks)
    )


def _labels(run: _Run, truth: np.ndarray, guess: np.ndarray) -> list[str]:
    extra = sorted({str(v) for v in (*truth, *guess)}.difference(run.classes))
    return [*run.classes, *extra]


def _confusion_html(matrix: np.ndarray, labels: Sequence[str]) -> str:
    if len(labels) > MAX_MATRIX_CLASSES:
        return _top_confusions(matrix, labels)
    totals = matrix.sum(axis=1)
    body = []
    for i, label in enumerate(labels):
        cells = []
        for j, count in enumerate(matrix[i]):
            share = count / totals[i] if totals[i] else 0.0
            rgb = "0,114,178" if i == j else "213,94,0"
            color = "#fff" if share > 0.55 else "#1d2330"
            cells.append(
                f'<td style="background:rgba({rgb},{share:.2f});color:{color}">'
                f"{count}</td>"
            )
        body.append(f"<tr><th>{_e(label)}</th>{''.join(cells)}</tr>")
    head = ["true \\ predicted", *[_e(label) for label in labels]]
    return _table(head, body, css="confusion")


def _top_confusions(matrix: np.ndarray, labels: Sequence[str]) -> str:
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(off_diagonal, axis=None)[::-1][:NUM_CONFUSIONS]
    totals = matrix.sum(axis=1)
    body = []
    for flat in order:
        i, j = divmod(int(flat), len(labels))
        if off_diagonal[i, j] == 0:
            break
        body.append(
            f"<tr><td>{_e(labels[i])}</td><td>{_e(labels[j])}</td>"
            f'<td class="num">{off_diagonal[i, j]}</td>'
            f'<td class="num">{off_diagonal[i, j] / totals[i]:.1%}</td></tr>'
        )
    note = (
        f'<p class="note">{len(labels)} classes: the most frequent confusions instead '
        "of the full matrix.</p>"
    )
    return (
        "<div>"
        + note
        + _table(["true", "predicted as", "images", "share of true class"], body)
        + "</div>"
    )


def _per_class_html(truth: list[str], guess: list[str], labels: list[str]) -> str:
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, labels=labels, zero_division=0
    )
    order = list(range(len(labels)))
    note = ""
    if len(labels) > MAX_MATRIX_CLASSES:
        order = sorted(order, key=lambda i: f1[i])[:MAX_MATRIX_CLASSES]
        note = (
            f'<p class="note">The {MAX_MATRIX_CLASSES} classes with the lowest F1.</p>'
        )
    body = [
        f'<tr><td>{_e(labels[i])}</td><td class="num">{support[i]}</td>'
        f'<td class="num">{precision[i]:.3f}</td><td class="num">{recall[i]:.3f}</td>'
        f'<td class="num">{f1[i]:.3f}</td></tr>'
        for i in order
    ]
    head = ["class", "images", "precision", "recall", "F1"]
    return "<div>" + note + _table(head, body) + "</div>"


# Mistakes --------------------------------------------------------------------------


def _mistakes_section(run: _Run, top: Sequence[tuple[str, _Predictions]]) -> str:
    if not top:
        return ""
    model, predictions = top[0]
    index = {name: i for i, name in enumerate(run.classes)}
    cards: list[str] = []
    for split in ("val", "test"):
        rows = predictions.select(split)
        wrong = rows[predictions.label[rows] != predictions.predicted[rows]]
        confidence = {int(i): _confidence(predictions, int(i), index) for i in wrong}
        ranked = sorted(wrong, key=lambda i: -confidence[int(i)])
        for i in ranked[: NUM_MISTAKES - len(cards)]:
            cards.append(
                _mistake_card(run, predictions, int(i), split, confidence[int(i)])
            )
    if not cards:
        body = '<p class="note">No mistakes on val or test.</p>'
    else:
        body = f'<div class="gallery">{"".join(cards)}</div>'
    return (
        '<p class="note">'
        f"The best backbone, {_e(model)}: up to {NUM_MISTAKES} images it gets wrong "
        "with the highest confidence, val first, then test.</p>" + body
    )


def _confidence(predictions: _Predictions, row: int, index: Mapping[str, int]) -> float:
    column = index.get(str(predictions.predicted[row]))
    probabilities = predictions.proba[row]
    value = probabilities[column] if column is not None else np.nanmax(probabilities)
    return float(value) if np.isfinite(value) else 0.0


def _mistake_card(
    run: _Run, predictions: _Predictions, row: int, split: str, confidence: float
) -> str:
    filepath = predictions.filepath[row]
    name = Path(filepath).name or filepath
    uri = _thumbnail_uri(_resolve(run, filepath)) if filepath else None
    if uri is None:
        picture = f'<div class="nothumb">no image<br>{_e(_shorten(name, 20))}</div>'
    else:
        picture = f'<img src="{uri}" alt="{_e(name)}">'
    return (
        f'<div class="card" title="{_e(filepath)}">{picture}'
        f"<div><b>{_e(name)}</b></div>"
        f"<div>true: {_e(predictions.label[row])}</div>"
        f"<div>predicted: {_e(predictions.predicted[row])}</div>"
        f"<div>confidence {confidence:.3f} · {split}</div></div>"
    )


def _resolve(run: _Run, filepath: str) -> Path:
    path = Path(filepath)
    if not path.is_absolute() and not path.exists():
        return run.folder / path
    return path


def _thumbnail_uri(path: Path) -> str | None:
    """A small JPEG or PNG data URI of the image, or None when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
            picture = _to_rgb(ImageOps.exif_transpose(image))
            picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        logger.debug("no thumbnail for %s: %s", path, err)
        return None
    encoded = {}
    for kind, options in (("jpeg", {"quality": 85}), ("png", {"optimize": True})):
        buffer = io.BytesIO()
        picture.save(buffer, format=kind.upper(), **options)
        encoded[kind] = buffer.getvalue()
    kind = min(encoded, key=lambda k: len(encoded[k]))
    return f"data:image/{kind};base64," + base64.b64encode(encoded[kind]).decode()


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        scale = 255.0 / max(float(values.max()), 1.0)
        return Image.fromarray((values * scale).clip(0, 255).astype(np.uint8)).convert(
            "RGB"
        )
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


# Dataset, protocol, environment ----------------------------------------------------


_DATASET_LISTS = (
    "problems",
    "duplicates",
    "near_duplicates",
    "warnings",
    "notes",
    "ignored",
)
# Shown in the header already, or in the table of counts.
_DATASET_SHOWN = frozenset({"source", "layout", "classes", "splits", *_DATASET_LISTS})


def _dataset_section(run: _Run) -> str:
    dataset = run.dataset
    if dataset is None:
        return '<p class="note">No dataset.json in the run folder.</p>'
    parts = []
    splits = dataset.get("splits")
    if _is_split_table(splits):
        parts.append("<h3>Images per split and class</h3>" + _counts_html(run, splits))
    empty = []
    for key in _DATASET_LISTS:
        words = key.replace("_", " ")
        if dataset.get(key):
            parts.append(f"<h3>{words.capitalize()}</h3>" + _value_html(dataset[key]))
        elif key in dataset:
            empty.append(words)
    if empty:
        parts.append(f"<p>None found: {', '.join(empty)}.</p>")
    rest = {k: v for k, v in dataset.items() if k not in _DATASET_SHOWN}
    if rest:
        parts.append("<h3>Image sizes, modes and formats</h3>" + _value_html(rest))
    return "".join(parts)


def _is_split_table(splits: object) -> TypeGuard[Mapping[str, Mapping[str, Any]]]:
    return isinstance(splits, dict) and all(
        isinstance(split, dict) and isinstance(split.get("per_class"), dict)
        for split in splits.values()
    )


def _counts_html(run: _Run, splits: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(splits)
    seen = (c for split in splits.values() for c in split["per_class"])
    classes = list(dict.fromkeys([*run.classes, *seen]))
    body = []
    for name in classes:
        cells = "".join(
            f'<td class="num">{_fmt(splits[s]["per_class"].get(name, 0), 0)}</td>'
            for s in names
        )
        body.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    for key, words in (("usable", "usable images"), ("given", "images given")):
        cells = "".join(
            f'<td class="num"><b>{_fmt(splits[s].get(key), 0)}</b></td>' for s in names
        )
        body.append(f"<tr><td><b>{words}</b></td>{cells}</tr>")
    return _table(["class", *[_e(s) for s in names]], body)


def _value_html(value: object, depth: int = 0) -> str:
    """Any JSON value as HTML: lists of objects as tables, objects as key lists."""
    if isinstance(value, dict):
        if not value:
            return MISSING
        if depth >= 1:
            return _inline_html(value)
        items = [(str(k), _value_html(v, depth + 1)) for k, v in value.items()]
        return _definition_list(items)
    if isinstance(value, list):
        if not value:
            return MISSING
        shown = value[:MAX_LIST_ITEMS]
        more = ""
        if len(value) > MAX_LIST_ITEMS:
            more = f'<p class="note">… and {len(value) - MAX_LIST_ITEMS} more.</p>'
        if all(isinstance(item, int | float) for item in shown):
            return ", ".join(_scalar_html(item) for item in shown) + more
        if all(isinstance(item, dict) for item in shown):
            keys = list(dict.fromkeys(k for item in shown for k in item))
            body = [
                "<tr>"
                + "".join(f"<td>{_scalar_html(item.get(k))}</td>" for k in keys)
                + "</tr>"
                for item in shown
            ]
            return _table([_e(k) for k in keys], body) + more
        if all(isinstance(item, list) for item in shown):
            body = [
                "<tr>" + "".join(f"<td>{_scalar_html(v)}</td>" for v in item) + "</tr>"
                for item in shown
            ]
            return _table([], body) + more
        entries = "".join(f"<li>{_value_html(i, depth + 1)}</li>" for i in shown)
        return f"<ul>{entries}</ul>{more}"
    return _scalar_html(value)


def _inline_html(value: Mapping[str, Any]) -> str:
    """A small object on one line: ``width (min 32, max 640), mode RGB``."""
    parts = [
        f"{_e(k)} ({_inline_html(v)})"
        if isinstance(v, dict)
        else f"{_e(k)} {_scalar_html(v)}"
        for k, v in value.items()
    ]
    return ", ".join(parts)


def _scalar_html(value: object) -> str:
    if isinstance(value, dict):
        return "<br>".join(f"{_e(k)}: {_scalar_html(v)}" for k, v in value.items())
    if isinstance(value, list):
        return _e(json.dumps(value, default=str)[:400])
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    return _e(value)


def _protocol_section(run: _Run) -> str:
    settings = run.info.get("settings") or {}
    text = (
        "<p>Each backbone is frozen: it turns every image into an embedding once, "
        "and a logistic-regression head is fitted on the train embeddings. The "
        "regularisation strength C is chosen on val from a sweep, and test (when "
        "present) is scored once with that C. Intervals are 95% percentile bootstrap "
        "intervals over the images of the split; <i>tied</i> means the paired "
        "bootstrap interval of the difference to the best backbone includes zero.</p>"
    )
    head = [
        "model",
        "weights",
        "chosen C",
        "input",
        "preprocessing",
        "precision",
        "embedding",
        "train / val / test",
        "extract s",
        "head fit s",
    ]
    body = []
    for row in run.ok_rows:
        counts = " / ".join(
            _fmt(row.get(f"num_{s}"), 0) for s in ("train", "val", "test")
        )
        cells = [
            _e(row.get("weights_source")),
            _scalar_html(_number(row.get("chosen_C"))),
            _e(row.get("input_size")),
            _e(row.get("preprocessing")),
            _e(row.get("precision")),
            _fmt(row.get("embedding_size"), 0),
            counts,
            _fmt(row.get("extract_seconds"), 1),
            _fmt(row.get("head_fit_seconds"), 2),
        ]
        columns = "".join(f"<td>{c}</td>" for c in cells)
        body.append(f"<tr>{_name_cell(row.get('model'))}{columns}</tr>")
    settings_html = ""
    if isinstance(settings, dict) and settings:
        settings_html = "<h3>Settings</h3>" + _value_html(settings)
    return text + (_table(head, body) if body else "") + settings_html


def _environment_section(run: _Run) -> str:
    environment = run.info.get("environment")
    notes = run.info.get("notes")
    parts = []
    if isinstance(environment, dict) and environment:
        parts.append(_value_html(environment))
    if notes:
        parts.append("<h3>Notes</h3>" + _value_html(notes))
    return "".join(parts)
