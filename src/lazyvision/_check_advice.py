"""What stops a ranking run, and what to do about each problem the check finds.

:func:`raise_for_problems` is the gate a ranking run passes through: one error
with every problem that stops it, warnings for what it lets through. The check
command's report ends on the same advice (:func:`verdict_lines`), in the same
words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lazyvision._check_text import (
    MAX_LISTED,
    base_folder,
    capped,
    indented,
    near_lines,
    pair_lines,
    plural,
    problem_lines,
)
from lazyvision.data import Sample
from lazyvision.errors import DataError

if TYPE_CHECKING:
    from lazyvision.check import DatasetReport, Problem

# Under the public module's name, which the command line prints with each warning.
logger = logging.getLogger("lazyvision.check")

_OVER_LIMIT = "over the pixel limit"
# The size in the reasons images.py gives: "(W x H = N > LIMIT)" or "(N > LIMIT)".
_OVER_LIMIT_SIZE = re.compile(r"\((?:(\d+) x (\d+) = )?(\d+) > \d+\)$")


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
    base = base_folder(report.dataset)
    more = f"see {dataset_json}" if dataset_json is not None else "see dataset.json"
    sections: list[str] = []
    bad = plural(len(report.problems), "image")
    problems = indented(capped(problem_lines(report.problems, base), more))
    if report.problems and not skip_bad:
        hint = "".join(f"\n{line}" for line in problem_hints(report))
        # Class folders have no rows: the files themselves are what to remove.
        given = "file" if report.dataset.layout == "class-folders" else "row"
        these = f"this {given}" if len(report.problems) == 1 else f"these {given}s"
        skip = "--skip-bad; skip_bad=True in Python"
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
        shared = f"{plural(len(report.duplicates), 'file')} listed"
    else:
        shared = plural(len(report.duplicates), "byte-identical file")
    pairs = indented(capped(pair_lines(report.duplicates, base), more))
    if report.duplicates and not allow_duplicates:
        sections.append(
            f"{shared} in two splits, which would score a model on images it was "
            f"trained on:\n{pairs}\n{_duplicate_advice(report.duplicates)}, or go "
            "on anyway (--allow-duplicates; allow_duplicates=True in Python)."
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
                f"{plural(len(empty), 'class')} "
                f"{'has' if len(empty) == 1 else 'have'} no usable training image: "
                f"{', '.join(map(repr, empty))}"
            )
        if no_val:
            sections.append(
                f"no usable val image of the {num_val} given, and the probe is tuned "
                "on val"
            )
        if report.problems:
            advice = _instead_of_skipping(report, "--skip-bad; skip_bad=True in Python")
            sections.append(f"{_capitalized(advice)}.")
    if sections:
        raise DataError("\n".join(sections))

    if report.near_duplicates:
        logger.warning(
            "%s in different splits (the same picture in other bytes); scores may "
            "be optimistic:\n%s",
            plural(len(report.near_duplicates), "near-duplicate pair"),
            indented(capped(near_lines(report.near_duplicates, base), more)),
        )
    if report.copies:
        logger.warning(
            "%s: kept, each as an image of its own, so a copied picture weighs "
            "more in training or is scored more than once (remove the extra copies "
            "to count each picture once):\n%s",
            _copies_words(report.copies),
            indented(capped(pair_lines(report.copies, base), more)),
        )
    # The data set's own warnings were logged as it loaded; these come from images.
    found = report.warnings[len(report.dataset.warnings) :]
    for warning in found[:MAX_LISTED]:
        logger.warning("%s", warning)
    if len(found) > MAX_LISTED:
        logger.warning(
            "and %d more warnings about the images (%s)",
            len(found) - MAX_LISTED,
            more,
        )


def verdict_lines(report: DatasetReport) -> list[str]:
    """The last words of the report: what stops a ranking run, and how to go on."""
    near = plural(len(report.near_duplicates), "near-duplicate pair")
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
            f"  fix or remove the {plural(len(report.problems), 'file')} that "
            f"cannot be used, or leave {_it(report.problems)} out (--skip-bad)"
        )
    if report.duplicates:
        lines.append(
            f"  remove one copy of the {plural(len(report.duplicates), 'file')} in "
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


def problem_hints(report: DatasetReport) -> list[str]:
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
        f"{plural(len(over), 'image')} {'is' if len(over) == 1 else 'are'} over the "
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
        return f"fix the {plural(len(report.problems), 'file')} that cannot be used"
    largest = _largest_size(over)
    option = (
        "--max-pixels"
        if largest is None
        else f"--max-pixels {_pixels_option(largest[0])}"
    )
    advice = (
        f"raise the pixel limit ({option}) to let in the "
        f"{plural(len(over), 'image')} over it"
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
        f"{plural(len(missing), 'file')} not found (looked in {where}): a relative "
        "path in a CSV is read against the CSV's folder, or against image_root "
        "(--image-root) when one is given; point that at the folder the paths "
        "start from"
    ]


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _all(items: Collection[object]) -> str:
    return "it" if len(items) == 1 else f"all {len(items)}"


def _it(items: Collection[object]) -> str:
    return "it" if len(items) == 1 else "them"
