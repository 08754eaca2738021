"""Ranking backbones: evaluate each on the data set, write the run folder.

:func:`rank` checks the data, decodes every image once, evaluates each backbone
in turn (:func:`~lazyvision.evaluation.evaluate_backbone`), saves each result the
moment it is finished, applies the latency and size limits, and writes the
leaderboard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import gc
import json
import logging
import platform
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import torch

from lazyvision import __version__
from lazyvision.backbones import (
    DEFAULT_MODELS,
    DEMO_MODELS,
    Preprocessing,
    check_spec,
    offline_weights,
    parse_spec,
    resolve_preprocessing,
)
from lazyvision.cache import (
    ImageFacts,
    default_cache_dir,
    json_safe,
    stable_hash,
    write_atomic,
    write_json_atomic,
)
from lazyvision.check import DatasetReport, check_dataset, raise_for_problems
from lazyvision.data import DEFAULT_SPLIT_COLUMN, Dataset, load_dataset
from lazyvision.errors import (
    DataError,
    ImageError,
    LazyVisionError,
    ModelError,
    Terminated,
)
from lazyvision.evaluation import (
    SPLIT_METRICS,
    Evaluation,
    Manifest,
    check_repeats,
    decode_workers,
    evaluate_backbone,
    failed_row,
    result_key,
    safe_name,
)
from lazyvision.features import (
    PixelStore,
    decode_files,
    resolve_device,
    resolve_precision,
    store_sides,
)
from lazyvision.images import ImageInfo, file_digest
from lazyvision.leaderboard import (
    DEFAULT_SORT,
    INTERRUPTED,
    apply_limits,
    mark_pareto,
    mark_ties,
    sort_rows,
)
from lazyvision.metrics import METRICS
from lazyvision.report import write_report
from lazyvision.settings import Settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or :class:`~lazyvision.errors.Terminated`, SIGTERM at the command
    line) during :func:`rank`; the finished part of the run is saved.

    Attributes:
        leaderboard: The run's rows, sorted as a finished run's: those finished
            before the interrupt, then the backbone it stopped and those it kept
            from starting, with status "interrupted" and the reason.
        run_dir: Where they were saved; its run.json has status "interrupted".
        finished: The backbones whose results are saved, in leaderboard order;
            empty when none finished.
        cause: What stopped the run: "Ctrl-C" or "SIGTERM".
    """

    def __init__(
        self, leaderboard: pd.DataFrame, run_dir: Path, *, cause: str = "Ctrl-C"
    ) -> None:
        super().__init__("interrupted")
        self.leaderboard = leaderboard
        self.run_dir = run_dir
        self.cause = cause
        rows = leaderboard.to_dict(orient="records")
        self.finished = tuple(
            str(row["model"]) for row in rows if row.get("status") != INTERRUPTED
        )


def _outside_full_collections(function: Callable[P, R]) -> Callable[P, R]:
    """Runs ``function`` with the objects that exist before the call out of the
    collector's full passes.

    With torch, timm and pandas loaded, about 400,000 objects exist before a run
    starts, and a full pass over them costs 0.15 s; reading a data set's rows
    alone allocates enough to set one off.
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        gc.freeze()
        try:
            return function(*args, **kwargs)
        finally:
            gc.unfreeze()

    return wrapper


@_outside_full_collections
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
    split_column: str = DEFAULT_SPLIT_COLUMN,
    image_root: str | Path | None = None,
    on_model_start: Callable[[str, int], Callable[[int], None] | None] | None = None,
) -> pd.DataFrame:
    """Ranks backbones on a labelled image set and saves the run folder.

    Args:
        data: A folder of split CSVs, one CSV with a split column, a class-folder
            root, or a loaded :class:`~lazyvision.data.Dataset`.
        models: Backbone specs; by default ``backbones.DEFAULT_MODELS``.
        output: The run folder; rerunning on the same folder resumes, its
            leaderboard keeps the backbones earlier calls finished there,
            run.json's "runs" lists every call, oldest first, and a report.html
            there is rewritten to match the new leaderboard.
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
        split_column: Split column of a single CSV.
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
        ``.attrs["notes"]`` says what the table does not: how val was drawn,
        which results were read back rather than computed, and the backbones of
        earlier calls in the folder; run.json records them as well.
        ``.attrs["report"]`` is the report.html rewritten, if the folder had one.

    Raises:
        DataError: The data cannot be used (the message lists every problem), or
            ``settings.num_repeats`` is above 1 while a val split is given.
        RunInterrupted: Ctrl-C, or :class:`~lazyvision.errors.Terminated`; what
            finished is saved first.

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
            split_column=split_column,
            image_root=image_root,
            seed=settings.seed,
        )
    )
    _check_sort_split(sort, dataset.split_names, dataset.source)
    if len(dataset.classes) < 2:
        raise DataError(
            f"dataset {dataset.source!r} has one class in train "
            f"({', '.join(map(repr, dataset.classes))}); ranking backbones needs at "
            "least two classes to tell apart"
        )
    val_drawn = dataset.val_drawn
    check_repeats(settings, val_drawn=val_drawn, source=repr(dataset.source))
    _warn_slow_precision(settings)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run_dir = Path(output) if output is not None else default_run_dir(dataset)
    _check_run_dir_holds(run_dir, dataset)
    earlier_runs = _earlier_runs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    sides = store_sides(
        [p for p in map(_preprocessing_or_none, specs) if p is not None]
    )
    paths = list(dict.fromkeys(s.path for s in dataset.samples))
    store = PixelStore(
        len(paths),
        sides,
        cache / "tmp",
        num_workers=decode_workers(settings),
        max_pixels=settings.max_pixels,
    )
    evaluations: dict[str, Evaluation] = {}
    manifest: Manifest | None = None
    run_info: dict[str, Any] | None = None
    try:
        report, digests = _scan(dataset, paths, store, cache, settings)
        _save_dataset_report(run_dir, report)
        raise_for_problems(
            report,
            skip_bad=skip_bad,
            allow_duplicates=allow_duplicates,
            dataset_json=run_dir / "dataset.json",
        )
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
        # Unreadable test images left out (--skip-bad) can leave no test split.
        _check_sort_split(sort, manifest.split_names, dataset.source)
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
        _write_run_info(run_dir, run_info, earlier_runs)
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
    except KeyboardInterrupt as stop:
        cause = stop_cause(stop)
        earlier = _Earlier()
        if manifest is not None:
            earlier = _read_earlier(run_dir, specs, manifest, settings, evaluations)
        for spec in specs:
            if spec not in evaluations and spec not in earlier.found:
                reason = f"not started: the run was interrupted ({cause})"
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
            run_info["stopped_by"] = cause
            _write_run_info(run_dir, run_info, earlier_runs)
        if manifest is not None:  # the leaderboard was rewritten
            _refresh_report(run_dir, board)
        raise RunInterrupted(board, run_dir, cause=cause) from None
    finally:
        store.close()
    earlier = _read_earlier(run_dir, specs, manifest, settings, evaluations)
    board = _finish(run_dir, evaluations | earlier.found, sort, manifest, settings)
    earlier.describe(board, specs)
    board.attrs["notes"] = [*dataset.notes, *_end_notes(board, run_dir)]
    run_info.update(status="finished", finished=_now(), notes=board.attrs["notes"])
    _write_run_info(run_dir, run_info, earlier_runs)
    _refresh_report(run_dir, board)
    return board


