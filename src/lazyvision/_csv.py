"""CSV files as text: decoding, the table of rows, and the errors about them.

What the rows mean (paths, labels, splits) is the business of
:mod:`lazyvision._csv_layouts`; here a file becomes a :class:`Table` with its
spreadsheet row numbers, and the messages that name those rows are worded.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lazyvision.errors import DataError

_MAX_LISTED_ROW_ERRORS = 20
_MAX_LISTED_SPLIT_ROWS = 5
# Binary files (images, archives, spreadsheets) hold NUL bytes in their headers.
_SNIFF_BYTES = 8192
# A label column where at least this share of the rows hold a value of their own
# is taken for an identifier (an id, a file name) when its classes cannot be used.
_IDENTIFIER_SHARE = 0.9
# Below this many rows a value per row is as likely a tiny test set as an id column.
_MIN_IDENTIFIER_ROWS = 5
# What data sets commonly call these columns, offered when the one asked for is
# missing: "class" is spelt nothing like "label", so close matches alone miss it.
_USUAL_COLUMN_NAMES = {
    "label": ("label", "labels", "class", "classes", "category", "target", "y"),
    "path": (
        "filepath",
        "path",
        "file",
        "filename",
        "image",
        "image_path",
        "img",
    ),
}


def split_value_errors(split_column: str, bad: dict[str, list[int]]) -> list[str]:
    """Error lines for values of the split column that name no split.

    Each value is named once, with how many rows hold it and the first of them:
    a column of the wrong values fails on every row, and a line per row would
    bury the few values to fix.
    """
    if not bad:
        return []
    lines = [
        f"split column {split_column!r} has values other than train, val (or "
        "validation, valid) and test:"
    ]
    for value, rows in bad.items():
        if len(rows) == 1:
            lines.append(f"  {value!r} in row {rows[0]}")
            continue
        listed = ", ".join(map(str, rows[:_MAX_LISTED_SPLIT_ROWS]))
        more = ", ..." if len(rows) > _MAX_LISTED_SPLIT_ROWS else ""
        lines.append(f"  {value!r} in {len(rows)} rows: {listed}{more}")
    return lines


def raise_row_errors(path: Path, errors: list[str], *, num_rows: int) -> None:
    """Raises one DataError listing the bad rows of a CSV, if any.

    ``num_rows`` is how many rows cannot be used; one row may have two errors, and
    one line may stand for many rows.
    """
    if not errors:
        return
    shown = errors[:_MAX_LISTED_ROW_ERRORS]
    more = len(errors) - len(shown)
    lines = [f"{path.name}: {plural(num_rows, 'row', 'rows')} cannot be used:"]
    lines += [f"  {error}" for error in shown]
    if more:
        lines.append(f"  ... and {more} more")
    raise DataError("\n".join(lines))


def identifier_hint(
    tables: Sequence[Table], label_column: str, *, used: Collection[str]
) -> str | None:
    """The error for a label column that looks like an identifier, else None.

    Nearly every row holding a value of its own is what an id or file-name column
    looks like; such a column gives classes that val or test hold and train lacks.
    The error names the other columns, with how many values each holds, so the
    one with the labels can be picked.
    """
    labels = [
        value.strip()
        for table in tables
        for value in table.column(label_column, "label")
    ]
    num_values = len(set(labels))
    if len(labels) < _MIN_IDENTIFIER_ROWS or num_values < _IDENTIFIER_SHARE * len(
        labels
    ):
        return None

    names = ", ".join(table.name for table in tables)
    others = [column for column in tables[0].header if column not in used]
    described = [
        f"{column!r} ({plural(_count_values(tables, column), 'value', 'values')})"
        for column in others
    ]
    choice = (
        f"the other columns are {', '.join(described)}"
        if described
        else f"{tables[0].name} has no other column; add one with the labels"
    )
    return (
        f"label column {label_column!r} of {names} looks like an identifier, not "
        f"a label: {len(labels)} rows hold {num_values} different values, and a "
        "class needs images in train and in val. Name the column of labels with "
        f"--label-column (label_column in Python); {choice}"
    )


def _count_values(tables: Sequence[Table], column: str) -> int:
    """How many different values one column holds across the tables that have it."""
    return len(
        {
            record[table.header.index(column)].strip()
            for table in tables
            if column in table.header
            for record in table.records
        }
    )


@dataclass(frozen=True)
class Table:
    """A CSV read as text: header, data rows and their spreadsheet row numbers."""

    name: str
    header: tuple[str, ...]
    records: tuple[tuple[str, ...], ...]
    rows: tuple[int, ...]

    def close_matches(self, name: str) -> list[str]:
        """Column names close to ``name``: same but for case, or a likely typo."""
        close = difflib.get_close_matches(name, self.header, n=3, cutoff=0.6)
        same_but_case = [
            column
            for column in self.header
            if column.casefold() == name.casefold() and column not in close
        ]
        return same_but_case + close

    def column(self, name: str, role: str) -> list[str]:
        """Returns one column's values, or raises naming the columns that exist."""
        if name not in self.header:
            listed = ", ".join(repr(column) for column in self.header)
            message = f"{role} column {name!r} not in {self.name}; columns are {listed}"
            close = self.close_matches(name)
            usual = _USUAL_COLUMN_NAMES.get(role, ())
            close += [
                column
                for column in self.header
                if column.casefold() in usual and column not in close
            ]
            if close:
                message += f"; did you mean {' or '.join(map(repr, close))}?"
            choose = f"choose another with --{role}-column, or {role}_column in Python"
            raise DataError(f"{message} ({choose})")
        index = self.header.index(name)
        return [record[index] for record in self.records]


