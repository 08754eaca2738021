"""Ranking backbones: evaluate each on the data set, write the run folder.

:func:`evaluate_backbone` is the unit of work: (backbone spec, manifest, cache
folder, settings) in, one leaderboard row and its predictions out. It reads and
writes nothing but the cache, so it can run in another process or on another
machine. Each image is embedded once; repeated validation splits refit only the
probe on those embeddings. :func:`rank` checks the data, decodes every image once,
evaluates each backbone in turn, saves each result the moment it is finished,
applies the latency and size limits, and writes the leaderboard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gc
import json
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
    DEMO_MODELS,
    Backbone,
    Preprocessing,
    check_spec,
    count_macs,
    create_backbone,
    offline_weights,
    parse_spec,
    resolve_preprocessing,
)
from lazyvision.cache import (
    CACHE_VERSION,
    ImageFacts,
    ResultStore,
    default_cache_dir,
    stable_hash,
    write_atomic,
    write_json_atomic,
)
from lazyvision.check import DatasetReport, check_dataset, raise_for_problems
from lazyvision.data import Dataset, Sample, load_dataset
from lazyvision.errors import (
    BudgetExceeded,
    DataError,
    ImageError,
    LazyVisionError,
    ModelError,
)
from lazyvision.features import (
    PRECISIONS,
    Extraction,
    PixelStore,
    decode_files,
    extract_features,
    resolve_device,
    resolve_precision,
    store_sides,
)
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, file_digest
from lazyvision.leaderboard import (
    DEFAULT_SORT,
    INTERRUPTED,
    apply_limits,
    mark_pareto,
    mark_ties,
    sort_rows,
)
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


#: The fewest bootstrap resamples that place the ends of a 95% interval.
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class Settings:
    """How backbones are run and scored; everything but the data and the models.

    Attributes:
        batch_size: Images per forward pass (halved on out-of-memory errors).
        precision: "auto" (bfloat16 where the hardware has it), "float32",
            "bfloat16" or "float16".
        device: "auto", "cpu", "cuda" or "cuda:N".
        num_workers: Decoding threads; ``None`` picks from the CPU count, 0
            decodes in the calling thread.
        positive_label: The positive class of a binary task; ``None`` takes the
            last class in sorted order ("1" of 0/1, "yes" of no/yes).
        num_resamples: Bootstrap resamples for the 95% intervals: 0 for none,
            else at least :data:`MIN_RESAMPLES`.
        seed: Seed of the bootstraps and of a drawn validation split.
        weights: Local checkpoint per backbone name.
        allow_download: Whether timm may fetch weights from its hub.
        max_seconds_per_model: Time budget of one backbone, or ``None``.
        max_pixels: Images with more pixels are rejected as decompression bombs.
        num_repeats: Validation splits to score. Above 1, and only when val was
            drawn from train (no val split given), the probe is refitted on
            ``num_repeats - 1`` more stratified draws with seeds ``seed + 1``
            onward, and each row gets the mean, std, min and max of its val
            metrics over all the splits.
        max_latency_ms: Backbones slower than this per image are excluded from
            the ranking (kept in the files with status "excluded").
        max_params: Backbones with more parameters are excluded likewise.
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
    num_repeats: int = 1
    max_latency_ms: float | None = None
    max_params: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DataError(
                f"batch_size (--batch-size) must be 1 or more, got {self.batch_size!r}"
            )
        if self.num_resamples != 0 and not self.num_resamples >= MIN_RESAMPLES:
            raise DataError(
                f"num_resamples (--resamples) must be 0 (no intervals) or at least "
                f"{MIN_RESAMPLES}, got {self.num_resamples!r}: fewer resamples "
                "cannot place a 95% interval's ends"
            )
        workers = self.num_workers
        if workers is not None and workers < 0:
            raise DataError(
                f"num_workers (--workers) must be 0 or more, got {workers!r}; "
                "0 decodes in the calling thread"
            )
        budget = self.max_seconds_per_model
        if budget is not None and budget <= 0:
            raise DataError(
                "max_seconds_per_model (--max-seconds-per-model) must be positive, "
                f"got {budget!r}"
            )
        if isinstance(self.num_repeats, bool) or not isinstance(self.num_repeats, int):
            raise DataError(
                "num_repeats (--repeats) must be a whole number, got "
                f"{self.num_repeats!r}"
            )
        if self.num_repeats < 1:
            raise DataError(
                f"num_repeats (--repeats) must be 1 or more, got {self.num_repeats!r}"
            )
        if self.precision not in PRECISIONS:
            raise DataError(
                f"precision (--precision) must be one of {', '.join(PRECISIONS)}; "
                f"got {self.precision!r}"
            )
        try:
            resolve_device(self.device)
        except ModelError as err:
            raise DataError(f"device (--device): {err}") from err
        for name in ("max_latency_ms", "max_params"):
            limit = getattr(self, name)
            if limit is not None and not (
                isinstance(limit, int | float) and 0 <= limit < math.inf
            ):
                flag = "--" + name.replace("_", "-")
                raise DataError(
                    f"{name} ({flag}) must be 0 or more, or None; got {limit!r}"
                )


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
    ``val_drawn`` says that val was drawn from train rather than given, so it may
    be redrawn (``Settings.num_repeats``).
    """

    entries: tuple[Entry, ...]
    classes: tuple[str, ...]
    positive_label: str | None
    val_drawn: bool = False

    @classmethod
    def build(
        cls,
        samples: Sequence[Sample],
        digests: Mapping[Path, str],
        classes: Sequence[str],
        positive_label: str | None,
        *,
        val_drawn: bool = False,
    ) -> Manifest:
        entries = sorted(
            (
                Entry(s.split, s.origin, str(s.path), s.label, digests[s.path])
                for s in samples
            ),
            key=lambda e: (_SPLIT_ORDER.get(e.split, 9), e.path, e.origin),
        )
        positive = None
        if positive_label is not None and len(classes) != 2:
            raise DataError(
                f"positive label {positive_label!r} applies to a binary task; this "
                f"data set has {len(classes)} classes. Leave it out"
            )
        if len(classes) == 2:
            positive = positive_label if positive_label is not None else classes[-1]
            if positive not in classes:
                raise DataError(
                    f"positive label {positive_label!r} is not a class; classes are "
                    + ", ".join(repr(c) for c in classes)
                )
        return cls(tuple(entries), tuple(classes), positive, val_drawn)

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
    the model, the time budget) becomes a row with its status and reason. With
    ``settings.num_repeats`` above 1 the probe is refitted on redrawn validation
    splits of the same embeddings (see :func:`redraw_val`).

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

    Raises:
        DataError: ``settings.num_repeats`` is above 1 but the manifest's val
            split was given rather than drawn.

    Example:
        >>> done = evaluate_backbone("pixels", manifest, cache_dir=c)  # doctest: +SKIP
        >>> done.row["val_balanced_accuracy"]  # doctest: +SKIP
        0.93
    """
    _check_repeats(settings, val_drawn=manifest.val_drawn, source="the manifest")
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
        predictions = _rekey_predictions(pd.DataFrame(cached["predictions"]), manifest)
        return Evaluation(row=row, predictions=predictions)
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
    # Added only when used, so results without repeats keep their keys.
    repeats = ("repeats", settings.num_repeats) if settings.num_repeats > 1 else ()
    return stable_hash(
        "result",
        CACHE_VERSION,
        __version__,
        spec,
        weights_id,
        manifest.fingerprint(),
        str(resolve_precision(settings.precision, device)),
        device.type,
        settings.num_resamples,
        settings.seed,
        *repeats,
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
    backbone, extraction = _embed(
        spec,
        manifest,
        cache_dir=cache_dir,
        settings=settings,
        pixels=pixels,
        deadline=deadline,
        progress=progress,
    )
    if deadline is not None and time.monotonic() > deadline:
        raise BudgetExceeded("time budget ran out after extraction")

    classes = manifest.classes
    embeddings = extraction.embeddings
    labels = np.array([classes.index(e.label) for e in manifest.entries])
    splits = np.array([e.split for e in manifest.entries])
    train, val = splits == "train", splits == "val"
    probe = fit_probe(
        embeddings[train],
        labels[train],
        embeddings[val],
        labels[val],
        num_classes=len(classes),
    )
    proba = probe.predict_proba(embeddings)

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
        "embedding_size": int(embeddings.shape[1]),
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
    # Judged over every scored image: on a split holding one class, predicting
    # that class everywhere is right, not degenerate.
    scored = splits != "train"
    present = len(np.unique(labels[scored])) > 1
    row["single_class"] = present and predicts_single_class(proba[scored])
    if row["single_class"]:
        logger.warning("%s predicts a single class for every scored image", spec)
    if settings.num_repeats > 1:
        first = {metric: row.get(f"val_{metric}") for metric in METRICS}
        row["num_repeats"] = settings.num_repeats
        row.update(
            _repeated_val_scores(
                embeddings,
                labels,
                splits,
                first=first,
                num_classes=len(classes),
                positive=positive,
                settings=settings,
                deadline=deadline,
            )
        )
    return Evaluation(row=row, predictions=_predictions(manifest, labels, proba))


def _embed(
    spec: str,
    manifest: Manifest,
    *,
    cache_dir: Path,
    settings: Settings,
    pixels: PixelStore | None,
    deadline: float | None,
    progress: Callable[[int], None] | None,
) -> tuple[Backbone, Extraction]:
    """Builds the backbone and embeds every image of the manifest, once."""
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
    return backbone, extraction


def redraw_val(
    labels: np.ndarray, splits: np.ndarray, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Redraws val from the train and val images, as many of each class as before.

    The pool of each class is ordered by its position in ``splits`` (the
    manifest's canonical order), so a draw depends on the seed and the images,
    not on the order of the user's files. Test images are never drawn.

    Args:
        labels: (N,) class indices of the manifest's entries.
        splits: (N,) split names of the entries.
        seed: Seed of the draw.

    Returns:
        The indices of the new train and val images, each in ascending order.

    Example:
        >>> labels = np.array([0, 0, 0, 1, 1, 1, 0])
        >>> splits = np.array(["train"] * 4 + ["val"] * 2 + ["test"])
        >>> train, val = redraw_val(labels, splits, seed=1)
        >>> len(train), len(val), bool(6 in train or 6 in val)
        (4, 2, False)
    """
    rng = np.random.default_rng(seed)
    pool = (splits == "train") | (splits == "val")
    train_parts, val_parts = [], []
    for label in np.unique(labels[pool]):
        members = np.flatnonzero(pool & (labels == label))
        size = int(np.sum((splits == "val") & (labels == label)))
        shuffled = rng.permutation(members)
        val_parts.append(shuffled[:size])
        train_parts.append(shuffled[size:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))


def _repeated_val_scores(
    embeddings: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    *,
    first: Mapping[str, float | None],
    num_classes: int,
    positive: int | None,
    settings: Settings,
    deadline: float | None,
) -> dict[str, float | None]:
    """Mean, std, min and max of each val metric over the drawn and redrawn splits.

    The first split is the one the row is scored on (seed ``settings.seed``); the
    others are redrawn with the following seeds. Only the probe is refitted.
    """
    values = {metric: [first[metric]] for metric in METRICS}
    for offset in range(1, settings.num_repeats):
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded(f"time budget ran out at repeat {offset + 1}")
        train, val = redraw_val(labels, splits, seed=settings.seed + offset)
        probe = fit_probe(
            embeddings[train],
            labels[train],
            embeddings[val],
            labels[val],
            num_classes=num_classes,
        )
        proba = probe.predict_proba(embeddings[val])
        scores = compute_metrics(labels[val], proba, positive=positive)
        for metric in METRICS:
            values[metric].append(scores.get(metric))

    summary: dict[str, float | None] = {}
    for metric, found in values.items():
        defined = np.array([v for v in found if v is not None], dtype=float)
        key = f"val_{metric}"
        summary[f"{key}_mean"] = float(defined.mean()) if defined.size else None
        # The sample standard deviation: the splits are draws from many possible.
        summary[f"{key}_std"] = float(defined.std(ddof=1)) if defined.size > 1 else None
        summary[f"{key}_min"] = float(defined.min()) if defined.size else None
        summary[f"{key}_max"] = float(defined.max()) if defined.size else None
    return summary


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
            "digest": [e.digest for e in manifest.entries],
        }
    )
    for index, name in enumerate(classes):
        frame[f"p:{name}"] = proba[:, index]
    return frame


def _rekey_predictions(cached: pd.DataFrame, manifest: Manifest) -> pd.DataFrame:
    """A cached result's predictions, named by this manifest's files and rows.

    A result is cached by image content, so it may have been computed for the
    same images under other paths; probabilities follow the content digest.
    """
    columns = [f"p:{name}" for name in manifest.classes]
    by_digest = cached.drop_duplicates("digest").set_index("digest")[columns]
    proba = by_digest.loc[[e.digest for e in manifest.entries]].to_numpy(dtype=float)
    labels = np.array([manifest.classes.index(e.label) for e in manifest.entries])
    return _predictions(manifest, labels, proba)


def _speed(
    backbone: Backbone, extraction: Extraction, cache_dir: Path
) -> dict[str, Any]:
    """Throughput (measured, or remembered with the embeddings) and MACs per image.

    MACs depend only on the architecture and its input size, so they are counted
    once and kept in the cache.
    """
    measured = extraction.images_per_second
    height, width = backbone.preprocessing.input_size
    path = (
        cache_dir / "macs" / f"{safe_name(backbone.architecture)}-{height}x{width}.json"
    )
    macs: int | None = None
    try:
        macs = json.loads(path.read_text())["macs_per_image"]
    except (OSError, ValueError, KeyError, TypeError):
        macs = count_macs(backbone)
        with contextlib.suppress(OSError):
            write_json_atomic(path, {"macs_per_image": macs})
    return {
        "images_per_second": round(measured, 2) if measured else None,
        "latency_ms": round(1000.0 / measured, 3) if measured else None,
        "macs_per_image": macs,
    }


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
        store_sides([backbone.preprocessing]),
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
        leaderboard: The run's rows, sorted as a finished run's: those finished
            before the interrupt, then the backbone it stopped and those it kept
            from starting, with status "interrupted" and the reason.
        run_dir: Where they were saved; its run.json has status "interrupted".
        finished: The backbones whose results are saved, in leaderboard order;
            empty when none finished.
    """

    def __init__(self, leaderboard: pd.DataFrame, run_dir: Path) -> None:
        super().__init__("interrupted")
        self.leaderboard = leaderboard
        self.run_dir = run_dir
        rows = leaderboard.to_dict(orient="records")
        self.finished = tuple(
            str(row["model"]) for row in rows if row.get("status") != INTERRUPTED
        )


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
        output: The run folder; rerunning on the same folder resumes, and its
            leaderboard keeps the backbones earlier calls finished there.
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
        The leaderboard, sorted: the backbones of ``models``, and those earlier
        calls finished in the run folder on the same images, labels and
        settings. ``.attrs["run_dir"]`` is the run folder;
        ``.attrs["earlier_models"]`` names the backbones from earlier calls and
        ``.attrs["left_out_models"]`` those the folder holds but the ranking
        leaves out, each with why: scored on other data or settings, or failed.

    Raises:
        DataError: The data cannot be used (the message lists every problem), or
            ``settings.num_repeats`` is above 1 while a val split is given.
        RunInterrupted: Ctrl-C; what finished is saved first.

    Example:
        >>> board = rank("data/", models=["pixels", "resnet50"])  # doctest: +SKIP
        >>> board[["model", "val_balanced_accuracy"]]  # doctest: +SKIP
    """
    started = time.monotonic()
    started_at = _now()
    if max_seconds is not None and not max_seconds > 0:
        raise DataError(
            f"max_seconds (--max-seconds) must be a positive number of seconds, "
            f"got {max_seconds!r}"
        )
    deadline = started + max_seconds if max_seconds is not None else None
    specs = _check_models(models, allow_download=settings.allow_download)
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
    if len(dataset.classes) < 2:
        raise DataError(
            f"dataset {dataset.source!r} has one class in train "
            f"({', '.join(map(repr, dataset.classes))}); ranking backbones needs at "
            "least two classes to tell apart"
        )
    val_drawn = dataset.val_drawn
    _check_repeats(settings, val_drawn=val_drawn, source=repr(dataset.source))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run_dir = Path(output) if output is not None else default_run_dir(dataset)
    _check_run_dir_holds(run_dir, dataset)
    run_dir.mkdir(parents=True, exist_ok=True)

    sides = store_sides(
        [p for p in map(_preprocessing_or_none, specs) if p is not None]
    )
    paths = list(dict.fromkeys(s.path for s in dataset.samples))
    store = PixelStore(
        len(paths),
        sides,
        cache / "tmp",
        num_workers=_num_workers(settings),
        max_pixels=settings.max_pixels,
    )
    evaluations: dict[str, Evaluation] = {}
    manifest: Manifest | None = None
    run_info: dict[str, Any] | None = None
    # The objects that exist before the run (torch, timm and pandas loaded: about
    # 400,000 of them) stay out of its full garbage collections, 0.15 s a pass.
    gc.freeze()
    try:
        report, digests = _scan(dataset, paths, store, cache, settings)
        _save_dataset_report(run_dir, report)
        raise_for_problems(report, skip_bad=skip_bad, allow_duplicates=allow_duplicates)
        if report.problems:
            count = len(report.problems)
            logger.warning(
                "left out %d unreadable %s; listed in %s",
                count,
                "image" if count == 1 else "images",
                run_dir / "skipped_files.csv",
            )
        manifest = Manifest.build(
            report.usable(),
            digests,
            dataset.classes,
            settings.positive_label,
            val_drawn=val_drawn,
        )
        store.sources = {e.digest: Path(e.path) for e in manifest.entries}
        run_info = _run_info(
            dataset,
            manifest.classes,
            manifest.positive_label,
            sort,
            settings,
            started_at,
            specs,
        )
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
        earlier = _Earlier()
        if manifest is not None:
            earlier = _read_earlier(run_dir, specs, manifest, settings, evaluations)
        for spec in specs:
            if spec not in evaluations and spec not in earlier.found:
                reason = "not started: the run was interrupted (Ctrl-C)"
                row = failed_row(spec, INTERRUPTED, reason)
                evaluations[spec] = Evaluation(row, None)
        board = _finish(run_dir, evaluations | earlier.found, sort, manifest, settings)
        earlier.describe(board, specs)
        # Stopped while the images were read, a rerun leaves an earlier run's
        # run.json as it was; a first run records that it was interrupted.
        if run_info is None and not (run_dir / "run.json").exists():
            run_info = _run_info(
                dataset,
                tuple(dataset.classes),
                settings.positive_label,
                sort,
                settings,
                started_at,
                specs,
            )
        if run_info is not None:
            run_info["status"] = INTERRUPTED
            run_info[INTERRUPTED] = _now()
            write_json_atomic(run_dir / "run.json", _clean(run_info))
        raise RunInterrupted(board, run_dir) from None
    finally:
        store.close()
        gc.unfreeze()
    earlier = _read_earlier(run_dir, specs, manifest, settings, evaluations)
    board = _finish(run_dir, evaluations | earlier.found, sort, manifest, settings)
    earlier.describe(board, specs)
    run_info.update(status="finished", finished=_now())
    write_json_atomic(run_dir / "run.json", _clean(run_info))
    return board


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_run_dir_holds(run_dir: Path, dataset: Dataset) -> None:
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


def _check_repeats(settings: Settings, *, val_drawn: bool, source: str) -> None:
    if settings.num_repeats > 1 and not val_drawn:
        raise DataError(
            f"num_repeats (--repeats) is {settings.num_repeats!r}, but repeats need "
            f"a training set only: {source} gives a val split, and only a split "
            "drawn from train can be redrawn. Give train images only (class "
            "folders without train/val, or train.csv alone), or use num_repeats=1"
        )


def _check_models(
    models: Sequence[str] | str | None, *, allow_download: bool = True
) -> list[str]:
    """The specs to run; a misspelt name stops the run before any data is read."""
    if models is None:
        return list(DEFAULT_MODELS) if allow_download else _offline_default()
    if isinstance(models, str):
        models = models.split(",")
    specs = [m.strip() for m in models if m.strip()]
    if not specs:
        raise DataError("models is empty; name at least one backbone, e.g. 'pixels'")
    duplicated = sorted({m for m in specs if specs.count(m) > 1})
    if duplicated:
        raise DataError(
            f"models (--models) names {', '.join(map(repr, duplicated))} twice"
        )
    for spec in specs:
        try:
            check_spec(spec)
        except ModelError as err:
            raise DataError(f"models (--models): {err}") from err
    return specs


def _offline_default() -> list[str]:
    """The default set without downloads: its backbones whose weights are here,
    and the packaged ones, rather than a row of missing weights for each."""
    here = [spec for spec in DEFAULT_MODELS if offline_weights(spec) is not None]
    missing = [spec for spec in DEFAULT_MODELS if spec not in here]
    if not missing:
        return here
    packaged = [
        spec
        for spec in DEMO_MODELS
        if spec not in here
        and parse_spec(spec).random_weights is False
        and offline_weights(spec) is not None
    ]
    logger.warning(
        "downloads are off and %d of the default backbones have no weights here "
        "(%s)%s; `lazyvision models --offline` lists what is here, and --models "
        "picks backbones",
        len(missing),
        ", ".join(missing),
        f": running the packaged {', '.join(packaged)} instead" if packaged else "",
    )
    return [*packaged, *here]


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
        # An unreadable file gets its reason from the decode pass below.
        with contextlib.suppress(OSError, ImageError):
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
        try:
            evaluation = evaluate_backbone(
                spec,
                manifest,
                cache_dir=cache_dir,
                settings=settings,
                pixels=store,
                deadline=deadline,
                progress=progress,
            )
        except KeyboardInterrupt:
            reason = "stopped by Ctrl-C while running; a rerun resumes it"
            into[spec] = Evaluation(failed_row(spec, INTERRUPTED, reason), None)
            raise
        _save_evaluation(folder, key, evaluation)
        into[spec] = evaluation
        row = evaluation.row
        if row["status"] == "ok":
            logger.info(
                "%s: val balanced accuracy %.3f",
                spec,
                row.get("val_balanced_accuracy") or float("nan"),
            )


@dataclass
class _Earlier:
    """What earlier calls left in a run folder, beyond this call's results."""

    found: dict[str, Evaluation] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    def describe(self, board: pd.DataFrame, specs: Sequence[str]) -> None:
        """Names them in the board's attrs: which joined it, which did not."""
        board.attrs["earlier_models"] = [s for s in self.found if s not in specs]
        board.attrs["left_out_models"] = list(self.left_out)


def _read_earlier(
    run_dir: Path,
    specs: Sequence[str],
    manifest: Manifest,
    settings: Settings,
    evaluated: Collection[str],
) -> _Earlier:
    """The finished results in the run folder that belong in its leaderboard.

    A run folder accumulates: a rerun with other ``models`` ranks its backbones
    with every one an earlier call finished there on the same images, labels and
    settings (the result key matches). A backbone of this call that Ctrl-C kept
    from starting is read back too, if it finished earlier. Results under other
    settings or data, and earlier failures (retried only when named again), stay
    out of the ranking and are named in ``left_out``.
    """
    earlier = _Earlier()
    skipped = {safe_name(spec) for spec in evaluated}
    own = {safe_name(spec) for spec in specs}
    for folder in sorted((run_dir / "models").glob("*/")):
        if folder.name in skipped:
            continue
        row = _read_row(folder / "row.json")
        model = None if row is None else row.get("model")
        if isinstance(model, str):
            finished = _read_finished(folder, result_key(model, manifest, settings))
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
        write_json_atomic(run_dir / "leaderboard.json", _clean(rows))
    frame.attrs["run_dir"] = str(run_dir)
    return frame


def _run_info(
    dataset: Dataset,
    classes: Sequence[str],
    positive_label: str | None,
    sort: str,
    settings: Settings,
    started_at: str,
    specs: Sequence[str],
) -> dict[str, Any]:
    """What run.json records; its status is "running" until the run ends, when
    it becomes "finished" or "interrupted" (Ctrl-C)."""
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
