"""End-to-end ranking on real images: the run folder, resume, failures, budgets."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lazyvision.errors import DataError
from lazyvision.runner import Settings, rank

FAST = Settings(num_resamples=200, num_workers=0, batch_size=16)
TINY = ["pixels", "test_resnet@random"]


def _solid_folders(root: Path, *, num_train: int = 5, num_val: int = 3) -> Path:
    colours = {"red": (220, 20, 30), "blue": (20, 40, 210)}
    for offset, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        for name, colour in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                # Distinct shades, so no file is a byte copy of another.
                shade = tuple(max(0, c - 7 * i - 3 * offset) for c in colour)
                Image.new("RGB", (32, 32), shade).save(folder / f"{name}_{i}.png")
    return root


def test_solid_colours_are_perfect_and_every_row_is_predicted(tmp_path: Path) -> None:
    data = _solid_folders(tmp_path / "data", num_val=5)  # 10 val images, batch 16/3
    board = rank(
        data,
        models=["pixels"],
        output=tmp_path / "run",
        settings=Settings(num_resamples=100, num_workers=0, batch_size=3),
    )
    row = board.iloc[0]
    assert row["status"] == "ok"
    for metric in ("val_accuracy", "val_f1", "val_roc_auc", "val_balanced_accuracy"):
        assert row[metric] == 1.0, metric
    predictions = pd.read_csv(
        tmp_path / "run" / "models" / "pixels" / "predictions.csv"
    )
    assert len(predictions) == 20
    assert (predictions["split"] == "val").sum() == 10


def _split_csvs(digits_splits: Path, target: Path, *, shuffle: int | None) -> Path:
    target.mkdir(parents=True)
    for csv in digits_splits.glob("*.csv"):
        frame = pd.read_csv(csv, dtype=str)
        frame["filepath"] = [str((digits_splits / p).resolve()) for p in frame.filepath]
        if shuffle is not None:
            frame = frame.sample(frac=1.0, random_state=shuffle)
        frame.to_csv(target / csv.name, index=False)
    return target


def test_shuffled_csv_rows_change_no_metric(
    tmp_path: Path, digits_splits: Path
) -> None:
    metrics = ["val_accuracy", "val_balanced_accuracy", "val_f1", "val_log_loss"]
    metrics += ["test_accuracy", "val_accuracy_low", "val_accuracy_high"]
    boards = []
    for seed in (None, 1):
        data = _split_csvs(digits_splits, tmp_path / f"data{seed}", shuffle=seed)
        board = rank(
            data,
            models=["pixels"],
            output=tmp_path / f"run{seed}",
            cache_dir=tmp_path / f"cache{seed}",
            settings=FAST,
        )
        boards.append(board.set_index("model")[metrics])
    pd.testing.assert_frame_equal(boards[0], boards[1])


def test_run_folder_holds_leaderboard_and_predictions(
    tmp_path: Path, digits_splits: Path
) -> None:
    board = rank(digits_splits, models=TINY, output=tmp_path / "run", settings=FAST)
    run = tmp_path / "run"
    assert set(board["model"]) == set(TINY)
    assert (board["status"] == "ok").all()
    saved = pd.read_csv(run / "leaderboard.csv")
    assert list(saved["model"]) == list(board["model"])
    assert (
        json.loads((run / "leaderboard.json").read_text())[0]["model"]
        == board.iloc[0]["model"]
    )
    info = json.loads((run / "run.json").read_text())
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["status"] == "finished" and info["finished"] >= info["started"]
    for spec in TINY:
        folder = run / "models" / spec.replace("@", "_")
        predictions = pd.read_csv(folder / "predictions.csv", dtype={"label": str})
        assert len(predictions) == 120
        assert predictions.filter(like="p:").sum(axis=1).round(6).eq(1).all()
    # The leaderboard is sorted by validation balanced accuracy, best first.
    scores = board["val_balanced_accuracy"].tolist()
    assert scores == sorted(scores, reverse=True)


def test_warm_rerun_computes_nothing(tmp_path: Path, digits_splits: Path) -> None:
    first = rank(digits_splits, models=TINY, output=tmp_path / "a", settings=FAST)
    second = rank(digits_splits, models=TINY, output=tmp_path / "b", settings=FAST)
    assert first.set_index("model")["num_computed"].min() > 0
    assert second["num_computed"].sum() == 0
    columns = ["model", "val_balanced_accuracy", "val_log_loss", "test_f1"]
    pd.testing.assert_frame_equal(first[columns], second[columns])


def test_a_rerun_keeps_the_record_of_every_run_on_the_folder(
    tmp_path: Path, digits_splits: Path
) -> None:
    run = tmp_path / "run"
    fields = ("started", "finished", "status", "models")
    rank(digits_splits, models=["pixels"], output=run, settings=FAST)
    first = json.loads((run / "run.json").read_text())
    rank(digits_splits, models=TINY, output=run, settings=FAST)
    second = json.loads((run / "run.json").read_text())

    assert second["runs"] == [
        {key: first[key] for key in fields},
        {key: second[key] for key in fields},
    ]
    assert [entry["models"] for entry in second["runs"]] == [["pixels"], TINY]
    assert second["status"] == "finished" and second["started"] >= first["finished"]

    # A run.json from before the history was kept counts as one earlier run.
    del second["runs"]
    (run / "run.json").write_text(json.dumps(second))
    rank(digits_splits, models=["pixels"], output=run, settings=FAST)
    third = json.loads((run / "run.json").read_text())
    assert third["runs"][0] == {key: second[key] for key in fields}
    assert len(third["runs"]) == 2


def test_a_run_folder_of_another_data_set_is_refused_and_kept(
    tmp_path: Path, digits_splits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    rank(digits_splits, models=["pixels"], output=run, settings=FAST)
    saved = (run / "leaderboard.json").read_bytes()
    other = _solid_folders(tmp_path / "colours")

    with pytest.raises(DataError, match=r"another data set .*--output") as caught:
        rank(other, models=["pixels"], output=run, settings=FAST)

    assert str(run) in str(caught.value) and str(other.resolve()) in str(caught.value)
    assert (run / "leaderboard.json").read_bytes() == saved
    # The same data set, named by another path to the same folder, resumes.
    monkeypatch.chdir(digits_splits.parent)
    again = rank(digits_splits.name, models=["pixels"], output=run, settings=FAST)
    assert list(again["status"]) == ["ok"]


def test_a_misspelt_backbone_stops_the_run_before_the_data_is_read(
    tmp_path: Path,
) -> None:
    from lazyvision.errors import DataError

    with pytest.raises(DataError, match=r"unknown model 'resnet5O'.*'resnet50'"):
        rank(tmp_path / "absent", models=["pixels", "resnet5O"], output=tmp_path)


def test_broken_checkpoint_becomes_a_row(tmp_path: Path, digits_splits: Path) -> None:
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, bad)
    settings = Settings(num_resamples=0, num_workers=0, weights={"test_resnet": bad})
    board = rank(
        digits_splits,
        models=["test_resnet", "pixels"],
        output=tmp_path / "run",
        settings=settings,
    )
    rows = board.set_index("model")
    assert rows.loc["test_resnet", "status"] == "failed"
    assert rows.loc["pixels", "status"] == "ok"


def test_a_checkpoint_gone_before_the_run_becomes_a_row(
    tmp_path: Path, digits_splits: Path
) -> None:
    path = tmp_path / "gone.safetensors"
    path.write_bytes(b"soon deleted")
    settings = Settings(num_resamples=0, num_workers=0, weights={"test_resnet": path})
    path.unlink()
    board = rank(
        digits_splits,
        models=["test_resnet", "pixels"],
        output=tmp_path / "run",
        settings=settings,
    )
    rows = board.set_index("model")
    assert rows.loc["test_resnet", "status"] == "failed"
    assert "does not exist" in rows.loc["test_resnet", "reason"]
    assert rows.loc["pixels", "status"] == "ok"


def test_a_rerun_with_other_models_keeps_the_earlier_backbones_ranked(
    tmp_path: Path, digits_splits: Path
) -> None:
    import torch
    from safetensors.torch import save_file

    run = tmp_path / "run"
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, bad)
    failing = dataclasses.replace(FAST, weights={"test_resnet": bad})
    rank(digits_splits, models=["pixels", "test_resnet"], output=run, settings=failing)

    board = rank(
        digits_splits, models=["test_resnet@random"], output=run, settings=FAST
    )

    assert sorted(board["model"]) == ["pixels", "test_resnet@random"]
    assert (board["status"] == "ok").all()
    assert board.set_index("model").loc["pixels", "num_computed"] == 0
    scores = board["val_balanced_accuracy"].tolist()
    assert scores == sorted(scores, reverse=True)
    assert board.attrs["earlier_models"] == ["pixels"]
    assert board.attrs["left_out_models"] == ["test_resnet (failed)"]
    saved = json.loads((run / "leaderboard.json").read_text())
    assert [row["model"] for row in saved] == list(board["model"])

    # Scored with another seed, pixels is not comparable: named, not ranked.
    reseeded = dataclasses.replace(FAST, seed=1)
    again = rank(
        digits_splits, models=["test_resnet@random"], output=run, settings=reseeded
    )
    assert list(again["model"]) == ["test_resnet@random"]
    assert again.attrs["earlier_models"] == []
    assert again.attrs["left_out_models"] == [
        "pixels (other data or settings)",
        "test_resnet (failed)",
    ]


def test_tiny_budget_times_out(tmp_path: Path, digits_splits: Path) -> None:
    settings = Settings(num_resamples=0, num_workers=0, max_seconds_per_model=1e-4)
    board = rank(
        digits_splits,
        models=["test_efficientnet@random"],
        output=tmp_path / "run",
        settings=settings,
    )
    row = board.iloc[0]
    assert row["status"] == "timed out"
    assert "stopped after" in row["reason"]


def test_truncated_cache_chunk_is_recomputed(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    first = rank(
        digits_splits,
        models=["pixels"],
        output=tmp_path / "a",
        cache_dir=cache,
        settings=FAST,
    )
    chunks = list((cache / "features").glob("*/chunk-*.npz"))
    assert chunks
    data = chunks[0].read_bytes()
    chunks[0].write_bytes(data[: len(data) // 2])
    for result in (cache / "results").glob("*.json"):
        result.unlink()
    with caplog.at_level("WARNING"):
        second = rank(
            digits_splits,
            models=["pixels"],
            output=tmp_path / "b",
            cache_dir=cache,
            settings=FAST,
        )
    assert "truncated or corrupt" in caplog.text
    assert second.iloc[0]["num_computed"] > 0
    assert second.iloc[0]["val_log_loss"] == pytest.approx(
        first.iloc[0]["val_log_loss"]
    )


def test_a_backbone_partly_embedded_earlier_says_how_much_was_left(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    without_test = tmp_path / "no-test"
    without_test.mkdir()
    for name in ("train.csv", "val.csv"):
        frame = pd.read_csv(digits_splits / name)
        frame["filepath"] = [str((digits_splits / p).resolve()) for p in frame.filepath]
        frame.to_csv(without_test / name, index=False)

    def run_pixels(data: Path, output: str) -> pd.DataFrame:
        return rank(
            data,
            models=["pixels"],
            output=tmp_path / output,
            cache_dir=cache,
            settings=FAST,
        )

    run_pixels(without_test, "a")
    num_test = len(pd.read_csv(digits_splits / "test.csv"))
    with caplog.at_level("INFO", logger="lazyvision"):
        board = run_pixels(digits_splits, "b")
    assert board.iloc[0]["num_computed"] == num_test
    said = [m for r in caplog.records if "already embedded" in (m := r.getMessage())]
    assert said == [
        f"pixels: {120 - num_test} of 120 images already embedded in the "
        f"cache; embedding the other {num_test}"
    ]

    caplog.clear()
    with caplog.at_level("INFO", logger="lazyvision"):
        run_pixels(digits_splits, "c")
    assert "already embedded" not in caplog.text  # all of it was: nothing to say


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from lazyvision import features
    from lazyvision.runner import Settings, rank

    features.CHUNK_SIZE = 16
    written = []
    original = features.FeatureStore.write_chunk

    def write_then_maybe_die(self, digests, embeddings):
        original(self, digests, embeddings)
        written.append(len(digests))
        if os.environ.get("DIE_AFTER") and len(written) == int(os.environ["DIE_AFTER"]):
            os.kill(os.getpid(), signal.SIGKILL)

    features.FeatureStore.write_chunk = write_then_maybe_die
    settings = Settings(num_resamples=200, num_workers=0, batch_size=8)
    board = rank(sys.argv[1], models=["pixels", "test_resnet@random"],
                 output=sys.argv[2], cache_dir=sys.argv[3], settings=settings)
    print("COMPUTED", dict(zip(board["model"], board["num_computed"])))
    board.to_csv(sys.argv[2] + ".board.csv", index=False)
    """
)


