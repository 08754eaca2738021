"""Tests for lazyvision.data: every layout, CSV dialect and label rule."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lazyvision.data import Dataset, load_dataset, sort_labels
from lazyvision.errors import DataError


def save_image(path: Path, seed: int = 0, size: int = 16) -> Path:
    """Writes a small real image (format from the extension) and returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
    image_format = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None
    Image.fromarray(pixels).save(path, format=image_format)
    return path


def write_csv(path: Path, rows: Sequence[tuple[str, ...]], **kwargs: str) -> Path:
    """Writes rows joined by a delimiter, header first, in the given encoding."""
    delimiter = kwargs.get("delimiter", ",")
    text = "\n".join(delimiter.join(row) for row in rows) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(kwargs.get("encoding", "utf-8")))
    return path


def labelled_rows(prefix: str, labels: list[str]) -> list[tuple[str, str]]:
    header = [("filepath", "label")]
    return header + [(f"{prefix}{i}.png", label) for i, label in enumerate(labels)]


def by_split(dataset: Dataset) -> dict[str, list[str]]:
    return {
        split: [s.label for s in dataset.split(split)] for split in ("train", "val")
    }


# Split CSVs.


def test_split_csvs_resolve_paths_against_the_csv_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for i in range(2):
        save_image(images / "shirt" / f"train_{i}.png", seed=i)
        save_image(images / "shoe" / f"val_{i}.png", seed=10 + i)
    csvs = tmp_path / "csv"
    write_csv(
        csvs / "train.csv",
        [
            ("filepath", "label"),
            ("../images/shirt/train_0.png", "shirt"),
            ("../images/shirt/train_1.png", "shoe"),
        ],
    )
    write_csv(
        csvs / "val.csv",
        [("filepath", "label"), ("../images/shoe/val_0.png", "shirt")],
    )

    dataset = load_dataset(csvs)

    assert dataset.layout == "split-csvs"
    assert dataset.split_names == ("train", "val")
    assert not dataset.val_drawn
    assert dataset.classes == ("shirt", "shoe")
    first = dataset.samples[0]
    assert first.path == (images / "shirt" / "train_0.png").resolve()
    assert first.path.is_file()
    assert first.origin == "train.csv row 2"
    assert dataset.split("val")[0].origin == "val.csv row 2"
    assert dataset.notes == ()


def test_image_root_overrides_the_csv_folder(tmp_path: Path) -> None:
    write_csv(tmp_path / "csv" / "train.csv", labelled_rows("t", ["a", "b"]))
    write_csv(tmp_path / "csv" / "val.csv", labelled_rows("v", ["a", "b"]))

    dataset = load_dataset(tmp_path / "csv", image_root=tmp_path / "pics")

    assert dataset.samples[0].path == (tmp_path / "pics" / "t0.png").resolve()


def test_paths_of_every_kind_become_samples_without_opening_files(
    tmp_path: Path,
) -> None:
    outside = save_image(tmp_path / "elsewhere" / "absolute.png")
    folder = tmp_path / "data"
    rows = [
        ("filepath", "label"),
        ("img/relative.png", "a"),
        (str(outside), "a"),
        ("img/with space.png", "b"),
        ("img/ñandú.jpg", "b"),
        ("img/UPPER.JPG", "a"),
        ("img\\windows\\style.png", "b"),
        ("img/missing.png", "b"),
    ]
    write_csv(folder / "train.csv", rows)
    write_csv(folder / "val.csv", labelled_rows("img/v", ["a", "b"]))

    dataset = load_dataset(folder)

    train = dataset.split("train")
    assert [s.path for s in train] == [
        (folder / "img" / "relative.png").resolve(),
        outside.resolve(),
        (folder / "img" / "with space.png").resolve(),
        (folder / "img" / "ñandú.jpg").resolve(),
        (folder / "img" / "UPPER.JPG").resolve(),
        (folder / "img" / "windows" / "style.png").resolve(),
        (folder / "img" / "missing.png").resolve(),
    ]
    assert [s.origin for s in train] == [f"train.csv row {n}" for n in range(2, 9)]


def test_csv_in_latin1_is_read(tmp_path: Path) -> None:
    rows = [("filepath", "label"), ("ñandú.png", "pingüino"), ("b.png", "café")]
    write_csv(tmp_path / "train.csv", rows, encoding="latin-1")
    write_csv(tmp_path / "val.csv", rows, encoding="latin-1")

    dataset = load_dataset(tmp_path)

    assert dataset.classes == ("café", "pingüino")
    assert dataset.samples[0].path.name == "ñandú.png"


