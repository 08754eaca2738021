"""The validation pass: decode every image once and report what cannot be used.

:func:`check_dataset` turns a :class:`~lazyvision.data.Dataset` into a
:class:`DatasetReport`: images per class per split, sizes, modes and formats, the
files that cannot be read and why, and files shared between splits (byte-identical
copies, and near-duplicates: the same picture in other bytes, found by perceptual
hash and confirmed on pixels), and byte-identical copies within a split, which are
kept but reported. :func:`raise_for_problems` is the
gate a ranking run passes through, and :meth:`DatasetReport.render` is the text the
check command prints, in the same words.

The decoding lives in :mod:`lazyvision._check_decode`, the gate and its advice in
:mod:`lazyvision._check_advice` and the wording in :mod:`lazyvision._check_text`;
this module re-exports their public names.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lazyvision._check_advice import problem_hints, raise_for_problems, verdict_lines
from lazyvision._check_decode import inspect_images, inspect_paths
from lazyvision._check_text import (
    base_folder,
    capped,
    count_table,
    duplicate_line,
    near_lines,
    pair_lines,
    plural,
    problem_line,
    problem_lines,
    relative_path,
    sample_words,
    summary_lines,
)
from lazyvision._duplicates import (
    byte_duplicates,
    copies_within_splits,
    near_duplicates,
)
from lazyvision.data import Dataset, Sample
from lazyvision.errors import DataError, ImageError
from lazyvision.images import DEFAULT_MAX_PIXELS, ImageInfo

__all__ = [
    "DatasetReport",
    "Problem",
    "check_dataset",
    "duplicate_line",
    "inspect_images",
    "problem_line",
    "raise_for_problems",
    "relative_path",
]

# The name the word helper had here, which tests import.
_plural = plural

_RENDER_MORE = "a run folder's dataset.json lists them all"
_LAYOUT_WORDS = {
    "split-csvs": "split CSVs",
    "split-column-csv": "one CSV with a split column",
    "class-folders": "class folders",
}


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
        base = base_folder(dataset)
        layout = _LAYOUT_WORDS.get(dataset.layout, dataset.layout)
        lines = [
            f"Dataset: {dataset.source} ({layout})",
            f"Classes: {len(dataset.classes)}",
            "",
            "Images per class:",
            *count_table(self),
        ]
        for split in dataset.split_names:
            given = self.num_given[split]
            bad = given - sum(self.counts[split].values())
            if bad:
                lines.append(
                    f"{split}: {plural(given, 'image')} given, {bad} cannot be used, "
                    f"{given - bad} used"
                )
        if self.sizes:
            lines += ["", *summary_lines(self)]

        sections: list[tuple[str, list[str]]] = [
            (
                f"Files that cannot be used ({len(self.problems)}):",
                problem_lines(self.problems, base) + problem_hints(self),
            ),
            (
                f"Byte-identical files in different splits ({len(self.duplicates)}):",
                pair_lines(self.duplicates, base),
            ),
            (
                f"Near-duplicates in different splits ({len(self.near_duplicates)}):",
                capped(near_lines(self.near_duplicates, base), _RENDER_MORE),
            ),
            (
                f"Byte-identical files within a split ({len(self.copies)}):",
                capped(pair_lines(self.copies, base), _RENDER_MORE),
            ),
            (
                f"Ignored in the dataset folder ({len(dataset.ignored)}):",
                capped(
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
        return "\n".join([*lines, "", *verdict_lines(self)])


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
        found.update(inspect_paths(missing, max_pixels=max_pixels, workers=workers))

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


# Summaries and warnings.


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
    base = base_folder(dataset)
    lines = [
        "the same image has two labels in "
        f"{split}: "
        + ", ".join(
            f"{label!r} ({sample_words(sample, base)})"
            for label, sample in found.items()
        )
        for (split, _), found in labels.items()
        if len(found) > 1
    ]
    return tuple(lines)


def _sample_dict(sample: Sample) -> dict[str, str]:
    return {
        "split": sample.split,
        "origin": sample.origin,
        "path": str(sample.path),
        "label": sample.label,
    }
