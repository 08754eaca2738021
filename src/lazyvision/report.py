"""The self-contained HTML report of a run folder.

The report is a single HTML file that opens offline: the plots are inline SVG drawn
here, thumbnails are base64 data URIs, and it holds no JavaScript, so a label such
as ``<script>`` can only ever show as text. This module lays out the page, its
header, the speed scatter, the protocol and the environment; the other pieces
live in private modules: reading the run folder (``_run_folder``), HTML
formatting (``_html``), the SVG plots (``_svg``), the leaderboard
(``_report_board``), the dataset (``_report_dataset``) and the sections on the
top backbones' results (``_report_results``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from lazyvision import __version__
from lazyvision._html import (
    MAX_LIST_ITEMS,
    MISSING,
    definition_list,
    esc,
    fmt,
    fmt_count,
    html_table,
    is_true,
    metric_name,
    name_cell,
    scalar_html,
    to_number,
    value_html,
)
from lazyvision._report_board import leaderboard_section
from lazyvision._report_dataset import dataset_section
from lazyvision._report_results import (
    classes_section,
    curves_section,
    mistakes_section,
)
from lazyvision._run_folder import Predictions, RunFolder, load_predictions, load_run
from lazyvision._svg import ScatterPoint, scatter_figure
from lazyvision.leaderboard import EXCLUDED
from lazyvision.metrics import METRICS, higher_is_better

logger = logging.getLogger(__name__)

NUM_TOP_MODELS = 3


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
    run = load_run(run_dir)
    if run.unfinished:
        logger.warning("%s", _unfinished_text(run))
    output = run_dir / "report.html" if output is None else Path(output)
    output.write_text(_render(run), encoding="utf-8")
    logger.info("wrote report %s", output)
    return output


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
td.name div{min-width:11em;max-width:18em;overflow-wrap:break-word}
td.reason div{max-width:56em}
tr.failed td{background:#fdf3f3}
tr.excluded td{background:#f4f5f7;color:#5b6475}
table.board th{white-space:normal;min-width:4.2em;vertical-align:bottom}
td.num small{color:#5b6475;font-size:11.5px}
td.marks{white-space:nowrap}
td.marks .why{white-space:normal;font-size:12px;max-width:15em}
.badge{display:inline-block;padding:0 6px;margin:1px 2px;border-radius:9px;
font-size:12px;white-space:nowrap;border:1px solid}
.best{color:#0b5cad;border-color:#0b5cad}.tied{color:#2b7a3d;border-color:#2b7a3d}
.pareto{color:#7a4b00;border-color:#c48a1a}.warn{color:#a11;border-color:#a11}
.badge.unknown,.badge.excluded{color:#5b6475;border-color:#8a94a6;
border-style:dashed}
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
.sample{display:flex;gap:8px;align-items:flex-start;font-size:12.5px}
.sample img,.sample .nothumb{width:48px;height:48px;object-fit:contain;flex:none;
image-rendering:pixelated;background:#eef1f5}
.sample .nothumb{display:flex;align-items:center;justify-content:center;
color:#8a1c1c;font-size:10px;text-align:center}
code{font-size:12.5px;background:#eef1f5;padding:0 3px;border-radius:3px}
footer{margin-top:40px;color:#5b6475;font-size:12.5px}
"""


def _render(run: RunFolder) -> str:
    top = _top_predictions(run)
    sections = [
        ("leaderboard", "Leaderboard", leaderboard_section(run)),
        ("speed", "Accuracy against speed", _scatter_section(run)),
        ("curves", "ROC and precision–recall", curves_section(run, top)),
        ("classes", "Per-class results", classes_section(run, top)),
        ("mistakes", "Most confident mistakes", mistakes_section(run, top)),
        ("dataset", "Dataset", dataset_section(run)),
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
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
            _header(run, [(anchor, title) for anchor, title, _ in present]),
            *[
                f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'
                for anchor, title, body in present
            ],
            f"<footer>Written by lazyvision {esc(__version__)} on "
            f"{datetime.now().strftime('%Y-%m-%d %H:%M')}. "
            "This file is self-contained and needs no network.</footer>",
            "</main></body></html>",
        ]
    )


