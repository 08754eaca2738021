"""Tests for lazyvision.check: decoding every image, problems, duplicates, text."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lazyvision.check import (
    DatasetReport,
    Problem,
    check_dataset,
    inspect_images,
    raise_for_problems,
)
from lazyvision.data import load_dataset
from lazyvision.errors import DataError, ImageError
from lazyvision.images import ImageInfo, difference_hash, hamming
from lazyvision.sample import digit_images, write_digits_sample


def save_image(path: Path, seed: int, size: int = 64, quality: int = 95) -> Path:
    """Writes a smooth random picture, so copies hash alike and others do not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, format="JPEG", quality=quality)
    else:
        image.save(path)
    return path


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["filepath,label", *(f"{file},{label}" for file, label in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_split_csvs(
    root: Path, splits: dict[str, list[tuple[str, str]]], seed: int = 100
) -> None:
    """Writes each split's CSV, creating every listed image that does not exist."""
    for split, rows in splits.items():
        for index, (file, _) in enumerate(rows):
            if not (root / file).exists():
                save_image(
                    root / file,
                    seed=seed + zlib.crc32(f"{split}{index}".encode()) % 10_000,
                )
        write_csv(root / f"{split}.csv", rows)


@pytest.fixture
def bad_files_dataset(tmp_path: Path) -> Path:
    good = save_image(tmp_path / "good.jpg", seed=1)
    save_image(tmp_path / "other.jpg", seed=2)
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * 0.6)])
    (tmp_path / "x.jpg").write_text("this is not a picture\n")
    (tmp_path / "y.png").write_bytes(b"")
    write_csv(
        tmp_path / "train.csv",
        [
            ("good.jpg", "a"),
            ("cut.jpg", "a"),
            ("x.jpg", "b"),
            ("y.png", "b"),
            ("other.jpg", "b"),
        ],
    )
    make_split_csvs(tmp_path, {"val": [("v/0.png", "a"), ("v/1.png", "b")]})
    return tmp_path


