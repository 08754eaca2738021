"""Ranking backbones: evaluate each on the data set, write the run folder.

:func:`evaluate_backbone` is the unit of work: (backbone spec, manifest, cache
folder, settings) in, one leaderboard row and its predictions out. It reads and
writes nothing but the cache, so it can run in another process or on another
machine. :func:`rank` checks the data, decodes every image once, evaluates each
backbone in turn, saves each result the moment it is finished, and writes the
leaderboard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyvision import __version__
from lazyvision.backbones import (
    DEFAULT_MODELS,
    Backbone,
    Preprocessing,
    count_macs,
    create_backbone,
    resolve_preprocessing,
)
from lazyvision.cache import (
    ImageFacts,
    ResultStore,
    default_cache_dir,
    stable_hash,
    write_atomic,
    write_json_atomic,
)
from lazyvision.check import DatasetReport, check_dataset, raise_for_problems
from lazyvision.data import Dataset, Sample, load_dataset
from lazyvision.errors import BudgetExceeded, DataError, ImageError, LazyVisionError
from lazyvision.features import (
    Extraction,
    PixelStore,
    decode_files,
    extract_features,
    feature_key,
    resolve_device,
    resolve_precision,
    store_side,
)
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, file_digest
from lazyvision.leaderboard import mark_pareto, mark_ties, sort_rows
from lazyvision.metrics import (
    METRICS,
    bootstrap_intervals,
    compute_metrics,
    predicts_single_class,
    unavailable_reasons,
)
from lazyvision.probe import fit_probe

logger = logging.getLogger(__name__)

SPLIT_METRICS = ("val", "test")
DEFAULT_SORT = "val_balanced_accuracy"


@dataclass(frozen=True)
class Settings:
    """How backbones are run and scored; everything but the data and the models.

    Attributes:
        batch_size: Images per forward pass (halved on out-of-memory errors).
        precision: "auto" (bfloat16 where the hardware has it), "float32",
            "bfloat16" or "float16".
        device: "auto", "cpu", "cuda" or "cuda:N".
        num_workers: Decoding processes; ``None`` picks from the CPU count.
        positive_label: The positive class of a binary task; ``None`` takes the
            last class in sorted order ("1" of 0/1, "yes" of no/yes).
        num_resamples: Bootstrap resamples for the 95% intervals.
        seed: Seed of the bootstraps and of a drawn validation split.
        weights: Local checkpoint per backbone name.
        allow_download: Whether timm may fetch weights from its hub.
        max_seconds_per_model: Time budget of one backbone, or ``None``.
        max_pixels: Images with more pixels are rejected as decompression bombs.
    """

    batch_size: int = 64
    precision: str = "auto"
    device: str = "auto"
    num_workers: int | None = None
    positive_label: str | None = None
    num_resamples: int = 1000
    seed: int = 0
    weights: Mapping[str, Path] = field(default_factory=dict)
    allow_download: bool = True
    max_seconds_per_model: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DataError(f"batch_size must be 1 or more, got {self.batch_size!r}")
        if self.num_resamples < 0:
            raise DataError(
                f"num_resamples must be 0 or more, got {self.num_resamples!r}"
            )
        budget = self.max_seconds_per_model
        if budget is not None and budget <= 0:
            raise DataError(f"max_seconds_per_model must be positive, got {budget!r}")


@dataclass(frozen=True)
class Entry:
    """One usable image of the manifest."""

    split: str
    origin: str
    path: str
    label: str
    digest: str


@dataclass(frozen=True)
class Manifest:
    """The labelled images a backbone is scored on, in a canonical order.

    Entries are sorted by split and path, so the order of rows in the user's CSV
    files changes nothing downstream: not the probe, not a bootstrap resample.
    """

    entries: tuple[Entry, ...]
    classes: tuple[str, ...]
    positive_label: str | None

    @classmethod
    def build(
        cls,
        samples: Sequence[Sample],
        digests: Mapping[Path, str],
        classes: Sequence[str],
        positive_label: str | None,
    ) -> Manifest:
        entries = sorted(
            (
                Entry(s.split, s.origin, str(s.path), s.label, digests[s.path])
                for s in samples
            ),
            key=lambda e: (_SPLIT_ORDER.get(e.split, 9), e.path, e.origin),
        )
        positive = None
        if len(classes) == 2:
            positive = positive_label if positive_label is not None else classes[-1]
            if positive not in classes:
                raise DataError(
                    f"positive label {positive_label!r} is not a class; classes are "
                    + ", ".join(repr(c) for c in classes)
                )
        return cls(tuple(entries), tuple(classes), positive)

    def split(self, name: str) -> list[Entry]:
        return [e for e in self.entries if e.split == name]

    @property
    def split_names(self) -> tuple[str, ...]:
        present = {e.split for e in self.entries}
        return tuple(s for s in _SPLIT_ORDER if s in present)

    def fingerprint(self) -> str:
        """Identifies the labelled content, whatever the paths or row order."""
        return stable_hash(
            "manifest-v1",
            self.classes,
            self.positive_label,
            sorted((e.split, e.digest, e.label) for e in self.entries),
        )


_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


@dataclass
class Evaluation:
    """One backbone's row and its per-image predictions (``None`` if it failed)."""

    row: dict[str, Any]
    predictions: pd.DataFrame | None


