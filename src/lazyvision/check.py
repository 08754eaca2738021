"""The validation pass: decode every image once and report what cannot be used.

:func:`check_dataset` turns a :class:`~lazyvision.data.Dataset` into a
:class:`DatasetReport`: images per class per split, sizes, modes and formats, the
files that cannot be read and why, and files shared between splits (byte-identical
copies, and near-duplicates by perceptual hash). :func:`raise_for_problems` is the
gate a ranking run passes through, and :meth:`DatasetReport.render` is the text the
check command prints, in the same words.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lazyvision.data import SPLITS, Dataset, Sample
from lazyvision.errors import DataError, ImageError
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo, decode_image

logger = logging.getLogger(__name__)

_LAYOUT_WORDS = {
    "split-csvs": "split CSVs",
    "split-column-csv": "one CSV with a split column",
    "class-folders": "class folders",
}
# Hashes are compared in blocks so a 50k x 10k comparison stays within memory.
_HASH_BLOCK = 4096


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
        near_duplicates: Images in different splits whose perceptual hashes are
            within the threshold but whose bytes differ, with the distance; each
            later-split image is paired with its nearest image in each earlier split.
        counts: Usable images per split per class (every class listed).
        num_given: Rows (or files) given per split, before problems are removed.
        sizes: "width" and "height" of the readable images as (min, median, max).
        modes: How many readable images have each Pillow mode, most common first.
        formats: How many readable images have each file format.
        warnings: The dataset's warnings and those of this pass.
        near_duplicate_distance: The perceptual-hash distance threshold used.
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
            "ignored": [{"path": p, "reason": r} for p, r in dataset.ignored],
            "notes": list(dataset.notes),
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """The readable text report.

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
            width, height = self.sizes["width"], self.sizes["height"]
            lines += [
                "",
                f"Image sizes: width {width[0]}-{width[2]} (median {width[1]}), "
                f"height {height[0]}-{height[2]} (median {height[1]})",
                f"Modes: {_counter_text(self.modes)}",
                f"Formats: {_counter_text(self.formats)}",
            ]

        sections: list[tuple[str, list[str]]] = [
            (
                f"Files that cannot be used ({len(self.problems)}):",
                [problem_line(p, base) for p in self.problems],
            ),
            (
                f"Byte-identical files in different splits ({len(self.duplicates)}):",
                [duplicate_line(a, b, base) for a, b in self.duplicates],
            ),
            (
                "Near-duplicates in different splits (perceptual hash distance "
                f"<= {self.near_duplicate_distance}) ({len(self.near_duplicates)}):",
                [duplicate_line(a, b, base, d) for a, b, d in self.near_duplicates],
            ),
            (
                f"Ignored in the dataset folder ({len(dataset.ignored)}):",
                [f"{path}: {reason}" for path, reason in dataset.ignored],
            ),
            ("Notes:", list(dataset.notes)),
            ("Warnings:", list(self.warnings)),
        ]
        for title, items in sections:
            if items:
                lines += ["", title, *(f"  {item}" for item in items)]
        if not (self.problems or self.duplicates or self.near_duplicates):
            lines += ["", "Every image can be read; no file is shared between splits."]
        return "\n".join(lines)


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
    want_pixels = on_decoded is not None
    jobs = [(path, max_pixels, want_pixels) for path in paths]

    results: dict[Path, ImageInfo | ImageError] = {}
    for index, (path, (outcome, rgb)) in enumerate(
        zip(paths, _run_decodes(jobs, workers), strict=True)
    ):
        if isinstance(outcome, str):
            results[path] = ImageError(str(path), outcome)
            continue
        results[path] = outcome
        if on_decoded is not None and rgb is not None:
            on_decoded(index, rgb)
    return results


