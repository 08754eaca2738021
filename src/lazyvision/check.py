"""The validation pass: decode every image once and report what cannot be used.

:func:`check_dataset` turns a :class:`~lazyvision.data.Dataset` into a
:class:`DatasetReport`: images per class per split, sizes, modes and formats, the
files that cannot be read and why, and files shared between splits (byte-identical
copies, and near-duplicates: the same picture in other bytes, found by perceptual
hash and confirmed on pixels), and byte-identical copies within a split, which are
kept but reported. :func:`raise_for_problems` is the
gate a ranking run passes through, and :meth:`DatasetReport.render` is the text the
check command prints, in the same words.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import re
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lazyvision._duplicates import (
    byte_duplicates,
    copies_within_splits,
    near_duplicates,
)
from lazyvision.data import Dataset, Sample
from lazyvision.errors import DataError, ImageError
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, try_decode_image

logger = logging.getLogger(__name__)

# Long lists in log lines and errors stop here; dataset.json holds them all.
_MAX_LISTED = 10
_RENDER_MORE = "a run folder's dataset.json lists them all"
_MODE_WORDS = {"1": "1-bit"}
_LAYOUT_WORDS = {
    "split-csvs": "split CSVs",
    "split-column-csv": "one CSV with a split column",
    "class-folders": "class folders",
}
_OVER_LIMIT = "over the pixel limit"
# The size in the reasons images.py gives: "(W x H = N > LIMIT)" or "(N > LIMIT)".
_OVER_LIMIT_SIZE = re.compile(r"\((?:(\d+) x (\d+) = )?(\d+) > \d+\)$")


@dataclass(frozen=True)
class Problem:
    """One dataset row whose image cannot be used.

    Attributes:
        split: The sample's split.
        origin: Where the row came from ("train.csv row 7", "val/cat/x.png").
        path: The image path.
        reason: Why it cannot be used ("file not found", "truncated", ...).
    """

    split: str
    origin: str
    path: str
    reason: str


@dataclass(frozen=True)
class DatasetReport:
    """What the validation pass found.

    Attributes:
        dataset: The dataset checked.
        infos: The ImageInfo of every readable image, by path.
        problems: One entry per row whose image cannot be used.
        duplicates: Byte-identical images in different splits, (earlier split,
            later split); each later-split copy is paired with the first copy in
            each earlier split.
        near_duplicates: Images in different splits whose bytes differ but whose
            perceptual hashes are within the threshold and whose pixels agree (see
            :func:`lazyvision._duplicates.same_picture`), with the hash distance;
            each later-split image is paired with its nearest such image in each
            earlier split.
        counts: Usable images per split per class (every class listed).
        num_given: Rows (or files) given per split, before problems are removed.
        sizes: "width" and "height" of the readable images as (min, median, max).
        modes: How many readable images have each Pillow mode, most common first.
        formats: How many readable images have each file format.
        warnings: The dataset's warnings and those of this pass.
        near_duplicate_distance: The perceptual-hash distance threshold used.
        copies: Byte-identical images of one split under one label that are
            different files, (first copy, later copy). They leak nothing and are
            kept, each counting as an image of its own.
    """

    dataset: Dataset
    infos: Mapping[Path, ImageInfo]
    problems: tuple[Problem, ...]
    duplicates: tuple[tuple[Sample, Sample], ...]
    near_duplicates: tuple[tuple[Sample, Sample, int], ...]
    counts: Mapping[str, Mapping[str, int]]
    num_given: Mapping[str, int]
    sizes: Mapping[str, tuple[int, int, int]]
    modes: Mapping[str, int]
    formats: Mapping[str, int]
    warnings: tuple[str, ...] = ()
    near_duplicate_distance: int = 4
    copies: tuple[tuple[Sample, Sample], ...] = ()

    def usable(self) -> tuple[Sample, ...]:
        """The dataset's samples less those whose image cannot be used."""
        bad = {Path(problem.path) for problem in self.problems}
        return tuple(s for s in self.dataset.samples if s.path not in bad)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data, for a run folder's dataset.json."""
        dataset = self.dataset
        return {
            "source": dataset.source,
            "layout": dataset.layout,
            "classes": list(dataset.classes),
            "splits": {
                split: {
                    "given": self.num_given[split],
                    "usable": sum(self.counts[split].values()),
                    "per_class": dict(self.counts[split]),
                }
                for split in dataset.split_names
            },
            "sizes": {
                name: dict(zip(("min", "median", "max"), values, strict=True))
                for name, values in self.sizes.items()
            },
            "modes": dict(self.modes),
            "formats": dict(self.formats),
            "problems": [
                {
                    "split": p.split,
                    "origin": p.origin,
                    "path": p.path,
                    "reason": p.reason,
                }
                for p in self.problems
            ],
            "duplicates": [
                {"first": _sample_dict(a), "second": _sample_dict(b)}
                for a, b in self.duplicates
            ],
            "near_duplicates": [
                {"first": _sample_dict(a), "second": _sample_dict(b), "distance": d}
                for a, b, d in self.near_duplicates
            ],
            "near_duplicate_distance": self.near_duplicate_distance,
            "copies_within_splits": [
                {"first": _sample_dict(a), "second": _sample_dict(b)}
                for a, b in self.copies
            ],
            "ignored": [{"path": p, "reason": r} for p, r in dataset.ignored],
            "notes": list(dataset.notes),
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """The readable text report.

        Unreadable files and byte-identical copies in different splits are all
        listed, since each must be dealt with; near-duplicates, copies within a
        split and ignored files are listed up to ten.

        Example:
            >>> print(check_dataset(load_dataset("pets/")).render())  # doctest: +SKIP
        """
        dataset = self.dataset
        base = _base_folder(dataset)
        layout = _LAYOUT_WORDS.get(dataset.layout, dataset.layout)
        lines = [
            f"Dataset: {dataset.source} ({layout})",
            f"Classes: {len(dataset.classes)}",
            "",
            "Images per class:",
            *_count_table(self),
        ]
        for split in dataset.split_names:
            given = self.num_given[split]
            bad = given - sum(self.counts[split].values())
            if bad:
                lines.append(
                    f"{split}: {_plural(given, 'image')} given, {bad} cannot be used, "
                    f"{given - bad} used"
                )
        if self.sizes:
            lines += ["", *_summary_lines(self)]

        sections: list[tuple[str, list[str]]] = [
            (
                f"Files that cannot be used ({len(self.problems)}):",
                _problem_lines(self.problems, base) + _problem_hints(self),
            ),
            (
                f"Byte-identical files in different splits ({len(self.duplicates)}):",
                _pair_lines(self.duplicates, base),
            ),
            (
                f"Near-duplicates in different splits ({len(self.near_duplicates)}):",
                _capped(_near_lines(self.near_duplicates, base), _RENDER_MORE),
            ),
            (
                f"Byte-identical files within a split ({len(self.copies)}):",
                _capped(_pair_lines(self.copies, base), _RENDER_MORE),
            ),
            (
                f"Ignored in the dataset folder ({len(dataset.ignored)}):",
                _capped(
                    [f"{path}: {reason}" for path, reason in dataset.ignored],
                    _RENDER_MORE,
                ),
            ),
            ("Notes:", list(dataset.notes)),
            ("Warnings:", list(self.warnings)),
        ]
        for title, items in sections:
            if items:
                lines += ["", title, *(f"  {item}" for item in items)]
        return "\n".join([*lines, "", *_verdict_lines(self)])


def inspect_images(
    dataset: Dataset,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 0,
    on_decoded: Callable[[int, np.ndarray], None] | None = None,
) -> dict[Path, ImageInfo | ImageError]:
    """Decodes every distinct image of a dataset once.

    Args:
        dataset: The dataset whose images to read.
        max_pixels: Images with more pixels are reported, not decoded.
        workers: Processes to decode with; 0 decodes in this process.
        on_decoded: Called with (index, RGB array) for each readable image, index
            being its position among the distinct paths in sample order (the order
            of the returned dict). With workers, pixels travel back from the worker
            processes only when this is given.

    Returns:
        For each distinct path, in sample order, its ImageInfo or the ImageError
        saying why it cannot be read.

    Example:
        >>> infos = inspect_images(load_dataset("pets/"), workers=4)  # doctest: +SKIP
    """
    paths = list(dict.fromkeys(sample.path for sample in dataset.samples))
    return _inspect_paths(
        paths, max_pixels=max_pixels, workers=workers, on_decoded=on_decoded
    )


def _inspect_paths(
    paths: list[Path],
    *,
    max_pixels: int,
    workers: int,
    on_decoded: Callable[[int, np.ndarray], None] | None = None,
) -> dict[Path, ImageInfo | ImageError]:
    """Decodes distinct paths in order; see :func:`inspect_images`."""
    if workers < 0:
        raise DataError(f"workers must be 0 or more, got {workers!r}")
    decode = functools.partial(
        try_decode_image, max_pixels=max_pixels, keep_pixels=on_decoded is not None
    )

    results: dict[Path, ImageInfo | ImageError] = {}
    for index, (path, (outcome, rgb)) in enumerate(
        zip(paths, _run_decodes(decode, paths, workers), strict=True)
    ):
        results[path] = outcome
        if on_decoded is not None and rgb is not None:
            on_decoded(index, rgb)
    return results


def _run_decodes(
    decode: Callable[[Path], tuple[ImageInfo | ImageError, np.ndarray | None]],
    paths: list[Path],
    workers: int,
) -> Iterator[tuple[ImageInfo | ImageError, np.ndarray | None]]:
    """Decodes in order, in a process pool when workers > 0."""
    if workers == 0 or len(paths) < 2:
        yield from map(decode, paths)
        return
    chunksize = max(1, min(64, len(paths) // (workers * 4)))
    # Spawned workers start clean: a forked copy of a process that holds torch's
    # thread pools can hang.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(paths))) as pool:
        yield from pool.imap(decode, paths, chunksize=chunksize)


def check_dataset(
    dataset: Dataset,
    *,
    infos: Mapping[Path, ImageInfo | ImageError] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 0,
    near_duplicate_distance: int = 4,
) -> DatasetReport:
    """Checks that every image can be read and that no image leaks across splits.

    Args:
        dataset: The dataset to check.
        infos: Results of :func:`inspect_images` already at hand; paths it lacks
            are decoded here. Near-duplicates are confirmed on the thumbnails the
            infos carry; a file whose info has none is decoded again when its
            hash makes it a candidate.
        max_pixels: Images with more pixels are reported as problems.
        workers: Processes to decode with; 0 decodes in this process.
        near_duplicate_distance: Images in different splits whose perceptual
            hashes differ in at most this many of 64 bits are candidates; those
            whose 16 x 16 thumbnails also agree are near-duplicates.

    Returns:
        The report.

    Example:
        >>> report = check_dataset(load_dataset("pets/"))  # doctest: +SKIP
        >>> print(report.render())  # doctest: +SKIP
    """
    if not 0 <= near_duplicate_distance <= 64:
        raise DataError(
            "near_duplicate_distance must be between 0 and 64 bits, got "
            f"{near_duplicate_distance!r}"
        )
    found: dict[Path, ImageInfo | ImageError] = dict(infos or {})
    missing = list(
        dict.fromkeys(s.path for s in dataset.samples if s.path not in found)
    )
    if missing:
        found.update(_inspect_paths(missing, max_pixels=max_pixels, workers=workers))

    readable: dict[Path, ImageInfo] = {}
    problems: list[Problem] = []
    for sample in dataset.samples:
        outcome = found[sample.path]
        if isinstance(outcome, ImageError):
            problems.append(
                Problem(sample.split, sample.origin, str(sample.path), outcome.reason)
            )
        else:
            readable[sample.path] = outcome
    bad_paths = frozenset(Path(problem.path) for problem in problems)
    usable = [s for s in dataset.samples if s.path not in bad_paths]

    counts = {
        split: {label: 0 for label in dataset.classes} for split in dataset.split_names
    }
    for sample in usable:
        counts[sample.split][sample.label] += 1
    num_given = Counter(sample.split for sample in dataset.samples)

    duplicates = byte_duplicates(usable, readable)
    near = near_duplicates(
        usable, readable, near_duplicate_distance, max_pixels=max_pixels
    )
    copies = copies_within_splits(usable, readable)
    return DatasetReport(
        dataset=dataset,
        infos=readable,
        problems=tuple(problems),
        duplicates=duplicates,
        near_duplicates=near,
        counts=counts,
        num_given={split: num_given[split] for split in dataset.split_names},
        sizes=_sizes(readable.values()),
        modes=dict(Counter(info.mode for info in readable.values()).most_common()),
        formats=dict(Counter(info.format for info in readable.values()).most_common()),
        warnings=dataset.warnings
        + _empty_class_warnings(dataset, counts)
        + _conflicting_label_warnings(dataset, usable, readable),
        near_duplicate_distance=near_duplicate_distance,
        copies=copies,
    )


def raise_for_problems(
    report: DatasetReport,
    *,
    skip_bad: bool,
    allow_duplicates: bool,
    dataset_json: str | Path | None = None,
) -> None:
    """Stops a run on unreadable images or files shared between splits.

    Everything found goes into one DataError so it can be fixed in one go. What is
    let through (skipped files, allowed duplicates, near-duplicates, copies within
    a split) is logged as a warning, since each changes the numbers.

    Args:
        report: The report of :func:`check_dataset`.
        skip_bad: Leave unreadable images out instead of stopping.
        allow_duplicates: Go on although byte-identical files sit in two splits.
        dataset_json: Where the report is saved (a run folder's dataset.json),
            for the messages to name where a list they cut short is whole.

    Raises:
        DataError: Images cannot be read (unless skip_bad), byte-identical files are
            in different splits (unless allow_duplicates), or a class has no usable
            training image left, or val has none.

    Example:
        >>> report = check_dataset(load_dataset("pets/"))  # doctest: +SKIP
        >>> raise_for_problems(  # doctest: +SKIP
        ...     report, skip_bad=True, allow_duplicates=False
        ... )
    """
    base = _base_folder(report.dataset)
    more = f"see {dataset_json}" if dataset_json is not None else "see dataset.json"
    sections: list[str] = []
    bad = _plural(len(report.problems), "image")
    problems = _indented(_capped(_problem_lines(report.problems, base), more))
    if report.problems and not skip_bad:
        hint = "".join(f"\n{line}" for line in _problem_hints(report))
        # Class folders have no rows: the files themselves are what to remove.
        given = "file" if report.dataset.layout == "class-folders" else "row"
        these = f"this {given}" if len(report.problems) == 1 else f"these {given}s"
        skip = "skip_bad=True, --skip-bad"
        lost = _lost_by_skipping(report, report.problems)
        if lost:
            advice = (
                f"{_capitalized(_instead_of_skipping(report, skip))}: skipping "
                f"{_all(report.problems)} ({skip}) would leave {lost}."
            )
        else:
            advice = f"Fix or remove {these}, or skip {_it(report.problems)} ({skip})."
        sections.append(f"{bad} cannot be used:\n{problems}{hint}\n{advice}")
    elif report.problems:
        hint = "".join(f"\n{line}" for line in _pixel_limit_hint(report))
        logger.warning("leaving out %s that cannot be used:\n%s%s", bad, problems, hint)

    if all(a.path == b.path for a, b in report.duplicates):
        shared = f"{_plural(len(report.duplicates), 'file')} listed"
    else:
        shared = _plural(len(report.duplicates), "byte-identical file")
    pairs = _indented(_capped(_pair_lines(report.duplicates, base), more))
    if report.duplicates and not allow_duplicates:
        sections.append(
            f"{shared} in two splits, which would score a model on images it was "
            f"trained on:\n{pairs}\n{_duplicate_advice(report.duplicates)}, or go "
            "on anyway (allow_duplicates=True, --allow-duplicates)."
        )
    elif report.duplicates:
        logger.warning("going on with %s in two splits:\n%s", shared, pairs)

    train_counts = report.counts.get("train", {})
    empty = [label for label in report.dataset.classes if not train_counts.get(label)]
    num_val = report.num_given.get("val", 0)
    no_val = num_val > 0 and not sum(report.counts["val"].values())
    if (empty or no_val) and not sections:
        if empty:
            sections.append(
                f"{_plural(len(empty), 'class')} "
                f"{'has' if len(empty) == 1 else 'have'} no usable training image: "
                f"{', '.join(map(repr, empty))}"
            )
        if no_val:
            sections.append(
                f"no usable val image of the {num_val} given, and the probe is tuned "
                "on val"
            )
        if report.problems:
            advice = _instead_of_skipping(report, "skip_bad=True, --skip-bad")
            sections.append(f"{_capitalized(advice)}.")
    if sections:
        raise DataError("\n".join(sections))

    if report.near_duplicates:
        logger.warning(
            "%s in different splits (the same picture in other bytes); scores may "
            "be optimistic:\n%s",
            _plural(len(report.near_duplicates), "near-duplicate pair"),
            _indented(_capped(_near_lines(report.near_duplicates, base), more)),
        )
    if report.copies:
        logger.warning(
            "%s: kept, each as an image of its own, so a copied picture weighs "
            "more in training or is scored more than once (remove the extra copies "
            "to count each picture once):\n%s",
            _copies_words(report.copies),
            _indented(_capped(_pair_lines(report.copies, base), more)),
        )
    # The data set's own warnings were logged as it loaded; these come from images.
    found = report.warnings[len(report.dataset.warnings) :]
    for warning in found[:_MAX_LISTED]:
        logger.warning("%s", warning)
    if len(found) > _MAX_LISTED:
        logger.warning(
            "and %d more warnings about the images (%s)",
            len(found) - _MAX_LISTED,
            more,
        )


def problem_line(problem: Problem, base: Path | None = None) -> str:
    """One unreadable row in words: "train  train.csv row 3  cut.jpg: truncated"."""
    return _problem_lines([problem], base)[0]


def duplicate_line(
    first: Sample, second: Sample, base: Path | None = None, distance: int | None = None
) -> str:
    """One pair of shared files in words, with the hash distance of a near pair."""
    if distance is None:
        return _pair_lines([(first, second)], base)[0]
    return _near_lines([(first, second, distance)], base)[0]


# Summaries and wording.


def _sizes(infos: Collection[ImageInfo]) -> dict[str, tuple[int, int, int]]:
    """(min, median, max) of widths and heights; median_low keeps a real size."""
    if not infos:
        return {}
    widths = [info.width for info in infos]
    heights = [info.height for info in infos]
    return {
        "width": (min(widths), statistics.median_low(widths), max(widths)),
        "height": (min(heights), statistics.median_low(heights), max(heights)),
    }


def _empty_class_warnings(
    dataset: Dataset, counts: Mapping[str, Mapping[str, int]]
) -> tuple[str, ...]:
    """Warns of classes left with no usable image in a split they were given in."""
    warnings = []
    for split in dataset.split_names:
        given = {s.label for s in dataset.samples if s.split == split}
        empty = [c for c in dataset.classes if c in given and not counts[split][c]]
        if empty:
            warnings.append(
                f"no usable {split} image left for "
                f"{'class' if len(empty) == 1 else 'classes'} "
                f"{', '.join(map(repr, empty))}"
            )
    return tuple(warnings)


def _conflicting_label_warnings(
    dataset: Dataset, usable: Sequence[Sample], infos: Mapping[Path, ImageInfo]
) -> tuple[str, ...]:
    """Warns of one image given twice in a split under two labels.

    The probe is then trained (or scored) on a contradiction. Copies across
    splits are reported as duplicates instead. Every one is listed, so that a
    run folder's dataset.json holds them all; the log cuts the list short.
    """
    labels: dict[tuple[str, str], dict[str, Sample]] = {}
    for sample in usable:
        key = (sample.split, infos[sample.path].digest)
        labels.setdefault(key, {}).setdefault(sample.label, sample)
    base = _base_folder(dataset)
    lines = [
        "the same image has two labels in "
        f"{split}: "
        + ", ".join(
            f"{label!r} ({_sample_words(sample, base)})"
            for label, sample in found.items()
        )
        for (split, _), found in labels.items()
        if len(found) > 1
    ]
    return tuple(lines)


def _count_table(report: DatasetReport) -> list[str]:
    """Images per class per split as an aligned table, with a total row."""
    splits = report.dataset.split_names
    rows = [["class", *splits]]
    rows += [
        [label, *(str(report.counts[split][label]) for split in splits)]
        for label in report.dataset.classes
    ]
    rows.append(["total", *(str(sum(report.counts[s].values())) for s in splits)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _summary_lines(report: DatasetReport) -> list[str]:
    """Sizes, modes and formats of the readable images, one line each."""
    (low_w, mid_w, high_w), (low_h, mid_h, high_h) = (
        report.sizes["width"],
        report.sizes["height"],
    )
    if low_w == high_w and low_h == high_h:
        sizes = f"all {low_w} x {low_h}"
    else:
        sizes = (
            f"width {low_w}-{high_w} (median {mid_w}), "
            f"height {low_h}-{high_h} (median {mid_h})"
        )
    modes = {_MODE_WORDS.get(mode, mode): n for mode, n in report.modes.items()}
    return [
        f"Image sizes: {sizes}",
        f"Modes: {_counter_text(modes)}",
        f"Formats: {_counter_text(report.formats)}",
    ]


def _verdict_lines(report: DatasetReport) -> list[str]:
    """The last words of the report: what stops a ranking run, and how to go on."""
    near = _plural(len(report.near_duplicates), "near-duplicate pair")
    verb = "does" if len(report.near_duplicates) == 1 else "do"
    copies = (
        f"{_copies_words(report.copies)}: kept, each as an image of its own (remove "
        "the extra copies to count each picture once)"
    )
    classes = report.dataset.classes
    if not (report.problems or report.duplicates or len(classes) < 2):
        if not (report.near_duplicates or report.copies):
            return ["Every image can be read; no file is shared between splits."]
        lines = ["Every image can be read; no file is byte-identical across splits."]
        if report.near_duplicates:
            lines.append(
                f"The {near} {verb} not stop a run but may make scores optimistic."
            )
        if report.copies:
            lines.append(f"{copies}.")
        return lines
    lines = ["Before ranking:"]
    if len(classes) < 2:
        only = f" (only {classes[0]!r})" if classes else ""
        lines.append(
            f"  add images of a second class to train{only}: a ranking needs at "
            "least two classes to tell apart"
        )
    lost = _lost_by_skipping(report, report.problems)
    if lost:
        lines.append(
            f"  {_instead_of_skipping(report, '--skip-bad')}: leaving "
            f"{_all(report.problems)} out (--skip-bad) would leave {lost}"
        )
    elif report.problems:
        lines.append(
            f"  fix or remove the {_plural(len(report.problems), 'file')} that "
            f"cannot be used, or leave {_it(report.problems)} out (--skip-bad)"
        )
    if report.duplicates:
        lines.append(
            f"  remove one copy of the {_plural(len(report.duplicates), 'file')} in "
            "two splits, or go on anyway (--allow-duplicates)"
        )
    if report.near_duplicates:
        lines.append(
            f"  the {near} {verb} not stop a run but may make scores optimistic"
        )
    if report.copies:
        lines.append(f"  {copies}")
    return lines


def _duplicate_advice(pairs: Sequence[tuple[Sample, Sample]]) -> str:
    """What to do about byte-identical files in two splits, in one sentence."""
    same = sum(first.path == second.path for first, second in pairs)
    if same == len(pairs):
        advice = "Remove the row of each file in one of its two splits"
    elif same:
        advice = (
            "Remove one copy of each (of a file listed in two splits, its row in "
            "one of them)"
        )
    else:
        advice = "Remove one copy of each"
    if any(first.label != second.label for first, second in pairs):
        advice += ", keeping the one whose label is right where the labels differ"
    return advice


def _copies_words(copies: Collection[object]) -> str:
    """ "2 files are byte-identical copies of others in their split" and the like."""
    if len(copies) == 1:
        return "1 file is a byte-identical copy of another in its split"
    return f"{len(copies)} files are byte-identical copies of others in their split"


def _problem_hints(report: DatasetReport) -> list[str]:
    """What to do about the commonest problems, said once below their list."""
    return _missing_hint(report) + _pixel_limit_hint(report)


def _pixel_limit_hint(report: DatasetReport) -> list[str]:
    """How to let in images over the pixel limit, when some are."""
    over = [p for p in report.problems if p.reason.startswith(_OVER_LIMIT)]
    if not over:
        return []
    largest = _largest_size(over)
    if largest is None:
        example = ", e.g. --max-pixels 200M"
    else:
        pixels, size = largest
        which = "it has" if len(over) == 1 else "the largest has"
        example = (
            f": {which} {size}, so --max-pixels {_pixels_option(pixels)} lets "
            f"{'it' if len(over) == 1 else 'them all'} in"
        )
    return [
        f"{_plural(len(over), 'image')} {'is' if len(over) == 1 else 'are'} over the "
        "pixel limit, a guard against decompression bombs; for files you trust, "
        f"raise it with --max-pixels (max_pixels in Python){example}"
    ]


def _largest_size(over: Sequence[Problem]) -> tuple[int, str] | None:
    """The pixels of the largest image over the limit and its size in words.

    None when a reason does not give the size: Pillow refuses some files before
    their size is known.
    """
    sizes = []
    for problem in over:
        found = _OVER_LIMIT_SIZE.search(problem.reason)
        if found is None:
            return None
        width, height, pixels = found.groups()
        words = f"{pixels} pixels"
        if width is not None:
            words = f"{width} x {height} = {words}"
        sizes.append((int(pixels), words))
    return max(sizes, default=None)


def _pixels_option(pixels: int) -> str:
    """A --max-pixels value that lets in this many: "1200", "91M" for 90250000."""
    if pixels < 10**6:
        return str(pixels)
    return f"{-(-pixels // 10**6)}M"


def _lost_by_skipping(report: DatasetReport, left_out: Collection[Problem]) -> str:
    """What a run would lack once these files are left out, in words; "" if nothing.

    Every class needs a training image, and the probe is tuned on val.
    """
    out = {Path(problem.path) for problem in left_out}
    kept = [sample for sample in report.dataset.samples if sample.path not in out]
    trained = {sample.label for sample in kept if sample.split == "train"}
    untrained = [label for label in report.dataset.classes if label not in trained]
    lost = []
    if untrained:
        lost.append(f"no training image of {_class_words(untrained)}")
    if report.num_given.get("val") and not any(s.split == "val" for s in kept):
        lost.append("no val image")
    return " and ".join(lost)


def _instead_of_skipping(report: DatasetReport, skip: str) -> str:
    """What to do instead of skipping every file that cannot be used ("fix ...")."""
    over = [p for p in report.problems if p.reason.startswith(_OVER_LIMIT)]
    rest = [p for p in report.problems if not p.reason.startswith(_OVER_LIMIT)]
    if not over or _lost_by_skipping(report, rest):
        return f"fix the {_plural(len(report.problems), 'file')} that cannot be used"
    largest = _largest_size(over)
    option = (
        "--max-pixels"
        if largest is None
        else f"--max-pixels {_pixels_option(largest[0])}"
    )
    advice = (
        f"raise the pixel limit ({option}) to let in the "
        f"{_plural(len(over), 'image')} over it"
    )
    if rest:
        other = "file" if len(rest) == 1 else f"{len(rest)} files"
        advice += f", and fix, remove or skip ({skip}) the other {other}"
    return advice


def _class_words(labels: Sequence[str]) -> str:
    """ "class 'a'", "classes 'a', 'b'"."""
    return (
        f"{'class' if len(labels) == 1 else 'classes'} {', '.join(map(repr, labels))}"
    )


def _missing_hint(report: DatasetReport) -> list[str]:
    """Where relative CSV paths were looked for, when files of a CSV are missing.

    Paths relative to some other folder than the CSV's are the usual cause of a
    whole column of missing files; one missing file is more likely just gone, and
    gets no hint.
    """
    if report.dataset.layout == "class-folders":
        return []
    missing = [p for p in report.problems if p.reason == "file not found"]
    if len(missing) < max(2, len(report.dataset.samples) / 2):
        return []
    folders = sorted({str(Path(p.path).parent) for p in missing})
    where = folders[0] if len(folders) == 1 else f"{len(folders)} folders"
    return [
        f"{_plural(len(missing), 'file')} not found (looked in {where}): a relative "
        "path in a CSV is read against the CSV's folder, or against image_root "
        "(--image-root) when one is given; point that at the folder the paths "
        "start from"
    ]


def _problem_lines(problems: Sequence[Problem], base: Path | None) -> list[str]:
    """Unreadable rows in aligned columns: split, origin, path: reason."""
    rows = []
    for problem in problems:
        path = _display_path(Path(problem.path), base)
        origin = "" if path == problem.origin else problem.origin
        rows.append((problem.split, origin, path, problem.reason))
    split_width = max((len(row[0]) for row in rows), default=0)
    origin_width = max((len(row[1]) for row in rows), default=0)
    return [
        f"{split:<{split_width}}  "
        + (f"{origin:<{origin_width}}  " if origin_width else "")
        + f"{path}: {reason}"
        for split, origin, path, reason in rows
    ]


def _pair_lines(pairs: Sequence[tuple[Sample, Sample]], base: Path | None) -> list[str]:
    """Pairs of shared files, the "=" signs in one column.

    One file given in two places is said to be the same file, and two labels of
    one pair are both named, since each is a contradiction to settle.
    """
    words = []
    for first, second in pairs:
        if first.path == second.path:
            path = _display_path(first.path, base)
            words.append(
                (
                    first.origin,
                    f"{second.origin}: the same file {path} in {first.split} and "
                    f"{second.split}",
                )
            )
        else:
            words.append((_sample_words(first, base), _sample_words(second, base)))
    width = max((len(first) for first, _ in words), default=0)
    return [
        f"{first_words:<{width}}  =  {second_words}{_label_words(first, second)}"
        for (first_words, second_words), (first, second) in zip(
            words, pairs, strict=True
        )
    ]


def _label_words(first: Sample, second: Sample) -> str:
    """ ", labelled 'cat' in train and 'dog' in val" when a pair's labels differ."""
    if first.label == second.label:
        return ""
    return (
        f", labelled {first.label!r} in {first.split} and {second.label!r} in "
        f"{second.split}"
    )


def _near_lines(
    triples: Sequence[tuple[Sample, Sample, int]], base: Path | None
) -> list[str]:
    """Near-duplicate pairs with their hash distances, aligned."""
    lines = _pair_lines([(a, b) for a, b, _ in triples], base)
    width = max(map(len, lines), default=0)
    return [
        f"{line:<{width}}  (hash distance {distance})"
        for line, (_, _, distance) in zip(lines, triples, strict=True)
    ]


def _capped(lines: list[str], where: str) -> list[str]:
    """The first lines of a long list, then how many more there are and where."""
    if len(lines) <= _MAX_LISTED:
        return lines
    return [*lines[:_MAX_LISTED], f"... and {len(lines) - _MAX_LISTED} more ({where})"]


def _indented(lines: list[str]) -> str:
    return "\n".join(f"  {line}" for line in lines)


def relative_path(path: str | Path, source: str) -> str:
    """A file's path as the check shows it, relative to the data set's folder.

    That is the folder given, or a CSV's own folder, as its paths are written:
    "cat/x.png", "../images/x.png". Paths further out are shown whole.

    Example:
        >>> relative_path("/data/images/3/x.png", "/data/splits")  # doctest: +SKIP
        '../images/3/x.png'
    """
    return _display_path(Path(path), _source_folder(source))


def _base_folder(dataset: Dataset) -> Path | None:
    """The folder paths are shown relative to: the dataset folder or CSV's folder."""
    return _source_folder(dataset.source)


def _source_folder(source_text: str) -> Path | None:
    source = Path(source_text).expanduser()
    if source.is_dir():
        return source.resolve()
    if source.is_file():
        return source.resolve().parent
    return None


def _display_path(path: Path, base: Path | None) -> str:
    """A path as the user wrote it in a CSV beside base: "x.png", "../images/x.png".

    Paths further out than the folder above base are shown whole.
    """
    if base is None:
        return str(path)
    if path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    parent = base.parent
    if parent.parent != parent and path.is_relative_to(parent):
        return "../" + path.relative_to(parent).as_posix()
    return str(path)


def _sample_words(sample: Sample, base: Path | None) -> str:
    """A sample in words, its split named where the origin does not say it."""
    path = _display_path(sample.path, base)
    where = path if path == sample.origin else f"{sample.origin} ({path})"
    if sample.origin.startswith((f"{sample.split}.csv ", f"{sample.split}/")):
        return where
    return f"{sample.split} {where}"


def _sample_dict(sample: Sample) -> dict[str, str]:
    return {
        "split": sample.split,
        "origin": sample.origin,
        "path": str(sample.path),
        "label": sample.label,
    }


def _counter_text(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.items())


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _all(items: Collection[object]) -> str:
    return "it" if len(items) == 1 else f"all {len(items)}"


def _it(items: Collection[object]) -> str:
    return "it" if len(items) == 1 else "them"


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"
