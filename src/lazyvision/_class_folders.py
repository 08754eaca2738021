"""Class folders: ROOT/<class>/* or ROOT/<split>/<class>/*, with what is skipped.

Each image file becomes a Sample labelled by its class folder's name; hidden and
system files, files that are no images and folders that are no classes are
listed, with the reason, as ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from lazyvision._csv import plural, quoted
from lazyvision._dataset import IMAGE_EXTENSIONS, SPLIT_ALIASES, SPLITS, Sample
from lazyvision._labels import label_key
from lazyvision.errors import DataError

# Files that operating systems and notebooks leave in folders without a leading dot.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db"})


def read_class_folders(root: Path) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Reads ROOT/<split>/<class>/* or, with no split folders, ROOT/<class>/*."""
    ignored: list[tuple[str, str]] = []
    entries = sorted_entries(root)
    split_dirs: dict[str, Path] = {}
    for entry in entries:
        split = SPLIT_ALIASES.get(entry.name.casefold())
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
                f"; found {quoted(csvs)}: pass a CSV file with a split column "
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
    loose = _loose_images(sorted_entries(train))
    if loose and not any(sample.split == "train" for sample in samples):
        raise DataError(_loose_images_message(train, loose))
    return samples, ignored


def _loose_images(entries: Iterable[Path]) -> list[Path]:
    """The image files among a folder's entries, hidden ones left out."""
    return [
        entry
        for entry in entries
        if entry.is_file()
        and not is_hidden(entry)
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
    for entry in sorted_entries(folder):
        if not entry.is_dir() or is_hidden(entry):
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
    for entry in sorted_entries(folder):
        if is_hidden(entry) or _is_system_file(entry):
            ignored.append((_relative(entry, root), _ignore_reason(entry)))
        elif entry.is_dir():
            yield from _walk_images(entry, root, ignored, visited)
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            yield entry
        else:
            ignored.append((_relative(entry, root), _ignore_reason(entry)))


def _ignore_reason(entry: Path, *, top: bool = False) -> str:
    """Says in words why a folder entry is not read."""
    if is_hidden(entry):
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


def is_hidden(entry: Path) -> bool:
    return entry.name.startswith(".")


def _is_system_file(entry: Path) -> bool:
    return entry.name.casefold() in _SYSTEM_FILES


def sorted_entries(folder: Path) -> list[Path]:
    """Lists a folder in natural name order, so runs are repeatable."""
    return sorted(folder.iterdir(), key=lambda entry: label_key(entry.name))


def _relative(path: Path, root: Path) -> str:
    """A path relative to the dataset folder, POSIX style; folders end with "/"."""
    text = path.relative_to(root).as_posix()
    return text + "/" if path.is_dir() else text
