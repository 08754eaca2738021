"""The rows of every layout made into a Dataset, and the label rules on them.

Rows that repeat a file and label are dropped, val is drawn from train when none
is given, classes are checked across splits, and labels that look alike are
warned of. Labels sort naturally here (2 before 10), for classes and folder order.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from lazyvision._csv import plural, quoted
from lazyvision._dataset import SPLITS, Dataset, Sample
from lazyvision.errors import DataError

#: From this many classes on, a set where most training labels occur once is
#: flagged: a path or an id column taken for the labels looks like that.
MANY_LABELS = 20

# Rows named in a warning before "..." takes over.
_MAX_LISTED_ORIGINS = 5


def finish(
    samples: list[Sample],
    *,
    source: str,
    layout: str,
    ignored: list[tuple[str, str]],
    warnings: list[str],
    val_fraction: float,
    seed: int,
    identifier_hint: str | None = None,
) -> Dataset:
    """Draws val when absent, checks classes across splits and builds the Dataset.

    What is found is added to ``warnings``, which the caller logs, and which the
    Dataset keeps. ``identifier_hint`` is the error to raise instead of a long
    list of classes when the label column looks like an identifier and its
    classes cannot be used.
    """
    notes: list[str] = []
    samples = _without_repeats(samples, warnings)
    if not any(sample.split == "train" for sample in samples):
        raise DataError(f"dataset {source!r} has no training images")
    val_drawn = not any(sample.split == "val" for sample in samples)
    if val_drawn:
        try:
            samples = _draw_val(samples, val_fraction=val_fraction, seed=seed)
        except DataError as err:
            if identifier_hint is None:
                raise
            raise DataError(identifier_hint) from err
        notes.append(
            f"validation: {val_fraction * 100:g}% of train, stratified, "
            f"seed {seed} (no val split given)"
        )

    classes = sort_labels({s.label for s in samples if s.split == "train"})
    found = _case_pair_warnings(samples) + _number_pair_warnings(samples)
    num_train = sum(sample.split == "train" for sample in samples)
    if len(classes) >= MANY_LABELS and len(classes) * 2 > num_train:
        found.append(
            f"{len(classes)} classes for {num_train} training images: most labels "
            "are given once; is the label column the right one (--label-column)?"
        )
    unknown: list[str] = []
    for split in ("val", "test"):
        labels = {sample.label for sample in samples if sample.split == split}
        if not labels:
            continue
        extra = sort_labels(labels - set(classes))
        if extra:
            unknown.append(
                f"{split} has {plural(len(extra), 'class', 'classes')} that train "
                f"lacks: {quoted(extra)}"
            )
        missing = [label for label in classes if label not in labels]
        if missing:
            found.append(
                f"{plural(len(missing), 'class', 'classes')} in train but not in "
                f"{split}: {quoted(missing)}"
            )
    if unknown and identifier_hint is not None:
        # Every id would be listed, in the error and in the warnings before it.
        raise DataError(identifier_hint)
    warnings += found
    if unknown:
        raise DataError(
            "; ".join(unknown) + f" (train classes: {quoted(classes)}); a model "
            "cannot be scored on classes it was never shown"
        )

    order = {name: index for index, name in enumerate(SPLITS)}
    samples = sorted(samples, key=lambda sample: order[sample.split])
    return Dataset(
        samples=tuple(samples),
        classes=classes,
        source=source,
        layout=layout,
        notes=tuple(notes),
        warnings=tuple(warnings),
        ignored=tuple(ignored),
        val_drawn=val_drawn,
    )


def _without_repeats(samples: list[Sample], warnings: list[str]) -> list[Sample]:
    """Keeps the first of the rows that give one file one label in one split.

    Counted twice, a file is trained on twice or scored twice, and its repeats
    narrow the intervals without adding evidence. A file given two labels is
    kept under both, for the check to report. One warning per split names the
    rows left out.
    """
    kept: list[Sample] = []
    seen: set[tuple[str, Path, str]] = set()
    repeats: dict[str, list[str]] = {}
    for sample in samples:
        key = (sample.split, sample.path, sample.label)
        if key in seen:
            repeats.setdefault(sample.split, []).append(sample.origin)
        else:
            seen.add(key)
            kept.append(sample)
    for split in SPLITS:
        origins = repeats.get(split, [])
        if origins:
            one = len(origins) == 1
            warnings.append(
                f"{plural(len(origins), 'row', 'rows')} of {split} "
                f"{'repeats' if one else 'repeat'} a file and label given earlier "
                f"in {split} ({_origins_text(origins)}); each file is used once, so "
                f"{'it is' if one else 'they are'} left out"
            )
    return kept


def _origins_text(origins: Sequence[str]) -> str:
    """The first few origins: "train.csv rows 4, 9, 12, ..." or "a/x.png, a/y.png"."""
    shown = origins[:_MAX_LISTED_ORIGINS]
    more = ", ..." if len(origins) > len(shown) else ""
    tables = {origin.rpartition(" row ")[0] for origin in shown}
    if len(tables) == 1 and "" not in tables and len(shown) > 1:
        rows = ", ".join(origin.rpartition(" row ")[2] for origin in shown)
        return f"{tables.pop()} rows {rows}{more}"
    return ", ".join(shown) + more


def _draw_val(samples: list[Sample], *, val_fraction: float, seed: int) -> list[Sample]:
    """Moves a stratified share of train into val, keeping each sample's origin."""
    train = [sample for sample in samples if sample.split == "train"]
    counts = Counter(sample.label for sample in train)
    too_small = sort_labels(label for label, count in counts.items() if count < 2)
    if too_small:
        raise DataError(
            "no val split was given, so one is drawn from train stratified by class, "
            "which needs at least 2 training images per class; "
            f"{plural(len(too_small), 'class has', 'classes have')} only 1: "
            f"{quoted(too_small)}. Add images, drop the class, or give a val split"
        )
    try:
        # Imported here: scikit-learn's model selection costs seconds to import.
        from sklearn.model_selection import train_test_split

        kept, drawn = train_test_split(
            list(range(len(train))),
            test_size=val_fraction,
            stratify=[sample.label for sample in train],
            random_state=seed,
        )
    except ValueError as err:
        raise DataError(
            f"cannot draw a stratified val split of {val_fraction:g} from "
            f"{len(train)} training images in {len(counts)} classes: {err}. "
            "Add images or give a val split (in Python, a larger val_fraction may "
            "also do)"
        ) from err

    moved = [
        Sample("val", train[i].path, train[i].label, train[i].origin)
        for i in sorted(drawn)
    ]
    rest = [sample for sample in samples if sample.split != "train"]
    return [train[i] for i in sorted(kept)] + moved + rest


