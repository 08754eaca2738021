"""One backbone on one manifest: embeddings, probe, metrics and predictions.

:func:`evaluate_backbone` is the unit of work of a run: (backbone spec, manifest,
cache folder, settings) in, one leaderboard row and its predictions out. It reads
and writes nothing but the cache, so it can run in another process or on another
machine. Each image is embedded once; repeated validation splits refit only the
probe on those embeddings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyvision import __version__
from lazyvision.backbones import PIXELS, Backbone, count_macs, create_backbone
from lazyvision.cache import (
    CACHE_VERSION,
    ResultStore,
    json_safe,
    stable_hash,
    write_json_atomic,
)
from lazyvision.data import Sample
from lazyvision.errors import BudgetExceeded, DataError, ImageError
from lazyvision.features import (
    Extraction,
    PixelStore,
    Speed,
    extract_features,
    remembered_speed,
    resolve_device,
    resolve_precision,
    speed_conditions,
    store_sides,
)
from lazyvision.images import file_digest
from lazyvision.metrics import (
    METRICS,
    bootstrap_intervals,
    compute_metrics,
    predicts_single_class,
    unavailable_reasons,
)
from lazyvision.probe import fit_probe
from lazyvision.settings import Settings

logger = logging.getLogger(__name__)

SPLIT_METRICS = ("val", "test")


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
    """One backbone's row and its per-image predictions (``None`` if it failed),
    and the feature-cache entry its embeddings are in, where known."""

    row: dict[str, Any]
    predictions: pd.DataFrame | None
    features_key: str | None = None


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
    check_repeats(settings, val_drawn=manifest.val_drawn, source="the manifest")
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
        # The speed the result was computed at may be another batch size's or
        # machine's: this run reports what was timed under its own conditions.
        features = cached.get("features")
        row.update(_speed_columns(_cached_speed(features, row, cache_dir, settings)))
        _warn_unknown_speed(row)
        predictions = _rekey_predictions(pd.DataFrame(cached["predictions"]), manifest)
        return Evaluation(row=row, predictions=predictions, features_key=features)
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
    stored = {
        "row": evaluation.row,
        "predictions": _records(evaluation.predictions),
        "features": evaluation.features_key,
    }
    results.put(key, json_safe(stored))
    return evaluation


def result_key(spec: str, manifest: Manifest, settings: Settings) -> str:
    """Identifies a finished evaluation in the cache."""
    weights = settings.weights.get(spec)
    weights_id = None
    if weights is not None:
        # A file that cannot be read fails the backbone's load, with its reason.
        with contextlib.suppress(OSError, ImageError):
            weights_id = file_digest(Path(weights))
    device = resolve_device(settings.device)
    dtype = resolve_precision(settings.precision, device)
    # The raw pixels are the same numbers at any precision.
    precision = str(torch.float32 if spec == PIXELS else dtype)
    # Added only when used, so results without repeats keep their keys.
    repeats = ("repeats", settings.num_repeats) if settings.num_repeats > 1 else ()
    return stable_hash(
        "result",
        CACHE_VERSION,
        __version__,
        spec,
        weights_id,
        manifest.fingerprint(),
        precision,
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
        "macs_per_image": _macs(backbone, cache_dir),
        "extract_seconds": round(extraction.seconds, 4),
        **_speed_columns(extraction.speed),
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
    _warn_unknown_speed(row)
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
    return Evaluation(
        row=row,
        predictions=_predictions(manifest, labels, proba),
        features_key=extraction.key,
    )


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


def _macs(backbone: Backbone, cache_dir: Path) -> int | None:
    """MACs per image. They depend only on the architecture and its input size, so
    they are counted once and kept in the cache."""
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
    return macs


def _speed_columns(speed: Speed | None) -> dict[str, Any]:
    """The row's throughput, the latency it implies, and where it was timed."""
    measured = None if speed is None else speed.images_per_second
    return {
        "images_per_second": round(measured, 2) if measured else None,
        "latency_ms": round(1000.0 / measured, 3) if measured else None,
        "speed_source": None if speed is None else speed.source,
        "num_timed": None if speed is None else speed.num_timed,
    }


def _cached_speed(
    features: object, row: Mapping[str, Any], cache_dir: Path, settings: Settings
) -> Speed | None:
    """What an earlier run timed under this run's conditions for a cached result
    whose embeddings are in the cache entry ``features``."""
    precision = row.get("precision")
    # Results cached before they named their entry have none.
    if not isinstance(features, str) or not re.fullmatch(r"[0-9a-f]+", features):
        return None
    if not isinstance(precision, str):
        return None
    conditions = speed_conditions(
        batch_size=settings.batch_size,
        device=resolve_device(settings.device),
        precision=precision,
    )
    return remembered_speed(cache_dir / "features" / features, conditions)


def _warn_unknown_speed(row: Mapping[str, Any]) -> None:
    if row.get("images_per_second") is None:
        logger.warning(
            "%s: speed unknown: every image came from the cache, and no earlier run "
            "timed it at this batch size, device, precision and thread count; a "
            "run with another --cache-dir times it",
            row.get("model"),
        )


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
        num_workers=decode_workers(settings),
        max_pixels=settings.max_pixels,
    )
    try:
        yield store
    finally:
        store.close()


def decode_workers(settings: Settings) -> int:
    if settings.num_workers is not None:
        return settings.num_workers
    return min(8, os.cpu_count() or 1)


def check_repeats(settings: Settings, *, val_drawn: bool, source: str) -> None:
    if settings.num_repeats > 1 and not val_drawn:
        raise DataError(
            f"num_repeats (--repeats) is {settings.num_repeats!r}, but repeats need "
            f"a training set only: {source} gives a val split, and only a split "
            "drawn from train can be redrawn. Give train images only (class "
            "folders without train/val, or train.csv alone), or leave --repeats "
            "out (num_repeats=1)"
        )


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]
