"""Tests for lazyvision.cache: the image facts kept in images.sqlite."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from lazyvision.cache import ImageFacts, write_atomic
from lazyvision.images import THUMBNAIL_SIDE, ImageInfo, decode_image
from lazyvision.sample import write_digits_sample


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> list[ImageInfo]:
    """The infos of twelve real digit images, as the decode pass makes them."""
    root = tmp_path_factory.mktemp("digits")
    write_digits_sample(root, num_per_class=2)
    paths = sorted((root / "images").rglob("*.png"))[:12]
    assert len(paths) == 12
    return [decode_image(path)[1] for path in paths]


def test_facts_round_trip_with_their_thumbnails(
    tmp_path: Path, decoded: list[ImageInfo]
) -> None:
    facts = ImageFacts(tmp_path / "images.sqlite")
    facts.put(decoded)

    found = ImageFacts(tmp_path / "images.sqlite").get([i.digest for i in decoded])

    assert found == {info.digest: info for info in decoded}
    for info in decoded:
        assert found[info.digest].thumbnail == info.thumbnail
        stored = found[info.digest].thumbnail_pixels()
        assert stored is not None
        assert stored.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3)


def test_facts_without_a_thumbnail_read_back_without_one(
    tmp_path: Path, decoded: list[ImageInfo]
) -> None:
    bare = dataclasses.replace(decoded[0], thumbnail=None)
    facts = ImageFacts(tmp_path / "images.sqlite")
    facts.put([bare])

    assert facts.get([bare.digest, "0" * 64]) == {bare.digest: bare}
    assert facts.get([]) == {}


def test_known_digests_are_left_as_they_are(
    tmp_path: Path, decoded: list[ImageInfo]
) -> None:
    facts = ImageFacts(tmp_path / "images.sqlite")
    facts.put(decoded[:1])
    facts.put([dataclasses.replace(decoded[0], width=1, thumbnail=None)])

    assert facts.get([decoded[0].digest]) == {decoded[0].digest: decoded[0]}


def test_rows_of_an_older_cache_file_are_not_read(
    tmp_path: Path, decoded: list[ImageInfo]
) -> None:
    # The layout of images.sqlite before facts carried a thumbnail.
    path = tmp_path / "images.sqlite"
    older = "INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?)"
    info = decoded[0]
    row = (info.digest, info.width, info.height, info.mode, info.format, "0" * 16)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "CREATE TABLE facts (digest TEXT PRIMARY KEY, width INTEGER,"
            " height INTEGER, mode TEXT, format TEXT, phash TEXT)"
        )
        connection.execute(older, row)
    facts = ImageFacts(path)

    assert facts.get([info.digest]) == {}
    facts.put([info])
    assert facts.get([info.digest]) == {info.digest: info}
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        # An older version sharing the cache folder can still write its rows.
        connection.execute(older, (decoded[1].digest, *row[1:]))
        (count,) = connection.execute("SELECT COUNT(*) FROM facts").fetchone()
    assert count == 2


def test_atomic_writes_follow_the_umask_and_leave_no_temporary_file(
    tmp_path: Path,
) -> None:
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "row.json", b"{}")
        os.umask(0o077)
        write_atomic(tmp_path / "private.json", b"{}")
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / "row.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["private.json", "row.json"]


def test_a_failed_atomic_write_names_the_file_not_its_temporary(
    tmp_path: Path,
) -> None:
    taken = tmp_path / "leaderboard.json"
    (taken / "inside").mkdir(parents=True)  # a folder where the file should go

    with pytest.raises(OSError) as raised:
        write_atomic(taken, b"[]")

    assert raised.value.filename == str(taken)
    assert "cannot write" not in str(raised.value)  # the CLI words it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.json"]