def sort_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Sorts labels naturally: numbers by value first (1, 2, 10), then text.

    Text is compared without case and with digit runs as numbers, so "img2" comes
    before "img10" and "Cat" sits beside "cat".

    Example:
        >>> sort_labels(["10", "cat", "2", "Cat", "1"])
        ('1', '2', '10', 'Cat', 'cat')
    """
    return tuple(sorted(set(labels), key=label_key))


def label_key(label: str) -> tuple[int, float, tuple[tuple[int, int | str], ...], str]:
    """Sort key for :func:`sort_labels`."""
    try:
        value = float(label)
    except ValueError:
        value = math.nan
    if math.isfinite(value):
        return (0, value, (), label)
    parts = tuple(
        (0, int(part)) if part.isdecimal() else (1, part)
        for part in re.split(r"(\d+)", label.casefold())
        if part
    )
    return (1, 0.0, parts, label)


def _case_pair_warnings(samples: Sequence[Sample]) -> list[str]:
    """Warns about labels that differ only in case, with their image counts."""
    return _same_class_warnings(samples, str.casefold, "differ only in case")


def _number_pair_warnings(samples: Sequence[Sample]) -> list[str]:
    """Warns about labels that are one number written two ways: "1", "01", "1.0".

    A label column saved by a spreadsheet, or merged from two exports, often
    writes the same class both ways; as text they would be two classes.
    """
    return _same_class_warnings(
        samples, _as_number, "are the same number written differently"
    )


def _same_class_warnings(
    samples: Sequence[Sample], key: Callable[[str], object], what: str
) -> list[str]:
    """Warns about labels that ``key`` maps to one value (None maps to none)."""
    counts = Counter(sample.label for sample in samples)
    groups: dict[object, list[str]] = {}
    for label in sort_labels(counts):
        value = key(label)
        if value is not None:
            groups.setdefault(value, []).append(label)
    warnings = []
    for labels in groups.values():
        if len(labels) > 1:
            described = " and ".join(
                f"{label!r} ({plural(counts[label], 'image', 'images')})"
                for label in labels
            )
            warnings.append(
                f"labels {described} {what}; they are kept as different classes"
            )
    return warnings


def _as_number(label: str) -> float | None:
    """The label's value if it is a plain decimal number, such as "01" or "2.50"."""
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", label):
        return None
    return float(label)