def read_csv(path: Path, *, warnings: list[str]) -> Table:
    """Reads a CSV in UTF-8 (BOM or not), UTF-16 (with its BOM) or Windows-1252,
    separated by commas, semicolons or tabs (whichever the header has most of).

    A file read in another encoding than UTF-8 or UTF-16 adds a warning to
    ``warnings``, for the data set's warnings; it is added before the file's rows
    are checked, so it is there when they cannot be used.
    """
    data = path.read_bytes()
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not utf16 and b"\0" in data[:_SNIFF_BYTES]:
        raise DataError(
            f"{path.name} is not text (it holds NUL bytes), so not a CSV; expected "
            "a CSV of image paths and labels, saved as UTF-8"
        )
    if utf16:
        # Spreadsheet programs' "Unicode text": UTF-16, tab separated.
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path.name} starts as UTF-16 text but byte {err.start} is not; "
                "save it as UTF-8 CSV"
            ) from err
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            # What spreadsheet programs on Western Windows machines write; Latin-1,
            # which decodes any bytes, takes the few that Windows-1252 leaves out.
            for encoding in ("cp1252", "latin-1"):
                try:
                    text = data.decode(encoding)
                    break
                except UnicodeDecodeError:
                    continue
            row = data.count(b"\n", 0, err.start) + 1
            name = "Windows-1252" if encoding == "cp1252" else "Latin-1"
            warnings.append(
                f"{path.name} is not UTF-8 (row {row} is the first that is not); "
                f"read as {name}, so accented letters may be wrong: save it as "
                "UTF-8 to be sure"
            )

    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    # Ties go to the comma, then the semicolon.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    header: tuple[str, ...] | None = None
    header_row = 0
    records: list[tuple[str, ...]] = []
    rows: list[int] = []
    errors: list[str] = []
    for row_number, record in enumerate(reader, start=1):
        if not any(field.strip() for field in record):
            continue
        fields = tuple(field.strip() for field in record)
        if header is None:
            header = fields
            header_row = row_number
            continue
        extra = fields[len(header) :]
        if any(extra):
            errors.append(
                f"row {row_number}: {len(fields)} fields but the header (row "
                f"{header_row}) has {len(header)}; quote values that contain "
                f"{delimiter!r}"
            )
            continue
        padded = (*record, *[""] * (len(header) - len(record)))
        records.append(tuple(padded[: len(header)]))
        rows.append(row_number)
    if header is None:
        raise DataError(f"{path.name} is empty; expected a header row and image rows")
    raise_row_errors(path, errors, num_rows=len(errors))
    if not records:
        raise DataError(f"{path.name} has a header but no rows")
    return Table(path.name, header, tuple(records), tuple(rows))


def plural(count: int, singular: str, plural: str) -> str:
    """ "1 row", "2 rows": the count and the noun that goes with it."""
    return f"{count} {singular if count == 1 else plural}"


def quoted(values: Iterable[str]) -> str:
    """ "'a', 'b'": each value in quotes, comma separated."""
    return ", ".join(repr(value) for value in values)
