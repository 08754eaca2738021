"""Reading a run folder for the report: run.json, the rows and the predictions."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyvision._html import to_number
from lazyvision.errors import DataError
from lazyvision.leaderboard import DEFAULT_SORT, INTERRUPTED, apply_limits, sort_rows
from lazyvision.metrics import LOWER_IS_BETTER, METRICS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """One backbone's predictions.csv: a row per image."""

    split: np.ndarray
    filepath: tuple[str, ...]
    label: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray  # (N, K) in the run's class order; NaN where a column is absent
    origin: tuple[str, ...] = ()  # "val.csv row 7" or "val/cat/x.png"; may be empty

    def select(self, split: str) -> np.ndarray:
        """Row indices of one split."""
        return np.flatnonzero(self.split == split)


@dataclass(frozen=True)
class RunFolder:
    """What the report shows of a run folder."""

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
        """Whether a smaller value of the quality metric is better."""
        return self.metric in LOWER_IS_BETTER

    @property
    def ok_rows(self) -> list[Mapping[str, Any]]:
        """The ranked rows, best first."""
        return [row for row in self.rows if row.get("status") == "ok"]

    @property
    def settings(self) -> Mapping[str, Any]:
        """The run's settings from run.json; empty for an older folder."""
        settings = self.info.get("settings")
        return settings if isinstance(settings, dict) else {}

    @property
    def unfinished(self) -> bool:
        """Whether run.json still says the run is going: it never ended normally."""
        return self.info.get("status") == "running"

    @property
    def missing_models(self) -> list[str]:
        """The backbones the run was asked for that have no row here."""
        requested = self.info.get("models")
        if not isinstance(requested, list):
            return []
        present = {str(row.get("model")) for row in self.rows}
        return [str(model) for model in requested if str(model) not in present]

    @property
    def num_repeats(self) -> int:
        """Validation splits scored per backbone (1 when val was not redrawn)."""
        found = [to_number(row.get("num_repeats")) for row in self.rows]
        found.append(to_number(self.settings.get("num_repeats")))
        return max((int(n) for n in found if n is not None), default=1)


def load_run(run_dir: Path) -> RunFolder:
    """Reads run.json, the rows and dataset.json; raises DataError if unusable."""
    if not run_dir.is_dir():
        raise DataError(f"run folder {str(run_dir)!r} does not exist or is no folder")
    info = read_json(run_dir / "run.json", required=True)
    if not isinstance(info, dict):
        raise DataError(f"{run_dir / 'run.json'}: expected a JSON object, got {info!r}")
    dataset = read_json(run_dir / "dataset.json", required=False)

    model_dirs: dict[str, Path] = {}
    model_rows: list[Mapping[str, Any]] = []
    # A failed backbone leaves failed.json instead of row.json, and no predictions.
    for folder in sorted(run_dir.glob("models/*/")):
        for name in ("row.json", "failed.json"):
            row = read_json(folder / name, required=False)
            if isinstance(row, dict):
                model_dirs[str(row.get("model") or folder.name)] = folder
                model_rows.append(row)
                break

    board = read_json(run_dir / "leaderboard.json", required=False)
    rows: list[Mapping[str, Any]] = []
    # A run still "running" has not written its leaderboard: one on disk is an
    # earlier call's, without what this one finished.
    if isinstance(board, list) and info.get("status") != "running":
        rows = [row for row in board if isinstance(row, dict)]
    if not rows:
        rows = model_rows
    if not any(row.get("status") != INTERRUPTED for row in rows):
        raise DataError(_no_rows_message(run_dir, info))

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
        rows = _rank_model_rows(model_rows, info, f"{split}_{metric}")
    return RunFolder(
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


def _no_rows_message(run_dir: Path, info: Mapping[str, Any]) -> str:
    """Why a run folder has nothing to report, by the status run.json records."""
    folder = str(run_dir)
    resume = f"run the same `lazyvision rank` command with --output {folder} to resume"
    status = info.get("status")
    if status == INTERRUPTED:
        cause = info.get("stopped_by") or "Ctrl-C"
        return (
            f"the run in {folder!r} was interrupted ({cause}) before any backbone "
            f"finished, so there is nothing to report; {resume}"
        )
    if status == "running":
        return (
            f"the run in {folder!r} has not finished a backbone: it is still "
            f"running, or was stopped before one finished; {resume}"
        )
    return (
        f"run folder {folder!r} has no rows: leaderboard.json is missing or "
        "empty and there is no models/*/row.json; run `lazyvision rank` first"
    )


def read_json(path: Path, *, required: bool) -> Any:
    """The parsed file; a missing or broken optional file is None, with a warning."""
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


def _rank_model_rows(
    rows: list[Mapping[str, Any]], info: Mapping[str, Any], key: str
) -> list[Mapping[str, Any]]:
    """Rows read from models/*: the run's limits applied, in leaderboard order."""
    settings = info.get("settings")
    limits = settings if isinstance(settings, dict) else {}
    copies = [dict(row) for row in rows]
    try:
        apply_limits(
            copies,
            max_latency_ms=limits.get("max_latency_ms"),
            max_params=limits.get("max_params"),
        )
    except DataError as err:
        logger.warning("run.json limits not applied: %s", err)
    return list(sort_rows(copies, metric=key))


def load_predictions(run: RunFolder, model: str) -> Predictions | None:
    """The backbone's predictions.csv, or None (with a warning) when unusable."""
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
    return Predictions(
        split=table["split"].to_numpy(dtype=object),
        filepath=tuple(filepath),
        label=table["label"].to_numpy(dtype=object),
        predicted=table["predicted"].to_numpy(dtype=object),
        proba=proba,
        origin=tuple(table["origin"]) if "origin" in table else (),
    )
