"""Tests for ``lazyvision check``: one folder holding every case a user may have."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lazyvision.cli import main

# (file, label) rows of train.csv; the images are written by make_split_csvs.
TRAIN_ROWS = [
    ("good.jpg", "1"),
    ("cut.jpg", "1"),
    ("x.jpg", "2"),
    ("y.png", "2"),
    ("img/relative.png", "2 "),
    ("ABSOLUTE", "10"),  # a file outside the folder, by its absolute path
    ("img/with space.png", "10"),
    ("img/ñandú.jpg", "Cat"),
    ("img/UPPER.JPG", "cat"),
    ("img/missing.png", "cat"),
    ("modes/grey.png", "1"),
    ("modes/grey-alpha.png", "2"),
    ("modes/rgba.png", "10"),
    ("modes/palette.png", "Cat"),
    ("modes/bilevel.png", "cat"),
    ("modes/cmyk.jpg", "10"),
]
# Every train class but "cat".
VAL_ROWS = [(f"val/{i}.png", label) for i, label in enumerate(["1", "2", "10", "Cat"])]
TEST_ROWS = [
    *((f"test/{i}.png", label) for i, label in enumerate(["1", "2", "10", "Cat"])),
    ("test/4.png", "cat"),
    ("test/copy.png", "2"),
]


@pytest.fixture(autouse=True)
def _restore_cli_logging() -> Iterator[None]:
    """Leaves the package logger as it was; main() sets its handler and level."""
    package = logging.getLogger("lazyvision")
    handlers, level = list(package.handlers), package.level
    yield
    package.handlers[:] = handlers
    package.setLevel(level)


def picture(seed: int, size: int = 64) -> Image.Image:
    """A smooth random RGB picture; different seeds give different pictures."""
    coarse = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["filepath", "label"])
        writer.writerows(rows)


def save_modes(folder: Path) -> None:
    """One file per Pillow mode that must decode: L, LA, RGBA, P, 1 and CMYK."""
    folder.mkdir(parents=True)
    base = picture(30)
    base.convert("L").save(folder / "grey.png")
    grey_alpha = base.convert("LA")
    grey_alpha.putalpha(Image.linear_gradient("L").resize(base.size))
    grey_alpha.save(folder / "grey-alpha.png")
    rgba = picture(31).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "rgba.png")
    palette = picture(32).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(folder / "palette.png", transparency=0)
    picture(33).convert("1").save(folder / "bilevel.png")
    picture(34).convert("CMYK").save(folder / "cmyk.jpg", quality=90)


def make_split_csvs(root: Path) -> Path:
    """The split-CSV folder: good, broken and oddly named files, odd labels."""
    data = root / "data"
    readable = ["good.jpg", "img/relative.png", "img/with space.png"]
    readable += ["img/ñandú.jpg", "img/UPPER.JPG"]
    readable += [name for name, _ in VAL_ROWS + TEST_ROWS if name != "test/copy.png"]
    for seed, name in enumerate(readable):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        file_format = "JPEG" if name.lower().endswith(".jpg") else "PNG"
        picture(seed).save(data / name, format=file_format)
    outside = root / "elsewhere" / "absolute.png"
    outside.parent.mkdir()
    picture(99).save(outside)
    save_modes(data / "modes")

    good = (data / "good.jpg").read_bytes()
    (data / "cut.jpg").write_bytes(good[: int(len(good) * 0.6)])
    (data / "x.jpg").write_text("this is not a picture\n")
    (data / "y.png").write_bytes(b"")
    shutil.copyfile(data / "img" / "relative.png", data / "test" / "copy.png")

    train = [(str(outside) if f == "ABSOLUTE" else f, label) for f, label in TRAIN_ROWS]
    write_csv(data / "train.csv", train)
    write_csv(data / "val.csv", VAL_ROWS)
    write_csv(data / "test.csv", TEST_ROWS)
    return data


def test_check_names_every_case_in_one_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_csvs(tmp_path)

    status = main(["check", str(data)])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == "\n".join(
        [
            f"Dataset: {data} (split CSVs)",
            "Classes: 5",
            "",
            "Images per class:",
            "  class  train  val  test",
            "  1          2    1     1",
            "  2          2    1     2",
            "  10         4    1     1",
            "  Cat        2    1     1",
            "  cat        2    0     1",
            "  total     12    4     6",
            "train: 16 images given, 4 cannot be used, 12 used",
            "",
            "Image sizes: all 64 x 64",
            "Modes: RGB 16, L 1, LA 1, RGBA 1, P 1, 1-bit 1, CMYK 1",
            "Formats: PNG 18, JPEG 4",
            "",
            "Files that cannot be used (4):",
            "  train  train.csv row 3   cut.jpg: truncated or corrupt",
            "  train  train.csv row 4   x.jpg: not an image",
            "  train  train.csv row 5   y.png: empty file (0 bytes)",
            "  train  train.csv row 11  img/missing.png: file not found",
            "",
            "Byte-identical files in different splits (1):",
            "  train.csv row 6 (img/relative.png)  =  test.csv row 7 (test/copy.png)",
            "",
            "Warnings:",
            "  labels 'Cat' (4 images) and 'cat' (4 images) differ only in case; "
            "they are kept as different classes",
            "  1 class in train but not in val: 'cat'",
            "",
            "Before ranking:",
            "  fix or remove the 4 files that cannot be used, or leave them out "
            "(--skip-bad)",
            "  remove one copy of the 1 file in two splits, or go on anyway "
            "(--allow-duplicates)",
            "",
        ]
    )
    # Each warning is told once, in the report, not logged again above it.
    assert (out + err).count("differ only in case") == 1
    assert (out + err).count("1 class in train but not in val: 'cat'") == 1
    assert "Traceback" not in err


def test_usable_images_are_the_rows_given_less_those_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["check", str(make_split_csvs(tmp_path))])

    lines = capsys.readouterr().out.splitlines()
    header = lines.index("  class  train  val  test")
    totals = lines[header + 6].split()
    problems = lines.index("Files that cannot be used (4):")
    reported = [line.split()[0] for line in lines[problems + 1 : problems + 5]]
    given = {"train": TRAIN_ROWS, "val": VAL_ROWS, "test": TEST_ROWS}
    assert totals[0] == "total"
    assert [int(n) for n in totals[1:]] == [
        len(rows) - reported.count(split) for split, rows in given.items()
    ]


def test_class_folders_list_what_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = ["train/a/0.png", "train/a/1.png", "train/b/0.png", "train/b/1.png"]
    for seed, name in enumerate([*files, "val/a/0.png", "val/b/0.png"]):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        picture(seed).save(tmp_path / name)
    (tmp_path / "train" / ".DS_Store").write_bytes(b"Bud1")
    (tmp_path / "train" / "a" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "train" / "a" / "notes.txt").write_text("taken in May\n")
    checkpoints = tmp_path / "train" / "b" / ".ipynb_checkpoints"
    checkpoints.mkdir()
    picture(9).save(checkpoints / "0-checkpoint.png")

    status = main(["check", str(tmp_path)])

    out = capsys.readouterr().out
    assert status == 0
    assert (
        "\n".join(
            [
                "Ignored in the dataset folder (4):",
                "  train/.DS_Store: hidden file",
                "  train/a/notes.txt: not an image file (extension '.txt')",
                "  train/a/Thumbs.db: system file",
                "  train/b/.ipynb_checkpoints/: hidden folder",
                "",
                "Every image can be read; no file is shared between splits.",
            ]
        )
        in out
    )
    assert "  total      4    2" in out


def test_test_class_that_train_lacks_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_csvs(tmp_path)
    write_csv(data / "test.csv", [("test/0.png", "1"), ("test/1.png", "dog")])

    status = main(["check", str(data)])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.endswith(
        "lazyvision: error: test has 1 class that train lacks: 'dog' (train "
        "classes: '1', '2', '10', 'Cat', 'cat'); a model cannot be scored on "
        "classes it was never shown\n"
    )
    assert "Traceback" not in err


def test_check_of_a_one_class_set_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for split, count in (("train", 2), ("val", 1)):
        for index in range(count):
            picture(index + 10 * len(split)).save(tmp_path / f"{split}{index}.png")
        rows = [f"{split}{index}.png,cat" for index in range(count)]
        (tmp_path / f"{split}.csv").write_text("filepath,label\n" + "\n".join(rows))

    assert main(["check", str(tmp_path)]) == 2
    assert "add images of a second class to train (only 'cat')" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    "command", [["check"], ["rank", "--models", "pixels", "--offline"]]
)
def test_identifier_taken_for_the_labels_suggests_the_label_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # A unique id per row in "label", so val and test hold ids train lacks.
    lines = ["filepath,label,species,split"]
    for i in range(30):
        picture(i).save(tmp_path / f"{i}.png")
        split = ["train", "train", "val", "test"][i % 4]
        lines.append(f"{i}.png,IMG_{1000 + i},{('cat', 'dog')[i % 2]},{split}")
    (tmp_path / "all.csv").write_text("\n".join(lines) + "\n")

    status = main([command[0], str(tmp_path / "all.csv"), *command[1:]])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == (
        "lazyvision: error: label column 'label' of all.csv looks like an "
        "identifier, not a label: 30 rows hold 30 different values, and a class "
        "needs images in train and in val. Name the column of labels with "
        "--label-column (label_column in Python); the other columns are 'species' "
        "(2 values)\n"
    )


def test_csv_options_for_class_folders_are_named_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed, name in enumerate(["train/a", "train/b", "val/a", "val/b"]):
        (tmp_path / name).mkdir(parents=True)
        picture(seed).save(tmp_path / name / "0.png")

    status = main(["check", str(tmp_path), "--image-root", str(tmp_path / "pics")])

    out, err = capsys.readouterr()
    assert status == 0
    assert (
        "Warnings:\n  image_root (--image-root) applies to CSV files only; "
        f"{str(tmp_path)!r} is class folders, so it is ignored\n"
    ) in out
    assert "CSV files only" not in err


@pytest.mark.parametrize("command", ["check", "rank"])
def test_split_column_is_an_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    lines = ["filepath,label,subset"]
    for i in range(12):
        picture(i).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{'ab'[i % 2]},{['train', 'train', 'val'][i % 3]}")
    (tmp_path / "all.csv").write_text("\n".join(lines) + "\n")
    options = ["--split-column", "subset"]
    if command == "rank":
        run = tmp_path / "run"
        options += ["--models", "pixels", "--offline", "--output", str(run)]
        options += ["--resamples", "0"]

    status = main([command, str(tmp_path / "all.csv"), *options])

    out, err = capsys.readouterr()
    assert status == 0, err
    if command == "check":
        assert "  total      8    4" in out
    else:
        report = json.loads((run / "dataset.json").read_text())
        assert report["layout"] == "split-column-csv"
        assert {split: n["given"] for split, n in report["splits"].items()} == {
            "train": 8,
            "val": 4,
        }


def write_windows_csvs(folder: Path, cafe_label: str, val_labels: list[str]) -> None:
    """train.csv saved by a Windows spreadsheet (Windows-1252), val.csv in UTF-8."""
    train = [(f"tr{i}.png", ["1", "2"][i % 2]) for i in range(4)]
    train.append(("café.png", cafe_label))
    val = [(f"va{i}.png", label) for i, label in enumerate(val_labels)]
    for seed, (name, _) in enumerate(train + val):
        picture(seed).save(folder / name)
    lines = ["filepath,label", *(f"{name},{label}" for name, label in train)]
    (folder / "train.csv").write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    write_csv(folder / "val.csv", val)


ENCODING_WARNING = (
    "train.csv is not UTF-8 (row 6 is the first that is not); read as "
    "Windows-1252, so accented letters may be wrong: save it as UTF-8 to be sure"
)


def test_check_reports_the_warnings_of_reading_the_csvs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_windows_csvs(tmp_path, "01", ["1", "2", "01"])

    status = main(["check", str(tmp_path)])

    out, err = capsys.readouterr()
    assert status == 0
    assert (
        "Warnings:\n"
        f"  {ENCODING_WARNING}\n"
        "  labels '01' (2 images) and '1' (3 images) are the same number written "
        "differently; they are kept as different classes\n\n"
    ) in out
    assert (out + err).count("is not UTF-8") == 1
    assert (out + err).count("same number written differently") == 1


def test_check_that_cannot_load_the_data_still_shows_its_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "01" in val is no class of train's; the warnings say why.
    write_windows_csvs(tmp_path, "2", ["01", "2"])

    status = main(["check", str(tmp_path)])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err == (
        f"WARNING lazyvision.data: {ENCODING_WARNING}\n"
        "WARNING lazyvision.data: labels '01' (1 image) and '1' (2 images) are the "
        "same number written differently; they are kept as different classes\n"
        "WARNING lazyvision.data: 1 class in train but not in val: '1'\n"
        "lazyvision: error: val has 1 class that train lacks: '01' (train classes: "
        "'1', '2'); a model cannot be scored on classes it was never shown\n"
    )