def safe_name(spec: str) -> str:
    """A folder name for a backbone spec."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("._") or "model"


def evaluate_backbone(
    spec: str,
    manifest: Manifest,
    *,
    cache_dir: Path,
    settings: Settings = Settings(),
    pixels: PixelStore | None = None,
    deadline: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Scores one backbone: embeddings, probe, metrics. Never raises for the model.

    A failure of the backbone (unknown name, weights unavailable, an error inside
    the model, the time budget) becomes a row with its status and reason.

    Args:
        spec: Backbone name, e.g. "resnet50", "resnet50@random" or "pixels".
        manifest: The labelled images.
        cache_dir: Cache folder for embeddings and finished results.
        settings: Run settings.
        pixels: Decoded images from the run's decode pass; ``None`` decodes here
            whatever the cache lacks.
        deadline: ``time.monotonic()`` value at which the backbone is stopped.
        progress: Called with the number of images embedded since the last call.

    Returns:
        The row and the predictions.

    Example:
        >>> done = evaluate_backbone("pixels", manifest, cache_dir=c)  # doctest: +SKIP
        >>> done.row["val_balanced_accuracy"]  # doctest: +SKIP
        0.93
    """
    started = time.monotonic()
    if settings.max_seconds_per_model is not None:
        own = started + settings.max_seconds_per_model
        deadline = own if deadline is None else min(deadline, own)
    key = result_key(spec, manifest, settings)
    results = ResultStore(cache_dir / "results")
    cached = results.get(key)
    if cached is not None:
        logger.info("%s: finished result found in the cache", spec)
        row = cached["row"]
        row["num_computed"] = 0
        return Evaluation(row=row, predictions=pd.DataFrame(cached["predictions"]))
    try:
        evaluation = _evaluate(
            spec,
            manifest,
            cache_dir=cache_dir,
            settings=settings,
            pixels=pixels,
            deadline=deadline,
            progress=progress,
        )
    except BudgetExceeded:
        budget = time.monotonic() - started
        logger.warning("%s: stopped after %.1f s, over its time budget", spec, budget)
        return Evaluation(
            failed_row(spec, "timed out", f"stopped after {budget:.1f} s"), None
        )
    except KeyboardInterrupt:
        raise
    except Exception as err:  # one broken backbone must not end the run
        reason = f"{type(err).__name__}: {err}".strip()
        logger.warning("%s failed: %s", spec, reason)
        return Evaluation(failed_row(spec, "failed", reason), None)
    stored = {"row": evaluation.row, "predictions": _records(evaluation.predictions)}
    results.put(key, _clean(stored))
    return evaluation


def result_key(spec: str, manifest: Manifest, settings: Settings) -> str:
    """Identifies a finished evaluation in the cache."""
    weights = settings.weights.get(spec)
    weights_id = None
    if weights is not None:
        with contextlib.suppress(OSError):
            weights_id = file_digest(Path(weights))
    device = resolve_device(settings.device)
    return stable_hash(
        "result-v1",
        __version__,
        spec,
        weights_id,
        manifest.fingerprint(),
        str(resolve_precision(settings.precision, device)),
        device.type,
        settings.num_resamples,
        settings.seed,
    )


def failed_row(spec: str, status: str, reason: str) -> dict[str, Any]:
    """A leaderboard row for a backbone that produced no scores."""
    return {"model": spec, "status": status, "reason": reason}


