"""The end of a run: the leaderboard written, its notes, the report refreshed.

:func:`finish_leaderboard` applies the latency and size limits, marks ties and
the Pareto front, sorts and writes leaderboard.csv and leaderboard.json;
:func:`end_notes` says what the table does not; :func:`refresh_report` rewrites
a report.html the folder already has.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyvision.cache import json_safe, write_atomic, write_json_atomic
from lazyvision.errors import LazyVisionError
from lazyvision.evaluation import SPLIT_METRICS, Evaluation, Manifest
from lazyvision.leaderboard import (
    DEFAULT_SORT,
    apply_limits,
    mark_pareto,
    mark_ties,
    sort_rows,
)
from lazyvision.settings import Settings

# The runner's name, which the command line prints and the tests capture.
logger = logging.getLogger("lazyvision.runner")


def finish_leaderboard(
    run_dir: Path,
    evaluations: Mapping[str, Evaluation],
    sort: str,
    manifest: Manifest | None,
    settings: Settings,
) -> pd.DataFrame:
    """Applies the limits, marks ties and the front, sorts, writes the leaderboard.

    Without a manifest (Ctrl-C while the images were read) nothing is written:
    no backbone ran, and the folder's files are still an earlier run's, if any.
    """
    rows = [dict(e.row) for e in evaluations.values()]
    apply_limits(
        rows, max_latency_ms=settings.max_latency_ms, max_params=settings.max_params
    )
    if manifest is not None and rows:
        classes = list(manifest.classes)
        split = sort.split("_", 1)[0] if sort.startswith(SPLIT_METRICS) else "val"
        predictions = {}
        for spec, evaluation in evaluations.items():
            frame = evaluation.predictions
            if frame is None or evaluation.row.get("status") != "ok":
                continue
            part = frame[frame["split"] == split]
            if len(part):
                y_true = np.array([classes.index(str(v)) for v in part["label"]])
                proba = part[[f"p:{c}" for c in classes]].to_numpy(dtype=float)
                predictions[spec] = (y_true, proba)
        positive = (
            classes.index(manifest.positive_label) if manifest.positive_label else None
        )
        metric = sort if sort.startswith(SPLIT_METRICS) else DEFAULT_SORT
        mark_ties(
            rows,
            metric=metric,
            predictions=predictions,
            positive=positive,
            num_resamples=settings.num_resamples or 1000,
            seed=settings.seed,
        )
        mark_pareto(rows, quality=metric)
    rows = sort_rows(rows, metric=sort)
    frame = pd.DataFrame(rows)
    if manifest is not None:
        csv = frame.to_csv(index=False).encode()
        write_atomic(run_dir / "leaderboard.csv", csv)
        write_json_atomic(run_dir / "leaderboard.json", json_safe(rows))
    frame.attrs["run_dir"] = str(run_dir)
    return frame


def end_notes(board: pd.DataFrame, run_dir: Path) -> list[str]:
    """What the leaderboard does not show: which results were read back rather
    than computed, limits that left no backbone ranked, and the backbones of
    earlier runs in the folder, ranked or left out."""
    rows = board.to_dict(orient="records")
    earlier = list(board.attrs.get("earlier_models", []))
    own = [row for row in rows if row.get("model") not in earlier]
    left_out = list(board.attrs.get("left_out_models", []))
    return [
        *_reuse_notes(own),
        *_limit_notes(rows),
        *_folder_notes(run_dir, earlier, left_out),
    ]


def _reuse_notes(rows: Sequence[Mapping[Hashable, Any]]) -> list[str]:
    """Which backbones ran on no image: their embeddings were all cached."""
    reused = [
        str(row.get("model"))
        for row in rows
        if row.get("status") == "ok" and row.get("num_computed") == 0
    ]
    if not reused:
        return []
    return [
        "embeddings read back from an earlier run or the cache, no image run "
        f"through the backbone again: {', '.join(reused)} ({len(reused)} of "
        f"{len(rows)})"
    ]


def _limit_notes(rows: Sequence[Mapping[Hashable, Any]]) -> list[str]:
    """Says so when the limits left no backbone ranked."""
    if not rows or any(row.get("status") != "excluded" for row in rows):
        return []
    return [
        "every backbone is over --max-latency-ms or --max-params (the reasons are "
        "in the table), so none is ranked; raise the limits or leave them out"
    ]


def _folder_notes(run_dir: Path, earlier: list[str], left_out: list[str]) -> list[str]:
    """Which backbones of earlier runs in the folder are ranked, and which not."""
    notes = []
    if earlier:
        notes.append(
            f"also ranked, finished in {run_dir} by an earlier run on the same data "
            f"and settings: {', '.join(earlier)}"
        )
    if left_out:
        notes.append(
            f"{run_dir / 'models'} also holds backbones this leaderboard leaves "
            f"out: {', '.join(left_out)}; name them in --models to run them again"
        )
    return notes


def refresh_report(run_dir: Path, board: pd.DataFrame) -> None:
    """Rewrites the folder's report.html, if it has one, to match the leaderboard.

    A report left from an earlier call would disagree with the new leaderboard
    without a word. Rewriting it costs about 0.05 s on a small run; one that
    cannot be rewritten is removed rather than left wrong.
    """
    path = run_dir / "report.html"
    if not path.is_file():
        return
    # Imported here: the report's plots bring scikit-learn, half a second and
    # 35 MiB that a run without a report should not pay.
    from lazyvision.report import write_report

    try:
        board.attrs["report"] = str(write_report(run_dir))
    except (LazyVisionError, OSError) as err:
        path.unlink(missing_ok=True)
        logger.warning(
            "removed %s, an earlier call's report, as it could not be rewritten "
            "for this leaderboard (%s); `lazyvision report %s` writes a new one",
            path,
            err,
            run_dir,
        )
