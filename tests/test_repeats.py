"""Repeated validation splits: redrawn from a training set, scored on one extraction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from lazyvision import evaluation
from lazyvision.cli import main
from lazyvision.errors import DataError
from lazyvision.evaluation import redraw_val
from lazyvision.metrics import METRICS
from lazyvision.runner import rank
from lazyvision.settings import Settings

NUM_PER_CLASS = 10
MODELS = ["pixels", "test_resnet@random"]


@pytest.fixture(scope="module")
def train_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders of handwritten digits, 10 per class, with no split folders."""
    root = tmp_path_factory.mktemp("train_only")
    images, targets = load_digits(return_X_y=True)
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir()
        for number, row in enumerate(np.flatnonzero(targets == digit)[:NUM_PER_CLASS]):
            pixels = (images[row].reshape(8, 8) * 255 / 16).astype(np.uint8)
            picture = Image.fromarray(pixels).resize((32, 32), Image.NEAREST)
            picture.save(folder / f"{digit}_{number}.png")
    return root


def test_repeats_summarise_val_metrics_from_one_extraction(
    tmp_path: Path, train_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extractions: list[int] = []
    original = evaluation.extract_features

    def counting(*args: Any, **kwargs: Any) -> Any:
        extraction = original(*args, **kwargs)
        extractions.append(extraction.num_computed)
        return extraction

    monkeypatch.setattr(evaluation, "extract_features", counting)
    settings = Settings(num_repeats=3, num_resamples=0, num_workers=0)
    board = rank(train_only, models=MODELS, output=tmp_path / "run", settings=settings)

    # One extraction per backbone, every image embedded exactly once.
    assert extractions == [10 * NUM_PER_CLASS] * len(MODELS)
    for row in board.to_dict(orient="records"):
        assert row["status"] == "ok" and row["num_repeats"] == 3
        assert (row["num_train"], row["num_val"]) == (80, 20)
        for metric in ("accuracy", "balanced_accuracy", "f1", "log_loss", "ece"):
            key = f"val_{metric}"
            low, high = row[f"{key}_min"], row[f"{key}_max"]
            # The drawn split is the first of the three.
            assert low <= row[key] <= high, key
            assert low <= row[f"{key}_mean"] <= high, key
            assert 0.0 <= row[f"{key}_std"] <= high - low, key
        assert pd.isna(row["val_pr_auc_mean"])  # ten classes: never defined

    saved = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    summaries = [f"val_{m}_{s}" for m in METRICS for s in ("mean", "std", "min", "max")]
    assert set(summaries) <= set(saved.columns)


def test_repeats_need_a_training_set_only(tmp_path: Path, digits_splits: Path) -> None:
    settings = Settings(num_repeats=2, num_resamples=0, num_workers=0)
    message = (
        r"^num_repeats \(--repeats\) is 2, but repeats need a training set only"
        r".*, or leave --repeats out \(num_repeats=1\)$"
    )
    with pytest.raises(DataError, match=message):
        rank(digits_splits, models=["pixels"], output=tmp_path, settings=settings)
    assert not (tmp_path / "run.json").exists()  # refused before any work


@pytest.mark.parametrize("repeats", [0, -1, 2.5, True])
def test_repeats_must_be_a_positive_whole_number(repeats: Any) -> None:
    with pytest.raises(
        DataError, match=rf"num_repeats \(--repeats\) must be .*{repeats!r}"
    ):
        Settings(num_repeats=repeats)


def test_redraw_val_keeps_class_sizes_and_never_touches_test() -> None:
    labels = np.repeat(np.arange(3), 10)
    splits = np.array((["train"] * 6 + ["val"] * 3 + ["test"]) * 3)
    drawn = {}
    for seed in (1, 2):
        train, val = redraw_val(labels, splits, seed=seed)
        assert np.bincount(labels[val]).tolist() == [3, 3, 3]
        assert np.intersect1d(train, val).size == 0
        pool = np.flatnonzero(splits != "test")
        assert np.array_equal(np.union1d(train, val), pool)
        drawn[seed] = val
    assert np.array_equal(redraw_val(labels, splits, seed=1)[1], drawn[1])
    assert not np.array_equal(drawn[1], drawn[2])


def test_repeats_on_the_command_line(
    tmp_path: Path,
    train_only: Path,
    digits_splits: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--models", "pixels", "--resamples", "0", "--workers", "0"]
    status = main(
        ["rank", str(train_only), *common, "--repeats", "2", "--output", str(tmp_path)]
    )
    printed = capsys.readouterr()
    assert status == 0
    assert "mean±std" in printed.out
    assert "over 2 redrawn validation splits" in printed.out

    status = main(["rank", str(digits_splits), *common, "--repeats", "2"])
    assert status == 2
    assert "--repeats" in capsys.readouterr().err