def _evaluate(
    spec: str,
    manifest: Manifest,
    *,
    cache_dir: Path,
    settings: Settings,
    pixels: PixelStore | None,
    deadline: float | None,
    progress: Callable[[int], None] | None,
) -> Evaluation:
    backbone = create_backbone(
        spec, weights=settings.weights, allow_download=settings.allow_download
    )
    if deadline is not None and time.monotonic() > deadline:
        raise BudgetExceeded("time budget ran out while building the model")
    digests = [e.digest for e in manifest.entries]
    device = resolve_device(settings.device)
    with contextlib.ExitStack() as stack:
        if pixels is None:
            pixels = stack.enter_context(
                _decoded_for(backbone, manifest, cache_dir, settings, device)
            )
        extraction = extract_features(
            backbone,
            digests,
            cache_dir=cache_dir,
            pixels=pixels,
            batch_size=settings.batch_size,
            device=device,
            precision=settings.precision,
            deadline=deadline,
            progress=progress,
        )
    if deadline is not None and time.monotonic() > deadline:
        raise BudgetExceeded("time budget ran out after extraction")

    classes = manifest.classes
    labels = np.array([classes.index(e.label) for e in manifest.entries])
    splits = np.array([e.split for e in manifest.entries])
    train, val = splits == "train", splits == "val"
    probe = fit_probe(
        extraction.embeddings[train],
        labels[train],
        extraction.embeddings[val],
        labels[val],
        num_classes=len(classes),
    )
    proba = probe.predict_proba(extraction.embeddings)

    speed = _speed(backbone, extraction, cache_dir)
    row: dict[str, Any] = {
        "model": spec,
        "status": "ok",
        "reason": None,
        "weights_source": backbone.weights_source,
        "architecture": backbone.architecture,
        "input_size": "x".join(str(s) for s in backbone.preprocessing.input_size),
        "preprocessing": backbone.preprocessing.describe(),
        "precision": extraction.dtype,
        "embedding_size": int(extraction.embeddings.shape[1]),
        "num_params": backbone.num_params,
        "macs_per_image": speed.get("macs_per_image"),
        "extract_seconds": round(extraction.seconds, 4),
        "images_per_second": speed.get("images_per_second"),
        "latency_ms": speed.get("latency_ms"),
        "head_fit_seconds": round(probe.fit_seconds, 4),
        "chosen_C": probe.C,
        "num_computed": extraction.num_computed,
    }
    for split in ("train", *SPLIT_METRICS):
        row[f"num_{split}"] = int((splits == split).sum())
    positive = (
        classes.index(manifest.positive_label) if manifest.positive_label else None
    )
    for split in SPLIT_METRICS:
        mask = splits == split
        if mask.any():
            row.update(
                _split_scores(split, labels[mask], proba[mask], positive, settings)
            )
    row["single_class"] = predicts_single_class(proba[val])
    if row["single_class"]:
        logger.warning("%s predicts a single class for every validation image", spec)
    return Evaluation(row=row, predictions=_predictions(manifest, labels, proba))


def _split_scores(
    split: str,
    labels: np.ndarray,
    proba: np.ndarray,
    positive: int | None,
    settings: Settings,
) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    values = compute_metrics(labels, proba, positive=positive)
    intervals: Mapping[str, tuple[float, float] | None] = {}
    if settings.num_resamples > 0:
        intervals = bootstrap_intervals(
            labels,
            proba,
            positive=positive,
            num_resamples=settings.num_resamples,
            seed=settings.seed,
        )
    for metric in METRICS:
        value = values.get(metric)
        scores[f"{split}_{metric}"] = value
        interval = intervals.get(metric)
        scores[f"{split}_{metric}_low"] = interval[0] if interval else None
        scores[f"{split}_{metric}_high"] = interval[1] if interval else None
    reasons = unavailable_reasons(labels, proba, positive=positive)
    if reasons:
        scores[f"{split}_unavailable"] = "; ".join(
            f"{k}: {v}" for k, v in reasons.items()
        )
    return scores


