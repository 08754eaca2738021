"""What a run folder records across calls, and reading back what they left.

A run folder accumulates: each backbone's result is saved the moment it is
finished (:func:`save_evaluation`), a rerun reads back those finished on the same
images, labels and settings (:func:`read_finished`, :func:`read_earlier`), and
run.json records every call on the folder (:func:`describe_run`,
:func:`write_run_info`). :func:`default_run_dir` names the folder a run gets, and
:func:`check_run_dir_holds` refuses one that holds another data set's run.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lazyvision import __version__
from lazyvision.cache import json_safe, stable_hash, write_atomic, write_json_atomic
from lazyvision.data import Dataset
from lazyvision.errors import DataError
from lazyvision.evaluation import Evaluation, Manifest, result_key, safe_name
from lazyvision.features import resolve_device, resolve_precision
from lazyvision.leaderboard import INTERRUPTED
from lazyvision.settings import Settings


def check_run_dir_holds(run_dir: Path, dataset: Dataset) -> None:
    """Refuses a run folder that holds a run on another data set.

    Rerunning on the same folder resumes, but the earlier run's rows, predictions
    and report would otherwise be replaced one backbone at a time by another data
    set's, leaving a folder that is neither.
    """
    try:
        earlier = json.loads((run_dir / "run.json").read_text())
        recorded = earlier.get("source_path")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(recorded, str):
        return
    source = str(Path(dataset.source).resolve())
    if recorded != source:
        raise DataError(
            f"the run folder {str(run_dir)!r} holds a run on another data set "
            f"({recorded!r}, not {source!r}); give another folder (--output), or "
            "delete this one to replace that run"
        )


def default_run_dir(dataset: Dataset) -> Path:
    """``lazyvision-runs/<data set name>``: the same command resumes the same run."""
    source = Path(dataset.source).resolve()
    # The path's hash keeps two data sets in folders of the same name apart.
    name = safe_name(source.stem) or "data"
    return Path("lazyvision-runs") / f"{name}-{stable_hash(str(source))[:6]}"


@dataclass
class Earlier:
    """What earlier calls left in a run folder, beyond this call's results."""

    found: dict[str, Evaluation] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    def describe(self, board: pd.DataFrame, specs: Sequence[str]) -> None:
        """Names them in the board's attrs: which joined it, which did not."""
        board.attrs["earlier_models"] = [s for s in self.found if s not in specs]
        board.attrs["left_out_models"] = list(self.left_out)


def read_earlier(
    run_dir: Path,
    specs: Sequence[str],
    manifest: Manifest,
    settings: Settings,
    evaluated: Collection[str],
) -> Earlier:
    """The finished results in the run folder that belong in its leaderboard.

    A run folder accumulates: a rerun with other ``models`` ranks its backbones
    with every one an earlier call finished there on the same images, labels and
    settings (the result key matches). A backbone of this call that Ctrl-C kept
    from starting is read back too, if it finished earlier. Results under other
    settings or data, and earlier failures (retried only when named again), stay
    out of the ranking and are named in ``left_out``.
    """
    earlier = Earlier()
    skipped = {safe_name(spec) for spec in evaluated}
    own = {safe_name(spec) for spec in specs}
    for folder in sorted((run_dir / "models").glob("*/")):
        if folder.name in skipped:
            continue
        row = _read_row(folder / "row.json")
        model = None if row is None else row.get("model")
        if isinstance(model, str):
            finished = read_finished(folder, result_key(model, manifest, settings))
            if finished is not None:
                earlier.found[model] = finished
            elif folder.name not in own:
                earlier.left_out.append(f"{model} (other data or settings)")
            continue
        failed = _read_row(folder / "failed.json")
        if failed is not None and folder.name not in own:
            earlier.left_out.append(f"{failed.get('model') or folder.name} (failed)")
    return earlier


