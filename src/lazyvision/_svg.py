"""Inline SVG plots of the report: axes, ticks, the speed scatter and the curves."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.metrics import precision_recall_curve

from lazyvision._html import esc, fmt_speed, metric_name, shorten

# Okabe-Ito colours: distinguishable for readers with colour-vision deficiency.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")


@dataclass(frozen=True)
class Axes:
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


def svg_frame(
    axes: Axes,
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
        f'role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>',
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
        f'text-anchor="middle">{esc(x_label)}</text>'
        f'<text x="14" y="{middle_y:.1f}" font-size="12.5" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle_y:.1f})">{esc(y_label)}</text>'
    )
    return parts


def _tick(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multipliers = (1, 2, 5) if last - first <= 3 else (1,)
    candidates = (m * 10.0**p for p in range(first, last + 1) for m in multipliers)
    return [tick for tick in candidates if low <= tick <= high]


class ScatterPoint(NamedTuple):
    """One backbone in the speed scatter: its quality with the interval."""

    name: str
    speed: float
    value: float
    low: float
    high: float
    pareto: bool


def scatter_figure(
    points: Sequence[ScatterPoint], *, split: str, metric: str, lower_is_better: bool
) -> str:
    """The quality-against-speed figure, with its Pareto front as a step line."""
    if not any(point.pareto for point in points):
        points = with_pareto(points, lower_is_better=lower_is_better)

    # A factor of 1.6 either side guarantees a 1-2-5 tick inside the x range.
    speeds = [p.speed for p in points]
    x_range = (min(speeds) / 1.6, max(speeds) * 1.6)
    y_low, y_high = min(p.low for p in points), max(p.high for p in points)
    pad = (y_high - y_low) * 0.08 or 0.05
    low, high = y_low - pad, y_high + pad
    if metric != "log_loss" and y_low >= 0.0 and y_high <= 1.0:
        low, high = max(low, 0.0), min(high, 1.0)  # no room above a perfect score
    y_ticks = nice_ticks(low, high)
    axes = Axes(960, 420, x_range, (y_ticks[0], y_ticks[-1]), log_x=True)
    label = f"{split} {metric_name(metric)}"
    parts = svg_frame(
        axes,
        log_ticks(*x_range),
        y_ticks,
        "images per second (log scale)",
        label,
        f"{label} against speed",
        "scatter",
    )

    front = sorted((p for p in points if p.pareto), key=lambda p: p.speed)
    if front:
        path = f"M{axes.x(front[0].speed):.1f},{axes.y(front[0].value):.1f}"
        for before, after in itertools.pairwise(front):
            path += f" L{axes.x(before.speed):.1f},{axes.y(after.value):.1f}"
            path += f" L{axes.x(after.speed):.1f},{axes.y(after.value):.1f}"
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
            f'stroke-width="1.3"><title>{esc(name)}: {metric_name(metric)} {value:.3f} '
            f"[{low:.3f}, {high:.3f}], {fmt_speed(speed)} images/s</title></circle>"
        )
        parts.append(_point_label(axes, placed, name, x, y))
    parts.append("</svg>")
    return (
        "<figure>"
        + "".join(parts)
        + '<ul class="legend"><li><span class="swatch" style="background:#c48a1a">'
        "</span>Pareto front (dashed step line)</li><li>"
        '<span class="swatch" style="border:1.3px solid #1d2330"></span>other '
        "backbones</li><li>vertical bars: 95% interval</li></ul></figure>"
    )


def with_pareto(
    points: Sequence[ScatterPoint], *, lower_is_better: bool
) -> list[ScatterPoint]:
    """Marks the front when the rows carry no pareto flag (an older run folder)."""
    sign = -1.0 if lower_is_better else 1.0
    marked = []
    for point in points:
        dominated = any(
            other.speed >= point.speed
            and sign * other.value >= sign * point.value
            and (other.speed, other.value) != (point.speed, point.value)
            for other in points
        )
        marked.append(point._replace(pareto=not dominated))
    return marked


def _point_label(
    axes: Axes, placed: list[tuple[float, float, float]], name: str, x: float, y: float
) -> str:
    """A label beside its point, nudged down past labels already placed."""
    text = shorten(name)
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
        f'text-anchor="{anchor}" fill="#1d2330">{esc(text)}'
        f"<title>{esc(name)}</title></text>"
    )


def precision_steps(
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


def curve_svg(
    lines: Sequence[tuple[np.ndarray, np.ndarray, str]],
    x_label: str,
    y_label: str,
    title: str,
    element_id: str,
    *,
    steps: bool = False,
    baseline: float | None = None,
) -> str:
    axes = Axes(420, 400, (0.0, 1.0), (0.0, 1.02), margin=(12, 16, 50, 56))
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    parts = svg_frame(axes, ticks, ticks, x_label, y_label, title, element_id)
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
    return f"<figcaption>{esc(title)}</figcaption>" + "".join(parts)
