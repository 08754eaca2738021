"""Reading the user's labelled images into a Dataset of Samples.

Three layouts are understood: a folder of split CSVs (train.csv, val.csv and an
optional test.csv), one CSV with a split column, and class folders (with or without
train/val/test folders above them). Only the table of samples is built here; whether
each file can be decoded is the business of :mod:`lazyvision.check`.

This module recognises the layout and logs what was found; the CSV layouts are read
in :mod:`lazyvision._csv_layouts`, class folders in :mod:`lazyvision._class_folders`,
and the rows of either become a Dataset in :mod:`lazyvision._labels`.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from pathlib import Path

from lazyvision._class_folders import is_hidden, read_class_folders, sorted_entries
from lazyvision._csv_layouts import read_split_column_csv, read_split_csvs
from lazyvision._dataset import (
    DEFAULT_SPLIT_COLUMN,
    IMAGE_EXTENSIONS,
    SPLITS,
    Dataset,
    Sample,
)
from lazyvision._labels import MANY_LABELS, finish, sort_labels
from lazyvision.errors import DataError

__all__ = [
    "DEFAULT_SPLIT_COLUMN",
    "IMAGE_EXTENSIONS",
    "MANY_LABELS",
    "SPLITS",
    "Dataset",
    "Sample",
    "load_dataset",
    "sort_labels",
]

logger = logging.getLogger(__name__)

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
        samples, identifier_hint = read_split_column_csv(
            source_path, path_column, label_column, split_column, root, warnings
        )
    elif source_path.is_dir() and (source_path / "train.csv").is_file():
        layout = "split-csvs"
        samples, identifier_hint = read_split_csvs(
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
        samples, ignored = read_class_folders(source_path)
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

    return finish(
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
        entries = sorted_entries(parent)
    except OSError:  # a folder that cannot be listed has no names to suggest
        return message
    # Compared without case: "Pets" was most likely meant for "pets".
    names = {
        entry.name.casefold(): str(entry) + ("/" if entry.is_dir() else "")
        for entry in entries
        if entry.exists() and not is_hidden(entry)
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