def _run_decodes(
    jobs: list[tuple[Path, int, bool]], workers: int
) -> Iterator[tuple[ImageInfo | str, np.ndarray | None]]:
    """Decodes in order, in a process pool when workers > 0."""
    if workers == 0 or len(jobs) < 2:
        yield from map(_decode_one, jobs)
        return
    chunksize = max(1, min(64, len(jobs) // (workers * 4)))
    # Spawned workers start clean: a forked copy of a process that holds torch's
    # thread pools can hang.
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_decode_one, jobs, chunksize=chunksize)


def _decode_one(
    job: tuple[Path, int, bool],
) -> tuple[ImageInfo | str, np.ndarray | None]:
    """Decodes one file; a failure comes back as its reason, which pickles."""
    path, max_pixels, want_pixels = job
    try:
        rgb, info = decode_image(path, max_pixels=max_pixels)
    except ImageError as err:
        return err.reason, None
    return info, rgb if want_pixels else None


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
            are decoded here.
        max_pixels: Images with more pixels are reported as problems.
        workers: Processes to decode with; 0 decodes in this process.
        near_duplicate_distance: Images in different splits whose perceptual
            hashes differ in at most this many of 64 bits are near-duplicates.

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

    duplicates = _byte_duplicates(usable, readable)
    near = _near_duplicates(usable, readable, near_duplicate_distance)
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
        warnings=dataset.warnings + _empty_class_warnings(dataset, counts),
        near_duplicate_distance=near_duplicate_distance,
    )


def raise_for_problems(
    report: DatasetReport, *, skip_bad: bool, allow_duplicates: bool
) -> None:
    """Stops a run on unreadable images or files shared between splits.

    Everything found goes into one DataError so it can be fixed in one go. What is
    let through (skipped files, allowed duplicates, near-duplicates) is logged as a
    warning, since each changes the numbers.

    Args:
        report: The report of :func:`check_dataset`.
        skip_bad: Leave unreadable images out instead of stopping.
        allow_duplicates: Go on although byte-identical files sit in two splits.

    Raises:
        DataError: Images cannot be read (unless skip_bad), byte-identical files are
            in different splits (unless allow_duplicates), or a class has no usable
            training image left.

    Example:
        >>> report = check_dataset(load_dataset("pets/"))  # doctest: +SKIP
        >>> raise_for_problems(  # doctest: +SKIP
        ...     report, skip_bad=True, allow_duplicates=False
        ... )
    """
    base = _base_folder(report.dataset)
    sections: list[str] = []
    if report.problems and not skip_bad:
        sections.append(
            "\n".join(
                [
                    f"{_plural(len(report.problems), 'image')} cannot be used:",
                    *(f"  {problem_line(p, base)}" for p in report.problems),
                    "Fix or remove these rows, or skip them (skip_bad=True, "
                    "--skip-bad).",
                ]
            )
        )
    elif report.problems:
        logger.warning(
            "leaving out %s that cannot be used:\n%s",
            _plural(len(report.problems), "image"),
            "\n".join(f"  {problem_line(p, base)}" for p in report.problems),
        )

    if report.duplicates and not allow_duplicates:
        sections.append(
            "\n".join(
                [
                    f"{_plural(len(report.duplicates), 'byte-identical file')} in "
                    "two splits, which would score a model on images it was "
                    "trained on:",
                    *(f"  {duplicate_line(a, b, base)}" for a, b in report.duplicates),
                    "Remove one copy of each, or go on anyway "
                    "(allow_duplicates=True, --allow-duplicates).",
                ]
            )
        )
    elif report.duplicates:
        logger.warning(
            "going on with %s in two splits:\n%s",
            _plural(len(report.duplicates), "byte-identical file"),
            "\n".join(f"  {duplicate_line(a, b, base)}" for a, b in report.duplicates),
        )

    train_counts = report.counts.get("train", {})
    empty = [label for label in report.dataset.classes if not train_counts.get(label)]
    if empty and not sections:
        sections.append(
            f"{_plural(len(empty), 'class')} {'has' if len(empty) == 1 else 'have'} "
            f"no usable training image: {', '.join(map(repr, empty))}"
        )
    if sections:
        raise DataError("\n".join(sections))

    if report.near_duplicates:
        logger.warning(
            "%s in different splits (perceptual hash distance <= %d); scores may "
            "be optimistic:\n%s",
            _plural(len(report.near_duplicates), "near-duplicate pair"),
            report.near_duplicate_distance,
            "\n".join(
                f"  {duplicate_line(a, b, base, d)}"
                for a, b, d in report.near_duplicates
            ),
        )