def test_windows_csv_is_read_as_windows_1252_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [("filepath", "label"), ("a.png", "5€"), ("b.png", "cat’s")]
    write_csv(tmp_path / "train.csv", rows, encoding="cp1252")
    write_csv(tmp_path / "val.csv", rows)

    with caplog.at_level(logging.WARNING, logger="lazyvision.data"):
        dataset = load_dataset(tmp_path)

    assert dataset.classes == ("5€", "cat’s")
    warning = (
        "train.csv is not UTF-8 (row 2 is the first that is not); read as "
        "Windows-1252, so accented letters may be wrong: save it as UTF-8 to be sure"
    )
    assert dataset.warnings == (warning,)
    assert caplog.messages == [warning]


def test_warnings_are_logged_when_the_data_set_cannot_be_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "train.csv").write_bytes(b"filepath,label\na.png,caf\xe9\nb.png,\n")

    with (
        caplog.at_level(logging.WARNING, logger="lazyvision.data"),
        pytest.raises(DataError, match=r"row 3: empty label"),
    ):
        load_dataset(tmp_path)

    assert caplog.messages == [
        "train.csv is not UTF-8 (row 2 is the first that is not); read as "
        "Windows-1252, so accented letters may be wrong: save it as UTF-8 to be sure"
    ]


def test_label_with_a_control_character_names_the_row(tmp_path: Path) -> None:
    # 0x81 is no Windows-1252 character, so the file falls back to Latin-1.
    data = b"filepath,label\na.png,ok\nb.png,bad\x81label\n"
    (tmp_path / "train.csv").write_bytes(data)
    write_csv(tmp_path / "val.csv", [("filepath", "label"), ("c.png", "ok")])

    with pytest.raises(DataError, match=r"row 3: label 'bad\\x81label' holds"):
        load_dataset(tmp_path)


def test_csv_with_bom_and_semicolons_is_read(tmp_path: Path) -> None:
    rows = [("filepath", "label"), ("a,1.png", "x"), ("b.png", "y")]
    write_csv(tmp_path / "train.csv", rows, delimiter=";", encoding="utf-8-sig")
    write_csv(tmp_path / "val.csv", rows, delimiter=";")

    dataset = load_dataset(tmp_path)

    assert (tmp_path / "train.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert dataset.classes == ("x", "y")
    assert dataset.samples[0].path.name == "a,1.png"


def test_spreadsheet_unicode_text_and_tab_separated_csvs_are_read(
    tmp_path: Path,
) -> None:
    rows = [("filepath", "label"), ("a, 1.png", "pingüino"), ("b.png", "café")]
    # "Unicode text" as spreadsheet programs save it: UTF-16 with a BOM, tabs.
    write_csv(tmp_path / "train.csv", rows, delimiter="\t", encoding="utf-16")
    write_csv(tmp_path / "val.csv", rows, delimiter="\t")

    dataset = load_dataset(tmp_path)

    assert (tmp_path / "train.csv").read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert dataset.classes == ("café", "pingüino")
    assert [s.path.name for s in dataset.samples] == ["a, 1.png", "b.png"] * 2


def test_broken_utf16_csv_names_the_file_and_the_byte(tmp_path: Path) -> None:
    data = "filepath\tlabel\na.png\tx\n".encode("utf-16-le")
    (tmp_path / "train.csv").write_bytes(b"\xff\xfe" + data + b"\x00\xd8")

    with pytest.raises(DataError, match=r"train.csv starts as UTF-16 .* byte \d+"):
        load_dataset(tmp_path)


def test_misspelled_column_lists_columns_and_suggests(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows("t", ["a", "b"]))

    with pytest.raises(
        DataError,
        match=r"label column 'lable' not in train\.csv; columns are 'filepath', "
        r"'label'; did you mean 'label'\?",
    ):
        load_dataset(tmp_path, label_column="lable")
    with pytest.raises(DataError, match=r"path column 'Filepath'.*did you mean 'file"):
        load_dataset(tmp_path, path_column="Filepath")


def test_missing_column_suggests_the_usual_names_in_the_header(
    tmp_path: Path,
) -> None:
    rows = [("filepath", "id", "Class"), ("a.png", "1", "cat"), ("b.png", "2", "dog")]
    write_csv(tmp_path / "train.csv", rows)

    with pytest.raises(
        DataError,
        match=r"label column 'label' not in train\.csv; columns are 'filepath', "
        r"'id', 'Class'; did you mean 'Class'\? \(choose another with --label-col",
    ):
        load_dataset(tmp_path)
    write_csv(tmp_path / "train.csv", [("image", "label"), ("a.png", "cat")])
    with pytest.raises(
        DataError, match=r"path column 'filepath' .*; did you mean 'image'\? \("
    ):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [(("", "a"), "row 3: empty path"), (("x.png", "  "), "row 3: empty label")],
)
def test_empty_path_or_label_names_file_and_row(
    tmp_path: Path, row: tuple[str, str], problem: str
) -> None:
    write_csv(tmp_path / "train.csv", [("filepath", "label"), ("a.png", "a"), row])

    with pytest.raises(
        DataError, match=rf"train\.csv: 1 row cannot be used:\n  {problem}"
    ):
        load_dataset(tmp_path)