def _predictions(
    manifest: Manifest, labels: np.ndarray, proba: np.ndarray
) -> pd.DataFrame:
    classes = manifest.classes
    frame = pd.DataFrame(
        {
            "split": [e.split for e in manifest.entries],
            "origin": [e.origin for e in manifest.entries],
            "filepath": [e.path for e in manifest.entries],
            "label": [e.label for e in manifest.entries],
            "predicted": [classes[i] for i in proba.argmax(axis=1)],
        }
    )
    for index, name in enumerate(classes):
        frame[f"p:{name}"] = proba[:, index]
    return frame


def _speed(
    backbone: Backbone, extraction: Extraction, cache_dir: Path
) -> dict[str, Any]:
    """Throughput and cost, measured now or remembered from the cached extraction."""
    dtype = getattr(torch, extraction.dtype)
    path = cache_dir / "speed" / f"{feature_key(backbone, dtype)}.json"
    known: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(path.read_text())
    measured = extraction.images_per_second
    # A handful of images is too few for a throughput figure worth keeping.
    if measured is not None and (
        extraction.num_computed >= 32 or "images_per_second" not in known
    ):
        known["images_per_second"] = round(measured, 2)
        known["latency_ms"] = round(1000.0 / measured, 3)
    if "macs_per_image" not in known:
        known["macs_per_image"] = count_macs(backbone)
    with contextlib.suppress(OSError):
        write_json_atomic(path, known)
    return known


@contextlib.contextmanager
def _decoded_for(
    backbone: Backbone,
    manifest: Manifest,
    cache_dir: Path,
    settings: Settings,
    device: object,
) -> Iterator[PixelStore]:
    """A pixel store that decodes the manifest's images on demand."""
    sources = {e.digest: Path(e.path) for e in manifest.entries}
    store = PixelStore(
        len(sources),
        store_side([backbone.preprocessing]),
        cache_dir / "tmp",
        sources=sources,
        num_workers=_num_workers(settings),
        max_pixels=settings.max_pixels,
    )
    try:
        yield store
    finally:
        store.close()


