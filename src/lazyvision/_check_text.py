"""The check's words: tables, aligned lists of problems and pairs, and paths.

Each function turns part of a :class:`~lazyvision.check.DatasetReport` into lines
of text, the same lines the check command prints and a ranking run logs or raises;
what to do about what they list is :mod:`lazyvision._check_advice`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lazyvision.data import Dataset, Sample

if TYPE_CHECKING:
    from lazyvision.check import DatasetReport, Problem

# Long lists in log lines and errors stop here; dataset.json holds them all.
MAX_LISTED = 10
_MODE_WORDS = {"1": "1-bit"}


def problem_line(problem: Problem, base: Path | None = None) -> str:
    """One unreadable row in words: "train  train.csv row 3  cut.jpg: truncated"."""
    return problem_lines([problem], base)[0]


def duplicate_line(
    first: Sample, second: Sample, base: Path | None = None, distance: int | None = None
) -> str:
    """One pair of shared files in words, with the hash distance of a near pair."""
    if distance is None:
        return pair_lines([(first, second)], base)[0]
    return near_lines([(first, second, distance)], base)[0]


def count_table(report: DatasetReport) -> list[str]:
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


def summary_lines(report: DatasetReport) -> list[str]:
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


def problem_lines(problems: Sequence[Problem], base: Path | None) -> list[str]:
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


def pair_lines(pairs: Sequence[tuple[Sample, Sample]], base: Path | None) -> list[str]:
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
            words.append((sample_words(first, base), sample_words(second, base)))
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


def near_lines(
    triples: Sequence[tuple[Sample, Sample, int]], base: Path | None
) -> list[str]:
    """Near-duplicate pairs with their hash distances, aligned."""
    lines = pair_lines([(a, b) for a, b, _ in triples], base)
    width = max(map(len, lines), default=0)
    return [
        f"{line:<{width}}  (hash distance {distance})"
        for line, (_, _, distance) in zip(lines, triples, strict=True)
    ]


def capped(lines: list[str], where: str) -> list[str]:
    """The first lines of a long list, then how many more there are and where."""
    if len(lines) <= MAX_LISTED:
        return lines
    return [*lines[:MAX_LISTED], f"... and {len(lines) - MAX_LISTED} more ({where})"]


def indented(lines: list[str]) -> str:
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


def base_folder(dataset: Dataset) -> Path | None:
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


def sample_words(sample: Sample, base: Path | None) -> str:
    """A sample in words, its split named where the origin does not say it."""
    path = _display_path(sample.path, base)
    where = path if path == sample.origin else f"{sample.origin} ({path})"
    if sample.origin.startswith((f"{sample.split}.csv ", f"{sample.split}/")):
        return where
    return f"{sample.split} {where}"


def _counter_text(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.items())


def plural(count: int, noun: str) -> str:
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else 's'}"