def test_row_with_unquoted_delimiter_is_named(tmp_path: Path) -> None:
    rows = [("filepath", "label"), ("a.png", "a"), ("b,c.png", "b")]
    write_csv(tmp_path / "train.csv", rows)

    with pytest.raises(DataError, match=r"row 3: 3 fields but the header .* has 2"):
        load_dataset(tmp_path)


def test_blank_lines_keep_spreadsheet_row_numbers(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("filepath,label\na.png,a\n\nb.png,b\nc.png,\n")

    with pytest.raises(DataError, match=r"row 5: empty label"):
        load_dataset(tmp_path)


# Labels.


def test_labels_are_trimmed_text_sorted_naturally_and_case_pairs_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    labels = ["1", "2", "10", "2 ", "Cat", "cat", "cat", "1", "10", "Cat"]
    write_csv(tmp_path / "train.csv", labelled_rows("t", labels))
    write_csv(tmp_path / "val.csv", labelled_rows("v", ["1", "2", "10", "Cat", "cat"]))

    with caplog.at_level(logging.WARNING, logger="lazyvision.data"):
        dataset = load_dataset(tmp_path)

    assert dataset.classes == ("1", "2", "10", "Cat", "cat")
    assert Counter(s.label for s in dataset.split("train"))["2"] == 2
    assert dataset.warnings == (
        "labels 'Cat' (3 images) and 'cat' (3 images) differ only in case; they "
        "are kept as different classes",
    )
    assert "differ only in case" in caplog.text


def test_one_number_written_two_ways_is_reported(tmp_path: Path) -> None:
    labels = ["1", "01", "1.0", "2", "2", "10", "1e1", "-0", "0"]
    write_csv(tmp_path / "train.csv", labelled_rows("t", labels))
    write_csv(tmp_path / "val.csv", labelled_rows("v", labels))

    dataset = load_dataset(tmp_path)

    assert len(dataset.classes) == len(set(labels))  # still distinct classes
    numbered = [w for w in dataset.warnings if "same number" in w]
    assert numbered == [
        "labels '-0' (2 images) and '0' (2 images) are the same number written "
        "differently; they are kept as different classes",
        "labels '01' (2 images) and '1' (2 images) and '1.0' (2 images) are the "
        "same number written differently; they are kept as different classes",
    ]


def test_a_file_given_twice_in_a_split_is_used_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train = ["a.png,x", "b.png,y", "a.png,x", "c.png,y", "a.png,x", "b.png,x"]
    train += ["b.png,y", "d.png,x", "c.png,y", "e.png,y", "d.png,x", "e.png,y"]
    (tmp_path / "train.csv").write_text("filepath,label\n" + "\n".join(train))
    (tmp_path / "val.csv").write_text("filepath,label\nv.png,x\nw.png,y\nv.png,x\n")

    with caplog.at_level(logging.WARNING, logger="lazyvision.data"):
        dataset = load_dataset(tmp_path)

    assert [s.origin for s in dataset.samples] == [
        *(f"train.csv row {row}" for row in (2, 3, 5, 7, 9, 11)),
        "val.csv row 2",
        "val.csv row 3",
    ]
    # b.png under a second label is kept; the check warns of it.
    assert [s.label for s in dataset.split("train")] == ["x", "y", "y", "x", "x", "y"]
    assert dataset.warnings == (
        "6 rows of train repeat a file and label given earlier in train (train.csv "
        "rows 4, 6, 8, 10, 12, ...); each file is used once, so they are left out",
        "1 row of val repeats a file and label given earlier in val (val.csv row "
        "4); each file is used once, so it is left out",
    )
    assert caplog.messages == list(dataset.warnings)


def test_a_file_given_twice_is_not_drawn_into_val_and_train(tmp_path: Path) -> None:
    rows = [(f"{i}.png", "ab"[i % 2]) for i in range(10)]
    write_csv(tmp_path / "train.csv", [("filepath", "label"), *rows, *rows])

    dataset = load_dataset(tmp_path)

    assert len(dataset.samples) == 10
    train = {s.path for s in dataset.split("train")}
    assert not train & {s.path for s in dataset.split("val")}


def test_sort_labels_puts_numbers_first_by_value() -> None:
    assert sort_labels(["b", "10", "img10", "2", "img2", "1.5"]) == (
        "1.5",
        "2",
        "10",
        "b",
        "img2",
        "img10",
    )


def test_class_missing_from_val_is_a_warning(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows("t", ["a", "b", "c"]))
    write_csv(tmp_path / "val.csv", labelled_rows("v", ["a", "c"]))

    dataset = load_dataset(tmp_path)

    assert dataset.classes == ("a", "b", "c")
    assert dataset.warnings == ("1 class in train but not in val: 'b'",)


def test_labels_given_once_each_are_flagged(tmp_path: Path) -> None:
    # The path column taken for the labels: every image its own class.
    paths = [(f"t{i}.png", f"t{i}.png") for i in range(25)]
    write_csv(tmp_path / "train.csv", [("filepath", "label"), *paths])
    write_csv(tmp_path / "val.csv", labelled_rows("v", ["t0.png"]))

    dataset = load_dataset(tmp_path)

    assert len(dataset.classes) == 25
    assert any(
        "25 classes for 25 training images" in w and "--label-column" in w
        for w in dataset.warnings
    )


def test_many_classes_with_several_images_each_are_not_flagged(
    tmp_path: Path,
) -> None:
    labels = [f"c{i % 25}" for i in range(75)]
    write_csv(tmp_path / "train.csv", labelled_rows("t", labels))
    write_csv(tmp_path / "val.csv", labelled_rows("v", labels[:25]))

    assert load_dataset(tmp_path).warnings == ()


def test_class_in_test_that_train_lacks_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows("t", ["a", "b", "c"]))
    write_csv(tmp_path / "val.csv", labelled_rows("v", ["a", "c"]))
    write_csv(tmp_path / "test.csv", labelled_rows("s", ["a", "d"]))

    with (
        caplog.at_level(logging.WARNING, logger="lazyvision.data"),
        pytest.raises(
            DataError,
            match=r"test has 1 class that train lacks: 'd' "
            r"\(train classes: 'a', 'b', 'c'\)",
        ),
    ):
        load_dataset(tmp_path)
    assert "1 class in train but not in val: 'b'" in caplog.text


