"""Reading the user's labelled images into a Dataset of Samples.

Three layouts are understood: a folder of split CSVs (train.csv, val.csv and an
optional test.csv), one CSV with a split column, and class folders (with or without
train/val/test folders above them). Only the table of samples is built here; whether
each file can be decoded is the business of :mod:`lazyvision.check`.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lazyvision._csv import (
    Table,
    identifier_hint,
    plural,
    raise_row_errors,
    read_csv,
    split_value_errors,
)
from lazyvision.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: The split column of a single CSV, unless named otherwise.
DEFAULT_SPLIT_COLUMN = "split"
#: From this many classes on, a set where most training labels occur once is
#: flagged: a path or an id column taken for the labels looks like that.
MANY_LABELS = 20
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)

# Rows named in a warning before "..." takes over.
_MAX_LISTED_ORIGINS = 5

_SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
# Files that operating systems and notebooks leave in folders without a leading dot.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db"})
# Files given as the data that are clearly no CSV, by extension. Others are read
# as CSVs, whatever their extension: exports name them .csv, .tsv, .txt or .dat.
_OTHER_FORMATS = {
    ".json": "a JSON file",
    ".jsonl": "a JSON Lines file",
    ".ipynb": "a notebook",
    ".py": "a Python file",
    ".yaml": "a YAML file",
    ".yml": "a YAML file",
    ".md": "a Markdown file",
    ".html": "a web page",
    ".xml": "an XML file",
    ".xlsx": "a spreadsheet (save it as CSV)",
    ".xls": "a spreadsheet (save it as CSV)",
    ".ods": "a spreadsheet (save it as CSV)",
}


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        split: "train", "val" or "test".
        path: The resolved absolute path of the image file.
        label: The label text, whitespace trimmed ("10" stays "10").
        origin: Where the sample came from, for messages: "train.csv row 7" (the row
            as a spreadsheet numbers it, header row 1) or "val/cat/x.png".
    """

    split: str
    path: Path
    label: str
    origin: str


@dataclass(frozen=True)
class Dataset:
    """The samples of a labelled image set, with what was noticed while reading it.

    Attributes:
        samples: Every sample, train first, then val, then test.
        classes: The training labels, sorted naturally (2 before 10).
        source: What the user pointed at.
        layout: "split-csvs", "split-column-csv" or "class-folders".
        notes: Plain statements for the output, such as how val was drawn.
        warnings: Things that may change the numbers, such as a class absent from val.
        ignored: (path, reason) for files and folders skipped in class folders.
        val_drawn: Whether val was drawn from train because none was given (a
            split that can be drawn again, for repeats).
    """

    samples: tuple[Sample, ...]
    classes: tuple[str, ...]
    source: str
    layout: str
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()
    val_drawn: bool = False

    def split(self, name: str) -> tuple[Sample, ...]:
        """Returns the samples of one split ("train", "val" or "test")."""
        if name not in SPLITS:
            raise DataError(f"split {name!r} is not one of {', '.join(SPLITS)}")
        return tuple(sample for sample in self.samples if sample.split == name)

    @property
    def split_names(self) -> tuple[str, ...]:
        """The splits that have samples, in train, val, test order."""
        present = {sample.split for sample in self.samples}
        return tuple(name for name in SPLITS if name in present)


