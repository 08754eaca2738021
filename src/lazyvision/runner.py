"""Ranking backbones: evaluate each on the data set, write the run folder.

:func:`rank` checks the data, decodes every image once, evaluates each backbone
in turn (:func:`~lazyvision.evaluation.evaluate_backbone`), saves each result the
moment it is finished, applies the latency and size limits, and writes the
leaderboard.

The checks of what a run is asked for live in :mod:`lazyvision._run_checks`, what
the run folder records and reads back in :mod:`lazyvision._run_record`, and the
leaderboard, notes and report of the run's end in :mod:`lazyvision._run_end`;
this module re-exports their public names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pandas as pd

from lazyvision._run_checks import (
    check_models,
    check_sort,
    check_sort_split,
    warn_slow_precision,
)
from lazyvision._run_end import end_notes, finish_leaderboard, refresh_report
from lazyvision._run_record import (
    Earlier,
    check_run_dir_holds,
    default_run_dir,
    describe_run,
    now,
    read_earlier,
    read_earlier_runs,
    read_finished,
    save_evaluation,
    write_run_info,
)
from lazyvision.backbones import Preprocessing, resolve_preprocessing
from lazyvision.cache import (
    ImageFacts,
    default_cache_dir,
    json_safe,
    write_atomic,
    write_json_atomic,
)
from lazyvision.check import DatasetReport, check_dataset, raise_for_problems
from lazyvision.data import DEFAULT_SPLIT_COLUMN, Dataset, load_dataset
from lazyvision.errors import DataError, ImageError, LazyVisionError, Terminated
from lazyvision.evaluation import (
    Evaluation,
    Manifest,
    check_repeats,
    decode_workers,
    evaluate_backbone,
    failed_row,
    result_key,
    safe_name,
)
from lazyvision.features import PixelStore, decode_files, store_sides
from lazyvision.images import ImageInfo, file_digest
from lazyvision.leaderboard import DEFAULT_SORT, INTERRUPTED
from lazyvision.settings import Settings

__all__ = [
    "RunInterrupted",
    "Settings",
    "default_run_dir",
    "rank",
    "stop_cause",
]

# The names the checks had here, which tests import.
_check_models = check_models
_check_sort = check_sort

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
    started_at = now()
    if max_seconds is not None and not max_seconds > 0:
        raise DataError(
            f"max_seconds (--max-seconds) must be a positive number of seconds, "
            f"got {max_seconds!r}"
        )
    deadline = started + max_seconds if max_seconds is not None else None
    specs = check_models(models, allow_download=settings.allow_download)
    check_sort(sort)
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
    check_sort_split(sort, dataset.split_names, dataset.source)
    if len(dataset.classes) < 2:
        raise DataError(
            f"dataset {dataset.source!r} has one class in train "
            f"({', '.join(map(repr, dataset.classes))}); ranking backbones needs at "
            "least two classes to tell apart"
        )
    val_drawn = dataset.val_drawn
    check_repeats(settings, val_drawn=val_drawn, source=repr(dataset.source))
    warn_slow_precision(settings)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run_dir = Path(output) if output is not None else default_run_dir(dataset)
    check_run_dir_holds(run_dir, dataset)
    earlier_runs = read_earlier_runs(run_dir)
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
        check_sort_split(sort, manifest.split_names, dataset.source)
        store.sources = {e.digest: Path(e.path) for e in manifest.entries}
        run_info = describe_run(
            dataset,
            manifest.classes,
            manifest.positive_label,
            sort,
            settings,
            started_at,
            specs,
        )
        write_run_info(run_dir, run_info, earlier_runs)
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
        earlier = Earlier()
        if manifest is not None:
            earlier = read_earlier(run_dir, specs, manifest, settings, evaluations)
        for spec in specs:
            if spec not in evaluations and spec not in earlier.found:
                reason = f"not started: the run was interrupted ({cause})"
                row = failed_row(spec, INTERRUPTED, reason)
                evaluations[spec] = Evaluation(row, None)
        board = finish_leaderboard(
            run_dir, evaluations | earlier.found, sort, manifest, settings
        )
        earlier.describe(board, specs)
        # Stopped while the images were read, a rerun leaves an earlier run's
        # run.json as it was; a first run records that it was interrupted.
        if run_info is None and not (run_dir / "run.json").exists():
            run_info = describe_run(
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
            run_info[INTERRUPTED] = now()
            run_info["stopped_by"] = cause
            write_run_info(run_dir, run_info, earlier_runs)
        if manifest is not None:  # the leaderboard was rewritten
            refresh_report(run_dir, board)
        raise RunInterrupted(board, run_dir, cause=cause) from None
    finally:
        store.close()
    earlier = read_earlier(run_dir, specs, manifest, settings, evaluations)
    board = finish_leaderboard(
        run_dir, evaluations | earlier.found, sort, manifest, settings
    )
    earlier.describe(board, specs)
    board.attrs["notes"] = [*dataset.notes, *end_notes(board, run_dir)]
    run_info.update(status="finished", finished=now(), notes=board.attrs["notes"])
    write_run_info(run_dir, run_info, earlier_runs)
    refresh_report(run_dir, board)
    return board


def stop_cause(stop: BaseException) -> str:
    """What a KeyboardInterrupt stands for, in the words rows and messages use."""
    return "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"


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
        finished = read_finished(folder, key)
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
        save_evaluation(folder, key, evaluation)
        into[spec] = evaluation
        row = evaluation.row
        if row["status"] == "ok":
            logger.info(
                "%s: val balanced accuracy %.3f",
                spec,
                row.get("val_balanced_accuracy") or float("nan"),
            )