def id_column_rows(count: int) -> list[tuple[str, ...]]:
    """Rows whose "label" column is really a unique id; "species" holds labels."""
    rows: list[tuple[str, ...]] = [("filepath", "label", "species", "split")]
    splits = ["train", "train", "train", "val", "test"]
    for i in range(count):
        rows.append((f"{i}.png", f"id-{i:03d}", ("cat", "dog")[i % 2], splits[i % 5]))
    return rows


def test_identifier_taken_for_the_labels_names_the_other_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_csv(tmp_path / "all.csv", id_column_rows(40))

    with (
        caplog.at_level(logging.WARNING, logger="lazyvision.data"),
        pytest.raises(DataError) as raised,
    ):
        load_dataset(path)

    assert str(raised.value) == (
        "label column 'label' of all.csv looks like an identifier, not a label: "
        "40 rows hold 40 different values, and a class needs images in train and "
        "in val. Name the column of labels with --label-column (label_column in "
        "Python); the other columns are 'species' (2 values)"
    )
    # Not every id, in the error or in warnings logged before it.
    assert "id-007" not in caplog.text


def test_identifier_in_a_training_set_only_gets_the_same_hint(
    tmp_path: Path,
) -> None:
    rows = [("filepath", "label", "breed", "notes")]
    rows += [(f"{i}.png", f"{i}.png", "ab"[i % 2], f"note {i}") for i in range(8)]
    write_csv(tmp_path / "train.csv", rows)

    with pytest.raises(
        DataError,
        match=r"label column 'label' of train\.csv looks like an identifier.* "
        r"the other columns are 'breed' \(2 values\), 'notes' \(8 values\)$",
    ):
        load_dataset(tmp_path)


