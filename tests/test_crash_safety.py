"""What survives concurrent runs, damaged caches, unsafe files and broken models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from torch import nn

from lazyvision import backbones
from lazyvision.backbones import Backbone, ModelSpec, Preprocessing, register_zoo
from lazyvision.cache import FeatureStore
from lazyvision.cli import main

NUM_IMAGES = 120  # the digits_splits fixture: 12 per class
# Time this run spent, how much of the work it did itself, and so whether it
# timed the speed. The speed stays: a run that reads another's embeddings reports
# the speed that run timed under the same conditions.
RUN_DEPENDENT = ["extract_seconds", "head_fit_seconds", "num_computed", "speed_source"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the package logger; later tests get it back untouched."""
    package = logging.getLogger("lazyvision")
    handlers, level = list(package.handlers), package.level
    yield
    package.handlers[:] = handlers
    package.setLevel(level)


def _rank(data: Path, run: Path, cache: Path, models: str) -> list[str]:
    return [
        "rank",
        str(data),
        "--models",
        models,
        "--output",
        str(run),
        "--cache-dir",
        str(cache),
        "--resamples",
        "100",
    ]


def _rows(run: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((run / "leaderboard.json").read_text())
    return {row["model"]: row for row in rows}


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("lazyvision")
    return (
        [str(script)] if script.exists() else [sys.executable, "-m", "lazyvision.cli"]
    )


# Two runs on one cache


def test_two_runs_at_once_share_the_cache_without_damage(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    runs = [tmp_path / "run_a", tmp_path / "run_b"]
    models = "pixels,test_resnet@random"
    processes = [
        subprocess.Popen(
            [*_console_script(), *_rank(digits_splits, run, cache, models)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    outputs = [process.communicate(timeout=300) for process in processes]

    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    folders = sorted((cache / "features").iterdir())
    assert len(folders) == 2
    for folder in folders:
        with caplog.at_level(logging.WARNING, logger="lazyvision.cache"):
            embeddings = FeatureStore(folder).load()
        assert caplog.records == []
        assert len(embeddings) == NUM_IMAGES
        names = {path.name for path in folder.iterdir()}
        chunks = {name for name in names if name.startswith("chunk-")}
        assert names - chunks == {".lock", "speeds.json"}, names
        assert all(name.endswith(".npz") for name in chunks)
    assert list((cache / "tmp").iterdir()) == []  # no decoded-pixel files left
    assert all(not p.name.startswith(".") for p in (cache / "results").iterdir())

    boards = [pd.read_csv(run / "leaderboard.csv") for run in runs]
    # The entry lock lets one run embed each image and the other read it.
    computed = boards[0].set_index("model")["num_computed"]
    computed += boards[1].set_index("model")["num_computed"]
    assert computed.tolist() == [NUM_IMAGES, NUM_IMAGES]
    pd.testing.assert_frame_equal(
        boards[0].drop(columns=RUN_DEPENDENT), boards[1].drop(columns=RUN_DEPENDENT)
    )


_FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    import numpy as np
    from lazyvision.cache import FeatureStore, write_atomic

    folder = Path(sys.argv[1])
    store = FeatureStore(folder)
    store.write_chunk(["a" * 64], np.ones((1, 4), dtype=np.float32))
    # A file-size limit fails writes the way a full disk does, with no mocks.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))
    for write in (
        lambda: store.write_chunk(["b" * 64] * 100, np.ones((100, 500), np.float32)),
        lambda: write_atomic(folder / "result.json", b" " * 100_000),
    ):
        try:
            write()
        except OSError as err:
            print("refused:", err.strerror)
    """
)


def test_a_failed_cache_write_leaves_no_temporary_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "features" / "key"
    folder.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.count("refused: File too large") == 2, done.stdout

    names = sorted(path.name for path in folder.iterdir())
    assert len(names) == 1 and names[0].startswith("chunk-"), names
    with caplog.at_level(logging.WARNING, logger="lazyvision.cache"):
        assert list(FeatureStore(folder).load()) == ["a" * 64]
    assert caplog.records == []


# A damaged cache chunk


def _flip_a_byte(chunk: Path) -> None:
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))


def _flip_an_embedding_keeping_the_checksum(chunk: Path) -> None:
    """A readable archive whose arrays no longer match the checksum it carries."""
    with np.load(chunk) as data:
        arrays = {name: data[name] for name in data.files}
    size = chunk.stat().st_size
    arrays["embeddings"].view(np.uint32)[0, 0] ^= 1 << 20
    with chunk.open("wb") as handle:
        np.savez(handle, **arrays)
    assert chunk.stat().st_size == size


@pytest.mark.parametrize(
    "damage", [_flip_a_byte, _flip_an_embedding_keeping_the_checksum]
)
def test_damaged_chunk_is_removed_with_a_warning_and_recomputed(
    tmp_path: Path,
    digits_splits: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
) -> None:
    cache = tmp_path / "cache"
    assert main(_rank(digits_splits, tmp_path / "a", cache, "pixels")) == 0
    (chunk,) = (cache / "features").glob("*/chunk-*.npz")
    intact = FeatureStore(chunk.parent).load()
    damage(chunk)
    for result in (cache / "results").glob("*.json"):
        result.unlink()  # else the finished evaluation is read, not the chunk

    with caplog.at_level(logging.WARNING, logger="lazyvision.cache"):
        assert main(_rank(digits_splits, tmp_path / "b", cache, "pixels")) == 0
    assert f"cache chunk {chunk} is truncated or corrupt; removed" in caplog.text
    first, second = _rows(tmp_path / "a")["pixels"], _rows(tmp_path / "b")["pixels"]
    assert second["num_computed"] == NUM_IMAGES
    assert second["val_log_loss"] == pytest.approx(first["val_log_loss"])

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lazyvision.cache"):
        repaired = FeatureStore(chunk.parent).load()
    assert caplog.records == []
    assert repaired.keys() == intact.keys()
    for digest, row in intact.items():
        np.testing.assert_array_equal(repaired[digest], row)


# A checkpoint that needs pickled code


def test_pickled_checkpoint_is_refused_with_a_recipe_that_works(
    tmp_path: Path, digits_splits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "trained.pth"
    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, checkpoint)
    argv = _rank(digits_splits, tmp_path / "run", tmp_path / "cache", "test_resnet")
    argv[argv.index("test_resnet")] = "test_resnet,pixels"

    assert main([*argv, "--weights", f"test_resnet={checkpoint}"]) == 3
    rows = _rows(tmp_path / "run")
    assert rows["pixels"]["status"] == "ok"
    assert rows["test_resnet"]["status"] == "failed"
    reason = rows["test_resnet"]["reason"]
    assert "needs pickled code (argparse.Namespace)" in reason
    assert "refused" in reason
    assert "convert it to safetensors" in reason
    assert "test_resnet failed" in capsys.readouterr().err

    # The recipe in the message, run as the user would on a file they trust.
    recipe = textwrap.dedent(reason.split(":\n", 1)[1])
    exec(recipe, {})
    converted = checkpoint.with_suffix(".safetensors")
    assert main([*argv, "--weights", f"test_resnet={converted}"]) == 0
    row = _rows(tmp_path / "run")["test_resnet"]
    assert row["status"] == "ok"
    assert row["weights_source"] == f"file {converted}"


# Backbones that fail inside forward


class _Pooling(nn.Module):
    """A 4x4 average pool per channel; raises the given error on large batches."""

    def __init__(self, error: type[Exception], max_batch: int) -> None:
        super().__init__()
        self.error = error
        self.max_batch = max_batch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if len(images) > self.max_batch:
            raise self.error(f"{len(images)} images are too many for this model")
        return nn.functional.adaptive_avg_pool2d(images, 4).flatten(1)


class _FailingZoo:
    """Models named after how they fail."""

    models: Mapping[str, tuple[type[Exception], int]] = {
        "raises_in_forward": (RuntimeError, -1),
        "out_of_memory_above_4": (torch.OutOfMemoryError, 4),
        "always_out_of_memory": (torch.OutOfMemoryError, -1),
    }

    def names(self, pattern: str | None = None) -> list[str]:
        return sorted(self.models)

    def resolve(self, name: str) -> str | None:
        return name if name in self.models else None

    def create(
        self,
        spec: ModelSpec,
        *,
        weights: Mapping[str, str | os.PathLike[str]],
        allow_download: bool,
    ) -> Backbone:
        error, max_batch = self.models[spec.name]
        return Backbone(
            name=spec.text,
            architecture=spec.name,
            model=_Pooling(error, max_batch).eval(),
            preprocessing=Preprocessing(
                input_size=(32, 32),
                resize_size=32,
                crop_pct=1.0,
                interpolation="bilinear",
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
            ),
            embedding_size=48,
            num_params=0,
            weights_source="none (test zoo)",
            weights_id=f"{spec.name}-v1",
        )


@pytest.fixture
def failing_zoo() -> Iterator[None]:
    saved = list(backbones._ZOOS)
    register_zoo(_FailingZoo())
    yield
    backbones._ZOOS[:] = saved


@pytest.mark.usefixtures("failing_zoo")
def test_backbone_raising_in_forward_is_a_failed_row(
    tmp_path: Path, digits_splits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = "raises_in_forward,pixels"
    run = tmp_path / "run"
    assert main(_rank(digits_splits, run, tmp_path / "cache", models)) == 3

    rows = _rows(run)
    assert rows["pixels"]["status"] == "ok"
    assert rows["raises_in_forward"]["status"] == "failed"
    assert rows["raises_in_forward"]["reason"] == (
        "RuntimeError: 64 images are too many for this model"
    )
    out = capsys.readouterr().out
    assert "raises_in_forward  failed: RuntimeError: 64 images are too" in out
    assert not (run / "models" / "raises_in_forward" / "row.json").exists()


@pytest.mark.usefixtures("failing_zoo")
def test_out_of_memory_halves_the_batch_until_it_fits(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = "out_of_memory_above_4,always_out_of_memory,pixels"
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="lazyvision"):
        status = main(_rank(digits_splits, run, tmp_path / "cache", models))

    assert status == 3
    rows = _rows(run)
    assert rows["out_of_memory_above_4"]["status"] == "ok"
    assert rows["out_of_memory_above_4"]["num_computed"] == NUM_IMAGES
    predictions = pd.read_csv(
        run / "models" / "out_of_memory_above_4" / "predictions.csv"
    )
    assert len(predictions) == NUM_IMAGES
    retries = [
        int(message.rsplit(" ", 1)[1])
        for message in caplog.messages
        if message.startswith("out_of_memory_above_4 ran out of memory")
    ]
    assert retries == [32, 16, 8, 4]

    failed = rows["always_out_of_memory"]
    assert failed["status"] == "failed"
    assert "out of memory even at batch size 1" in failed["reason"]
    assert rows["pixels"]["status"] == "ok"