def _read_row(path: Path) -> dict[str, Any] | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def save_evaluation(folder: Path, key: str, evaluation: Evaluation) -> None:
    """Predictions first, then the row: a row on disk means the model is done."""
    if evaluation.predictions is not None:
        csv = evaluation.predictions.to_csv(index=False).encode()
        write_atomic(folder / "predictions.csv", csv)
    if evaluation.row.get("status") == "ok":
        write_json_atomic(
            folder / "row.json", json_safe({**evaluation.row, "key": key})
        )
    else:
        # A failure is recorded for the report but retried on the next run.
        write_json_atomic(folder / "failed.json", json_safe(evaluation.row))


def read_finished(folder: Path, key: str) -> Evaluation | None:
    try:
        row = json.loads((folder / "row.json").read_text())
        predictions = pd.read_csv(
            folder / "predictions.csv", dtype={"label": str, "predicted": str}
        )
    except (OSError, ValueError):
        return None
    if row.pop("key", None) != key:
        return None
    row["num_computed"] = 0
    return Evaluation(row=row, predictions=predictions)


#: What run.json's "runs" keeps of each call on the run folder.
_RUN_FIELDS = ("started", "finished", INTERRUPTED, "stopped_by", "status", "models")


def read_earlier_runs(run_dir: Path) -> list[dict[str, Any]]:
    """The calls an earlier run.json in the folder records, oldest first.

    A run.json written before the history was kept records one call, at its top
    level.
    """
    info = _read_row(run_dir / "run.json")
    if info is None:
        return []
    runs = info.get("runs")
    if isinstance(runs, list):
        return [run for run in runs if isinstance(run, dict)]
    return [_run_entry(info)] if "started" in info else []


def _run_entry(info: Mapping[str, Any]) -> dict[str, Any]:
    return {key: info[key] for key in _RUN_FIELDS if key in info}


def write_run_info(
    run_dir: Path, info: Mapping[str, Any], earlier_runs: Sequence[Mapping[str, Any]]
) -> None:
    """Writes run.json: this call at the top level, and every call in "runs".

    Rerunning on a folder resumes it and rewrites its leaderboard, so the top
    level (settings, notes, start, end and status) describes the call that wrote
    the leaderboard; "runs" keeps the start, end, status and backbones of every
    call on the folder, oldest first, this one last, so a rerun (a second
    ``lazyvision demo``, say) loses no record of the first.
    """
    runs = [*earlier_runs, _run_entry(info)]
    write_json_atomic(run_dir / "run.json", json_safe({**info, "runs": runs}))


def describe_run(
    dataset: Dataset,
    classes: Sequence[str],
    positive_label: str | None,
    sort: str,
    settings: Settings,
    started_at: str,
    specs: Sequence[str],
) -> dict[str, Any]:
    """What run.json records of this call; its status is "running" until the run
    ends, when it becomes "finished" or "interrupted" (Ctrl-C or SIGTERM, named
    in "stopped_by"). Its notes are the
    data set's; a finished run adds the notes said at its end (``end_notes``).
    ``write_run_info`` adds the history of the calls on the folder."""
    import timm

    device = resolve_device(settings.device)
    return {
        "source": dataset.source,
        "source_path": str(Path(dataset.source).resolve()),
        "layout": dataset.layout,
        "classes": list(classes),
        "positive_label": positive_label,
        "sort_metric": sort,
        "models": list(specs),
        "settings": {
            k: (v if not isinstance(v, Mapping) else {a: str(b) for a, b in v.items()})
            for k, v in dataclasses.asdict(settings).items()
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "timm": timm.__version__,
            "lazyvision": __version__,
            "device": str(device),
            "precision": str(
                resolve_precision(settings.precision, device)
            ).removeprefix("torch."),
            "cpu": platform.processor() or platform.machine(),
            "platform": platform.platform(),
        },
        "notes": list(dataset.notes),
        "status": "running",
        "started": started_at,
        "finished": None,
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