def _top_predictions(run: RunFolder) -> list[tuple[str, Predictions]]:
    """The best ok backbones that have predictions, in leaderboard order."""
    top = []
    for row in run.ok_rows:
        predictions = load_predictions(run, str(row.get("model")))
        if predictions is not None:
            top.append((str(row.get("model")), predictions))
        if len(top) == NUM_TOP_MODELS:
            break
    return top


def _header(run: RunFolder, sections: Sequence[tuple[str, str]]) -> str:
    info = run.info
    classes = [esc(c) for c in run.classes[:MAX_LIST_ITEMS]]
    if len(run.classes) > MAX_LIST_ITEMS:
        classes.append(f"… and {len(run.classes) - MAX_LIST_ITEMS} more")
    class_text = f"{len(run.classes)}: " + ", ".join(classes) if classes else MISSING
    if run.positive is not None:
        class_text += f" (positive class: {esc(run.positive)})"
    date = esc(info.get("started") or info.get("finished")) + _took_text(run)
    items = [
        ("Source", esc(info.get("source"))),
        ("Layout", esc(info.get("layout"))),
        ("Classes", class_text),
        ("Date", date),
        ("Sorted by", esc(_sort_text(run.sort_key))),
        ("Backbones", _backbones_text(run)),
    ]
    if run.unfinished:
        items.insert(0, ("Status", f"<strong>{esc(_unfinished_text(run))}</strong>"))
    if run.num_repeats > 1:
        items.append(
            (
                "Validation",
                f"drawn from train, {run.num_repeats} times: the metrics of the "
                "first draw, and the mean ± std over all draws",
            )
        )
    limits = _limits_text(run.settings)
    if limits:
        items.append(("Limits", esc(limits)))
    links = [f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in sections]
    return (
        "<header><h1>lazyvision report</h1>"
        + definition_list(items)
        + f"<nav>{''.join(links)}</nav></header>"
    )


def _backbones_text(run: RunFolder) -> str:
    counts: dict[str, int] = {}
    for row in run.rows:
        status = str(row.get("status") or "failed")
        counts[status] = counts.get(status, 0) + 1
    ranked = counts.pop("ok", 0)
    rest = "".join(f", {n} {esc(status)}" for status, n in sorted(counts.items()))
    return f"{ranked} ranked of {len(run.rows)}{rest}"


def _unfinished_text(run: RunFolder) -> str:
    """Says that a run still marked "running" did not finish, and what is missing.

    Ctrl-C and SIGTERM mark the run "interrupted"; "running" stays when the run
    is still going or was stopped without a chance to save (SIGKILL, a crash, a
    power cut), and the report then shows only what finished before.
    """
    missing = run.missing_models
    requested = run.info.get("models")
    total = len(requested) if isinstance(requested, list) else 0
    absent = (
        f" {len(missing)} of the {total} backbones asked for "
        f"{'has' if len(missing) == 1 else 'have'} no row: {', '.join(missing)}."
        if missing
        else ""
    )
    return (
        f"not finished: run.json says the run in {str(run.folder)!r} is still "
        "running, so it is still going or was stopped without saving (killed, a "
        f"crash, a power cut); this report shows what had finished.{absent} To "
        "finish it, run the same `lazyvision rank` command with --output "
        f"{run.folder}."
    )


def _limits_text(settings: Mapping[str, Any]) -> str:
    latency = to_number(settings.get("max_latency_ms"))
    params = to_number(settings.get("max_params"))
    limits = []
    if latency is not None:
        limits.append(f"latency ≤ {latency:g} ms per image")
    if params is not None:
        limits.append(f"≤ {fmt_count(params)} parameters")
    return ", ".join(limits)


def _sort_text(sort_key: str) -> str:
    split, _, metric = sort_key.partition("_")
    if split in ("val", "test") and metric in METRICS:
        words = f"{split} {metric_name(metric)}"
    else:
        words = sort_key.replace("_", " ")
    lower = sort_key in ("latency_ms", "num_params") or not higher_is_better(sort_key)
    return f"{words} ({'lower' if lower else 'higher'} is better)"