def test_sigkill_mid_backbone_resumes_to_the_same_leaderboard(
    tmp_path: Path, digits_splits: Path
) -> None:
    script = tmp_path / "run_and_die.py"
    script.write_text(_KILL_SCRIPT)
    run, cache = tmp_path / "run", tmp_path / "cache"
    env = {**os.environ, "DIE_AFTER": "11"}  # pixels: 8 chunks, then 3 of resnet
    killed = subprocess.run(
        [sys.executable, str(script), str(digits_splits), str(run), str(cache)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (run / "models" / "pixels" / "row.json").exists()
    assert not (run / "models" / "test_resnet_random" / "row.json").exists()

    env.pop("DIE_AFTER")
    resumed = subprocess.run(
        [sys.executable, str(script), str(digits_splits), str(run), str(cache)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    computed = eval(resumed.stdout.split("COMPUTED", 1)[1])
    assert computed["pixels"] == 0  # finished before the kill: read back
    assert computed["test_resnet@random"] == 120 - 3 * 16  # only the unfinished chunks

    clean_run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(digits_splits),
            str(tmp_path / "clean"),
            str(tmp_path / "c2"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "COMPUTED" in clean_run.stdout
    columns = [
        "model",
        "val_balanced_accuracy",
        "val_log_loss",
        "val_accuracy_low",
        "test_f1",
    ]
    after_resume = pd.read_csv(str(run) + ".board.csv")[columns]
    uninterrupted = pd.read_csv(str(tmp_path / "clean") + ".board.csv")[columns]
    pd.testing.assert_frame_equal(after_resume, uninterrupted)


def test_bad_files_stop_the_run_unless_skipped(
    tmp_path: Path, digits_splits: Path
) -> None:
    from lazyvision.errors import DataError

    data = _split_csvs(digits_splits, tmp_path / "data", shuffle=None)
    train = pd.read_csv(data / "train.csv", dtype=str)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    train.loc[len(train)] = [str(broken), "3"]
    train.to_csv(data / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv row 62"):
        rank(data, models=["pixels"], output=tmp_path / "run", settings=FAST)
    board = rank(
        data, models=["pixels"], output=tmp_path / "run", settings=FAST, skip_bad=True
    )
    assert board.iloc[0]["num_train"] == 60
    skipped = pd.read_csv(tmp_path / "run" / "skipped_files.csv")
    assert skipped["origin"].tolist() == ["train.csv row 62"]
    assert np.isfinite(board.iloc[0]["val_accuracy"])


def test_limits_exclude_rows_but_keep_them_in_the_files(
    tmp_path: Path, digits_splits: Path
) -> None:
    settings = dataclasses.replace(FAST, max_params=0, max_latency_ms=1e9)
    board = rank(digits_splits, models=TINY, output=tmp_path / "run", settings=settings)

    assert board["model"].tolist() == ["pixels", "test_resnet@random"]
    pixels, resnet = board.to_dict(orient="records")
    assert (pixels["status"], pixels["pareto"]) == ("ok", True)
    assert resnet["status"] == "excluded"
    assert resnet["reason"] == "373K parameters > 0 limit"
    assert not resnet["pareto"] and not resnet["tied_with_best"]
    assert np.isfinite(resnet["val_balanced_accuracy"])  # scored, then excluded
    saved = pd.read_csv(tmp_path / "run" / "leaderboard.csv").set_index("model")
    assert saved.loc["test_resnet@random", "status"] == "excluded"
    # The finished result is kept: loosening the limit ranks it without rerunning.
    again = rank(
        digits_splits, models=TINY, output=tmp_path / "run", settings=FAST
    ).set_index("model")
    assert again.loc["test_resnet@random", "status"] == "ok"
    assert again["num_computed"].sum() == 0


def test_a_run_that_embeds_its_images_reports_its_own_speed_and_latency(
    tmp_path: Path, digits_splits: Path
) -> None:
    import torch

    from lazyvision.backbones import create_backbone
    from lazyvision.cache import default_cache_dir
    from lazyvision.features import feature_key, resolve_precision, speed_conditions

    # An earlier run on other images left a very slow figure for these
    # conditions, in the file of today and in that of older versions.
    backbone = create_backbone("test_resnet@random")
    dtype = resolve_precision("auto", torch.device("cpu"))
    entry = default_cache_dir() / "features" / feature_key(backbone, dtype)
    entry.mkdir(parents=True)
    conditions = speed_conditions(
        batch_size=FAST.batch_size,
        device=torch.device("cpu"),
        precision=str(dtype).removeprefix("torch."),
    )
    slow = {"images_per_second": 0.01, "num_timed": 10**6}
    (entry / "speeds.json").write_text(json.dumps({"measured": {conditions: slow}}))
    (entry / "speed.json").write_text(
        json.dumps({"images_per_second": 0.01, "timed_images": 10**6})
    )

    settings = dataclasses.replace(FAST, device="cpu", max_latency_ms=10_000)
    board = rank(
        digits_splits,
        models=["test_resnet@random"],
        output=tmp_path / "run",
        settings=settings,
    )

    (row,) = board.to_dict(orient="records")
    assert row["status"] == "ok", row["reason"]
    # 120 images in batches of 16, timed after the first.
    assert (row["speed_source"], row["num_timed"]) == ("this run", 104)
    assert row["images_per_second"] > 1
    assert row["latency_ms"] == pytest.approx(1000 / row["images_per_second"], 1e-3)


def test_a_cached_result_reports_the_speed_timed_under_the_same_conditions(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = rank(digits_splits, models=TINY, output=tmp_path / "a", settings=FAST)
    again = rank(digits_splits, models=TINY, output=tmp_path / "b", settings=FAST)
    other = dataclasses.replace(FAST, batch_size=8)
    with caplog.at_level("WARNING", logger="lazyvision.evaluation"):
        smaller = rank(
            digits_splits, models=TINY, output=tmp_path / "c", settings=other
        )

    speed = ["model", "images_per_second", "latency_ms", "num_timed"]
    assert first["speed_source"].tolist() == ["this run"] * 2
    assert again["speed_source"].tolist() == ["earlier run"] * 2
    assert again["num_computed"].sum() == 0
    pd.testing.assert_frame_equal(first[speed], again[speed])
    # Nothing was timed at batch size 8: no speed rather than another's.
    assert smaller[["images_per_second", "latency_ms"]].isna().all().all()
    assert smaller["speed_source"].isna().all()
    assert "test_resnet@random: speed unknown" in caplog.text
    saved = json.loads((tmp_path / "b" / "leaderboard.json").read_text())
    assert {row["speed_source"] for row in saved} == {"earlier run"}


def test_the_best_row_is_never_tied_with_itself_and_its_twin_is(
    tmp_path: Path, digits_splits: Path
) -> None:
    # Each pair is one model under two names: the same weights (random controls
    # are seeded) and the same predictions, whichever pair ranks first.
    twins = [("pixels", "PIXELS"), ("test_resnet@random", "test-resnet@random")]
    models = [name for pair in twins for name in pair]
    board = rank(digits_splits, models=models, output=tmp_path / "run", settings=FAST)
    rows = board.set_index("model")

    best = board.iloc[0]["model"]
    assert not rows.loc[best, "tied_with_best"]
    assert rows["tied_with_best"].sum() >= 1
    for first, second in twins:
        assert rows.loc[first, "val_log_loss"] == rows.loc[second, "val_log_loss"]
        if best in (first, second):
            twin = second if best == first else first
            assert rows.loc[twin, "tied_with_best"]
        else:
            tied = rows.loc[[first, second], "tied_with_best"].tolist()
            assert tied[0] == tied[1]


def test_missing_files_are_skipped_with_skip_bad(
    tmp_path: Path, digits_splits: Path
) -> None:
    data = _split_csvs(digits_splits, tmp_path / "data", shuffle=None)
    train = pd.read_csv(data / "train.csv", dtype=str)
    train.loc[len(train)] = [str(tmp_path / "gone.png"), "3"]
    train.to_csv(data / "train.csv", index=False)
    board = rank(
        data, models=["pixels"], output=tmp_path / "run", settings=FAST, skip_bad=True
    )
    assert board.iloc[0]["status"] == "ok"
    skipped = pd.read_csv(tmp_path / "run" / "skipped_files.csv")
    assert skipped["reason"].tolist() == ["file not found"]


def test_cached_result_names_the_current_files(
    tmp_path: Path, digits_splits: Path
) -> None:
    cache = tmp_path / "cache"
    rank(
        digits_splits,
        models=["pixels"],
        output=tmp_path / "a",
        cache_dir=cache,
        settings=FAST,
    )
    moved = tmp_path / "moved"
    shutil.copytree(digits_splits.parent, moved)
    board = rank(
        moved / "splits",
        models=["pixels"],
        output=tmp_path / "b",
        cache_dir=cache,
        settings=FAST,
    )
    assert board.iloc[0]["num_computed"] == 0
    predictions = pd.read_csv(tmp_path / "b" / "models" / "pixels" / "predictions.csv")
    assert predictions["filepath"].str.startswith(str(moved)).all()
    first = pd.read_csv(tmp_path / "a" / "models" / "pixels" / "predictions.csv")
    columns = [c for c in first.columns if c.startswith("p:")]
    np.testing.assert_allclose(
        first.set_index("digest").loc[predictions["digest"], columns].to_numpy(),
        predictions[columns].to_numpy(),
    )


def test_models_may_be_one_comma_separated_string(
    tmp_path: Path, digits_splits: Path
) -> None:
    board = rank(digits_splits, models="pixels", output=tmp_path / "run", settings=FAST)
    assert board["model"].tolist() == ["pixels"]


def test_default_run_folders_of_same_named_folders_differ(tmp_path: Path) -> None:
    from lazyvision.data import load_dataset
    from lazyvision.runner import default_run_dir

    folders = []
    for parent in ("a", "b"):
        data = _solid_folders(tmp_path / parent / "splits")
        folders.append(default_run_dir(load_dataset(data)))
    assert folders[0] != folders[1]
    assert all(f.name.startswith("splits-") for f in folders)


def test_a_one_class_validation_split_is_not_flagged_single_class(
    tmp_path: Path,
) -> None:
    data = _solid_folders(tmp_path / "data")
    shutil.rmtree(data / "val" / "blue")
    board = rank(data, models=["pixels"], output=tmp_path / "run", settings=FAST)
    row = board.iloc[0]
    assert row["status"] == "ok"
    assert not row["single_class"]
    assert row["val_accuracy"] == 1.0


def test_asking_for_a_missing_gpu_is_refused_up_front() -> None:
    import torch

    from lazyvision.errors import ModelError
    from lazyvision.features import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ModelError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_the_readme_imports_what_the_package_exports() -> None:
    import lazyvision

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    imported = re.findall(r"^from lazyvision import (.+)$", readme, re.MULTILINE)
    names = {name.strip() for line in imported for name in line.split(",")}
    assert {"Settings", "rank"} <= names
    assert names <= set(lazyvision.__all__)
    assert lazyvision.Settings is Settings  # the class rank takes
    assert lazyvision.Settings(allow_download=False).allow_download is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"num_resamples": 5},
            r"num_resamples \(--resamples\) must be 0 .* at least 100",
        ),
        ({"num_workers": -1}, r"num_workers \(--workers\) must be 0 or more, got -1"),
        ({"device": "quantum"}, r"device \(--device\): device 'quantum' is not"),
        ({"precision": "int4"}, r"precision \(--precision\) must be one of auto,"),
        (
            {"seed": -1},
            r"^seed \(--seed\) must be a whole number of 0 or more, got -1$",
        ),
        ({"seed": 1.5}, r"^seed \(--seed\) must be a whole number of 0 or more"),
        (
            {"weights": {"resnet18": "nonexist.pt"}},
            r"^weights \(--weights\) for backbone 'resnet18': 'nonexist\.pt' does "
            "not exist; give the path of a .safetensors or torch checkpoint file$",
        ),
    ],
)
def test_settings_refuse_values_that_mean_nothing(
    options: dict[str, int | str], message: str
) -> None:
    from lazyvision.errors import DataError

    with pytest.raises(DataError, match=message):
        Settings(**options)


def test_float16_on_a_cpu_runs_with_one_warning_naming_the_faster_precision(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    from lazyvision.features import resolve_precision

    fast = str(resolve_precision("auto", torch.device("cpu"))).removeprefix("torch.")
    settings = dataclasses.replace(FAST, precision="float16", device="cpu")
    with caplog.at_level("WARNING", logger="lazyvision"):
        board = rank(
            digits_splits,
            models=["pixels", "test_resnet@random"],
            output=tmp_path / "run",
            settings=settings,
        )
    assert set(board["status"]) == {"ok"}
    warned = [r.getMessage() for r in caplog.records if "float16 (" in r.getMessage()]
    assert warned == [
        "precision float16 (--precision) on the CPU runs several times slower than "
        f"{fast}: "
        + (
            "bfloat16 is this CPU's fast reduced precision"
            if fast == "bfloat16"
            else f"this CPU has no fast reduced precision, so {fast} is faster"
        )
        + f"; use --precision {fast}, or auto"
    ]

    caplog.clear()
    with caplog.at_level("WARNING", logger="lazyvision"):
        rank(
            digits_splits,
            models=["pixels"],
            output=tmp_path / "run",
            settings=dataclasses.replace(settings, precision="float32"),
        )
    assert "float16" not in caplog.text


def test_a_positive_label_on_a_multiclass_set_is_refused(
    tmp_path: Path, digits_splits: Path
) -> None:
    from lazyvision.errors import DataError

    settings = dataclasses.replace(FAST, positive_label="3")
    with pytest.raises(DataError, match=r"applies to a binary task; .* 10 classes"):
        rank(digits_splits, models=["pixels"], output=tmp_path, settings=settings)


def test_one_class_or_no_time_is_refused_before_any_image_is_read(
    tmp_path: Path,
) -> None:
    from lazyvision.errors import DataError

    for split in ("train", "val"):
        folder = tmp_path / "data" / split / "cat"
        folder.mkdir(parents=True)
        # No real image is needed: the run must stop before reading any.
        (folder / "a.png").write_bytes(b"not read")
    with pytest.raises(DataError, match=r"one class in train \('cat'\)"):
        rank(tmp_path / "data", models=["pixels"], output=tmp_path / "run")
    with pytest.raises(DataError, match=r"--max-seconds\) must be a positive"):
        rank(tmp_path / "data", models=["pixels"], max_seconds=0)


def test_offline_default_set_runs_what_has_weights_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import huggingface_hub

    from lazyvision.backbones import DEFAULT_MODELS
    from lazyvision.runner import _check_models

    # An empty weights cache: of the default set only the raw pixels need nothing.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with caplog.at_level("WARNING", logger="lazyvision"):
        specs = _check_models(None, allow_download=False)
    assert specs == [
        "tf_efficientnet_lite0",
        "tf_efficientnet_lite1",
        "tf_efficientnet_lite2",
        "pixels",
    ]
    missing = len(DEFAULT_MODELS) - 1
    assert f"downloads are off and {missing} of the default backbones" in caplog.text
    assert "lazyvision models --offline" in caplog.text
    # With downloads allowed the default set is left as it is.
    assert _check_models(None, allow_download=True) == list(DEFAULT_MODELS)


def test_split_column_and_the_full_list_of_problems_in_python(tmp_path: Path) -> None:
    lines = ["filepath,label,subset"]
    for i in range(24):
        path = tmp_path / f"{i}.png"
        if i < 12:
            Image.new("RGB", (16, 16), (20 * i, 10, 200 - 10 * i)).save(path)
        else:
            path.write_bytes(b"not a png")  # twelve unreadable files
        lines.append(f"{i}.png,{'ab'[i % 2]},{['train', 'train', 'val'][i % 3]}")
    (tmp_path / "all.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"

    with pytest.raises(DataError, match=r"more \(see .*run/dataset\.json\)") as caught:
        rank(
            tmp_path / "all.csv",
            models=["pixels"],
            output=run,
            settings=FAST,
            split_column="subset",
        )
    assert "12.png" in str(caught.value)
    assert json.loads((run / "dataset.json").read_text())["layout"] == (
        "split-column-csv"
    )


def test_the_raw_pixels_keep_their_result_whatever_the_precision() -> None:
    from lazyvision.evaluation import Entry, Manifest, result_key

    entries = tuple(
        Entry(split, f"{split}{i}.png", f"/data/{split}{i}.png", "ab"[i % 2], f"d{i}")
        for i, split in enumerate(["train", "train", "val", "val"])
    )
    manifest = Manifest(entries, ("a", "b"), "b")
    full, half = Settings(precision="float32"), Settings(precision="bfloat16")
    assert result_key("pixels", manifest, full) == result_key("pixels", manifest, half)
    assert result_key("test_resnet", manifest, full) != result_key(
        "test_resnet", manifest, half
    )


def test_skip_bad_that_leaves_no_val_image_stops_before_the_sort_is_checked(
    tmp_path: Path,
) -> None:
    data = _solid_folders(tmp_path / "data")
    for path in (data / "val").rglob("*.png"):
        path.write_bytes(b"")

    with pytest.raises(DataError, match=r"^no usable val image") as caught:
        rank(
            data,
            models=["pixels"],
            output=tmp_path / "run",
            settings=FAST,
            skip_bad=True,
        )
    # Not the advice to sort on the val metric it already sorts on.
    assert "sort on" not in str(caught.value)


@pytest.mark.parametrize(
    ("sort", "message"),
    [
        ("xyzzy", r"'xyzzy' is not a leaderboard column\. The columns: val_accuracy"),
        ("val_acuracy", r"did you mean 'val_accuracy'.*\? The columns: val_accuracy"),
    ],
)
def test_an_unknown_sort_metric_lists_the_columns_as_a_sentence_of_its_own(
    tmp_path: Path, digits_splits: Path, sort: str, message: str
) -> None:
    from lazyvision.errors import DataError

    with pytest.raises(DataError, match=message):
        rank(digits_splits, models=["pixels"], output=tmp_path / "run", sort=sort)


def test_a_rerun_rewrites_the_report_the_folder_already_had(
    tmp_path: Path, digits_splits: Path
) -> None:
    from lazyvision.report import write_report

    run = tmp_path / "run"
    rank(digits_splits, models=["pixels"], output=run, settings=FAST)
    report = run / "report.html"
    assert "1 ranked of 1" in write_report(run).read_text()

    board = rank(digits_splits, models=TINY, output=run, settings=FAST)

    assert board.attrs["report"] == str(report)
    text = report.read_text()
    assert "2 ranked of 2" in text and "test_resnet@random" in text


def test_an_interrupted_rerun_rewrites_the_report_too(
    tmp_path: Path, digits_splits: Path
) -> None:
    from lazyvision.report import write_report
    from lazyvision.runner import RunInterrupted

    run = tmp_path / "run"
    rank(digits_splits, models=["pixels"], output=run, settings=FAST)
    write_report(run)

    def stop_at_resnet(spec: str, total: int) -> None:
        if spec == "test_resnet@random":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        rank(
            digits_splits,
            models=TINY,
            output=run,
            settings=FAST,
            on_model_start=stop_at_resnet,
        )

    assert "1 ranked of 2, 1 interrupted" in (run / "report.html").read_text()


def test_a_report_that_cannot_be_rewritten_is_removed_not_left_wrong(
    tmp_path: Path, digits_splits: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lazyvision.report import write_report
    from lazyvision.runner import RunInterrupted

    run = tmp_path / "run"
    rank(digits_splits, models=["pixels"], output=run, settings=FAST)
    write_report(run)

    def stop(spec: str, total: int) -> None:
        raise KeyboardInterrupt

    # Another seed: the earlier result is not this leaderboard's, none finished.
    reseeded = dataclasses.replace(FAST, seed=1)
    with pytest.raises(RunInterrupted):
        rank(
            digits_splits,
            models=["pixels"],
            output=run,
            settings=reseeded,
            on_model_start=stop,
        )

    assert not (run / "report.html").exists()
    assert f"`lazyvision report {run}` writes a new one" in caplog.text


def test_importing_the_runner_leaves_the_report_and_scikit_learn_unloaded() -> None:
    # The report's plots bring scikit-learn: half a second and tens of MiB that
    # every command line run would pay before reading a file.
    code = (
        "import sys, lazyvision.runner; "
        "print(sorted(m for m in ('sklearn', 'lazyvision.report') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
