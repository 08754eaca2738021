"""The records a data set is read into: Sample and Dataset, and the split names.

Every layout (:mod:`lazyvision._csv_layouts`, :mod:`lazyvision._class_folders`)
builds Samples; :mod:`lazyvision._labels` gathers them into the Dataset. The
public names are re-exported from :mod:`lazyvision.data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lazyvision.errors import DataError

SPLITS = ("train", "val", "test")
#: The split column of a single CSV, unless named otherwise.
DEFAULT_SPLIT_COLUMN = "split"
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)

SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
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