def _took_text(run: RunFolder) -> str:
    """How long the run took, and how many results it read back, not computed.

    A rerun that finds every result done takes a second; said alone, its
    duration would read as if the backbones had cost nothing.
    """
    duration = _duration(run.info.get("started"), run.info.get("finished"))
    scored = [row for row in run.rows if row.get("status") in ("ok", EXCLUDED)]
    read_back = sum(to_number(row.get("num_computed")) == 0 for row in scored)
    where = "read back from an earlier run or the cache"
    if scored and read_back == len(scored):
        took = f"took {duration}: " if duration else ""
        return f" ({took}every result {where})"
    if duration is None:
        return ""
    if read_back:
        return f" (took {duration}; {read_back} of {len(scored)} results {where})"
    return f" (took {duration})"


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


def _scatter_section(run: RunFolder) -> str:
    key = f"{run.split}_{run.metric}"
    points = []
    left_out = []
    for row in run.ok_rows:
        speed, value = to_number(row.get("images_per_second")), to_number(row.get(key))
        if speed is None or speed <= 0 or value is None:
            left_out.append(esc(row.get("model")))
            continue
        low, high = to_number(row.get(f"{key}_low")), to_number(row.get(f"{key}_high"))
        points.append(
            ScatterPoint(
                str(row.get("model")),
                speed,
                value,
                value if low is None else low,
                value if high is None else high,
                is_true(row.get("pareto")),
            )
        )
    if not points:
        return ""
    figure = scatter_figure(
        points,
        split=run.split,
        metric=run.metric,
        lower_is_better=run.lower_is_better,
    )
    if left_out:
        names = ", ".join(left_out)
        figure += f'<p class="note">Not plotted (no speed or metric): {names}.</p>'
    return figure


def _protocol_section(run: RunFolder) -> str:
    settings = run.info.get("settings") or {}
    text = (
        "<p>Each backbone is frozen: it turns every image into an embedding once, "
        "and a logistic-regression head is fitted on the train embeddings. The "
        "regularisation strength C is chosen on val from a sweep, and test (when "
        "present) is scored once with that C. Intervals are 95% percentile bootstrap "
        "intervals over the images of the split; <i>tied</i> means the paired "
        "bootstrap interval of the difference to the best backbone includes zero.</p>"
    )
    if run.num_repeats > 1:
        text += (
            f"<p>Val was drawn from train, so it was drawn {run.num_repeats} times "
            "(stratified, the same number of images per class, seeds from the run's "
            "seed up). The head was refitted on each draw from the same embeddings; "
            "C below is that of the first draw, whose predictions the rest of the "
            "report shows.</p>"
        )
    limits = _limits_text(run.settings)
    if limits:
        text += (
            f"<p>Limits: {esc(limits)}. Latency is the time per image of a batched "
            "forward pass on the run's device. Backbones over a limit are scored "
            "but excluded from the ranking.</p>"
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
    for row in run.rows:
        if row.get("status") not in ("ok", EXCLUDED):
            continue
        counts = " / ".join(
            fmt(row.get(f"num_{s}"), 0) for s in ("train", "val", "test")
        )
        cells = [
            esc(row.get("weights_source")),
            scalar_html(to_number(row.get("chosen_C"))),
            esc(row.get("input_size")),
            esc(row.get("preprocessing")),
            esc(row.get("precision")),
            fmt(row.get("embedding_size"), 0),
            counts,
            fmt(row.get("extract_seconds"), 1),
            fmt(row.get("head_fit_seconds"), 2),
        ]
        columns = "".join(f"<td>{c}</td>" for c in cells)
        body.append(f"<tr>{name_cell(row.get('model'))}{columns}</tr>")
    settings_html = ""
    if isinstance(settings, dict) and settings:
        settings_html = "<h3>Settings</h3>" + value_html(settings)
    return text + (html_table(head, body) if body else "") + settings_html


def _environment_section(run: RunFolder) -> str:
    environment = run.info.get("environment")
    notes = run.info.get("notes")
    parts = []
    if isinstance(environment, dict) and environment:
        parts.append(value_html(environment))
    if notes:
        parts.append("<h3>Notes</h3>" + value_html(notes))
    return "".join(parts)