def test_identifier_with_no_other_column_says_so(tmp_path: Path) -> None:
    rows = [("filepath", "label")] + [(f"{i}.png", str(i)) for i in range(6)]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "val.csv", [("filepath", "label"), ("v.png", "9")])

    with pytest.raises(
        DataError,
        match=r"of train\.csv, val\.csv looks like an identifier.*7 rows hold 7 "
        r"different values.*train\.csv has no other column; add one with the labels",
    ):
        load_dataset(tmp_path)


# One CSV with a split column.


def test_single_csv_with_split_column(tmp_path: Path) -> None:
    rows = [
        ("filepath", "label", "split"),
        ("a.png", "a", "train"),
        ("b.png", "b", "TRAIN"),
        ("c.png", "a", "Validation"),
        ("d.png", "b", "valid"),
        ("e.png", "a", " val "),
        ("f.png", "b", "test"),
    ]
    path = write_csv(tmp_path / "all.csv", rows)

    dataset = load_dataset(path)

    assert dataset.layout == "split-column-csv"
    assert [(s.split, s.path.name) for s in dataset.samples] == [
        ("train", "a.png"),
        ("train", "b.png"),
        ("val", "c.png"),
        ("val", "d.png"),
        ("val", "e.png"),
        ("test", "f.png"),
    ]
    assert dataset.split("val")[0].origin == "all.csv row 4"


def test_unknown_split_value_names_the_row(tmp_path: Path) -> None:
    rows = [("filepath", "label", "split"), ("a.png", "a", "train"), ("b", "a", "dev")]
    path = write_csv(tmp_path / "all.csv", rows)

    with pytest.raises(
        DataError,
        match=r"all\.csv: 1 row cannot be used:\n  split column 'split' has values "
        r"other than train, val \(or validation, valid\) and test:\n    'dev' in "
        r"row 3$",
    ):
        load_dataset(path)


def test_unknown_split_values_are_each_named_once_with_their_rows(
    tmp_path: Path,
) -> None:
    splits = ["train", "dev", "train", "val"] * 20
    splits[5] = "tst"
    splits[6] = ""
    rows = [("filepath", "label", "split")]
    rows += [(f"{i}.png", "ab"[i % 2], split) for i, split in enumerate(splits)]
    rows.append(("", "a", "train"))
    path = write_csv(tmp_path / "all.csv", rows)

    with pytest.raises(DataError) as raised:
        load_dataset(path)

    assert str(raised.value) == "\n".join(
        [
            "all.csv: 22 rows cannot be used:",
            "  split column 'split' has values other than train, val (or "
            "validation, valid) and test:",
            "    'dev' in 19 rows: 3, 11, 15, 19, 23, ...",
            "    'tst' in row 7",
            "    '' in row 8",
            "  row 82: empty path",
        ]
    )


def test_misspelled_split_column_is_not_read_as_train_only(tmp_path: Path) -> None:
    rows = [("filepath", "label", "Split"), ("a.png", "a", "train")]
    path = write_csv(tmp_path / "all.csv", rows)

    with pytest.raises(
        DataError,
        match=r"split column 'split'.*did you mean 'Split'\? \(choose another with "
        r"--split-column, or split_column in Python\)$",
    ):
        load_dataset(path)


def _fold_rows() -> list[tuple[str, ...]]:
    folds = ["train", "train", "val", "test"] * 3
    return [("filepath", "label", "fold")] + [
        (f"i{i}.png", "ab"[i % 2], fold) for i, fold in enumerate(folds)
    ]


def test_split_names_in_another_column_are_not_read_as_training_rows(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "all.csv", _fold_rows())
    with pytest.raises(
        DataError,
        match=r"all.csv has no 'split' column, but column 'fold' holds split names "
        r"\('test', 'train', 'val'\); name it with --split-column fold",
    ):
        load_dataset(path)


def test_a_named_split_column_that_is_missing_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "all.csv", _fold_rows())
    with pytest.raises(DataError, match=r"split column 'subset' not in all.csv"):
        load_dataset(path, split_column="subset")