def test_bad_files_are_each_reported_with_row_and_reason(
    bad_files_dataset: Path,
) -> None:
    report = check_dataset(load_dataset(bad_files_dataset))

    root = bad_files_dataset.resolve()
    assert report.problems == (
        Problem(
            "train", "train.csv row 3", str(root / "cut.jpg"), "truncated or corrupt"
        ),
        Problem("train", "train.csv row 4", str(root / "x.jpg"), "not an image"),
        Problem(
            "train", "train.csv row 5", str(root / "y.png"), "empty file (0 bytes)"
        ),
    )
    assert set(report.infos) == {
        root / name for name in ("good.jpg", "other.jpg", "v/0.png", "v/1.png")
    }
    assert report.num_given == {"train": 5, "val": 2}
    assert report.counts == {"train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}}
    assert len(report.usable()) == 7 - 3

    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert str(raised.value) == (
        "3 images cannot be used:\n"
        "  train  train.csv row 3  cut.jpg: truncated or corrupt\n"
        "  train  train.csv row 4  x.jpg: not an image\n"
        "  train  train.csv row 5  y.png: empty file (0 bytes)\n"
        "Fix or remove these rows, or skip them (--skip-bad; skip_bad=True in "
        "Python)."
    )


def test_csv_paths_relative_to_another_folder_point_to_image_root(
    tmp_path: Path,
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    csv_folder = tmp_path / "lists"  # the CSVs' own folder; paths start in images/
    csv_folder.mkdir()
    for split, offset in (("train", 0), ("val", 4)):
        rows = []
        for index, label in enumerate("abab", start=offset):
            shade = (25 * index, 9, 9)
            Image.new("RGB", (8, 8), shade).save(images / f"{index}.png")
            rows.append(f"{index}.png,{label}")
        table = "filepath,label\n" + "\n".join(rows) + "\n"
        (csv_folder / f"{split}.csv").write_text(table)

    report = check_dataset(load_dataset(csv_folder))
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    message = str(raised.value)
    assert f"8 files not found (looked in {csv_folder.resolve()})" in message
    assert "--image-root" in message
    assert "--image-root" in report.render()

    fixed = check_dataset(load_dataset(csv_folder, image_root=images))
    assert fixed.problems == ()


def test_one_image_under_two_labels_in_a_split_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for index in range(6):
        Image.new("RGB", (8, 8), (30 * index, 9, 9)).save(tmp_path / f"{index}.png")
    # 0.png is listed twice, and 5.png is a byte copy of 1.png: both disagree.
    (tmp_path / "5.png").write_bytes((tmp_path / "1.png").read_bytes())
    rows = ["0.png,cat", "1.png,cat", "2.png,dog", "0.png,dog", "5.png,dog"]
    (tmp_path / "train.csv").write_text("filepath,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "val.csv").write_text("filepath,label\n3.png,cat\n4.png,dog\n")

    report = check_dataset(load_dataset(tmp_path))

    conflicts = [w for w in report.warnings if "two labels" in w]
    assert conflicts == [
        "the same image has two labels in train: 'cat' (train.csv row 2 (0.png)), "
        "'dog' (train.csv row 5 (0.png))",
        "the same image has two labels in train: 'cat' (train.csv row 3 (1.png)), "
        "'dog' (train.csv row 6 (5.png))",
    ]
    assert report.duplicates == ()  # within one split: no leak between splits
    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert caplog.text.count("the same image has two labels") == 2


def test_unreadable_files_that_exist_give_no_image_root_hint(
    bad_files_dataset: Path,
) -> None:
    report = check_dataset(load_dataset(bad_files_dataset))
    assert "image-root" not in report.render()


def test_images_over_the_pixel_limit_name_the_option_to_raise_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_split_csvs(
        tmp_path,
        {
            "train": [("a.png", "a"), ("b.png", "b"), ("d.png", "b")],
            "val": [("c.png", "a")],
        },
    )
    Image.new("RGB", (80, 80)).save(tmp_path / "b.png")
    hint = (
        "1 image is over the pixel limit, a guard against decompression bombs; for "
        "files you trust, raise it with --max-pixels (max_pixels in Python): it has "
        "80 x 80 = 6400 pixels, so --max-pixels 6400 lets it in"
    )

    report = check_dataset(load_dataset(tmp_path), max_pixels=5000)

    assert [p.reason for p in report.problems] == [
        "over the pixel limit (80 x 80 = 6400 > 5000)"
    ]
    assert f"b.png: over the pixel limit (80 x 80 = 6400 > 5000)\n  {hint}\n" in (
        report.render()
    )
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert f"\n{hint}\nFix or remove this row" in str(raised.value)
    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(report, skip_bad=True, allow_duplicates=False)
    assert hint in caplog.text


def test_skip_bad_is_not_advised_where_it_leaves_a_class_no_training_image(
    tmp_path: Path,
) -> None:
    rows = {
        "train": [("a.png", "a"), ("b.png", "b"), ("d.png", "b")],
        "val": [("c.png", "a")],
    }
    make_split_csvs(tmp_path, rows)
    Image.new("RGB", (3000, 400)).save(tmp_path / "b.png")
    # 1.2M and 0.9M pixels over a limit of 100; the advice rounds up to 2M.
    Image.new("RGB", (3000, 300)).save(tmp_path / "d.png")
    hint = "the largest has 3000 x 400 = 1200000 pixels, so --max-pixels 2M lets"

    report = check_dataset(load_dataset(tmp_path), max_pixels=100)

    assert len(report.problems) == 4
    assert f"{hint} them all in\n" in report.render()
    assert report.render().endswith(
        "Before ranking:\n  raise the pixel limit (--max-pixels 2M) to let in the "
        "4 images over it: leaving all 4 out (--skip-bad) would leave no training "
        "image of classes 'a', 'b' and no val image"
    )
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert str(raised.value).endswith(
        "Raise the pixel limit (--max-pixels 2M) to let in the 4 images over it: "
        "skipping all 4 (--skip-bad; skip_bad=True in Python) would leave no "
        "training image of classes 'a', 'b' and no val image."
    )
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=True, allow_duplicates=False)
    assert str(raised.value) == (
        "2 classes have no usable training image: 'a', 'b'\n"
        "no usable val image of the 1 given, and the probe is tuned on val\n"
        "Raise the pixel limit (--max-pixels 2M) to let in the 4 images over it."
    )

    # Class a gets a second training image and loses a.png: skipping all three
    # files would leave b none, skipping a.png alone leaves a one.
    rows["train"].append(("e.png", "a"))
    make_split_csvs(tmp_path, rows)
    (tmp_path / "a.png").write_bytes(b"")
    report = check_dataset(load_dataset(tmp_path), max_pixels=5000)
    assert report.render().endswith(
        "raise the pixel limit (--max-pixels 2M) to let in the 2 images over it, "
        "and fix, remove or skip (--skip-bad) the other file: leaving all 3 out "
        "(--skip-bad) would leave no training image of class 'b'"
    )

    # With b's images broken, a higher limit lets in only a's: not enough.
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    for name in ("b.png", "d.png"):
        (tmp_path / name).write_bytes(b"")
    report = check_dataset(load_dataset(tmp_path), max_pixels=5000)
    assert report.render().endswith(
        "fix the 3 files that cannot be used: leaving all 3 out (--skip-bad) would "
        "leave no training image of class 'b'"
    )

    # Where skipping leaves every class an image, it is advised as before.
    save_image(tmp_path / "d.png", seed=5)
    report = check_dataset(load_dataset(tmp_path), max_pixels=5000)
    assert report.render().endswith(
        "fix or remove the 2 files that cannot be used, or leave them out (--skip-bad)"
    )
    raise_for_problems(report, skip_bad=True, allow_duplicates=False)


def test_skip_bad_leaves_the_files_out_with_a_warning(
    bad_files_dataset: Path, caplog: pytest.LogCaptureFixture
) -> None:
    report = check_dataset(load_dataset(bad_files_dataset))

    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(report, skip_bad=True, allow_duplicates=False)

    assert "leaving out 3 images that cannot be used" in caplog.text
    assert "train.csv row 4  x.jpg: not an image" in caplog.text


def test_skip_bad_still_stops_when_a_class_loses_all_training_images(
    tmp_path: Path,
) -> None:
    make_split_csvs(
        tmp_path,
        {"train": [("a.png", "a"), ("b.png", "b")], "val": [("c.png", "a")]},
    )
    (tmp_path / "b.png").write_bytes(b"")
    report = check_dataset(load_dataset(tmp_path))

    with pytest.raises(DataError, match=r"1 class has no usable training image: 'b'"):
        raise_for_problems(report, skip_bad=True, allow_duplicates=False)
    assert "no usable train image left for class 'b'" in report.warnings


def test_skip_bad_is_not_advised_where_it_leaves_no_val_image(tmp_path: Path) -> None:
    make_split_csvs(
        tmp_path,
        {
            "train": [("a.png", "a"), ("b.png", "b")],
            "val": [("c.png", "a"), ("d.png", "b")],
        },
    )
    (tmp_path / "c.png").write_bytes(b"")
    Image.new("RGB", (100, 100)).save(tmp_path / "d.png")

    report = check_dataset(load_dataset(tmp_path), max_pixels=5000)

    assert report.render().endswith(
        "raise the pixel limit (--max-pixels 10000) to let in the 1 image over it, "
        "and fix, remove or skip (--skip-bad) the other file: leaving all 2 out "
        "(--skip-bad) would leave no val image"
    )
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=True, allow_duplicates=False)
    assert str(raised.value) == (
        "no usable val image of the 2 given, and the probe is tuned on val\n"
        "Raise the pixel limit (--max-pixels 10000) to let in the 1 image over it, "
        "and fix, remove or skip (--skip-bad; skip_bad=True in Python) the other "
        "file."
    )


def test_every_kind_of_path_loads_or_is_reported_by_row(tmp_path: Path) -> None:
    outside = save_image(tmp_path / "elsewhere" / "absolute.png", seed=1)
    folder = tmp_path / "data"
    save_image(folder / "img" / "relative.png", seed=2)
    save_image(folder / "img" / "with space.png", seed=3)
    save_image(folder / "img" / "ñandú.jpg", seed=4)
    save_image(folder / "img" / "UPPER.JPG", seed=5)
    rows = [
        ("img/relative.png", "a"),
        (str(outside), "a"),
        ("img/with space.png", "b"),
        ("img/ñandú.jpg", "b"),
        ("img/UPPER.JPG", "a"),
        ("img/missing.png", "b"),
    ]
    write_csv(folder / "train.csv", rows)
    make_split_csvs(folder, {"val": [("v/0.png", "a"), ("v/1.png", "b")]})

    report = check_dataset(load_dataset(folder))

    assert [(p.origin, p.reason) for p in report.problems] == [
        ("train.csv row 7", "file not found")
    ]
    assert len(report.infos) == 5 + 2
    assert report.formats == {"PNG": 5, "JPEG": 2}
    assert report.counts["train"] == {"a": 3, "b": 2}
    rendered = report.render()
    assert "train  train.csv row 7  img/missing.png: file not found" in rendered
    assert "train: 6 images given, 1 cannot be used, 5 used" in rendered


def test_byte_copy_across_splits_is_an_error_naming_both(tmp_path: Path) -> None:
    make_split_csvs(
        tmp_path,
        {
            "train": [("tr/0.png", "a"), ("tr/1.png", "b"), ("tr/2.png", "a")],
            "val": [("va/0.png", "a"), ("va/1.png", "b")],
            "test": [("te/0.png", "a"), ("te/1.png", "b")],
        },
    )
    (tmp_path / "te" / "1.png").write_bytes((tmp_path / "tr" / "1.png").read_bytes())
    # A byte copy within one split leaks nothing: it is no duplicate.
    (tmp_path / "tr" / "2.png").write_bytes((tmp_path / "tr" / "0.png").read_bytes())

    report = check_dataset(load_dataset(tmp_path))

    assert [(a.origin, b.origin) for a, b in report.duplicates] == [
        ("train.csv row 3", "test.csv row 3")
    ]
    assert report.near_duplicates == ()
    assert [(a.origin, b.origin) for a, b in report.copies] == [
        ("train.csv row 2", "train.csv row 4")
    ]
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert str(raised.value) == (
        "1 byte-identical file in two splits, which would score a model on images "
        "it was trained on:\n"
        "  train.csv row 3 (tr/1.png)  =  test.csv row 3 (te/1.png)\n"
        "Remove one copy of each, or go on anyway (--allow-duplicates; "
        "allow_duplicates=True in Python)."
    )


def test_copies_within_a_split_are_kept_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for split, label, seed in [("train", "3", 1), ("train", "5", 2), ("val", "3", 3)]:
        save_image(tmp_path / split / label / "x.png", seed=seed)
    save_image(tmp_path / "val" / "5" / "y.png", seed=4)
    nested = tmp_path / "train" / "3" / "nested" / "x.png"
    nested.parent.mkdir()
    nested.write_bytes((tmp_path / "train" / "3" / "x.png").read_bytes())
    # The same bytes under another label: one image with two labels, warned of.
    (tmp_path / "train" / "5" / "z.png").write_bytes(nested.read_bytes())

    report = check_dataset(load_dataset(tmp_path))

    assert len(report.usable()) == 6
    assert [(a.origin, b.origin) for a, b in report.copies] == [
        ("train/3/nested/x.png", "train/3/x.png")
    ]
    assert report.duplicates == ()
    assert [w for w in report.warnings if "two labels" in w] == [
        "the same image has two labels in train: '3' (train/3/nested/x.png), '5' "
        "(train/5/z.png)"
    ]
    assert report.render().endswith(
        "\n".join(
            [
                "Byte-identical files within a split (1):",
                "  train/3/nested/x.png  =  train/3/x.png",
                "",
                "Warnings:",
                "  the same image has two labels in train: '3' "
                "(train/3/nested/x.png), '5' (train/5/z.png)",
                "",
                "Every image can be read; no file is byte-identical across splits.",
                "1 file is a byte-identical copy of another in its split: kept, each "
                "as an image of its own (remove the extra copies to count each "
                "picture once).",
            ]
        )
    )
    assert report.to_dict()["copies_within_splits"][0]["second"]["origin"] == (
        "train/3/x.png"
    )
    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    [copies] = [m for m in caplog.messages if "byte-identical" in m]
    assert copies == (
        "1 file is a byte-identical copy of another in its split: kept, each as an "
        "image of its own, so a copied picture weighs more in training or is "
        "scored more than once (remove the extra copies to count each picture "
        "once):\n"
        "  train/3/nested/x.png  =  train/3/x.png"
    )


def test_one_file_in_two_splits_is_named_as_such_with_both_labels(
    tmp_path: Path,
) -> None:
    make_split_csvs(
        tmp_path,
        {
            "train": [("img/0.png", "a"), ("img/1.png", "b"), ("img/2.png", "a")],
            "val": [("img/3.png", "a"), ("img/2.png", "b")],
            "test": [("img/4.png", "a"), ("img/5.png", "b")],
        },
    )
    # Beside it, another file with the same bytes and label.
    (tmp_path / "img" / "5.png").write_bytes((tmp_path / "img/1.png").read_bytes())

    report = check_dataset(load_dataset(tmp_path))

    lines = [
        "  train.csv row 4              =  val.csv row 3: the same file img/2.png in "
        "train and val, labelled 'a' in train and 'b' in val",
        "  train.csv row 3 (img/1.png)  =  test.csv row 3 (img/5.png)",
    ]
    assert "\n".join(lines) in report.render()
    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert str(raised.value) == (
        "2 byte-identical files in two splits, which would score a model on images "
        "it was trained on:\n"
        + "\n".join(lines)
        + "\nRemove one copy of each (of a file listed in two splits, its row in one "
        "of them), keeping the one whose label is right where the labels differ, "
        "or go on anyway (--allow-duplicates; allow_duplicates=True in Python)."
    )


def test_allowed_duplicates_are_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_split_csvs(
        tmp_path,
        {"train": [("tr/0.png", "a"), ("tr/1.png", "b")], "val": [("tr/1.png", "b")]},
    )
    report = check_dataset(load_dataset(tmp_path))

    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(report, skip_bad=False, allow_duplicates=True)

    assert len(report.duplicates) == 1
    assert "going on with 1 file listed in two splits" in caplog.text
    assert "train.csv row 3  =  val.csv row 2: the same file tr/1.png" in caplog.text


def test_reencoded_resized_copy_is_a_near_duplicate_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_split_csvs(
        tmp_path,
        {
            "train": [("tr/0.png", "a"), ("tr/1.png", "b")],
            "val": [("va/0.png", "a"), ("va/1.png", "b")],
        },
    )
    with Image.open(tmp_path / "tr" / "1.png") as original:
        smaller = original.resize((48, 48), Image.Resampling.LANCZOS)
    smaller.save(tmp_path / "te.jpg", format="JPEG", quality=70)
    write_csv(tmp_path / "test.csv", [("te.jpg", "b")])

    report = check_dataset(load_dataset(tmp_path))

    assert report.duplicates == ()
    [(first, second, distance)] = report.near_duplicates
    assert (first.origin, second.origin) == ("train.csv row 3", "test.csv row 2")
    assert 0 <= distance <= 4
    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert "1 near-duplicate pair in different splits" in caplog.text
    assert "train.csv row 3 (tr/1.png)  =  test.csv row 2 (te.jpg)" in caplog.text

    strict = check_dataset(load_dataset(tmp_path), near_duplicate_distance=0)
    assert len(strict.near_duplicates) == (1 if distance == 0 else 0)


def write_close_digits(root: Path) -> list[tuple[str, str]]:
    """Digit scans whose hashes collide, in train and test, and two true copies.

    Small, simple scans: different ones often lie within a few hash bits. Three
    such pairs go to train and test; only the two true copies, in val and test,
    may be reported. Returns those two pairs of file names.
    """
    scans = [image for image, _ in digit_images(num_per_class=30, classes=(0, 1))]
    hashes = [difference_hash(np.asarray(image)) for image in scans]
    close: list[tuple[int, int]] = []
    for i, j in itertools.combinations(range(len(scans)), 2):
        taken = {k for pair in close for k in pair}
        if hamming(hashes[i], hashes[j]) <= 4 and not {i, j} & taken:
            close.append((i, j))
    assert len(close) >= 3
    for index, image in enumerate(scans):
        image.save(root / f"{index}.png")
    (first, _), (second, _) = close[:2]
    scans[first].save(root / "reencoded.jpg", quality=75)
    scans[second].resize((40, 40), Image.Resampling.BILINEAR).save(root / "small.png")
    write_csv(root / "train.csv", [(f"{i}.png", "0") for i, _ in close[:3]])
    write_csv(root / "val.csv", [("reencoded.jpg", "0")])
    test_rows = [(f"{j}.png", "0") for _, j in close[:3]] + [("small.png", "0")]
    write_csv(root / "test.csv", test_rows)
    return [(f"{first}.png", "reencoded.jpg"), (f"{second}.png", "small.png")]


def test_copies_of_digits_are_near_duplicates_and_other_digits_are_not(
    tmp_path: Path,
) -> None:
    copies = write_close_digits(tmp_path)

    report = check_dataset(load_dataset(tmp_path))

    assert [(a.path.name, b.path.name) for a, b, _ in report.near_duplicates] == copies


def test_near_duplicates_are_confirmed_on_the_thumbnails_of_the_decode_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copies = write_close_digits(tmp_path)
    dataset = load_dataset(tmp_path)
    infos = inspect_images(dataset)
    bare = {
        path: dataclasses.replace(info, thumbnail=None)
        for path, info in infos.items()
        if isinstance(info, ImageInfo)
    }
    with caplog.at_level(logging.DEBUG, logger="lazyvision._duplicates"):
        decoded_again = check_dataset(dataset, infos=bare)
    assert f"decoded {len(infos)} files again" in caplog.text
    caplog.clear()

    # Without the files, only the stored thumbnails can tell copies from the
    # different scans whose hashes collide; none is kept on its hash alone.
    for path in infos:
        path.unlink()
    with caplog.at_level(logging.DEBUG, logger="lazyvision._duplicates"):
        stored = check_dataset(dataset, infos=infos)

    assert stored.near_duplicates == decoded_again.near_duplicates
    assert [(a.path.name, b.path.name) for a, b, _ in stored.near_duplicates] == copies
    assert stored.problems == ()
    assert "decoded" not in caplog.text and "rest on the hash" not in caplog.text


def test_digits_sample_has_no_near_duplicates(tmp_path: Path) -> None:
    report = check_dataset(load_dataset(write_digits_sample(tmp_path)))

    assert report.near_duplicates == ()
    # The hash alone pairs different scans; the pixels tell them apart.
    by_split = {
        split: [report.infos[s.path].phash for s in report.dataset.split(split)]
        for split in ("train", "val", "test")
    }
    close = [
        (a, b)
        for a in by_split["train"] + by_split["val"]
        for b in by_split["test"]
        if hamming(a, b) <= report.near_duplicate_distance
    ]
    assert len(close) > 10


def test_near_duplicate_of_a_vanished_file_rests_on_the_hash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_split_csvs(tmp_path, {"train": [("a.png", "a"), ("b.png", "b")]})
    with Image.open(tmp_path / "a.png") as original:
        original.save(tmp_path / "copy.jpg", quality=90)
    write_csv(tmp_path / "val.csv", [("copy.jpg", "a")])
    dataset = load_dataset(tmp_path)
    # Facts without thumbnails, as from an older cache: the files are read again.
    infos = {
        path: dataclasses.replace(info, thumbnail=None)
        for path, info in inspect_images(dataset).items()
        if isinstance(info, ImageInfo)
    }
    (tmp_path / "copy.jpg").unlink()

    with caplog.at_level(logging.DEBUG, logger="lazyvision._duplicates"):
        report = check_dataset(dataset, infos=infos)

    assert "copy.jpg: file not found; its near-duplicates rest on the hash" in (
        caplog.text
    )

    assert [(a.origin, b.origin) for a, b, _ in report.near_duplicates] == [
        ("train.csv row 2", "val.csv row 2")
    ]


@pytest.fixture
def many_findings(tmp_path: Path) -> DatasetReport:
    """12 unreadable rows and 12 near-duplicate pairs."""
    rows = [(f"tr/{i}.png", "ab"[i % 2]) for i in range(12)]
    make_split_csvs(tmp_path, {"train": rows})
    for i in range(12):
        with Image.open(tmp_path / "tr" / f"{i}.png") as original:
            original.save(tmp_path / f"va{i}.jpg", quality=90)
        (tmp_path / f"bad{i}.png").write_text("not a picture")
    write_csv(tmp_path / "train.csv", rows + [(f"bad{i}.png", "a") for i in range(12)])
    write_csv(tmp_path / "val.csv", [(f"va{i}.jpg", "ab"[i % 2]) for i in range(12)])
    return check_dataset(load_dataset(tmp_path))


def test_long_lists_are_cut_in_log_lines_and_kept_whole_in_to_dict(
    many_findings: DatasetReport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(many_findings, skip_bad=True, allow_duplicates=False)

    [problems, near] = [record.getMessage() for record in caplog.records]
    assert problems.startswith("leaving out 12 images that cannot be used:\n")
    assert problems.count("not an image") == 10
    assert problems.endswith("\n  ... and 2 more (see dataset.json)")
    assert near.startswith("12 near-duplicate pairs in different splits")
    assert near.count("(hash distance") == 10
    assert near.endswith("\n  ... and 2 more (see dataset.json)")
    data = many_findings.to_dict()
    assert len(data["problems"]) == len(data["near_duplicates"]) == 12


def test_cut_lists_name_the_dataset_json_they_are_whole_in(
    many_findings: DatasetReport, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    saved = tmp_path / "run" / "dataset.json"

    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(
            many_findings, skip_bad=True, allow_duplicates=False, dataset_json=saved
        )
    with pytest.raises(DataError) as raised:
        raise_for_problems(
            many_findings, skip_bad=False, allow_duplicates=False, dataset_json=saved
        )

    [problems, near] = caplog.messages
    assert problems.endswith(f"\n  ... and 2 more (see {saved})")
    assert near.endswith(f"\n  ... and 2 more (see {saved})")
    assert f"\n  ... and 2 more (see {saved})\nFix or remove" in str(raised.value)


def test_every_label_conflict_is_kept_and_the_log_cuts_them_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = []
    for i in range(12):
        save_image(tmp_path / f"{i}.png", seed=i)
        rows += [(f"{i}.png", "a"), (f"{i}.png", "b")]
    write_csv(tmp_path / "train.csv", rows)
    make_split_csvs(tmp_path, {"val": [("v/0.png", "a"), ("v/1.png", "b")]})
    report = check_dataset(load_dataset(tmp_path))
    saved = tmp_path / "run" / "dataset.json"

    with caplog.at_level(logging.WARNING, logger="lazyvision.check"):
        raise_for_problems(
            report, skip_bad=False, allow_duplicates=False, dataset_json=saved
        )

    conflicts = [w for w in report.to_dict()["warnings"] if "two labels" in w]
    assert len(conflicts) == 12
    assert report.render().count("two labels") == 12
    assert "dataset.json" not in report.render()
    assert caplog.messages[:10] == conflicts[:10]
    assert caplog.messages[10:] == [
        f"and 2 more warnings about the images (see {saved})"
    ]


def test_render_lists_every_problem_but_only_ten_near_duplicates(
    many_findings: DatasetReport,
) -> None:
    text = many_findings.render()

    assert text.count("not an image") == 12
    assert text.count("(hash distance") == 10
    assert "Near-duplicates in different splits (12):\n" in text
    assert "  ... and 2 more (a run folder's dataset.json lists them all)" in text
    assert text.endswith(
        "  the 12 near-duplicate pairs do not stop a run but may make scores optimistic"
    )


def test_near_duplicate_distance_is_checked(tmp_path: Path) -> None:
    make_split_csvs(tmp_path, {"train": [("a.png", "a")], "val": [("b.png", "a")]})

    with pytest.raises(DataError, match=r"near_duplicate_distance .* got 65"):
        check_dataset(load_dataset(tmp_path), near_duplicate_distance=65)


def class_folder_report(root: Path) -> DatasetReport:
    for split, count in (("train", 3), ("val", 1)):
        for label in ("cat", "dog"):
            for i in range(count):
                seed = zlib.crc32(f"{split}{label}{i}".encode())
                save_image(root / split / label / f"{i}.png", seed=seed)
    (root / "train" / ".DS_Store").write_bytes(b"Bud1")
    (root / "train" / "cat" / "notes.txt").write_text("cats")
    Image.new("L", (40, 30), 128).save(root / "val" / "dog" / "gray.png")
    return check_dataset(load_dataset(root))


def test_render_reads_as_a_report(tmp_path: Path) -> None:
    text = class_folder_report(tmp_path).render()

    assert text == "\n".join(
        [
            f"Dataset: {tmp_path} (class folders)",
            "Classes: 2",
            "",
            "Images per class:",
            "  class  train  val",
            "  cat        3    1",
            "  dog        3    2",
            "  total      6    3",
            "",
            "Image sizes: width 40-64 (median 64), height 30-64 (median 64)",
            "Modes: RGB 8, L 1",
            "Formats: PNG 9",
            "",
            "Ignored in the dataset folder (2):",
            "  train/.DS_Store: hidden file",
            "  train/cat/notes.txt: not an image file (extension '.txt')",
            "",
            "Every image can be read; no file is shared between splits.",
        ]
    )


def test_render_lists_problems_notes_and_warnings(tmp_path: Path) -> None:
    rows = [(f"{i}.png", label) for i, label in enumerate("aaAAbbbbbb")]
    make_split_csvs(tmp_path, {"train": rows})
    (tmp_path / "5.png").write_text("not a picture")

    report = check_dataset(load_dataset(tmp_path, val_fraction=0.25))

    assert report.render() == "\n".join(
        [
            f"Dataset: {tmp_path} (split CSVs)",
            "Classes: 3",
            "",
            "Images per class:",
            "  class  train  val",
            "  A          1    1",
            "  a          2    0",
            "  b          3    2",
            "  total      6    3",
            "train: 7 images given, 1 cannot be used, 6 used",
            "",
            "Image sizes: all 64 x 64",
            "Modes: RGB 9",
            "Formats: PNG 9",
            "",
            "Files that cannot be used (1):",
            "  train  train.csv row 7  5.png: not an image",
            "",
            "Notes:",
            "  validation: 25% of train, stratified, seed 0 (no val split given)",
            "",
            "Warnings:",
            "  labels 'A' (2 images) and 'a' (2 images) differ only in case; they "
            "are kept as different classes",
            "  1 class in train but not in val: 'a'",
            "",
            "Before ranking:",
            "  fix or remove the 1 file that cannot be used, or leave it out "
            "(--skip-bad)",
        ]
    )


def test_one_class_in_train_is_named_before_ranking(tmp_path: Path) -> None:
    make_split_csvs(
        tmp_path,
        {"train": [("a0.png", "cat"), ("a1.png", "cat")], "val": [("b.png", "cat")]},
    )

    text = check_dataset(load_dataset(tmp_path)).render()

    assert "Every image can be read" not in text
    assert text.endswith(
        "Before ranking:\n  add images of a second class to train (only 'cat'): "
        "a ranking needs at least two classes to tell apart"
    )


def test_problem_in_a_class_folder_is_named_once(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for i, label in enumerate("ab"):
            save_image(tmp_path / split / label / "0.png", seed=i + 10 * len(split))
    (tmp_path / "train" / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    report = check_dataset(load_dataset(tmp_path))

    assert "Files that cannot be used (1):\n  train  train/a/1.png: not an image" in (
        report.render()
    )


def test_problem_in_class_folders_asks_to_fix_files_not_rows(
    tmp_path: Path,
) -> None:
    for split in ("train", "val"):
        for i, label in enumerate("ab"):
            save_image(tmp_path / split / label / "0.png", seed=i + 10 * len(split))
    (tmp_path / "train" / "a" / "1.png").write_bytes(b"")

    report = check_dataset(load_dataset(tmp_path))

    with pytest.raises(DataError) as raised:
        raise_for_problems(report, skip_bad=False, allow_duplicates=False)
    assert str(raised.value) == (
        "1 image cannot be used:\n"
        "  train  train/a/1.png: empty file (0 bytes)\n"
        "Fix or remove this file, or skip it (--skip-bad; skip_bad=True in "
        "Python)."
    )


def test_to_dict_is_json(tmp_path: Path) -> None:
    report = class_folder_report(tmp_path)

    data = json.loads(json.dumps(report.to_dict()))

    assert data["layout"] == "class-folders"
    assert data["classes"] == ["cat", "dog"]
    assert data["splits"]["val"] == {
        "given": 3,
        "usable": 3,
        "per_class": {"cat": 1, "dog": 2},
    }
    assert data["sizes"]["width"] == {"min": 40, "median": 64, "max": 64}
    assert data["modes"] == {"RGB": 8, "L": 1}
    assert data["problems"] == []
    assert data["ignored"][0] == {"path": "train/.DS_Store", "reason": "hidden file"}


def test_inspect_images_decodes_each_path_once_in_order(tmp_path: Path) -> None:
    make_split_csvs(
        tmp_path,
        {
            # a.png twice, under two labels, so both rows are kept.
            "train": [("a.png", "a"), ("b.png", "b"), ("a.png", "b")],
            "val": [("c.png", "a"), ("gone.png", "b")],
        },
    )
    (tmp_path / "gone.png").unlink()
    dataset = load_dataset(tmp_path)
    seen: list[tuple[int, tuple[int, ...]]] = []

    results = inspect_images(
        dataset, on_decoded=lambda i, rgb: seen.append((i, rgb.shape))
    )

    root = tmp_path.resolve()
    assert list(results) == [root / n for n in ("a.png", "b.png", "c.png", "gone.png")]
    assert all(isinstance(results[root / n], ImageInfo) for n in ("a.png", "b.png"))
    missing = results[root / "gone.png"]
    assert isinstance(missing, ImageError)
    assert missing.reason == "file not found"
    assert seen == [(0, (64, 64, 3)), (1, (64, 64, 3)), (2, (64, 64, 3))]

    report = check_dataset(dataset, infos=results)
    assert [p.origin for p in report.problems] == ["val.csv row 3"]
    assert report.num_given == {"train": 3, "val": 2}
    assert report.counts == {"train": {"a": 1, "b": 2}, "val": {"a": 1, "b": 0}}


def test_process_pool_gives_the_same_results(tmp_path: Path) -> None:
    rows = [(f"tr/{i}.png", "ab"[i % 2]) for i in range(6)]
    make_split_csvs(tmp_path, {"train": rows, "val": [("va/0.png", "a")]})
    (tmp_path / "tr" / "3.png").write_text("not a png")
    dataset = load_dataset(tmp_path)
    shapes: dict[int, tuple[int, ...]] = {}

    def keep(index: int, rgb: np.ndarray) -> None:
        shapes[index] = rgb.shape

    in_process = inspect_images(dataset)
    pooled = inspect_images(dataset, workers=2, on_decoded=keep)

    assert list(pooled) == list(in_process)
    for path, outcome in in_process.items():
        other = pooled[path]
        if isinstance(outcome, ImageError):
            assert isinstance(other, ImageError)
            assert other.reason == outcome.reason
        else:
            assert other == outcome
    assert sorted(shapes) == [0, 1, 2, 4, 5, 6]


def test_negative_workers_is_refused(tmp_path: Path) -> None:
    make_split_csvs(tmp_path, {"train": [("a.png", "a")], "val": [("b.png", "a")]})

    with pytest.raises(DataError, match=r"workers must be 0 or more, got -1"):
        inspect_images(load_dataset(tmp_path), workers=-1)


def test_counts_read_as_english() -> None:
    from lazyvision.check import _plural

    assert _plural(1, "class") == "1 class"
    assert _plural(2, "class") == "2 classes"
    assert _plural(3, "image") == "3 images"