def _refresh_report(run_dir: Path, board: pd.DataFrame) -> None:
    """Rewrites the folder's report.html, if it has one, to match the leaderboard.

    A report left from an earlier call would disagree with the new leaderboard
    without a word. Rewriting it costs about 0.05 s on a small run; one that
    cannot be rewritten is removed rather than left wrong.
    """
    path = run_dir / "report.html"
    if not path.is_file():
        return
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


def stop_cause(stop: BaseException) -> str:
    """What a KeyboardInterrupt stands for, in the words rows and messages use."""
    return "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"


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
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
        raise DataError(
            f"sort metric {sort!r} is not a leaderboard column{hint} "
            f"The columns: {', '.join(allowed)}"
        )


def _check_sort_split(sort: str, splits: Sequence[str], source: str) -> None:
    """Refuses to sort on a split the data does not have: every row would tie."""
    split, _, metric = sort.partition("_")
    if split not in SPLIT_METRICS or split in splits:
        return
    raise DataError(
        f"sort metric {sort!r} (--sort) is scored on the {split} split, and "
        f"{source!r} has no {split} split (only {', '.join(splits) or 'none'}); "
        f"sort on 'val_{metric}' instead, or add a {split} split"
    )


def _warn_slow_precision(settings: Settings) -> None:
    """Says once that float16 on a CPU is slow: CPUs compute it in software."""
    device = resolve_device(settings.device)
    if settings.precision != "float16" or device.type != "cpu":
        return
    fast = str(resolve_precision("auto", device)).removeprefix("torch.")
    if fast == "bfloat16":
        advice = "bfloat16 is this CPU's fast reduced precision"
    else:
        advice = f"this CPU has no fast reduced precision, so {fast} is faster"
    logger.warning(
        "precision float16 (--precision) on the CPU runs several times slower "
        "than %s: %s; use --precision %s, or auto",
        fast,
        advice,
        fast,
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
            num_workers=decode_workers(settings),
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
    write_json_atomic(run_dir / "dataset.json", json_safe(report.to_dict()))
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
        except KeyboardInterrupt as stop:
            reason = f"stopped by {stop_cause(stop)} while running; a rerun resumes it"
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
        write_json_atomic(
            folder / "row.json", json_safe({**evaluation.row, "key": key})
        )
    else:
        # A failure is recorded for the report but retried on the next run.
        write_json_atomic(folder / "failed.json", json_safe(evaluation.row))


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
        write_json_atomic(run_dir / "leaderboard.json", json_safe(rows))
    frame.attrs["run_dir"] = str(run_dir)
    return frame


def _end_notes(board: pd.DataFrame, run_dir: Path) -> list[str]:
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


#: What run.json's "runs" keeps of each call on the run folder.
_RUN_FIELDS = ("started", "finished", INTERRUPTED, "stopped_by", "status", "models")


def _earlier_runs(run_dir: Path) -> list[dict[str, Any]]:
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


def _write_run_info(
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


def _run_info(
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
    data set's; a finished run adds the notes said at its end (``_end_notes``).
    ``_write_run_info`` adds the history of the calls on the folder."""
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