def problem_line(problem: Problem, base: Path | None = None) -> str:
    """One unreadable row in words: "train  train.csv row 3  cut.jpg: truncated"."""
    path = _display_path(Path(problem.path), base)
    where = problem.origin if path == problem.origin else f"{problem.origin}  {path}"
    return f"{problem.split:<5}  {where}: {problem.reason}"


def duplicate_line(
    first: Sample, second: Sample, base: Path | None = None, distance: int | None = None
) -> str:
    """One pair of shared files in words, with the hash distance of a near pair."""
    text = f"{_sample_words(first, base)}  =  {_sample_words(second, base)}"
    return text if distance is None else f"{text}  (distance {distance})"


# Finding shared files.


def _byte_duplicates(
    samples: list[Sample], infos: Mapping[Path, ImageInfo]
) -> tuple[tuple[Sample, Sample], ...]:
    """Pairs byte-identical images of different splits."""
    by_digest: dict[str, dict[str, Sample]] = {}
    pairs: list[tuple[Sample, Sample]] = []
    for sample in _split_order(samples):
        firsts = by_digest.setdefault(infos[sample.path].digest, {})
        pairs += [
            (first, sample) for split, first in firsts.items() if split != sample.split
        ]
        firsts.setdefault(sample.split, sample)
    return tuple(pairs)


def _near_duplicates(
    samples: list[Sample], infos: Mapping[Path, ImageInfo], distance: int
) -> tuple[tuple[Sample, Sample, int], ...]:
    """Pairs each later-split image with its nearest earlier-split one by hash."""
    by_split = {split: [s for s in samples if s.split == split] for split in SPLITS}
    hashes = {
        split: np.array([infos[s.path].phash for s in group], dtype=np.uint64)
        for split, group in by_split.items()
    }
    pairs: list[tuple[Sample, Sample, int]] = []
    for later_index, later in enumerate(SPLITS):
        for sample_index, sample in enumerate(by_split[later]):
            for earlier in SPLITS[:later_index]:
                match = _nearest(
                    hashes[later][sample_index],
                    hashes[earlier],
                    by_split[earlier],
                    infos,
                    sample,
                    distance,
                )
                if match is not None:
                    pairs.append((match[0], sample, match[1]))
    return tuple(pairs)


def _nearest(
    target: np.uint64,
    hashes: np.ndarray,
    group: list[Sample],
    infos: Mapping[Path, ImageInfo],
    sample: Sample,
    distance: int,
) -> tuple[Sample, int] | None:
    """The nearest sample of a group within the distance whose bytes differ."""
    digest = infos[sample.path].digest
    best: tuple[Sample, int] | None = None
    for start in range(0, len(group), _HASH_BLOCK):
        block = np.bitwise_count(hashes[start : start + _HASH_BLOCK] ^ target)
        for offset in np.flatnonzero(block <= distance):
            candidate = group[start + int(offset)]
            bits = int(block[offset])
            if infos[candidate.path].digest == digest:
                continue
            if best is None or bits < best[1]:
                best = (candidate, bits)
    return best


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


def _split_order(samples: list[Sample]) -> list[Sample]:
    order = {name: index for index, name in enumerate(SPLITS)}
    return sorted(samples, key=lambda sample: order[sample.split])


def _base_folder(dataset: Dataset) -> Path | None:
    """The folder paths are shown relative to: the dataset folder or CSV's folder."""
    source = Path(dataset.source).expanduser()
    if source.is_dir():
        return source.resolve()
    if source.is_file():
        return source.resolve().parent
    return None


def _display_path(path: Path, base: Path | None) -> str:
    if base is not None and path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return str(path)


def _sample_words(sample: Sample, base: Path | None) -> str:
    """A sample as "test  test.csv row 4 (images/x.png)", or "val/cat/x.png"."""
    path = _display_path(sample.path, base)
    if path == sample.origin:
        return f"{sample.split} {path}"
    return f"{sample.split} {sample.origin} ({path})"


def _sample_dict(sample: Sample) -> dict[str, str]:
    return {
        "split": sample.split,
        "origin": sample.origin,
        "path": str(sample.path),
        "label": sample.label,
    }


def _counter_text(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.items())


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