def test_split_column_is_ignored_with_a_warning_for_split_csvs(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows("t", ["a", "b"] * 3))
    write_csv(tmp_path / "val.csv", labelled_rows("v", ["a", "b"]))
    for i in range(6):
        save_image(tmp_path / f"t{i}.png", seed=i)
    for i in range(2):
        save_image(tmp_path / f"v{i}.png", seed=10 + i)

    dataset = load_dataset(tmp_path, split_column="fold")

    assert len(dataset.split("val")) == 2
    assert any(
        "split_column (--split-column) applies to one CSV" in warning
        for warning in dataset.warnings
    )


def test_csv_file_without_split_column_is_a_training_set(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", labelled_rows("t", ["a", "b"] * 5))
    write_csv(tmp_path / "val.csv", labelled_rows("v", ["a", "b"]))

    dataset = load_dataset(path)

    assert len(dataset.split("val")) == 2
    assert dataset.warnings == (
        "train.csv has no 'split' column, so all its rows are training images and "
        "val is drawn from them; 'val.csv' beside it was not read: pass the folder "
        f"{str(tmp_path)!r} instead of train.csv to use them",
    )


@pytest.mark.parametrize(
    ("given", "beside", "unread"),
    [
        ("train_2024.csv", ["val_2024.csv", "test_2024.csv"], "'val_2024.csv', "),
        ("pets-train.csv", ["pets-validation.csv"], "'pets-validation.csv' beside"),
        ("Train.csv", ["test.csv", "val_2024.csv"], "'test.csv' beside it was not"),
        ("labels.csv", ["val.csv", "test.csv"], None),
        ("retrain.csv", ["reval.csv", "val.csv"], None),
    ],
)
def test_split_csvs_beside_a_train_csv_are_named_with_how_to_use_them(
    tmp_path: Path, given: str, beside: list[str], unread: str | None
) -> None:
    path = write_csv(tmp_path / given, labelled_rows("t", ["a", "b"] * 5))
    for name in beside:
        write_csv(tmp_path / name, labelled_rows("v", ["a", "b"]))

    warnings = load_dataset(path).warnings

    if unread is None:  # only a name that marks a train split points elsewhere
        assert warnings == ()
        return
    (warning,) = warnings
    assert warning.startswith(f"{given} has no 'split' column, so all its rows")
    assert unread in warning
    assert warning.endswith(
        "to use them, name the files train.csv, val.csv and test.csv in one folder "
        "and pass the folder, or give one CSV with a 'split' column"
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("prepare.py", "a Python file"),
        ("labels.json", "a JSON file"),
        ("Labels.XLSX", r"a spreadsheet \(save it as CSV\)"),
    ],
)
def test_file_of_another_format_is_refused_before_reading(
    tmp_path: Path, name: str, kind: str
) -> None:
    # Lines a CSV reader would take for a header and rows, to fail on later.
    (tmp_path / name).write_text('{"filepath": "a.png",\n "label": "cat"}\n')

    with pytest.raises(
        DataError,
        match=rf"dataset '.*{name}' is {kind}, not a CSV; give a CSV of image paths "
        r"and labels \(\.csv, \.tsv or \.txt\), or a folder holding train\.csv "
        r"\(with val\.csv, test\.csv\) or class folders$",
    ):
        load_dataset(tmp_path / name)


def test_image_file_given_as_the_data_points_to_its_folder(tmp_path: Path) -> None:
    image = save_image(tmp_path / "train" / "cat" / "0.png")

    with pytest.raises(
        DataError, match=r"'.*0\.png' is an image file, not a CSV; pass the folder"
    ):
        load_dataset(image)


def test_binary_file_named_csv_is_not_read_as_text(tmp_path: Path) -> None:
    image = save_image(tmp_path / "0.png")
    (tmp_path / "data.csv").write_bytes(image.read_bytes())

    with pytest.raises(
        DataError, match=r"^data\.csv is not text \(it holds NUL bytes\), so not a"
    ):
        load_dataset(tmp_path / "data.csv")


def test_text_files_without_the_csv_extension_are_read(tmp_path: Path) -> None:
    rows = labelled_rows("t", ["a", "b"] * 3)
    for name in ("labels.tsv", "labels.txt", "labels"):
        path = write_csv(tmp_path / name, rows, delimiter="\t")

        assert load_dataset(path).classes == ("a", "b")


# A training set only.


