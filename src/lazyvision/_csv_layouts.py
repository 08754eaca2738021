"""The CSV layouts: train.csv, val.csv and test.csv, or one CSV with a split column.

Each row becomes a Sample, its path resolved against the CSV's folder or the
image root; rows that cannot be used are collected and raised together. Reading
the file as text is :mod:`lazyvision._csv`'s business.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from lazyvision._csv import (
    Table,
    identifier_hint,
    quoted,
    raise_row_errors,
    read_csv,
    split_value_errors,
)
from lazyvision._dataset import DEFAULT_SPLIT_COLUMN, SPLIT_ALIASES, SPLITS, Sample
from lazyvision.errors import DataError


def read_split_csvs(
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


def read_split_column_csv(
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
        siblings = _split_siblings(path)
        if siblings:
            warnings.append(_unread_siblings_warning(path, siblings, split_column))

    base = root if root is not None else path.parent
    samples: list[Sample] = []
    errors: list[str] = []
    bad_splits: dict[str, list[int]] = {}
    for index, (raw_path, raw_label) in enumerate(zip(paths, labels, strict=True)):
        raw_split = splits[index].strip()
        split = SPLIT_ALIASES.get(raw_split.casefold())
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


def _split_siblings(path: Path) -> list[str]:
    """The val and test CSVs beside a CSV whose name marks it as the train split.

    "train.csv", "train_2024.csv" and "pets-train.csv" are train splits; their
    siblings swap "train" for a val or test name of :data:`SPLIT_ALIASES`
    ("val.csv", "valid_2024.csv", "pets-test.csv").
    """
    stem = path.stem
    word = len("train")
    if stem.casefold() == "train":
        prefix, suffix = "", ""
    elif stem[:word].casefold() == "train" and stem[word : word + 1] in ("_", "-"):
        prefix, suffix = "", stem[word:]
    elif stem[-word:].casefold() == "train" and stem[-word - 1 : -word] in ("_", "-"):
        prefix, suffix = stem[:-word], ""
    else:
        return []
    names = [
        f"{prefix}{alias}{suffix}{path.suffix}"
        for alias, split in SPLIT_ALIASES.items()
        if split != "train"
    ]
    return [name for name in names if (path.parent / name).is_file()]


def _unread_siblings_warning(path: Path, siblings: list[str], split_column: str) -> str:
    """Says that the CSVs beside a train CSV are not read, and how to read them."""
    if path.name == "train.csv" and set(siblings) <= {"val.csv", "test.csv"}:
        how = f"pass the folder {str(path.parent)!r} instead of {path.name} to use them"
    else:
        how = (
            "to use them, name the files train.csv, val.csv and test.csv in one "
            f"folder and pass the folder, or give one CSV with a {split_column!r} "
            "column"
        )
    return (
        f"{path.name} has no {split_column!r} column, so all its rows are training "
        f"images and val is drawn from them; {quoted(siblings)} beside it "
        f"{'was' if len(siblings) == 1 else 'were'} not read: {how}"
    )


def _refuse_unnamed_split_column(table: Table, split_column: str) -> None:
    """Raises when another column holds nothing but split names.

    Read as a training set only, such a CSV would put its val and test rows into
    training without a word; the column is named, not guessed.
    """
    for index, column in enumerate(table.header):
        values = {record[index].strip().casefold() for record in table.records}
        values.discard("")
        named = {SPLIT_ALIASES.get(value) for value in values}
        if values and None not in named and len(named) > 1 and "train" in named:
            raise DataError(
                f"{table.name} has no {split_column!r} column, but column {column!r} "
                f"holds split names ({quoted(sorted(values))}); name it with "
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