def load_dataset(
    source: str | Path,
    *,
    path_column: str = "filepath",
    label_column: str = "label",
    split_column: str = DEFAULT_SPLIT_COLUMN,
    image_root: str | Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Reads a labelled image set from a folder or a CSV file.

    The layout is recognised from what ``source`` is: a folder holding train.csv
    (with val.csv and test.csv beside it, each optional), a single CSV file with a
    split column, or a folder of class folders (``ROOT/train/<class>/*`` and so on,
    or plain ``ROOT/<class>/*`` for a training set only). When no validation split
    is given, one is drawn from train, stratified by class, and a note says so.
    The CSV options given for class folders are ignored, with a warning.

    Args:
        source: The dataset folder or CSV file.
        path_column: The CSV column holding image paths.
        label_column: The CSV column holding labels.
        split_column: The column of a single CSV that names each row's split
            (train, val or test; "validation" and "valid" mean val).
        image_root: The folder relative CSV paths are read against; by default the
            folder of the CSV itself.
        val_fraction: The share of train drawn as val when no val split is given.
        seed: The seed of that draw.

    Returns:
        The Dataset. Files are not opened; missing files are reported by
        :func:`lazyvision.check.check_dataset`.

    Raises:
        DataError: The layout is not recognised, a column is missing, a row has an
            empty path or label, or val/test hold a class that train lacks.

    Example:
        >>> dataset = load_dataset("pets/")  # doctest: +SKIP
        >>> dataset.classes, len(dataset.split("train"))  # doctest: +SKIP
        (('cat', 'dog'), 160)
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(
            f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}"
        )
    root = Path(image_root).expanduser() if image_root is not None else None
    source_path = Path(source).expanduser()

    # Every warning is logged once, here, also when the data set turns out
    # unusable: a file read in the wrong encoding may be what made it so.
    warnings: list[str] = []
    try:
        return _read_dataset(
            source_path,
            source=str(source),
            path_column=path_column,
            label_column=label_column,
            split_column=split_column,
            root=root,
            val_fraction=val_fraction,
            seed=seed,
            warnings=warnings,
        )
    finally:
        for warning in warnings:
            logger.warning("%s", warning)


def _read_dataset(
    source_path: Path,
    *,
    source: str,
    path_column: str,
    label_column: str,
    split_column: str,
    root: Path | None,
    val_fraction: float,
    seed: int,
    warnings: list[str],
) -> Dataset:
    """Reads the layout ``source_path`` is; adds what it warns of to ``warnings``."""
    ignored: list[tuple[str, str]] = []
    identifier_hint: str | None = None
    if source_path.is_file():
        _refuse_other_formats(source_path)
        layout = "split-column-csv"
        samples, identifier_hint = _read_split_column_csv(
            source_path, path_column, label_column, split_column, root, warnings
        )
    elif source_path.is_dir() and (source_path / "train.csv").is_file():
        layout = "split-csvs"
        samples, identifier_hint = _read_split_csvs(
            source_path, path_column, label_column, root, warnings
        )
        if split_column != DEFAULT_SPLIT_COLUMN:
            warnings.append(
                f"split_column (--split-column) applies to one CSV with a split "
                f"column; {source!r} holds train.csv, val.csv and test.csv, whose "
                "names give the splits, so it is ignored"
            )
    elif source_path.is_dir():
        if (source_path / "val.csv").is_file():
            raise DataError(
                f"{source!r} has val.csv but no train.csv; the training rows must be "
                "in train.csv"
            )
        layout = "class-folders"
        samples, ignored = _read_class_folders(source_path)
        given = {
            "path_column (--path-column)": path_column != "filepath",
            "label_column (--label-column)": label_column != "label",
            "split_column (--split-column)": split_column != DEFAULT_SPLIT_COLUMN,
            "image_root (--image-root)": root is not None,
        }
        warnings += _unused_option_warnings(
            source, [name for name, differs in given.items() if differs]
        )
    else:
        raise DataError(_missing_source_message(source_path))

    return _finish(
        samples,
        source=source,
        layout=layout,
        ignored=ignored,
        warnings=warnings,
        val_fraction=val_fraction,
        seed=seed,
        identifier_hint=identifier_hint,
    )


def _refuse_other_formats(path: Path) -> None:
    """Raises for a data file that is clearly no CSV, before it is read as one."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise DataError(
            f"dataset {str(path)!r} is an image file, not a CSV; pass the folder of "
            "class folders it is in, or a CSV of image paths and labels"
        )
    if suffix in _OTHER_FORMATS:
        raise DataError(
            f"dataset {str(path)!r} is {_OTHER_FORMATS[suffix]}, not a CSV; give a "
            "CSV of image paths and labels (.csv, .tsv or .txt), or a folder "
            "holding train.csv (with val.csv, test.csv) or class folders"
        )


def _missing_source_message(path: Path) -> str:
    """Says that the dataset path is not there, naming close names beside it."""
    if path.exists():  # a device, a pipe or a socket
        return f"dataset {str(path)!r} is neither a folder nor a file"
    if path.is_symlink():
        return (
            f"dataset {str(path)!r} is a link to {str(path.readlink())!r}, which "
            "does not exist"
        )
    message = f"dataset {str(path)!r} does not exist"
    parent = path.parent
    if not parent.is_dir():
        return f"{message}, nor does the folder {str(parent)!r}"
    try:
        entries = _sorted_entries(parent)
    except OSError:  # a folder that cannot be listed has no names to suggest
        return message
    # Compared without case: "Pets" was most likely meant for "pets".
    names = {
        entry.name.casefold(): str(entry) + ("/" if entry.is_dir() else "")
        for entry in entries
        if entry.exists() and not _is_hidden(entry)
    }
    close = difflib.get_close_matches(path.name.casefold(), names, n=3, cutoff=0.6)
    if close:
        message += f"; did you mean {' or '.join(repr(names[n]) for n in close)}?"
    return message


def _unused_option_warnings(source: str, options: Sequence[str]) -> list[str]:
    """Warns that options given for CSVs do nothing to class folders."""
    if not options:
        return []
    one = len(options) == 1
    return [
        f"{' and '.join(options)} {'applies' if one else 'apply'} to CSV files "
        f"only; {source!r} is class folders, so {'it is' if one else 'they are'} "
        "ignored"
    ]


def _finish(
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
                f"lacks: {_quoted(extra)}"
            )
        missing = [label for label in classes if label not in labels]
        if missing:
            found.append(
                f"{plural(len(missing), 'class', 'classes')} in train but not in "
                f"{split}: {_quoted(missing)}"
            )
    if unknown and identifier_hint is not None:
        # Every id would be listed, in the error and in the warnings before it.
        raise DataError(identifier_hint)
    warnings += found
    if unknown:
        raise DataError(
            "; ".join(unknown) + f" (train classes: {_quoted(classes)}); a model "
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
            f"{_quoted(too_small)}. Add images, drop the class, or give a val split"
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
    return tuple(sorted(set(labels), key=_label_key))


def _label_key(label: str) -> tuple[int, float, tuple[tuple[int, int | str], ...], str]:
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


# CSV layouts.


def _read_split_csvs(
    folder: Path,
    path_column: str,
    label_column: str,
    root: Path | None,
    warnings: list[str],
) -> tuple[list[Sample], str | None]:
    """Reads train.csv, and val.csv and test.csv where present.

    Returns the samples and, when the label column looks like an identifier, the
    error that says so (see :func:`identifier_hint`). Warnings about the files are
    added to ``warnings``.
    """
    samples: list[Sample] = []
    tables: list[Table] = []
    for split in SPLITS:
        path = folder / f"{split}.csv"
        if not path.is_file():
            continue
        table = read_csv(path, warnings=warnings)
        tables.append(table)
        paths = table.column(path_column, "path")
        labels = table.column(label_column, "label")
        base = root if root is not None else path.parent
        errors: list[str] = []
        for index, (raw_path, raw_label) in enumerate(zip(paths, labels, strict=True)):
            sample = _make_sample(
                split,
                raw_path,
                raw_label,
                table=table,
                index=index,
                base=base,
                errors=errors,
            )
            if sample is not None:
                samples.append(sample)
        num_read = sum(sample.split == split for sample in samples)
        raise_row_errors(path, errors, num_rows=len(table.rows) - num_read)
    hint = identifier_hint(tables, label_column, used=(path_column, label_column))
    return samples, hint


def _read_split_column_csv(
    path: Path,
    path_column: str,
    label_column: str,
    split_column: str,
    root: Path | None,
    warnings: list[str],
) -> tuple[list[Sample], str | None]:
    """Reads one CSV whose split column says where each row belongs.

    A CSV with no such column (and none with a name close to it) is a training set
    only; a warning added to ``warnings`` says so when split CSVs sit beside it.
    The second value returned is the error for a label column that looks like an
    identifier (see :func:`identifier_hint`).
    """
    table = read_csv(path, warnings=warnings)
    paths = table.column(path_column, "path")
    labels = table.column(label_column, "label")
    if (
        split_column in table.header
        or table.close_matches(split_column)
        or split_column != DEFAULT_SPLIT_COLUMN  # named, so meant: say it is missing
    ):
        splits = table.column(split_column, "split")
    else:
        _refuse_unnamed_split_column(table, split_column)
        splits = ["train"] * len(paths)
        siblings = [
            name for name in ("val.csv", "test.csv") if (path.parent / name).is_file()
        ]
        if siblings:
            warnings.append(
                f"{path.name} has no {split_column!r} column, so all its rows are "
                f"training images; {_quoted(siblings)} beside it "
                f"{'was' if len(siblings) == 1 else 'were'} not read (pass the "
                "folder to use them)"
            )

    base = root if root is not None else path.parent
    samples: list[Sample] = []
    errors: list[str] = []
    bad_splits: dict[str, list[int]] = {}
    for index, (raw_path, raw_label) in enumerate(zip(paths, labels, strict=True)):
        raw_split = splits[index].strip()
        split = _SPLIT_ALIASES.get(raw_split.casefold())
        if split is None:
            bad_splits.setdefault(raw_split, []).append(table.rows[index])
            continue
        sample = _make_sample(
            split,
            raw_path,
            raw_label,
            table=table,
            index=index,
            base=base,
            errors=errors,
        )
        if sample is not None:
            samples.append(sample)
    raise_row_errors(
        path,
        split_value_errors(split_column, bad_splits) + errors,
        num_rows=len(table.rows) - len(samples),
    )
    used = (path_column, label_column, split_column)
    return samples, identifier_hint([table], label_column, used=used)


def _refuse_unnamed_split_column(table: Table, split_column: str) -> None:
    """Raises when another column holds nothing but split names.

    Read as a training set only, such a CSV would put its val and test rows into
    training without a word; the column is named, not guessed.
    """
    for index, column in enumerate(table.header):
        values = {record[index].strip().casefold() for record in table.records}
        values.discard("")
        named = {_SPLIT_ALIASES.get(value) for value in values}
        if values and None not in named and len(named) > 1 and "train" in named:
            raise DataError(
                f"{table.name} has no {split_column!r} column, but column {column!r} "
                f"holds split names ({_quoted(sorted(values))}); name it with "
                f"--split-column {column} (split_column={column!r} in Python), or "
                "rename it to 'split'"
            )


def _make_sample(
    split: str,
    raw_path: str,
    raw_label: str,
    *,
    table: Table,
    index: int,
    base: Path,
    errors: list[str],
) -> Sample | None:
    """Builds one Sample from CSV text, or records why the row cannot be used."""
    row = table.rows[index]
    label = raw_label.strip()
    text = raw_path.strip()
    if not text:
        errors.append(f"row {row}: empty path")
    if not label:
        errors.append(f"row {row}: empty label")
    if not text or not label:
        return None
    control = next((c for c in label if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        # Latin-1 turns a Windows or other code page's bytes into such characters.
        errors.append(
            f"row {row}: label {label!r} holds the control character {control!r}; "
            "save the CSV as UTF-8"
        )
        return None

    # CSVs written on Windows carry backslashes that POSIX would read as part of a
    # file name, and no real dataset names files with backslashes.
    if os.sep == "/" and "\\" in text:
        text = text.replace("\\", "/")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base / path
    origin = f"{table.name} row {row}"
    return Sample(split=split, path=path.resolve(), label=label, origin=origin)


# Class folders.


def _read_class_folders(root: Path) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Reads ROOT/<split>/<class>/* or, with no split folders, ROOT/<class>/*."""
    ignored: list[tuple[str, str]] = []
    entries = _sorted_entries(root)
    split_dirs: dict[str, Path] = {}
    for entry in entries:
        split = _SPLIT_ALIASES.get(entry.name.casefold())
        if entry.is_dir() and split is not None and split not in split_dirs:
            split_dirs[split] = entry

    samples: list[Sample] = []
    if "train" not in split_dirs:
        if split_dirs:
            found = ", ".join(path.name for path in split_dirs.values())
            raise DataError(
                f"{str(root)!r} has split folders ({found}) but no train folder"
            )
        csvs = [entry.name for entry in entries if entry.suffix.lower() == ".csv"]
        samples = _read_split_folder(root, root, "train", ignored)
        loose = _loose_images(entries)
        if not samples and loose:
            raise DataError(
                _loose_images_message(root, loose)
                + f", or list paths and labels in {root / 'train.csv'} (columns "
                "filepath,label)"
            )
        if not samples:
            hint = (
                f"; found {_quoted(csvs)}: pass a CSV file with a split column "
                "itself, or name the CSVs train.csv, val.csv, test.csv"
                if csvs
                else ""
            )
            raise DataError(
                f"no images found in {str(root)!r}; expected train.csv (with val.csv, "
                "test.csv), class folders ROOT/<class>/*, or split folders "
                f"ROOT/train/<class>/*{hint}"
            )
        return samples, ignored

    used = set(split_dirs.values())
    for entry in entries:
        if entry not in used:
            ignored.append((_relative(entry, root), _ignore_reason(entry, top=True)))
    for split in SPLITS:
        if split in split_dirs:
            samples += _read_split_folder(split_dirs[split], root, split, ignored)
    train = split_dirs["train"]
    loose = _loose_images(_sorted_entries(train))
    if loose and not any(sample.split == "train" for sample in samples):
        raise DataError(_loose_images_message(train, loose))
    return samples, ignored


def _loose_images(entries: Iterable[Path]) -> list[Path]:
    """The image files among a folder's entries, hidden ones left out."""
    return [
        entry
        for entry in entries
        if entry.is_file()
        and not _is_hidden(entry)
        and entry.suffix.lower() in IMAGE_EXTENSIONS
    ]


def _loose_images_message(folder: Path, images: Sequence[Path]) -> str:
    """Says that a folder holds images but no class folders, and how to sort them."""
    suffix = Counter(image.suffix.lower() for image in images).most_common(1)[0][0]
    return (
        f"{str(folder)!r} holds {plural(len(images), 'image', 'images')} but no "
        "class folders, so no image has a label; move each class's images into a "
        f"folder named for the class ({folder / '<class>'}/*{suffix}, e.g. "
        f"{folder / 'cat'}/*{suffix})"
    )


def _read_split_folder(
    folder: Path, root: Path, split: str, ignored: list[tuple[str, str]]
) -> list[Sample]:
    """Reads the class folders under one split folder."""
    samples: list[Sample] = []
    for entry in _sorted_entries(folder):
        if not entry.is_dir() or _is_hidden(entry):
            ignored.append((_relative(entry, root), _ignore_reason(entry)))
            continue
        found = list(_walk_images(entry, root, ignored, visited=set()))
        if not found:
            ignored.append((_relative(entry, root), "folder has no images"))
        label = entry.name.strip()
        samples += [
            Sample(split, path.resolve(), label, _relative(path, root))
            for path in found
        ]
    return samples


def _walk_images(
    folder: Path, root: Path, ignored: list[tuple[str, str]], visited: set[Path]
) -> Iterable[Path]:
    """Yields the image files under a class folder, recording what is skipped."""
    # A symlinked folder may point back up the tree; each real folder is read once.
    real = folder.resolve()
    if real in visited:
        return
    visited.add(real)
    for entry in _sorted_entries(folder):
        if _is_hidden(entry) or _is_system_file(entry):
            ignored.append((_relative(entry, root), _ignore_reason(entry)))
        elif entry.is_dir():
            yield from _walk_images(entry, root, ignored, visited)
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            yield entry
        else:
            ignored.append((_relative(entry, root), _ignore_reason(entry)))


def _ignore_reason(entry: Path, *, top: bool = False) -> str:
    """Says in words why a folder entry is not read."""
    if _is_hidden(entry):
        return "hidden folder" if entry.is_dir() else "hidden file"
    if _is_system_file(entry):
        return "system file"
    if top:
        return "not a split folder (train, val, test)"
    if entry.is_dir():
        return "not an image folder"
    if entry.suffix.lower() in IMAGE_EXTENSIONS:
        return "image outside a class folder"
    suffix = entry.suffix or "none"
    return f"not an image file (extension {suffix!r})"


def _is_hidden(entry: Path) -> bool:
    return entry.name.startswith(".")


def _is_system_file(entry: Path) -> bool:
    return entry.name.casefold() in _SYSTEM_FILES


def _sorted_entries(folder: Path) -> list[Path]:
    """Lists a folder in natural name order, so runs are repeatable."""
    return sorted(folder.iterdir(), key=lambda entry: _label_key(entry.name))


def _relative(path: Path, root: Path) -> str:
    """A path relative to the dataset folder, POSIX style; folders end with "/"."""
    text = path.relative_to(root).as_posix()
    return text + "/" if path.is_dir() else text


# Wording.


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(repr(value) for value in values)