def test_train_only_draws_a_stratified_val_with_a_note(tmp_path: Path) -> None:
    labels = ["a"] * 30 + ["b"] * 10
    write_csv(tmp_path / "train.csv", labelled_rows("t", labels))

    dataset = load_dataset(tmp_path)
    again = load_dataset(tmp_path)
    other_seed = load_dataset(tmp_path, seed=1, val_fraction=0.25)

    assert dataset.notes == (
        "validation: 20% of train, stratified, seed 0 (no val split given)",
    )
    assert Counter(by_split(dataset)["val"]) == {"a": 6, "b": 2}
    assert Counter(by_split(dataset)["train"]) == {"a": 24, "b": 8}
    assert dataset.val_drawn
    assert dataset.samples == again.samples
    assert other_seed.notes[0].startswith("validation: 25% of train")
    assert {s.path for s in other_seed.split("val")} != {
        s.path for s in dataset.split("val")
    }
    moved = dataset.split("val")[0]
    assert moved.origin.startswith("train.csv row ")


def test_train_only_with_a_single_image_class_explains(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows("t", ["a"] * 5 + ["b"]))

    with pytest.raises(
        DataError,
        match=r"at least 2 training images per class; 1 class has only 1: 'b'",
    ):
        load_dataset(tmp_path)


def test_val_too_small_to_hold_every_class_says_what_to_do(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows("t", list("abcde") * 2))

    with pytest.raises(
        DataError,
        match=r"cannot draw a stratified val split of 0\.2 from 10 training images "
        r"in 5 classes: .*\. Add images or give a val split \(in Python, a larger "
        r"val_fraction may also do\)$",
    ):
        load_dataset(tmp_path)


def test_val_fraction_must_be_a_fraction(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"val_fraction must be between 0 and 1.*1\.5"):
        load_dataset(tmp_path, val_fraction=1.5)


# Class folders.


def make_class_folders(root: Path, splits: dict[str, dict[str, int]]) -> None:
    seed = 0
    for split, classes in splits.items():
        for label, count in classes.items():
            for i in range(count):
                seed += 1
                save_image(root / split / label / f"{i}.png", seed=seed)


def test_class_folders_ignore_hidden_system_and_non_image_files(
    tmp_path: Path,
) -> None:
    make_class_folders(tmp_path, {"train": {"cat": 2, "dog": 2}, "val": {"cat": 1}})
    save_image(tmp_path / "val" / "dog" / "0.JPEG")
    (tmp_path / "train" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "train" / "cat" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("good cats")
    save_image(tmp_path / "train" / "dog" / ".ipynb_checkpoints" / "0-checkpoint.png")
    save_image(tmp_path / "train" / ".ipynb_checkpoints" / "x" / "0.png")
    (tmp_path / "train" / "desktop.ini").write_text("[.ShellClassInfo]")
    (tmp_path / "README.md").write_text("my data")

    dataset = load_dataset(tmp_path)

    assert dataset.layout == "class-folders"
    assert dataset.classes == ("cat", "dog")
    assert [s.origin for s in dataset.samples] == [
        "train/cat/0.png",
        "train/cat/1.png",
        "train/dog/0.png",
        "train/dog/1.png",
        "val/cat/0.png",
        "val/dog/0.JPEG",
    ]
    assert dict(dataset.ignored) == {
        "README.md": "not a split folder (train, val, test)",
        "train/.DS_Store": "hidden file",
        "train/.ipynb_checkpoints/": "hidden folder",
        "train/cat/notes.txt": "not an image file (extension '.txt')",
        "train/cat/Thumbs.db": "system file",
        "train/desktop.ini": "system file",
        "train/dog/.ipynb_checkpoints/": "hidden folder",
    }


def test_plain_class_folders_are_a_training_set(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {".": {"1": 5, "2": 5, "10": 5}})
    (tmp_path / ".DS_Store").write_bytes(b"x")

    dataset = load_dataset(tmp_path)

    assert dataset.classes == ("1", "2", "10")
    assert Counter(by_split(dataset)["val"]) == {"1": 1, "2": 1, "10": 1}
    assert dataset.notes == (
        "validation: 20% of train, stratified, seed 0 (no val split given)",
    )
    assert dataset.ignored == ((".DS_Store", "hidden file"),)
    assert dataset.split("val")[0].origin.startswith(("1/", "2/", "10/"))


def test_csv_options_given_for_class_folders_are_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_class_folders(tmp_path, {"train": {"a": 2, "b": 2}, "val": {"a": 1}})

    with caplog.at_level(logging.WARNING, logger="lazyvision.data"):
        dataset = load_dataset(tmp_path, label_column="species", image_root="pics")
        plain = load_dataset(tmp_path, path_column="filepath")
        split = load_dataset(tmp_path, split_column="subset")

    warning = (
        "label_column (--label-column) and image_root (--image-root) apply to CSV "
        f"files only; {str(tmp_path)!r} is class folders, so they are ignored"
    )
    assert warning in dataset.warnings
    assert caplog.text.count("apply to CSV files only") == 1
    assert plain.warnings == dataset.warnings[1:]
    assert dataset.samples == plain.samples
    assert split.warnings[0].startswith(
        "split_column (--split-column) applies to CSV files only"
    )


def test_split_folder_aliases_and_nested_folders(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"train": {"a": 1, "b": 1}, "Validation": {"a": 1}})
    save_image(tmp_path / "train" / "a" / "more" / "deep.png")

    dataset = load_dataset(tmp_path)

    assert [s.origin for s in dataset.samples] == [
        "train/a/0.png",
        "train/a/more/deep.png",
        "train/b/0.png",
        "Validation/a/0.png",
    ]
    assert dataset.split("val")[0].split == "val"


