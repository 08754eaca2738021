"""HTML pieces of the report: escaping, number formats, tables and thumbnails."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from lazyvision.leaderboard import shorten_name

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 96
MAX_LIST_ITEMS = 50
MISSING = "—"


def esc(value: object) -> str:
    """Text made safe for HTML; None is the missing-value dash."""
    return MISSING if value is None else html.escape(str(value), quote=True)


def to_number(value: object) -> float | None:
    """A finite float, or None for None, "", booleans, text and NaN."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_true(value: object) -> bool:
    """True for True and its spellings in a CSV or JSON file."""
    return value is True or str(value).strip().lower() in {"true", "1", "yes"}


def fmt(value: object, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or the dash."""
    number = to_number(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def fmt_interval(row: Mapping[str, Any], key: str) -> str:
    """ "0.912 [0.881, 0.940]": a metric and its interval, on one line."""
    value, low, high = (
        to_number(row.get(k)) for k in (key, f"{key}_low", f"{key}_high")
    )
    if value is None:
        return MISSING
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def stacked_interval(row: Mapping[str, Any], key: str) -> str:
    """A metric over its interval in small type, for narrow table cells."""
    value, low, high = (
        to_number(row.get(k)) for k in (key, f"{key}_low", f"{key}_high")
    )
    if value is None:
        return MISSING
    if low is None or high is None:
        return f"{value:.3f}"
    return f'{value:.3f}<br><small title="95% interval">{low:.3f}–{high:.3f}</small>'


def stacked_spread(row: Mapping[str, Any], key: str) -> str:
    """Mean ± std over repeated splits, over the min–max range in small type."""
    mean, std, low, high = (
        to_number(row.get(f"{key}_{part}")) for part in ("mean", "std", "min", "max")
    )
    if mean is None:
        return MISSING
    text = f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"
    if low is not None and high is not None:
        text += f'<br><small title="min–max">{low:.3f}–{high:.3f}</small>'
    return text


def fmt_speed(value: object) -> str:
    """A rate with as many digits as it needs: 9,100 or 81.4 or 4.6."""
    number = to_number(value)
    if number is None:
        return MISSING
    if number >= 100:
        return f"{number:,.0f}"
    return f"{number:.1f}" if number >= 10 else f"{number:.2g}"


def fmt_count(value: object) -> str:
    """A count in k, M or G: 11.7M."""
    number = to_number(value)
    if number is None:
        return MISSING
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:.1f}{suffix}"
    return f"{number:.0f}"


def metric_name(metric: str) -> str:
    """A metric's name in words: "balanced accuracy", "ROC AUC"."""
    names = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "ece": "ECE", "f1": "F1"}
    return names.get(metric, metric.replace("_", " "))


def shorten(text: str, limit: int = 28) -> str:
    """``text`` cut in the middle to ``limit`` characters, "@random" kept whole."""
    return shorten_name(text, limit)


def shorten_path(path: str, limit: int = 40) -> str:
    """``path`` cut to ``limit`` characters: "…/" and the file's nearest folders."""
    if len(path) <= limit:
        return path
    *folders, kept = path.split("/")
    if len(kept) + 2 > limit:
        return shorten(kept, limit)
    for folder in reversed(folders):
        if len(folder) + len(kept) + 3 > limit:
            break
        kept = f"{folder}/{kept}"
    return f"…/{kept}"


def breakable(name: object) -> str:
    """Escaped text that may wrap after "_", ".", "-" and "/" and before "@"."""
    text = esc(name)
    return re.sub(r"(?<=[_./-])(?=[^_./-])|(?=@)", "<wbr>", text)


def name_cell(name: object) -> str:
    """A table cell with a model name, wrapped at its separators only."""
    return f'<td class="name"><div>{breakable(name)}</div></td>'


def definition_list(items: Iterable[tuple[str, str]]) -> str:
    """Key and value pairs; the values are HTML already."""
    body = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="meta">{body}</dl>'


def html_table(head: Sequence[str], body: Iterable[str], *, css: str = "") -> str:
    """A table that scrolls sideways rather than spill; head and rows are HTML."""
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" if head else ""
    klass = f' class="{css}"' if css else ""
    rows = "".join(body)
    return f'<div class="scroll"><table{klass}>{header}{rows}</table></div>'


def value_html(value: object, depth: int = 0) -> str:
    """Any JSON value as HTML: lists of objects as tables, objects as key lists."""
    if isinstance(value, dict):
        if not value:
            return MISSING
        if depth >= 1:
            return inline_html(value)
        items = [(str(k), value_html(v, depth + 1)) for k, v in value.items()]
        return definition_list(items)
    if isinstance(value, list):
        if not value:
            return MISSING
        shown = value[:MAX_LIST_ITEMS]
        more = ""
        if len(value) > MAX_LIST_ITEMS:
            more = f'<p class="note">… and {len(value) - MAX_LIST_ITEMS} more.</p>'
        if all(isinstance(item, int | float) for item in shown):
            return ", ".join(scalar_html(item) for item in shown) + more
        if all(isinstance(item, dict) for item in shown):
            keys = list(dict.fromkeys(k for item in shown for k in item))
            body = [
                "<tr>"
                + "".join(f"<td>{scalar_html(item.get(k))}</td>" for k in keys)
                + "</tr>"
                for item in shown
            ]
            return html_table([esc(k) for k in keys], body) + more
        if all(isinstance(item, list) for item in shown):
            body = [
                "<tr>" + "".join(f"<td>{scalar_html(v)}</td>" for v in item) + "</tr>"
                for item in shown
            ]
            return html_table([], body) + more
        entries = "".join(f"<li>{value_html(i, depth + 1)}</li>" for i in shown)
        return f"<ul>{entries}</ul>{more}"
    return scalar_html(value)


def inline_html(value: Mapping[str, Any]) -> str:
    """A small object on one line: ``width (min 32, max 640), mode RGB``."""
    parts = [
        f"{esc(k)} ({inline_html(v)})"
        if isinstance(v, dict)
        else f"{esc(k)} {scalar_html(v)}"
        for k, v in value.items()
    ]
    return ", ".join(parts)


def scalar_html(value: object) -> str:
    """One JSON value on one line."""
    if isinstance(value, dict):
        return "<br>".join(f"{esc(k)}: {scalar_html(v)}" for k, v in value.items())
    if isinstance(value, list):
        return esc(json.dumps(value, default=str)[:400])
    if isinstance(value, float):
        return esc(f"{value:.4g}")
    return esc(value)


def thumbnail_uri(path: Path, side: int = THUMBNAIL_SIDE) -> str | None:
    """A small JPEG or PNG data URI of the image, or None when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (side * 2, side * 2))
            picture = _to_rgb(ImageOps.exif_transpose(image))
            picture.thumbnail((side, side))
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