def _num_workers(settings: Settings) -> int:
    if settings.num_workers is not None:
        return settings.num_workers
    return min(8, os.cpu_count() or 1)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`rank`; the finished part of the run is saved.

    Attributes:
        leaderboard: The rows finished before the interrupt.
        run_dir: Where they were saved.
    """

    def __init__(self, leaderboard: pd.DataFrame, run_dir: Path) -> None:
        super().__init__("interrupted")
        self.leaderboard = leaderboard
        self.run_dir = run_dir


def rank(
    data: str | Path | Dataset,
    *,
    models: Sequence[str] | None = None,
    output: str | Path | None = None,
    cache_dir: str | Path | None = None,
    sort: str = DEFAULT_SORT,
    settings: Settings = Settings(),
    skip_bad: bool = False,
    allow_duplicates: bool = False,
    max_seconds: float | None = None,
    path_column: str = "filepath",
    label_column: str = "label",
    image_root: str | Path | None = None,
    on_model_start: Callable[[str, int], Callable[[int], None] | None] | None = None,
) -> pd.DataFrame:
    """Ranks backbones on a labelled image set and saves the run folder.

    Args:
        data: A folder of split CSVs, one CSV with a split column, a class-folder
            root, or a loaded :class:`~lazyvision.data.Dataset`.
        models: Backbone specs; by default ``backbones.DEFAULT_MODELS``.
        output: The run folder; rerunning on the same folder resumes.
        cache_dir: Embedding cache; defaults to ``$LAZYVISION_CACHE`` or the user's
            cache folder.
        sort: The leaderboard column to sort by.
        settings: How backbones are run and scored.
        skip_bad: Leave unreadable images out (recorded in the run folder) rather
            than stop.
        allow_duplicates: Proceed when the same file is in two splits.
        max_seconds: Time budget of the whole run.
        path_column: File-path column of the CSVs.
        label_column: Label column of the CSVs.
        image_root: Folder that relative paths resolve against.
        on_model_start: Called with (spec, number of images) before each backbone;
            may return a progress callback.

    Returns:
        The leaderboard, sorted; ``.attrs["run_dir"]`` is the run folder.

    Raises:
        DataError: The data cannot be used; the message lists every problem.
        RunInterrupted: Ctrl-C; what finished is saved first.

    Example:
        >>> board = rank("data/", models=["pixels", "resnet50"])  # doctest: +SKIP
        >>> board[["model", "val_balanced_accuracy"]]  # doctest: +SKIP
    """
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    deadline = started + max_seconds if max_seconds is not None else None
    specs = _check_models(models)
    _check_sort(sort)
    dataset = (
        data
        if isinstance(data, Dataset)
        else load_dataset(
            data,
            path_column=path_column,
            label_column=label_column,
            image_root=image_root,
            seed=settings.seed,
        )
    )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run_dir = Path(output) if output is not None else default_run_dir(dataset)
    run_dir.mkdir(parents=True, exist_ok=True)

    side = store_side([p for p in map(_preprocessing_or_none, specs) if p is not None])
    paths = list(dict.fromkeys(s.path for s in dataset.samples))
    store = PixelStore(
        len(paths),
        side,
        cache / "tmp",
        num_workers=_num_workers(settings),
        max_pixels=settings.max_pixels,
    )
    evaluations: dict[str, Evaluation] = {}
    manifest: Manifest | None = None
    try:
        report, digests = _scan(dataset, paths, store, cache, settings)
        _save_dataset_report(run_dir, report)
        raise_for_problems(report, skip_bad=skip_bad, allow_duplicates=allow_duplicates)
        if report.problems:
            logger.warning(
                "left out %d unreadable images; listed in %s",
                len(report.problems),
                run_dir / "skipped_files.csv",
            )
        manifest = Manifest.build(
            report.usable(), digests, dataset.classes, settings.positive_label
        )
        store.sources = {e.digest: Path(e.path) for e in manifest.entries}
        run_info = _run_info(dataset, manifest, sort, settings, started_at, specs)
        write_json_atomic(run_dir / "run.json", _clean(run_info))
        _evaluate_all(
            specs,
            manifest,
            run_dir=run_dir,
            cache_dir=cache,
            settings=settings,
            store=store,
            deadline=deadline,
            on_model_start=on_model_start,
            into=evaluations,
        )
    except KeyboardInterrupt:
        board = _finish(run_dir, evaluations, sort, manifest, settings)
        raise RunInterrupted(board, run_dir) from None
    finally:
        store.close()
    board = _finish(run_dir, evaluations, sort, manifest, settings)
    run_info["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(run_dir / "run.json", _clean(run_info))
    return board


def default_run_dir(dataset: Dataset) -> Path:
    """``lazyvision-runs/<data set name>``: the same command resumes the same run."""
    name = Path(dataset.source).resolve().name
    return Path("lazyvision-runs") / (safe_name(Path(name).stem) or "data")


def _check_models(models: Sequence[str] | None) -> list[str]:
    if models is None:
        return list(DEFAULT_MODELS)
    specs = [m.strip() for m in models if m.strip()]
    if not specs:
        raise DataError("models is empty; name at least one backbone, e.g. 'pixels'")
    duplicated = sorted({m for m in specs if specs.count(m) > 1})
    if duplicated:
        raise DataError(f"models names {', '.join(map(repr, duplicated))} twice")
    return specs


def _check_sort(sort: str) -> None:
    allowed = [f"{split}_{metric}" for split in SPLIT_METRICS for metric in METRICS]
    allowed += ["images_per_second", "num_params", "latency_ms"]
    if sort not in allowed:
        close = difflib.get_close_matches(sort, allowed, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DataError(
            f"sort metric {sort!r} is not a leaderboard column{hint} "
            f"Columns: {', '.join(allowed)}"
        )


def _preprocessing_or_none(spec: str) -> Preprocessing | None:
    try:
        return resolve_preprocessing(spec)
    except LazyVisionError:
        return None  # the evaluation reports the bad name in its row


def _scan(
    dataset: Dataset,
    paths: Sequence[Path],
    store: PixelStore,
    cache_dir: Path,
    settings: Settings,
) -> tuple[DatasetReport, dict[Path, str]]:
    """Hashes every file, decodes those the cache knows nothing of, checks the set."""
    digests: dict[Path, str] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            digests[path] = file_digest(path)
    facts = ImageFacts(cache_dir / "images.sqlite")
    known = facts.get(list(digests.values()))
    infos: dict[Path, ImageInfo | ImageError] = {
        path: known[digest] for path, digest in digests.items() if digest in known
    }
    to_decode = [path for path in paths if path not in infos]
    if to_decode:
        logger.info("decoding %d images", len(to_decode))
        results = decode_files(
            to_decode,
            store=store,
            num_workers=_num_workers(settings),
            max_pixels=settings.max_pixels,
        )
        fresh = []
        for result in results:
            if result.info is not None:
                infos[result.path] = result.info
                digests[result.path] = result.info.digest
                fresh.append(result.info)
            elif result.error is not None:
                infos[result.path] = result.error
        facts.put(fresh)
    pixel_limit = settings.max_pixels
    for path, info in list(infos.items()):
        # Facts are cached without the limit that applied; apply today's.
        if isinstance(info, ImageInfo) and info.width * info.height > pixel_limit:
            infos[path] = ImageError(
                str(path),
                f"over the pixel limit ({info.width} x {info.height} = "
                f"{info.width * info.height} > {pixel_limit})",
            )
    report = check_dataset(dataset, infos=infos, max_pixels=settings.max_pixels)
    return report, digests


def _save_dataset_report(run_dir: Path, report: DatasetReport) -> None:
    write_json_atomic(run_dir / "dataset.json", _clean(report.to_dict()))
    frame = pd.DataFrame(
        [dataclasses.asdict(p) for p in report.problems],
        columns=["split", "origin", "path", "reason"],
    )
    write_atomic(run_dir / "skipped_files.csv", frame.to_csv(index=False).encode())


def _evaluate_all(
    specs: Sequence[str],
    manifest: Manifest,
    *,
    run_dir: Path,
    cache_dir: Path,
    settings: Settings,
    store: PixelStore,
    deadline: float | None,
    on_model_start: Callable[[str, int], Callable[[int], None] | None] | None,
    into: dict[str, Evaluation],
) -> None:
    for spec in specs:
        folder = run_dir / "models" / safe_name(spec)
        key = result_key(spec, manifest, settings)
        finished = _read_finished(folder, key)
        if finished is not None:
            logger.info("%s: finished in an earlier run, read back", spec)
            into[spec] = finished
            continue
        if deadline is not None and time.monotonic() > deadline:
            into[spec] = Evaluation(
                failed_row(spec, "timed out", "not started: the run's budget ran out"),
                None,
            )
            continue
        progress = (
            on_model_start(spec, len(manifest.entries)) if on_model_start else None
        )
        evaluation = evaluate_backbone(
            spec,
            manifest,
            cache_dir=cache_dir,
            settings=settings,
            pixels=store,
            deadline=deadline,
            progress=progress,
        )
        _save_evaluation(folder, key, evaluation)
        into[spec] = evaluation
        row = evaluation.row
        if row["status"] == "ok":
            logger.info(
                "%s: val balanced accuracy %.3f",
                spec,
                row.get("val_balanced_accuracy") or float("nan"),
            )


def _save_evaluation(folder: Path, key: str, evaluation: Evaluation) -> None:
    """Predictions first, then the row: a row on disk means the model is done."""
    if evaluation.predictions is not None:
        csv = evaluation.predictions.to_csv(index=False).encode()
        write_atomic(folder / "predictions.csv", csv)
    if evaluation.row.get("status") == "ok":
        write_json_atomic(folder / "row.json", _clean({**evaluation.row, "key": key}))
    else:
        # A failure is recorded for the report but retried on the next run.
        write_json_atomic(folder / "failed.json", _clean(evaluation.row))


def _read_finished(folder: Path, key: str) -> Evaluation | None:
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


def _finish(
    run_dir: Path,
    evaluations: Mapping[str, Evaluation],
    sort: str,
    manifest: Manifest | None,
    settings: Settings,
) -> pd.DataFrame:
    """Marks ties and the Pareto front, sorts, and writes the leaderboard files."""
    rows = [dict(e.row) for e in evaluations.values()]
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
    write_atomic(run_dir / "leaderboard.csv", frame.to_csv(index=False).encode())
    write_json_atomic(run_dir / "leaderboard.json", _clean(rows))
    frame.attrs["run_dir"] = str(run_dir)
    return frame


def _run_info(
    dataset: Dataset,
    manifest: Manifest,
    sort: str,
    settings: Settings,
    started_at: str,
    specs: Sequence[str],
) -> dict[str, Any]:
    import timm

    device = resolve_device(settings.device)
    return {
        "source": dataset.source,
        "layout": dataset.layout,
        "classes": list(manifest.classes),
        "positive_label": manifest.positive_label,
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
        "started": started_at,
        "finished": None,
    }


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