def test_folder_without_a_layout_says_what_is_accepted(tmp_path: Path) -> None:
    write_csv(tmp_path / "labels.csv", labelled_rows("t", ["a"]))

    with pytest.raises(
        DataError, match=r"no images found .*expected train\.csv.*found 'labels\.csv'"
    ):
        load_dataset(tmp_path)


def test_flat_folder_of_images_asks_for_class_folders(tmp_path: Path) -> None:
    for i in range(3):
        save_image(tmp_path / f"{i}.png", seed=i)
    save_image(tmp_path / "x.jpg")
    (tmp_path / "notes.txt").write_text("cats and dogs")

    with pytest.raises(DataError) as raised:
        load_dataset(tmp_path)

    assert str(raised.value) == (
        f"{str(tmp_path)!r} holds 4 images but no class folders, so no image has a "
        "label; move each class's images into a folder named for the class "
        f"({tmp_path}/<class>/*.png, e.g. {tmp_path}/cat/*.png), or list paths and "
        f"labels in {tmp_path}/train.csv (columns filepath,label)"
    )

    # The same images in a train folder, beside a val folder of classes.
    save_image(tmp_path / "val" / "cat" / "0.png")
    (tmp_path / "train").mkdir()
    for i in range(3):
        (tmp_path / f"{i}.png").rename(tmp_path / "train" / f"{i}.png")
    with pytest.raises(
        DataError,
        match=r"'.*train' holds 3 images but no class folders, so no image has a "
        r"label; .* \(.*train/<class>/\*\.png, e\.g\. .*train/cat/\*\.png\)$",
    ):
        load_dataset(tmp_path)


def test_missing_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'.*nowhere' does not exist$"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(
        DataError,
        match=r"dataset '.*nowhere.data\.csv' does not exist, nor does the folder "
        r"'.*nowhere'$",
    ):
        load_dataset(tmp_path / "nowhere" / "data.csv")


def test_missing_source_suggests_close_names_beside_it(tmp_path: Path) -> None:
    make_class_folders(tmp_path / "pets", {"train": {"a": 2, "b": 2}})
    write_csv(tmp_path / "pets.csv", labelled_rows("t", ["a", "b"]))
    write_csv(tmp_path / "labels.csv", labelled_rows("t", ["a", "b"]))
    (tmp_path / "pet").symlink_to(tmp_path / "gone")

    with pytest.raises(DataError) as raised:
        load_dataset(tmp_path / "Pets")
    with pytest.raises(DataError, match=r"'.*pet' is a link to '.*gone', which "):
        load_dataset(tmp_path / "pet")

    assert str(raised.value) == (
        f"dataset {str(tmp_path / 'Pets')!r} does not exist; did you mean "
        f"{str(tmp_path / 'pets') + '/'!r} or {str(tmp_path / 'pets.csv')!r}?"
    )


def test_unknown_split_name_is_refused(tmp_path: Path) -> None:
    make_class_folders(tmp_path, {"train": {"a": 2}, "val": {"a": 1}})

    with pytest.raises(DataError, match=r"split 'dev' is not one of train, val, test"):
        load_dataset(tmp_path).split("dev")
